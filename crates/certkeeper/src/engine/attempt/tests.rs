//! The attempt's own logic in-process, on scripted ports: a CA that answers call by call from
//! a script (and looks at the store when it is asked to complete an order), hooks that record
//! their calls, and the real store in a temporary directory, so what each test reads back is
//! what the planner would read after the attempt.
//!
//! These test the engine's decisions, not the CA: the ACME adapter is tested against a real
//! Pebble (`crates/acme/tests`), and the binary end to end (`tests/`).

#![expect(
    clippy::unwrap_used,
    reason = "a test fails loudly on any unexpected error"
)]

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use certkeeper_acme::{AcmeError, CaFailure};
use certkeeper_challenge::ChallengeTokens;
use certkeeper_config::Environment;
use certkeeper_core::hooks::DeployAction;
use certkeeper_core::{
    CaSpec, CertName, CertificateSpec, ChallengeSolver, DomainName, Inventory, RevocationReason,
    Secret,
};
use certkeeper_fleet::FleetError;
use certkeeper_hooks::HookError;
use certkeeper_store::{AttemptRecord, CheckedIssue};
use certkeeper_store::{FailureClass, LineageState, LiveCert, Store, unix_seconds};
use instant_acme::Problem;
use rcgen::{CertificateParams, KeyPair};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::{Attempt, purpose};
use crate::accounts::AccountError;
use crate::engine::error::{AttemptError, HookFailure};
use crate::engine::job::JobContext;
use crate::engine::ports::{
    CaAccount, CaOrder, CertificateAuthority, Claim, Claimed, Coordination, Hooks, LeftOrder,
    NewOrder, OrderLocation, Outcome, PortFuture, PublishedVersion, RenewalInfo,
};
use crate::engine::solvers::ConfiguredSolvers;

/// How the scripted CA answers one `place_order` or `complete`.
#[derive(Debug, Clone, Copy)]
enum Answer {
    /// Place the order; complete it with a certificate for the order's key.
    Accept,
    /// An ACME problem of this type (`rateLimited`, ...) and status, with a Retry-After.
    Refuse(&'static str, u16, Option<SystemTime>),
    /// The CA could not validate a name: the order is dead.
    Invalid,
    /// The CA has not finished within the wait.
    StillWorking,
    /// Never answer; `Script::waiting` is notified once the attempt waits.
    Hang,
}

/// The scripted CA's state: its answers, in order, and what it saw.
#[derive(Debug)]
struct Script {
    store: Store,
    place: Mutex<VecDeque<Answer>>,
    complete: Mutex<VecDeque<Answer>>,
    /// Every call, in order: `account`, `place <account>`, `complete <order> <solver kind>`...
    calls: Mutex<Vec<String>>,
    /// Accounts registered so far (`account-1` is the first).
    registered: Mutex<usize>,
    orders_placed: Mutex<usize>,
    at_completion: Mutex<Vec<AtCompletion>>,
    waiting: Notify,
}

impl Script {
    fn new(store: &Store, place: &[Answer], complete: &[Answer]) -> Arc<Self> {
        Arc::new(Self {
            store: store.clone(),
            place: Mutex::new(place.iter().copied().collect()),
            complete: Mutex::new(complete.iter().copied().collect()),
            calls: Mutex::new(Vec::new()),
            registered: Mutex::new(1),
            orders_placed: Mutex::new(0),
            at_completion: Mutex::new(Vec::new()),
            waiting: Notify::new(),
        })
    }

    fn call(&self, call: String) {
        self.calls.lock().unwrap().push(call);
    }

    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }

    fn account(self: &Arc<Self>) -> Box<dyn CaAccount> {
        Box::new(ScriptedAccount {
            url: format!("account-{}", self.registered.lock().unwrap()),
            script: Arc::clone(self),
        })
    }
}

/// What the scripted CA saw when it was asked to complete an order.
#[derive(Debug)]
struct AtCompletion {
    /// The lineage's state on disk.
    state: LineageState,
    /// The order key on disk.
    stored_key: Option<Vec<u8>>,
    /// The order key handed to `complete`.
    key: Vec<u8>,
}

