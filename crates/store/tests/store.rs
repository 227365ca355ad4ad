//! The store against real files in a temporary directory, with real keys and certificates
//! made by rcgen (aws-lc-rs): a self-signed test CA signs leaves for ECDSA P-256, P-384 and
//! RSA keys.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use certkeeper_core::{CertName, KeyType, RevocationReason};
use certkeeper_store::layout::{CERT_FILE, CHAIN_FILE, FULLCHAIN_FILE, PRIVKEY_FILE};
use certkeeper_store::{
    LineageState, PendingOrder, RevokedRecord, Store, StoreError, UnsafeProblem, VerifyProblem,
};
use rcgen::{KeyPair, PublicKeyData};
use x509_parser::prelude::{FromDer, X509Certificate};

mod support;

use support::{domains, issue, mode, name, new_key, open_store, snapshot, test_ca};

const NOT_BEFORE_UNIX: u64 = 1_735_689_600; // 2025-01-01T00:00:00Z
const NOT_AFTER_UNIX: u64 = 1_743_465_600; // 2025-04-01T00:00:00Z

fn unix(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

// ---------------------------------------------------------------- helpers

fn pem_ders(pem: &str) -> Vec<Vec<u8>> {
    x509_parser::pem::Pem::iter_from_buffer(pem.as_bytes())
        .map(|block| block.expect("pem block").contents)
        .collect()
}

// ---------------------------------------------------------------- tests

#[test]
fn open_creates_the_layout_with_its_modes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("nested").join("state");
    let store = Store::open(&root).expect("open");
    assert_eq!(store.root(), root);
    let expected = [
        ("accounts", 0o700),
        ("archive", 0o750),
        ("live", 0o750),
        ("state", 0o700),
    ];
    for (sub, want) in expected {
        assert_eq!(mode(&root.join(sub)), want, "{sub}");
    }
    // Opening again is fine, and loosened directories are tightened (never widened).
    for (sub, _) in expected {
        fs::set_permissions(root.join(sub), fs::Permissions::from_mode(0o755)).expect("chmod");
    }
    Store::open(&root).expect("reopen");
    for (sub, want) in expected {
        assert_eq!(mode(&root.join(sub)), want, "{sub}");
    }
}

