//! The order code's use of the challenge solver, against a real Pebble.
//!
//! Each test starts its own Pebble and pebble-challtestsrv (the workspace's end-to-end harness,
//! `tests/support/pebble.rs`) on free ports, registers an account with EAB and places an order
//! through the crate's public API, as the binary does. The solver is a recording wrapper
//! around the real HTTP-01 responder ([`ChallengeTokens`] served by
//! [`certkeeper_challenge::serve`]) on the port Pebble validates against: an issued
//! certificate proves the token was served before Pebble fetched it, the recorded events show
//! when the order code called the solver, and Pebble itself is asked what became of the
//! authorizations.

#[path = "../../../tests/support/pebble.rs"]
#[allow(dead_code, clippy::unwrap_used, clippy::missing_panics_doc)]
mod pebble;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use base64::Engine as _;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use certkeeper_acme::keys::generate_key_pem;
use certkeeper_acme::{
    AcmeAccount, AcmeError, OrderRequest, PollPolicy, Transport, TransportSettings,
};
use certkeeper_challenge::ChallengeTokens;
use certkeeper_core::{
    CaName, CaSpec, CertName, ChallengeAnswer, ChallengeKind, ChallengeSolver, DomainName, Eab,
    KeyType, Secret, SolverError, SolverFuture, SolverStep,
};
use instant_acme::{Account, AuthorizationStatus, ChallengeStatus, ChallengeType};
use pebble::{Pebble, PebbleOptions};
use rustls_pki_types::PrivatePkcs8KeyDer;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

/// A Pebble that rejects no nonce and reuses no authorization, so what a test reads back
/// from it is about the order under test only.
fn start_pebble() -> Pebble {
    Pebble::start(PebbleOptions::default().env("PEBBLE_WFE_NONCEREJECT", "0"))
}

/// The real responder on a free port; returns its address.
async fn serve_responder(tokens: &ChallengeTokens, listener: TcpListener) -> SocketAddr {
    let addr = listener.local_addr().expect("responder address");
    tokio::spawn(certkeeper_challenge::serve(
        listener,
        tokens.clone(),
        std::future::pending(),
    ));
    addr
}

/// The real responder on the port Pebble validates HTTP-01 against.
async fn responder_on_http01_port(pebble: &Pebble, tokens: &ChallengeTokens) -> SocketAddr {
    let listener = TcpListener::bind(("127.0.0.1", pebble.http01_port))
        .await
        .expect("bind Pebble's HTTP-01 port");
    serve_responder(tokens, listener).await
}

/// How the recording solver presents an answer.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Presenting {
    /// Publish the key authorization on the real responder.
    Correct,
    /// Publish a key authorization Pebble will not accept.
    WrongKeyAuthorization,
    /// Publish the first answer, fail to present the second.
    FailSecond,
}

/// The real responder behind a log of every call the order code makes.
struct RecordingSolver {
    tokens: ChallengeTokens,
    /// Where the real responder listens, for `ready` to fetch what was published.
    responder: SocketAddr,
    presenting: Presenting,
    log: Mutex<Vec<String>>,
}

impl RecordingSolver {
    fn new(tokens: &ChallengeTokens, responder: SocketAddr, presenting: Presenting) -> Self {
        Self {
            tokens: tokens.clone(),
            responder,
            presenting,
            log: Mutex::default(),
        }
    }

    fn record(&self, event: String) {
        self.log.lock().expect("log").push(event);
    }

    fn events(&self) -> Vec<String> {
        self.log.lock().expect("log").clone()
    }
}

impl ChallengeSolver for RecordingSolver {
    fn kind(&self) -> ChallengeKind {
        ChallengeKind::Http01
    }

    fn present<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        Box::pin(async move {
            self.record(format!("present {}", answer.domain()));
            match self.presenting {
                Presenting::Correct => self.tokens.present(answer).await,
                Presenting::WrongKeyAuthorization => {
                    let ChallengeAnswer::Http01 { token, .. } = answer else {
                        panic!("an http-01 answer: {answer:?}");
                    };
                    self.tokens.publish(token, "not-the-key-authorization");
                    Ok(())
                }
                Presenting::FailSecond if self.events().len() > 1 => Err(SolverError::failed(
                    SolverStep::Present,
                    answer,
                    "the web root is read-only",
                )),
                Presenting::FailSecond => self.tokens.present(answer).await,
            }
        })
    }

    /// Ready once the real responder serves what was published, as a solver that checks
    /// before the CA looks would be.
    fn ready<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        Box::pin(async move {
            self.tokens.ready(answer).await?;
            let ChallengeAnswer::Http01 { token, .. } = answer else {
                panic!("an http-01 answer: {answer:?}");
            };
            let served = fetch(self.responder, token).await;
            let published = self.tokens.lookup(token);
            if served.as_ref() == published.as_ref() && served.is_some() {
                self.record(format!("ready {}", answer.domain()));
            } else {
                self.record(format!("ready {} but served {served:?}", answer.domain()));
            }
            Ok(())
        })
    }

    fn cleanup(&self, answer: &ChallengeAnswer) -> SolverFuture<'static> {
        // Within the call, as the trait asks: a dropped attempt only gets this far.
        self.record(format!("cleanup {}", answer.domain()));
        self.tokens.cleanup(answer)
    }
}

