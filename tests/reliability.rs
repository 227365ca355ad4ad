//! What production does to an unattended daemon, done to certkeeper on purpose: a CA that is
//! down, failing, rate-limiting, slow or stuck (through the fault-injecting proxy in
//! `support::proxy`), SIGKILL at random instants, a full or read-only disk, a second daemon,
//! a CA sending a certificate that does not match. `docs/reliability.md` lists each with what
//! certkeeper does and the figures these tests observe.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::proxy::{Fault, FaultProxy};
use support::{Cert, PebbleOptions, Setup, key_matches, serial, stderr, stdout};

/// Quick retries so outages play out in seconds; production defaults are 1 min to 6 h.
const FAST_RETRY: &str = "retry_initial = \"2s\"\nretry_max = \"8s\"\n";

/// Point the CA entry of the written config at `url`.
fn route_through(setup: &Setup, url: &str) {
    let text = fs::read_to_string(&setup.config).unwrap();
    fs::write(
        &setup.config,
        text.replace(&setup.pebble.directory_url, url),
    )
    .unwrap();
}

fn status_json(setup: &Setup) -> serde_json::Value {
    let output = setup.certkeeper(&["status", "--json"]);
    serde_json::from_slice(&output.stdout).unwrap()
}

/// Every live pair in the state dir parses and matches.
fn assert_live_pairs_match(setup: &Setup) -> usize {
    let live = setup.state_dir.join("live");
    let mut checked = 0;
    for entry in fs::read_dir(&live).into_iter().flatten() {
        let dir = entry.unwrap().path();
        if dir.file_name().unwrap().to_string_lossy().starts_with('.') {
            continue;
        }
        let cert = dir.join("cert.pem");
        let key = dir.join("privkey.pem");
        assert!(
            cert.exists() && key.exists(),
            "{} is incomplete",
            dir.display()
        );
        assert!(
            key_matches(&cert, &key),
            "{} holds a mismatched pair",
            dir.display()
        );
        checked += 1;
    }
    checked
}

#[test]
fn ca_outage_backs_off_without_a_busy_loop_and_recovers_by_itself() {
    let setup = Setup::new(PebbleOptions::default());
    let proxy = FaultProxy::start(&setup.pebble);
    setup.write_config_with(FAST_RETRY, &[Cert::new("www", &["www.example.com"])]);
    route_through(&setup, &proxy.directory_url());
    proxy.set(Fault::Down);

    let mut daemon = setup.spawn_daemon(&[]);
    // CERTKEEPER_OUTAGE_SECS=300 plays a five-minute outage.
    let outage = Duration::from_secs(
        std::env::var("CERTKEEPER_OUTAGE_SECS")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(15),
    );
    std::thread::sleep(outage);
    let requests_during_outage = proxy.requests();
    // Attempts at about 0, 2, 6 and 14 s, then every 8 s (2 s doubling, capped at 8 s): a
    // handful of connections, not a loop.
    let most = 4 + outage.as_secs() / 7;
    assert!(
        (2..=most).contains(&requests_during_outage),
        "{requests_during_outage} connections in {outage:?}"
    );
    let status = status_json(&setup);
    assert_eq!(status[0]["state"], "failing", "{status}");
    assert!(
        status[0]["consecutive_failures"].as_u64().unwrap() >= 2,
        "{status}"
    );
    assert!(
        status[0]["last_error"].as_str().unwrap().contains("pebble"),
        "{status}"
    );
    assert!(daemon.log_text().contains("will retry with backoff"));

    proxy.set(Fault::Pass);
    daemon.wait_for_log("recovery", Duration::from_secs(30), |log| {
        log.contains("certificate installed")
    });
    assert_eq!(status_json(&setup)[0]["consecutive_failures"], 0);
    eprintln!(
        "REPORT ca_outage: {requests_during_outage} connection attempts during a {outage:?} outage"
    );
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
}