#[test]
fn install_then_read_live_for_each_key_type() {
    let ca = test_ca();
    let cases: &[(KeyType, &[u8], &str)] = &[
        (KeyType::EcdsaP256, &[0x0a, 0xbc, 0xde], "abcde"),
        (KeyType::EcdsaP384, &[0x8f, 0x01, 0x02], "8f0102"),
        (KeyType::Rsa2048, &[0x12, 0x34, 0x56, 0x78], "12345678"),
        (KeyType::Rsa3072, &[0x01], "1"),
    ];
    for (key_type, serial, serial_hex) in cases {
        let (_dir, store) = open_store();
        let key = new_key(*key_type);
        let issued = issue(&ca, &key, &["www.example.com", "example.com"], serial);

        // The comparison install relies on: rcgen's SPKI for the private key is byte for byte
        // the SPKI in the certificate, for EC and RSA alike.
        let (_, leaf) = X509Certificate::from_der(&issued.leaf_der).expect("leaf parses");
        let from_key = KeyPair::from_pem(&issued.key_pem).expect("key parses");
        assert_eq!(
            from_key.subject_public_key_info(),
            leaf.public_key().raw,
            "{key_type}"
        );

        let lineage = name("www");
        let installed = store
            .install(
                &lineage,
                &domains(&["example.com", "www.example.com"]),
                &issued.key_pem,
                &issued.chain_pem,
            )
            .expect("install");
        let live = store.read_live(&lineage).expect("read").expect("live");
        assert_eq!(installed, live);

        let mut sans = live.observed.domains.clone();
        sans.sort();
        assert_eq!(sans, ["example.com", "www.example.com"], "{key_type}");
        assert_eq!(live.observed.not_before, unix(NOT_BEFORE_UNIX));
        assert_eq!(live.observed.not_after, unix(NOT_AFTER_UNIX));
        assert_eq!(live.observed.key_type, Some(*key_type));
        assert!(!live.observed.revoked);
        assert_eq!(live.serial_hex, *serial_hex, "{key_type}");
        assert_eq!(live.issuer, "CN=certkeeper test CA");
        assert_eq!(live.leaf_der, issued.leaf_der);
        assert_eq!(live.version, "v0001");
        assert_eq!(live.live_dir, store.root().join("live").join("www"));
        assert_eq!(store.live_dir(&lineage), live.live_dir);
        assert_eq!(live.fullchain_path(), live.live_dir.join(FULLCHAIN_FILE));
        assert_eq!(live.privkey_path(), live.live_dir.join(PRIVKEY_FILE));
        assert_eq!(live.cert_path(), live.live_dir.join(CERT_FILE));
        assert_eq!(live.chain_path(), live.live_dir.join(CHAIN_FILE));

        // live/www is a relative symlink to the version directory.
        let link = store.root().join("live/www");
        assert!(
            fs::symlink_metadata(&link)
                .expect("link")
                .file_type()
                .is_symlink()
        );
        assert_eq!(
            fs::read_link(&link).expect("read_link"),
            Path::new("../archive/www/v0001")
        );

        // certbot's paths resolve through it, with the right modes and contents.
        assert_eq!(mode(&link.join(PRIVKEY_FILE)), 0o600);
        for file in [CERT_FILE, CHAIN_FILE, FULLCHAIN_FILE] {
            assert_eq!(mode(&link.join(file)), 0o644, "{file}");
        }
        assert_eq!(mode(&store.root().join("archive/www")), 0o750);
        assert_eq!(mode(&store.root().join("archive/www/v0001")), 0o750);
        let read = |file: &str| fs::read_to_string(link.join(file)).expect("read file");
        assert_eq!(
            pem_ders(&read(CERT_FILE)),
            std::slice::from_ref(&issued.leaf_der)
        );
        assert_eq!(pem_ders(&read(CHAIN_FILE)), std::slice::from_ref(&ca.der));
        assert_eq!(
            pem_ders(&read(FULLCHAIN_FILE)),
            [issued.leaf_der.clone(), ca.der.clone()]
        );
        assert_eq!(
            format!("{}{}", read(CERT_FILE), read(CHAIN_FILE)),
            read(FULLCHAIN_FILE)
        );
        let stored_key = KeyPair::from_pem(&read(PRIVKEY_FILE)).expect("stored key parses");
        assert_eq!(
            stored_key.subject_public_key_info(),
            key.subject_public_key_info()
        );
        assert_eq!(store.lineages().expect("lineages"), [lineage]);
    }
}

#[test]
fn second_install_adds_a_version_and_keeps_the_old_one() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let lineage = name("www");
    let names = domains(&["www.example.com"]);
    let first = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[1],
    );
    store
        .install(&lineage, &names, &first.key_pem, &first.chain_pem)
        .expect("first install");
    let v1 = store.root().join("archive/www/v0001");
    let before = snapshot(&v1);

    let second = issue(
        &ca,
        &new_key(KeyType::EcdsaP384),
        &["www.example.com"],
        &[2],
    );
    let live = store
        .install(&lineage, &names, &second.key_pem, &second.chain_pem)
        .expect("second install");

    assert_eq!(live.version, "v0002");
    assert_eq!(live.serial_hex, "2");
    assert_eq!(live.observed.key_type, Some(KeyType::EcdsaP384));
    assert_eq!(
        fs::read_link(store.root().join("live/www")).expect("link"),
        Path::new("../archive/www/v0002")
    );
    assert_eq!(snapshot(&v1), before, "the old version must stay intact");
    // Nothing but the two versions in the archive, nothing but the link in live/.
    let archive: Vec<_> = snapshot(&store.root().join("archive/www"))
        .into_keys()
        .filter(|p| p.components().count() == 1)
        .collect();
    assert_eq!(archive, [PathBuf::from("v0001"), PathBuf::from("v0002")]);
    assert_eq!(
        snapshot(&store.root().join("live"))
            .into_keys()
            .collect::<Vec<_>>(),
        [PathBuf::from("www")]
    );
}

