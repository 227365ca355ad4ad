//! `certkeeper import-certbot`: move from certbot without re-issuing anything.
//!
//! It reads certbot's configuration directory (`renewal/*.conf`, each lineage's current
//! certificate and key, the accounts' contacts), adopts every lineage into certkeeper's state
//! directory through [`Store::install`] (which verifies key, chain and names before writing),
//! and writes the equivalent inventory. certkeeper then plans from the adopted certificates
//! exactly as certbot's would have expired, so nothing is renewed before it is due.
//!
//! The translation rules live in `certkeeper-certbot` (pure, tested with fixtures); this
//! module does the reading and writing. It runs without an inventory (there is none yet),
//! refuses to overwrite an existing output file before touching anything, and takes the state
//! directory lock so it never races a running daemon.
//!
//! Run as root (certbot's keys are root's), it reads everything of certbot's first, as root,
//! and then becomes the owner of the state directory (module `privilege`) before opening it,
//! so what it creates there is that user's from the start: no ownership is changed
//! afterwards, and no path in a directory another user controls is ever used as root.
//!
//! certbot's directory is trusted only as far as its owner: it must belong to root (to the
//! invoking user when not run as root) and be writable by nobody else, and every file read
//! must resolve, through any links, to a file inside it whose directories are equally
//! protected ([`CertbotDir`]). Errors name files, never quote their content.
//!
//! # Challenges
//!
//! Each lineage keeps the way certbot validated it (the rules and their reasons are in
//! `certkeeper_certbot::challenge`):
//! - `standalone`: certkeeper's own HTTP-01 responder, on certbot's `http01_port`.
//! - `webroot`: `webroot = "DIR"` when certbot served all the certificate's names from one
//!   directory. certkeeper takes one webroot per certificate, so when certbot's
//!   `[[webroot_map]]` gives the names different directories the lineage is adopted with
//!   `webroot = "FILL-ME"` and a comment listing each name's directory: `certkeeper check`
//!   refuses the inventory until the operator picks one directory that serves
//!   `/.well-known/acme-challenge/` for every name, or `webroot = false` and a proxy to
//!   certkeeper's listener. Splitting the certificate would re-issue it, and any single
//!   directory would be a guess that fails at the next renewal.
//! - `dns-rfc2136`: `challenge = "dns-01"` and one `[dns.NAME]` `type = "rfc2136"` provider
//!   per credentials file, with certbot's server, port, key name and algorithm. Its secret is
//!   not copied: the provider names certbot's file with `secret_file` and `secret_ini_key =
//!   "dns_rfc2136_secret"`, and the config loader reads that line. The import only checks
//!   that the secret is there; it never reaches the inventory, a message or the output. A key
//!   certkeeper cannot sign with (certbot signs with HMAC-MD5 when no algorithm is set, and
//!   accepts HMAC-SHA1 and -SHA224) refuses the lineage, saying how to make a new key.
//! - `manual` with a DNS-01 `manual_auth_hook` (per `pref_challs`, or a wildcard):
//!   `challenge = "dns-01"` and a `[dns.NAME]` `type = "hook"` provider whose command is
//!   `case "$1" in present) exec AUTH ;; cleanup) exec CLEANUP ;; esac`, so certbot's scripts
//!   run unchanged with the CERTBOT_* variables they read; `propagation = "none"`,
//!   `follow_cname = false` and a 10-minute timeout, since certbot checked nothing, looked up
//!   no CNAME (the scripts name the record themselves) and waited as long as they took. A
//!   manual HTTP-01 hook has no counterpart (certkeeper writes challenge files itself):
//!   `webroot = "FILL-ME"` with the choices.
//! - Another `dns-*` plugin: `challenge = "dns-01"` and `dns = "FILL-ME"`. `nginx`, `apache`
//!   and other web server plugins: the embedded responder behind that web server, with a
//!   note on the proxy to set up.
//! - A wildcard validated over HTTP-01 is refused (no CA validates one that way).
//!
//! A refused lineage is neither written nor adopted, the command says why and exits 1;
//! certbot keeps it until it is fixed and imported again.
//!
//! certbot's credentials file may live outside its directory (certbot's documentation
//! suggests `~/.secrets/certbot/`): it is read when it is the trusted owner's, writable by
//! nobody else, in directories up to `/` that are root's or the owner's and closed to other
//! writers (a root-owned sticky directory such as `/tmp` is accepted: nobody else can move
//! what is in it).

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use certkeeper_certbot::{Imported, Lineage, Rfc2136Credentials, Source, read_leaf};
use certkeeper_core::{CertName, DomainName};
use certkeeper_store::{Store, StoreError};