#[test]
fn server_errors_resets_and_slow_answers_are_retried_without_duplicates() {
    let setup = Setup::new(PebbleOptions::default());
    let proxy = FaultProxy::start(&setup.pebble);
    setup.write_config_with(FAST_RETRY, &[Cert::new("www", &["www.example.com"])]);
    let text = fs::read_to_string(&setup.config).unwrap();
    fs::write(
        &setup.config,
        text.replace("root_ca_file", "request_timeout = \"2s\"\nroot_ca_file"),
    )
    .unwrap();
    route_through(&setup, &proxy.directory_url());
    proxy.fail_next(
        1,
        Fault::Status {
            code: 500,
            problem: "serverInternal",
            retry_after: None,
        },
    );
    proxy.fail_next(
        1,
        Fault::Status {
            code: 503,
            problem: "serverInternal",
            retry_after: None,
        },
    );
    proxy.fail_next(1, Fault::Reset);
    proxy.fail_next(1, Fault::Delay(Duration::from_secs(5)));

    let mut daemon = setup.spawn_daemon(&[]);
    daemon.wait_for_log(
        "installation after four faults",
        Duration::from_secs(60),
        |log| log.contains("certificate installed"),
    );
    let log = daemon.log_text();
    assert!(log.matches("will retry with backoff").count() >= 4, "{log}");
    assert!(
        log.contains("no complete response from the CA within 2s"),
        "{log}"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        setup.versions("www").len(),
        1,
        "exactly one certificate installed"
    );
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
}

#[test]
fn rate_limit_retry_after_is_honoured() {
    let setup = Setup::new(PebbleOptions::default());
    let proxy = FaultProxy::start(&setup.pebble);
    setup.write_config_with(FAST_RETRY, &[Cert::new("www", &["www.example.com"])]);
    route_through(&setup, &proxy.directory_url());
    proxy.fail_next(
        1,
        Fault::Status {
            code: 429,
            problem: "rateLimited",
            retry_after: Some(7),
        },
    );
    let started = Instant::now();
    let mut daemon = setup.spawn_daemon(&[]);
    daemon.wait_for_log("the failed attempt", Duration::from_secs(20), |log| {
        log.contains("will retry with backoff")
    });
    let failed_at = started.elapsed();
    daemon.wait_for_log("the retry", Duration::from_secs(30), |log| {
        log.contains("certificate installed")
    });
    let waited = started.elapsed() - failed_at;
    // Backoff alone would retry after ~2 s; the CA asked for 7.
    assert!(
        waited >= Duration::from_millis(6_000),
        "retried after {waited:?}"
    );
    eprintln!("REPORT rate_limit: retried {waited:?} after a 429 with Retry-After: 7");
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
}

#[test]
fn renew_waits_out_a_ca_retry_after_even_when_forced() {
    let setup = Setup::new(PebbleOptions::default());
    let proxy = FaultProxy::start(&setup.pebble);
    setup.write_config_with(FAST_RETRY, &[Cert::new("www", &["www.example.com"])]);
    route_through(&setup, &proxy.directory_url());
    proxy.fail_next(
        1,
        Fault::Status {
            code: 429,
            problem: "rateLimited",
            retry_after: Some(30),
        },
    );
    assert_eq!(setup.certkeeper(&["renew"]).status.code(), Some(1));

    // Within the 30 s the CA asked for, neither a plain nor a forced pass contacts it, and
    // both say until when.
    let requests = proxy.requests();
    for args in [&["renew"][..], &["renew", "--force"][..]] {
        let output = setup.certkeeper(args);
        assert_eq!(
            output.status.code(),
            Some(1),
            "a held certificate is failing"
        );
        assert_eq!(
            proxy.requests(),
            requests,
            "`certkeeper {}` sent requests to a CA that asked to wait",
            args.join(" ")
        );
        let said = stdout(&output);
        assert!(
            said.contains("www: not attempted: the CA asked to wait until 20"),
            "{said}"
        );
    }
    assert!(!setup.live("www").exists());
    eprintln!("REPORT renew_retry_after: 0 requests from two passes inside a 30 s Retry-After");
}

