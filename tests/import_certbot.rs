//! `certkeeper import-certbot` on a real certbot lineage: Debian's certbot obtains a
//! certificate from a real Pebble (with EAB, and a DigiCert-style `?action=renew&orderId=...`
//! server URL), certkeeper imports it, the placeholders are filled in the way the command
//! asks, and certkeeper then keeps the adopted certificate until it is due, and renews it from
//! the same CA when forced.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use support::{PebbleOptions, Setup, key_matches, sans, serial, stderr, stdout};

const CERTBOT: &str = "/usr/bin/certbot";

fn show(what: &str, output: &Output) {
    eprintln!(
        "$ {what}\n--- exit {:?}\n--- stdout\n{}--- stderr\n{}",
        output.status.code(),
        stdout(output),
        stderr(output)
    );
}

/// `certbot certonly --standalone` against the Pebble of `setup`, into `config_dir`.
fn certbot_certonly(setup: &Setup, config_dir: &Path, server: &str, domains: &[&str]) {
    assert!(
        Path::new(CERTBOT).exists(),
        "{CERTBOT} is missing: this test runs Debian's certbot; install it with `apt-get install -y certbot`"
    );
    let (kid, hmac) = setup.pebble.eab.clone().unwrap();
    let work = setup.dir.path().join("certbot-work");
    let logs = setup.dir.path().join("certbot-logs");
    let mut command = Command::new(CERTBOT);
    command
        .args([
            "certonly",
            "--standalone",
            "--non-interactive",
            "--agree-tos",
        ])
        .args(["-m", "ops@example.com", "--no-eff-email"])
        .args(["--server", server])
        .args(["--eab-kid", &kid, "--eab-hmac-key", &hmac])
        .args(["--key-type", "ecdsa", "--elliptic-curve", "secp384r1"])
        .args(["--http-01-port", &setup.pebble.http01_port.to_string()])
        .args(["--deploy-hook", &deploy_hook(setup)])
        .arg("--config-dir")
        .arg(config_dir)
        .arg("--work-dir")
        .arg(&work)
        .arg("--logs-dir")
        .arg(&logs)
        .args(["--cert-name", "shop"]);
    for domain in domains {
        command.args(["-d", domain]);
    }
    // certbot (python-requests) must trust Pebble's HTTPS listener.
    let output = command
        .env("REQUESTS_CA_BUNDLE", &setup.pebble.tls_ca_file)
        .output()
        .unwrap();
    show("certbot certonly ...", &output);
    assert!(
        output.status.success(),
        "certbot failed; its log:\n{}\nPebble:\n{}",
        fs::read_to_string(logs.join("letsencrypt.log")).unwrap_or_default(),
        setup.pebble.logs()
    );
}

/// A harmless deploy hook that leaves a mark in the test's directory.
fn deploy_hook(setup: &Setup) -> String {
    format!("touch {}/deployed", setup.dir.path().display())
}

fn certkeeper(args: &[&str], config: Option<&Path>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_certkeeper"));
    if let Some(config) = config {
        command.arg("--config").arg(config);
    } else {
        // import-certbot must not need an inventory: point at one that does not exist.
        command.env("CERTKEEPER_CONFIG", "/nonexistent/certkeeper.toml");
    }
    let output = command
        .args(args)
        .env_remove("JOURNAL_STREAM")
        .env("RUST_LOG", "info")
        .output()
        .unwrap();
    show(&format!("certkeeper {}", args.join(" ")), &output);
    output
}

fn versions(state_dir: &Path, name: &str) -> usize {
    fs::read_dir(state_dir.join("archive").join(name))
        .map(Iterator::count)
        .unwrap_or(0)
}

