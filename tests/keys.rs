//! Private keys as operators expect them, end to end against a real Pebble with the
//! `certkeeper` binary: `reuse_key` keeps the live certificate's public key across forced
//! renewals, `renew --new-key` rotates it once (also carried out by a running daemon), a
//! `key_type` change makes a new key despite `reuse_key`; `key_group` makes every version's `privkey.pem` `0640` and that group's when
//! certkeeper runs as an unprivileged user in the group (as the packaged unit runs it), fails
//! clearly and leaves the live pair alone when the user is not in it, and an unknown group is
//! a configuration error (exit 78).

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::process::Command;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::hostile::{attacker, open_to_others};
use support::{
    Cert, PebbleOptions, Setup, key_description, key_matches, mode, openssl, stderr, stdout,
};

/// The public key of a private key file, as PEM.
fn public_key(key: &Path) -> String {
    openssl(&["pkey", "-in", key.to_str().unwrap(), "-pubout"])
}

/// The public key of what is live for `name`, checked to be the live certificate's.
fn live_public_key(setup: &Setup, name: &str) -> String {
    let live = setup.live(name);
    assert!(
        key_matches(&live.join("cert.pem"), &live.join("privkey.pem")),
        "{name}: the live key is the certificate's"
    );
    public_key(&live.join("privkey.pem"))
}

fn renew(setup: &Setup, args: &[&str]) {
    let output = setup.certkeeper(args);
    assert!(output.status.success(), "certkeeper {args:?} failed");
}

#[test]
fn reuse_key_keeps_the_public_key_until_new_key_or_a_key_type_change() {
    let setup = Setup::new(PebbleOptions::default());
    let kept = ["kept.example.com"];
    let fresh = ["fresh.example.com"];
    let certs = |key_type| {
        [
            Cert {
                key_type,
                extra: "reuse_key = true",
                ..Cert::new("kept", &kept)
            },
            Cert::new("fresh", &fresh),
        ]
    };
    setup.write_config(&certs("ecdsa-p256"));
    renew(&setup, &["renew"]);
    let first = live_public_key(&setup, "kept");
    let fresh_first = live_public_key(&setup, "fresh");

    renew(&setup, &["renew", "--force"]);
    assert_eq!(setup.versions("kept").len(), 2);
    assert_eq!(
        live_public_key(&setup, "kept"),
        first,
        "reuse_key: the forced renewal kept the key"
    );
    assert_ne!(
        live_public_key(&setup, "fresh"),
        fresh_first,
        "without reuse_key every certificate gets a new key"
    );

    // --new-key renews now (no --force needed) with a new key, once.
    let output = setup.certkeeper(&["renew", "--new-key", "kept"]);
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("renew --new-key asks for one"),
        "the reason is logged at info"
    );
    assert_eq!(setup.versions("kept").len(), 3);
    let rotated = live_public_key(&setup, "kept");
    assert_ne!(rotated, first, "--new-key changed the key");
    renew(&setup, &["renew", "--force", "--new-key", "kept"]);
    let rotated_again = live_public_key(&setup, "kept");
    assert_ne!(
        rotated_again, rotated,
        "--new-key is valid with --force too"
    );
    renew(&setup, &["renew", "--force", "kept"]);
    assert_eq!(setup.versions("kept").len(), 5);
    assert_eq!(
        live_public_key(&setup, "kept"),
        rotated_again,
        "later renewals reuse the rotated key"
    );

    // Another key_type makes the certificate due, and a new key of that type.
    setup.write_config(&certs("ecdsa-p384"));
    let output = setup.certkeeper(&["renew", "kept"]);
    assert!(output.status.success());
    assert!(
        stderr(&output).contains("is ecdsa-p256 and key_type is ecdsa-p384"),
        "the reason is logged at info"
    );
    assert_eq!(setup.versions("kept").len(), 6);
    assert_ne!(live_public_key(&setup, "kept"), rotated_again);
    assert!(
        key_description(&setup.live("kept").join("privkey.pem")).contains("384 bit"),
        "the new key is of the new type"
    );
}

#[test]
fn the_running_daemon_reuses_the_key_and_rotates_it_for_renew_new_key() {
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert {
        extra: "reuse_key = true",
        ..Cert::new("www", &["www.example.com"])
    }]);
    let mut daemon = setup.spawn_daemon(&[]);
    let cert = setup.live("www").join("cert.pem");
    let socket = setup.state_dir.join("control.sock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while !(cert.exists() && std::os::unix::net::UnixStream::connect(&socket).is_ok()) {
        assert!(Instant::now() < deadline, "{}", daemon.log_text());
        std::thread::sleep(Duration::from_millis(50));
    }
    let first = live_public_key(&setup, "www");

    // Both carried out by the daemon (the control socket), not by the client itself.
    let output = setup.certkeeper(&["renew", "--force", "www"]);
    assert!(output.status.success(), "{}", daemon.log_text());
    assert_eq!(setup.versions("www").len(), 2);
    assert_eq!(
        live_public_key(&setup, "www"),
        first,
        "the daemon reused the key"
    );
    let output = setup.certkeeper(&["renew", "--new-key", "www"]);
    assert!(output.status.success(), "{}", daemon.log_text());
    assert!(stdout(&output).contains("www"), "the daemon answered");
    assert_eq!(setup.versions("www").len(), 3);
    assert_ne!(
        live_public_key(&setup, "www"),
        first,
        "--new-key rotated it"
    );
    assert!(daemon.log_text().contains("renew --new-key asks for one"));

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
}

