//! The order code's use of the challenge solver, against a fake CA on loopback.
//!
//! The fake speaks just enough RFC 8555 over plain HTTP for [`PlacedOrder::complete`]: a
//! directory, nonces, one order with an authorization per name, challenges, finalize and a
//! certificate. It checks no signature; what it does is write "trigger <name>" into the same
//! log the recording solver writes "present", "ready" and "cleanup" into, so a test reads the
//! order of events across both sides in one place.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use certkeeper_core::{
    ChallengeAnswer, ChallengeKind, ChallengeSolver, DomainName, KeyType, SolverError,
    SolverFuture, SolverStep,
};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

use crate::account::AcmeAccount;
use crate::error::AcmeError;
use crate::keys::{generate_key, generate_key_pem};
use crate::order::{PlacedOrder, PollPolicy};
use crate::transport::{Transport, TransportSettings};

type Log = Arc<Mutex<Vec<String>>>;

fn events(log: &Log) -> Vec<String> {
    log.lock().expect("log").clone()
}

/// What the fake CA does once every challenge is triggered.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Outcome {
    Valid,
    Invalid,
    /// The order stays `pending` forever.
    NeverReady,
}

struct FakeCa {
    base: String,
    names: Vec<&'static str>,
    offered: Vec<&'static str>,
    outcome: Outcome,
    triggered: Vec<String>,
    finalized: bool,
    nonce: u64,
    log: Log,
}

impl FakeCa {
    fn all_triggered(&self) -> bool {
        self.names
            .iter()
            .all(|name| self.triggered.iter().any(|t| t == name))
    }

    fn order(&self) -> serde_json::Value {
        let status = match (self.all_triggered(), self.outcome, self.finalized) {
            (_, _, true) => "valid",
            (true, Outcome::Valid, false) => "ready",
            (true, Outcome::Invalid, false) => "invalid",
            _ => "pending",
        };
        let authorizations: Vec<String> = self
            .names
            .iter()
            .map(|name| format!("{}/authz/{name}", self.base))
            .collect();
        let mut order = serde_json::json!({
            "status": status,
            "identifiers": self.names.iter().map(|name| serde_json::json!({"type": "dns", "value": name})).collect::<Vec<_>>(),
            "authorizations": authorizations,
            "finalize": format!("{}/finalize", self.base),
        });
        if self.finalized {
            order["certificate"] = format!("{}/cert", self.base).into();
        }
        order
    }

    fn authorization(&self, name: &str) -> serde_json::Value {
        let triggered = self.triggered.iter().any(|t| t == name);
        let (status, challenge_status) = match (triggered, self.outcome) {
            (true, Outcome::Valid) => ("valid", "valid"),
            (true, Outcome::Invalid) => ("invalid", "invalid"),
            (true, Outcome::NeverReady) => ("pending", "processing"),
            (false, _) => ("pending", "pending"),
        };
        let challenges: Vec<serde_json::Value> = self
            .offered
            .iter()
            .map(|kind| {
                let mut challenge = serde_json::json!({
                    "type": kind,
                    "url": format!("{}/chall/{name}/{kind}", self.base),
                    "token": format!("tok-{name}"),
                    "status": challenge_status,
                });
                if status == "invalid" {
                    challenge["error"] = serde_json::json!({
                        "type": "urn:ietf:params:acme:error:incorrectResponse",
                        "detail": "the key authorization did not match",
                    });
                }
                challenge
            })
            .collect();
        let (value, wildcard) = match name.strip_prefix("*.") {
            Some(base) => (base, true),
            None => (name, false),
        };
        serde_json::json!({
            "identifier": {"type": "dns", "value": value},
            "wildcard": wildcard,
            "status": status,
            "challenges": challenges,
        })
    }