#[test]
fn mismatched_key_is_refused_and_nothing_is_written() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let lineage = name("www");
    let names = domains(&["www.example.com"]);
    let good = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[1],
    );

    // First on an empty store, then on top of a live lineage; an EC certificate with another
    // EC key, and with an RSA key.
    for existing in [false, true] {
        if existing {
            store
                .install(&lineage, &names, &good.key_pem, &good.chain_pem)
                .expect("install");
        }
        let before = snapshot(store.root());
        let other_key = issue(
            &ca,
            &new_key(KeyType::EcdsaP256),
            &["www.example.com"],
            &[2],
        );
        let rsa_key = new_key(KeyType::Rsa2048).serialize_pem();
        for wrong_key in [&other_key.key_pem, &rsa_key] {
            let err = store
                .install(&lineage, &names, wrong_key, &good.chain_pem)
                .expect_err("must refuse");
            assert!(
                matches!(
                    &err,
                    StoreError::Verify { name, problem: VerifyProblem::KeyMismatch } if *name == lineage
                ),
                "{err:?}"
            );
            // The key never appears in what an operator sees.
            let body: String = wrong_key.lines().nth(1).expect("base64 line").to_owned();
            assert!(!format!("{err}{err:?}").contains(&body));
            assert_eq!(snapshot(store.root()), before, "nothing may be written");
        }
    }
    // The earlier pair is still what is live.
    let live = store.read_live(&lineage).expect("read").expect("live");
    assert_eq!(live.serial_hex, "1");
}

