//! End-to-end issuance against a real Pebble with External Account Binding required: the
//! `certkeeper` binary as a user runs it, checked with `openssl` and Pebble's management API.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;

use support::{
    Cert, PebbleOptions, Setup, key_description, key_matches, mode, openssl, sans, serial, stderr,
    stdout,
};

fn files_under(dir: &std::path::Path) -> Vec<String> {
    let mut found = Vec::new();
    if let Ok(entries) = fs::read_dir(dir) {
        for entry in entries {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.is_dir() && !entry.file_type().unwrap().is_symlink() {
                found.extend(files_under(&path));
            } else {
                found.push(path.display().to_string());
            }
        }
    }
    found
}

#[test]
fn issues_a_two_name_certificate_for_every_key_type() {
    let setup = Setup::new(PebbleOptions::default());
    let key_types = [
        ("p256", "ecdsa-p256", "256 bit"),
        ("p384", "ecdsa-p384", "384 bit"),
        ("rsa2048", "rsa2048", "2048 bit"),
        ("rsa3072", "rsa3072", "3072 bit"),
        ("rsa4096", "rsa4096", "4096 bit"),
    ];
    let domains: Vec<[String; 2]> = key_types
        .iter()
        .map(|(name, _, _)| {
            [
                format!("{name}.example.com"),
                format!("www.{name}.example.com"),
            ]
        })
        .collect();
    let domain_refs: Vec<[&str; 2]> = domains
        .iter()
        .map(|[a, b]| [a.as_str(), b.as_str()])
        .collect();
    let certs: Vec<Cert<'_>> = key_types
        .iter()
        .zip(&domain_refs)
        .map(|((name, key_type, _), domains)| Cert {
            key_type,
            ..Cert::new(name, domains)
        })
        .collect();
    setup.write_config(&certs);

    let output = setup.certkeeper(&["renew"]);
    assert!(output.status.success(), "renew failed");

    let root = setup.dir.path().join("pebble-root.pem");
    fs::write(&root, setup.pebble.issuing_root_pem()).unwrap();
    for ((name, _, bits), [a, b]) in key_types.iter().zip(&domains) {
        let live = setup.live(name);
        let cert = live.join("cert.pem");
        let key = live.join("privkey.pem");
        let mut expected = vec![a.clone(), b.clone()];
        expected.sort();
        assert_eq!(sans(&cert), expected, "{name}: SANs");
        assert!(key_matches(&cert, &key), "{name}: key matches certificate");
        assert!(
            key_description(&key).contains(bits),
            "{name}: {}",
            key_description(&key)
        );
        assert_eq!(mode(&key), 0o600, "{name}: private key mode");
        let verified = openssl(&[
            "verify",
            "-CAfile",
            root.to_str().unwrap(),
            "-untrusted",
            live.join("chain.pem").to_str().unwrap(),
            cert.to_str().unwrap(),
        ]);
        assert!(verified.trim_end().ends_with(": OK"), "{name}: {verified}");
        let fullchain = fs::read_to_string(live.join("fullchain.pem")).unwrap();
        let leaf = fs::read_to_string(&cert).unwrap();
        let chain = fs::read_to_string(live.join("chain.pem")).unwrap();
        assert_eq!(
            fullchain,
            format!("{leaf}{chain}"),
            "{name}: fullchain = cert + chain"
        );
        assert!(stdout(&output).contains(&format!("{name}: issued (serial {}", serial(&cert))));
    }

    // The account credential is a secret too.
    let accounts = files_under(&setup.state_dir.join("accounts"));
    assert_eq!(accounts.len(), 1, "{accounts:?}");
    assert_eq!(mode(std::path::Path::new(&accounts[0])), 0o600);

    // Nothing is due right after issuance: a second run orders nothing.
    let again = setup.certkeeper(&["renew"]);
    assert!(again.status.success());
    for (name, _, _) in key_types {
        assert!(
            stdout(&again).contains(&format!("{name}: not due")),
            "{name}"
        );
        assert_eq!(setup.versions(name).len(), 1, "{name}: no second version");
    }
}

#[test]
fn wrong_hmac_key_is_one_clear_error_and_writes_nothing() {
    let setup = Setup::new(PebbleOptions::default());
    support::write_secret(&setup.hmac_file, "d3JvbmcgaG1hYyBrZXkgZm9yIHRoZSB0ZXN0IGNh");
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);

    let output = setup.certkeeper(&["renew"]);
    assert_eq!(output.status.code(), Some(1));
    let errors: Vec<String> = stderr(&output)
        .lines()
        .filter(|line| line.starts_with("error:"))
        .map(str::to_owned)
        .collect();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].contains("\"pebble\""), "{}", errors[0]);
    assert!(
        errors[0].contains("External Account Binding"),
        "{}",
        errors[0]
    );
    for sub in ["accounts", "archive", "live"] {
        let written = files_under(&setup.state_dir.join(sub));
        assert!(written.is_empty(), "{sub}: {written:?}");
    }
}

