//! Loading: the file itself, defaults, path resolution and accepted value forms.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use certkeeper_config::{DEFAULT_PATH, Environment, Loaded, load, load_str};
use certkeeper_core::challenge::ChallengeSpec;
use certkeeper_core::inventory::DEFAULT_MAX_CONCURRENT;
use certkeeper_core::schedule::SchedulePolicy;
use certkeeper_core::{DomainName, KeyType, LifecycleAction};

fn load_ok(text: &str, path: &str) -> Loaded {
    load_str(text, Path::new(path), &Environment::empty())
        .unwrap_or_else(|errors| panic!("{errors}"))
}

const MINIMAL: &str = r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"

[[certificate]]
name = "www"
domains = ["WWW.Example.com", "Example.COM"]
"#;

#[test]
fn defaults_fill_everything_optional() {
    let loaded = load_ok(MINIMAL, "/etc/certkeeper/certkeeper.toml");
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let inventory = loaded.inventory;
    assert_eq!(inventory.state_dir, Path::new("/var/lib/certkeeper"));
    let default_listen: SocketAddr = "[::]:80".parse().expect("address");
    assert_eq!(inventory.http01.listen, vec![default_listen]);
    let ca = &inventory.cas[0];
    assert!(ca.eab.is_none());
    assert!(!ca.terms_of_service_agreed);
    assert!(ca.contact.is_empty());
    let cert = &inventory.certificates[0];
    assert_eq!(
        cert.ca, ca.name,
        "the only CA is used when `ca` is left out"
    );
    let domains: Vec<&str> = cert.domains.iter().map(DomainName::as_str).collect();
    assert_eq!(domains, ["www.example.com", "example.com"]);
    assert_eq!(cert.key_type, KeyType::EcdsaP256);
    assert_eq!(cert.action, LifecycleAction::Auto);
    assert_eq!(cert.order_id, None);
    assert_eq!(cert.renew_before, None);
    assert_eq!(*cert.schedule, SchedulePolicy::default());
    assert_eq!(ca.max_concurrent, None);
    assert_eq!(inventory.max_concurrent, DEFAULT_MAX_CONCURRENT);
    assert_eq!(inventory.admin, None);
    assert_eq!(
        inventory.challenge(&cert.name),
        &ChallengeSpec::EMBEDDED_HTTP01,
        "the embedded HTTP-01 responder answers by default"
    );
    assert!(inventory.challenges.dns_providers.is_empty());
    assert_eq!(
        inventory.watch_paths,
        [Path::new("/etc/certkeeper/certkeeper.toml")]
    );
}

#[test]
fn relative_paths_resolve_against_the_config_directory() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("root.pem");
    std::fs::write(&root, "-----BEGIN CERTIFICATE-----\n").expect("write root");
    let text = r#"
state_dir = "state"

[[ca]]
name = "private"
directory = "https://ca.internal.example/directory"
root_ca_file = "root.pem"
"#;
    let config = dir.path().join("certkeeper.toml");
    let loaded = load_ok(text, config.to_str().expect("utf-8 path"));
    assert_eq!(loaded.inventory.state_dir, dir.path().join("state"));
    assert_eq!(loaded.inventory.cas[0].root_ca_file, Some(root));

    let absolute = load_ok(
        &format!("state_dir = \"/srv/certkeeper\"\n{MINIMAL}"),
        "conf/certkeeper.toml",
    );
    assert_eq!(absolute.inventory.state_dir, Path::new("/srv/certkeeper"));
    let relative = load_ok(
        &format!("state_dir = \"state\"\n{MINIMAL}"),
        "conf/certkeeper.toml",
    );
    assert_eq!(relative.inventory.state_dir, PathBuf::from("conf/state"));
}

#[test]
fn listen_order_id_and_durations_in_their_accepted_forms() {
    let text = MINIMAL.replace(
        "[[ca]]",
        "[http01]\nlisten = [\"0.0.0.0:8080\", \"[::1]:8080\"]\n\n[[ca]]",
    ) + "order_id = 0x10\nrenew_before = \"1d12h\"\naction = \"Reissue\"\nkey_type = \"rsa4096\"\n";
    let loaded = load_ok(&text, "c.toml");
    let listen: Vec<String> = loaded
        .inventory
        .http01
        .listen
        .iter()
        .map(ToString::to_string)
        .collect();
    assert_eq!(listen, ["0.0.0.0:8080", "[::1]:8080"]);
    let cert = &loaded.inventory.certificates[0];
    assert_eq!(cert.order_id.as_deref(), Some("16"));
    assert_eq!(
        cert.renew_before,
        Some(std::time::Duration::from_secs(36 * 3600))
    );
    assert_eq!(cert.action, LifecycleAction::Reissue);
    assert_eq!(cert.key_type, KeyType::Rsa4096);

    let text = MINIMAL.to_owned() + "order_id = \"ABC-123_x\"\n";
    let loaded = load_ok(&text, "c.toml");
    assert_eq!(
        loaded.inventory.certificates[0].order_id.as_deref(),
        Some("ABC-123_x")
    );
}

#[test]
fn no_certificates_is_accepted_with_a_warning() {
    let loaded = load_ok(
        "[[ca]]\nname = \"le\"\ndirectory = \"https://acme.example/dir\"\n",
        "c.toml",
    );
    assert!(loaded.inventory.certificates.is_empty());
    let warnings: Vec<String> = loaded.warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        warnings,
        [
            "c.toml:1:1: certificate: no [[certificate]] is configured, so certkeeper has nothing to keep issued"
        ]
    );
}

#[test]
fn an_unreadable_config_file_is_one_diagnostic_naming_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let missing = dir.path().join("certkeeper.toml");
    let errors = load(&missing, &Environment::empty()).expect_err("no such file");
    assert_eq!(errors.errors.len(), 1);
    assert_eq!(
        errors.to_string(),
        format!(
            "{}: cannot read the configuration file: No such file or directory (os error 2)",
            missing.display()
        )
    );
    assert_eq!(DEFAULT_PATH, "/etc/certkeeper/certkeeper.toml");
}

#[test]
fn config_errors_is_a_std_error() {
    fn takes_error(_: &dyn std::error::Error) {}
    let errors = load_str("x = ", Path::new("c.toml"), &Environment::empty()).expect_err("syntax");
    takes_error(&errors);
    assert_eq!(errors.errors[0].key, "");
    assert_eq!((errors.errors[0].line, errors.errors[0].column), (1, 5));
}
