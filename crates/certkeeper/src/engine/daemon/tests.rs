//! The scheduler in-process, with tokio's clock paused: a clock that follows it, a runner of
//! scripted outcomes that records them on a real store in a temporary directory, and the
//! daemon's own loop, planner and lifecycle. Months of renewals pass in milliseconds of real
//! time; each test waits on the runner's calls, never on a sleep of real time.

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::VecDeque;
use std::os::unix::net::UnixDatagram;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use certkeeper_acme::{AcmeError, CaFailure};
use certkeeper_config::Environment;
use certkeeper_core::ari::Window;
use certkeeper_core::schedule::{Attempts, Backoff, backoff_delay, plan_certificate};
use certkeeper_core::{CaSpec, CertName, CertificateSpec, Clock};
use certkeeper_store::Store;
use instant_acme::Problem;
use rcgen::{CertificateParams, KeyPair};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Daemon, Ports};
use crate::accounts::AccountError;
use crate::engine::job::{self, AttemptError};
use crate::engine::ports::{
    AttemptInput, CaAccount, CertificateAuthority, Outcome, PortFuture, RenewalInfo, Runner, Task,
};
use crate::lifecycle::Lifecycle;
use crate::systemd::Notifier;

const DAY: Duration = Duration::from_secs(86_400);
const HOUR: Duration = Duration::from_secs(3_600);

/// Wall-clock time that follows tokio's (paused) clock, from a fixed origin.
#[derive(Debug)]
struct TokioClock {
    origin: SystemTime,
    start: Instant,
}

impl TokioClock {
    fn new() -> Self {
        // 2027-01-01T00:00:00Z: a fixed origin keeps every instant of a test the same.
        Self {
            origin: SystemTime::UNIX_EPOCH + Duration::from_secs(1_798_761_600),
            start: Instant::now(),
        }
    }
}

impl Clock for TokioClock {
    fn now(&self) -> SystemTime {
        self.origin + self.start.elapsed()
    }
}

/// What the scripted CA does on one attempt.
#[derive(Debug, Clone, Copy)]
enum Script {
    /// Issue a certificate valid for this long from now.
    Issue(Duration),
    /// Fail as a transient CA error would, with the CA's Retry-After (from now) if any.
    Fail(Option<Duration>),
    /// The CA has not finished: the order is parked and looked at again later.
    Wait,
    /// Never answer.
    Hang,
}

/// A runner of scripted outcomes, recording them on the lineage as the real one does.
#[derive(Debug)]
struct ScriptedRunner {
    clock: Arc<TokioClock>,
    store: Store,
    script: Mutex<VecDeque<Script>>,
    calls: mpsc::UnboundedSender<(SystemTime, String)>,
}

impl Runner for ScriptedRunner {
    fn attempt(&self, input: AttemptInput) -> Task<Outcome> {
        let now = self.clock.now();
        let _ = self.calls.send((now, input.spec.name.to_string()));
        let step = self
            .script
            .lock()
            .unwrap()
            .pop_front()
            .expect("the script has a step for every attempt");
        let store = self.store.clone();
        Box::pin(async move {
            if matches!(step, Script::Hang) {
                std::future::pending::<()>().await;
            }
            let mut lineage = store.lineage(&input.spec.name).unwrap();
            let result = match step {
                Script::Issue(lifetime) => {
                    let key = KeyPair::generate().unwrap();
                    let names: Vec<String> =
                        input.spec.domains.iter().map(ToString::to_string).collect();
                    let mut params = CertificateParams::new(names).unwrap();
                    params.not_before = now.into();
                    params.not_after = (now + lifetime).into();
                    let cert = params.self_signed(&key).unwrap();
                    Ok(lineage
                        .install(
                            &input.spec.domains,
                            key.serialize_pem().as_bytes(),
                            &cert.pem(),
                            None,
                        )
                        .unwrap())
                }
                Script::Fail(retry_after) => Err(AttemptError::Acme(CaFailure {
                    error: server_error(),
                    retry_after: retry_after.map(|wait| now + wait),
                })),
                Script::Wait => Err(AttemptError::Acme(CaFailure {
                    error: AcmeError::Timeout {
                        ca: "scripted".to_owned(),
                        order_url: "https://ca.invalid/order/1".to_owned(),
                        waiting_for: "the order to be ready",
                        waited: Duration::from_secs(300),
                    },
                    retry_after: None,
                })),
                Script::Hang => unreachable!("a hanging attempt never gets here"),
            };
            job::record(&mut lineage, &result, now);
            Outcome {
                result,
                deploy: Ok(()),
            }
        })
    }