#[test]
fn names_must_match_exactly_but_case_insensitively() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let lineage = name("www");
    let key = new_key(KeyType::EcdsaP256);
    let issued = issue(&ca, &key, &["WWW.Example.com", "api.example.com"], &[7]);
    let before = snapshot(store.root());

    let err = store
        .install(
            &lineage,
            &domains(&["www.example.com"]),
            &issued.key_pem,
            &issued.chain_pem,
        )
        .expect_err("a missing name must be refused");
    match err {
        StoreError::Verify {
            problem: VerifyProblem::NamesMismatch { expected, found },
            ..
        } => {
            assert_eq!(expected, ["www.example.com"]);
            assert_eq!(found, ["api.example.com", "www.example.com"]);
        }
        other => panic!("expected NamesMismatch, got {other:?}"),
    }
    let err = store
        .install(
            &lineage,
            &domains(&["www.example.com", "api.example.com", "extra.example.com"]),
            &issued.key_pem,
            &issued.chain_pem,
        )
        .expect_err("an extra configured name must be refused");
    assert!(
        matches!(
            err,
            StoreError::Verify {
                problem: VerifyProblem::NamesMismatch { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(snapshot(store.root()), before);

    let live = store
        .install(
            &lineage,
            &domains(&["api.example.com", "www.example.com"]),
            &issued.key_pem,
            &issued.chain_pem,
        )
        .expect("same set, other order and case");
    let mut sans = live.observed.domains;
    sans.sort();
    assert_eq!(sans, ["api.example.com", "www.example.com"]);
}

#[test]
fn unusable_input_is_refused_with_the_reason() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let lineage = name("www");
    let names = domains(&["www.example.com"]);
    let issued = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[1],
    );
    let before = snapshot(store.root());

    let problem = |key: &str, chain: &str| match store.install(&lineage, &names, key, chain) {
        Err(StoreError::Verify { problem, .. }) => problem,
        other => panic!("expected a verify error, got {other:?}"),
    };
    assert_eq!(problem(&issued.key_pem, ""), VerifyProblem::NoCertificate);
    assert!(matches!(
        problem(
            &issued.key_pem,
            "-----BEGIN CERTIFICATE-----\nnot base64!\n-----END CERTIFICATE-----\n"
        ),
        VerifyProblem::BadPem {
            what: "certificate chain",
            ..
        }
    ));
    assert!(matches!(
        problem(
            &issued.key_pem,
            "-----BEGIN CERTIFICATE-----\naGVsbG8=\n-----END CERTIFICATE-----\n"
        ),
        VerifyProblem::BadPem {
            what: "certificate chain",
            ..
        }
    ));
    assert!(matches!(
        problem("not a key", &issued.chain_pem),
        VerifyProblem::BadPem {
            what: "private key",
            ..
        }
    ));
    // A chain with the private key pasted into it never reaches chain.pem.
    let leaky = format!("{}{}", issued.chain_pem, issued.key_pem);
    assert!(matches!(
        problem(&issued.key_pem, &leaky),
        VerifyProblem::BadPem {
            what: "certificate chain",
            ..
        }
    ));
    assert_eq!(snapshot(store.root()), before);
}

#[test]
fn interrupted_installs_leave_a_matching_pair_and_are_cleaned_up() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let lineage = name("www");
    let names = domains(&["www.example.com"]);
    let first = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[1],
    );
    store
        .install(&lineage, &names, &first.key_pem, &first.chain_pem)
        .expect("first install");
    let root = store.root().to_path_buf();
    let archive = root.join("archive/www");

    // Leftovers of crashes at various points:
    // a half-written version directory (only a certificate, for another key),
    let other = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[9],
    );
    fs::create_dir(archive.join("v0002")).expect("mkdir");
    fs::write(archive.join("v0002").join(CERT_FILE), &other.chain_pem).expect("half write");
    // a staging directory with a key in it,
    let staging = archive.join(".staging-1-2-deadbeef");
    fs::create_dir(&staging).expect("mkdir staging");
    fs::write(staging.join(PRIVKEY_FILE), &other.key_pem).expect("staging key");
    // a temporary symlink that never got renamed over live/www,
    let stray = root.join("live/.www.tmp-1-2-cafe");
    std::os::unix::fs::symlink("../archive/www/v0002", &stray).expect("stray link");
    // and junk that is no version at all.
    fs::write(archive.join("README"), "notes").expect("junk");
    fs::create_dir(archive.join("vjunk")).expect("junk dir");

    // Reading still sees the old, matching pair.
    let live = store.read_live(&lineage).expect("read").expect("live");
    assert_eq!(
        (live.version.as_str(), live.serial_hex.as_str()),
        ("v0001", "1")
    );
    assert_eq!(
        store.lineages().expect("lineages"),
        std::slice::from_ref(&lineage)
    );

    // The next install skips the half-written number and removes the leftovers.
    let next = issue(
        &ca,
        &new_key(KeyType::EcdsaP384),
        &["www.example.com"],
        &[3],
    );
    let live = store
        .install(&lineage, &names, &next.key_pem, &next.chain_pem)
        .expect("install after crash");
    assert_eq!(live.version, "v0003");
    assert_eq!(live.serial_hex, "3");
    assert_eq!(live.observed.key_type, Some(KeyType::EcdsaP384));
    assert!(!staging.exists(), "staging leftovers are removed");
    assert!(
        fs::symlink_metadata(&stray).is_err(),
        "stray temp links are removed"
    );
    assert!(
        archive.join("v0001").join(PRIVKEY_FILE).exists(),
        "old versions are kept"
    );
    assert!(
        archive.join("README").exists(),
        "unknown files are left alone"
    );

    // A version published without the symlink swap (crash between the two renames) is not
    // live, and the next install gets a fresh number.
    fs::create_dir(archive.join("v0004")).expect("mkdir");
    for file in [CERT_FILE, PRIVKEY_FILE] {
        fs::copy(
            archive.join("v0001").join(file),
            archive.join("v0004").join(file),
        )
        .expect("copy");
    }
    assert_eq!(
        store
            .read_live(&lineage)
            .expect("read")
            .expect("live")
            .version,
        "v0003"
    );
    let last = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[5],
    );
    let live = store
        .install(&lineage, &names, &last.key_pem, &last.chain_pem)
        .expect("install");
    assert_eq!(live.version, "v0005");
}

