//! `reuse_key` and `key_group`: the top-level defaults, each certificate's own, and an
//! unknown group reported at its file, line and key with what to do about it.

use std::path::Path;

use certkeeper_config::{Environment, Loaded, Severity, load_str};
use certkeeper_core::KeyGroup;

const PATH: &str = "/etc/certkeeper/certkeeper.toml";

fn environment() -> Environment {
    Environment::empty()
        .with_group("ssl-cert", 103)
        .with_group("postgres", 114)
}

fn load_ok(text: &str) -> Loaded {
    load_str(text, Path::new(PATH), &environment()).unwrap_or_else(|errors| panic!("{errors}"))
}

fn keys_of(loaded: &Loaded, name: &str) -> (bool, Option<KeyGroup>) {
    let spec = loaded.inventory.certificate(name).expect("configured");
    (spec.reuse_key, spec.key_group.clone())
}

fn group(name: &str, gid: u32) -> Option<KeyGroup> {
    Some(KeyGroup {
        name: name.to_owned(),
        gid,
    })
}

const CA: &str = r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"
"#;

#[test]
fn a_new_private_key_readable_by_certkeeper_only_by_default() {
    let loaded = load_ok(&format!(
        "{CA}\n[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n"
    ));
    assert_eq!(keys_of(&loaded, "www"), (false, None));
}

#[test]
fn certificates_inherit_the_top_level_settings_and_override_them() {
    let loaded = load_ok(&format!(
        r#"
reuse_key = true
key_group = "ssl-cert"
{CA}
[[certificate]]
name = "inherits"
domains = ["inherits.example.com"]

[[certificate]]
name = "own"
domains = ["own.example.com"]
reuse_key = false
key_group = "postgres"
"#
    ));
    assert!(loaded.warnings.is_empty(), "{:?}", loaded.warnings);
    assert_eq!(keys_of(&loaded, "inherits"), (true, group("ssl-cert", 103)));
    assert_eq!(keys_of(&loaded, "own"), (false, group("postgres", 114)));
}

#[test]
fn an_unknown_group_or_a_wrong_type_is_reported_at_its_file_line_and_key() {
    let text = format!(
        r#"key_group = "www-data"
{CA}
[[certificate]]
name = "www"
domains = ["www.example.com"]
reuse_key = "yes"
key_group = ""
"#
    );
    let errors =
        load_str(&text, Path::new(PATH), &environment()).expect_err("an unknown group is refused");
    let found: Vec<(usize, &str, &str)> = errors
        .errors
        .iter()
        .map(|d| {
            assert_eq!(d.severity, Severity::Error);
            assert_eq!(d.file, Path::new(PATH));
            (d.line, d.key.as_str(), d.message.as_str())
        })
        .collect();
    assert_eq!(found.len(), 3, "{found:#?}");
    assert_eq!(
        found[0],
        (
            1,
            "key_group",
            "unknown group \"www-data\"; create it (groupadd --system www-data) and add the users that read the keys to it, or set key_group to an existing group (getent group lists them)"
        )
    );
    assert_eq!(found[1].0, 10);
    assert_eq!(found[1].1, "certificate[0].reuse_key");
    assert!(found[1].2.contains("boolean"), "{}", found[1].2);
    assert_eq!(
        found[2],
        (
            11,
            "certificate[0].key_group",
            "must not be empty; leave key_group out to keep private keys readable by certkeeper only"
        )
    );
}

#[test]
fn groups_are_looked_up_in_the_system_database_by_default() {
    let text = format!(
        "key_group = \"root\"\n{CA}\n[[certificate]]\nname = \"www\"\ndomains = [\"www.example.com\"]\n"
    );
    let loaded = load_str(&text, Path::new(PATH), &Environment::from_process())
        .unwrap_or_else(|errors| panic!("{errors}"));
    assert_eq!(keys_of(&loaded, "www"), (false, group("root", 0)));
    let unknown = text.replace("\"root\"", "\"certkeeper-no-such-group\"");
    let errors =
        load_str(&unknown, Path::new(PATH), &Environment::from_process()).expect_err("unknown");
    assert!(
        errors
            .to_string()
            .contains("unknown group \"certkeeper-no-such-group\""),
        "{errors}"
    );
}
