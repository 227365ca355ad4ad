//! `key_group`: a lineage's `privkey.pem` is that group's and `0640` from its creation, every
//! version of it; the order's key in `state/` stays `0600` and certkeeper's; a key that cannot
//! be given to the group publishes nothing and leaves the live pair as it was.
//!
//! Root may give a file to any group, so these tests run the store in a thread that has
//! become an unprivileged user (credentials are per thread in Linux, and rustix changes the
//! calling thread's only): as `nobody`, in group `nogroup` and no other, what the daemon under
//! `User=certkeeper` can and cannot do is what this thread can and cannot do.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;

use certkeeper_core::{KeyGroup, KeyType};
use certkeeper_store::{PendingOrder, Store, StoreError};
use rustix::process::{Gid, Uid};
use support::{domains, issue, mode, name, new_key, test_ca};

/// `nobody` and `nogroup` (Debian's numbers; the kernel does not care whether they are named).
const NOBODY: u32 = 65_534;
const NOGROUP: u32 = 65_534;
/// A group `nobody` is not in (root may still give files to it).
const OTHER_GROUP: u32 = 4_242;

fn group(name: &str, gid: u32) -> KeyGroup {
    KeyGroup {
        name: name.to_owned(),
        gid,
    }
}

/// Run `test` in a thread that is `nobody`, in `nogroup` only. The thread's credentials die
/// with it.
fn as_nobody<T: Send>(test: impl FnOnce() -> T + Send) -> T {
    assert!(
        rustix::process::geteuid().is_root(),
        "the key_group tests run as root (as CI does): they become nobody in one thread"
    );
    std::thread::scope(|scope| {
        scope
            .spawn(|| {
                rustix::thread::set_thread_groups(&[]).expect("setgroups");
                rustix::thread::set_thread_res_gid(
                    Gid::from_raw(NOGROUP),
                    Gid::from_raw(NOGROUP),
                    Gid::from_raw(NOGROUP),
                )
                .expect("setresgid");
                rustix::thread::set_thread_res_uid(
                    Uid::from_raw(NOBODY),
                    Uid::from_raw(NOBODY),
                    Uid::from_raw(NOBODY),
                )
                .expect("setresuid");
                test()
            })
            .join()
            .expect("the test thread panicked")
    })
}

/// A temporary directory `nobody` may enter, and a state directory in it that is nobody's.
fn nobodys_state_dir() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().expect("tempdir");
    fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let state = dir.path().join("state");
    fs::create_dir(&state).expect("mkdir");
    std::os::unix::fs::chown(&state, Some(NOBODY), Some(NOGROUP)).expect("chown");
    (dir, state)
}

fn gid(path: &Path) -> u32 {
    fs::symlink_metadata(path).expect("metadata").gid()
}

fn install(store: &Store, serial: u8, key_group: Option<&KeyGroup>) -> Result<String, StoreError> {
    let ca = test_ca();
    let issued = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[serial],
    );
    store
        .lineage(&name("www"))
        .expect("load")
        .install(
            &domains(&["www.example.com"]),
            issued.key_pem.as_bytes(),
            &issued.chain_pem,
            key_group,
        )
        .map(|live| live.version)
}

