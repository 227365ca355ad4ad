//! The lineage aggregate against a temporary state directory: each transition's change of the
//! state as a table of instants, one atomic save per transition that changes something (none
//! for one that does not), and the in-memory state following the disk when a save fails.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, symlink};
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use certkeeper_core::{KeyType, RevocationReason};
use certkeeper_store::{
    AttemptRecord, FailureClass, Lineage, LineageState, PendingOrder, RATE_LIMIT_PAUSE,
    RECHECK_WAITING_ORDER, Store, StoreError, UnsafeProblem, unix_seconds,
};
use support::{domains, issue, mode, name, new_key, open_store, test_ca};

const NOW_UNIX: u64 = 1_750_000_000;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn www(store: &Store) -> Lineage {
    store.lineage(&name("www")).expect("load www")
}

fn state_file(store: &Store) -> PathBuf {
    store.lineage_state_path(&name("www"))
}

fn key_file(store: &Store) -> PathBuf {
    store.root().join("state/www.order-key.pem")
}

/// The state file's inode: an atomic save replaces the file, so a new inode is a new save.
fn inode(store: &Store) -> Option<u64> {
    fs::metadata(state_file(store)).ok().map(|meta| meta.ino())
}

fn order(url: &str, placed_at: SystemTime) -> PendingOrder {
    PendingOrder::new(
        url,
        "https://ca.example/dir",
        &domains(&["www.example.com", "example.com"]),
        KeyType::EcdsaP256,
        placed_at,
    )
}

/// What `record_failure` leaves after a fresh lineage's first failure, per class.
#[test]
fn a_failure_is_recorded_by_its_class() {
    let now = at(NOW_UNIX);
    let later = at(NOW_UNIX + 7);
    let failed = |retry_not_before: Option<SystemTime>| AttemptRecord {
        consecutive_failures: 1,
        failures_total: 1,
        last_failure_at_unix: Some(unix_seconds(now)),
        last_error: Some("CA down".to_owned()),
        retry_not_before_unix: retry_not_before.map(unix_seconds),
        ..AttemptRecord::default()
    };
    let table = [
        (
            FailureClass::WaitingOnCa,
            AttemptRecord {
                last_error: Some("waiting for the CA: CA down".to_owned()),
                retry_not_before_unix: Some(unix_seconds(now + RECHECK_WAITING_ORDER)),
                ..AttemptRecord::default()
            },
        ),
        (FailureClass::Transient { retry_after: None }, failed(None)),
        (
            FailureClass::Transient {
                retry_after: Some(later),
            },
            failed(Some(later)),
        ),
        (
            FailureClass::RateLimited { retry_after: None },
            failed(Some(now + RATE_LIMIT_PAUSE)),
        ),
        (
            FailureClass::RateLimited {
                retry_after: Some(later),
            },
            failed(Some(later)),
        ),
        (FailureClass::NeedsHuman, failed(None)),
    ];
    for (class, expected) in table {
        let (_dir, store) = open_store();
        let mut lineage = www(&store);
        lineage
            .record_failure(class, "CA down", now)
            .expect("record");
        assert_eq!(lineage.state().attempts, expected, "{class:?}");
        assert_eq!(www(&store).state(), lineage.state(), "{class:?}: saved");
    }
}

