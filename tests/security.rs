//! Root must never be steered through the state directory (docs/security.md).
//!
//! The attacker is an unprivileged user made by the harness who owns the state directory, as
//! the `certkeeper` user owns `/var/lib/certkeeper`: a compromised hook, or anything running
//! as that user. Each test plants what such a user could plant, runs certkeeper as root (as
//! CI runs the tests, and as an operator runs `certkeeper renew` from a root shell) and checks
//! the outcome on root's files outside the state directory: their content, mode and owner.
//! The daemon tests run it as the attacker with the unit's ambient `CAP_NET_BIND_SERVICE` and
//! read what a hook can reach from the kernel's own accounts (`/proc`).

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::io::{ErrorKind, Read};
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use support::hostile::{User, Victims, attacker, not_owned_by, open_to_others};
use support::pebble::free_port;
use support::{Cert, Daemon, PebbleOptions, Setup, mode, stderr, stdout};

/// A Pebble, a test directory others may traverse, and a state directory owned by the
/// attacker, as `/var/lib/certkeeper` is the `certkeeper` user's.
fn hostile_setup(user: User) -> Setup {
    let setup = Setup::new(PebbleOptions::default());
    // The attacker's processes (and root's, after dropping to the attacker) must reach the
    // inventory and Pebble's TLS root, as they reach /etc/certkeeper.
    open_to_others(setup.dir.path());
    open_to_others(setup.pebble.dir.path());
    fs::create_dir(&setup.state_dir).unwrap();
    fs::set_permissions(&setup.state_dir, fs::Permissions::from_mode(0o750)).unwrap();
    user.chown(&setup.state_dir);
    setup
}

/// A directory the attacker (and so its hooks) can write marks into.
fn marks_dir(setup: &Setup, user: User) -> PathBuf {
    let marks = setup.dir.path().join("marks");
    fs::create_dir(&marks).unwrap();
    user.chown(&marks);
    marks
}

fn said(output: &Output) -> String {
    format!("{}{}", stdout(output), stderr(output))
}

