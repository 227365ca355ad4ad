//! The store against a hostile state directory (issue 10): an attacker controlling the account
//! that can write into the state directory plants symlinks and hard links, and certkeeper
//! (possibly root) must neither follow them nor write through them.
//!
//! Every test plants something in a temporary state directory pointing at a victim outside
//! it, runs the store, and checks that the store refused with [`StoreError::Unsafe`] naming
//! the planted entry and that the victim's content, mode and owner are unchanged. The store
//! before issue 10 followed every one of these.

mod support;

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt, symlink};
use std::path::{Path, PathBuf};

use certkeeper_core::KeyType;
use certkeeper_store::layout::{CERT_FILE, PRIVKEY_FILE};
use certkeeper_store::{FileKind, PendingOrder, Store, StoreError, UnsafeProblem};
use support::{Issued, TestCa, domains, issue, mode, name, new_key, snapshot, test_ca};

/// A temporary directory holding the state directory and, beside it, the attacker's victims.
struct Scene {
    _dir: tempfile::TempDir,
    state: PathBuf,
    outside: PathBuf,
}

impl Scene {
    /// `state/` (not yet opened) and `outside/` (`0755`, empty).
    fn new() -> Scene {
        let dir = tempfile::tempdir().expect("tempdir");
        let state = dir.path().join("state");
        let outside = dir.path().join("outside");
        fs::create_dir(&outside).expect("mkdir outside");
        fs::set_permissions(&outside, fs::Permissions::from_mode(0o755)).expect("chmod");
        Scene {
            _dir: dir,
            state,
            outside,
        }
    }

    /// A victim file outside the state directory, `0640`.
    fn victim_file(&self, file: &str, content: &str) -> PathBuf {
        let path = self.outside.join(file);
        fs::write(&path, content).expect("victim");
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).expect("chmod");
        path
    }

    fn open(&self) -> Store {
        Store::open(&self.state).expect("open store")
    }

    /// Replace the directory `state/sub` by a symlink to `target`.
    fn swap_for_link(&self, sub: &str, target: &Path) -> PathBuf {
        let path = self.state.join(sub);
        fs::remove_dir_all(&path).expect("remove");
        symlink(target, &path).expect("plant symlink");
        path
    }
}

/// Content (or listing), mode and owner of `path` and everything under it, to compare a
/// victim before and after.
fn fingerprint(path: &Path) -> String {
    let meta = fs::symlink_metadata(path).expect("victim metadata");
    let what = if meta.is_dir() {
        format!("{:?}", snapshot(path))
    } else {
        String::from_utf8_lossy(&fs::read(path).expect("victim content")).into_owned()
    };
    format!(
        "mode {:o} owner {}:{} {what}",
        meta.mode() & 0o7777,
        meta.uid(),
        meta.gid()
    )
}

/// The refusal of `path`, or a panic saying what happened instead.
fn refused<T: std::fmt::Debug>(result: Result<T, StoreError>, path: &Path) -> UnsafeProblem {
    match result {
        Err(StoreError::Unsafe {
            path: refused,
            problem,
        }) if refused == path => problem,
        other => panic!(
            "expected {} to be refused as unsafe, got {other:?}",
            path.display()
        ),
    }
}

fn assert_symlink_refused<T: std::fmt::Debug>(result: Result<T, StoreError>, path: &Path) {
    let err = match result {
        Err(err) => err,
        Ok(value) => panic!("expected {} to be refused, got {value:?}", path.display()),
    };
    let message = err.to_string();
    assert!(
        matches!(
            refused(Err::<(), _>(err), path),
            UnsafeProblem::Symlink { .. }
        ),
        "{message}"
    );
    assert!(message.contains("never follows symlinks"), "{message}");
    assert!(message.contains("compromised"), "{message}");
}

/// A valid certificate and key for `www.example.com`, written as a lineage directory at
/// `dir` (key `0600`), as an attacker would plant it to have it served or reported.
fn plant_lineage(ca: &TestCa, dir: &Path, serial: u8) -> Issued {
    let issued = issue(
        ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[serial],
    );
    fs::create_dir_all(dir).expect("mkdir lineage");
    fs::write(dir.join(CERT_FILE), &issued.chain_pem).expect("cert");
    fs::write(dir.join(PRIVKEY_FILE), &issued.key_pem).expect("key");
    fs::set_permissions(dir.join(PRIVKEY_FILE), fs::Permissions::from_mode(0o600)).expect("chmod");
    issued
}