    fn redeploy(&self, _input: AttemptInput) -> Task<()> {
        Box::pin(async {})
    }
}

/// Renewal information as a CA with ARI would answer: for each certificate asked about, a
/// window starting `start` after the moment of asking and lasting `length` (the first answer
/// per certificate; later ones repeat it, so the window does not move).
#[derive(Debug)]
struct ScriptedAuthority {
    clock: Arc<TokioClock>,
    window: Option<(Duration, Duration)>,
    answered: Mutex<std::collections::HashMap<Vec<u8>, Window>>,
    asked: mpsc::UnboundedSender<SystemTime>,
}

impl CertificateAuthority for ScriptedAuthority {
    fn renewal_info<'a>(
        &'a self,
        _ca: &'a CaSpec,
        leaf_der: &'a [u8],
    ) -> PortFuture<'a, Result<RenewalInfo, AcmeError>> {
        let now = self.clock.now();
        let _ = self.asked.send(now);
        let answer = self.window.map(|(start, length)| {
            *self
                .answered
                .lock()
                .unwrap()
                .entry(leaf_der.to_vec())
                .or_insert(Window {
                    start: now + start,
                    end: now + start + length,
                })
        });
        Box::pin(async move {
            Ok(match answer {
                Some(window) => RenewalInfo::Window {
                    window,
                    explanation_url: None,
                    retry_after: Some(HOUR),
                },
                None => RenewalInfo::Unsupported,
            })
        })
    }

    fn account<'a>(
        &'a self,
        _ca: &'a CaSpec,
    ) -> PortFuture<'a, Result<Box<dyn CaAccount>, AccountError>> {
        unreachable!("the scripted runner orders nothing")
    }

    fn register_again<'a>(
        &'a self,
        _ca: &'a CaSpec,
        _gone: &'a dyn CaAccount,
    ) -> PortFuture<'a, Result<Box<dyn CaAccount>, AccountError>> {
        unreachable!("the scripted runner orders nothing")
    }

    fn forget_accounts(&self) {}
}

fn server_error() -> AcmeError {
    AcmeError::Protocol {
        ca: "scripted".to_owned(),
        step: "new order",
        source: Box::new(instant_acme::Error::Api(Problem {
            r#type: Some("urn:ietf:params:acme:error:serverInternal".to_owned()),
            detail: Some("scripted outage".to_owned()),
            status: Some(500),
            subproblems: Vec::new(),
        })),
    }
}

/// A daemon on a fresh state directory with one certificate `www`, `top` added before the
/// tables (a window, say), running `script`. Returns the calls' instants as they happen,
/// the stop handle and the daemon's task.
struct Running {
    calls: mpsc::UnboundedReceiver<(SystemTime, String)>,
    /// When the daemon asked for renewal information.
    asked: mpsc::UnboundedReceiver<SystemTime>,
    stop: tokio_util::sync::CancellationToken,
    reload: Arc<tokio::sync::Notify>,
    config: std::path::PathBuf,
    daemon: tokio::task::JoinHandle<anyhow::Result<()>>,
    store: Store,
    spec: CertificateSpec,
    _dir: tempfile::TempDir,
}

fn start(top: &str, script: &[Script], lifecycle: Option<Lifecycle>) -> Running {
    start_with_ari(top, script, lifecycle, None)
}

