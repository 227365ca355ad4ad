//! Notifications end to end: `certkeeper run` against a real Pebble and a real webhook
//! receiver (a plain HTTP/1.1 server on port 0 in this test). A certificate the CA refuses
//! for good (Pebble's domain blocklist: a human must act) fails attempt after attempt, and
//! the receiver gets exactly one `failed` notice for its failure streak; `certkeeper notify
//! test` reaches the same receiver at once.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::{PebbleOptions, Setup, stdout};

/// Attempts retry after 2 s, then 4 s, at most 8 s: several failed attempts in seconds.
const FAST_RETRY: &str = "retry_initial = \"2s\"\nretry_max = \"8s\"\n";

/// A webhook receiver: every POST body it received, answered `200`. Its thread ends with the
/// test process (it only ever blocks in `accept`).
struct Receiver {
    url: String,
    bodies: Arc<Mutex<Vec<serde_json::Value>>>,
}

impl Receiver {
    fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let bodies = Arc::new(Mutex::new(Vec::new()));
        let received = Arc::clone(&bodies);
        thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut reader = BufReader::new(stream.try_clone().unwrap());
                let mut length = 0;
                let mut line = String::new();
                let mut request_line = String::new();
                reader.read_line(&mut request_line).unwrap_or_default();
                loop {
                    line.clear();
                    if reader.read_line(&mut line).unwrap_or_default() == 0 || line == "\r\n" {
                        break;
                    }
                    if let Some((name, value)) = line.split_once(':')
                        && name.eq_ignore_ascii_case("content-length")
                    {
                        length = value.trim().parse().unwrap_or(0);
                    }
                }
                let mut body = vec![0; length];
                if reader.read_exact(&mut body).is_ok() && request_line.starts_with("POST /hook ") {
                    let json = serde_json::from_slice(&body).unwrap_or(serde_json::Value::Null);
                    received
                        .lock()
                        .unwrap_or_else(PoisonError::into_inner)
                        .push(json);
                }
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                );
            }
        });
        Self { url, bodies }
    }

    fn bodies(&self) -> Vec<serde_json::Value> {
        self.bodies
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

fn write_config(setup: &Setup, receiver: &Receiver, admin: &str) {
    setup.write_config_with(
        &format!("{FAST_RETRY}\n[admin]\nlisten = \"{admin}\"\n"),
        &[],
    );
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    text.push_str(&format!(
        "
[[certificate]]
name = \"refused\"
ca = \"pebble\"
domains = [\"blocked.example\"]

[[notify]]
name = \"hook\"
type = \"webhook\"
url = \"{}\"
",
        receiver.url
    ));
    std::fs::write(&setup.config, text).unwrap();
}

#[test]
fn a_failure_streak_is_one_failed_webhook_and_notify_test_delivers() {
    let setup = Setup::new(PebbleOptions::default());
    let receiver = Receiver::start();
    let admin = format!("127.0.0.1:{}", support::pebble::free_port());
    write_config(&setup, &receiver, &admin);

    let mut daemon = setup.spawn_daemon(&[]);
    // Several failed attempts, each refused for good (error level).
    daemon.wait_for_log("three refused attempts", Duration::from_secs(90), |log| {
        log.matches("attempt failed and will not succeed by itself")
            .count()
            >= 3
    });
    // The notice was queued at the first of them; give delivery a moment after the last.
    let deadline = Instant::now() + Duration::from_secs(10);
    while receiver.bodies().is_empty() && Instant::now() < deadline {
        thread::sleep(Duration::from_millis(100));
    }
    thread::sleep(Duration::from_secs(1));
    let log = daemon.log_text();
    assert!(log.contains("notice queued"), "{log}");
    assert!(
        log.contains("notify_target=\"hook\"") || log.contains("notify_target=hook"),
        "{log}"
    );

    let bodies = receiver.bodies();
    assert_eq!(
        bodies.len(),
        1,
        "one failed notice per streak: {bodies:#?}\n{log}"
    );
    let notice = &bodies[0];
    assert_eq!(notice["event"], "failed", "{notice:#}");
    assert_eq!(notice["certificate"], "refused", "{notice:#}");
    assert_eq!(
        notice["domains"],
        serde_json::json!(["blocked.example"]),
        "{notice:#}"
    );
    assert_eq!(notice["ca"], "pebble", "{notice:#}");
    assert!(
        notice["error"].as_str().is_some_and(|e| !e.is_empty()),
        "the CA's reason: {notice:#}"
    );
    assert!(
        notice["host"].as_str().is_some_and(|h| !h.is_empty()),
        "{notice:#}"
    );
    assert!(
        notice["time"].as_str().is_some_and(|t| t.ends_with('Z')),
        "{notice:#}"
    );
    assert!(
        notice["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("certificate refused: renewal failed")),
        "{notice:#}"
    );
    // Delivered: nothing left in the outbox.
    let left = std::fs::read_dir(setup.state_dir.join("outbox").join("hook"))
        .map(Iterator::count)
        .unwrap_or(0);
    assert_eq!(left, 0, "the outbox is empty once delivered");
    // The streak is remembered in the lineage's state.
    let state = std::fs::read_to_string(setup.state_dir.join("state/refused.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert!(state["notified"]["failed_at_unix"].is_i64(), "{state:#}");

    // Nothing waits for the target: status and the metrics say so.
    let output = setup.certkeeper(&["status"]);
    assert!(
        stdout(&output)
            .lines()
            .any(|l| l == "notify hook: 0 undelivered"),
        "{}",
        stdout(&output)
    );
    let (code, metrics) = support::http_get(&admin, "/metrics");
    assert_eq!(code, 200);
    assert!(
        metrics
            .lines()
            .any(|l| l == "certkeeper_notices_undelivered{target=\"hook\"} 0"),
        "{metrics}"
    );

    // `notify test` sends at once, next to the running daemon.
    let output = setup.certkeeper(&["notify", "test"]);
    assert_eq!(output.status.code(), Some(0));
    assert_eq!(stdout(&output), "hook: delivered\n");
    let bodies = receiver.bodies();
    assert_eq!(bodies.len(), 2, "{bodies:#?}");
    assert_eq!(bodies[1]["event"], "test", "{:#}", bodies[1]);
    assert_eq!(bodies[1]["certificate"], serde_json::Value::Null);

    // An unknown target fails, naming the configured ones.
    let output = setup.certkeeper(&["notify", "test", "nope"]);
    assert_eq!(output.status.code(), Some(1));
    assert!(
        stdout(&output).starts_with("nope: failed: "),
        "{}",
        stdout(&output)
    );

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    assert_eq!(receiver.bodies().len(), 2, "no further notice");
}