#[test]
fn a_stuck_ca_does_not_hold_up_other_certificates() {
    let setup = Setup::new(PebbleOptions::default());
    let proxy = FaultProxy::start(&setup.pebble);
    setup.write_config(&[]);
    // A second CA entry, the same Pebble behind the proxy, answering its first request only
    // after 12 seconds.
    let text = fs::read_to_string(&setup.config).unwrap();
    let ca = text
        .split("[[ca]]")
        .nth(1)
        .unwrap()
        .replace("name = \"pebble\"", "name = \"stuck\"")
        .replace(&setup.pebble.directory_url, &proxy.directory_url());
    let mut text = format!("{text}\n[[ca]]{ca}");
    for (name, ca) in [
        ("slow", "stuck"),
        ("a", "pebble"),
        ("b", "pebble"),
        ("c", "pebble"),
    ] {
        text.push_str(&format!(
            "\n[[certificate]]\nname = \"{name}\"\nca = \"{ca}\"\ndomains = [\"{name}.example.com\"]\n"
        ));
    }
    fs::write(&setup.config, text).unwrap();
    proxy.fail_next(1, Fault::Delay(Duration::from_secs(12)));

    let mut daemon = setup.spawn_daemon(&[]);
    daemon.wait_for_log(
        "the three certificates of the healthy CA",
        Duration::from_secs(10),
        |_| {
            ["a", "b", "c"]
                .iter()
                .all(|n| setup.live(n).join("cert.pem").exists())
        },
    );
    assert!(
        !setup.live("slow").exists(),
        "the stuck CA has not answered yet"
    );
    daemon.wait_for_log(
        "the stuck certificate, eventually",
        Duration::from_secs(40),
        |_| setup.live("slow").join("cert.pem").exists(),
    );
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
}

#[test]
fn sigkill_at_random_instants_never_leaves_a_mismatched_pair() {
    let iterations: usize = std::env::var("CERTKEEPER_KILL_ITERATIONS")
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or(50);
    let setup = Setup::new(PebbleOptions {
        validity_secs: Some(60),
        ..PebbleOptions::default()
    });
    // renew_before longer than the lifetime: every certificate is always due, so the daemon
    // renews in a loop and a kill lands anywhere in an order or an install.
    let certs: Vec<Cert<'_>> = [
        ("k1", ["k1.example.com"]),
        ("k2", ["k2.example.com"]),
        ("k3", ["k3.example.com"]),
    ]
    .iter()
    .map(|(name, domains)| Cert {
        extra: "renew_before = \"1h\"",
        ..Cert::new(name, domains)
    })
    .collect();
    setup.write_config_with("max_concurrent = 3\n", &certs);

    let mut seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos() as u64
        | 1;
    eprintln!("seed {seed}");
    let mut checked = 0;
    for _ in 0..iterations {
        let mut daemon = setup.spawn_daemon(&[]);
        // xorshift: a kill somewhere in the first 1.5 s of this run.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        std::thread::sleep(Duration::from_millis(100 + seed % 1_400));
        daemon.signal(Signal::KILL);
        daemon.wait_exit(Duration::from_secs(10));
        checked += assert_live_pairs_match(&setup);
    }
    // After all that, a daemon left alone carries on and ends with three good pairs.
    let mut daemon = setup.spawn_daemon(&[]);
    daemon.wait_for_log(
        "a clean renewal of every lineage",
        Duration::from_secs(60),
        |log| {
            ["k1", "k2", "k3"]
                .iter()
                .all(|n| log.contains(&format!("certificate installed cert={n}")))
        },
    );
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    assert_eq!(assert_live_pairs_match(&setup), 3);
    eprintln!(
        "REPORT sigkill: {iterations} kills survived, {checked} live pairs checked after kills"
    );
}

/// A small tmpfs mounted for the test and unmounted when dropped. Needs root (CI runs as
/// root; `./tests/run.sh` under sudo otherwise).
struct Tmpfs {
    path: std::path::PathBuf,
}