/// [`start`], the CA suggesting `window` (start after asking, length) for each certificate;
/// `None`: a CA without ARI.
fn start_with_ari(
    top: &str,
    script: &[Script],
    lifecycle: Option<Lifecycle>,
    window: Option<(Duration, Duration)>,
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let config = dir.path().join("certkeeper.toml");
    std::fs::write(
        &config,
        format!(
            r#"state_dir = "{}"
{top}
[http01]
listen = ["127.0.0.1:0"]

[[ca]]
name = "scripted"
directory = "https://ca.invalid/directory"

[[certificate]]
name = "www"
ca = "scripted"
domains = ["www.example.com"]
"#,
            state.display()
        ),
    )
    .unwrap();
    let env = Environment::from_process();
    let inventory = certkeeper_config::load(&config, &env).unwrap().inventory;
    let spec = inventory.certificates[0].clone();
    let store = Store::open(&state).unwrap();
    let lock = store.lock().unwrap();
    let clock = Arc::new(TokioClock::new());
    let (calls_tx, calls) = mpsc::unbounded_channel();
    let runner = ScriptedRunner {
        clock: Arc::clone(&clock),
        store: store.clone(),
        script: Mutex::new(script.iter().copied().collect()),
        calls: calls_tx,
    };
    let lifecycle = lifecycle.unwrap_or_else(|| Lifecycle::new(Notifier::default(), None).unwrap());
    let stop = lifecycle.stop_handle();
    let reload = lifecycle.reload_handle();
    let (asked_tx, asked) = mpsc::unbounded_channel();
    let authority = ScriptedAuthority {
        clock: Arc::clone(&clock),
        window,
        answered: Mutex::default(),
        asked: asked_tx,
    };
    let ports = Ports {
        clock,
        runner: Some(Arc::new(runner)),
        authority: Some(Arc::new(authority)),
        lifecycle,
    };
    let daemon = tokio::spawn(Daemon::run_with(
        config.clone(),
        env,
        inventory,
        (store.clone(), lock),
        ports,
    ));
    Running {
        calls,
        asked,
        stop,
        reload,
        config,
        daemon,
        store,
        spec,
        _dir: dir,
    }
}

impl Running {
    async fn next_call(&mut self) -> SystemTime {
        self.next_named_call().await.0
    }

    async fn next_named_call(&mut self) -> (SystemTime, String) {
        self.calls
            .recv()
            .await
            .expect("the daemon calls the runner")
    }

    async fn stop(self) {
        self.stop.cancel();
        self.daemon.await.unwrap().unwrap();
    }
}

fn www() -> CertName {
    CertName::new("www").unwrap()
}

/// `a` and `b` within a second (certificates and state files keep whole seconds).
fn assert_close(a: SystemTime, b: SystemTime, what: &str) {
    let gap = a
        .duration_since(b)
        .or_else(|_| b.duration_since(a))
        .unwrap();
    assert!(gap <= Duration::from_secs(1), "{what}: {a:?} vs {b:?}");
}

