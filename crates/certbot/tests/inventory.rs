//! The inventory written for certbot fixtures is one certkeeper's loader accepts once the
//! placeholders are filled in, and one it refuses before.
//!
//! The renewal files under `fixtures/renewal/` are what Debian's certbot 2.1 wrote for these
//! lineages (paths moved to `/etc/letsencrypt`), and the certificates under `fixtures/live/`
//! are the ones it obtained: `example.com` (standalone) and `shop` (DigiCert, webroot), `www`
//! (webroot, one directory), `split` (webroot, a directory per name), `wild` (manual DNS-01
//! hooks, a wildcard), `manualhttp` (a manual HTTP-01 hook) and `bind` (dns-rfc2136 with
//! `fixtures/rfc2136.ini`, a wildcard).

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use certkeeper_certbot::{
    Imported, Lineage, Rendered, Rfc2136Credentials, Source, plan, read_leaf, render,
};
use certkeeper_config::{Environment, Loaded};
use certkeeper_core::challenge::{ChallengeSpec, DnsProviderKind, Propagation, TsigAlgorithm};
use certkeeper_core::{CertName, HookCommand};

/// The TSIG secret in `fixtures/rfc2136.ini`, and what it decodes to.
const SECRET_TEXT: &str = "Zml4dHVyZS10c2lnLXNlY3JldC1vZi1jZXJ0Ym90LWltcG9ydA==";
const SECRET_BYTES: &[u8] = b"fixture-tsig-secret-of-certbot-import";

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

/// The lineages `names`, with `credentials` as the resolved path of `bind`'s credentials
/// file (which the test copies to a private place, as certbot's would be).
fn imported(names: &[&str], credentials: &Path) -> Vec<Imported> {
    let dir = fixtures();
    names
        .iter()
        .map(|name| {
            let conf = fs::read_to_string(dir.join(format!("renewal/{name}.conf")))
                .expect("fixture renewal file");
            let cert = fs::read(dir.join(format!("live/{name}/cert.pem"))).expect("fixture cert");
            let lineage = Lineage::from_renewal_conf(name, &conf).expect("parses");
            let certificate = read_leaf(&cert).expect("certificate");
            let rfc2136 = lineage.rfc2136.as_ref().map(|settings| {
                assert_eq!(
                    settings.credentials,
                    Path::new("/etc/letsencrypt/rfc2136.ini")
                );
                let text = fs::read_to_string(credentials).expect("credentials");
                let read = Rfc2136Credentials::from_ini(&text).expect("credentials parse");
                (credentials.to_owned(), read)
            });
            let challenge = certkeeper_certbot::decide(&lineage, &certificate.dns_names, rfc2136)
                .expect("a challenge certkeeper can answer");
            Imported {
                lineage,
                certificate,
                contact: vec!["mailto:ops@example.com".to_owned()],
                challenge,
            }
        })
        .collect()
}

/// A temporary directory with a private copy of `fixtures/rfc2136.ini`.
fn workdir() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    let ini = dir.path().join("rfc2136.ini");
    fs::copy(fixtures().join("rfc2136.ini"), &ini).expect("copy credentials");
    fs::set_permissions(&ini, fs::Permissions::from_mode(0o600)).expect("chmod");
    (dir, ini)
}

fn source(dir: &Path) -> Source {
    Source {
        certbot_dir: "/etc/letsencrypt".to_owned(),
        state_dir: dir.join("state").display().to_string(),
        directory_hooks: Vec::new(),
    }
}

fn load(text: &str, dir: &Path) -> Result<Loaded, certkeeper_config::ConfigErrors> {
    certkeeper_config::load_str(text, &dir.join("certkeeper.toml"), &Environment::empty())
}

#[test]
fn generated_inventory_loads_once_filled_in() {
    let (dir, ini) = workdir();
    let rendered = render(
        &source(dir.path()),
        &plan(&imported(&["example.com", "shop"], &ini)),
    );

    let unfinished = load(&rendered.text, dir.path()).expect_err("placeholders must not pass");
    assert!(
        unfinished
            .errors
            .iter()
            .any(|error| error.to_string().contains("eab_hmac_key_file")),
        "{unfinished:?}"
    );

    let hmac = dir.path().join("digicert.hmac");
    fs::write(&hmac, "c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw").expect("write hmac");
    fs::set_permissions(&hmac, fs::Permissions::from_mode(0o600)).expect("chmod");
    let filled = rendered
        .text
        .replace("eab_kid = \"FILL-ME\"", "eab_kid = \"kid-1\"")
        .replace(
            "eab_hmac_key_file = \"FILL-ME\"",
            &format!("eab_hmac_key_file = \"{}\"", hmac.display()),
        );
    let loaded = load(&filled, dir.path()).unwrap_or_else(|errors| panic!("{errors:?}\n{filled}"));
    let names: Vec<&str> = loaded
        .inventory
        .certificates
        .iter()
        .map(|cert| cert.name.as_str())
        .collect();
    assert_eq!(names, ["example.com", "shop"]);
    let challenge = |name: &str| {
        loaded
            .inventory
            .challenge(&CertName::new(name).expect("name"))
            .clone()
    };
    assert_eq!(challenge("example.com"), ChallengeSpec::EMBEDDED_HTTP01);
    assert_eq!(
        challenge("shop"),
        ChallengeSpec::Http01 {
            webroot: Some(PathBuf::from("/var/www/html"))
        }
    );
}

