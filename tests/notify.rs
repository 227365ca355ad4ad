//! Notifications end to end: `certkeeper run` against a real Pebble and a real webhook
//! receiver (a plain HTTP/1.1 server on loopback, `support::receiver`).
//!
//! - A certificate the CA refuses for good (Pebble's domain blocklist: a human must act)
//!   fails attempt after attempt, and the receiver gets exactly one `failed` notice for its
//!   failure streak; `certkeeper notify test` reaches the same receiver at once.
//! - A CA that refuses three orders in a row (the fault proxy answers newOrder with a
//!   `rejectedIdentifier` problem), then issues: one `failed`, then one `recovered`.
//! - A target that is down: the notice waits in the outbox across a SIGKILL and a restart and
//!   is delivered exactly once when the receiver comes up, while another certificate was
//!   issued on time.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

mod support;

use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use rustix::process::Signal;
use support::proxy::{Fault, FaultProxy};
use support::receiver::{Receiver, hook_url};
use support::{Cert, PebbleOptions, Setup, stdout};

/// Attempts retry after 2 s, then 4 s, at most 8 s: several failed attempts in seconds.
const FAST_RETRY: &str = "retry_initial = \"2s\"\nretry_max = \"8s\"\n";

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

/// Pebble's newOrder path.
const PEBBLE_NEW_ORDER: &str = "/order-plz";

/// The webhook target `hook` at `url`, receiving `events` (a TOML array).
fn notify_table(url: &str, events: &str) -> String {
    format!(
        "
[[notify]]
name = \"hook\"
type = \"webhook\"
url = \"{url}\"
events = {events}
"
    )
}

/// The entries waiting in the outbox for target `hook` (the JSON of each file).
fn outbox_entries(state_dir: &Path) -> Vec<serde_json::Value> {
    let Ok(files) = std::fs::read_dir(state_dir.join("outbox").join("hook")) else {
        return Vec::new();
    };
    files
        .map(|file| file.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "json"))
        .filter_map(|path| std::fs::read_to_string(path).ok())
        .filter_map(|text| serde_json::from_str(&text).ok())
        .collect()
}

