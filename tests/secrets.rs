//! Secrets stay secret: a full lifecycle (register, issue, renew, daemon with metrics,
//! status, revoke) at the most verbose log level, then a search of everything certkeeper
//! printed for the EAB HMAC key, the account key, every certificate private key, an SMTP
//! password (a login that a real aiosmtpd accepts, and one it refuses) and a webhook's bearer
//! token (sent to a receiver that answers 500); and the modes of every secret file.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;
// The notify crate's real servers: aiosmtpd and a webhook receiver.
#[path = "../crates/notify/tests/support/mod.rs"]
mod notify_support;

use std::fs;
use std::path::Path;
use std::time::Duration;

use base64::Engine;
use notify_support::{Behaviour, Receiver, SmtpServer};
use rustix::process::Signal;
use support::{Cert, PebbleOptions, Setup, mode};

const SMTP_USER: &str = "certkeeper-mailer";
const SMTP_PASSWORD: &str = "smtp-Pa55word-that-must-never-show";
const WRONG_SMTP_PASSWORD: &str = "not-the-smtp-password-either-1234";
const WEBHOOK_TOKEN: &str = "webhook-bearer-token-that-must-never-show";

/// `[[notify]]` targets whose secrets come from files: an e-mail login the server accepts,
/// one it refuses, and a webhook with a bearer token.
fn notify_targets(setup: &Setup, smtp: &SmtpServer, receiver: &Receiver) -> String {
    let secret_file = |name: &str, text: &str| {
        let path = setup.dir.path().join(name);
        fs::write(&path, text).unwrap();
        fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
        path.display().to_string()
    };
    let password = secret_file("smtp-password", SMTP_PASSWORD);
    let wrong = secret_file("smtp-wrong-password", WRONG_SMTP_PASSWORD);
    let token = secret_file("webhook-token", WEBHOOK_TOKEN);
    let mut text = String::new();
    for (name, password_file) in [("mail", &password), ("mail-refused", &wrong)] {
        text.push_str(&format!(
            "\n[[notify]]\nname = \"{name}\"\ntype = \"email\"\nserver = \"127.0.0.1:{}\"\n\
             tls = \"none\"\nusername = \"{SMTP_USER}\"\npassword_file = \"{password_file}\"\n\
             from = \"certkeeper@example.com\"\nto = [\"ops@example.com\"]\n",
            smtp.port
        ));
    }
    text.push_str(&format!(
        "\n[[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\ntoken_file = \"{token}\"\n",
        receiver.url("/hook")
    ));
    text
}

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
    let smtp = SmtpServer::start("none", Some((SMTP_USER, SMTP_PASSWORD)));
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let receiver = runtime.block_on(Receiver::start(Behaviour::Status(500)));
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
    let mut config = fs::read_to_string(&setup.config).unwrap();
    config.push_str(&notify_targets(&setup, &smtp, &receiver));
    fs::write(&setup.config, config).unwrap();
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
    // Each secret is used: the accepted login delivers, the refused one and the webhook fail.
    let tested = run(&setup, &mut printed, &["notify", "test"]);
    assert_eq!(tested.status.code(), Some(1), "two targets fail");
    let received = smtp.received();
    assert_eq!(received.len(), 1, "the accepted login delivered once");
    assert_eq!(received[0].login.as_deref(), Some(SMTP_USER));
    let hits = receiver.hits();
    assert_eq!(hits.len(), 1);
    assert_eq!(
        hits[0].authorization.as_deref(),
        Some(format!("Bearer {WEBHOOK_TOKEN}").as_str())
    );

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
        WEBHOOK_TOKEN.to_owned(),
    ];
    for password in [SMTP_PASSWORD, WRONG_SMTP_PASSWORD] {
        // As typed, and as SMTP AUTH PLAIN and LOGIN carry it.
        secrets.push(password.to_owned());
        secrets.push(base64::prelude::BASE64_STANDARD.encode(format!("\0{SMTP_USER}\0{password}")));
        secrets.push(base64::prelude::BASE64_STANDARD.encode(password));
    }
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
