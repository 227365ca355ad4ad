//! End-to-end ACME accounts against a real Pebble with External Account Binding required: a
//! CA that forgets the account (Pebble restarted: it keeps everything in memory) is met with
//! one new registration and the renewal carries on; a registration the CA refuses sends the
//! operator to the `[[ca]]` key the CA's problem type names.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::path::{Path, PathBuf};

use support::{Cert, PebbleOptions, Setup, mode, serial, stderr, write_secret};

const KID_DIR: &str = "certkeeper-test-kid";

/// `state/accounts/<server>/`: the one server directory, and its entries, sorted.
fn account_dirs(setup: &Setup) -> (PathBuf, Vec<String>) {
    let accounts = setup.state_dir.join("accounts");
    let servers: Vec<PathBuf> = fs::read_dir(&accounts)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .collect();
    assert_eq!(
        servers.len(),
        1,
        "one CA, one server directory: {servers:?}"
    );
    let server = servers.into_iter().next().unwrap();
    let mut entries: Vec<String> = fs::read_dir(&server)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    entries.sort();
    (server, entries)
}

fn account_url(json: &[u8]) -> String {
    let value: serde_json::Value = serde_json::from_slice(json).unwrap();
    value["account_url"].as_str().unwrap().to_owned()
}

fn live_serial(setup: &Setup, name: &str) -> String {
    serial(&setup.live(name).join("cert.pem"))
}

/// What `renew` tells the operator about failed certificates: its `error:` lines.
fn error_lines(output: &std::process::Output) -> String {
    stderr(output)
        .lines()
        .filter(|line| line.starts_with("error: "))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Three certificates, ordered concurrently: the ones that meet `accountDoesNotExist` together
/// share one new registration.
const NAMES: [&str; 3] = ["site", "shop", "blog"];

fn serials(setup: &Setup) -> Vec<String> {
    NAMES.iter().map(|name| live_serial(setup, name)).collect()
}

#[test]
fn a_pebble_restarted_between_two_renewals_the_second_renewal_succeeds_by_itself() {
    let mut setup = Setup::new(PebbleOptions::default());
    let domains: Vec<[String; 1]> = NAMES.map(|name| [format!("{name}.example.com")]).to_vec();
    let domain_refs: Vec<[&str; 1]> = domains.iter().map(|[d]| [d.as_str()]).collect();
    let certs: Vec<Cert<'_>> = NAMES
        .iter()
        .zip(&domain_refs)
        .map(|(name, domains)| Cert::new(name, domains))
        .collect();
    setup.write_config(&certs);

    let first = setup.certkeeper(&["renew"]);
    assert_eq!(first.status.code(), Some(0), "first issuance");
    let first_serials = serials(&setup);
    let (server, entries) = account_dirs(&setup);
    assert_eq!(entries, [KID_DIR]);
    let account_file = server.join(KID_DIR).join("account.json");
    let old_json = fs::read(&account_file).unwrap();

    // Pebble keeps accounts, orders and certificates in memory: restarted, it knows none.
    setup.pebble.restart();
    let (status, _) = setup
        .pebble
        .management_get(&format!("/cert-status-by-serial/{}", first_serials[0]));
    assert_eq!(
        status, 404,
        "the restarted Pebble forgot the first certificates"
    );

    let second = setup.certkeeper(&["renew", "--force"]);
    assert_eq!(second.status.code(), Some(0), "renewal after the restart");
    let second_serials = serials(&setup);
    for (name, (old, new)) in NAMES.iter().zip(first_serials.iter().zip(&second_serials)) {
        assert_ne!(new, old, "{name}");
        assert_eq!(setup.versions(name).len(), 2, "{name}");
        assert_eq!(setup.pebble.cert_status(new)["Status"], "Valid", "{name}");
    }

    // One new registration; the old credentials kept aside, byte for byte, as private as the
    // live ones.
    let (_, entries) = account_dirs(&setup);
    assert_eq!(entries.len(), 2, "{entries:?}");
    assert_eq!(entries[0], KID_DIR);
    let aside = &entries[1];
    let stamp = aside
        .strip_prefix(&format!("{KID_DIR}~replaced-"))
        .unwrap_or_else(|| panic!("unexpected entry {aside:?}"));
    assert!(stamp.parse::<u64>().is_ok(), "{aside:?}");
    let aside_dir = server.join(aside);
    assert_eq!(fs::read(aside_dir.join("account.json")).unwrap(), old_json);
    assert_eq!(mode(&aside_dir), 0o700);
    assert_eq!(mode(&aside_dir.join("account.json")), 0o600);
    let new_json = fs::read(&account_file).unwrap();
    assert_ne!(account_url(&new_json), account_url(&old_json));
    assert_eq!(mode(&account_file), 0o600);

    // The new account is used from now on: no further registration.
    let third = setup.certkeeper(&["renew", "--force"]);
    assert_eq!(third.status.code(), Some(0), "renewal with the new account");
    let third_serials = serials(&setup);
    for (name, (old, new)) in NAMES.iter().zip(second_serials.iter().zip(&third_serials)) {
        assert_ne!(new, old, "{name}");
        assert_eq!(setup.versions(name).len(), 3, "{name}");
        assert_eq!(setup.pebble.cert_status(new)["Status"], "Valid", "{name}");
    }
    assert_eq!(
        account_dirs(&setup).1,
        entries,
        "no other account set aside"
    );
    assert_eq!(
        fs::read(&account_file).unwrap(),
        new_json,
        "not registered again"
    );
}

#[test]
fn a_wrong_hmac_key_or_key_id_is_reported_as_an_eab_problem() {
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert::new("site", &["site.example.com"])]);
    let (kid, hmac) = setup.pebble.eab.clone().unwrap();
    let config = fs::read_to_string(&setup.config).unwrap();

    // (HMAC key, config): a well-formed key that is not the one Pebble holds for the kid;
    // then the right key under a key id Pebble does not know.
    let cases = [
        (
            "c2VjcmV0LWJ1dC13cm9uZy1obWFjLWtleS1mb3ItdGVzdHM".to_owned(),
            config.clone(),
        ),
        (
            hmac,
            config.replace(&format!("eab_kid = \"{kid}\""), "eab_kid = \"unknown-kid\""),
        ),
    ];
    for (key, text) in cases {
        write_secret(&setup.hmac_file, &key);
        fs::write(&setup.config, text).unwrap();
        // Forced: the previous case's failure put the certificate in backoff.
        let output = setup.certkeeper(&["renew", "--force"]);
        assert_eq!(output.status.code(), Some(1));
        let text = error_lines(&output);
        assert!(
            text.contains("check eab_kid and the HMAC key"),
            "points at the EAB credential: {text}"
        );
        assert!(
            text.contains("urn:ietf:params:acme:error:unauthorized"),
            "the CA's problem type is shown: {text}"
        );
        assert!(!text.contains("contact"), "{text}");
        assert!(!setup.live("site").exists());
        assert!(
            !has_account_file(&setup.state_dir.join("accounts")),
            "no account stored"
        );
    }
}