#[tokio::test(start_paused = true)]
async fn a_missing_certificate_is_issued_at_once_and_renewed_at_its_planned_instant() {
    let mut running = start(
        "",
        &[Script::Issue(90 * DAY), Script::Issue(90 * DAY)],
        None,
    );
    let first = running.next_call().await;
    assert_eq!(first, TokioClock::new().origin, "issued at start");
    // The instant the core's planner gives for the certificate the first attempt installed
    // (read before the second attempt replaces it).
    let observed = running
        .store
        .read_live_certificate(&www())
        .unwrap()
        .unwrap()
        .observed;
    let second = running.next_call().await;
    let planned = plan_certificate(
        &www(),
        &running.spec,
        Some(&observed),
        &Attempts::default(),
        &running.spec.schedule,
        first,
    )
    .unwrap();
    assert_close(second, planned.at, "the planned renewal");
    // A third of 90 days before expiry, less at most a tenth of that for jitter.
    assert!(
        second > first + 57 * DAY && second <= first + 60 * DAY,
        "{second:?}"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_suggested_window_moves_the_renewal_into_it_and_is_asked_for_again_hourly() {
    // The CA suggests renewing 10 to 11 days after it is asked, long before the lifetime
    // rule's 57-60 days.
    let mut running = start_with_ari(
        "",
        &[Script::Issue(90 * DAY), Script::Issue(90 * DAY)],
        None,
        Some((10 * DAY, DAY)),
    );
    let first = running.next_call().await;
    // Asked about the new certificate at once, then hourly (its Retry-After).
    let asked = running.asked.recv().await.unwrap();
    assert_close(asked, first, "the first check");
    let again = running.asked.recv().await.unwrap();
    assert_close(again, asked + HOUR, "the second check");
    let second = running.next_call().await;
    assert!(
        second >= asked + 10 * DAY && second <= asked + 11 * DAY,
        "renewed at {second:?}, outside the window starting {asked:?} + 10 days"
    );
    // What was chosen is what is recorded, and what the renewal ran at.
    let record = running
        .store
        .lineage(&www())
        .unwrap()
        .state()
        .renewal_info
        .clone()
        .unwrap();
    assert_ne!(record.renew_at_unix, None);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_ca_without_renewal_information_is_asked_once_a_day_and_the_lifetime_rule_plans() {
    let mut running = start_with_ari(
        "",
        &[Script::Issue(90 * DAY), Script::Issue(90 * DAY)],
        None,
        None,
    );
    let first = running.next_call().await;
    let asked = running.asked.recv().await.unwrap();
    assert_close(asked, first, "the first check");
    let again = running.asked.recv().await.unwrap();
    assert_close(again, asked + DAY, "a day later");
    let second = running.next_call().await;
    assert!(
        second > first + 57 * DAY && second <= first + 60 * DAY,
        "{second:?}"
    );
    // Nothing was written for a CA without ARI.
    let state = running.store.lineage(&www()).unwrap().state().clone();
    assert_eq!(state.renewal_info, None);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn failures_back_off_doubling_and_a_ca_retry_after_beats_the_backoff() {
    let mut running = start(
        "",
        &[
            Script::Fail(None),
            Script::Fail(None),
            Script::Fail(Some(2 * HOUR)),
            Script::Issue(90 * DAY),
        ],
        None,
    );
    let calls = [
        running.next_call().await,
        running.next_call().await,
        running.next_call().await,
        running.next_call().await,
    ];
    let backoff = Backoff::default();
    assert_close(
        calls[1],
        calls[0] + backoff_delay(&www(), 1, &backoff),
        "after one failure",
    );
    assert_close(
        calls[2],
        calls[1] + backoff_delay(&www(), 2, &backoff),
        "after two failures",
    );
    assert!(backoff_delay(&www(), 2, &backoff) > backoff_delay(&www(), 1, &backoff));
    // The CA's two hours, longer than the backoff after three failures.
    assert!(backoff_delay(&www(), 3, &backoff) < 2 * HOUR);
    assert_close(calls[3], calls[2] + 2 * HOUR, "the CA's Retry-After");
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_due_renewal_waits_for_the_window_and_an_urgent_one_does_not() {
    // Daily at 02:30 UTC. The first issuance (missing: urgent) runs at once, at 00:00.
    let mut running = start(
        "window = \"30 2 * * *\"\ntimezone = \"UTC\"",
        &[Script::Issue(10 * DAY), Script::Issue(10 * DAY)],
        None,
    );
    let first = running.next_call().await;
    let second = running.next_call().await;
    // Due a third of the lifetime before expiry (less jitter), then held to a window start:
    // some day at 02:30:00 UTC, unless that is past the urgent point (a tenth of 10 days
    // before expiry), in which case at the urgent point.
    let since_midnight = second
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        % 86_400;
    let urgent_point = first + 9 * DAY;
    assert!(
        since_midnight == 2 * 3_600 + 30 * 60 || second == urgent_point,
        "renewed at {second:?}, {since_midnight} s after midnight"
    );
    assert!(
        second > first + 5 * DAY && second <= urgent_point,
        "{second:?}"
    );
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn the_watchdog_is_petted_while_an_attempt_hangs_and_a_stop_does_not_wait_for_it() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket.set_nonblocking(true).unwrap();
    let lifecycle = Lifecycle::new(
        Notifier::connect(socket_path.as_os_str()),
        Some(Duration::from_secs(10)),
    )
    .unwrap();
    let mut running = start("", &[Script::Hang], Some(lifecycle));
    running.next_call().await;
    // A minute of (paused) time with the attempt hanging.
    tokio::time::sleep(Duration::from_secs(60)).await;
    let pets = received(&socket)
        .iter()
        .filter(|m| m.lines().any(|l| l == "WATCHDOG=1"))
        .count();
    assert!(
        pets >= 5,
        "{pets} watchdog pets in a minute at one per 10 s"
    );
    // Stopping: the hanging attempt gets the grace period, then is dropped.
    running.stop().await;
    assert!(
        received(&socket)
            .iter()
            .any(|m| m.lines().any(|l| l == "STOPPING=1"))
    );
}

fn received(socket: &UnixDatagram) -> Vec<String> {
    let mut messages = Vec::new();
    let mut buffer = [0u8; 4096];
    while let Ok(n) = socket.recv(&mut buffer) {
        messages.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
    }
    messages
}

#[tokio::test(start_paused = true)]
async fn a_parked_order_is_looked_at_again_later_and_is_no_failure() {
    let mut running = start("", &[Script::Wait, Script::Issue(90 * DAY)], None);
    let first = running.next_call().await;
    let second = running.next_call().await;
    assert_close(
        second,
        first + certkeeper_store::RECHECK_WAITING_ORDER,
        "the parked order's recheck",
    );
    // Waiting on the CA did not count as a failure: no backoff was recorded.
    let state = running.store.lineage(&www()).unwrap().state().clone();
    assert_eq!(state.attempts.consecutive_failures, 0);
    assert_eq!(state.attempts.failures_total, 0);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reload_adds_and_removes_certificates() {
    let mut running = start(
        "",
        &[
            Script::Issue(90 * DAY),
            Script::Issue(90 * DAY),
            Script::Issue(90 * DAY),
        ],
        None,
    );
    assert_eq!(running.next_named_call().await.1, "www");
    // Add `api`: it is issued at once after the reload.
    let text = std::fs::read_to_string(&running.config).unwrap();
    let with_api = format!(
        "{text}\n[[certificate]]\nname = \"api\"\nca = \"scripted\"\ndomains = [\"api.example.com\"]\n"
    );
    std::fs::write(&running.config, &with_api).unwrap();
    running.reload.notify_one();
    let (added_at, name) = running.next_named_call().await;
    assert_eq!(name, "api");
    // Remove `www`: the next renewal is `api`'s, never `www`'s.
    let without_www = with_api.replacen(
        "[[certificate]]\nname = \"www\"\nca = \"scripted\"\ndomains = [\"www.example.com\"]\n",
        "",
        1,
    );
    assert_ne!(without_www, with_api);
    std::fs::write(&running.config, &without_www).unwrap();
    running.reload.notify_one();
    let (renewed_at, name) = running.next_named_call().await;
    assert_eq!(name, "api", "only the remaining certificate is renewed");
    assert!(renewed_at > added_at + 50 * DAY);
    running.stop().await;
}

#[tokio::test(start_paused = true)]
async fn a_reload_that_changes_a_certificates_names_reissues_it_at_once() {
    let mut running = start(
        "",
        &[Script::Issue(90 * DAY), Script::Issue(90 * DAY)],
        None,
    );
    let (issued_at, name) = running.next_named_call().await;
    assert_eq!(name, "www");
    // Two days later the configuration gives `www` a second name.
    tokio::time::sleep(2 * DAY).await;
    let text = std::fs::read_to_string(&running.config).unwrap();
    let changed = text.replacen(
        "domains = [\"www.example.com\"]",
        "domains = [\"www.example.com\", \"example.com\"]",
        1,
    );
    assert_ne!(changed, text);
    std::fs::write(&running.config, &changed).unwrap();
    running.reload.notify_one();
    let (reissued_at, name) = running.next_named_call().await;
    assert_eq!(name, "www");
    // Not at its planned renewal, some 57 days on: at once, the names no longer match.
    assert!(
        reissued_at < issued_at + 3 * DAY,
        "re-issued {:?} after the first issuance",
        reissued_at.duration_since(issued_at).unwrap()
    );
    let live = running
        .store
        .read_live_certificate(&www())
        .unwrap()
        .unwrap();
    assert_eq!(
        live.observed.domains.len(),
        2,
        "{:?}",
        live.observed.domains
    );
    running.stop().await;
}

/// The events queued in the outbox for target `hook`, sorted.
fn queued_events(store: &Store) -> Vec<String> {
    let dir = store.outbox_path().join("hook");
    let mut events: Vec<String> = std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|entry| entry.path().extension().is_some_and(|e| e == "json"))
                .map(|entry| {
                    let json: serde_json::Value =
                        serde_json::from_slice(&std::fs::read(entry.path()).unwrap()).unwrap();
                    json["notice"]["event"].as_str().unwrap().to_owned()
                })
                .collect()
        })
        .unwrap_or_default();
    events.sort();
    events
}

#[tokio::test(start_paused = true)]
async fn a_failure_streak_queues_one_failed_and_the_install_that_ends_it_recovered() {
    // A receiver that refuses connections: what is queued stays in the outbox.
    let mut running = start(
        "[[notify]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"http://127.0.0.1:9/hook\"\n",
        &[
            Script::Fail(None),
            Script::Fail(None),
            Script::Fail(None),
            Script::Issue(90 * DAY),
        ],
        None,
    );
    for _ in 0..3 {
        running.next_call().await;
    }
    // A missing certificate not obtained is urgent: each failure needs a human, one notice.
    assert_eq!(queued_events(&running.store), ["failed"]);
    let notified = running.store.lineage(&www()).unwrap().notified();
    assert!(notified.failed_at.is_some(), "{notified:?}");
    running.next_call().await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(queued_events(&running.store), ["failed", "recovered"]);
    let notified = running.store.lineage(&www()).unwrap().notified();
    assert_eq!(notified.failed_at, None, "the streak ended");
    running.stop().await;
}
