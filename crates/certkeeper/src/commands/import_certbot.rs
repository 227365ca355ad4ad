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
//! Run as root (certbot's keys are root's), it gives what it created in the state directory
//! to the owner of that directory, so a daemon running as the `certkeeper` user (the packaged
//! unit's `StateDirectory=`) can use the adopted lineages.

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use certkeeper_certbot::{Imported, Lineage, Source, read_leaf};
use certkeeper_core::{CertName, DomainName};
use certkeeper_store::{Store, StoreError};

use crate::cli::ImportCertbotArgs;
use crate::exit::Exit;
use crate::report::timestamp;

/// What one lineage's files hold.
struct Material {
    key_pem: String,
    fullchain_pem: String,
}

pub fn run(args: &ImportCertbotArgs) -> anyhow::Result<Exit> {
    if let Some(output) = &args.output {
        if output.exists() {
            bail!(
                "{} already exists; choose another --output (nothing was imported)",
                output.display()
            );
        }
    }
    let renewal_dir = args.certbot_dir.join("renewal");
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
    let mut imported = Vec::new();
    let mut materials = Vec::new();
    for conf in &confs {
        let name = conf
            .file_stem()
            .map(|stem| stem.to_string_lossy().into_owned())
            .unwrap_or_default();
        match read_lineage(&args.certbot_dir, &name, conf) {
            Ok((item, material)) => {
                imported.push(item);
                materials.push(material);
            }
            Err(err) => {
                eprintln!("error: {name}: {err:#}; not imported");
                failed += 1;
            }
        }
    }

    if imported.is_empty() {
        bail!("no certbot lineage could be read; nothing imported");
    }
    let plan = certkeeper_certbot::plan(&imported);
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
    give_to_state_dir_owner(store.root())?;

    // Relative paths in an inventory resolve against its own directory, so write absolute ones.
    let absolute = |path: &Path| std::path::absolute(path).unwrap_or_else(|_| path.to_owned());
    let source = Source {
        certbot_dir: absolute(&args.certbot_dir).display().to_string(),
        state_dir: absolute(&args.state_dir).display().to_string(),
        directory_hooks: directory_hooks(&args.certbot_dir),
    };
    let rendered = certkeeper_certbot::render(&source, &plan);
    match &args.output {
        None => print!("{}", rendered.text),
        Some(output) => {
            write_new(output, &rendered.text)?;
            eprintln!("wrote {}", output.display());
        }
    }
    if !rendered.warnings.is_empty() {
        eprintln!("\nreview (also noted as comments in the inventory):");
        for warning in &rendered.warnings {
            eprintln!("  - {warning}");
        }
    }
    if !rendered.to_fill.is_empty() {
        eprintln!("\nfill in before certkeeper can renew (certbot does not keep these):");
        for item in &rendered.to_fill {
            eprintln!("  - {item}");
        }
    }
    let config = args
        .output
        .as_ref()
        .map_or_else(|| "FILE".to_owned(), |path| path.display().to_string());
    eprintln!("\nthen: certkeeper --config {config} check");
    Ok(if failed == 0 {
        Exit::Success
    } else {
        Exit::Failure
    })
}

/// Read one lineage: its renewal settings, its current certificate, key and chain, and its
/// account's contacts.
fn read_lineage(
    certbot_dir: &Path,
    name: &str,
    conf: &Path,
) -> anyhow::Result<(Imported, Material)> {
    let text = fs::read_to_string(conf).with_context(|| format!("reading {}", conf.display()))?;
    let lineage = Lineage::from_renewal_conf(name, &text)
        .with_context(|| format!("{} is not a certbot renewal file", conf.display()))?;
    let live = certbot_dir.join("live").join(name);
    let file = |configured: &Option<PathBuf>, default: &str| -> anyhow::Result<String> {
        // The renewal file's paths are absolute; when the directory was copied elsewhere
        // (or is given with another path), the lineage's own live/ directory is used.
        let path = configured
            .as_ref()
            .filter(|path| path.exists())
            .cloned()
            .unwrap_or_else(|| live.join(default));
        fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))
    };
    let fullchain_pem = file(&lineage.files.fullchain, "fullchain.pem")?;
    let key_pem = file(&lineage.files.privkey, "privkey.pem")?;
    let certificate = read_leaf(fullchain_pem.as_bytes()).context("the lineage's fullchain.pem")?;
    let contact = lineage
        .account
        .as_deref()
        .and_then(|account| find_account(&certbot_dir.join("accounts"), account, 6))
        .and_then(|dir| fs::read_to_string(dir.join("regr.json")).ok())
        .map(|regr| certkeeper_certbot::account::contacts(&regr))
        .unwrap_or_default();
    Ok((
        Imported {
            lineage,
            certificate,
            contact,
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

/// Executables in certbot's `renewal-hooks/{pre,deploy,post}/`.
fn directory_hooks(certbot_dir: &Path) -> Vec<String> {
    let mut hooks = Vec::new();
    for kind in ["pre", "deploy", "post"] {
        let Ok(entries) = fs::read_dir(certbot_dir.join("renewal-hooks").join(kind)) else {
            continue;
        };
        let mut found: Vec<String> = entries
            .filter_map(Result::ok)
            .filter(|entry| {
                entry
                    .metadata()
                    .is_ok_and(|meta| meta.is_file() && meta.mode() & 0o111 != 0)
            })
            .map(|entry| entry.path().display().to_string())
            .collect();
        found.sort();
        hooks.extend(found);
    }
    hooks
}

/// When running as root in a state directory owned by someone else (the `certkeeper`
/// user), hand everything below it to that owner: the daemon must be able to write there,
/// and systemd only fixes ownership when the top directory itself is wrong.
fn give_to_state_dir_owner(root: &Path) -> anyhow::Result<()> {
    if !rustix::process::geteuid().is_root() {
        return Ok(());
    }
    let top = fs::metadata(root).with_context(|| format!("inspecting {}", root.display()))?;
    if top.uid() == 0 {
        return Ok(());
    }
    chown_tree(root, top.uid(), top.gid())
}

fn chown_tree(dir: &Path, uid: u32, gid: u32) -> anyhow::Result<()> {
    for entry in fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let entry = entry.with_context(|| format!("reading {}", dir.display()))?;
        let path = entry.path();
        let meta = fs::symlink_metadata(&path)
            .with_context(|| format!("inspecting {}", path.display()))?;
        if meta.uid() != uid || meta.gid() != gid {
            std::os::unix::fs::lchown(&path, Some(uid), Some(gid))
                .with_context(|| format!("changing the owner of {}", path.display()))?;
        }
        if meta.is_dir() {
            chown_tree(&path, uid, gid)?;
        }
    }
    Ok(())
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