fn install_www(store: &Store, ca: &TestCa, serial: u8) -> Result<(), StoreError> {
    let issued = issue(
        ca,
        &new_key(KeyType::EcdsaP256),
        &["www.example.com"],
        &[serial],
    );
    store
        .install(
            &name("www"),
            &domains(&["www.example.com"]),
            &issued.key_pem,
            &issued.chain_pem,
        )
        .map(drop)
}

/// An order in flight for `www`.
fn order() -> PendingOrder {
    PendingOrder::new(
        "https://ca/order/1",
        "https://ca/dir",
        &domains(&["www.example.com"]),
        KeyType::EcdsaP256,
        std::time::SystemTime::UNIX_EPOCH,
    )
}

fn account_key() -> (String, String) {
    ("localhost_14000_dir".to_owned(), "kid-1".to_owned())
}

// ---------------------------------------------------------------- the lock file

#[test]
fn a_lock_symlink_to_a_root_file_is_refused_and_the_file_untouched() {
    let scene = Scene::new();
    let store = scene.open();
    let victim = scene.victim_file("shadow", "root:secret-hash:19000::::::\n");
    let before = fingerprint(&victim);
    let lock = scene.state.join("lock");
    symlink(&victim, &lock).expect("plant");

    assert_symlink_refused(store.lock(), &lock);
    assert_eq!(fingerprint(&victim), before, "the victim must be untouched");
}

#[test]
fn a_dangling_lock_symlink_creates_nothing_at_its_target() {
    let scene = Scene::new();
    let store = scene.open();
    let target = scene.outside.join("etc-cron.d-evil");
    let lock = scene.state.join("lock");
    symlink(&target, &lock).expect("plant");

    assert_symlink_refused(store.lock(), &lock);
    assert!(
        fs::symlink_metadata(&target).is_err(),
        "nothing may be created at the link's target"
    );
}

#[test]
fn a_hard_linked_lock_is_refused_and_the_other_file_untouched() {
    let scene = Scene::new();
    let store = scene.open();
    let victim = scene.victim_file("passwd", "root:x:0:0::/root:/bin/sh\n");
    let before = fingerprint(&victim);
    let lock = scene.state.join("lock");
    fs::hard_link(&victim, &lock).expect("plant hard link");

    let problem = refused(store.lock(), &lock);
    assert_eq!(problem, UnsafeProblem::TooManyLinks { links: 2 });
    assert_eq!(fingerprint(&victim), before, "the victim must be untouched");
}

// ---------------------------------------------------------------- top-level directories

#[test]
fn an_accounts_symlink_is_refused_and_the_target_keeps_its_mode() {
    let scene = Scene::new();
    scene.open();
    let before = fingerprint(&scene.outside);
    let accounts = scene.swap_for_link("accounts", &scene.outside);

    // At open (root's `status` used to chmod the target 0700)...
    assert_symlink_refused(Store::open(&scene.state), &accounts);
    assert_eq!(fingerprint(&scene.outside), before);

    // ...and when the link appears while a store is open.
    fs::remove_file(&accounts).expect("unplant");
    let store = scene.open();
    scene.swap_for_link("accounts", &scene.outside);
    assert_symlink_refused(store.write_account(&account_key(), b"{}"), &accounts);
    assert_symlink_refused(store.read_account(&account_key()), &accounts);
    assert_eq!(
        fingerprint(&scene.outside),
        before,
        "nothing written outside"
    );
}

#[test]
fn an_archive_lineage_symlink_gets_no_install() {
    let ca = test_ca();
    let scene = Scene::new();
    let store = scene.open();
    let before = fingerprint(&scene.outside);
    let planted = scene.state.join("archive/www");
    symlink(&scene.outside, &planted).expect("plant");

    assert_symlink_refused(install_www(&store, &ca, 1), &planted);
    assert_eq!(
        fingerprint(&scene.outside),
        before,
        "nothing written outside"
    );
    assert!(
        fs::symlink_metadata(scene.state.join("live/www")).is_err(),
        "nothing made live"
    );
}

#[test]
fn an_archive_symlink_is_refused() {
    let ca = test_ca();
    let scene = Scene::new();
    scene.open();
    let before = fingerprint(&scene.outside);
    let archive = scene.swap_for_link("archive", &scene.outside);

    assert_symlink_refused(Store::open(&scene.state), &archive);
    fs::remove_file(&archive).expect("unplant");
    let store = scene.open();
    scene.swap_for_link("archive", &scene.outside);
    assert_symlink_refused(install_www(&store, &ca, 1), &archive);
    assert_eq!(
        fingerprint(&scene.outside),
        before,
        "nothing written outside"
    );
}