#[test]
fn a_contact_pebble_refuses_is_reported_as_a_contact_problem_not_an_eab_one() {
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert::new("site", &["site.example.com"])]);
    let config = fs::read_to_string(&setup.config).unwrap();
    let configured = "contact = [\"mailto:ops@example.com\"]";
    assert!(config.contains(configured));

    // (contact list, what the message must say): an address Pebble cannot parse is
    // `invalidContact`; three addresses are `malformed` (Pebble takes two), which names no
    // key, so the CA's own words are what the operator gets.
    let cases = [
        (
            "contact = [\"mailto:nobody\"]",
            &["change contact in its [[ca]] entry", "invalidContact"][..],
        ),
        (
            "contact = [\"mailto:a@example.com\", \"mailto:b@example.com\", \"mailto:c@example.com\"]",
            &["too many contacts provided", "malformed"][..],
        ),
    ];
    for (contact, wanted) in cases {
        fs::write(&setup.config, config.replace(configured, contact)).unwrap();
        // Forced: the previous case's failure put the certificate in backoff.
        let output = setup.certkeeper(&["renew", "--force"]);
        assert_eq!(output.status.code(), Some(1), "{contact}");
        let text = error_lines(&output);
        for part in wanted {
            assert!(text.contains(part), "{contact}: {part:?} missing: {text}");
        }
        assert!(
            !text.contains("eab_kid"),
            "{contact}: no EAB advice for a contact problem: {text}"
        );
        assert!(!has_account_file(&setup.state_dir.join("accounts")));
    }
}

fn has_account_file(dir: &Path) -> bool {
    fs::read_dir(dir).is_ok_and(|entries| {
        entries.map(|entry| entry.unwrap().path()).any(|path| {
            if path.is_dir() {
                has_account_file(&path)
            } else {
                path.file_name().is_some_and(|name| name == "account.json")
            }
        })
    })
}
