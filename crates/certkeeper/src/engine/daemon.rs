//! `certkeeper run`: the long-running renewal daemon.
//!
//! One loop owns everything that changes: it plans every certificate with the core's pure
//! planner, starts the attempts that are due (bounded by `max_concurrent` overall and per CA),
//! then sleeps until the earliest planned instant, a finished attempt, a change to the config
//! files, or an event of the process lifecycle (a reload or a stop, from
//! [`Lifecycle`], the one owner of signals, systemd notifications and the watchdog). There is
//! no polling: when nothing is due it wakes at most once an hour, to notice wall-clock jumps
//! (suspend, NTP). The watchdog is petted while this loop waits for its next event, so a
//! wedged loop stops petting it and systemd restarts the daemon.
//!
//! Shutdown (SIGTERM/SIGINT): `STOPPING=1`, the lifecycle's soft token is cancelled (attempts
//! waiting for a slot do not start), attempts in flight get a grace period to finish (their
//! orders are persisted either way and resumed at the next start), then the hard token drops
//! the rest; the HTTP-01 responder stops last. A second signal stops at once.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certkeeper_acme::PollPolicy;
use certkeeper_challenge::ChallengeTokens;
use certkeeper_config::Environment;
use certkeeper_core::notify::{DigestStatus, NotifyState, Observation};
use certkeeper_core::schedule::{Planned, next_wake, plan_certificate, urgent_threshold};
use certkeeper_core::{
    CaName, CertName, CertificateSpec, Inventory, LifecycleAction, ObservedCert,
};
use certkeeper_hooks::{DEFAULT_QUIET, ReloadCoalescer, ReloadOutcome};
use certkeeper_notify::DigestEntry;
use certkeeper_store::{
    AttemptRecord, LiveCert, RenewalInfoRecord, Store, StoreLock, unix_seconds,
};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::control::{self, Incoming, Reply, Request};
use crate::engine::admin::{self, CertMetrics, SharedSnapshot, Snapshot};
use crate::engine::attempt::{self, EngineRunner};
use crate::engine::deploy;
use crate::engine::error::AttemptError;
use crate::engine::fleet;
use crate::engine::fleet::follow::{Follower, follow};
use crate::engine::job::JobContext;
use crate::engine::limits::Limits;
use crate::engine::notices::{Details, Notifier};
use crate::engine::pass::{self, Step};
use crate::engine::plan::{LineageView, attempts_from};
use crate::engine::ports::{
    AttemptInput, CertificateAuthority, Clock, RenewalInfo, Runner, SystemClock,
};
use crate::engine::renewal_info;
use crate::engine::revoke::{Revoked, revoke};
use crate::engine::solvers::{ChallengeLabel, ConfiguredSolvers, uses_embedded_responder};
use crate::engine::watch::ConfigWatcher;
use crate::lifecycle::{Event, Lifecycle};
use crate::report::{error_chain, short_duration};

/// When nothing is due, wake at least this often to re-read the wall clock.
const IDLE_RECHECK: Duration = Duration::from_secs(3_600);
/// How long attempts in flight may run on after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);
/// Config file changes are applied once they have been quiet this long (editors write in
/// several steps).
const RELOAD_DEBOUNCE: Duration = Duration::from_millis(500);
/// Per-order wait for the CA before the attempt is parked and resumed later.
const ORDER_WAIT: Duration = Duration::from_secs(300);

/// What the loop knows about one certificate between passes: [`LineageView`] without the
/// certificate's bytes, so ten thousand of them stay small.
#[derive(Debug, Clone, Default)]
struct View {
    observed: Option<ObservedCert>,
    record: AttemptRecord,
    /// The last renewal-information check (ARI) of the live certificate; a check of an
    /// earlier certificate is not kept.
    renewal_info: Option<Box<RenewalInfoRecord>>,
    /// The last plan put it inside its urgent threshold.
    urgent: bool,
    /// What was notified about it (the lineage's copy).
    notified: NotifyState,
}

impl From<LineageView> for View {
    fn from(view: LineageView) -> Self {
        let renewal_info = match (&view.live, &view.lineage) {
            (Some(live), Some(lineage)) => lineage
                .state()
                .renewal_info
                .clone()
                .filter(|record| record.serial_hex.eq_ignore_ascii_case(&live.serial_hex)),
            _ => None,
        };
        Self {
            observed: view.observed().cloned(),
            renewal_info,
            notified: view
                .lineage
                .as_ref()
                .map(certkeeper_store::Lineage::notified)
                .unwrap_or_default(),
            record: view.record,
            urgent: false,
        }
    }
}

/// The outcome of one planning pass.
struct Plan {
    /// When the loop must wake up next.
    wake_at: SystemTime,
    /// The earliest planned attempt that is not due yet.
    next: Option<(SystemTime, CertName)>,
}

/// What a task of the loop's [`JoinSet`] finished.
enum Done {
    /// An order attempt (with its deploy hooks when it installed a certificate).
    Attempt {
        spec: CertificateSpec,
        /// It replaced a live certificate (renewed) rather than issuing a first one.
        renewal: bool,
        /// Installed, but its deploy hooks failed (retried later).
        deploy_failed: bool,
        /// It was planned inside the certificate's urgent threshold.
        urgent: bool,
        outcome: Result<LiveCert, AttemptError>,
    },
    /// Deploy hooks retried for a certificate already installed.
    Redeploy { spec: CertificateSpec },
    /// An attempt that was still waiting for a free slot when the daemon was asked to stop:
    /// it never started (nothing was ordered).
    NotStarted { spec: CertificateSpec },
    /// A revocation asked for over the control socket.
    Revoked {
        replies: mpsc::UnboundedSender<Reply>,
        name: String,
        result: Result<Revoked, String>,
    },
    /// A renewal-information check finished (`None`: there was no certificate to ask about).
    RenewalInfo {
        name: CertName,
        ca: CaName,
        checked: Option<renewal_info::Checked>,
    },
    /// A batch of reload targets ran.
    Reloads(Vec<ReloadOutcome>),
    /// Post hooks ran after a batch of renewals.
    Post,
}