#[test]
fn every_version_of_the_key_is_the_groups_and_0640_the_order_key_stays_private() {
    let (_dir, state) = nobodys_state_dir();
    let nogroup = group("nogroup", NOGROUP);
    as_nobody(|| {
        let store = Store::open(&state).expect("open");
        let mut lineage = store.lineage(&name("www")).expect("load");
        lineage
            .record_order(
                PendingOrder::new(
                    "https://ca.invalid/order/1",
                    "https://ca.invalid/dir",
                    &domains(&["www.example.com"]),
                    KeyType::EcdsaP256,
                    std::time::SystemTime::now(),
                ),
                b"order key",
            )
            .expect("order");
        let order_key = state.join("state/www.order-key.pem");
        assert_eq!(mode(&order_key), 0o600);

        for serial in 1..=2 {
            let version = install(&store, serial, Some(&nogroup)).expect("install");
            let key = state.join("archive/www").join(&version).join("privkey.pem");
            assert_eq!(mode(&key), 0o640, "{version}");
            assert_eq!(gid(&key), NOGROUP, "{version}");
            let cert = state.join("archive/www").join(&version).join("cert.pem");
            assert_eq!(mode(&cert), 0o644);
            assert_eq!(mode(&key.with_file_name("")), 0o750, "{version} directory");
        }
        assert_eq!(
            mode(&order_key),
            0o600,
            "the order's key is not the group's"
        );

        // The group-readable key is read back, and handed over for reuse.
        let lineage = store.lineage(&name("www")).expect("load");
        let live = lineage.live().expect("read").expect("live");
        assert_eq!(live.version, "v0002");
        let key = lineage.live_key().expect("read key").expect("live key");
        assert_eq!(key.key_type, Some(KeyType::EcdsaP256));
        assert!(
            std::str::from_utf8(key.pem.expose())
                .expect("text")
                .contains("PRIVATE KEY")
        );
    });
}

#[test]
fn a_group_certkeeper_is_not_in_fails_the_install_and_the_live_pair_stays() {
    let (_dir, state) = nobodys_state_dir();
    let other = group("ssl-cert", OTHER_GROUP);
    as_nobody(|| {
        let store = Store::open(&state).expect("open");
        let first = install(&store, 1, None).expect("first install");
        assert_eq!(mode(&state.join("archive/www/v0001/privkey.pem")), 0o600);

        let err = install(&store, 2, Some(&other)).expect_err("not a member");
        let StoreError::KeyGroup { member, .. } = &err else {
            panic!("{err:?}");
        };
        assert!(!member);
        assert!(!err.is_transient(), "a human must act");
        let message = err.to_string();
        for needle in [
            "group ssl-cert (gid 4242)",
            "neither root nor a member of ssl-cert",
            "SupplementaryGroups=ssl-cert",
            "the live certificate was left as it was",
        ] {
            assert!(message.contains(needle), "{needle:?} in {message}");
        }

        let live = store.read_live(&name("www")).expect("read").expect("live");
        assert_eq!(live.version, first, "the live pair stays");
        let archived: Vec<String> = fs::read_dir(state.join("archive/www"))
            .expect("list")
            .map(|entry| {
                entry
                    .expect("entry")
                    .file_name()
                    .into_string()
                    .expect("utf-8")
            })
            .collect();
        assert_eq!(archived, ["v0001"], "no version, no staging left");
    });
}

#[test]
fn root_gives_the_key_to_any_group() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state")).expect("open");
    let version = install(&store, 1, Some(&group("ssl-cert", OTHER_GROUP))).expect("install");
    let key = dir
        .path()
        .join("state/archive/www")
        .join(version)
        .join("privkey.pem");
    assert_eq!((mode(&key), gid(&key)), (0o640, OTHER_GROUP));
}

#[test]
fn a_key_open_to_others_or_writable_by_the_group_is_still_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let store = Store::open(&dir.path().join("state")).expect("open");
    install(&store, 1, Some(&group("ssl-cert", OTHER_GROUP))).expect("install");
    let key = dir.path().join("state/archive/www/v0001/privkey.pem");
    for wider in [0o660, 0o644, 0o604] {
        fs::set_permissions(&key, fs::Permissions::from_mode(wider)).expect("chmod");
        let err = store.read_live(&name("www")).expect_err("open to others");
        assert!(
            matches!(
                &err,
                StoreError::Unsafe { problem: certkeeper_store::UnsafeProblem::OpenToOthers { mode }, .. }
                    if *mode == wider
            ),
            "{wider:o}: {err:?}"
        );
    }
}
