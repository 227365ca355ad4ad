//! `certkeeper run` as systemd would run it, against a real Pebble: renewals with nobody
//! watching, the sd_notify protocol on a fake `NOTIFY_SOCKET`, reloads on config edits, and a
//! SIGKILL in the middle of an order.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::fs;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rustix::process::Signal;
use support::{Cert, PebbleOptions, Setup, key_matches};

/// A fake systemd notify socket collecting every datagram.
struct NotifySocket {
    path: std::path::PathBuf,
    messages: Arc<Mutex<Vec<String>>>,
}

impl NotifySocket {
    fn bind(dir: &std::path::Path) -> Self {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let messages = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&messages);
        std::thread::spawn(move || {
            let mut buf = vec![0u8; 4096];
            loop {
                match socket.recv(&mut buf) {
                    Ok(n) => sink
                        .lock()
                        .unwrap()
                        .push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                    Err(err) if err.kind() == std::io::ErrorKind::WouldBlock => {}
                    Err(err) if err.kind() == std::io::ErrorKind::TimedOut => {}
                    Err(_) => return,
                }
                if Arc::strong_count(&sink) == 1 {
                    return;
                }
            }
        });
        Self { path, messages }
    }

    fn all(&self) -> Vec<String> {
        self.messages.lock().unwrap().clone()
    }

    fn wait_for(&self, what: &str, pred: impl Fn(&[String]) -> bool) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while !pred(&self.all()) {
            assert!(
                std::time::Instant::now() < deadline,
                "no {what}; got {:?}",
                self.all()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[test]
fn renews_every_certificate_at_least_twice_with_nobody_watching() {
    let setup = Setup::new(PebbleOptions {
        validity_secs: Some(45),
        ..PebbleOptions::default()
    });
    let names = ["alpha", "bravo", "charlie", "delta", "echo"];
    let domains: Vec<[String; 1]> = names.iter().map(|n| [format!("{n}.example.com")]).collect();
    let domain_refs: Vec<[&str; 1]> = domains.iter().map(|[d]| [d.as_str()]).collect();
    let certs: Vec<Cert<'_>> = names
        .iter()
        .zip(&domain_refs)
        .map(|(name, domains)| Cert::new(name, domains))
        .collect();
    setup.write_config(&certs);

    let mut daemon = setup.spawn_daemon(&[]);
    let deadline = std::time::Instant::now() + Duration::from_secs(150);
    while names.iter().any(|name| setup.versions(name).len() < 3) {
        assert!(
            std::time::Instant::now() < deadline,
            "not every certificate was renewed twice; versions: {:?}\n{}",
            names
                .iter()
                .map(|n| (n, setup.versions(n).len()))
                .collect::<Vec<_>>(),
            daemon.log_text()
        );
        assert!(
            daemon.child.try_wait().unwrap().is_none(),
            "daemon died:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    for name in names {
        let live = setup.live(name);
        assert!(
            key_matches(&live.join("cert.pem"), &live.join("privkey.pem")),
            "{name}"
        );
    }
    // Renewals happened because they were due, not in a tight loop: never more than one
    // renewal per certificate per third of its lifetime, give or take jitter.
    let log = daemon.log_text();
    let installs = log.matches("certificate installed").count();
    assert!(
        installs <= names.len() * 5,
        "{installs} installs is a tight loop:\n{log}"
    );
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
}

#[test]
fn speaks_sd_notify_serves_metrics_and_reloads_on_sighup() {
    let setup = Setup::new(PebbleOptions::default());
    let admin = format!("127.0.0.1:{}", support::pebble::free_port());
    setup.write_config_with(
        &format!("[admin]\nlisten = \"{admin}\"\n"),
        &[Cert::new("www", &["www.example.com"])],
    );
    let socket = NotifySocket::bind(setup.dir.path());
    let mut daemon = setup.spawn_daemon(&[
        ("NOTIFY_SOCKET", socket.path.to_str().unwrap()),
        ("WATCHDOG_USEC", "400000"),
    ]);

    socket.wait_for("READY=1", |m| {
        m.iter().any(|m| m.lines().any(|l| l == "READY=1"))
    });
    let ready = socket
        .all()
        .into_iter()
        .find(|m| m.contains("READY=1"))
        .unwrap();
    assert!(ready.contains("STATUS=1 certificates"), "{ready}");
    socket.wait_for("WATCHDOG=1 twice", |m| {
        m.iter().filter(|m| m.contains("WATCHDOG=1")).count() >= 2
    });
    socket.wait_for("STATUS after issuance", |m| {
        m.iter()
            .any(|m| m.contains("STATUS=1 certificates, next: www in"))
    });

    // The admin listener reports what the loop knows.
    let (status, body) = support::http_get(&admin, "/metrics");
    assert_eq!(status, 200, "{body}");
    assert!(
        body.contains("certkeeper_renewals_total{cert=\"www\"} 1"),
        "{body}"
    );
    assert!(
        body.contains("certkeeper_certificate_not_after_timestamp_seconds{cert=\"www\"} "),
        "{body}"
    );
    assert!(body.contains("certkeeper_orders_in_flight 0"), "{body}");
    assert_eq!(
        support::http_get(&admin, "/healthz"),
        (200, "ok\n".to_owned())
    );

    let before = socket.all().len();
    daemon.signal(Signal::HUP);
    socket.wait_for("RELOADING then READY", |m| {
        let after = &m[before.min(m.len())..];
        let reloading = after.iter().position(|m| m.contains("RELOADING=1"));
        let ready = after.iter().rposition(|m| m.contains("READY=1"));
        matches!((reloading, ready), (Some(r), Some(d)) if d > r)
    });
    let reloading = socket
        .all()
        .into_iter()
        .find(|m| m.contains("RELOADING=1"))
        .unwrap();
    assert!(reloading.contains("MONOTONIC_USEC="), "{reloading}");

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    assert!(
        socket.all().iter().any(|m| m.contains("STOPPING=1")),
        "{:?}",
        socket.all()
    );
}

#[test]
fn config_edits_apply_while_running_and_bad_edits_are_refused() {
    let setup = Setup::new(PebbleOptions::default());
    setup.write_config(&[Cert::new("first", &["first.example.com"])]);
    let mut daemon = setup.spawn_daemon(&[]);
    daemon.wait_for_log("first issuance", Duration::from_secs(30), |log| {
        log.contains("certificate installed") && log.contains("cert=first")
    });

    // An added certificate is issued without a restart or a signal.
    setup.write_config(&[
        Cert::new("first", &["first.example.com"]),
        Cert::new("second", &["second.example.com"]),
    ]);
    daemon.wait_for_log("the added certificate", Duration::from_secs(30), |log| {
        log.contains("configuration reloaded") && setup.live("second").join("cert.pem").exists()
    });

    // An invalid edit keeps the daemon on the previous configuration, and says where.
    let text = fs::read_to_string(&setup.config).unwrap();
    fs::write(
        &setup.config,
        text.replace("second.example.com", "second..example.com"),
    )
    .unwrap();
    daemon.wait_for_log("the refused edit", Duration::from_secs(30), |log| {
        log.contains("still running on the previous one")
    });
    let log = daemon.log_text();
    let config = setup.config.display().to_string();
    assert!(
        log.lines()
            .any(|l| l.contains(&config) && l.contains("certificate[1].domains[0]")),
        "the error names the file, line and key:\n{log}"
    );
    assert!(daemon.child.try_wait().unwrap().is_none(), "still running");
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
}

#[test]
fn an_order_interrupted_by_sigkill_is_resumed_not_repeated() {
    // Pebble validates after a random delay of up to 8 s. When the delay is shorter than the
    // moment between the kill and the second daemon's start, the CA finds nobody listening
    // and the order turns invalid: a race of the test's, not of certkeeper's (which then
    // orders anew, as it should). That try is discarded; three in a row would be a bug.
    for attempt in 1..=3 {
        if sigkill_and_resume() {
            return;
        }
        eprintln!("try {attempt}: Pebble validated while no daemon was listening; trying again");
    }
    panic!("three tries in a row found the resumed order invalid");
}

/// Whether the lineage's state records a failed attempt: the resumed order was found invalid
/// (Pebble validated while no daemon answered, or before the token was published again).
fn failed_once(state_file: &std::path::Path) -> bool {
    fs::read_to_string(state_file)
        .ok()
        .and_then(|text| serde_json::from_str::<serde_json::Value>(&text).ok())
        .and_then(|state| state["attempts"]["consecutive_failures"].as_u64())
        .is_some_and(|failures| failures > 0)
}

/// One try; `false` when Pebble's validation fell between the two daemons.
fn sigkill_and_resume() -> bool {
    let setup = Setup::new(PebbleOptions::default().env("PEBBLE_VA_SLEEPTIME", "8"));
    setup.write_config(&[Cert::new("slow", &["slow.example.com"])]);
    let state_file = setup.state_dir.join("state/slow.json");

    let mut first = setup.spawn_daemon(&[]);
    first.wait_for_log("the order to be placed", Duration::from_secs(30), |_| {
        fs::read_to_string(&state_file).is_ok_and(|s| s.contains("\"order_url\": \"https"))
    });
    first.signal(Signal::KILL);
    first.wait_exit(Duration::from_secs(10));
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&state_file).unwrap()).unwrap();
    let order_url = state["pending_order"]["order_url"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(
        !setup.live("slow").exists() || setup.versions("slow").is_empty(),
        "killed before installing"
    );

    let second = setup.spawn_daemon(&[]);
    second.wait_for_log(
        "the resumed order to complete or be found invalid",
        Duration::from_secs(60),
        |_| setup.live("slow").join("cert.pem").exists() || failed_once(&state_file),
    );
    let log = second.log_text();
    if failed_once(&state_file) {
        return false;
    }
    assert!(
        log.contains(&format!("resumed order order_url={order_url}")),
        "{log}"
    );
    assert!(
        !log.contains("order created"),
        "no second order was placed:\n{log}"
    );
    assert_eq!(setup.versions("slow").len(), 1);
    let live = setup.live("slow");
    assert!(key_matches(
        &live.join("cert.pem"),
        &live.join("privkey.pem")
    ));
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&state_file).unwrap()).unwrap();
    assert!(
        state["pending_order"].is_null(),
        "the finished order is forgotten: {state}"
    );
    assert!(!setup.state_dir.join("state/slow.order-key.pem").exists());
    true
}