#[test]
fn a_hand_broken_lineage_is_reported_not_trusted() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let lineage = name("www");
    let issued = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[1],
    );
    let live = store
        .install(
            &lineage,
            &domains(&["www.example.com"]),
            &issued.key_pem,
            &issued.chain_pem,
        )
        .expect("install");
    let key_path = store
        .root()
        .join("archive/www")
        .join(&live.version)
        .join(PRIVKEY_FILE);
    fs::set_permissions(&key_path, fs::Permissions::from_mode(0o600)).expect("chmod");
    fs::write(&key_path, new_key(KeyType::EcdsaP256).serialize_pem()).expect("overwrite");
    let err = store.read_live(&lineage).expect_err("mismatched pair");
    assert!(
        matches!(
            err,
            StoreError::Corrupt {
                problem: VerifyProblem::KeyMismatch,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(store.read_live(&name("absent")).expect("absent"), None);
    // Planning reads the certificate only: it still sees what is live (status, which uses
    // the full read, is where a hand-edited key shows).
    let planned = store
        .read_live_certificate(&lineage)
        .expect("certificate readable")
        .expect("present");
    assert_eq!(planned.serial_hex, live.serial_hex);
    assert_eq!(planned.observed, live.observed);
}

#[test]
fn a_certbot_directory_in_live_is_read_but_not_replaced() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let lineage = name("legacy");
    let issued = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["legacy.example.com"],
        &[4],
    );
    let dir = store.root().join("live/legacy");
    fs::create_dir(&dir).expect("mkdir");
    fs::write(dir.join(CERT_FILE), &issued.chain_pem).expect("cert");
    fs::write(dir.join(PRIVKEY_FILE), &issued.key_pem).expect("key");
    // A key others may read is refused (it may have leaked); private, it is read.
    fs::set_permissions(dir.join(PRIVKEY_FILE), fs::Permissions::from_mode(0o644)).expect("chmod");
    let err = store.read_live(&lineage).expect_err("key open to others");
    assert!(
        matches!(
            &err,
            StoreError::Unsafe { path, problem: UnsafeProblem::OpenToOthers { mode: 0o644 } }
                if *path == dir.join(PRIVKEY_FILE)
        ),
        "{err:?}"
    );
    fs::set_permissions(dir.join(PRIVKEY_FILE), fs::Permissions::from_mode(0o600)).expect("chmod");

    let live = store.read_live(&lineage).expect("read").expect("live");
    assert_eq!(live.version, "");
    assert_eq!(live.serial_hex, "4");

    let before = snapshot(store.root());
    let err = store
        .install(
            &lineage,
            &domains(&["legacy.example.com"]),
            &issued.key_pem,
            &issued.chain_pem,
        )
        .expect_err("cannot swap a directory");
    assert!(matches!(err, StoreError::LiveNotSymlink { .. }), "{err:?}");
    assert_eq!(snapshot(store.root()), before, "nothing may be written");

    // certbot's own layout links each file into ../../archive/NAME/: such links are not
    // followed, and the error names the link so the operator can import the lineage instead.
    let certbot = name("certbot");
    let archived = store.root().join("archive/certbot");
    fs::create_dir(&archived).expect("mkdir archive");
    fs::write(archived.join("cert1.pem"), &issued.chain_pem).expect("cert");
    let dir = store.root().join("live/certbot");
    fs::create_dir(&dir).expect("mkdir live");
    std::os::unix::fs::symlink("../../archive/certbot/cert1.pem", dir.join(CERT_FILE))
        .expect("symlink");
    let err = store
        .read_live_certificate(&certbot)
        .expect_err("per-file symlink");
    assert!(
        matches!(
            &err,
            StoreError::Unsafe { path, problem: UnsafeProblem::Symlink { target: Some(target) } }
                if *path == dir.join(CERT_FILE)
                    && *target == Path::new("../../archive/certbot/cert1.pem")
        ),
        "{err:?}"
    );
    let message = err.to_string();
    assert!(message.contains("live/certbot/cert.pem"), "{message}");
    assert!(message.contains("never follows symlinks"), "{message}");
}

#[test]
fn the_lock_is_exclusive_until_dropped() {
    let (_dir, store) = open_store();
    let held = store.lock().expect("first lock");
    assert_eq!(held.path(), store.root().join("lock"));

    // A second open file description, as another process would have.
    let other = Store::open(store.root()).expect("second handle");
    match other.lock() {
        Err(StoreError::Locked { path, holder }) => {
            assert_eq!(path, store.root().join("lock"));
            assert_eq!(holder, Some(std::process::id()));
        }
        other => panic!("expected Locked, got {other:?}"),
    }
    drop(held);
    let again = other.lock().expect("lock after release");
    drop(again);
}