fn refused(kind: &str, status: u16) -> AcmeError {
    AcmeError::Protocol {
        ca: "scripted".to_owned(),
        step: "new order",
        source: Box::new(instant_acme::Error::Api(Problem {
            r#type: Some(format!("urn:ietf:params:acme:error:{kind}")),
            detail: Some(format!("{kind} detail")),
            status: Some(status),
            subproblems: Vec::new(),
        })),
    }
}

/// The failure the CA answers with, for an answer that is one.
fn failure(answer: Answer, order_url: &str) -> CaFailure {
    match answer {
        Answer::Refuse(kind, status, retry_after) => CaFailure {
            error: refused(kind, status),
            retry_after,
        },
        Answer::Invalid => AcmeError::Validation {
            ca: "scripted".to_owned(),
            domain: "www.example.com".to_owned(),
            detail: "connection refused".to_owned(),
        }
        .into(),
        Answer::StillWorking => AcmeError::Timeout {
            ca: "scripted".to_owned(),
            order_url: order_url.to_owned(),
            waiting_for: "valid",
            waited: Duration::from_secs(300),
        }
        .into(),
        Answer::Accept | Answer::Hang => unreachable!("{answer:?} is no failure"),
    }
}

#[derive(Debug)]
struct ScriptedCa(Arc<Script>);

impl CertificateAuthority for ScriptedCa {
    fn renewal_info<'a>(
        &'a self,
        _ca: &'a CaSpec,
        _leaf_der: &'a [u8],
    ) -> PortFuture<'a, Result<RenewalInfo, AcmeError>> {
        self.0.call("renewal info".to_owned());
        Box::pin(async { Ok(RenewalInfo::Unsupported) })
    }

    fn account<'a>(
        &'a self,
        _ca: &'a CaSpec,
    ) -> PortFuture<'a, Result<Box<dyn CaAccount>, AccountError>> {
        self.0.call("account".to_owned());
        Box::pin(async move { Ok(self.0.account()) })
    }

    fn register_again<'a>(
        &'a self,
        _ca: &'a CaSpec,
        gone: &'a dyn CaAccount,
    ) -> PortFuture<'a, Result<Box<dyn CaAccount>, AccountError>> {
        self.0.call(format!("register again {}", gone.url()));
        *self.0.registered.lock().unwrap() += 1;
        Box::pin(async move { Ok(self.0.account()) })
    }

    fn forget_accounts(&self) {}
}

#[derive(Debug)]
struct ScriptedAccount {
    url: String,
    script: Arc<Script>,
}

impl CaAccount for ScriptedAccount {
    fn url(&self) -> &str {
        &self.url
    }

    fn place_order(
        &self,
        order: NewOrder,
    ) -> PortFuture<'_, Result<Box<dyn CaOrder + '_>, CaFailure>> {
        self.script.call(format!("place {}", self.url));
        let answer = self
            .script
            .place
            .lock()
            .unwrap()
            .pop_front()
            .expect("the script answers every order");
        Box::pin(async move {
            if !matches!(answer, Answer::Accept) {
                return Err(failure(answer, "none"));
            }
            let mut placed = self.script.orders_placed.lock().unwrap();
            *placed += 1;
            let order: Box<dyn CaOrder> = Box::new(ScriptedOrder {
                location: OrderLocation {
                    order_url: format!("https://ca.test/order/{placed}"),
                    directory_url: order.directory_url,
                },
                script: Arc::clone(&self.script),
            });
            Ok(order)
        })
    }

    fn resume_order(
        &self,
        location: OrderLocation,
    ) -> PortFuture<'_, Result<Box<dyn CaOrder + '_>, CaFailure>> {
        self.script.call(format!("resume {}", location.order_url));
        let order: Box<dyn CaOrder> = Box::new(ScriptedOrder {
            location,
            script: Arc::clone(&self.script),
        });
        Box::pin(async move { Ok(order) })
    }

    fn revoke<'a>(
        &'a self,
        _leaf_der: &'a [u8],
        _reason: RevocationReason,
    ) -> PortFuture<'a, Result<(), CaFailure>> {
        unreachable!("an attempt revokes nothing")
    }
}

#[derive(Debug)]
struct ScriptedOrder {
    location: OrderLocation,
    script: Arc<Script>,
}

impl CaOrder for ScriptedOrder {
    fn location(&self) -> &OrderLocation {
        &self.location
    }