#[test]
fn a_live_symlink_is_refused_for_reading_and_installing() {
    let ca = test_ca();
    let scene = Scene::new();
    scene.open();
    let live = scene.swap_for_link("live", &scene.outside);
    assert_symlink_refused(Store::open(&scene.state), &live);

    fs::remove_file(&live).expect("unplant");
    let store = scene.open();
    // The attacker's live/ holds a lineage with a valid certificate and key.
    plant_lineage(&ca, &scene.outside.join("www"), 0x66);
    let before = fingerprint(&scene.outside);
    scene.swap_for_link("live", &scene.outside);

    assert_symlink_refused(store.read_live(&name("www")), &live);
    assert_symlink_refused(store.read_live_certificate(&name("www")), &live);
    assert_symlink_refused(store.lineages(), &live);
    assert_symlink_refused(install_www(&store, &ca, 1), &live);
    assert_eq!(
        fingerprint(&scene.outside),
        before,
        "nothing written outside"
    );
}

#[test]
fn a_state_symlink_gets_no_state_and_no_order_key() {
    let scene = Scene::new();
    scene.open();
    let before = fingerprint(&scene.outside);
    let state = scene.swap_for_link("state", &scene.outside);
    assert_symlink_refused(Store::open(&scene.state), &state);

    fs::remove_file(&state).expect("unplant");
    let store = scene.open();
    let www = name("www");
    // Loaded before the link was planted: its transitions refuse to save through it.
    let mut lineage = store.lineage(&www).expect("load");
    scene.swap_for_link("state", &scene.outside);
    assert_symlink_refused(lineage.record_deploy_failure("hook failed"), &state);
    assert_symlink_refused(lineage.record_order(order(), b"order key"), &state);
    assert_symlink_refused(store.lineage(&www), &state);
    assert_symlink_refused(lineage.pending_key(), &state);
    assert_eq!(
        fingerprint(&scene.outside),
        before,
        "nothing written outside"
    );
}

// ---------------------------------------------------------------- files in state/

#[test]
fn a_state_file_symlink_is_refused_and_the_victim_unchanged() {
    let scene = Scene::new();
    let store = scene.open();
    let victim = scene.victim_file("config.json", "{}\n");
    let before = fingerprint(&victim);
    let planted = scene.state.join("state/www.json");
    let www = name("www");
    let mut lineage = store.lineage(&www).expect("load before the plant");
    symlink(&victim, &planted).expect("plant");

    assert_symlink_refused(store.lineage(&www), &planted);
    assert_symlink_refused(lineage.record_deploy_failure("hook failed"), &planted);
    // Even a read-only command refuses: the lineage state is read by every read of live/.
    assert_symlink_refused(store.read_live(&www), &planted);
    assert_eq!(fingerprint(&victim), before, "the victim must be untouched");
    assert!(fs::symlink_metadata(&planted).expect("link").is_symlink());
}

#[test]
fn a_pending_key_symlink_is_refused_and_the_victim_unchanged() {
    let scene = Scene::new();
    let store = scene.open();
    let victim = scene.victim_file("authorized_keys", "ssh-ed25519 AAAA... admin\n");
    let before = fingerprint(&victim);
    let planted = scene.state.join("state/www.order-key.pem");
    symlink(&victim, &planted).expect("plant");

    let mut lineage = store.lineage(&name("www")).expect("load");
    assert_symlink_refused(lineage.record_order(order(), b"order key"), &planted);
    assert_symlink_refused(lineage.pending_key(), &planted);
    assert_symlink_refused(lineage.forget_order(), &planted);
    assert_eq!(fingerprint(&victim), before, "the victim must be untouched");
}

// ---------------------------------------------------------------- live/NAME links