/// How long a failed deploy hook waits before it runs again.
const DEPLOY_RETRY: Duration = Duration::from_secs(60);
/// At most this many renewal-information checks at once (a fleet's first start asks about
/// every certificate).
const RENEWAL_INFO_CHECKS: usize = 8;

/// What the daemon runs on; see [`ports`](super::ports).
#[derive(Debug)]
pub struct Ports {
    pub clock: Arc<dyn Clock>,
    /// `None`: the engine's own runner.
    pub runner: Option<Arc<dyn Runner>>,
    /// Where renewal information comes from; `None`: the engine's own CA port.
    pub authority: Option<Arc<dyn CertificateAuthority>>,
    pub lifecycle: Lifecycle,
}

pub struct Daemon {
    clock: Arc<dyn Clock>,
    runner: Arc<dyn Runner>,
    config_path: PathBuf,
    env: Environment,
    inventory: Arc<Inventory>,
    store: Store,
    _lock: StoreLock,
    ctx: JobContext,
    lifecycle: Lifecycle,
    views: HashMap<CertName, View>,
    in_flight: HashSet<CertName>,
    tasks: JoinSet<Done>,
    /// Where renewal information is asked for.
    authority: Arc<dyn CertificateAuthority>,
    /// Renewal-information checks running: no attempt starts for these until they finish.
    checking: HashSet<CertName>,
    /// CAs whose directory has no `renewalInfo`, until when that is taken as true.
    without_renewal_info: HashMap<CaName, SystemTime>,
    limits: Limits,
    reloads: Arc<ReloadCoalescer>,
    /// Certificates installed since the post hooks last ran.
    renewed_since_post: Vec<CertificateSpec>,
    /// When each failed deploy runs again.
    redeploy_at: HashMap<CertName, SystemTime>,
    reload_error: Option<String>,
    /// Whether the embedded HTTP-01 responder listens (see [`Daemon::run_with`]).
    http01_bound: bool,
    snapshot: SharedSnapshot,
    /// Requests from `certkeeper renew`/`revoke`/`status` over the control socket.
    requests: mpsc::UnboundedReceiver<Incoming>,
    /// Control clients waiting for attempts to finish.
    waiters: Vec<Waiter>,
    /// Notices to the `[[notify]]` targets; `None` when there are none.
    notifier: Option<Notifier>,
    /// In a fleet: the task that serves the other nodes' challenges and installs what they
    /// publish.
    following: Option<Following>,
}

/// The fleet follower's task and the inventory it works from.
#[derive(Debug)]
struct Following {
    inventory: watch::Sender<Arc<Inventory>>,
    task: tokio::task::JoinHandle<()>,
    /// The fleet's numbers for `/metrics`.
    metrics: tokio::task::JoinHandle<()>,
}

/// A control client waiting for the attempts its `renew` started (or found running).
#[derive(Debug)]
struct Waiter {
    replies: mpsc::UnboundedSender<Reply>,
    names: HashSet<CertName>,
    ok: bool,
}

impl Daemon {
    /// Bind the HTTP-01 responder (failing fast if the port is taken) and run on the locked
    /// store until stopped by a signal.
    pub async fn run(
        config_path: PathBuf,
        env: Environment,
        inventory: Inventory,
        locked: (Store, StoreLock),
    ) -> anyhow::Result<()> {
        let ports = Ports {
            clock: Arc::new(SystemClock),
            runner: None,
            authority: None,
            lifecycle: Lifecycle::start()?,
        };
        Self::run_with(config_path, env, inventory, locked, ports).await
    }