#[test]
fn adopts_a_certbot_lineage_and_renews_it_only_when_due_or_forced() {
    let setup = Setup::new(PebbleOptions::default());
    let certbot_dir = setup.dir.path().join("letsencrypt");
    let server = format!("{}?action=renew&orderId=4242", setup.pebble.directory_url);
    let domains = ["shop.example.com", "checkout.example.com"];
    certbot_certonly(&setup, &certbot_dir, &server, &domains);
    let certbot_cert = certbot_dir.join("live/shop/cert.pem");
    let certbot_serial = serial(&certbot_cert);

    // When run as root, the state directory belongs to another user, as the packaged one
    // belongs to `certkeeper`: what the import creates there must end up theirs.
    let state_dir = setup.state_dir.clone();
    let as_root = rustix::process::geteuid().is_root();
    if as_root {
        fs::create_dir_all(&state_dir).unwrap();
        std::os::unix::fs::chown(&state_dir, Some(65_534), Some(65_534)).unwrap();
    }

    let inventory = setup.dir.path().join("imported.toml");
    let output = certkeeper(
        &[
            "import-certbot",
            "--certbot-dir",
            certbot_dir.to_str().unwrap(),
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--output",
            inventory.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0));
    let messages = stderr(&output);
    assert!(messages.contains("adopted shop"), "{messages}");
    assert!(
        messages.contains("eab_kid and eab_hmac_key_file of [[ca]] \"localhost\""),
        "the command names what to fill in: {messages}"
    );

    let text = fs::read_to_string(&inventory).unwrap();
    eprintln!("--- imported inventory\n{text}");
    for expected in [
        format!("directory = \"{}\"\n", setup.pebble.directory_url),
        "domains = [\"shop.example.com\", \"checkout.example.com\"]\n".to_owned(),
        "key_type = \"ecdsa-p384\"\norder_id = \"4242\"\naction = \"renew\"\n".to_owned(),
        format!("listen = [\"[::]:{}\"]\n", setup.pebble.http01_port),
        format!("deploy_hook = \"{}\"\n", deploy_hook(&setup)),
    ] {
        assert!(text.contains(&expected), "missing {expected:?}");
    }

    // The adopted lineage is certbot's certificate, in certkeeper's layout.
    let live = state_dir.join("live/shop");
    assert_eq!(serial(&live.join("cert.pem")), certbot_serial);
    assert!(key_matches(
        &live.join("cert.pem"),
        &live.join("privkey.pem")
    ));
    assert_eq!(
        sans(&live.join("fullchain.pem")),
        ["checkout.example.com", "shop.example.com"]
    );
    if as_root {
        for path in [
            state_dir.join("live"),
            live.clone(),
            live.join("privkey.pem"),
        ] {
            let meta = fs::metadata(&path).unwrap();
            assert_eq!(
                (meta.uid(), meta.gid()),
                (65_534, 65_534),
                "{}",
                path.display()
            );
        }
        std::os::unix::fs::chown(&state_dir, Some(0), Some(0)).unwrap();
    }

    // Unfinished, the inventory is refused.
    let check = certkeeper(&["check"], Some(&inventory));
    assert_eq!(check.status.code(), Some(78), "FILL-ME must not pass check");

    // Fill in what the command asked for (and trust Pebble's HTTPS listener).
    let (kid, _) = setup.pebble.eab.clone().unwrap();
    let filled = text
        .replace("eab_kid = \"FILL-ME\"", &format!("eab_kid = \"{kid}\""))
        .replace(
            "eab_hmac_key_file = \"FILL-ME\"",
            &format!(
                "eab_hmac_key_file = \"{}\"\nroot_ca_file = \"{}\"",
                setup.hmac_file.display(),
                setup.pebble.tls_ca_file.display()
            ),
        );
    assert_ne!(filled, text, "the placeholders were there to fill");
    fs::write(&inventory, filled).unwrap();
    assert_eq!(
        certkeeper(&["check"], Some(&inventory)).status.code(),
        Some(0)
    );

    // Nothing is due: the adopted certificate is kept.
    let renew = certkeeper(&["renew"], Some(&inventory));
    assert_eq!(renew.status.code(), Some(0));
    assert!(
        stdout(&renew).contains("shop: not due"),
        "{}",
        stdout(&renew)
    );
    assert_eq!(serial(&live.join("cert.pem")), certbot_serial);
    assert_eq!(versions(&state_dir, "shop"), 1);

    // Forced, it renews from the same CA with the DigiCert-style order settings.
    let forced = certkeeper(&["renew", "--force"], Some(&inventory));
    assert_eq!(forced.status.code(), Some(0), "{}", setup.pebble.logs());
    let renewed: PathBuf = live.join("cert.pem");
    assert_ne!(serial(&renewed), certbot_serial);
    assert_eq!(sans(&renewed), ["checkout.example.com", "shop.example.com"]);
    assert!(key_matches(&renewed, &live.join("privkey.pem")));
    assert_eq!(versions(&state_dir, "shop"), 2);

    // A second import into the same state directory leaves certkeeper's lineage alone.
    let again = setup.dir.path().join("again.toml");
    let output = certkeeper(
        &[
            "import-certbot",
            "--certbot-dir",
            certbot_dir.to_str().unwrap(),
            "--state-dir",
            state_dir.to_str().unwrap(),
            "--output",
            again.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(0));
    assert!(stderr(&output).contains("already has this lineage"));
    assert_eq!(versions(&state_dir, "shop"), 2);

    // An existing output file is never overwritten, and nothing is done then.
    let output = certkeeper(
        &[
            "import-certbot",
            "--certbot-dir",
            certbot_dir.to_str().unwrap(),
            "--output",
            again.to_str().unwrap(),
        ],
        None,
    );
    assert_eq!(output.status.code(), Some(1));
    assert!(stderr(&output).contains("already exists"));
}