    fn complete<'a>(
        &'a mut self,
        key_pem: &'a Secret,
        domains: &'a [DomainName],
        solver: &'a dyn ChallengeSolver,
        _preferred_chain: Option<&'a str>,
    ) -> PortFuture<'a, Result<String, CaFailure>> {
        let script = Arc::clone(&self.script);
        script.call(format!(
            "complete {} {}",
            self.location.order_url,
            solver.kind()
        ));
        // What a restart would find if the process died now.
        let name = certkeeper_core::CertName::new("www").unwrap();
        let lineage = script.store.lineage(&name).unwrap();
        script.at_completion.lock().unwrap().push(AtCompletion {
            state: lineage.state().clone(),
            stored_key: lineage.pending_key().unwrap(),
            key: key_pem.expose().to_vec(),
        });
        let answer = script
            .complete
            .lock()
            .unwrap()
            .pop_front()
            .expect("the script answers every completion");
        let order_url = self.location.order_url.clone();
        Box::pin(async move {
            match answer {
                Answer::Accept => Ok(self_signed(key_pem, domains)),
                Answer::Hang => {
                    script.waiting.notify_one();
                    std::future::pending().await
                }
                answer => Err(failure(answer, &order_url)),
            }
        })
    }
}

/// A certificate for `domains` with the order's key, valid for 90 days from now.
fn self_signed(key_pem: &Secret, domains: &[DomainName]) -> String {
    let key = KeyPair::from_pem(std::str::from_utf8(key_pem.expose()).unwrap()).unwrap();
    let mut params =
        CertificateParams::new(domains.iter().map(ToString::to_string).collect::<Vec<_>>())
            .unwrap();
    let now = SystemTime::now();
    params.not_before = (now - Duration::from_secs(60)).into();
    params.not_after = (now + Duration::from_secs(90 * 86_400)).into();
    params.self_signed(&key).unwrap().pem()
}

/// Hooks that record their calls; `pre` fails when told to.
#[derive(Debug, Default)]
struct ScriptedHooks {
    fail_pre: bool,
    calls: Mutex<Vec<String>>,
}

impl ScriptedHooks {
    fn calls(&self) -> Vec<String> {
        self.calls.lock().unwrap().clone()
    }
}

impl Hooks for ScriptedHooks {
    fn pre<'a>(
        &'a self,
        _inventory: &'a Inventory,
        spec: &'a CertificateSpec,
    ) -> PortFuture<'a, Result<(), HookFailure>> {
        self.calls
            .lock()
            .unwrap()
            .push(format!("pre {}", spec.name));
        let fail = self.fail_pre;
        Box::pin(async move {
            if fail {
                return Err(HookFailure::from(HookError::ReadDir {
                    path: "/etc/certkeeper/hooks/pre".into(),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                }));
            }
            Ok(())
        })
    }

    fn deploy<'a>(
        &'a self,
        _inventory: &'a Inventory,
        spec: &'a CertificateSpec,
        live: &'a LiveCert,
        action: DeployAction,
    ) -> PortFuture<'a, Result<(), HookFailure>> {
        self.calls.lock().unwrap().push(format!(
            "deploy {} {} {}",
            spec.name,
            live.serial_hex,
            action.as_str()
        ));
        Box::pin(async { Ok(()) })
    }

    fn request_reload(&self, spec: &CertificateSpec) {
        self.calls
            .lock()
            .unwrap()
            .push(format!("reload {}", spec.name));
    }

    fn post<'a>(
        &'a self,
        _inventory: &'a Inventory,
        _renewed: &'a [&'a CertificateSpec],
    ) -> PortFuture<'a, ()> {
        unreachable!("an attempt runs no post hooks")
    }
}

/// A state directory with one certificate, `www`, at CA `scripted`, and the attempt's ports:
/// the scripted CA and hooks, the real solver selection.
struct Setup {
    inventory: Inventory,
    store: Store,
    script: Arc<Script>,
    hooks: Arc<ScriptedHooks>,
    ctx: JobContext,
    _dir: tempfile::TempDir,
}

impl Setup {
    fn new(place: &[Answer], complete: &[Answer], hooks: ScriptedHooks) -> Self {
        Self::with_certificate(place, complete, hooks, "")
    }