    /// [`Daemon::run`] with the ports given: scheduler tests pass a clock that follows
    /// tokio's paused time and a runner of scripted outcomes.
    pub async fn run_with(
        config_path: PathBuf,
        env: Environment,
        inventory: Inventory,
        (store, lock): (Store, StoreLock),
        ports: Ports,
    ) -> anyhow::Result<()> {
        let Ports {
            clock,
            runner,
            authority,
            lifecycle,
        } = ports;
        let tokens = ChallengeTokens::new();
        let stop_responder = CancellationToken::new();
        // Port 80 is left alone when certificates are configured and none answers through
        // the embedded responder (webroot and DNS-01 only): the web server there owns it. An
        // empty inventory still binds, for the certificates a reload will add.
        let http01_bound = inventory.certificates.is_empty()
            || inventory
                .certificates
                .iter()
                .any(|spec| uses_embedded_responder(&inventory, &spec.name));
        let listeners = if http01_bound {
            certkeeper_challenge::bind(&inventory.http01.listen).await?
        } else {
            tracing::info!(
                "no certificate answers through the embedded HTTP-01 responder; [http01] listen is not bound"
            );
            Vec::new()
        };
        let mut responders = JoinSet::new();
        for listener in listeners {
            tracing::info!(
                addr = listener.local_addr().ok().map(tracing::field::display),
                "HTTP-01 responder listening"
            );
            let stop = stop_responder.clone();
            responders.spawn(certkeeper_challenge::serve(
                listener,
                tokens.clone(),
                async move {
                    stop.cancelled().await;
                },
            ));
        }

        let snapshot = SharedSnapshot::default();
        if let Some(admin) = &inventory.admin {
            let listener = tokio::net::TcpListener::bind(admin.listen)
                .await
                .map_err(|err| {
                    anyhow::anyhow!("cannot open the admin listener on {}: {err}", admin.listen)
                })?;
            tracing::info!(addr = %admin.listen, "admin listener: /healthz and /metrics");
            let stop = stop_responder.clone();
            let shared = snapshot.clone();
            responders.spawn(admin::serve(listener, shared, async move {
                stop.cancelled().await;
            }));
        }

        let (requests_tx, requests) = mpsc::unbounded_channel();
        let control_path = control::socket_path(&inventory.state_dir);
        let control_path = match control::bind(&control_path) {
            Ok(listener) => {
                tracing::info!(path = %control_path.display(), "control socket: renew, revoke and status reach this daemon");
                let stop = stop_responder.clone();
                responders.spawn(async move {
                    control::serve(listener, requests_tx, stop.cancelled_owned()).await;
                    Ok(())
                });
                Some(control_path)
            }
            Err(err) => {
                tracing::warn!(path = %control_path.display(), error = %err, "cannot open the control socket; renew and revoke will refuse while this daemon runs");
                None
            }
        };

        // Every socket is bound: the capability to bind low ports is of no further use, and
        // a daemon without it cannot lend it to anything.
        crate::privilege::drop_bind_capability()?;
        // The credentials are final now: the purging thread may start.
        crate::allocator::purge_in_background();

        let reloads = Arc::new(ReloadCoalescer::new(
            inventory.reload_targets.clone(),
            DEFAULT_QUIET,
        ));
        // The follower of a fleet serves the other nodes' HTTP-01 key authorisations from the
        // same table.
        let fleet_tokens = tokens.clone();
        let solvers = Arc::new(ConfiguredSolvers::new(
            tokens,
            Arc::new(store.presented_journal()),
        ));
        // Before any attempt presents a record (a resumed order presents the very value a
        // crash left behind), and before READY=1; bounded (see `remove_stale_records`).
        solvers.remove_stale_records(&inventory).await;
        // A node of a fleet joins it before its first attempt: no order is placed without
        // the fleet's lease.
        let fleet = match &inventory.cluster {
            None => None,
            Some(cluster) => {
                lifecycle.status("connecting to the fleet's database");
                let Some(fleet) = fleet::connect_until(cluster, &lifecycle.soft()).await? else {
                    return Ok(());
                };
                tracing::info!(node = fleet.node(), "joined the fleet");
                Some((fleet, cluster.lease, fleet::LineageGuards::default()))
            }
        };
        let fleet_handle = fleet
            .as_ref()
            .map(|(fleet, _, guards)| (fleet.clone(), guards.clone()));
        let ctx = JobContext::real(
            store.clone(),
            PollPolicy {
                timeout: ORDER_WAIT,
                ..PollPolicy::default()
            },
            solvers,
            Arc::clone(&reloads),
            lifecycle.soft(),
            fleet,
        );
        let following = fleet_handle.map(|(fleet, guards)| {
            let (inventory_tx, inventory_rx) = watch::channel(Arc::new(inventory.clone()));
            let follower = Follower {
                fleet,
                store: store.clone(),
                tokens: fleet_tokens,
                hooks: Arc::clone(&ctx.hooks),
                inventory: inventory_rx,
                guards,
            };
            let metrics = tokio::spawn(fleet::metrics::report(
                follower.fleet.clone(),
                store.clone(),
                follower.inventory.clone(),
                snapshot.clone(),
                lifecycle.soft(),
            ));
            Following {
                inventory: inventory_tx,
                task: tokio::spawn(follow(follower, lifecycle.soft())),
                metrics,
            }
        });
        let runner = runner.unwrap_or_else(|| Arc::new(EngineRunner { ctx: ctx.clone() }));
        let authority = authority.unwrap_or_else(|| Arc::clone(&ctx.ca));
        let notifier = start_notifier(&inventory, &store, &clock, &lifecycle);
        let mut daemon = Daemon {
            clock,
            runner,
            config_path,
            env,
            limits: Limits::new(&inventory),
            reloads,
            renewed_since_post: Vec::new(),
            redeploy_at: HashMap::new(),
            inventory: Arc::new(inventory),
            ctx,
            store,
            _lock: lock,
            lifecycle,
            views: HashMap::new(),
            in_flight: HashSet::new(),
            tasks: JoinSet::new(),
            authority,
            checking: HashSet::new(),
            without_renewal_info: HashMap::new(),
            reload_error: None,
            http01_bound,
            snapshot,
            requests,
            waiters: Vec::new(),
            notifier,
            following,
        };
        daemon.refresh_all_views().await;
        let outcome = daemon.serve().await;

        stop_responder.cancel();
        while responders.join_next().await.is_some() {}
        if let Some(path) = control_path {
            let _ = std::fs::remove_file(path);
        }
        outcome
    }