/// The fixture lineage `example.com` with `params` added to its `[renewalparams]`, rendered.
fn example_with_params(params: &str) -> (tempfile::TempDir, Rendered) {
    let (dir, ini) = workdir();
    let mut imported = imported(&["example.com"], &ini);
    let conf = fs::read_to_string(fixtures().join("renewal/example.com.conf")).expect("fixture");
    let conf = conf.replace("[renewalparams]\n", &format!("[renewalparams]\n{params}"));
    imported[0].lineage = Lineage::from_renewal_conf("example.com", &conf).expect("parses");
    let rendered = render(&source(dir.path()), &plan(&imported));
    (dir, rendered)
}

#[test]
fn a_certbot_4_profile_loads_as_the_certificates_profile() {
    // What certbot 4 adds to the renewal file for `--preferred-profile tlsserver`.
    let (dir, rendered) = example_with_params("preferred_profile = tlsserver\n");
    assert!(
        rendered
            .warnings
            .iter()
            .any(|warning| warning.contains("preferred_profile")),
        "{:?}",
        rendered.warnings
    );
    let loaded = load(&rendered.text, dir.path())
        .unwrap_or_else(|errors| panic!("{errors}\n{}", rendered.text));
    let cert = loaded
        .inventory
        .certificate("example.com")
        .expect("imported");
    assert_eq!(cert.profile.as_deref(), Some("tlsserver"));
}

#[test]
fn webroot_rfc2136_and_manual_lineages_load_as_their_challenges() {
    let (dir, ini) = workdir();
    let lineages = ["www", "wild", "bind", "split", "manualhttp"];
    let rendered = render(&source(dir.path()), &plan(&imported(&lineages, &ini)));
    let text = &rendered.text;
    eprintln!("{text}");
    assert!(!text.contains(SECRET_TEXT), "the secret was copied");
    assert!(!text.contains(&SECRET_TEXT[..16]), "the secret was copied");
    for said in rendered.warnings.iter().chain(&rendered.to_fill) {
        assert!(!said.contains(&SECRET_TEXT[..16]), "{said}");
    }

    // Two lineages need a decision certbot's files do not answer: the placeholders say so,
    // and the loader refuses them, naming the keys.
    let to_fill: Vec<&str> = rendered
        .to_fill
        .iter()
        .map(|item| item.split(':').next().unwrap_or_default())
        .collect();
    assert_eq!(
        to_fill,
        [
            "webroot of [[certificate]] \"split\"",
            "webroot of [[certificate]] \"manualhttp\""
        ]
    );
    assert!(
        rendered.to_fill[0]
            .contains("a.example.com from /var/www/a, b.example.com from /var/www/b"),
        "{:?}",
        rendered.to_fill
    );
    let unfinished = load(text, dir.path()).expect_err("placeholders must not pass");
    let refused: Vec<&str> = unfinished
        .errors
        .iter()
        .map(|error| error.key.as_str())
        .collect();
    assert_eq!(
        refused,
        ["certificate[3].webroot", "certificate[4].webroot"],
        "{unfinished}"
    );

    // Decided: the split lineage through one directory for both names, the manual HTTP-01
    // one through certkeeper's own listener.
    let mut filled = text.replacen("webroot = \"FILL-ME\"", "webroot = \"/var/www/acme\"", 1);
    filled = filled.replacen("webroot = \"FILL-ME\"", "webroot = false", 1);
    let loaded = load(&filled, dir.path()).unwrap_or_else(|errors| panic!("{errors}\n{filled}"));
    assert!(
        loaded.warnings.is_empty(),
        "the credentials file is private: {:?}",
        loaded.warnings
    );
    let inventory = &loaded.inventory;
    let challenge = |name: &str| {
        inventory
            .challenge(&CertName::new(name).expect("name"))
            .clone()
    };
    let dns = |provider: &str| ChallengeSpec::Dns01 {
        provider: provider.to_owned(),
    };
    assert_eq!(
        challenge("www"),
        ChallengeSpec::Http01 {
            webroot: Some(PathBuf::from("/var/www/a"))
        }
    );
    assert_eq!(challenge("wild"), dns("manual"));
    assert_eq!(challenge("bind"), dns("rfc2136"));
    assert_eq!(
        challenge("split"),
        ChallengeSpec::Http01 {
            webroot: Some(PathBuf::from("/var/www/acme"))
        }
    );
    assert_eq!(challenge("manualhttp"), ChallengeSpec::EMBEDDED_HTTP01);

    // The RFC 2136 provider: certbot's server, key and algorithm, and the secret read from
    // certbot's file at its dns_rfc2136_secret line.
    let bind = inventory.dns_provider("rfc2136").expect("rfc2136 provider");
    let DnsProviderKind::Rfc2136(spec) = &bind.kind else {
        panic!("{bind:?}");
    };
    assert_eq!(spec.server, "192.0.2.53:53".parse().expect("address"));
    assert_eq!(spec.key_name, "certbot");
    assert_eq!(spec.algorithm, TsigAlgorithm::HmacSha512);
    assert_eq!(spec.secret.expose(), SECRET_BYTES);
    assert_eq!(spec.zone, None);
    // certbot waited 300 seconds; certkeeper checks for up to as long.
    assert!(
        matches!(bind.propagation, Propagation::Check { timeout, .. } if timeout.as_secs() == 300),
        "{:?}",
        bind.propagation
    );
    assert!(text.contains(&format!("secret_file = \"{}\"\n", ini.display())));
    assert!(text.contains("secret_ini_key = \"dns_rfc2136_secret\"\n"));

    // The hook provider runs certbot's hooks unchanged, and checks nothing itself.
    let manual = inventory.dns_provider("manual").expect("manual provider");
    let DnsProviderKind::Hook(hook) = &manual.kind else {
        panic!("{manual:?}");
    };
    assert_eq!(
        hook.command,
        HookCommand::Shell(
            "case \"$1\" in present) exec /etc/letsencrypt/hooks/auth.sh ;; cleanup) exec /etc/letsencrypt/hooks/cleanup.sh ;; *) exit 2 ;; esac"
                .to_owned()
        )
    );
    assert_eq!(hook.timeout.as_secs(), 600);
    assert_eq!(manual.propagation, Propagation::None);
    assert!(
        !manual.follow_cname,
        "certbot's scripts name the record themselves"
    );
    assert_eq!(inventory.challenges.dns_providers.len(), 2);
}

