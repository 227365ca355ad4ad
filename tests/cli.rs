//! The command line without a CA: `check` on the shipped example, exit codes and messages for
//! invalid configurations, `status` before anything was issued.

use std::fs;
use std::path::Path;
use std::process::{Command, Output};

fn certkeeper(config: &Path, args: &[&str], envs: &[(&str, &str)]) -> Output {
    let output = Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .arg("--config")
        .arg(config)
        .args(args)
        .env_remove("CERTKEEPER_CONFIG")
        .env_remove("JOURNAL_STREAM")
        .envs(envs.iter().copied())
        .output()
        .expect("run certkeeper");
    eprintln!(
        "--- stdout\n{}--- stderr\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

fn example() -> &'static Path {
    Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../config/certkeeper.toml"
    ))
}

#[test]
fn check_accepts_the_shipped_example() {
    let output = certkeeper(
        example(),
        &["check"],
        &[(
            "CERTKEEPER_DIGICERT_HMAC",
            "c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw",
        )],
    );
    assert_eq!(output.status.code(), Some(0));
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains(": OK: 1 CA, 2 certificates"), "{stdout}");
    assert!(stdout.contains("certificate www: www.example.com example.com [rsa2048] via digicert, order 123456789, action renew"), "{stdout}");
    assert!(
        !stdout.contains("c2VjcmV0"),
        "the HMAC key is never printed"
    );
}

#[test]
fn config_path_comes_from_the_environment_too() {
    let output = Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .arg("check")
        .env("CERTKEEPER_CONFIG", example())
        .env(
            "CERTKEEPER_DIGICERT_HMAC",
            "c2VjcmV0LWhtYWMta2V5LWZvci10ZXN0cw",
        )
        .output()
        .expect("run certkeeper");
    assert_eq!(output.status.code(), Some(0));
}

#[test]
fn invalid_config_exits_78_naming_file_line_and_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("bad.toml");
    fs::write(
        &config,
        r#"state_dir = "state"

[[ca]]
name = "pebble"
directory = "https://localhost:14000/dir"
terms_of_service_agreed = true

[[certificate]]
name = "www"
domains = ["www.example.com", "www.*.example.com"]
key_typ = "rsa2048"
"#,
    )
    .expect("write config");
    for command in [&["check"][..], &["renew"], &["status"]] {
        let output = certkeeper(&config, command, &[]);
        assert_eq!(output.status.code(), Some(78), "{command:?}");
        let stderr = String::from_utf8_lossy(&output.stderr);
        let file = config.display().to_string();
        assert!(
            stderr.contains(&format!("{file}:10:31: certificate[0].domains[1]: ")),
            "{stderr}"
        );
        assert!(
            stderr.contains(&format!("{file}:11:1: certificate[0].key_typ: ")),
            "{stderr}"
        );
        assert!(
            stderr.contains("key_type"),
            "suggests the right key: {stderr}"
        );
        assert!(
            stderr.contains("invalid configuration (2 problems)"),
            "{stderr}"
        );
        assert!(
            !dir.path().join("state").exists(),
            "nothing written for an invalid config"
        );
    }
}

#[test]
fn missing_config_file_is_named() {
    let output = certkeeper(Path::new("/nonexistent/certkeeper.toml"), &["check"], &[]);
    assert_eq!(output.status.code(), Some(78));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("/nonexistent/certkeeper.toml"), "{stderr}");
}

#[test]
fn status_before_any_issuance_shows_missing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("certkeeper.toml");
    fs::write(
        &config,
        r#"state_dir = "state"
[[ca]]
name = "pebble"
directory = "https://localhost:14000/dir"
[[certificate]]
name = "www"
domains = ["www.example.com"]
"#,
    )
    .expect("write config");
    let output = certkeeper(&config, &["status", "--json"], &[]);
    // A missing certificate is not a healthy state: monitoring sees exit code 1.
    assert_eq!(output.status.code(), Some(1));
    let rows: serde_json::Value = serde_json::from_slice(&output.stdout).expect("json");
    assert_eq!(rows[0]["name"], "www");
    assert_eq!(rows[0]["state"], "missing");
    assert_eq!(rows[0]["next_action"], "issue");
    assert_eq!(rows[0]["urgent"], true);
    assert_eq!(rows[0]["domains"][0], "www.example.com");
}

#[test]
fn a_cluster_is_checked_offline_and_renew_names_an_unreachable_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("fleet.key");
    // 32 bytes of 0x2a, base64.
    fs::write(&key, "KioqKioqKioqKioqKioqKioqKioqKioqKioqKioqKio=\n").expect("write");
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .expect("a free port")
        .port();
    let config = dir.path().join("certkeeper.toml");
    fs::write(
        &config,
        format!(
            "state_dir = \"{}\"\n\n[[ca]]\nname = \"le\"\ndirectory = \"https://ca.example/dir\"\n\n\
             [cluster]\npostgres = \"postgres://certkeeper@127.0.0.1:{port}/certkeeper\"\ntls = \"none\"\nfleet_key_file = \"{}\"\n",
            dir.path().join("state").display(),
            key.display()
        ),
    )
    .expect("write");
    let output = certkeeper(&config, &["check"], &[]);
    assert_eq!(
        output.status.code(),
        Some(0),
        "check passes without the database: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let output = certkeeper(&config, &["renew"], &[]);
    assert_eq!(output.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("127.0.0.1:{port}")), "{stderr}");
}