#[test]
fn failures_count_up_and_an_install_ends_the_streak_and_the_order() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let mut lineage = www(&store);
    let t0 = at(NOW_UNIX);

    // Order placed: its key first (0600), then the record.
    lineage
        .record_order(order("https://ca.example/order/1", t0), b"order key")
        .expect("order placed");
    assert_eq!(mode(&key_file(&store)), 0o600);
    assert_eq!(mode(&state_file(&store)), 0o644);
    let reloaded = www(&store);
    assert_eq!(
        reloaded.pending_order().map(|o| o.order_url.as_str()),
        Some("https://ca.example/order/1")
    );
    assert_eq!(
        reloaded.pending_order().map(|o| o.placed_at_unix),
        Some(1_750_000_000)
    );
    assert_eq!(
        reloaded.pending_key().expect("key").as_deref(),
        Some(&b"order key"[..])
    );

    // Parked, then two failures: the parked order is not a failure, the others count up and
    // the CA's pause of the first does not outlive the second.
    let t1 = at(NOW_UNIX + 60);
    let t2 = at(NOW_UNIX + 120);
    lineage
        .record_failure(FailureClass::WaitingOnCa, "pending approval", t0)
        .expect("parked");
    lineage
        .record_failure(
            FailureClass::RateLimited { retry_after: None },
            "slow down",
            t1,
        )
        .expect("failed");
    lineage
        .record_failure(FailureClass::Transient { retry_after: None }, "reset", t2)
        .expect("failed again");
    let saved = www(&store);
    let attempts = &saved.state().attempts;
    assert_eq!(attempts.consecutive_failures, 2);
    assert_eq!(attempts.failures_total, 2);
    assert_eq!(attempts.last_failure_at_unix, Some(unix_seconds(t2)));
    assert_eq!(attempts.last_error.as_deref(), Some("reset"));
    assert_eq!(attempts.retry_not_before_unix, None);
    assert!(
        lineage.pending_order().is_some(),
        "a failure keeps the order"
    );
    // Another node of the fleet holds the lease: no failure, looked at again when it expires.
    let t3 = at(NOW_UNIX + 180);
    lineage
        .record_failure(
            FailureClass::Elsewhere {
                recheck_at: at(NOW_UNIX + 240),
            },
            "renewed by node b",
            t3,
        )
        .expect("elsewhere");
    let saved = www(&store);
    let attempts = &saved.state().attempts;
    assert_eq!(attempts.consecutive_failures, 2, "not a failure");
    assert_eq!(attempts.last_error.as_deref(), Some("renewed by node b"));
    assert_eq!(
        attempts.retry_not_before_unix,
        Some(unix_seconds(at(NOW_UNIX + 240)))
    );
    // In a fleet, a failure continues the streak the other nodes recorded; a shorter one
    // changes nothing.
    lineage.continue_streak(5).expect("continue");
    assert_eq!(www(&store).state().attempts.consecutive_failures, 6);
    lineage.continue_streak(1).expect("shorter");
    assert_eq!(www(&store).state().attempts.consecutive_failures, 6);

    // Installed: the pair goes live, then the success is recorded with the order gone.
    let key = new_key(KeyType::EcdsaP256);
    let issued = issue(&ca, &key, &["www.example.com", "example.com"], &[0x42]);
    let live = lineage
        .install(
            &domains(&["www.example.com", "example.com"]),
            issued.key_pem.as_bytes(),
            &issued.chain_pem,
            None,
        )
        .expect("install");
    assert_eq!(live.serial_hex, "42");
    let t3 = at(NOW_UNIX + 180);
    lineage.record_install(t3).expect("installed");
    let expected = AttemptRecord {
        consecutive_failures: 0,
        failures_total: 2,
        last_failure_at_unix: Some(unix_seconds(t2)),
        last_success_at_unix: Some(unix_seconds(t3)),
        successes_total: 1,
        ..AttemptRecord::default()
    };
    let saved = www(&store);
    assert_eq!(saved.state().attempts, expected);
    assert_eq!(saved.pending_order(), None);
    assert!(!key_file(&store).exists(), "the order's key is removed");
    assert_eq!(
        saved.live().expect("read").expect("live").serial_hex,
        "42",
        "what is live is read against the loaded state"
    );
}

#[test]
fn a_key_that_is_not_text_is_refused_before_anything_is_written() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let issued = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[1],
    );
    let err = www(&store)
        .install(
            &domains(&["www.example.com"]),
            &[0xff, 0xfe],
            &issued.chain_pem,
            None,
        )
        .expect_err("not UTF-8");
    assert!(matches!(err, StoreError::Verify { .. }), "{err:?}");
    assert!(!store.root().join("archive/www").exists());
}

#[test]
fn a_forgotten_order_takes_its_key_along() {
    let (_dir, store) = open_store();
    let mut lineage = www(&store);
    lineage
        .record_order(order("https://ca.example/order/1", at(NOW_UNIX)), b"key")
        .expect("order placed");
    lineage.forget_order().expect("forget");
    assert_eq!(www(&store).state(), &LineageState::default());
    assert!(!key_file(&store).exists());
    // Nothing left to forget: nothing is written, and that is fine.
    let before = inode(&store);
    lineage.forget_order().expect("forget again");
    assert_eq!(inode(&store), before);
}