#[test]
fn root_commands_refuse_what_the_state_owner_planted() {
    let user = attacker();
    let setup = hostile_setup(user);
    let marks = marks_dir(&setup, user);
    let uid_mark = marks.join("deploy-uid");
    let hook = format!("deploy_hook = \"id -u >> {}\"", uid_mark.display());
    setup.write_config(&[Cert {
        extra: &hook,
        ..Cert::new("www", &["www.example.com"])
    }]);
    let victims = Victims::new(setup.dir.path());
    let before = victims.snapshot();

    // Root's renew runs as the owner of the state directory: everything it creates is
    // theirs, and the deploy hook ran as them, not as root.
    assert!(setup.certkeeper(&["renew"]).status.success());
    assert_eq!(
        not_owned_by(&setup.state_dir, user.uid),
        Vec::<PathBuf>::new()
    );
    assert_eq!(
        fs::read_to_string(&uid_mark).unwrap().trim(),
        user.uid.to_string()
    );

    // A copy of the real lineage outside the state directory, for an absolute live/ link.
    let state = &setup.state_dir;
    let outside_lineage = setup.dir.path().join("outside-lineage");
    fs::create_dir(&outside_lineage).unwrap();
    for file in ["cert.pem", "chain.pem", "fullchain.pem", "privkey.pem"] {
        fs::copy(
            state.join("live/www").join(file),
            outside_lineage.join(file),
        )
        .unwrap();
    }
    let plants = [
        (
            "lock -> root's file",
            state.join("lock"),
            victims.file.clone(),
        ),
        ("dangling lock", state.join("lock"), victims.absent.clone()),
        (
            "accounts -> root's dir",
            state.join("accounts"),
            victims.dir.clone(),
        ),
        (
            "archive/www -> root's dir",
            state.join("archive/www"),
            victims.dir.clone(),
        ),
        (
            "live -> root's dir",
            state.join("live"),
            victims.dir.clone(),
        ),
        (
            "state -> root's dir",
            state.join("state"),
            victims.dir.clone(),
        ),
        (
            "absolute live/www",
            state.join("live/www"),
            outside_lineage.clone(),
        ),
        (
            "escaping live/www",
            state.join("live/www"),
            PathBuf::from("../../outside-lineage"),
        ),
        (
            "state/www.json -> root's file",
            state.join("state/www.json"),
            victims.file.clone(),
        ),
    ];
    for (what, entry, target) in &plants {
        let aside = entry.with_extension("aside");
        let existed = fs::symlink_metadata(entry).is_ok();
        if existed {
            fs::rename(entry, &aside).unwrap();
        }
        std::os::unix::fs::symlink(target, entry).unwrap();
        user.chown(entry);

        let is_lock = entry.ends_with("lock");
        for args in [
            &["status"][..],
            &["renew", "--force"][..],
            &["revoke", "www"][..],
        ] {
            let output = setup.certkeeper(args);
            let command = args.join(" ");
            assert_eq!(
                victims.snapshot(),
                before,
                "{what}: root's `certkeeper {command}` touched root's files"
            );
            assert!(
                !victims.absent.exists(),
                "{what}: root's `certkeeper {command}` created a file through a dangling link"
            );
            let is_live_link = entry.ends_with("live/www");
            if is_live_link && args[0] == "renew" {
                // A live link that is not certkeeper's own is a broken lineage: renew orders
                // a new certificate and replaces the link itself (never following it).
                assert!(
                    output.status.success(),
                    "{what}: renew did not heal the lineage"
                );
                let link = fs::read_link(entry).unwrap();
                assert!(
                    link.to_string_lossy().starts_with("../archive/www/v"),
                    "{what}: live/www now points to {}",
                    link.display()
                );
                fs::remove_file(entry).unwrap();
                std::os::unix::fs::symlink(target, entry).unwrap();
                user.chown(entry);
                continue;
            }
            // `status` reads without locking; everything else takes the lock.
            if !(is_lock && args[0] == "status") {
                assert!(
                    !output.status.success(),
                    "{what}: `certkeeper {command}` went ahead"
                );
                assert!(
                    said(&output).contains(&entry.display().to_string()),
                    "{what}: `certkeeper {command}` did not name what it refused"
                );
            }
        }
        fs::remove_file(entry).unwrap();
        if existed {
            fs::rename(&aside, entry).unwrap();
        }
    }
    // Nothing was revoked while the plants were there.
    assert!(setup.certkeeper(&["status"]).status.success());

    // Directories opened up by the attacker (or by a member of its group) are closed again
    // before anything is written into them.
    for dir in ["", "live", "archive", "state", "accounts", "archive/www"] {
        fs::set_permissions(state.join(dir), fs::Permissions::from_mode(0o777)).unwrap();
    }
    assert!(setup.certkeeper(&["status"]).status.success());
    for (dir, expected) in [
        ("", 0o750),
        ("live", 0o750),
        ("archive", 0o750),
        ("state", 0o700),
        ("accounts", 0o700),
    ] {
        assert_eq!(mode(&state.join(dir)), expected, "{dir}/");
    }
    assert!(setup.certkeeper(&["renew", "--force"]).status.success());
    assert_eq!(mode(&state.join("archive/www")), 0o750);

    // A state file asking for a deploy makes root's renew run the deploy hook, as the
    // state directory's owner: the attacker gains nothing it did not have.
    let state_file = state.join("state/www.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&state_file).unwrap()).unwrap();
    json["attempts"]["pending_deploy"] = serde_json::Value::Bool(true);
    fs::write(&state_file, serde_json::to_string(&json).unwrap()).unwrap();
    fs::remove_file(&uid_mark).unwrap();
    assert!(setup.certkeeper(&["renew"]).status.success());
    assert_eq!(
        fs::read_to_string(&uid_mark).unwrap().trim(),
        user.uid.to_string(),
        "the planted deploy ran as someone else"
    );
    assert_eq!(victims.snapshot(), before);
}

#[test]
fn root_refuses_to_run_the_daemon_in_another_users_state_directory() {
    let user = attacker();
    let setup = hostile_setup(user);
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);
    let output = setup.certkeeper(&["run"]);
    assert_eq!(output.status.code(), Some(1));
    let text = said(&output);
    assert!(
        text.contains(&format!("runuser -u {}", support::hostile::ATTACKER)),
        "the refusal says how to start it: {text}"
    );
    // It stopped before touching the state directory.
    assert_eq!(fs::read_dir(&setup.state_dir).unwrap().count(), 0);
}