#[test]
fn files_dropped_into_an_include_directory_are_picked_up() {
    let setup = Setup::new(PebbleOptions::default());
    // conf.d does not exist yet: configuration management creates it later.
    setup.write_config_with("include = [\"conf.d/*.toml\"]\n", &[]);
    let daemon = setup.spawn_daemon(&[]);
    daemon.wait_for_log("start", Duration::from_secs(30), |log| {
        log.contains("certkeeper is running")
    });
    let conf_d = setup.dir.path().join("conf.d");
    fs::create_dir(&conf_d).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    fs::write(
        conf_d.join("shop.toml"),
        "[[certificate]]\nname = \"shop\"\ndomains = [\"shop.example.com\"]\n",
    )
    .unwrap();
    daemon.wait_for_log(
        "the certificate from conf.d/shop.toml",
        Duration::from_secs(30),
        |_| setup.live("shop").join("cert.pem").exists(),
    );
}

#[test]
fn a_notify_socket_nobody_reads_never_blocks_the_daemon() {
    let setup = Setup::new(PebbleOptions::default());
    // A socket that is bound but never read: its queue (10 datagrams on Linux by default)
    // fills after a few watchdog pets, and a blocking send would hang the daemon there.
    let path = setup.dir.path().join("deaf.sock");
    let _deaf = UnixDatagram::bind(&path).unwrap();
    setup.write_config(&[Cert::new("www", &["www.example.com"])]);
    let mut daemon = setup.spawn_daemon(&[
        ("NOTIFY_SOCKET", path.to_str().unwrap()),
        ("WATCHDOG_USEC", "100000"),
    ]);
    // Issuing the certificate (and answering Pebble's HTTP-01 request on the same thread)
    // works while the notifications pile up, and so does stopping.
    let live = setup.live("www").join("cert.pem");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while !live.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no certificate while the notify socket was full; log:\n{}",
            daemon.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(30)), Some(0));
}

