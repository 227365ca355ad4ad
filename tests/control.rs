//! The control socket: while `certkeeper run` holds the state directory, `certkeeper renew`,
//! `revoke` and `status` are carried out by (or ask) the daemon instead of refusing, against a
//! real Pebble. Outcomes are read from the state directory and Pebble's management API.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::hostile::{attacker, open_to_others};
use support::{Cert, PebbleOptions, Setup, serial, stderr, stdout};

fn wait_for(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The daemon answers on its socket once it connects.
fn wait_for_socket(socket: &Path) {
    wait_for("the control socket", Duration::from_secs(30), || {
        std::os::unix::net::UnixStream::connect(socket).is_ok()
    });
}

#[test]
fn renew_revoke_and_status_reach_a_running_daemon() {
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);
    let mut daemon = setup.spawn_daemon(&[]);
    let cert = setup.live("www").join("cert.pem");
    wait_for("the first issuance", Duration::from_secs(60), || {
        cert.exists()
    });
    let socket = setup.state_dir.join("control.sock");
    wait_for_socket(&socket);
    let first = serial(&cert);

    // Forced, through the daemon: one new certificate, and the command's usual output.
    let output = setup.certkeeper(&["renew", "--force", "www"]);
    assert_eq!(output.status.code(), Some(0), "{}", daemon.log_text());
    assert!(
        stdout(&output).contains("www: renewed (serial"),
        "{}",
        stdout(&output)
    );
    let second = serial(&cert);
    assert_ne!(second, first);
    assert_eq!(setup.versions("www"), ["v0001", "v0002"]);

    // Not forced: nothing is due, nothing is ordered.
    let output = setup.certkeeper(&["renew", "www"]);
    assert_eq!(output.status.code(), Some(0));
    assert!(stdout(&output).contains("www: not due"));
    assert_eq!(setup.versions("www").len(), 2);

    let output = setup.certkeeper(&["status"]);
    assert!(
        stdout(&output).contains("daemon: running"),
        "{}",
        stdout(&output)
    );

    // Revoked through the daemon, with the reason Pebble records.
    let output = setup.certkeeper(&["revoke", "www", "--reason", "keyCompromise"]);
    assert_eq!(output.status.code(), Some(0), "{}", stderr(&output));
    let status = setup.pebble.cert_status(&second);
    assert_eq!(status["Status"], "Revoked", "{status}");
    assert_eq!(status["Reason"], 1, "{status}");

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    assert!(!socket.exists(), "the socket is removed at a clean stop");
    // Without a daemon the same command runs by itself.
    let output = setup.certkeeper(&["status"]);
    assert!(stdout(&output).contains("daemon: not answering"));
}

#[test]
fn a_stale_socket_does_not_stop_the_next_start_and_strangers_are_refused() {
    let user = attacker();
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);
    let socket = setup.state_dir.join("control.sock");
    let mut first = setup.spawn_daemon(&[]);
    wait_for_socket(&socket);
    first.signal(Signal::KILL);
    first.wait_exit(Duration::from_secs(10));
    assert!(socket.exists(), "kill -9 leaves the socket behind");

    let daemon = setup.spawn_daemon(&[]);
    let cert = setup.live("www").join("cert.pem");
    wait_for("the first issuance", Duration::from_secs(60), || {
        cert.exists()
    });
    wait_for_socket(&socket);
    let output = setup.certkeeper(&["renew", "--force", "www"]);
    assert_eq!(output.status.code(), Some(0), "{}", daemon.log_text());
    assert_eq!(setup.versions("www").len(), 2);

    // Someone outside root, the daemon's user and its group: even with the file system
    // opened to them, the daemon reads their credentials and refuses.
    open_to_others(setup.dir.path());
    open_to_others(setup.pebble.dir.path());
    fs::set_permissions(&setup.state_dir, fs::Permissions::from_mode(0o711)).unwrap();
    fs::set_permissions(&socket, fs::Permissions::from_mode(0o666)).unwrap();
    // Its own copy of the inventory (the HMAC key file is root's), the key in its environment.
    let stranger_config = setup.dir.path().join("stranger.toml");
    fs::write(
        &stranger_config,
        fs::read_to_string(&setup.config).unwrap().replace(
            &format!("eab_hmac_key_file = \"{}\"", setup.hmac_file.display()),
            "eab_hmac_key_env = \"CK_STRANGER_HMAC\"",
        ),
    )
    .unwrap();
    let (_, hmac) = setup.pebble.eab.clone().unwrap();
    let output = user
        .command(env!("CARGO_BIN_EXE_certkeeper"))
        .arg("--config")
        .arg(&stranger_config)
        .args(["renew", "--force", "www"])
        .env("CK_STRANGER_HMAC", hmac)
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    eprintln!("stranger: {}\n{}", stdout(&output), stderr(&output));
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("the running daemon refused: permission denied"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        setup.versions("www").len(),
        2,
        "nothing was ordered for a stranger"
    );
}