#[test]
fn hooks_cannot_read_the_daemon_and_the_daemon_gives_up_binding() {
    let user = attacker();
    let setup = hostile_setup(user);
    let marks = marks_dir(&setup, user);
    let report = marks.join("spy");
    let stolen = marks.join("environ");
    // A deploy hook that tries to read its parent's (the daemon's) environment, where the
    // EAB key is, and reports its own capabilities.
    let spy = setup.dir.path().join("spy.sh");
    fs::write(
        &spy,
        format!(
            "#!/bin/sh\n\
             {{ echo \"ppid=$PPID\"\n\
             if cat /proc/$PPID/environ > {stolen} 2>/dev/null; then echo environ=readable; else echo environ=denied; fi\n\
             grep -E '^Cap(Amb|Eff|Prm|Inh):' /proc/self/status\n\
             }} > {report}.tmp && mv {report}.tmp {report}\n",
            stolen = stolen.display(),
            report = report.display()
        ),
    )
    .unwrap();
    fs::set_permissions(&spy, fs::Permissions::from_mode(0o755)).unwrap();
    let hook = format!("deploy_hook = [{:?}]", spy.display().to_string());
    setup.write_config(&[Cert {
        extra: &hook,
        ..Cert::new("www", &["www.example.com"])
    }]);
    // The key comes from the environment, as with the unit's EnvironmentFile=.
    let config = fs::read_to_string(&setup.config).unwrap().replace(
        &format!("eab_hmac_key_file = \"{}\"", setup.hmac_file.display()),
        "eab_hmac_key_env = \"CK_SECURITY_HMAC\"",
    );
    fs::write(&setup.config, config).unwrap();
    let (_, hmac) = setup.pebble.eab.clone().unwrap();

    // As the unit starts it: the service user, with CAP_NET_BIND_SERVICE as an ambient
    // capability. The control shows that this really hands the capability on.
    let setpriv = |program: &str| {
        let mut command = std::process::Command::new("setpriv");
        command
            .args([
                "--reuid",
                &user.uid.to_string(),
                "--regid",
                &user.gid.to_string(),
            ])
            .args(["--clear-groups", "--inh-caps=+net_bind_service"])
            .args(["--ambient-caps=+net_bind_service", "--", program]);
        command
    };
    let control = setpriv("/bin/cat")
        .arg("/proc/self/status")
        .output()
        .unwrap();
    assert!(control.status.success(), "setpriv (util-linux) works here");
    assert!(
        has_bind_capability(&stdout(&control), "CapAmb:"),
        "the control process got the ambient capability"
    );

    let log = setup.dir.path().join("daemon.log");
    let child = setpriv(env!("CARGO_BIN_EXE_certkeeper"))
        .arg("--config")
        .arg(&setup.config)
        .arg("run")
        .env_remove("CERTKEEPER_CONFIG")
        .env_remove("JOURNAL_STREAM")
        .env_remove("NOTIFY_SOCKET")
        .env("CK_SECURITY_HMAC", &hmac)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::from(fs::File::create(&log).unwrap()))
        .spawn()
        .unwrap();
    let daemon = Daemon { child, log };

    let deadline = Instant::now() + Duration::from_secs(90);
    while !report.exists() {
        assert!(
            Instant::now() < deadline,
            "the deploy hook did not run; daemon log:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = fs::read_to_string(&report).unwrap();
    eprintln!("--- what the hook saw\n{seen}");
    assert!(seen.contains(&format!("ppid={}", daemon.pid())), "{seen}");
    assert!(seen.contains("environ=denied"), "{seen}");
    let stolen_text = fs::read_to_string(&stolen).unwrap_or_default();
    assert!(!stolen_text.contains(&hmac), "the hook read the EAB key");
    for set in ["CapAmb:", "CapEff:", "CapPrm:", "CapInh:"] {
        assert_eq!(
            capability_set(&seen, set),
            0,
            "the hook's {set} in:\n{seen}"
        );
    }

    // The daemon itself no longer holds the capability once its listener is bound.
    let status = fs::read_to_string(format!("/proc/{}/status", daemon.pid())).unwrap();
    for set in ["CapEff:", "CapPrm:", "CapInh:", "CapAmb:"] {
        assert!(
            !has_bind_capability(&status, set),
            "the daemon still has CAP_NET_BIND_SERVICE in {set}:\n{status}"
        );
    }
}

/// The hexadecimal capability set `name` (`CapEff:` ...) in a `/proc/PID/status` text.
fn capability_set(status: &str, name: &str) -> u64 {
    let hex = status
        .lines()
        .find_map(|line| line.strip_prefix(name))
        .unwrap_or_else(|| panic!("no {name} in {status}"))
        .trim();
    u64::from_str_radix(hex, 16).unwrap()
}

fn has_bind_capability(status: &str, name: &str) -> bool {
    const CAP_NET_BIND_SERVICE: u32 = 10;
    capability_set(status, name) & (1 << CAP_NET_BIND_SERVICE) != 0
}

#[test]
fn the_admin_listener_closes_idle_connections_and_caps_them() {
    let setup = Setup::new(PebbleOptions::default());
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    setup.write_config_with(&format!("[admin]\nlisten = \"{addr}\"\n"), &[]);
    let daemon = setup.spawn_daemon(&[]);
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect(&addr).is_err() {
        assert!(
            Instant::now() < deadline,
            "the admin listener did not open; log:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    // An idle client is closed once the request head is overdue (5 s), not kept.
    let idle = TcpStream::connect(&addr).unwrap();
    assert_eq!(read_until_closed(&idle, Duration::from_secs(12)), Some(0));

    // More than the cap (32) at once: never more than 32 are kept; the surplus is closed at
    // once (the newcomers refused, or the idlest evicted: the listener decides which).
    let held: Vec<TcpStream> = (0..40)
        .map(|_| TcpStream::connect(&addr).unwrap())
        .collect();
    for stream in &held {
        stream.set_nonblocking(true).unwrap();
    }
    let mut closed = vec![false; held.len()];
    let deadline = Instant::now() + Duration::from_secs(3);
    while closed.iter().filter(|c| **c).count() < 8 && Instant::now() < deadline {
        for (stream, closed) in held.iter().zip(closed.iter_mut()) {
            if !*closed {
                *closed = is_closed(stream);
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    // Well inside the 5 s head deadline, so nothing else was closed yet.
    let count = closed.iter().filter(|c| **c).count();
    assert_eq!(
        count, 8,
        "{count} of 40 connections were closed; the cap is 32"
    );
    for (stream, closed) in held.iter().zip(closed.iter_mut()) {
        if !*closed {
            assert!(!is_closed(stream), "a connection within the cap was closed");
        }
    }
    drop(held);

    // And the listener still answers once they are gone.
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Ok(mut stream) = TcpStream::connect(&addr) {
            use std::io::Write;
            let _ = write!(stream, "GET /healthz HTTP/1.0\r\n\r\n");
            let mut response = String::new();
            let _ = stream.read_to_string(&mut response);
            if response.starts_with("HTTP/1.1 200") || response.starts_with("HTTP/1.0 200") {
                break;
            }
        }
        assert!(Instant::now() < deadline, "/healthz did not answer again");
        std::thread::sleep(Duration::from_millis(100));
    }
    drop(daemon);
}

/// Whether the peer of a non-blocking `stream` has closed it (or reset it).
fn is_closed(stream: &TcpStream) -> bool {
    let mut buffer = [0u8; 256];
    match (&*stream).read(&mut buffer) {
        Ok(0) => true,
        Ok(_) => false,
        Err(err) => err.kind() != ErrorKind::WouldBlock,
    }
}

/// Bytes read before the peer closed (`Some(0)` for a close without data), or `None` when it
/// was still open after `wait`.
fn read_until_closed(stream: &TcpStream, wait: Duration) -> Option<usize> {
    stream.set_read_timeout(Some(wait)).unwrap();
    let mut buffer = [0u8; 256];
    match (&*stream).read(&mut buffer) {
        Ok(n) => Some(n),
        Err(err) if matches!(err.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => None,
        // A reset is a close too.
        Err(_) => Some(0),
    }
}