/// Groups made for these tests (left in place, like the attacker user): one certkeeper's
/// user is a member of, one it is not.
const KEY_GROUP: &str = "ck-keys";
const FOREIGN_GROUP: &str = "ck-keys-foreign";

/// The gid of `group`, creating it (with `members`) on first use.
fn test_group(group: &str, members: &[&str]) -> u32 {
    static CREATE: Mutex<()> = Mutex::new(());
    let _guard = CREATE
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let gid = || {
        let output = Command::new("getent")
            .args(["group", group])
            .output()
            .ok()?;
        let line = String::from_utf8(output.stdout).ok()?;
        line.split(':').nth(2)?.trim().parse::<u32>().ok()
    };
    if gid().is_none() {
        let status = Command::new("groupadd")
            .args(["--system", group])
            .status()
            .expect("groupadd (package passwd) is needed to create a test group");
        assert!(
            status.success() || gid().is_some(),
            "groupadd {group} failed"
        );
    }
    for member in members {
        let status = Command::new("gpasswd")
            .args(["--add", member, group])
            .stdout(std::process::Stdio::null())
            .status()
            .expect("gpasswd (package passwd)");
        assert!(status.success(), "gpasswd --add {member} {group} failed");
    }
    gid().unwrap()
}

#[test]
fn key_group_keys_are_the_groups_and_0640_in_every_version_as_the_daemons_user() {
    let user = attacker();
    let group = test_group(KEY_GROUP, &[support::hostile::ATTACKER]);
    let setup = Setup::new(PebbleOptions::default());
    // certkeeper's state directory belongs to its unprivileged user; root runs `certkeeper
    // renew`, which reads the root-only configuration and secret, then becomes that user
    // with the user's groups (as systemd's User= does) before touching the state directory.
    fs::create_dir(&setup.state_dir).unwrap();
    user.chown(&setup.state_dir);
    open_to_others(setup.dir.path());
    open_to_others(setup.pebble.dir.path());
    let extra = format!("key_group = \"{KEY_GROUP}\"");
    setup.write_config(&[Cert {
        extra: &extra,
        ..Cert::new("db", &["db.example.com"])
    }]);

    renew(&setup, &["renew"]);
    renew(&setup, &["renew", "--force"]);
    let versions = setup.versions("db");
    assert_eq!(versions.len(), 2);
    for version in &versions {
        let dir = setup.state_dir.join("archive/db").join(version);
        let key = fs::metadata(dir.join("privkey.pem")).unwrap();
        assert_eq!(key.mode() & 0o7777, 0o640, "{version}: privkey.pem mode");
        assert_eq!(key.gid(), group, "{version}: privkey.pem group");
        assert_eq!(key.uid(), user.uid, "{version}: certkeeper's user owns it");
        assert_eq!(mode(&dir.join("cert.pem")), 0o644);
    }
    assert!(
        !setup.state_dir.join("state/db.order-key.pem").exists(),
        "no order left in flight"
    );
    let live = setup.live("db");
    assert!(key_matches(
        &live.join("cert.pem"),
        &live.join("privkey.pem")
    ));
}

#[test]
fn a_group_the_user_is_not_in_fails_clearly_and_the_live_pair_stays() {
    let user = attacker();
    test_group(FOREIGN_GROUP, &[]);
    let setup = Setup::new(PebbleOptions::default());
    fs::create_dir(&setup.state_dir).unwrap();
    user.chown(&setup.state_dir);
    open_to_others(setup.dir.path());
    open_to_others(setup.pebble.dir.path());
    let cert = |extra| Cert {
        extra,
        ..Cert::new("db", &["db.example.com"])
    };
    setup.write_config(&[cert("")]);
    renew(&setup, &["renew"]);
    let before = fs::read(setup.live("db").join("cert.pem")).unwrap();

    let extra = format!("key_group = \"{FOREIGN_GROUP}\"");
    setup.write_config(&[cert(&extra)]);
    let output = setup.certkeeper(&["renew", "--force"]);
    assert_eq!(output.status.code(), Some(1));
    let message = stderr(&output);
    for needle in [
        "cannot give the private key".to_owned(),
        format!("to group {FOREIGN_GROUP}"),
        format!("neither root nor a member of {FOREIGN_GROUP}"),
        format!("usermod -aG {FOREIGN_GROUP} certkeeper"),
        "the live certificate was left as it was".to_owned(),
    ] {
        assert!(message.contains(needle.as_str()), "{needle:?} in {message}");
    }
    assert_eq!(setup.versions("db"), ["v0001"], "nothing was published");
    assert_eq!(
        fs::read(setup.live("db").join("cert.pem")).unwrap(),
        before,
        "the live pair stays"
    );
}

#[test]
fn an_unknown_group_is_a_configuration_error() {
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert {
        extra: "key_group = \"certkeeper-no-such-group\"",
        ..Cert::new("db", &["db.example.com"])
    }]);
    let output = setup.certkeeper(&["check"]);
    assert_eq!(output.status.code(), Some(78), "invalid configuration");
    let message = stderr(&output);
    assert!(
        message.contains("certificate[0].key_group: unknown group \"certkeeper-no-such-group\"; create it (groupadd --system certkeeper-no-such-group)"),
        "{message}"
    );
}