/// GET the challenge path for `token` from the responder: the body of a 200, else `None`.
async fn fetch(responder: SocketAddr, token: &str) -> Option<String> {
    let mut stream = TcpStream::connect(responder)
        .await
        .expect("reach the responder");
    let request = format!(
        "GET /.well-known/acme-challenge/{token} HTTP/1.1\r\nHost: check\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send request");
    let mut response = String::new();
    stream
        .read_to_string(&mut response)
        .await
        .expect("read response");
    let (head, body) = response.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then(|| body.to_owned())
}

/// An account registered at `pebble` with its EAB credentials, and Pebble's view of orders
/// through the same account.
struct Client {
    account: AcmeAccount,
    inspector: Account,
    directory_url: String,
}

async fn register(pebble: &Pebble) -> Client {
    let transport = Transport::new(&TransportSettings {
        root_ca_file: Some(pebble.tls_ca_file.clone()),
        ..TransportSettings::default()
    })
    .expect("transport");
    let (kid, hmac) = pebble.eab.clone().expect("Pebble requires EAB");
    let ca = CaSpec {
        name: CaName::new("pebble").expect("CA name"),
        directory: pebble.directory_url.clone(),
        eab: Some(Eab {
            kid,
            hmac_key: Secret::new(BASE64_URL_SAFE_NO_PAD.decode(hmac).expect("EAB key")),
        }),
        terms_of_service_agreed: true,
        contact: Vec::new(),
        root_ca_file: Some(pebble.tls_ca_file.clone()),
        max_concurrent: None,
        request_timeout: None,
    };
    let (account, stored) = AcmeAccount::load_or_register(&ca, transport.clone(), None)
        .await
        .expect("register at Pebble");
    let stored: serde_json::Value =
        serde_json::from_slice(&stored.expect("a new registration")).expect("stored account");
    let key = BASE64_URL_SAFE_NO_PAD
        .decode(stored["key_pkcs8"].as_str().expect("account key"))
        .expect("account key");
    let inspector = Account::builder_with_http(transport.boxed())
        .from_parts(
            account.account_url().to_owned(),
            PrivatePkcs8KeyDer::from(key),
            pebble.directory_url.clone(),
        )
        .await
        .expect("the same account, through instant-acme");
    Client {
        account,
        inspector,
        directory_url: pebble.directory_url.clone(),
    }
}

/// One authorization as Pebble reports it now.
#[derive(Debug)]
struct SeenAuthorization {
    domain: String,
    status: AuthorizationStatus,
    /// The http-01 challenge's status and error, when one is offered.
    http01: Option<(ChallengeStatus, Option<String>)>,
}

impl Client {
    /// The order's authorizations, fetched from Pebble.
    async fn authorizations(&self, order_url: &str) -> Vec<SeenAuthorization> {
        let mut order = self
            .inspector
            .order(order_url.to_owned())
            .await
            .expect("fetch the order");
        let mut seen = Vec::new();
        let mut authorizations = order.authorizations();
        while let Some(authz) = authorizations.next().await {
            let authz = authz.expect("fetch an authorization");
            let http01 = authz
                .challenges
                .iter()
                .find(|c| c.r#type == ChallengeType::Http01)
                .map(|c| (c.status, c.error.as_ref().map(ToString::to_string)));
            seen.push(SeenAuthorization {
                domain: authz.identifier().to_string(),
                status: authz.status,
                http01,
            });
        }
        seen
    }
}

fn poll() -> PollPolicy {
    PollPolicy {
        initial_delay: Duration::from_millis(50),
        backoff: 1.5,
        timeout: Duration::from_secs(30),
    }
}

fn domains(names: &[&str]) -> Vec<DomainName> {
    names
        .iter()
        .map(|name| DomainName::new(name).expect("domain"))
        .collect()
}

/// The events grouped into runs of one step, each with the names it was taken for: Pebble
/// lists an order's authorizations in no fixed order, so only the order of the steps is fixed.
fn phases(events: &[String]) -> Vec<(String, BTreeSet<String>)> {
    let mut phases: Vec<(String, BTreeSet<String>)> = Vec::new();
    for event in events {
        let (step, name) = event.split_once(' ').expect("step and name");
        match phases.last_mut() {
            Some((last, names)) if last == step => {
                names.insert(name.to_owned());
            }
            _ => phases.push((step.to_owned(), BTreeSet::from([name.to_owned()]))),
        }
    }
    phases
}

/// Every step in turn for all of `names`.
fn expected(steps: &[&str], names: &[&str]) -> Vec<(String, BTreeSet<String>)> {
    steps
        .iter()
        .map(|step| {
            (
                (*step).to_owned(),
                names.iter().map(|name| (*name).to_owned()).collect(),
            )
        })
        .collect()
}

fn request<'a>(
    cert: &'a CertName,
    domains: &'a [DomainName],
    client: &'a Client,
) -> OrderRequest<'a> {
    OrderRequest {
        cert,
        domains,
        key_type: KeyType::EcdsaP256,
        directory_url: &client.directory_url,
        replaces: None,
        profile: None,
    }
}

