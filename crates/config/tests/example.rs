//! The example configuration shipped in `config/certkeeper.toml` loads, means what its
//! comments say, and documents every key of the contract.

use std::path::Path;
use std::time::Duration;

use certkeeper_config::{Environment, load};
use certkeeper_core::{DomainName, KeyType, LifecycleAction};

const EXAMPLE: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../config/certkeeper.toml");

/// The key the example's `eab_hmac_key_env` points at: base64url, unpadded, as
/// CertCentral shows it.
const HMAC_KEY: &str = "dGhpcy1pcy1hLXRlc3QtaG1hYy1rZXktb2YtMzItYnl0";

#[test]
fn example_config_is_valid_and_means_what_it_says() {
    let env = Environment::empty().with_var("CERTKEEPER_DIGICERT_HMAC", HMAC_KEY);
    let loaded = load(Path::new(EXAMPLE), &env).unwrap_or_else(|errors| panic!("{errors}"));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    let inventory = loaded.inventory;

    assert_eq!(inventory.state_dir, Path::new("/var/lib/certkeeper"));
    assert_eq!(
        inventory.http01.listen,
        vec!["[::]:80".parse().expect("socket address")]
    );

    assert_eq!(inventory.cas.len(), 1);
    let digicert = &inventory.cas[0];
    assert_eq!(digicert.name.as_str(), "digicert");
    assert_eq!(
        digicert.directory,
        "https://one.digicert.com/mpki/api/v1/acme/v2/directory"
    );
    let eab = digicert.eab.as_ref().expect("DigiCert uses EAB");
    assert_eq!(eab.kid, "a1B2c3D4e5F6g7H8");
    assert_eq!(eab.hmac_key.expose(), b"this-is-a-test-hmac-key-of-32-byt");
    assert!(digicert.terms_of_service_agreed);
    assert_eq!(digicert.contact, vec!["mailto:pki-team@example.com"]);
    assert_eq!(digicert.root_ca_file, None);

    assert_eq!(inventory.certificates.len(), 2);
    let www = inventory.certificate("www").expect("www lineage");
    assert_eq!(www.ca.as_str(), "digicert");
    let domains: Vec<&str> = www.domains.iter().map(DomainName::as_str).collect();
    assert_eq!(domains, ["www.example.com", "example.com"]);
    assert_eq!(www.key_type, KeyType::Rsa2048);
    assert_eq!(www.order_id.as_deref(), Some("123456789"));
    assert_eq!(www.action, LifecycleAction::Renew);
    assert_eq!(www.renew_before, Some(Duration::from_secs(30 * 86_400)));

    let mail = inventory.certificate("mail").expect("mail lineage");
    assert_eq!(mail.ca.as_str(), "digicert", "the only CA is the default");
    assert_eq!(mail.domains.len(), 3);
    assert_eq!(mail.key_type, KeyType::EcdsaP256);
    assert_eq!(mail.order_id, None);
    assert_eq!(mail.action, LifecycleAction::Auto);
    assert_eq!(mail.renew_before, None);
}

#[test]
fn example_config_fails_loudly_without_its_secret() {
    let errors = load(Path::new(EXAMPLE), &Environment::empty()).expect_err("no HMAC key");
    assert_eq!(errors.errors.len(), 1, "{errors}");
    assert_eq!(errors.errors[0].key, "ca[0].eab_hmac_key_env");
    assert!(
        errors.errors[0]
            .message
            .contains("CERTKEEPER_DIGICERT_HMAC is not set"),
        "{errors}"
    );
}

#[test]
fn example_config_documents_every_key() {
    let text = std::fs::read_to_string(EXAMPLE).expect("example is readable");
    let keys = [
        "state_dir",
        "[http01]",
        "listen",
        "[[ca]]",
        "name",
        "directory",
        "eab_kid",
        "eab_hmac_key_file",
        "eab_hmac_key_env",
        "eab_hmac_key_credential",
        "eab_hmac_key",
        "terms_of_service_agreed",
        "contact",
        "root_ca_file",
        "[[certificate]]",
        "ca",
        "domains",
        "key_type",
        "order_id",
        "action",
        "renew_before",
    ];
    for key in keys {
        let written = if key.starts_with('[') {
            key.to_owned()
        } else {
            format!("{key} = ")
        };
        assert!(
            text.contains(&written),
            "{key} is not documented in {EXAMPLE}"
        );
    }
    for key_type in KeyType::ALL {
        assert!(
            text.contains(key_type.as_str()),
            "{key_type} is not documented"
        );
    }
    for action in ["auto", "renew", "reissue", "duplicate"] {
        assert!(text.contains(action), "action {action} is not documented");
    }
}