    /// [`Setup::new`] with `extra` lines in the certificate's table.
    fn with_certificate(
        place: &[Answer],
        complete: &[Answer],
        hooks: ScriptedHooks,
        extra: &str,
    ) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("certkeeper.toml");
        std::fs::write(
            &config,
            format!(
                r#"state_dir = "{}"

[[ca]]
name = "scripted"
directory = "https://ca.invalid/directory"

[[certificate]]
name = "www"
ca = "scripted"
domains = ["www.example.com"]
{extra}
"#,
                dir.path().join("state").display()
            ),
        )
        .unwrap();
        let inventory = certkeeper_config::load(&config, &Environment::from_process())
            .unwrap()
            .inventory;
        let store = Store::open(&inventory.state_dir).unwrap();
        let script = Script::new(&store, place, complete);
        let hooks = Arc::new(hooks);
        let ctx = JobContext {
            store: store.clone(),
            ca: Arc::new(ScriptedCa(Arc::clone(&script))),
            solvers: Arc::new(ConfiguredSolvers::new(
                ChallengeTokens::new(),
                Arc::new(store.presented_journal()),
            )),
            hooks: Arc::clone(&hooks) as Arc<dyn Hooks>,
            coordination: Arc::new(crate::engine::ports::Solo),
            stop: CancellationToken::new(),
        };
        Self {
            inventory,
            store,
            script,
            hooks,
            ctx,
            _dir: dir,
        }
    }

    /// A first issuance of `www`, with hooks, on the lineage as it is on disk.
    async fn attempt(&self) -> Outcome {
        self.attempt_with(false).await
    }

    /// [`Setup::attempt`], with `renew --new-key` when `new_key`.
    async fn attempt_with(&self, new_key: bool) -> Outcome {
        let spec = &self.inventory.certificates[0];
        Attempt {
            inventory: &self.inventory,
            ctx: &self.ctx,
            spec,
            purpose: purpose(spec, false, None),
            run_hooks: true,
            new_key,
            planned_live: None,
        }
        .run()
        .await
    }

    /// The key of each completion the CA was asked for, in order.
    fn completion_keys(&self) -> Vec<Vec<u8>> {
        self.script
            .at_completion
            .lock()
            .unwrap()
            .iter()
            .map(|at| at.key.clone())
            .collect()
    }

    fn state(&self) -> LineageState {
        let name = &self.inventory.certificates[0].name;
        self.store.lineage(name).unwrap().state().clone()
    }
}

#[tokio::test]
async fn a_failing_pre_hook_places_no_order() {
    let setup = Setup::new(
        &[],
        &[],
        ScriptedHooks {
            fail_pre: true,
            ..ScriptedHooks::default()
        },
    );
    let outcome = setup.attempt().await;
    let Err(error) = &outcome.result else {
        panic!("{outcome:?}")
    };
    assert!(matches!(error, AttemptError::PreHook(_)), "{error:?}");
    assert_eq!(
        setup.script.calls(),
        Vec::<String>::new(),
        "the CA is not asked"
    );
    assert_eq!(setup.hooks.calls(), ["pre www"]);
    let state = setup.state();
    assert_eq!(state.pending_order, None);
    assert_eq!(state.attempts.consecutive_failures, 1);
    assert!(
        state
            .attempts
            .last_error
            .as_deref()
            .unwrap()
            .starts_with("pre hook failed, so no order was placed: "),
        "{state:?}"
    );
}

#[tokio::test]
async fn a_ca_refusal_is_recorded_as_a_failure_of_its_class() {
    let later = SystemTime::UNIX_EPOCH + Duration::from_secs(1_900_000_000);
    for (answer, class, retry_not_before) in [
        (
            Answer::Refuse("rateLimited", 429, Some(later)),
            FailureClass::RateLimited {
                retry_after: Some(later),
            },
            Some(unix_seconds(later)),
        ),
        (
            Answer::Refuse("unauthorized", 403, None),
            FailureClass::NeedsHuman,
            None,
        ),
    ] {
        let setup = Setup::new(&[answer], &[], ScriptedHooks::default());
        let outcome = setup.attempt().await;
        let Err(error) = &outcome.result else {
            panic!("{outcome:?}")
        };
        assert!(matches!(error, AttemptError::Acme(_)), "{error:?}");
        assert_eq!(error.class(), class);
        assert_eq!(setup.script.calls(), ["account", "place account-1"]);
        assert_eq!(setup.hooks.calls(), ["pre www"], "nothing to deploy");
        let state = setup.state();
        assert_eq!(state.pending_order, None, "nothing to resume");
        assert_eq!(state.attempts.consecutive_failures, 1);
        assert_eq!(state.attempts.retry_not_before_unix, retry_not_before);
        assert!(
            state
                .attempts
                .last_error
                .as_deref()
                .unwrap()
                .contains(" detail"),
            "the CA's problem is kept: {state:?}"
        );
    }
}

