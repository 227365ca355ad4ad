//! Secrets stay secret: a full lifecycle (register, issue, renew, daemon with metrics,
//! status, revoke) at the most verbose log level, then a search of everything certkeeper
//! printed for the EAB HMAC key, the account key and every certificate private key; and the
//! modes of every secret file.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use rustix::process::Signal;
use support::{Cert, PebbleOptions, Setup, mode};

/// Every file under `dir` (not following symlinks).
fn files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut found = Vec::new();
    for entry in fs::read_dir(dir).into_iter().flatten() {
        let entry = entry.unwrap();
        let kind = entry.file_type().unwrap();
        if kind.is_dir() {
            found.extend(files(&entry.path()));
        } else if kind.is_file() {
            found.push(entry.path());
        }
    }
    found
}

/// Run `certkeeper ARGS` at trace level, collecting everything it prints.
fn run(setup: &Setup, printed: &mut String, args: &[&str]) -> std::process::Output {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_certkeeper"))
        .arg("--config")
        .arg(&setup.config)
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "trace")
        .output()
        .unwrap();
    printed.push_str(&String::from_utf8_lossy(&output.stdout));
    printed.push_str(&String::from_utf8_lossy(&output.stderr));
    output
}

/// Fragments of `pem`'s base64 body long enough to be unmistakable.
fn pem_fragments(pem: &str) -> Vec<String> {
    pem.lines()
        .filter(|line| !line.starts_with("-----") && line.len() >= 40)
        .map(|line| line[..40].to_owned())
        .collect()
}

#[test]
fn no_secret_reaches_a_log_an_output_or_a_readable_file() {
    let setup = Setup::new(PebbleOptions::default());
    let admin = format!("127.0.0.1:{}", support::pebble::free_port());
    setup.write_config_with(
        &format!("[admin]\nlisten = \"{admin}\"\n"),
        &[
            Cert::new("www", &["www.example.com", "example.com"]),
            Cert {
                key_type: "rsa2048",
                ..Cert::new("mail", &["mail.example.com"])
            },
        ],
    );
    let mut printed = String::new();
    assert!(run(&setup, &mut printed, &["renew"]).status.success());
    assert!(
        run(&setup, &mut printed, &["renew", "--force", "www"])
            .status
            .success()
    );
    run(&setup, &mut printed, &["status"]);
    run(&setup, &mut printed, &["status", "--json"]);
    run(&setup, &mut printed, &["check"]);

    let mut daemon = setup.spawn_daemon(&[("RUST_LOG", "trace")]);
    daemon.wait_for_log("the daemon", Duration::from_secs(30), |log| {
        log.contains("certkeeper is running")
    });
    std::thread::sleep(Duration::from_millis(500));
    printed.push_str(&support::http_get(&admin, "/metrics").1);
    printed.push_str(&support::http_get(&admin, "/healthz").1);
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    printed.push_str(&daemon.log_text());
    assert!(
        run(
            &setup,
            &mut printed,
            &["revoke", "mail", "--reason", "superseded"]
        )
        .status
        .success()
    );
    assert!(printed.contains("TRACE"), "the most verbose level was on");

    // What must never appear.
    let hmac_text = fs::read_to_string(&setup.hmac_file)
        .unwrap()
        .trim()
        .to_owned();
    let hmac_bytes = base64::prelude::BASE64_URL_SAFE_NO_PAD
        .decode(&hmac_text)
        .unwrap();
    let mut secrets = vec![
        hmac_text.clone(),
        base64::prelude::BASE64_STANDARD.encode(&hmac_bytes),
        String::from_utf8_lossy(&hmac_bytes).into_owned(),
    ];
    let accounts = files(&setup.state_dir.join("accounts"));
    assert_eq!(accounts.len(), 1);
    let account: serde_json::Value =
        serde_json::from_slice(&fs::read(&accounts[0]).unwrap()).unwrap();
    let account_key = account["key_pkcs8"].as_str().unwrap().to_owned();
    secrets.push(account_key[..40].to_owned());
    let keys: Vec<_> = files(&setup.state_dir.join("archive"))
        .into_iter()
        .filter(|p| p.file_name().unwrap() == "privkey.pem")
        .collect();
    assert_eq!(keys.len(), 3, "two issued and one renewed: {keys:?}");
    for key in &keys {
        secrets.extend(pem_fragments(&fs::read_to_string(key).unwrap()));
    }
    for secret in &secrets {
        assert!(
            !printed.contains(secret.as_str()),
            "a secret leaked into the output: {secret:.8}…"
        );
    }

    // Secret files are private; the state directory is closed to others.
    for key in &keys {
        assert_eq!(mode(key), 0o600, "{}", key.display());
    }
    assert_eq!(mode(&accounts[0]), 0o600);
    assert_eq!(mode(&setup.state_dir.join("accounts")), 0o700);
    assert_eq!(
        mode(&setup.state_dir) & 0o007,
        0,
        "state dir mode {:o}",
        mode(&setup.state_dir)
    );
    eprintln!(
        "REPORT secrets: {} bytes of output searched for {} secret fragments",
        printed.len(),
        secrets.len()
    );
}