#[test]
fn an_absolute_live_link_to_an_outside_lineage_is_refused() {
    let ca = test_ca();
    let scene = Scene::new();
    let store = scene.open();
    let elsewhere = scene.outside.join("lineage");
    plant_lineage(&ca, &elsewhere, 0x66);
    let before = fingerprint(&scene.outside);
    let link = scene.state.join("live/www");
    symlink(&elsewhere, &link).expect("plant");

    let www = name("www");
    for result in [store.read_live(&www), store.read_live_certificate(&www)] {
        assert_eq!(
            refused(result, &link),
            UnsafeProblem::LinkTarget {
                target: elsewhere.clone()
            }
        );
    }
    let message = store.read_live(&www).expect_err("refused").to_string();
    assert!(
        message.contains(&elsewhere.display().to_string()),
        "{message}"
    );
    assert!(message.contains("never follows symlinks"), "{message}");
    assert_eq!(fingerprint(&scene.outside), before);
}

#[test]
fn live_links_escaping_the_archive_or_crossing_lineages_are_refused() {
    let ca = test_ca();
    let scene = Scene::new();
    let store = scene.open();
    plant_lineage(&ca, &scene.outside.join("lineage"), 0x66);
    // A real, certkeeper-made lineage `other`, whose version www must not borrow.
    let other = issue(
        &ca,
        &new_key(KeyType::EcdsaP256),
        &["other.example.com"],
        &[7],
    );
    store
        .install(
            &name("other"),
            &domains(&["other.example.com"]),
            &other.key_pem,
            &other.chain_pem,
        )
        .expect("install other");
    let link = scene.state.join("live/www");
    let www = name("www");
    for target in [
        "../../outside/lineage",
        "../archive/other/v0001",
        "../archive/www/../other/v0001",
        "../archive/www/v0001/../../other/v0001",
        "../archive/www/vjunk",
        "../live/other",
    ] {
        symlink(target, &link).expect("plant");
        assert_eq!(
            refused(store.read_live_certificate(&www), &link),
            UnsafeProblem::LinkTarget {
                target: PathBuf::from(target)
            },
            "{target}"
        );
        fs::remove_file(&link).expect("unplant");
    }
}

#[test]
fn a_version_directory_swapped_for_a_symlink_is_refused() {
    let ca = test_ca();
    let scene = Scene::new();
    let store = scene.open();
    install_www(&store, &ca, 1).expect("install");
    plant_lineage(&ca, &scene.outside.join("lineage"), 0x66);
    // live/www -> ../archive/www/v0001 is certkeeper's own link; v0001 is now the attacker's.
    let version = scene.state.join("archive/www/v0001");
    fs::remove_dir_all(&version).expect("remove version");
    symlink(scene.outside.join("lineage"), &version).expect("plant");

    assert_symlink_refused(store.read_live(&name("www")), &version);
}

// ---------------------------------------------------------------- modes and owners

#[test]
fn world_writable_directories_are_tightened_at_open() {
    let scene = Scene::new();
    for sub in ["", "accounts", "archive", "archive/www", "live", "state"] {
        let dir = scene.state.join(sub);
        fs::create_dir_all(&dir).expect("mkdir");
        // World-writable, setgid and sticky: a group member could plant the next order's key.
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o3777)).expect("chmod");
    }
    let store = scene.open();
    for (sub, want) in [
        ("", 0o750),
        ("accounts", 0o700),
        ("archive", 0o750),
        ("live", 0o750),
        ("state", 0o700),
    ] {
        assert_eq!(mode(&scene.state.join(sub)), want, "state/{sub}");
    }
    // archive/NAME is tightened when an install opens it.
    assert_eq!(mode(&scene.state.join("archive/www")), 0o3777);
    install_www(&store, &test_ca(), 1).expect("install");
    assert_eq!(mode(&scene.state.join("archive/www")), 0o750);
    assert_eq!(mode(&scene.state.join("archive/www/v0001")), 0o750);
}

#[test]
fn a_file_where_a_directory_belongs_is_refused() {
    let scene = Scene::new();
    fs::create_dir(&scene.state).expect("mkdir");
    fs::write(scene.state.join("live"), "not a directory").expect("plant");
    let problem = refused(Store::open(&scene.state), &scene.state.join("live"));
    assert_eq!(
        problem,
        UnsafeProblem::WrongType {
            expected: FileKind::Directory,
            found: FileKind::RegularFile
        }
    );
}

#[test]
fn a_symlinked_state_directory_is_refused() {
    let scene = Scene::new();
    let link = scene.state.clone();
    symlink(&scene.outside, &link).expect("plant");
    let before = fingerprint(&scene.outside);
    assert_symlink_refused(Store::open(&link), &link);
    assert_eq!(
        fingerprint(&scene.outside),
        before,
        "nothing created outside"
    );
}