/// Wait until `pred` holds, or fail after `timeout` saying `what`.
fn wait_until(what: &str, timeout: Duration, pred: impl Fn() -> bool) {
    let deadline = Instant::now() + timeout;
    while !pred() {
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn three_refused_orders_then_an_issuance_are_one_failed_and_one_recovered() {
    let setup = Setup::new(PebbleOptions::default());
    let proxy = FaultProxy::start(&setup.pebble);
    // The CA refuses the identifier on the next three newOrder requests: a refusal no retry
    // fixes by itself (a human must act), then it issues.
    proxy.fail_next_on(
        PEBBLE_NEW_ORDER,
        3,
        Fault::Status {
            code: 400,
            problem: "rejectedIdentifier",
            retry_after: None,
        },
    );
    let receiver = Receiver::start();
    setup.write_config_with(FAST_RETRY, &[Cert::new("www", &["www.example.com"])]);
    let text = std::fs::read_to_string(&setup.config)
        .unwrap()
        .replace(&setup.pebble.directory_url, &proxy.directory_url());
    std::fs::write(
        &setup.config,
        text + &notify_table(&receiver.url, "[\"failed\", \"recovered\"]"),
    )
    .unwrap();

    let mut daemon = setup.spawn_daemon(&[]);
    let bodies = receiver.wait_for(
        "a failed and a recovered notice",
        Duration::from_secs(120),
        |bodies| {
            bodies.iter().any(|b| b["event"] == "failed")
                && bodies.iter().any(|b| b["event"] == "recovered")
        },
    );
    assert_eq!(setup.versions("www").len(), 1, "the certificate was issued");
    // Three refused orders, then the one that issued (Pebble rejects a few nonces at random,
    // and the client sends a newOrder again after a badNonce: maybe more than one more).
    assert!(
        proxy.requests_to(PEBBLE_NEW_ORDER) >= 4,
        "three refused orders, then the one that issued: {:?}",
        proxy.paths()
    );
    // Nothing more arrives: no second failed for the same streak, no second recovered.
    thread::sleep(Duration::from_secs(3));
    let bodies_after = receiver.bodies();
    assert_eq!(
        bodies_after,
        bodies,
        "{bodies_after:#?}\n{}",
        daemon.log_text()
    );
    let events: Vec<&str> = bodies
        .iter()
        .map(|b| b["event"].as_str().unwrap())
        .collect();
    assert_eq!(events, ["failed", "recovered"], "{bodies:#?}");

    let failed = &bodies[0];
    assert_eq!(failed["certificate"], "www", "{failed:#}");
    assert_eq!(
        failed["domains"],
        serde_json::json!(["www.example.com"]),
        "{failed:#}"
    );
    assert_eq!(failed["ca"], "pebble", "{failed:#}");
    assert!(
        failed["error"]
            .as_str()
            .is_some_and(|e| e.contains("injected by the test proxy")),
        "the CA's problem is the error: {failed:#}"
    );
    assert!(
        failed["next_attempt"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z')),
        "{failed:#}"
    );

    let recovered = &bodies[1];
    assert_eq!(recovered["certificate"], "www", "{recovered:#}");
    assert_eq!(
        recovered["domains"],
        serde_json::json!(["www.example.com"]),
        "{recovered:#}"
    );
    assert_eq!(recovered["ca"], "pebble", "{recovered:#}");
    assert_eq!(recovered["error"], serde_json::Value::Null, "{recovered:#}");
    // The new certificate's expiry, as the installed certificate has it.
    let not_after = support::openssl(&[
        "x509",
        "-noout",
        "-enddate",
        "-dateopt",
        "iso_8601",
        "-in",
        setup.live("www").join("cert.pem").to_str().unwrap(),
    ]);
    let expected = not_after
        .trim()
        .trim_start_matches("notAfter=")
        .replace(' ', "T");
    assert_eq!(
        recovered["not_after"].as_str(),
        Some(expected.as_str()),
        "{recovered:#}"
    );
    assert!(
        recovered["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("certificate www: renewed again")),
        "{recovered:#}"
    );
    // The streak is over in the lineage's state.
    let state = std::fs::read_to_string(setup.state_dir.join("state/www.json")).unwrap();
    let state: serde_json::Value = serde_json::from_str(&state).unwrap();
    assert!(state["notified"]["failed_at_unix"].is_null(), "{state:#}");
    assert!(outbox_entries(&setup.state_dir).is_empty(), "all delivered");

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    assert_eq!(receiver.bodies().len(), 2, "no further notice");
}

/// `certkeeper status --json`: each certificate's notices waiting per target.
fn undelivered_per_certificate(setup: &Setup) -> serde_json::Value {
    let output = setup.certkeeper(&["status", "--json"]);
    let rows: serde_json::Value = serde_json::from_str(&stdout(&output)).unwrap();
    rows.as_array()
        .unwrap()
        .iter()
        .map(|row| {
            (
                row["name"].as_str().unwrap().to_owned(),
                row["notices_undelivered"].clone(),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[test]
fn a_notice_for_a_target_that_is_down_survives_sigkill_and_is_delivered_once() {
    let setup = Setup::new(PebbleOptions::default());
    // Nobody listens on the target's port until the daemon has been killed and restarted.
    let port = support::pebble::free_port();
    setup.write_config_with(FAST_RETRY, &[Cert::new("www", &["www.example.com"])]);
    let mut text = std::fs::read_to_string(&setup.config).unwrap();
    // `blocked.example` is on Pebble's domainBlocklist: refused for good.
    text.push_str(
        "
[[certificate]]
name = \"refused\"
ca = \"pebble\"
domains = [\"blocked.example\"]
",
    );
    text.push_str(&notify_table(
        &hook_url(port),
        "[\"failed\", \"recovered\", \"digest\"]",
    ));
    std::fs::write(&setup.config, text).unwrap();

    let mut daemon = setup.spawn_daemon(&[]);
    // The digest (the first pass sends one) and the failed notice are queued, and delivery
    // was tried and failed (the target is down) ...
    wait_until(
        "a failed notice queued and a delivery tried",
        Duration::from_secs(90),
        || {
            let entries = outbox_entries(&setup.state_dir);
            entries.iter().any(|entry| {
                entry["notice"]["event"] == "failed" && entry["notice"]["certificate"] == "refused"
            }) && entries
                .iter()
                .any(|entry| entry["attempts"].as_u64() >= Some(1))
        },
    );
    // ... while the other certificate was issued all the same.
    wait_until("www issued", Duration::from_secs(60), || {
        setup.versions("www").len() == 1
    });

    daemon.signal(Signal::KILL);
    daemon.wait_exit(Duration::from_secs(10));
    let queued = outbox_entries(&setup.state_dir);
    let mut events: Vec<&str> = queued
        .iter()
        .map(|entry| entry["notice"]["event"].as_str().unwrap())
        .collect();
    events.sort_unstable();
    assert_eq!(events, ["digest", "failed"], "{queued:#?}");
    // `status` counts them: per certificate in the JSON, per target in the text.
    assert_eq!(
        undelivered_per_certificate(&setup),
        serde_json::json!({"www": {"hook": 0}, "refused": {"hook": 1}})
    );
    assert!(
        stdout(&setup.certkeeper(&["status"]))
            .lines()
            .any(|l| l == "notify hook: 2 undelivered")
    );

    let mut daemon = setup.spawn_daemon(&[]);
    let receiver = Receiver::start_on(port);
    // Delivered once each entry's backoff (a minute after its failed try) has passed.
    receiver.wait_for(
        "the digest and the failed notice",
        Duration::from_secs(150),
        |bodies| bodies.len() >= 2,
    );
    wait_until("an empty outbox", Duration::from_secs(10), || {
        outbox_entries(&setup.state_dir).is_empty()
    });
    thread::sleep(Duration::from_secs(3));
    let bodies = receiver.bodies();
    let log = daemon.log_text();
    assert_eq!(bodies.len(), 2, "each exactly once: {bodies:#?}\n{log}");
    let failed = receiver.events("failed");
    assert_eq!(failed.len(), 1, "{bodies:#?}");
    assert_eq!(failed[0]["certificate"], "refused", "{:#}", failed[0]);
    // One digest, though the daemon started twice: it lists every certificate.
    let digest = receiver.events("digest");
    assert_eq!(digest.len(), 1, "{bodies:#?}");
    let digest = &digest[0];
    assert_eq!(digest["certificate"], serde_json::Value::Null, "{digest:#}");
    let mut listed: Vec<&str> = digest["digest"]
        .as_array()
        .unwrap()
        .iter()
        .map(|line| line["certificate"].as_str().unwrap())
        .collect();
    listed.sort_unstable();
    assert_eq!(listed, ["refused", "www"], "{digest:#}");
    for line in digest["digest"].as_array().unwrap() {
        assert!(
            ["ok", "failing", "expiring", "missing"].contains(&line["status"].as_str().unwrap()),
            "{digest:#}"
        );
    }
    assert!(
        digest["summary"]
            .as_str()
            .is_some_and(|s| s.starts_with("certkeeper daily digest")),
        "{digest:#}"
    );
    assert_eq!(
        undelivered_per_certificate(&setup),
        serde_json::json!({"www": {"hook": 0}, "refused": {"hook": 0}})
    );
    // The restart did not start a second streak, and www was not issued again.
    assert_eq!(setup.versions("www").len(), 1);

    daemon.signal(Signal::TERM);
    assert_eq!(daemon.wait_exit(Duration::from_secs(40)), Some(0));
    assert_eq!(receiver.bodies().len(), 2, "no further notice");
}
