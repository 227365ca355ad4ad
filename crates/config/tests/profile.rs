//! ACME profiles: a certificate's own `profile`, its CA's default, and the rules a profile
//! name follows.

use std::path::Path;

use certkeeper_config::{Environment, Loaded, Severity, load_str};

const PATH: &str = "/etc/certkeeper/certkeeper.toml";

fn load_ok(text: &str) -> Loaded {
    load_str(text, Path::new(PATH), &Environment::empty())
        .unwrap_or_else(|errors| panic!("{errors}"))
}

fn profile_of<'l>(loaded: &'l Loaded, name: &str) -> Option<&'l str> {
    loaded
        .inventory
        .certificate(name)
        .expect("configured")
        .profile
        .as_deref()
}

const PROFILES: &str = r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"
profile = "tlsserver"

[[ca]]
name = "digicert"
directory = "https://one.digicert.com/mpki/api/v1/acme/v2/directory"

[[certificate]]
name = "inherits"
ca = "le"
domains = ["inherits.example.com"]

[[certificate]]
name = "overrides"
ca = "le"
domains = ["overrides.example.com"]
profile = "shortlived"

[[certificate]]
name = "own"
ca = "digicert"
domains = ["own.example.com"]
profile = "Short-Lived_v2.0"

[[certificate]]
name = "none"
ca = "digicert"
domains = ["none.example.com"]
"#;

#[test]
fn a_certificate_uses_its_own_profile_else_its_cas_default() {
    let loaded = load_ok(PROFILES);
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(
        profile_of(&loaded, "inherits"),
        Some("tlsserver"),
        "the CA's default is inherited"
    );
    assert_eq!(
        profile_of(&loaded, "overrides"),
        Some("shortlived"),
        "the certificate's own profile overrides the CA's default"
    );
    assert_eq!(
        profile_of(&loaded, "own"),
        Some("Short-Lived_v2.0"),
        "a profile of a CA without a default, kept exactly as written"
    );
    assert_eq!(
        profile_of(&loaded, "none"),
        None,
        "no profile anywhere: the CA chooses"
    );
}

#[test]
fn the_only_ca_lends_its_default_to_certificates_that_do_not_name_it() {
    let loaded = load_ok(
        r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"
profile = "shortlived"

[[certificate]]
name = "www"
domains = ["www.example.com"]
"#,
    );
    assert_eq!(profile_of(&loaded, "www"), Some("shortlived"));
}

#[test]
fn a_profile_of_64_characters_is_accepted() {
    let longest = "p".repeat(64);
    let loaded = load_ok(&format!(
        r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"

[[certificate]]
name = "www"
domains = ["www.example.com"]
profile = "{longest}"
"#
    ));
    assert_eq!(profile_of(&loaded, "www"), Some(longest.as_str()));
}

#[test]
fn an_invalid_profile_is_reported_at_its_file_line_and_key() {
    let text = r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"
profile = ""

[[certificate]]
name = "www"
domains = ["www.example.com"]
profile = "short lived"
"#;
    let errors = load_str(text, Path::new(PATH), &Environment::empty())
        .expect_err("invalid profiles are refused");
    let found: Vec<(&Path, usize, usize, &str, &str)> = errors
        .errors
        .iter()
        .map(|d| {
            assert_eq!(d.severity, Severity::Error);
            (
                d.file.as_path(),
                d.line,
                d.column,
                d.key.as_str(),
                d.message.as_str(),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            (
                Path::new(PATH),
                5,
                11,
                "ca[0].profile",
                "must not be empty; leave profile out to use the CA's default profile"
            ),
            (
                Path::new(PATH),
                10,
                11,
                "certificate[0].profile",
                "invalid profile \"short lived\": may only contain ASCII letters, digits, '.', '_' and '-' (found ' ')"
            ),
        ]
    );
}