#[tokio::test]
async fn presents_and_readies_every_name_before_validation_and_cleans_up_after_success() {
    let pebble = start_pebble();
    let tokens = ChallengeTokens::new();
    let responder = responder_on_http01_port(&pebble, &tokens).await;
    let client = register(&pebble).await;
    let solver = RecordingSolver::new(&tokens, responder, Presenting::Correct);
    let names = ["a.example.com", "b.example.com"];
    let domains = domains(&names);
    let cert = CertName::new("solver").expect("cert name");

    let issued = client
        .account
        .issue(&request(&cert, &domains, &client), &solver, poll())
        .await
        .unwrap_or_else(|err| panic!("issued: {err:#?}\n{}", pebble.logs()));

    assert!(
        issued.chain_pem.starts_with("-----BEGIN CERTIFICATE-----"),
        "{}",
        issued.chain_pem
    );
    assert_eq!(
        phases(&solver.events()),
        expected(&["present", "ready", "cleanup"], &names),
        "Pebble validated both names from the responder, so both were served before it fetched them"
    );
    assert!(
        tokens.is_empty(),
        "the responder serves nothing after the order"
    );
    let seen = client.authorizations(&issued.order_url).await;
    assert_eq!(
        seen.iter()
            .map(|a| a.domain.as_str())
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(names),
    );
    assert!(
        seen.iter().all(|a| a.status == AuthorizationStatus::Valid),
        "{seen:?}"
    );
}

#[tokio::test]
async fn cleans_up_after_a_failed_validation() {
    let pebble = start_pebble();
    let tokens = ChallengeTokens::new();
    let responder = responder_on_http01_port(&pebble, &tokens).await;
    let client = register(&pebble).await;
    let solver = RecordingSolver::new(&tokens, responder, Presenting::WrongKeyAuthorization);
    let names = ["a.example.com", "b.example.com"];
    let domains = domains(&names);
    let cert = CertName::new("solver").expect("cert name");

    let mut placed = client
        .account
        .place_order(&request(&cert, &domains, &client))
        .await
        .expect("order placed");
    let key = generate_key_pem(KeyType::EcdsaP256).expect("key");
    let err = placed
        .complete(&key, &domains, &solver, poll(), None)
        .await
        .expect_err("Pebble refuses the wrong key authorization");

    let AcmeError::Validation { detail, .. } = &err else {
        panic!("a validation failure: {err:#?}");
    };
    assert!(detail.contains("key authorization"), "{detail}");
    assert_eq!(
        phases(&solver.events()),
        expected(&["present", "ready", "cleanup"], &names)
    );
    assert!(
        tokens.is_empty(),
        "the responder serves nothing after the order"
    );
    let seen = client.authorizations(placed.url()).await;
    assert!(
        seen.iter()
            .any(|a| a.status == AuthorizationStatus::Invalid),
        "{seen:?}"
    );
}