#[test]
fn lineage_state_round_trips_and_revocation_follows_the_serial() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let lineage = name("www");
    let names = domains(&["www.example.com"]);
    assert_eq!(
        store.lineage(&lineage).expect("absent").state(),
        &LineageState::default()
    );

    let first = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[0x1a, 0x2b],
    );
    let live = store
        .install(&lineage, &names, &first.key_pem, &first.chain_pem)
        .expect("install");
    let state = LineageState {
        revoked: Some(RevokedRecord::new(
            &live.serial_hex,
            RevocationReason::KeyCompromise,
            unix(1_750_000_000),
        )),
        ..LineageState::default()
    };
    store
        .lineage(&lineage)
        .expect("load")
        .record_revocation(
            &live.serial_hex,
            RevocationReason::KeyCompromise,
            unix(1_750_000_000),
        )
        .expect("record the revocation");
    assert_eq!(store.lineage(&lineage).expect("read state").state(), &state);
    let path = store.lineage_state_path(&lineage);
    assert_eq!(path, store.root().join("state/www.json"));
    assert_eq!(mode(&path), 0o644);
    let json = fs::read_to_string(&path).expect("json");
    assert!(json.contains("\"keyCompromise\""), "{json}");

    assert!(
        store
            .read_live(&lineage)
            .expect("read")
            .expect("live")
            .observed
            .revoked
    );

    // A reissue has another serial: no longer revoked, though the record stays.
    let second = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[0x3c],
    );
    let live = store
        .install(&lineage, &names, &second.key_pem, &second.chain_pem)
        .expect("reissue");
    assert!(!live.observed.revoked);
    assert_eq!(store.lineage(&lineage).expect("state").state(), &state);

    // A damaged state file is an error that names the file, and stops an install before
    // anything is written.
    fs::write(&path, "{ not json").expect("damage");
    match store.lineage(&lineage) {
        Err(err @ StoreError::State { .. }) => {
            assert!(err.to_string().contains("www.json"), "{err}");
        }
        other => panic!("expected a state error, got {other:?}"),
    }
    let before = snapshot(store.root());
    let third = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[0x4d],
    );
    let err = store
        .install(&lineage, &names, &third.key_pem, &third.chain_pem)
        .expect_err("damaged state");
    assert!(matches!(err, StoreError::State { .. }), "{err:?}");
    assert_eq!(snapshot(store.root()), before);
}

#[test]
fn accounts_are_private_and_read_back() {
    let (_dir, store) = open_store();
    let key = certkeeper_core::lifecycle::account_storage_key(
        "https://localhost:14000/dir?action=renew&orderId=1",
        Some("kid-1"),
    )
    .expect("storage key");
    assert_eq!(store.read_account(&key).expect("absent"), None);

    let json = br#"{"id":"https://localhost:14000/my-account/1","key_pkcs8":"c2VjcmV0"}"#;
    let path = store.write_account(&key, json).expect("write");
    assert_eq!(
        path,
        store
            .root()
            .join("accounts/localhost_14000_dir/kid-1/account.json")
    );
    assert_eq!(store.account_path(&key).expect("path"), path);
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&store.root().join("accounts")), 0o700);
    assert_eq!(
        mode(&store.root().join("accounts/localhost_14000_dir")),
        0o700
    );
    assert_eq!(
        mode(&store.root().join("accounts/localhost_14000_dir/kid-1")),
        0o700
    );
    assert_eq!(
        store.read_account(&key).expect("read").as_deref(),
        Some(&json[..])
    );

    // Rewriting replaces atomically and keeps the mode.
    store.write_account(&key, b"{}").expect("rewrite");
    assert_eq!(
        store.read_account(&key).expect("read").as_deref(),
        Some(&b"{}"[..])
    );
    assert_eq!(mode(&path), 0o600);

    let escape = ("..".to_owned(), "x".to_owned());
    assert!(matches!(
        store.write_account(&escape, b"{}"),
        Err(StoreError::InvalidAccountKey { .. })
    ));
}

#[test]
fn lineages_lists_live_names() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    assert_eq!(store.lineages().expect("empty"), Vec::<CertName>::new());
    for (lineage, host) in [("web", "web.example.com"), ("api", "api.example.com")] {
        let issued = issue(&ca, &new_key(KeyType::EcdsaP256), &[host], &[1]);
        store
            .install(
                &name(lineage),
                &domains(&[host]),
                &issued.key_pem,
                &issued.chain_pem,
            )
            .expect("install");
    }
    assert_eq!(store.lineages().expect("list"), [name("api"), name("web")]);
}

