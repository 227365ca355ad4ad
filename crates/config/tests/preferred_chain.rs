//! `preferred_chain`: a certificate's own, else the top-level default; an empty name is an
//! error naming the key.

use std::path::Path;

use certkeeper_config::{Environment, Loaded, Severity, load_str};

const PATH: &str = "/etc/certkeeper/certkeeper.toml";

fn load_ok(text: &str) -> Loaded {
    load_str(text, Path::new(PATH), &Environment::empty())
        .unwrap_or_else(|errors| panic!("{errors}"))
}

fn chain_of<'l>(loaded: &'l Loaded, name: &str) -> Option<&'l str> {
    loaded
        .inventory
        .certificate(name)
        .expect("configured")
        .preferred_chain
        .as_deref()
}

const CA: &str = r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"
"#;

#[test]
fn a_certificate_uses_its_own_preferred_chain_else_the_top_level_one() {
    let loaded = load_ok(&format!(
        r#"preferred_chain = "ISRG Root X1"
{CA}
[[certificate]]
name = "inherits"
domains = ["inherits.example.com"]

[[certificate]]
name = "overrides"
domains = ["overrides.example.com"]
preferred_chain = "ISRG Root X2"
"#
    ));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(chain_of(&loaded, "inherits"), Some("ISRG Root X1"));
    assert_eq!(chain_of(&loaded, "overrides"), Some("ISRG Root X2"));

    let loaded = load_ok(&format!(
        "{CA}\n[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n"
    ));
    assert_eq!(chain_of(&loaded, "www"), None, "the CA's default chain");
}

#[test]
fn an_empty_preferred_chain_is_an_error_naming_the_key() {
    let text = format!(
        r#"preferred_chain = " "
{CA}
[[certificate]]
name = "www"
domains = ["www.example.com"]
preferred_chain = ""
"#
    );
    let errors = load_str(&text, Path::new(PATH), &Environment::empty())
        .expect_err("empty names are refused");
    let found: Vec<(usize, &str, &str)> = errors
        .errors
        .iter()
        .map(|d| {
            assert_eq!(d.severity, Severity::Error);
            (d.line, d.key.as_str(), d.message.as_str())
        })
        .collect();
    let message = "must not be empty; leave preferred_chain out to use the CA's default chain";
    assert_eq!(
        found,
        [
            (1, "preferred_chain", message),
            (10, "certificate[0].preferred_chain", message)
        ]
    );
}