/// Running as root, make `path` belong to `nobody` (65534).
fn give_to_nobody(path: &Path) {
    assert!(
        rustix::process::geteuid().is_root(),
        "this test needs root to chown files to another user (CI runs the tests as root); \
         run it with sudo -E cargo test -p certkeeper-store --test hostile"
    );
    rustix::fs::chown(path, Some(rustix::process::Uid::from_raw(65_534)), None).expect("chown");
}

#[test]
fn a_state_directory_of_another_user_is_refused() {
    let scene = Scene::new();
    fs::create_dir(&scene.state).expect("mkdir");
    fs::set_permissions(&scene.state, fs::Permissions::from_mode(0o777)).expect("chmod");
    give_to_nobody(&scene.state);
    let before = fingerprint(&scene.state);

    let err = Store::open(&scene.state).expect_err("another user's state directory");
    match &err {
        StoreError::StateDirNotOwned {
            path,
            owner,
            running_as,
        } => {
            assert_eq!(path, &scene.state);
            assert_eq!((*owner, *running_as), (65_534, 0));
        }
        other => panic!("expected StateDirNotOwned, got {other:?}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("runuser -u \"$(id -nu 65534)\" -- certkeeper"),
        "{message}"
    );
    assert_eq!(
        fingerprint(&scene.state),
        before,
        "nothing created or tightened"
    );
}

#[test]
fn files_and_directories_of_another_user_are_refused() {
    let ca = test_ca();
    let scene = Scene::new();
    let store = scene.open();
    let www = name("www");

    // A lineage state file planted by another user (hard links and copies alike).
    let state_file = scene.state.join("state/www.json");
    fs::write(&state_file, "{}\n").expect("plant");
    give_to_nobody(&state_file);
    assert_eq!(
        refused(store.lineage(&www), &state_file),
        UnsafeProblem::WrongOwner {
            uid: 65_534,
            expected: 0
        }
    );
    fs::remove_file(&state_file).expect("unplant");

    // A lock file of another user is neither locked nor truncated.
    let lock = scene.state.join("lock");
    fs::write(&lock, "theirs\n").expect("plant");
    give_to_nobody(&lock);
    assert!(matches!(
        refused(store.lock(), &lock),
        UnsafeProblem::WrongOwner { uid: 65_534, .. }
    ));
    assert_eq!(fs::read_to_string(&lock).expect("lock"), "theirs\n");

    // A version directory of another user is not read.
    install_www(&store, &ca, 1).expect("install");
    let version = scene.state.join("archive/www/v0001");
    give_to_nobody(&version);
    assert!(matches!(
        refused(store.read_live(&www), &version),
        UnsafeProblem::WrongOwner { uid: 65_534, .. }
    ));
}

#[test]
fn secrets_open_to_others_are_refused() {
    let scene = Scene::new();
    let store = scene.open();
    let mut lineage = store.lineage(&name("www")).expect("load");
    lineage
        .record_order(order(), b"order key")
        .expect("write key");
    let key = scene.state.join("state/www.order-key.pem");
    fs::set_permissions(&key, fs::Permissions::from_mode(0o640)).expect("chmod");
    assert_eq!(
        refused(lineage.pending_key(), &key),
        UnsafeProblem::OpenToOthers { mode: 0o640 }
    );

    let path = store
        .write_account(&account_key(), b"{}")
        .expect("write account");
    fs::set_permissions(&path, fs::Permissions::from_mode(0o604)).expect("chmod");
    assert_eq!(
        refused(store.read_account(&account_key()), &path),
        UnsafeProblem::OpenToOthers { mode: 0o604 }
    );
}

#[test]
fn the_store_keeps_working_in_the_directory_it_opened() {
    // The state directory is held open: renaming it away and planting a link at its path
    // does not redirect the store.
    let ca = test_ca();
    let scene = Scene::new();
    let store = scene.open();
    let moved = scene.state.with_file_name("moved");
    fs::rename(&scene.state, &moved).expect("rename");
    symlink(&scene.outside, &scene.state).expect("plant");
    let before = fingerprint(&scene.outside);

    install_www(&store, &ca, 1).expect("install into the opened directory");
    store
        .lineage(&name("www"))
        .expect("load")
        .record_deploy_failure("hook failed")
        .expect("state");
    assert_eq!(
        fingerprint(&scene.outside),
        before,
        "nothing written outside"
    );
    assert!(moved.join("archive/www/v0001").join(PRIVKEY_FILE).exists());
}