use crate::cli::ImportCertbotArgs;
use crate::exit::Exit;
use crate::privilege;
use crate::report::timestamp;

/// What one lineage's files hold.
struct Material {
    key_pem: String,
    fullchain_pem: String,
}

pub fn run(args: &ImportCertbotArgs) -> anyhow::Result<Exit> {
    if let Some(output) = &args.output
        && output.exists()
    {
        bail!(
            "{} already exists; choose another --output (nothing was imported)",
            output.display()
        );
    }
    let certbot = CertbotDir::open(&args.certbot_dir)?;
    let renewal_dir = certbot.resolve_dir(&args.certbot_dir.join("renewal"))?;
    let mut confs: Vec<PathBuf> = fs::read_dir(&renewal_dir)
        .with_context(|| format!("reading certbot's {}", renewal_dir.display()))?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "conf"))
        .collect();
    confs.sort();
    if confs.is_empty() {
        bail!(
            "no certbot lineages in {} (no NAME.conf files)",
            renewal_dir.display()
        );
    }

    let mut failed = 0usize;
    // Lineages neither written nor adopted: certbot still has to renew them.
    let mut not_imported = 0usize;
    let mut imported = Vec::new();
    let mut materials = Vec::new();
    for conf in &confs {
        let name = conf
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        match read_lineage(&certbot, &name, conf) {
            Ok((item, material)) => {
                imported.push(item);
                materials.push(material);
            }
            Err(err) => {
                eprintln!("error: {name}: {err:#}; not imported");
                failed += 1;
                not_imported += 1;
            }
        }
    }

    if imported.is_empty() {
        bail!("no certbot lineage could be read; nothing imported");
    }
    let plan = certkeeper_certbot::plan(&imported);
    // Everything of certbot's is read; certbot's directory hooks are listed while still
    // root, and the inventory is written where root was asked to write it.
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let source = Source {
        certbot_dir: absolute(&args.certbot_dir).display().to_string(),
        state_dir: absolute(&args.state_dir).display().to_string(),
        directory_hooks: directory_hooks(&certbot, &args.certbot_dir),
    };
    let rendered = certkeeper_certbot::render(&source, &plan);
    match &args.output {
        None => print!("{}", rendered.text),
        Some(output) => {
            write_new(output, &rendered.text)?;
            eprintln!("wrote {}", output.display());
        }
    }

    privilege::drop_to_state_owner(&args.state_dir)?;
    let store = Store::open(&args.state_dir)?;
    let _lock = match store.lock() {
        Ok(lock) => lock,
        Err(err @ StoreError::Locked { .. }) => {
            eprintln!("error: {err}");
            return Ok(Exit::Locked);
        }
        Err(err) => return Err(err.into()),
    };
    for (planned, material) in plan.certificates.iter().zip(&materials) {
        if let Err(err) = adopt(&store, planned, material) {
            eprintln!(
                "error: {}: {err:#}; certkeeper will order a new certificate for it",
                planned.name
            );
            failed += 1;
        }
    }

    if !rendered.warnings.is_empty() {
        eprintln!("\nreview (also noted as comments in the inventory):");
        for warning in &rendered.warnings {
            eprintln!("  - {warning}");
        }
    }
    if !rendered.to_fill.is_empty() {
        eprintln!("\nfill in before certkeeper can renew (each is a FILL-ME in the inventory):");
        for item in &rendered.to_fill {
            eprintln!("  - {item}");
        }
    }
    let config = args
        .output
        .as_ref()
        .map_or_else(|| "FILE".to_owned(), |path| path.display().to_string());
    eprintln!("\nthen: certkeeper --config {config} check");
    if not_imported > 0 {
        eprintln!(
            "\n{not_imported} lineage(s) were not imported (see the errors above): keep certbot \
             renewing them until they are, or configure them by hand"
        );
    }
    Ok(if failed == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Read one lineage: its renewal settings, its current certificate, key and chain, and its
/// account's contacts.
fn read_lineage(
    certbot: &CertbotDir,
    name: &str,
    conf: &Path,
) -> anyhow::Result<(Imported, Material)> {
    let text = certbot.read(conf)?;
    let lineage = Lineage::from_renewal_conf(name, &text)
        .with_context(|| format!("{} is not a certbot renewal file", conf.display()))?;
    let live = certbot.root.join("live").join(name);
    let file = |configured: &Option<PathBuf>, default: &str| -> anyhow::Result<String> {
        // The renewal file's paths are absolute; when the directory was copied elsewhere
        // (or is given with another path), the lineage's own live/ directory is used. Either
        // way the file must be inside certbot's directory.
        let resolved = match configured
            .as_ref()
            .and_then(|path| certbot.resolve_file(path).ok())
        {
            Some(resolved) => resolved,
            None => certbot.resolve_file(&live.join(default))?,
        };
        fs::read_to_string(&resolved).with_context(|| format!("reading {}", resolved.display()))
    };
    let fullchain_pem = file(&lineage.files.fullchain, "fullchain.pem")?;
    let key_pem = file(&lineage.files.privkey, "privkey.pem")?;
    let certificate = read_leaf(fullchain_pem.as_bytes()).context("the lineage's fullchain.pem")?;
    let rfc2136 = match &lineage.rfc2136 {
        None => None,
        Some(settings) => {
            let path = certbot.resolve_credentials(&settings.credentials)?;
            // The text holds the secret: it is parsed here and dropped; only the server, key
            // name and algorithm are kept.
            let text = fs::read_to_string(&path)
                .with_context(|| format!("reading certbot's credentials {}", path.display()))?;
            let credentials = Rfc2136Credentials::from_ini(&text).with_context(|| {
                format!("certbot's RFC 2136 credentials file {}", path.display())
            })?;
            Some((path, credentials))
        }
    };
    let challenge = certkeeper_certbot::decide(&lineage, &certificate.dns_names, rfc2136)?;
    let contact = lineage
        .account
        .as_deref()
        .and_then(|account| find_account(&certbot.root.join("accounts"), account, 6))
        .and_then(|dir| certbot.read(&dir.join("regr.json")).ok())
        .map(|regr| certkeeper_certbot::account::contacts(&regr))
        .unwrap_or_default();
    Ok((
        Imported {
            lineage,
            certificate,
            contact,
            challenge,
        },
        Material {
            key_pem,
            fullchain_pem,
        },
    ))
}

/// certbot keeps an account under `accounts/<host>/<path...>/<id>/`: find `<id>`.
fn find_account(dir: &Path, id: &str, depth: usize) -> Option<PathBuf> {
    if depth == 0 {
        return None;
    }
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .filter_map(Result::ok)
        .map(|entry| entry.path())
        .filter(|path| path.is_dir())
        .collect();
    entries.sort();
    entries.iter().find_map(|path| {
        if path.file_name().is_some_and(|name| name == id) && path.join("regr.json").is_file() {
            Some(path.clone())
        } else {
            find_account(path, id, depth - 1)
        }
    })
}

/// Install the lineage's current certificate as certkeeper's `live/NAME`, unless certkeeper
/// already has that lineage.
fn adopt(
    store: &Store,
    planned: &certkeeper_certbot::PlannedCertificate,
    material: &Material,
) -> anyhow::Result<()> {
    let name =
        CertName::new(&planned.name).with_context(|| format!("lineage name {:?}", planned.name))?;
    let domains = planned
        .domains
        .iter()
        .map(|domain| {
            DomainName::new(domain).with_context(|| format!("the certificate's name {domain:?}"))
        })
        .collect::<anyhow::Result<Vec<_>>>()?;
    if let Some(existing) = store.read_live(&name).ok().flatten() {
        eprintln!(
            "{name}: certkeeper already has this lineage ({}); left as it is",
            existing.live_dir.display()
        );
        return Ok(());
    }
    let live = store.install(&name, &domains, &material.key_pem, &material.fullchain_pem)?;
    eprintln!(
        "adopted {name}: {} ({}, expires {}) -> {}",
        planned.domains.join(", "),
        planned.key_type.unwrap_or_default(),
        timestamp(live.observed.not_after),
        live.live_dir.display()
    );
    Ok(())
}

/// Executables in certbot's `renewal-hooks/{pre,deploy,post}/` (only those that resolve to a
/// file inside certbot's directory, as protected as the rest of it).
fn directory_hooks(certbot: &CertbotDir, certbot_dir: &Path) -> Vec<String> {
    let mut hooks = Vec::new();
    for kind in ["pre", "deploy", "post"] {
        let Ok(entries) = fs::read_dir(certbot_dir.join("renewal-hooks").join(kind)) else {
            continue;
        };
        let mut found: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| {
                certbot
                    .resolve_file(&entry.path())
                    .and_then(|path| fs::metadata(&path).map_err(Into::into))
                    .is_ok_and(|meta| meta.mode() & 0o111 != 0)
            })
            .map(|entry| entry.path().display().to_string())
            .collect();
        found.sort();
        hooks.extend(found);
    }
    hooks
}