#[test]
fn the_hook_command_dispatches_to_certbots_scripts() {
    // The generated command, run as certkeeper's hook provider runs it (sh -c LINE NAME
    // ACTION FQDN VALUE), reaches certbot's scripts with certbot's environment.
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("log");
    let script = |name: &str| {
        let path = dir.path().join(name);
        fs::write(
            &path,
            format!(
                "#!/bin/sh\necho \"{name} $# $CERTBOT_DOMAIN $CERTBOT_VALIDATION\" >> {}\n",
                log.display()
            ),
        )
        .expect("write script");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o755)).expect("chmod");
        path.display().to_string()
    };
    let auth = script("auth");
    let cleanup = script("cleanup");
    let conf = format!(
        "[renewalparams]\nauthenticator = manual\npref_challs = dns-01,\nmanual_auth_hook = {auth}\nmanual_cleanup_hook = {cleanup}\n"
    );
    let lineage = Lineage::from_renewal_conf("wild", &conf).expect("parses");
    let certificate =
        read_leaf(&fs::read(fixtures().join("live/wild/cert.pem")).expect("fixture certificate"))
            .expect("certificate");
    let challenge =
        certkeeper_certbot::decide(&lineage, &certificate.dns_names, None).expect("challenge");
    let imported = Imported {
        lineage,
        certificate,
        contact: Vec::new(),
        challenge,
    };
    let rendered = render(&source(dir.path()), &plan(&[imported]));
    let loaded = load(&rendered.text, dir.path()).unwrap_or_else(|errors| panic!("{errors}"));
    let provider = loaded.inventory.dns_provider("manual").expect("provider");
    let DnsProviderKind::Hook(hook) = &provider.kind else {
        panic!("{provider:?}");
    };
    let HookCommand::Shell(line) = &hook.command else {
        panic!("{hook:?}");
    };
    for action in ["present", "cleanup", "unknown"] {
        let status = std::process::Command::new("/bin/sh")
            .args(["-c", line, "certkeeper-dns-hook", action])
            .args(["_acme-challenge.example.com.", "token-value"])
            .env("CERTBOT_DOMAIN", "example.com")
            .env("CERTBOT_VALIDATION", "token-value")
            .status()
            .expect("run sh");
        assert_eq!(status.code(), Some(if action == "unknown" { 2 } else { 0 }));
    }
    assert_eq!(
        fs::read_to_string(&log).expect("the hooks ran"),
        "auth 0 example.com token-value\ncleanup 0 example.com token-value\n",
        "each script ran once, without arguments, as certbot ran it"
    );
}

#[test]
fn preferred_chain_and_reuse_key_load_as_the_certificates_keys() {
    // What certbot adds to the renewal file for `--preferred-chain "ISRG Root X1" --reuse-key`.
    let (dir, rendered) = example_with_params("preferred_chain = ISRG Root X1\nreuse_key = True\n");
    let loaded = load(&rendered.text, dir.path())
        .unwrap_or_else(|errors| panic!("{errors}\n{}", rendered.text));
    let cert = loaded
        .inventory
        .certificate("example.com")
        .expect("imported");
    assert_eq!(cert.preferred_chain.as_deref(), Some("ISRG Root X1"));
    assert!(cert.reuse_key);
}