#[tokio::test]
async fn an_order_is_persisted_before_its_completion_is_awaited() {
    let setup = Setup::new(
        &[Answer::Accept],
        &[Answer::Accept],
        ScriptedHooks::default(),
    );
    let outcome = setup.attempt().await;
    let installed = outcome.result.unwrap();
    assert!(outcome.deploy.is_ok());
    assert_eq!(
        setup.script.calls(),
        [
            "account",
            "place account-1",
            "complete https://ca.test/order/1 http-01"
        ]
    );
    // When the CA was asked to complete, the order and its key were on disk already.
    let seen = setup.script.at_completion.lock().unwrap();
    let AtCompletion {
        state,
        stored_key,
        key,
    } = &seen[0];
    let pending = state
        .pending_order
        .as_ref()
        .expect("the order is persisted");
    assert_eq!(pending.order_url, "https://ca.test/order/1");
    assert_eq!(pending.directory_url, "https://ca.invalid/directory");
    assert_eq!(pending.domains, ["www.example.com"]);
    assert_eq!(stored_key.as_deref(), Some(key.as_slice()));
    // Installed: the order is done, and the deploy hooks and the reload follow.
    let state = setup.state();
    assert_eq!(state.pending_order, None);
    assert_eq!(state.attempts.successes_total, 1);
    assert_eq!(
        setup.hooks.calls(),
        [
            "pre www".to_owned(),
            format!("deploy www {} issue", installed.serial_hex),
            "reload www".to_owned()
        ]
    );
}

#[tokio::test]
async fn a_stop_while_waiting_on_the_ca_leaves_the_order_persisted_and_the_next_attempt_resumes_it()
{
    let mut setup = Setup::new(
        &[Answer::Accept],
        &[Answer::Hang, Answer::Accept],
        ScriptedHooks::default(),
    );
    let stopped = async {
        tokio::join!(setup.attempt(), async {
            setup.script.waiting.notified().await;
            setup.ctx.stop.cancel();
        })
    };
    // An attempt deaf to the stop would wait on the CA forever.
    let (outcome, ()) = tokio::time::timeout(Duration::from_secs(60), stopped)
        .await
        .expect("the attempt stops while the CA keeps it waiting");
    assert!(
        matches!(outcome.result, Err(AttemptError::Stopping)),
        "{outcome:?}"
    );
    let state = setup.state();
    assert_eq!(
        state.pending_order.map(|order| order.order_url).as_deref(),
        Some("https://ca.test/order/1"),
        "the order is kept"
    );
    let name = &setup.inventory.certificates[0].name;
    assert!(
        setup
            .store
            .lineage(name)
            .unwrap()
            .pending_key()
            .unwrap()
            .is_some(),
        "its key is kept"
    );
    assert_eq!(
        (
            state.attempts.consecutive_failures,
            state.attempts.failures_total
        ),
        (0, 0),
        "a stop is no failure"
    );

    // The next start resumes the same order rather than placing another.
    setup.ctx.stop = CancellationToken::new();
    setup.attempt().await.result.unwrap();
    assert_eq!(
        setup.script.calls(),
        [
            "account",
            "place account-1",
            "complete https://ca.test/order/1 http-01",
            "account",
            "resume https://ca.test/order/1",
            "complete https://ca.test/order/1 http-01"
        ]
    );
}