    async fn serve(&mut self) -> anyhow::Result<()> {
        let (changes_tx, mut changes) = mpsc::unbounded_channel();
        let mut watcher = ConfigWatcher::new(changes_tx);
        watcher.watch(&self.watch_paths());

        let mut first = true;
        // Re-plan after anything that can change a plan; a reload batch being started changes
        // none, so it only does its one thing. The watchdog is petted inside the lifecycle's
        // wait and never wakes this loop (at rest, the daemon's only periodic work is the pet).
        let mut replan = true;
        let mut wake_at = self.clock.now();
        let mut last_status = String::new();
        loop {
            if replan {
                let plan = self.start_due_attempts();
                wake_at = plan.wake_at;
                let status = self.status_line(&plan);
                self.publish_snapshot();
                if first {
                    tracing::info!(
                        certificates = self.inventory.certificates.len(),
                        "certkeeper is running"
                    );
                    self.lifecycle.ready(&status);
                    first = false;
                } else if status != last_status {
                    self.lifecycle.status(&status);
                }
                last_status = status;
            }
            replan = true;
            let sleep = wake_at.duration_since(self.clock.now()).unwrap_or_default();
            let reloads = Arc::clone(&self.reloads);
            tokio::select! {
                () = tokio::time::sleep(sleep) => {}
                Some(finished) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    match finished {
                        Ok(done) => self.finish(done),
                        Err(err) => tracing::error!(error = %err, "an attempt task panicked"),
                    }
                }
                batch = reloads.quiet_batch() => {
                    self.tasks.spawn(async move { Done::Reloads(batch.run().await) });
                    replan = false;
                }
                Some(incoming) = self.requests.recv() => self.handle_request(incoming),
                event = self.lifecycle.next_event() => match event {
                    Event::Reload => self.reload("SIGHUP", &mut watcher).await,
                    Event::Stop(signal) => {
                        self.shutdown(signal).await;
                        return Ok(());
                    }
                },
                Some(()) = changes.recv() => {
                    // Debounce: editors write, rename and chmod in quick succession.
                    tokio::time::sleep(RELOAD_DEBOUNCE).await;
                    while changes.try_recv().is_ok() {}
                    self.reload("configuration change", &mut watcher).await;
                }
            }
        }
    }

    /// Plan every certificate, start the due ones, and say when to wake next.
    fn start_due_attempts(&mut self) -> Plan {
        let now = self.clock.now();
        let inventory = Arc::clone(&self.inventory);
        let mut upcoming = Vec::new();
        let mut next: Option<(SystemTime, CertName)> = None;
        for spec in &inventory.certificates {
            if self.in_flight.contains(&spec.name) {
                continue;
            }
            let view = self.views.entry(spec.name.clone()).or_default().clone();
            if let Some(observed) = &view.observed
                && self.notifier.is_some()
            {
                let observation = Observation::Live {
                    not_after: observed.not_after,
                    urgent_before: urgent_threshold(observed, &spec.schedule),
                };
                let details = Details {
                    not_after: Some(observed.not_after),
                    error: view.record.last_error.clone(),
                    next_attempt: None,
                };
                self.observe(spec, observation, &details);
            }
            if let Some(check_at) = self.renewal_info_check_at(spec, &view, now) {
                if check_at <= now {
                    self.spawn_renewal_info_check(spec);
                } else {
                    upcoming.push(check_at);
                }
            }
            // A check in flight may move the plan; the attempt waits for it.
            if self.checking.contains(&spec.name) {
                continue;
            }
            // The CA refused the configured profile: not ordered again until it changes.
            if view.record.refused_profile.is_some() && view.record.refused_profile == spec.profile
            {
                continue;
            }
            if view.record.pending_deploy && view.observed.is_some() {
                let due = self.redeploy_at.get(&spec.name).copied().unwrap_or(now);
                if due <= now {
                    self.redeploy_at
                        .insert(spec.name.clone(), now + DEPLOY_RETRY);
                    self.spawn_redeploy(spec);
                    continue;
                }
                upcoming.push(due);
            }
            let Some(planned) = plan_certificate(
                &spec.name,
                spec,
                view.observed.as_ref(),
                &attempts_from(&view.record, spec),
                &spec.schedule,
                now,
            ) else {
                continue;
            };
            if let Some(view) = self.views.get_mut(&spec.name) {
                view.urgent = planned.urgent;
            }
            if planned.at <= now {
                self.spawn_attempt(spec, &planned, None, false);
            } else {
                upcoming.push(planned.at);
                if next.as_ref().is_none_or(|(at, _)| planned.at < *at) {
                    next = Some((planned.at, spec.name.clone()));
                }
            }
        }
        if let Some(notifier) = &self.notifier
            && let Some(digest_at) = notifier.queue_digests(|| self.digest_entries(now), now)
        {
            upcoming.push(digest_at);
        }
        Plan {
            wake_at: next_wake(upcoming, now, IDLE_RECHECK),
            next,
        }
    }

    fn spawn_attempt(
        &mut self,
        spec: &CertificateSpec,
        planned: &Planned,
        action: Option<LifecycleAction>,
        new_key: bool,
    ) {
        let purpose = attempt::purpose(spec, planned.renewal, action);
        let renewal = planned.renewal;
        let limits = self.limits.clone();
        let spec = spec.clone();
        let urgent = planned.urgent;
        let input = AttemptInput {
            inventory: Arc::clone(&self.inventory),
            spec: spec.clone(),
            purpose,
            new_key,
            planned_live: self
                .views
                .get(&spec.name)
                .and_then(|view| view.observed.as_ref())
                .map(|observed| observed.not_after),
        };
        let attempt = self.runner.attempt(input);
        let stopping = self.lifecycle.soft();
        let challenge = ChallengeLabel::of(&self.inventory, &spec.name);
        let span = tracing::info_span!(
            "attempt",
            cert = %spec.name,
            domains = %spec.domains.iter().map(ToString::to_string).collect::<Vec<_>>().join(" "),
            action = planned.reason.as_str(),
            attempt = self.views.get(&spec.name).map_or(0, |v| v.record.consecutive_failures) + 1,
            challenge = challenge.kind,
            dns_provider = challenge.dns_provider,
        );
        self.in_flight.insert(spec.name.clone());
        self.tasks.spawn(
            async move {
                // Waiting for a slot is a safe point: asked to stop, an attempt that has not
                // started does not start.
                let _slots = tokio::select! {
                    slots = limits.acquire(&spec.ca) => slots,
                    () = stopping.cancelled() => return Done::NotStarted { spec },
                };
                tracing::info!("starting attempt");
                // A failed deploy is recorded (pending_deploy) and retried by the loop.
                let outcome = attempt.await;
                if let Err(failure) = &outcome.result {
                    attempt::log_failure(&spec, failure, urgent);
                }
                Done::Attempt {
                    spec,
                    renewal,
                    urgent,
                    deploy_failed: outcome.deploy.is_err(),
                    outcome: outcome.result,
                }
            }
            .instrument(span),
        );
    }

    /// When the live certificate of `spec` is next asked about (ARI); `None` when it is not.
    fn renewal_info_check_at(
        &self,
        spec: &CertificateSpec,
        view: &View,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let observed = view.observed.as_ref()?;
        if observed.revoked || self.checking.contains(&spec.name) {
            return None;
        }
        renewal_info::next_check_at(
            observed.not_after,
            view.renewal_info.as_deref(),
            self.without_renewal_info.get(&spec.ca).copied(),
            now,
        )
    }

    /// Ask the CA about the live certificate of `spec`, if a slot is free (a finished check
    /// re-plans, which starts the next one).
    fn spawn_renewal_info_check(&mut self, spec: &CertificateSpec) {
        if self.checking.len() >= RENEWAL_INFO_CHECKS {
            return;
        }
        let Some(ca) = self.inventory.ca(&spec.ca).cloned() else {
            return;
        };
        self.checking.insert(spec.name.clone());
        let (store, authority, name) = (
            self.store.clone(),
            Arc::clone(&self.authority),
            spec.name.clone(),
        );
        let span = tracing::debug_span!("renewal_info", cert = %name);
        self.tasks.spawn(
            async move {
                let ca_name = ca.name.clone();
                let checked = renewal_info::check(store, authority, ca, name.clone()).await;
                Done::RenewalInfo {
                    name,
                    ca: ca_name,
                    checked,
                }
            }
            .instrument(span),
        );
    }

    /// Record a finished renewal-information check (see [`renewal_info`] for who writes).
    fn finish_renewal_info(
        &mut self,
        name: &CertName,
        ca: CaName,
        checked: Option<renewal_info::Checked>,
    ) {
        self.checking.remove(name);
        let Some(checked) = checked else {
            return;
        };
        let now = self.clock.now();
        if matches!(checked.answer, Ok(RenewalInfo::Unsupported)) {
            if !self.without_renewal_info.contains_key(&ca) {
                tracing::info!(
                    ca = %ca,
                    "the CA offers no renewal information (ARI); its certificates renew by their lifetime"
                );
            }
            self.without_renewal_info
                .insert(ca, now + renewal_info::UNSUPPORTED_FOR);
            return;
        }
        self.without_renewal_info.remove(&ca);
        // An attempt started meanwhile replaces the certificate the answer was about, and
        // writes the lineage: the answer is dropped.
        if self.in_flight.contains(name) {
            return;
        }
        let recorded = self.store.lineage(name).and_then(|mut lineage| {
            renewal_info::record(&mut lineage, checked, now, rand::random())
        });
        if let Err(err) = recorded {
            tracing::warn!(cert = %name, error = error_chain(&err), "cannot record the CA's renewal information");
        }
        self.refresh_view(name);
    }

    /// Start the deploy hooks of an installed certificate again.
    fn spawn_redeploy(&mut self, spec: &CertificateSpec) {
        let input = AttemptInput {
            inventory: Arc::clone(&self.inventory),
            spec: spec.clone(),
            purpose: attempt::purpose(spec, true, None),
            new_key: false,
            planned_live: None,
        };
        let redeploy = self.runner.redeploy(input);
        let spec = spec.clone();
        self.in_flight.insert(spec.name.clone());
        let span = tracing::info_span!("redeploy", cert = %spec.name);
        self.tasks.spawn(
            async move {
                redeploy.await;
                Done::Redeploy { spec }
            }
            .instrument(span),
        );
    }

    fn finish(&mut self, done: Done) {
        match done {
            Done::Attempt {
                spec,
                renewal,
                urgent,
                deploy_failed,
                outcome,
            } => {
                let mut lines = Vec::new();
                match &outcome {
                    Ok(installed) => {
                        lines.push(Reply::Out(pass::installed_line(&spec, renewal, installed)));
                        if deploy_failed {
                            lines.push(Reply::Out(pass::deploy_failed_line(&spec)));
                        }
                    }
                    Err(error) => lines.push(Reply::Err(pass::failed_line(&spec, error))),
                }
                self.answer_waiters(&spec.name, &lines, outcome.is_ok() && !deploy_failed);
                self.finish_attempt(&spec, &outcome, urgent);
            }
            Done::Redeploy { spec } => {
                self.in_flight.remove(&spec.name);
                self.refresh_view(&spec.name);
                let line = format!(
                    "{}: its pending deploy hooks ran; nothing was ordered",
                    spec.name
                );
                self.answer_waiters(&spec.name, &[Reply::Out(line)], true);
            }
            Done::NotStarted { spec } => {
                self.in_flight.remove(&spec.name);
                self.refresh_view(&spec.name);
                let line = format!(
                    "error: {}: the daemon is stopping; not attempted",
                    spec.name
                );
                self.answer_waiters(&spec.name, &[Reply::Err(line)], false);
            }
            Done::Revoked {
                replies,
                name,
                result,
            } => {
                let ok = result.is_ok();
                let _ = replies.send(match result {
                    Ok(revoked) => Reply::Out(revoked.line()),
                    Err(error) => Reply::Err(format!("error: {error}")),
                });
                let _ = replies.send(Reply::Done { ok });
                if let Ok(name) = CertName::new(&name) {
                    self.refresh_view(&name);
                }
            }
            Done::Reloads(outcomes) => {
                deploy::record_reloads(&self.store, &outcomes);
                for outcome in &outcomes {
                    for name in &outcome.certificates {
                        if let Ok(name) = CertName::new(name) {
                            self.refresh_view(&name);
                        }
                    }
                }
            }
            Done::RenewalInfo { name, ca, checked } => {
                self.finish_renewal_info(&name, ca, checked);
            }
            Done::Post => {}
        }
        // A burst of renewals is over: the post hooks run once for all of it.
        if self.in_flight.is_empty() && !self.renewed_since_post.is_empty() {
            let renewed = std::mem::take(&mut self.renewed_since_post);
            let inventory = Arc::clone(&self.inventory);
            let hooks = Arc::clone(&self.ctx.hooks);
            self.tasks.spawn(async move {
                let specs: Vec<&CertificateSpec> = renewed.iter().collect();
                hooks.post(&inventory, &specs).await;
                Done::Post
            });
        }
    }

    fn finish_attempt(
        &mut self,
        spec: &CertificateSpec,
        outcome: &Result<LiveCert, AttemptError>,
        urgent: bool,
    ) {
        self.in_flight.remove(&spec.name);
        if outcome.is_ok() {
            self.renewed_since_post.push(spec.clone());
        }
        self.refresh_view(&spec.name);
        let (observation, details) = match outcome {
            Ok(installed) => (
                Observation::Renewed,
                Details {
                    not_after: Some(installed.observed.not_after),
                    ..Details::default()
                },
            ),
            Err(failure) if attempt::needs_human(failure, urgent) => (
                Observation::Failed,
                Details {
                    error: Some(error_chain(failure)),
                    not_after: self
                        .views
                        .get(&spec.name)
                        .and_then(|v| v.observed.as_ref())
                        .map(|o| o.not_after),
                    next_attempt: self.next_attempt(spec),
                },
            ),
            Err(_) => return,
        };
        self.observe(spec, observation, &details);
    }

    /// Tell the notifier what was observed about `spec`, keeping the view's copy of what was
    /// notified.
    fn observe(&mut self, spec: &CertificateSpec, observation: Observation, details: &Details) {
        let Some(notifier) = &self.notifier else {
            return;
        };
        let Some(view) = self.views.get_mut(&spec.name) else {
            return;
        };
        let now = self.clock.now();
        view.notified =
            notifier.observe(&self.store, spec, view.notified, observation, details, now);
    }

    /// The daily digest's lines: every certificate of the inventory as the views show it.
    fn digest_entries(&self, now: SystemTime) -> Vec<DigestEntry> {
        self.inventory
            .certificates
            .iter()
            .map(|spec| {
                let view = self.views.get(&spec.name);
                let observed = view.and_then(|view| view.observed.as_ref());
                let failures = view.map_or(0, |view| view.record.consecutive_failures);
                let urgent = observed.is_some_and(|observed| {
                    observed.not_after.duration_since(now).unwrap_or_default()
                        < urgent_threshold(observed, &spec.schedule)
                });
                DigestEntry {
                    certificate: spec.name.to_string(),
                    status: DigestStatus::of(observed.is_some(), failures, urgent)
                        .as_str()
                        .to_owned(),
                    not_after: observed.map(|observed| observed.not_after),
                    next_attempt: self.next_attempt(spec).map(|at| at.max(now)),
                    error: view
                        .filter(|_| failures > 0)
                        .and_then(|view| view.record.last_error.clone()),
                }
            })
            .collect()
    }

    /// When the planner would attempt `spec` next, from its view.
    fn next_attempt(&self, spec: &CertificateSpec) -> Option<SystemTime> {
        let view = self.views.get(&spec.name)?;
        plan_certificate(
            &spec.name,
            spec,
            view.observed.as_ref(),
            &attempts_from(&view.record, spec),
            &spec.schedule,
            self.clock.now(),
        )
        .map(|planned| planned.at)
    }

    /// A request from the control socket.
    fn handle_request(&mut self, Incoming { request, replies }: Incoming) {
        match request {
            Request::InFlight => {
                let mut names: Vec<String> =
                    self.in_flight.iter().map(ToString::to_string).collect();
                names.sort();
                let _ = replies.send(Reply::InFlight(names));
                let _ = replies.send(Reply::Done { ok: true });
            }
            Request::Renew {
                names,
                force,
                action,
                new_key,
            } => self.renew_request(
                &names,
                force || new_key,
                action.as_deref(),
                new_key,
                replies,
            ),
            Request::Revoke { name, reason } => {
                let reason = match reason.parse() {
                    Ok(reason) => reason,
                    Err(err) => {
                        let _ = replies.send(Reply::Refused(format!("bad reason: {err}")));
                        return;
                    }
                };
                let inventory = Arc::clone(&self.inventory);
                let ctx = self.ctx.clone();
                self.tasks.spawn(async move {
                    let result = revoke(&inventory, &ctx.store, ctx.ca.as_ref(), &name, reason)
                        .await
                        .map_err(|err| crate::report::error_chain(&err));
                    Done::Revoked {
                        replies,
                        name,
                        result,
                    }
                });
            }
        }
    }

    /// `certkeeper renew` carried out by the daemon: the same pass as without it (the
    /// daemon's attempts, within its limits), answered as the attempts finish.
    fn renew_request(
        &mut self,
        names: &[String],
        force: bool,
        action: Option<&str>,
        new_key: bool,
        replies: mpsc::UnboundedSender<Reply>,
    ) {
        let inventory = Arc::clone(&self.inventory);
        let specs = match pass::select(&inventory, names) {
            Ok(specs) => specs,
            Err(unknown) => {
                let _ = replies.send(Reply::Refused(unknown.to_string()));
                return;
            }
        };
        let action = match action.map(str::parse::<LifecycleAction>).transpose() {
            Ok(action) => action,
            Err(err) => {
                let _ = replies.send(Reply::Refused(format!("bad action: {err}")));
                return;
            }
        };
        let now = self.clock.now();
        let mut waiter = Waiter {
            replies,
            names: HashSet::new(),
            ok: true,
        };
        for spec in specs {
            if self.in_flight.contains(&spec.name) {
                let _ = waiter.replies.send(Reply::Out(format!(
                    "{}: an attempt is already running; waiting for it",
                    spec.name
                )));
                waiter.names.insert(spec.name.clone());
                continue;
            }
            match pass::step(LineageView::load(&self.store, &spec.name), spec, now, force) {
                Step::Attempt(planned, _) => {
                    self.spawn_attempt(spec, &planned, action, new_key);
                    waiter.names.insert(spec.name.clone());
                }
                Step::Skip(skip) => {
                    let _ = waiter.replies.send(Reply::Out(skip.line));
                    waiter.ok &= !skip.failing;
                }
            }
        }
        if waiter.names.is_empty() {
            let _ = waiter.replies.send(Reply::Done { ok: waiter.ok });
        } else {
            self.waiters.push(waiter);
        }
    }

    /// Tell the control clients waiting for `name` how it went; finish those with nothing
    /// left to wait for.
    fn answer_waiters(&mut self, name: &CertName, lines: &[Reply], ok: bool) {
        self.waiters.retain_mut(|waiter| {
            if !waiter.names.remove(name) {
                return true;
            }
            for line in lines {
                let _ = waiter.replies.send(line.clone());
            }
            waiter.ok &= ok;
            if waiter.names.is_empty() {
                let _ = waiter.replies.send(Reply::Done { ok: waiter.ok });
                return false;
            }
            true
        });
    }

    /// Read every lineage of the inventory afresh (at start and after a reload), on the
    /// blocking pool: for a large inventory this is most of a start's work, and the runtime
    /// thread keeps answering HTTP-01 meanwhile.
    async fn refresh_all_views(&mut self) {
        let (store, inventory) = (self.store.clone(), Arc::clone(&self.inventory));
        let loaded = tokio::task::spawn_blocking(move || {
            let specs: Vec<&CertificateSpec> = inventory.certificates.iter().collect();
            LineageView::load_each(&store, &specs, |spec, view| {
                (spec.name.clone(), View::from(view))
            })
            .into_iter()
            .collect::<HashMap<CertName, View>>()
        })
        .await;
        // A panic while reading is the daemon's own (as it was when lineages were read on this
        // thread): planning from no views would order every certificate anew.
        self.views = loaded.unwrap_or_else(|err| std::panic::resume_unwind(err.into_panic()));
        // The parse trees and full lineage reads are gone: their pages go back now.
        crate::allocator::return_freed_memory();
    }

    fn refresh_view(&mut self, name: &CertName) {
        let view = LineageView::load(&self.store, name);
        self.views.insert(name.clone(), View::from(view));
    }

    async fn reload(&mut self, why: &str, watcher: &mut ConfigWatcher) {
        self.lifecycle.reloading();
        tracing::info!(trigger = why, path = %self.config_path.display(), "reloading the configuration");
        // Parsing a large inventory takes tens of milliseconds: off the thread that answers
        // HTTP-01 for the orders in flight.
        let (path, env) = (self.config_path.clone(), self.env.clone());
        let loaded = match tokio::task::spawn_blocking(move || certkeeper_config::load(&path, &env))
            .await
        {
            Ok(loaded) => loaded,
            Err(err) => {
                tracing::error!(error = %err, "reading the configuration failed; still running on the previous one");
                self.reload_error = Some(format!("config reload failed: {err}"));
                return;
            }
        };
        match loaded {
            Err(errors) => {
                for error in &errors.errors {
                    tracing::error!("{error}");
                }
                let first = errors
                    .errors
                    .first()
                    .map(ToString::to_string)
                    .unwrap_or_default();
                tracing::error!(
                    problems = errors.errors.len(),
                    "invalid configuration; still running on the previous one"
                );
                self.reload_error = Some(format!("config reload failed: {first}"));
            }
            Ok(loaded) => {
                for warning in &loaded.warnings {
                    tracing::warn!("{warning}");
                }
                let mut inventory = loaded.inventory;
                if inventory.state_dir != self.inventory.state_dir {
                    tracing::warn!("state_dir changed; it takes effect after a restart");
                    inventory.state_dir.clone_from(&self.inventory.state_dir);
                }
                if inventory.http01 != self.inventory.http01 {
                    tracing::warn!("[http01] listen changed; it takes effect after a restart");
                    inventory.http01 = self.inventory.http01.clone();
                }
                if !self.http01_bound
                    && let Some(spec) = inventory
                        .certificates
                        .iter()
                        .find(|spec| uses_embedded_responder(&inventory, &spec.name))
                {
                    tracing::warn!(cert = %spec.name, "this certificate answers through the embedded HTTP-01 responder, which this daemon did not start (no certificate used it); restart certkeeper to bind [http01] listen, or give it a webroot or dns-01");
                }
                let before: HashSet<&CertName> = self
                    .inventory
                    .certificates
                    .iter()
                    .map(|c| &c.name)
                    .collect();
                let after: HashSet<&CertName> =
                    inventory.certificates.iter().map(|c| &c.name).collect();
                tracing::info!(
                    certificates = inventory.certificates.len(),
                    added = after.difference(&before).count(),
                    removed = before.difference(&after).count(),
                    "configuration reloaded"
                );
                // Orders in flight keep the slots they hold; new ones follow the new limits.
                self.limits = Limits::new(&inventory);
                self.reloads.set_targets(inventory.reload_targets.clone());
                if let Some(notifier) = self.notifier.take() {
                    notifier.stop().await;
                }
                self.notifier =
                    start_notifier(&inventory, &self.store, &self.clock, &self.lifecycle);
                self.inventory = Arc::new(inventory);
                if let Some(following) = &self.following {
                    following
                        .inventory
                        .send_replace(Arc::clone(&self.inventory));
                }
                watcher.watch(&self.watch_paths());
                self.reload_error = None;
                self.ctx.ca.forget_accounts();
                self.refresh_all_views().await;
            }
        }
        let status = self.status_line(&Plan {
            wake_at: self.clock.now() + IDLE_RECHECK,
            next: None,
        });
        self.lifecycle.ready(&status);
    }

    /// Stop: no new attempts (the lifecycle cancelled the soft token), attempts in flight
    /// finish or park within the grace period, then the rest is dropped; certificates
    /// installed meanwhile still get their reload.
    async fn shutdown(&mut self, why: &str) {
        let waiting = self.tasks.len();
        tracing::info!(signal = why, attempts_in_flight = waiting, "stopping");
        self.lifecycle
            .stopping(&format!("stopping; {waiting} attempts finishing"));
        let deadline = tokio::time::Instant::now() + SHUTDOWN_GRACE;
        let hard = self.lifecycle.hard();
        while !self.tasks.is_empty() && !hard.is_cancelled() {
            let mut finished = None;
            let tasks = &mut self.tasks;
            self.lifecycle
                .wait_unless_hard(deadline, async {
                    finished = tasks.join_next().await;
                })
                .await;
            if let Some(Ok(done)) = finished {
                self.finish(done);
            }
        }
        self.tasks.abort_all();
        while self.tasks.join_next().await.is_some() {}
        // Certificates installed just now still get their reload.
        let outcomes = self.reloads.flush().await;
        deploy::record_reloads(&self.store, &outcomes);
        // Notices of the attempts that finished meanwhile are in the outbox, sent after the
        // restart; the delivery stopped with the soft token.
        if let Some(notifier) = self.notifier.take() {
            notifier.stop().await;
        }
        // The follower stopped with the soft token too.
        if let Some(following) = self.following.take() {
            for task in [following.task, following.metrics] {
                if let Err(err) = task.await {
                    tracing::error!(error = %err, "a fleet task panicked");
                }
            }
        }
    }

    /// Hand the admin listener the current numbers.
    fn publish_snapshot(&self) {
        let certificates = self
            .inventory
            .certificates
            .iter()
            .map(|spec| {
                let view = self.views.get(&spec.name).cloned().unwrap_or_default();
                let challenge = ChallengeLabel::of(&self.inventory, &spec.name);
                let info = view.renewal_info.as_deref();
                CertMetrics {
                    name: spec.name.to_string(),
                    not_after_unix: view.observed.as_ref().map(|o| unix_seconds(o.not_after)),
                    last_success_unix: view.record.last_success_at_unix,
                    consecutive_failures: view.record.consecutive_failures,
                    successes_total: view.record.successes_total,
                    failures_total: view.record.failures_total,
                    urgent_failing: view.urgent && view.record.consecutive_failures > 0,
                    deploy_pending: view.record.pending_deploy,
                    solver: challenge.solver().to_owned(),
                    challenge: challenge.kind,
                    renewal_window_start_unix: info.and_then(|r| r.window_start_unix),
                    renewal_window_end_unix: info.and_then(|r| r.window_end_unix),
                    renewal_at_unix: info.and_then(|r| r.renew_at_unix),
                    renewal_info_checked_unix: info.map(|r| r.checked_at_unix),
                    renewal_info_ok: info.map(|r| r.last_error.is_none()),
                    profile: spec.profile.clone(),
                }
            })
            .collect();
        self.snapshot.publish(Snapshot {
            certificates,
            orders_in_flight: self.in_flight.len(),
            notices_undelivered: self
                .notifier
                .as_ref()
                .map(Notifier::undelivered)
                .unwrap_or_default(),
        });
    }

    /// The configuration files and include directories to watch; the main file always.
    fn watch_paths(&self) -> Vec<PathBuf> {
        let main =
            std::path::absolute(&self.config_path).unwrap_or_else(|_| self.config_path.clone());
        let mut paths = self.inventory.watch_paths.clone();
        if !paths.contains(&main) {
            paths.push(main);
        }
        paths
    }

    /// `12 certificates, next: www in 3d 4h, 0 failing` (plus what is running or wrong).
    fn status_line(&self, plan: &Plan) -> String {
        let now = self.clock.now();
        let failing = self
            .views
            .values()
            .filter(|v| v.record.consecutive_failures > 0)
            .count();
        let next = plan.next.clone();
        let wake_at = plan.wake_at;
        let mut line = format!("{} certificates", self.inventory.certificates.len());
        if !self.in_flight.is_empty() {
            line.push_str(&format!(", {} renewing", self.in_flight.len()));
        }
        match next {
            Some((at, name)) => line.push_str(&format!(
                ", next: {name} in {}",
                short_duration(at.duration_since(now).unwrap_or_default())
            )),
            None if self.in_flight.is_empty() => line.push_str(&format!(
                ", next check in {}",
                short_duration(wake_at.duration_since(now).unwrap_or_default())
            )),
            None => {}
        }
        line.push_str(&format!(", {failing} failing"));
        if let Some(error) = &self.reload_error {
            line.push_str("; ");
            line.push_str(error);
        }
        line
    }
}

/// The notifier of `inventory`'s targets, delivering until the daemon stops; a notifier that
/// cannot start is logged and left out (renewals go on without notices).
fn start_notifier(
    inventory: &Inventory,
    store: &Store,
    clock: &Arc<dyn Clock>,
    lifecycle: &Lifecycle,
) -> Option<Notifier> {
    match Notifier::start(inventory, store, Arc::clone(clock), &lifecycle.soft()) {
        Ok(notifier) => {
            if notifier.is_some() {
                tracing::info!(
                    targets = inventory.notify.len(),
                    "notifications: queued in the outbox and delivered to the [[notify]] targets"
                );
            }
            notifier
        }
        Err(err) => {
            tracing::error!(
                error = format!("{err:#}"),
                "notifications are off: cannot set up the [[notify]] targets"
            );
            None
        }
    }
}

#[cfg(test)]
mod tests;