    fn respond(&mut self, method: &str, path: &str) -> (u16, String) {
        let json = |value: serde_json::Value| (200, value.to_string());
        let segments: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        match (method, segments.as_slice()) {
            ("GET", ["dir"]) => json(serde_json::json!({
                "newNonce": format!("{}/nonce", self.base),
                "newAccount": format!("{}/account", self.base),
                "newOrder": format!("{}/new-order", self.base),
            })),
            ("HEAD" | "GET", ["nonce"]) => (200, String::new()),
            ("POST", ["order"]) => json(self.order()),
            ("POST", ["authz", name]) => json(self.authorization(name)),
            ("POST", ["chall", name, kind]) => {
                self.log
                    .lock()
                    .expect("log")
                    .push(format!("trigger {name}"));
                self.triggered.push((*name).to_owned());
                json(serde_json::json!({
                    "type": kind,
                    "url": format!("{}/chall/{name}/{kind}", self.base),
                    "token": format!("tok-{name}"),
                    "status": "processing",
                }))
            }
            ("POST", ["finalize"]) => {
                self.finalized = true;
                json(self.order())
            }
            ("POST", ["cert"]) => (200, "-----BEGIN CERTIFICATE-----\n".to_owned()),
            _ => (
                404,
                r#"{"type":"about:blank","detail":"not here"}"#.to_owned(),
            ),
        }
    }
}

/// One request per connection, answered with `Connection: close`.
async fn serve(listener: TcpListener, ca: Arc<Mutex<FakeCa>>) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(answer(stream, Arc::clone(&ca)));
    }
}