#[tokio::test]
async fn reuse_key_orders_with_the_live_key_and_a_resumed_order_keeps_its_own() {
    let mut setup = Setup::with_certificate(
        &[Answer::Accept, Answer::Accept, Answer::Accept],
        &[Answer::Accept, Answer::Accept, Answer::Hang, Answer::Accept],
        ScriptedHooks::default(),
        "reuse_key = true",
    );
    // First issuance: nothing live to reuse, a new key.
    setup.attempt().await.result.unwrap();
    // A renewal reuses it.
    setup.attempt().await.result.unwrap();
    let keys = setup.completion_keys();
    assert_eq!(keys[1], keys[0], "the renewal ordered with the live key");

    // --new-key: a new key, persisted with its order; a stop while the CA keeps it waiting.
    let stopped = async {
        tokio::join!(setup.attempt_with(true), async {
            setup.script.waiting.notified().await;
            setup.ctx.stop.cancel();
        })
    };
    let (outcome, ()) = tokio::time::timeout(Duration::from_secs(60), stopped)
        .await
        .expect("the attempt stops");
    assert!(matches!(outcome.result, Err(AttemptError::Stopping)));
    let keys = setup.completion_keys();
    assert_ne!(keys[2], keys[0], "--new-key ordered with a new key");

    // The next start resumes that order with the key kept with it, not the live key that
    // reuse_key would pick for a new order.
    setup.ctx.stop = CancellationToken::new();
    setup.attempt().await.result.unwrap();
    let keys = setup.completion_keys();
    assert_eq!(
        keys[3], keys[2],
        "the resumed order finalized with its own key"
    );
    assert!(
        setup
            .script
            .calls()
            .contains(&"resume https://ca.test/order/3".to_owned())
    );
}

#[tokio::test]
async fn an_account_the_ca_forgot_is_registered_again_once_per_attempt() {
    let gone = Answer::Refuse("accountDoesNotExist", 400, None);
    let setup = Setup::new(
        &[gone, Answer::Accept],
        &[Answer::Accept],
        ScriptedHooks::default(),
    );
    setup.attempt().await.result.unwrap();
    assert_eq!(
        setup.script.calls(),
        [
            "account",
            "place account-1",
            "register again account-1",
            "place account-2",
            "complete https://ca.test/order/1 http-01"
        ]
    );

    // Refused again with the new account: the attempt ends there.
    let setup = Setup::new(&[gone, gone], &[], ScriptedHooks::default());
    let outcome = setup.attempt().await;
    assert!(
        matches!(&outcome.result, Err(error) if error.is_account_gone()),
        "{outcome:?}"
    );
    assert_eq!(
        setup.script.calls(),
        [
            "account",
            "place account-1",
            "register again account-1",
            "place account-2"
        ]
    );
}

#[tokio::test]
async fn a_dead_order_is_forgotten_and_one_the_ca_is_still_working_on_is_kept() {
    let setup = Setup::new(
        &[Answer::Accept],
        &[Answer::Invalid],
        ScriptedHooks::default(),
    );
    let outcome = setup.attempt().await;
    assert_eq!(
        outcome.result.unwrap_err().class(),
        FailureClass::NeedsHuman
    );
    let state = setup.state();
    assert_eq!(state.pending_order, None, "the next attempt starts over");
    assert_eq!(state.attempts.consecutive_failures, 1);

    let setup = Setup::new(
        &[Answer::Accept],
        &[Answer::StillWorking],
        ScriptedHooks::default(),
    );
    let outcome = setup.attempt().await;
    assert_eq!(
        outcome.result.unwrap_err().class(),
        FailureClass::WaitingOnCa
    );
    let state = setup.state();
    assert_eq!(
        state.pending_order.map(|order| order.order_url).as_deref(),
        Some("https://ca.test/order/1"),
        "parked, to be resumed"
    );
    assert_eq!(state.attempts.consecutive_failures, 0, "no failure");
}

/// A fleet as the attempt sees it through the coordination port: every claim granted, and the
/// order in flight the others know of (one another node left, at first), kept as the fleet's
/// database keeps it.
#[derive(Debug)]
struct Handover {
    order: Mutex<Option<LeftOrder>>,
}

impl Handover {
    fn order_url(&self) -> Option<String> {
        self.order
            .lock()
            .unwrap()
            .as_ref()
            .map(|left| left.location.order_url.clone())
    }
}