#[test]
fn pending_order_key_is_private_and_removable() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(dir.path()).expect("open");
    let name = CertName::new("www").expect("name");
    let mut lineage = store.lineage(&name).expect("load");
    assert_eq!(lineage.pending_key().expect("read"), None);
    let order = PendingOrder::new(
        "https://ca/order/1",
        "https://ca/dir",
        &domains(&["www.example.com"]),
        KeyType::EcdsaP256,
        unix(1_750_000_000),
    );
    lineage
        .record_order(order, b"-----BEGIN PRIVATE KEY-----\n")
        .expect("write");
    let path = dir.path().join("state/www.order-key.pem");
    let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        store
            .lineage(&name)
            .expect("reload")
            .pending_key()
            .expect("read")
            .as_deref(),
        Some(&b"-----BEGIN PRIVATE KEY-----\n"[..])
    );
    lineage.forget_order().expect("remove");
    lineage.forget_order().expect("forgetting twice is fine");
    assert!(!path.exists());
}

#[test]
fn state_dir_is_closed_to_others() {
    let dir = tempfile::tempdir().expect("tempdir");
    let fresh = dir.path().join("fresh");
    Store::open(&fresh).expect("open");
    let mode = std::fs::metadata(&fresh)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(
        mode & 0o027,
        0,
        "created without group-write or other access: {mode:o}"
    );

    let existing = dir.path().join("existing");
    std::fs::create_dir(&existing).expect("mkdir");
    std::fs::set_permissions(&existing, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    Store::open(&existing).expect("open");
    let mode = std::fs::metadata(&existing)
        .expect("stat")
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o750, "tightened to 0750: {mode:o}");
}

#[test]
fn live_files_are_the_files_of_the_live_version_and_install_elsewhere() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let lineage = name("www");
    let names = domains(&["www.example.com"]);
    assert!(
        store
            .lineage(&lineage)
            .expect("load")
            .live_files()
            .expect("read nothing")
            .is_none()
    );
    for serial in [1_u8, 2] {
        let issued = issue(
            &ca,
            &new_key(KeyType::EcdsaP256),
            &["www.example.com"],
            &[serial],
        );
        store
            .install(&lineage, &names, &issued.key_pem, &issued.chain_pem)
            .expect("install");
    }
    let files = store
        .lineage(&lineage)
        .expect("load")
        .live_files()
        .expect("read")
        .expect("live");
    let live_dir = store.live_dir(&lineage);
    assert_eq!(files.cert.serial_hex, "2");
    assert_eq!(files.cert.version, "v0002");
    for (file, text) in [
        (CERT_FILE, &files.cert_pem),
        (CHAIN_FILE, &files.chain_pem),
        (FULLCHAIN_FILE, &files.fullchain_pem),
    ] {
        assert_eq!(
            &fs::read_to_string(live_dir.join(file)).expect("read"),
            text
        );
    }
    assert_eq!(
        fs::read(live_dir.join(PRIVKEY_FILE)).expect("read key"),
        files.key_pem.expose()
    );
    assert!(!format!("{files:?}").contains("PRIVATE KEY"));

    // What another node would do with them: check, then install, to the same bytes.
    let key = std::str::from_utf8(files.key_pem.expose()).expect("text");
    let facts =
        certkeeper_store::inspect_issue(&names, key, &files.fullchain_pem).expect("inspect");
    assert_eq!(facts.serial_hex, "2");
    assert_eq!(facts.not_before, unix(NOT_BEFORE_UNIX));
    assert_eq!(facts.not_after, unix(NOT_AFTER_UNIX));
    let (_other_dir, other) = open_store();
    let installed = other
        .install(&lineage, &names, key, &files.fullchain_pem)
        .expect("install elsewhere");
    assert_eq!(installed.serial_hex, "2");
    for file in [CERT_FILE, CHAIN_FILE, FULLCHAIN_FILE, PRIVKEY_FILE] {
        assert_eq!(
            fs::read(other.live_dir(&lineage).join(file)).expect("read"),
            fs::read(live_dir.join(file)).expect("read"),
            "{file}"
        );
    }

    // The checks an install makes, without the install.
    let wrong =
        certkeeper_store::inspect_issue(&domains(&["api.example.com"]), key, &files.fullchain_pem)
            .expect_err("other names");
    assert!(
        matches!(wrong, VerifyProblem::NamesMismatch { .. }),
        "{wrong:?}"
    );
    let other_key = new_key(KeyType::EcdsaP256).serialize_pem();
    assert_eq!(
        certkeeper_store::inspect_issue(&names, &other_key, &files.fullchain_pem),
        Err(VerifyProblem::KeyMismatch)
    );
}