async fn answer(mut stream: TcpStream, ca: Arc<Mutex<FakeCa>>) {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = stream.read(&mut chunk).await.expect("read");
        if n == 0 {
            return;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut words = head.split_whitespace();
    let method = words.next().expect("method").to_owned();
    let path = words.next().expect("path").to_owned();
    let length: usize = head
        .lines()
        .find_map(|line| {
            let (name, value) = line.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .unwrap_or(0);
    while buf.len() < head_end + length {
        let n = stream.read(&mut chunk).await.expect("read body");
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let (status, body, nonce) = {
        let mut ca = ca.lock().expect("fake CA");
        ca.nonce += 1;
        let (status, body) = ca.respond(&method, &path);
        (status, body, ca.nonce)
    };
    let content_type = if status == 200 {
        "application/json"
    } else {
        "application/problem+json"
    };
    let response = format!(
        "HTTP/1.1 {status} X\r\nContent-Type: {content_type}\r\nReplay-Nonce: nonce-{nonce}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        body.len(),
        if method == "HEAD" { "" } else { body.as_str() },
    );
    stream.write_all(response.as_bytes()).await.expect("write");
}

/// Records every step into the shared log; `fail_present` makes presenting that name fail.
struct RecordingSolver {
    kind: ChallengeKind,
    log: Log,
    answers: Arc<Mutex<Vec<ChallengeAnswer>>>,
    fail_present: Option<&'static str>,
}

impl RecordingSolver {
    fn new(kind: ChallengeKind, log: &Log) -> Self {
        Self {
            kind,
            log: Arc::clone(log),
            answers: Arc::default(),
            fail_present: None,
        }
    }

    fn record(&self, step: &str, answer: &ChallengeAnswer) {
        self.log
            .lock()
            .expect("log")
            .push(format!("{step} {}", answer.domain()));
    }
}

impl ChallengeSolver for RecordingSolver {
    fn kind(&self) -> ChallengeKind {
        self.kind
    }

    fn present<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        Box::pin(async move {
            // Yield once, as a solver doing I/O would.
            tokio::task::yield_now().await;
            self.record("present", answer);
            self.answers.lock().expect("answers").push(answer.clone());
            if self.fail_present == Some(answer.domain()) {
                return Err(SolverError::failed(
                    SolverStep::Present,
                    answer,
                    "the web root is read-only",
                ));
            }
            Ok(())
        })
    }

    fn ready<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        Box::pin(async move {
            tokio::task::yield_now().await;
            self.record("ready", answer);
            Ok(())
        })
    }

    fn cleanup(&self, answer: &ChallengeAnswer) -> SolverFuture<'static> {
        // Within the call, as the trait asks: a dropped attempt only gets this far.
        self.record("cleanup", answer);
        Box::pin(std::future::ready(Ok(())))
    }
}

struct Setup {
    account: AcmeAccount,
    order_url: String,
    directory_url: String,
    log: Log,
}

async fn fake_ca(names: &[&'static str], offered: &[&'static str], outcome: Outcome) -> Setup {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let base = format!("http://{}", listener.local_addr().expect("addr"));
    let log = Log::default();
    let ca = Arc::new(Mutex::new(FakeCa {
        base: base.clone(),
        names: names.to_vec(),
        offered: offered.to_vec(),
        outcome,
        triggered: Vec::new(),
        finalized: false,
        nonce: 0,
        log: Arc::clone(&log),
    }));
    tokio::spawn(serve(listener, ca));

    // The fake is plain HTTP, so this anchor is never used; it only spares the test a host's
    // CA bundle.
    let anchor = generate_key(KeyType::EcdsaP256).expect("key");
    let anchor = rcgen::CertificateParams::new(vec!["fake-ca.test".to_owned()])
        .expect("params")
        .self_signed(&anchor)
        .expect("self-signed");
    let anchor_file = std::env::temp_dir().join(format!(
        "certkeeper-acme-test-{}-{}.pem",
        std::process::id(),
        base.rsplit(':').next().expect("port")
    ));
    std::fs::write(&anchor_file, anchor.pem()).expect("write anchor");
    let transport = Transport::new(&TransportSettings {
        root_ca_file: Some(anchor_file.clone()),
        ..TransportSettings::default()
    })
    .expect("transport");
    std::fs::remove_file(&anchor_file).expect("remove anchor");

    let account_key = generate_key(KeyType::EcdsaP256).expect("account key");
    let directory_url = format!("{base}/dir");
    let account = AcmeAccount::for_test(
        transport,
        format!("{base}/account/1"),
        directory_url.clone(),
        &account_key.serialize_der(),
    );
    Setup {
        account,
        order_url: format!("{base}/order"),
        directory_url,
        log,
    }
}

fn poll() -> PollPolicy {
    PollPolicy {
        initial_delay: Duration::from_millis(10),
        backoff: 1.5,
        timeout: Duration::from_secs(10),
    }
}

fn domains(names: &[&str]) -> Vec<DomainName> {
    names
        .iter()
        .map(|name| DomainName::new(name).expect("domain"))
        .collect()
}

async fn complete(
    setup: &Setup,
    names: &[&str],
    solver: &dyn ChallengeSolver,
) -> Result<String, AcmeError> {
    let mut placed: PlacedOrder<'_> = setup
        .account
        .resume_order(&setup.order_url, &setup.directory_url)
        .await
        .expect("resume the fake order");
    let key = generate_key_pem(KeyType::EcdsaP256).expect("key");
    placed.complete(&key, &domains(names), solver, poll()).await
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

#[tokio::test]
async fn presents_and_readies_everything_before_any_trigger_and_cleans_up_after_success() {
    let names = ["a.example", "b.example"];
    let setup = fake_ca(&names, &["dns-01", "http-01"], Outcome::Valid).await;
    let solver = RecordingSolver::new(ChallengeKind::Http01, &setup.log);

    let chain = complete(&setup, &names, &solver).await.expect("issued");

    assert!(chain.starts_with("-----BEGIN CERTIFICATE-----"), "{chain}");
    assert_eq!(
        events(&setup.log),
        strings(&[
            "present a.example",
            "present b.example",
            "ready a.example",
            "ready b.example",
            "trigger a.example",
            "trigger b.example",
            "cleanup b.example",
            "cleanup a.example",
        ])
    );
    let answers = solver.answers.lock().expect("answers").clone();
    let ChallengeAnswer::Http01 {
        domain,
        token,
        key_authorization,
    } = &answers[0]
    else {
        panic!("an http-01 answer: {answers:?}");
    };
    assert_eq!(domain, "a.example");
    assert_eq!(token, "tok-a.example");
    assert!(
        key_authorization.starts_with("tok-a.example."),
        "token.thumbprint"
    );
}

#[tokio::test]
async fn cleans_up_after_a_failed_validation() {
    let names = ["a.example", "b.example"];
    let setup = fake_ca(&names, &["http-01"], Outcome::Invalid).await;
    let solver = RecordingSolver::new(ChallengeKind::Http01, &setup.log);

    let err = complete(&setup, &names, &solver)
        .await
        .expect_err("invalid order");

    assert!(
        matches!(&err, AcmeError::Validation { detail, .. } if detail.contains("did not match")),
        "{err:?}"
    );
    let log = events(&setup.log);
    assert_eq!(
        log[log.len() - 2..],
        strings(&["cleanup b.example", "cleanup a.example"])
    );
}

#[tokio::test]
async fn a_failed_present_ends_the_attempt_and_is_cleaned_up_too() {
    let names = ["a.example", "b.example"];
    let setup = fake_ca(&names, &["http-01"], Outcome::Valid).await;
    let mut solver = RecordingSolver::new(ChallengeKind::Http01, &setup.log);
    solver.fail_present = Some("b.example");

    let err = complete(&setup, &names, &solver)
        .await
        .expect_err("solver failure");

    assert!(
        matches!(
            &err,
            AcmeError::Solver {
                source: SolverError::Failed {
                    step: SolverStep::Present,
                    ..
                },
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        events(&setup.log),
        strings(&[
            "present a.example",
            "present b.example",
            "cleanup b.example",
            "cleanup a.example",
        ]),
        "nothing triggered, and the half-presented answer is cleaned up"
    );
}

#[tokio::test]
async fn no_challenge_of_the_solvers_type_is_reported_before_anything_is_presented() {
    let names = ["a.example"];
    let setup = fake_ca(&names, &["http-01", "tls-alpn-01"], Outcome::Valid).await;
    let solver = RecordingSolver::new(ChallengeKind::Dns01, &setup.log);

    let err = complete(&setup, &names, &solver)
        .await
        .expect_err("nothing to solve");

    assert!(
        matches!(
            &err,
            AcmeError::NoSolvableChallenge {
                wanted: ChallengeKind::Dns01,
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(
        err.to_string(),
        "CA \"fake\" offers no dns-01 challenge for a.example (offered: http-01, tls-alpn-01); \
         the configured challenge solver answers dns-01 only"
    );
    assert!(events(&setup.log).is_empty());
}

#[tokio::test]
async fn a_dropped_attempt_still_cleans_up() {
    let names = ["*.a.example", "b.example"];
    let setup = fake_ca(&names, &["http-01", "dns-01"], Outcome::NeverReady).await;
    let solver = RecordingSolver::new(ChallengeKind::Dns01, &setup.log);

    // The engine drops the attempt like this on a stop, while it waits on the CA.
    let attempt = complete(&setup, &names, &solver);
    let dropped = tokio::time::timeout(Duration::from_millis(500), attempt).await;

    assert!(dropped.is_err(), "the order never becomes ready");
    let log = events(&setup.log);
    assert_eq!(
        log[log.len() - 2..],
        strings(&["cleanup *.a.example", "cleanup b.example"]),
        "{log:?}"
    );
    let answers = solver.answers.lock().expect("answers").clone();
    let ChallengeAnswer::Dns01 {
        domain,
        record_name,
        value,
    } = &answers[0]
    else {
        panic!("a dns-01 answer: {answers:?}");
    };
    assert_eq!(domain, "*.a.example");
    assert_eq!(record_name, "_acme-challenge.a.example");
    assert_eq!(value.len(), 43, "base64url SHA-256 without padding");
}