#[tokio::test]
async fn a_failed_present_triggers_nothing_and_is_cleaned_up_too() {
    let pebble = start_pebble();
    let tokens = ChallengeTokens::new();
    let responder = responder_on_http01_port(&pebble, &tokens).await;
    let client = register(&pebble).await;
    let solver = RecordingSolver::new(&tokens, responder, Presenting::FailSecond);
    let names = ["a.example.com", "b.example.com"];
    let domains = domains(&names);
    let cert = CertName::new("solver").expect("cert name");

    let mut placed = client
        .account
        .place_order(&request(&cert, &domains, &client))
        .await
        .expect("order placed");
    let key = generate_key_pem(KeyType::EcdsaP256).expect("key");
    let err = placed
        .complete(&key, &domains, &solver, poll(), None)
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
        "{err:#?}"
    );
    assert_eq!(
        phases(&solver.events()),
        expected(&["present", "cleanup"], &names),
        "nothing readied, and the half-presented answer is cleaned up"
    );
    assert!(
        tokens.is_empty(),
        "the responder serves nothing after the order"
    );
    let seen = client.authorizations(placed.url()).await;
    assert_eq!(seen.len(), 2, "{seen:?}");
    for authz in &seen {
        assert_eq!(authz.status, AuthorizationStatus::Pending, "{seen:?}");
        assert!(
            matches!(authz.http01, Some((ChallengeStatus::Pending, None))),
            "Pebble was never told to validate: {seen:?}"
        );
    }
}

/// Accepts Pebble's validation fetches on its HTTP-01 port, says so on `fetched`, and holds
/// each until `release` turns true, then forwards it to the real responder.
async fn stalling_proxy(
    listener: TcpListener,
    responder: SocketAddr,
    fetched: mpsc::UnboundedSender<()>,
    release: watch::Receiver<bool>,
) {
    while let Ok((mut inbound, _)) = listener.accept().await {
        let _ = fetched.send(());
        let mut release = release.clone();
        tokio::spawn(async move {
            if release.wait_for(|released| *released).await.is_err() {
                return;
            }
            let mut outbound = TcpStream::connect(responder)
                .await
                .expect("reach the responder");
            let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
        });
    }
}

#[tokio::test]
async fn a_dropped_attempt_still_cleans_up() {
    let pebble = start_pebble();
    let tokens = ChallengeTokens::new();
    let responder = serve_responder(
        &tokens,
        TcpListener::bind("127.0.0.1:0").await.expect("bind"),
    )
    .await;
    let proxy = TcpListener::bind(("127.0.0.1", pebble.http01_port))
        .await
        .expect("bind Pebble's HTTP-01 port");
    let (fetched_tx, mut fetched) = mpsc::unbounded_channel();
    let (release, released) = watch::channel(false);
    tokio::spawn(stalling_proxy(proxy, responder, fetched_tx, released));
    let client = register(&pebble).await;
    let solver = RecordingSolver::new(&tokens, responder, Presenting::Correct);
    let names = ["a.example.com", "b.example.com"];
    let domains = domains(&names);
    let cert = CertName::new("solver").expect("cert name");

    let mut placed = client
        .account
        .place_order(&request(&cert, &domains, &client))
        .await
        .expect("order placed");
    let key = generate_key_pem(KeyType::EcdsaP256).expect("key");
    // The engine drops the attempt like this on a stop, while it waits on the CA: here once
    // Pebble is fetching a token (so the challenges were triggered) and before it has an answer.
    tokio::select! {
        result = placed.complete(&key, &domains, &solver, poll(), None) => {
            panic!("the attempt ended while Pebble's fetch was held: {result:#?}");
        }
        _ = fetched.recv() => {}
    }

    assert_eq!(
        phases(&solver.events()),
        expected(&["present", "ready", "cleanup"], &names)
    );
    assert!(
        tokens.is_empty(),
        "the dropped attempt retracted its tokens"
    );
    drop(release);
}

#[tokio::test]
async fn no_http01_challenge_for_a_wildcard_is_reported_before_anything_is_presented() {
    let pebble = start_pebble();
    let tokens = ChallengeTokens::new();
    let responder = responder_on_http01_port(&pebble, &tokens).await;
    let client = register(&pebble).await;
    let solver = RecordingSolver::new(&tokens, responder, Presenting::Correct);
    let names = ["*.example.com"];
    let domains = domains(&names);
    let cert = CertName::new("solver").expect("cert name");

    let err = client
        .account
        .issue(&request(&cert, &domains, &client), &solver, poll())
        .await
        .expect_err("nothing to solve");

    assert!(
        matches!(
            &err,
            AcmeError::NoSolvableChallenge {
                wanted: ChallengeKind::Http01,
                ..
            }
        ),
        "{err:#?}"
    );
    assert_eq!(
        err.to_string(),
        "CA \"pebble\" offers no http-01 challenge for *.example.com (offered: dns-01); \
         the configured challenge solver answers http-01 only"
    );
    assert!(solver.events().is_empty(), "{:?}", solver.events());
    assert!(tokens.is_empty());
}