#[test]
fn a_stored_order_is_for_the_same_names_in_the_same_order_and_key_type() {
    let stored = order("https://ca.example/order/1", at(NOW_UNIX));
    let configured = domains(&["www.example.com", "example.com"]);
    assert!(stored.is_for(&configured, KeyType::EcdsaP256));
    assert!(!stored.is_for(&configured, KeyType::Rsa2048));
    assert!(!stored.is_for(
        &domains(&["example.com", "www.example.com"]),
        KeyType::EcdsaP256
    ));
    assert!(!stored.is_for(&domains(&["www.example.com"]), KeyType::EcdsaP256));
}

#[test]
fn a_deploy_stays_pending_until_it_succeeds_and_a_no_op_writes_nothing() {
    let (_dir, store) = open_store();
    let mut lineage = www(&store);
    lineage
        .record_deploy_failure("hook deploy:www exited with code 1")
        .expect("pending");
    let saved = www(&store);
    assert!(saved.state().attempts.pending_deploy);
    assert_eq!(
        saved.state().attempts.last_error.as_deref(),
        Some("deploy: hook deploy:www exited with code 1")
    );
    // The JSON shape other tools and tests read.
    let json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(state_file(&store)).expect("read")).expect("json");
    assert_eq!(json["attempts"]["pending_deploy"], true);

    lineage.record_deploy().expect("done");
    assert_eq!(www(&store).state(), &LineageState::default());

    // A deploy with nothing pending changes nothing: no write.
    let before = inode(&store);
    lineage.record_deploy().expect("done again");
    assert_eq!(inode(&store), before);

    // A success does not clear an attempt's error that is not the deploy's.
    lineage
        .record_failure(FailureClass::NeedsHuman, "refused", at(NOW_UNIX))
        .expect("failed");
    lineage.record_deploy().expect("deployed");
    assert_eq!(
        www(&store).state().attempts.last_error.as_deref(),
        Some("refused")
    );
}

#[test]
fn a_revocation_marks_the_live_certificate_through_the_loaded_state() {
    let ca = test_ca();
    let (_dir, store) = open_store();
    let names = domains(&["www.example.com"]);
    let issued = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[0x0a, 0x1b],
    );
    let mut lineage = www(&store);
    let live = lineage
        .install(&names, issued.key_pem.as_bytes(), &issued.chain_pem, None)
        .expect("install");
    assert!(!live.observed.revoked);
    lineage
        .record_revocation(
            &live.serial_hex.to_ascii_uppercase(),
            RevocationReason::Superseded,
            at(NOW_UNIX),
        )
        .expect("revoked");
    let revoked = lineage.state().revoked.clone().expect("record");
    assert_eq!(revoked.serial_hex, "a1b");
    assert_eq!(revoked.reason, "superseded");
    assert_eq!(revoked.at_unix, 1_750_000_000);
    // The in-memory state answers at once; a fresh load agrees.
    assert!(
        lineage
            .live_certificate()
            .expect("read")
            .expect("live")
            .observed
            .revoked
    );
    assert!(
        www(&store)
            .live()
            .expect("read")
            .expect("live")
            .observed
            .revoked
    );
}

#[test]
fn a_failed_save_leaves_the_loaded_state_as_the_file_is() {
    let (_dir, store) = open_store();
    let mut lineage = www(&store);
    lineage
        .record_failure(FailureClass::NeedsHuman, "first", at(NOW_UNIX))
        .expect("first failure");
    let before = lineage.state().clone();

    // Something planted in place of the state file: the save is refused, nothing changes.
    let path = state_file(&store);
    fs::remove_file(&path).expect("remove");
    let elsewhere = store.root().join("elsewhere.json");
    fs::write(&elsewhere, "{}\n").expect("victim");
    symlink(&elsewhere, &path).expect("plant");
    let err = lineage
        .record_failure(FailureClass::NeedsHuman, "second", at(NOW_UNIX + 1))
        .expect_err("refused");
    assert!(
        matches!(
            err,
            StoreError::Unsafe {
                problem: UnsafeProblem::Symlink { .. },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(lineage.state(), &before);
    assert_eq!(fs::read_to_string(&elsewhere).expect("victim"), "{}\n");
}