/// Create `path` (never replacing a file) with the inventory. Mode 0644: it holds no secret
/// (those are FILL-ME placeholders, to be replaced by references to key files or
/// credentials), and the daemon's user must read it.
fn write_new(path: &Path, text: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

/// certbot's configuration directory, trusted as far as its owner: root's (the invoking
/// user's when not run as root) and writable by nobody else, down to every file read. Files
/// are found by resolving links, then checked to lie inside it; since every directory on the
/// way is the trusted owner's and closed to writers, nobody else can swap one between the
/// check and the read.
#[derive(Debug)]
struct CertbotDir {
    /// Canonical: no links, no `..`.
    root: PathBuf,
    owner: u32,
}

impl CertbotDir {
    fn open(path: &Path) -> anyhow::Result<Self> {
        let root = fs::canonicalize(path)
            .with_context(|| format!("reading certbot's directory {}", path.display()))?;
        let owner = rustix::process::geteuid().as_raw();
        let certbot = CertbotDir { root, owner };
        certbot.check_dir(&certbot.root.clone())?;
        Ok(certbot)
    }

    /// `path` resolved and checked to be a directory inside certbot's directory.
    fn resolve_dir(&self, path: &Path) -> anyhow::Result<PathBuf> {
        let resolved = self.resolve(path)?;
        self.check_dir(&resolved)?;
        Ok(resolved)
    }

    /// `path` resolved and checked to be a regular file inside certbot's directory, owned
    /// and writable only by the trusted owner, in directories that are equally protected.
    fn resolve_file(&self, path: &Path) -> anyhow::Result<PathBuf> {
        let resolved = self.resolve(path)?;
        let meta = fs::metadata(&resolved)
            .with_context(|| format!("inspecting {}", resolved.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file; not imported", resolved.display());
        }
        self.check_owner(&resolved, &meta)?;
        let mut dir = resolved.parent();
        while let Some(current) = dir {
            self.check_dir(current)?;
            if current == self.root {
                break;
            }
            dir = current.parent();
        }
        Ok(resolved)
    }

    /// A credentials file a renewal file names: inside certbot's directory as any other
    /// file, or outside it (certbot's documentation puts them in `~/.secrets/certbot/`) when
    /// it is the trusted owner's and closed to other writers, and so is every directory on
    /// the way from `/`, which must belong to root or the trusted owner. A directory others
    /// may write is accepted only when it is root's and sticky (`/tmp`): nobody else can
    /// rename or remove what is in it.
    fn resolve_credentials(&self, path: &Path) -> anyhow::Result<PathBuf> {
        if !path.is_absolute() {
            bail!(
                "the credentials file {} is not an absolute path; certbot stores absolute ones",
                path.display()
            );
        }
        let resolved = fs::canonicalize(path)
            .with_context(|| format!("reading certbot's credentials file {}", path.display()))?;
        if resolved.starts_with(&self.root) {
            return self.resolve_file(&resolved);
        }
        let meta = fs::metadata(&resolved)
            .with_context(|| format!("inspecting {}", resolved.display()))?;
        if !meta.is_file() {
            bail!("{} is not a regular file; not imported", resolved.display());
        }
        self.check_owner(&resolved, &meta)?;
        for dir in resolved.ancestors().skip(1) {
            let meta =
                fs::metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
            if meta.uid() != 0 && meta.uid() != self.owner {
                bail!(
                    "{} (on the way to the credentials file {}) belongs to uid {}, not to root or uid {} who runs the import; nobody else may be able to change what is imported",
                    dir.display(),
                    resolved.display(),
                    meta.uid(),
                    self.owner
                );
            }
            let sticky_root = meta.uid() == 0 && meta.mode() & 0o1000 != 0;
            if meta.mode() & 0o022 != 0 && !sticky_root {
                bail!(
                    "{} (on the way to the credentials file {}) is writable by group or others (mode {:o}); chmod go-w it so nobody else can change what is imported",
                    dir.display(),
                    resolved.display(),
                    meta.mode() & 0o7777
                );
            }
        }
        Ok(resolved)
    }

    /// The text of the file at `path`, after [`CertbotDir::resolve_file`].
    fn read(&self, path: &Path) -> anyhow::Result<String> {
        let resolved = self.resolve_file(path)?;
        fs::read_to_string(&resolved).with_context(|| format!("reading {}", resolved.display()))
    }

    fn resolve(&self, path: &Path) -> anyhow::Result<PathBuf> {
        let resolved =
            fs::canonicalize(path).with_context(|| format!("reading {}", path.display()))?;
        if !resolved.starts_with(&self.root) {
            bail!(
                "{} leads outside certbot's directory {} (to {}); refusing to read it",
                path.display(),
                self.root.display(),
                resolved.display()
            );
        }
        Ok(resolved)
    }

    fn check_dir(&self, dir: &Path) -> anyhow::Result<()> {
        let meta = fs::metadata(dir).with_context(|| format!("inspecting {}", dir.display()))?;
        if !meta.is_dir() {
            bail!("{} is not a directory", dir.display());
        }
        self.check_owner(dir, &meta)
    }

    fn check_owner(&self, path: &Path, meta: &fs::Metadata) -> anyhow::Result<()> {
        if meta.uid() != self.owner {
            bail!(
                "{} belongs to uid {}, not to uid {} who runs the import; certbot's files must be \
                 root's (chown -R root: on certbot's directory) so nobody else can change what is imported",
                path.display(),
                meta.uid(),
                self.owner
            );
        }
        if meta.mode() & 0o022 != 0 {
            bail!(
                "{} is writable by group or others (mode {:o}); chmod go-w it so nobody else can \
                 change what is imported",
                path.display(),
                meta.mode() & 0o7777
            );
        }
        Ok(())
    }
}