impl Coordination for Arc<Handover> {
    fn claim<'a>(&'a self, _cert: &'a CertName) -> PortFuture<'a, Result<Claimed, FleetError>> {
        let claim = HandoverClaim {
            fleet: Arc::clone(self),
            lost: CancellationToken::new(),
        };
        Box::pin(async move { Ok(Claimed::Held(Box::new(claim))) })
    }
}

#[derive(Debug)]
struct HandoverClaim {
    fleet: Arc<Handover>,
    lost: CancellationToken,
}

impl Claim for HandoverClaim {
    fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    fn published<'a>(
        &'a self,
        _local_serial: Option<&'a str>,
    ) -> PortFuture<'a, Result<Option<PublishedVersion>, FleetError>> {
        Box::pin(async { Ok(None) })
    }

    fn shared_attempts(&self) -> PortFuture<'_, Result<Option<AttemptRecord>, FleetError>> {
        Box::pin(async { Ok(None) })
    }

    fn share_attempts<'a>(
        &'a self,
        _record: &'a AttemptRecord,
    ) -> PortFuture<'a, Result<(), FleetError>> {
        Box::pin(async { Ok(()) })
    }

    fn order_left(&self) -> PortFuture<'_, Result<Option<LeftOrder>, FleetError>> {
        let left = self.fleet.order.lock().unwrap().clone();
        Box::pin(async move { Ok(left) })
    }

    fn record_order<'a>(
        &'a self,
        location: &'a OrderLocation,
        key_pem: &'a Secret,
    ) -> PortFuture<'a, Result<(), FleetError>> {
        *self.fleet.order.lock().unwrap() = Some(LeftOrder {
            location: location.clone(),
            key_pem: key_pem.clone(),
            placed_by: "this node".to_owned(),
        });
        Box::pin(async { Ok(()) })
    }

    fn forget_order(&self) -> PortFuture<'_, Result<(), FleetError>> {
        *self.fleet.order.lock().unwrap() = None;
        Box::pin(async { Ok(()) })
    }

    fn solver(&self, solver: Arc<dyn ChallengeSolver>) -> Arc<dyn ChallengeSolver> {
        solver
    }

    fn publish<'a>(
        &'a self,
        _issue: &'a CheckedIssue,
        _key_pem: &'a Secret,
    ) -> PortFuture<'a, Result<(), FleetError>> {
        *self.fleet.order.lock().unwrap() = None;
        Box::pin(async { Ok(()) })
    }

    fn release(self: Box<Self>) -> PortFuture<'static, ()> {
        Box::pin(async {})
    }
}

#[tokio::test]
async fn a_dead_order_another_node_left_is_forgotten_in_the_fleet_and_the_next_attempt_orders_anew()
{
    let mut setup = Setup::new(
        &[Answer::Accept],
        &[Answer::Invalid, Answer::Accept],
        ScriptedHooks::default(),
    );
    let left = "https://ca.test/order/left-by-node-b";
    let fleet = Arc::new(Handover {
        order: Mutex::new(Some(LeftOrder {
            location: OrderLocation {
                order_url: left.to_owned(),
                directory_url: "https://ca.invalid/directory".to_owned(),
            },
            key_pem: Secret::new(KeyPair::generate().unwrap().serialize_pem().into_bytes()),
            placed_by: "node-b".to_owned(),
        })),
    });
    setup.ctx.coordination = Arc::new(Arc::clone(&fleet));

    let outcome = setup.attempt().await;
    assert_eq!(
        outcome.result.unwrap_err().class(),
        FailureClass::NeedsHuman
    );
    assert!(
        setup.script.calls().contains(&format!("resume {left}")),
        "the left order was carried on: {:?}",
        setup.script.calls()
    );
    assert_eq!(fleet.order_url(), None, "forgotten for every node");
    assert_eq!(setup.state().pending_order, None, "and here");

    let outcome = setup.attempt().await;
    assert!(outcome.result.is_ok(), "{:?}", outcome.result.err());
    assert_eq!(
        *setup.script.orders_placed.lock().unwrap(),
        1,
        "a new order"
    );
    assert_eq!(
        setup
            .script
            .calls()
            .iter()
            .filter(|call| call.starts_with("resume"))
            .count(),
        1,
        "the dead order was not resumed again"
    );
}