impl Tmpfs {
    fn mount(path: &Path, size: &str) -> Self {
        fs::create_dir_all(path).unwrap();
        let status = Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0755"),
                "tmpfs",
            ])
            .arg(path)
            .status()
            .unwrap();
        assert!(
            status.success(),
            "mounting a tmpfs failed: the disk-full tests need root (run ./tests/run.sh as root, as CI does)"
        );
        Self {
            path: path.to_owned(),
        }
    }

    fn remount_read_only(&self) {
        let status = Command::new("mount")
            .args(["-o", "remount,ro"])
            .arg(&self.path)
            .status()
            .unwrap();
        assert!(status.success());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Fill the file system holding `dir` completely.
fn fill(dir: &Path) -> std::path::PathBuf {
    use std::io::Write;
    let filler = dir.join("filler");
    let mut file = fs::File::create(&filler).unwrap();
    let block = vec![0u8; 4096];
    while file.write_all(&block).is_ok() {}
    let _ = file.sync_all();
    filler
}

#[test]
fn a_full_disk_fails_cleanly_keeps_the_live_pair_and_recovers() {
    let setup = Setup::new(PebbleOptions::default());
    let _disk = Tmpfs::mount(&setup.state_dir, "2m");
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);
    assert!(setup.certkeeper(&["renew"]).status.success());
    let live = setup.live("www");
    let before = serial(&live.join("cert.pem"));

    let filler = fill(&setup.state_dir);
    let output = setup.certkeeper(&["renew", "--force"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stderr(&output).contains("No space left on device"),
        "{}",
        stderr(&output)
    );
    assert_eq!(
        serial(&live.join("cert.pem")),
        before,
        "the previous certificate stays live"
    );
    assert!(key_matches(
        &live.join("cert.pem"),
        &live.join("privkey.pem")
    ));

    fs::remove_file(filler).unwrap();
    let output = setup.certkeeper(&["renew", "--force"]);
    assert!(
        output.status.success(),
        "renewal succeeds once space is freed"
    );
    assert_ne!(serial(&live.join("cert.pem")), before);
    assert!(key_matches(
        &live.join("cert.pem"),
        &live.join("privkey.pem")
    ));
}

#[test]
fn a_read_only_state_dir_is_a_clear_error_at_start() {
    let setup = Setup::new(PebbleOptions::default());
    let disk = Tmpfs::mount(&setup.state_dir, "1m");
    disk.remount_read_only();
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);
    let mut daemon = setup.spawn_daemon(&[]);
    let code = daemon.wait_exit(Duration::from_secs(10));
    assert_eq!(code, Some(1));
    let log = daemon.log_text();
    assert!(log.contains("Read-only file system"), "{log}");
    assert!(
        log.contains(&setup.state_dir.display().to_string()),
        "{log}"
    );
}

#[test]
fn a_second_daemon_on_the_same_state_dir_refuses_to_start() {
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);
    let mut first = setup.spawn_daemon(&[]);
    first.wait_for_log("the first daemon", Duration::from_secs(30), |log| {
        log.contains("certkeeper is running")
    });
    let mut second = setup.spawn_daemon(&[]);
    assert_eq!(second.wait_exit(Duration::from_secs(10)), Some(75));
    let log = second.log_text();
    assert!(log.contains("lock"), "{log}");
    assert!(
        log.contains(&first.pid().to_string()),
        "names the running daemon: {log}"
    );
    first.signal(Signal::TERM);
    assert_eq!(first.wait_exit(Duration::from_secs(40)), Some(0));
}

#[test]
fn a_certificate_that_does_not_match_is_never_installed() {
    let setup = Setup::new(PebbleOptions::default());
    let proxy = FaultProxy::start(&setup.pebble);
    setup.write_config(&[
        Cert::new("www", &["www.example.com"]),
        Cert::new("other", &["other.example.com"]),
    ]);
    assert!(setup.certkeeper(&["renew"]).status.success());
    let www = setup.live("www");
    let before = serial(&www.join("cert.pem"));

    // The CA now hands out another lineage's certificate: wrong key and wrong names.
    route_through(&setup, &proxy.directory_url());
    proxy.replace_certificates(Some(
        fs::read_to_string(setup.live("other").join("fullchain.pem")).unwrap(),
    ));
    let output = setup.certkeeper(&["renew", "--force", "www"]);
    assert_eq!(output.status.code(), Some(1));
    let err = stderr(&output);
    assert!(
        err.contains("does not match") || err.contains("names"),
        "{err}"
    );
    assert_eq!(serial(&www.join("cert.pem")), before, "nothing installed");
    assert_eq!(setup.versions("www").len(), 1);
    assert!(stdout(&output).is_empty() || !stdout(&output).contains("www: renewed"));
}