#[test]
fn already_valid_authorizations_need_no_challenge() {
    let setup = Setup::new(PebbleOptions::default().env("PEBBLE_AUTHZREUSE", "100"));
    setup.write_config(&[Cert::new("first", &["reuse.example.com"])]);
    assert!(setup.certkeeper(&["renew"]).status.success());

    // Point the responder away from Pebble's httpPort: a second order can only succeed if
    // Pebble hands out the already-valid authorization and asks for no challenge.
    let text = fs::read_to_string(&setup.config).unwrap().replace(
        &format!("127.0.0.1:{}", setup.pebble.http01_port),
        &format!("127.0.0.1:{}", support::pebble::free_port()),
    );
    fs::write(&setup.config, text).unwrap();
    let output = setup.certkeeper(&["renew", "--force", "first"]);
    assert!(
        output.status.success(),
        "renewal with a reused authorization"
    );
    assert!(stderr(&output).contains("no challenge needed"));
    assert_eq!(setup.versions("first").len(), 2);
}

#[test]
fn nonce_rejections_are_retried() {
    let setup = Setup::new(PebbleOptions::default().env("PEBBLE_WFE_NONCEREJECT", "50"));
    setup.write_config(&[
        Cert::new("one", &["one.example.com", "www.one.example.com"]),
        Cert::new("two", &["two.example.com"]),
    ]);
    let output = setup.certkeeper(&["renew"]);
    assert!(
        output.status.success(),
        "issuance with half the nonces rejected"
    );
    for name in ["one", "two"] {
        let live = setup.live(name);
        assert!(key_matches(
            &live.join("cert.pem"),
            &live.join("privkey.pem")
        ));
    }
}

#[test]
fn reissue_uses_the_lifecycle_url_and_swaps_atomically() {
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert {
        extra: "order_id = \"123456789\"\naction = \"reissue\"",
        ..Cert::new("shop", &["shop.example.com", "www.shop.example.com"])
    }]);
    let (_, hmac) = setup.pebble.eab.clone().unwrap();

    let first = setup.certkeeper(&["renew"]);
    assert!(first.status.success());
    let first_log = stderr(&first);
    assert!(
        first_log.contains(&format!("directory={}", setup.pebble.directory_url)),
        "first issuance uses the directory as configured"
    );
    assert!(
        !first_log.contains("orderId="),
        "no lifecycle query on first issuance"
    );
    let old_serial = serial(&setup.live("shop").join("cert.pem"));
    let old_version = setup.versions("shop");

    let second = setup.certkeeper(&["renew", "--force"]);
    assert!(second.status.success());
    let log = stderr(&second);
    assert!(
        log.contains(&format!(
            "directory={}?action=reissue&orderId=123456789",
            setup.pebble.directory_url
        )),
        "renewal carries action and orderId"
    );
    for output in [&first, &second] {
        assert!(
            !stderr(output).contains(&hmac),
            "HMAC key leaked into the log"
        );
        assert!(
            !stdout(output).contains(&hmac),
            "HMAC key leaked into the output"
        );
    }

    let live = setup.live("shop");
    let new_serial = serial(&live.join("cert.pem"));
    assert_ne!(new_serial, old_serial);
    assert!(key_matches(
        &live.join("cert.pem"),
        &live.join("privkey.pem")
    ));
    // live/shop switched as a whole to the new version; the old one is kept intact.
    let versions_now = setup.versions("shop");
    assert_eq!(versions_now.len(), 2);
    assert!(
        fs::symlink_metadata(&live)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(fs::read_link(&live).unwrap().ends_with(&versions_now[1]));
    let old_dir = setup.state_dir.join("archive/shop").join(&old_version[0]);
    assert_eq!(serial(&old_dir.join("cert.pem")), old_serial);
    assert!(key_matches(
        &old_dir.join("cert.pem"),
        &old_dir.join("privkey.pem")
    ));
    // One account, whatever the lifecycle query.
    assert_eq!(files_under(&setup.state_dir.join("accounts")).len(), 1);
}

#[test]
fn revoke_with_cessation_of_operation() {
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert::new("old", &["old.example.com"])]);
    assert!(setup.certkeeper(&["renew"]).status.success());
    let serial_hex = serial(&setup.live("old").join("cert.pem"));
    assert_eq!(setup.pebble.cert_status(&serial_hex)["Status"], "Valid");

    let output = setup.certkeeper(&["revoke", "old", "--reason", "cessationOfOperation"]);
    assert!(output.status.success());
    let status = setup.pebble.cert_status(&serial_hex);
    assert_eq!(status["Status"], "Revoked", "{status}");
    assert_eq!(status["Reason"], 5, "{status}");

    // A revoked lineage is not renewed behind the operator's back.
    let renew = setup.certkeeper(&["renew"]);
    assert!(renew.status.success());
    assert!(stdout(&renew).contains("old: revoked; not renewed"));
    let status = setup.certkeeper(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_slice(&status.stdout).unwrap();
    assert_eq!(rows[0]["state"], "revoked");
    assert_eq!(rows[0]["serial"], serial_hex.as_str());
}