#[test]
fn sigterm_parks_an_order_waiting_on_the_ca_and_the_next_start_resumes_it() {
    // As with SIGKILL, Pebble's random validation delay can beat the signal (the order
    // completes first) or fall between the two daemons; such a try is discarded.
    for attempt in 1..=3 {
        if sigterm_and_resume() {
            return;
        }
        eprintln!("try {attempt}: Pebble's timing beat the test; trying again");
    }
    panic!("three tries in a row could not park and resume an order");
}

fn sigterm_and_resume() -> bool {
    let setup = Setup::new(PebbleOptions::default().env("PEBBLE_VA_SLEEPTIME", "8"));
    setup.write_config(&[Cert::new("slow", &["slow.example.com"])]);
    let state_file = setup.state_dir.join("state/slow.json");
    let mut first = setup.spawn_daemon(&[]);
    first.wait_for_log("the order to be placed", Duration::from_secs(30), |_| {
        fs::read_to_string(&state_file).is_ok_and(|s| s.contains("\"order_url\": \"https"))
    });
    first.signal(Signal::TERM);
    assert_eq!(first.wait_exit(Duration::from_secs(40)), Some(0));
    if setup.live("slow").exists() {
        return false;
    }
    // Stopped at a safe point: the order is kept, and stopping is no failure.
    let state: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(&state_file).unwrap()).unwrap();
    let order_url = state["pending_order"]["order_url"]
        .as_str()
        .expect("the order is kept for the next start")
        .to_owned();
    assert_eq!(state["attempts"]["consecutive_failures"], 0, "{state}");

    let second = setup.spawn_daemon(&[]);
    second.wait_for_log(
        "the parked order to complete or be found invalid",
        Duration::from_secs(60),
        |_| setup.live("slow").join("cert.pem").exists() || failed_once(&state_file),
    );
    let log = second.log_text();
    if failed_once(&state_file) {
        return false;
    }
    assert!(
        log.contains(&format!("resumed order order_url={order_url}")),
        "{log}"
    );
    assert!(!log.contains("order created"), "no second order:\n{log}");
    assert_eq!(setup.versions("slow").len(), 1);
    true
}
