//! `[cluster]`: a fleet's database, its password and the fleet key from the places secrets
//! come from, and every mistake named with its line and key, never quoting a secret.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::prelude::BASE64_STANDARD;
use certkeeper_config::{ConfigErrors, Environment, Loaded, load_str};
use certkeeper_core::cluster::{ClusterTls, DEFAULT_LEASE, DEFAULT_SYNC_INTERVAL};

const PATH: &str = "/etc/certkeeper/certkeeper.toml";
const PASSWORD: &str = "db-Pa55word-never-shown";

/// A base64 fleet key of 32 bytes of `byte`.
fn fleet_key(byte: u8) -> String {
    BASE64_STANDARD.encode([byte; 32])
}

fn environment() -> Environment {
    let mut env = Environment::empty();
    env.vars
        .insert("CERTKEEPER_FLEET_KEY".to_owned(), fleet_key(9));
    env.vars
        .insert("CERTKEEPER_DB_PASSWORD".to_owned(), format!("{PASSWORD}\n"));
    env
}

fn load(cluster: &str) -> Result<Loaded, ConfigErrors> {
    let text = format!(
        r#"
[[ca]]
name = "le"
directory = "https://acme-v02.api.letsencrypt.org/directory"

[[certificate]]
name = "www"
domains = ["www.example.com"]

[cluster]
{cluster}"#
    );
    load_str(&text, Path::new(PATH), &environment())
}

/// The errors of `cluster`, as (line in the whole file, key, message).
fn errors(cluster: &str) -> Vec<(usize, String, String)> {
    let errors = load(cluster).expect_err("refused");
    errors
        .errors
        .iter()
        .map(|d| (d.line, d.key.clone(), d.message.clone()))
        .collect()
}

/// The first line of `[cluster]`'s body in the whole file.
const FIRST: usize = 11;

#[test]
fn a_cluster_loads_with_its_secrets_and_defaults() {
    let loaded = load(
        r#"postgres = "postgres://certkeeper@db.example.com:5432/certkeeper"
password_env = "CERTKEEPER_DB_PASSWORD"
fleet_key_env = "CERTKEEPER_FLEET_KEY"
"#,
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    let cluster = loaded.inventory.cluster.expect("[cluster]");
    assert_eq!(
        cluster.postgres.as_str(),
        "postgres://certkeeper@db.example.com:5432/certkeeper"
    );
    assert_eq!(
        cluster
            .password
            .as_ref()
            .map(certkeeper_core::Secret::expose),
        Some(PASSWORD.as_bytes())
    );
    assert_eq!(cluster.fleet_key.expose(), &[9u8; 32]);
    assert_eq!(cluster.tls, ClusterTls::Verify);
    assert_eq!(cluster.node, None, "the host name");
    assert_eq!(cluster.lease, DEFAULT_LEASE);
    assert_eq!(cluster.sync_interval, DEFAULT_SYNC_INTERVAL);

    let loaded = load(
        r#"postgres = "postgres://certkeeper@127.0.0.1:5433/certkeeper"
tls = "none"
node = "web-2"
lease = "30s"
sync_interval = "1m"
fleet_key_env = "CERTKEEPER_FLEET_KEY"
"#,
    )
    .unwrap_or_else(|errors| panic!("{errors}"));
    let cluster = loaded.inventory.cluster.expect("[cluster]");
    assert_eq!(cluster.tls, ClusterTls::None);
    assert_eq!(cluster.node.as_deref(), Some("web-2"));
    assert_eq!(cluster.lease, Duration::from_secs(30));
    assert_eq!(cluster.sync_interval, Duration::from_secs(60));
    assert!(cluster.password.is_none());
}

#[test]
fn without_cluster_a_node_is_on_its_own() {
    let text = "[[ca]]\nname = \"le\"\ndirectory = \"https://ca.example/dir\"\n";
    let loaded = load_str(text, Path::new(PATH), &environment()).expect("loads");
    assert!(loaded.inventory.cluster.is_none());
}

#[test]
fn mistakes_name_their_line_and_key_and_never_a_secret() {
    let found = errors(&format!(
        r#"postgres = "postgres://certkeeper:{PASSWORD}@db.example.com/certkeeper"
password = "{PASSWORD}"
lease = "2s"
node = "web 2"
"#
    ));
    let keys: Vec<(usize, &str)> = found
        .iter()
        .map(|(line, key, _)| (*line, key.as_str()))
        .collect();
    assert_eq!(
        keys,
        [
            // The missing fleet key is reported at the table's header.
            (FIRST - 1, "cluster.fleet_key_file"),
            (FIRST, "cluster.postgres"),
            (FIRST + 1, "cluster.password"),
            (FIRST + 2, "cluster.lease"),
            (FIRST + 3, "cluster.node"),
        ],
        "{found:#?}"
    );
    for (_, _, message) in &found {
        assert!(!message.contains(PASSWORD), "{message}");
    }
    for (index, says) in [
        (0, "openssl rand -base64 32"),
        (1, "cannot be written in the URL"),
        (2, "password_file"),
    ] {
        assert!(found[index].2.contains(says), "{}", found[index].2);
    }
}

#[test]
fn a_fleet_key_of_the_wrong_length_and_plain_tls_to_another_host_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let short = dir.path().join("fleet.key");
    std::fs::write(&short, BASE64_STANDARD.encode([1u8; 16])).expect("write");
    let found = errors(&format!(
        r#"postgres = "postgres://certkeeper@db.example.com/certkeeper"
tls = "none"
fleet_key_file = "{}"
"#,
        short.display()
    ));
    assert_eq!(found.len(), 2, "{found:#?}");
    for (index, line, key, says) in [
        (0, FIRST + 1, "cluster.tls", "on this host"),
        (1, FIRST + 2, "cluster.fleet_key_file", "is not 32 bytes"),
    ] {
        assert_eq!((found[index].0, found[index].1.as_str()), (line, key));
        assert!(found[index].2.contains(says), "{}", found[index].2);
    }
}
