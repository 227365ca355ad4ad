//! Coalescing reloads: ten certificates deployed in one pass mean one `systemctl reload
//! nginx`, not ten.
//!
//! Certificates [`request`](ReloadCoalescer::request) their reload targets as they deploy.
//! Requests collect into one pending batch; [`quiet_batch`](ReloadCoalescer::quiet_batch)
//! hands it out once no request has arrived for the quiet period (by default
//! [`DEFAULT_QUIET`]), or [`DEFAULT_MAX_WAIT`] after the first request when requests keep
//! trickling in, so a steady stream cannot postpone reloads forever. A batch runs each target
//! once, in configured order, with `CERTKEEPER_RENEWED` naming the certificates that asked.
//! Requests made while a batch runs belong to the next batch, so a certificate deployed
//! during a reload is never left behind.
//!
//! The coalescer owns no task. The daemon's lifecycle owner awaits
//! [`serve`](ReloadCoalescer::serve) next to its other tasks; a one-shot `certkeeper renew`
//! calls [`flush`](ReloadCoalescer::flush) after its pass to run what is pending at once.
//! Waiting reads [`tokio::time`], so tests drive the debounce with paused time.

use std::future::Future;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use certkeeper_core::{ReloadTarget, post_env};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::HookError;
use crate::runner::{HookOutcome, HookRun, run};

/// Quiet period after the last request before a batch runs.
pub const DEFAULT_QUIET: Duration = Duration::from_secs(2);
/// Longest a request waits for its batch while new requests keep arriving.
pub const DEFAULT_MAX_WAIT: Duration = Duration::from_secs(30);

/// Collects reload requests and hands them out as batches. Share it behind an `Arc`.
#[derive(Debug)]
pub struct ReloadCoalescer {
    quiet: Duration,
    max_wait: Duration,
    state: Mutex<State>,
    /// Woken when a request arrives, so a waiting [`ReloadCoalescer::quiet_batch`] starts
    /// its timer.
    requested: Notify,
}

#[derive(Debug, Default)]
struct State {
    targets: Vec<ReloadTarget>,
    /// Target name and the certificates that requested it, in request order.
    pending: Vec<(String, Vec<String>)>,
    first_request: Option<Instant>,
    last_request: Option<Instant>,
}

/// Reload targets to run, each once.
#[derive(Debug, Clone, Default)]
pub struct ReloadBatch {
    /// In the order the targets are configured.
    pub requests: Vec<ReloadRequest>,
}

/// One target of a batch.
#[derive(Debug, Clone)]
pub struct ReloadRequest {
    /// The target as configured when the batch was taken.
    pub target: ReloadTarget,
    /// The certificates that requested it, each once, in request order.
    pub certificates: Vec<String>,
}

/// How one target of a batch went.
#[derive(Debug)]
pub struct ReloadOutcome {
    pub target: String,
    pub certificates: Vec<String>,
    pub result: Result<HookOutcome, HookError>,
}

impl ReloadOutcome {
    /// The target ran and succeeded.
    #[must_use]
    pub fn succeeded(&self) -> bool {
        self.result.as_ref().is_ok_and(|outcome| outcome.success)
    }
}

impl ReloadCoalescer {
    /// A coalescer for `targets` that runs a batch `quiet` after the last request (or
    /// [`DEFAULT_MAX_WAIT`] after the first).
    #[must_use]
    pub fn new(targets: Vec<ReloadTarget>, quiet: Duration) -> Self {
        Self {
            quiet,
            max_wait: DEFAULT_MAX_WAIT.max(quiet),
            state: Mutex::new(State {
                targets,
                ..State::default()
            }),
            requested: Notify::new(),
        }
    }

    /// Run a batch at the latest `max_wait` after its first request.
    #[must_use]
    pub fn with_max_wait(mut self, max_wait: Duration) -> Self {
        self.max_wait = max_wait;
        self
    }

    /// Replace the targets after a configuration reload. Pending requests for targets that
    /// no longer exist are dropped (with a warning); the others run with the new commands.
    pub fn set_targets(&self, targets: Vec<ReloadTarget>) {
        let mut state = self.lock();
        state.pending.retain(|(name, certificates)| {
            let known = targets.iter().any(|target| &target.name == name);
            if !known {
                tracing::warn!(
                    hook = format!("reload:{name}"),
                    certificates = certificates.join(" "),
                    "reload target was removed from the configuration; its pending reload is dropped"
                );
            }
            known
        });
        if state.pending.is_empty() {
            state.first_request = None;
            state.last_request = None;
        }
        state.targets = targets;
    }

    /// `certificate` was deployed and wants `targets` reloaded. Each target is pending at
    /// most once, whoever asks.
    ///
    /// # Errors
    /// [`HookError::UnknownReloadTargets`] naming the targets not configured here; the known
    /// ones are requested anyway.
    pub fn request<S: AsRef<str>>(
        &self,
        certificate: &str,
        targets: &[S],
    ) -> Result<(), HookError> {
        let mut unknown = Vec::new();
        {
            let mut state = self.lock();
            let now = Instant::now();
            for name in targets {
                let name = name.as_ref();
                if !state.targets.iter().any(|target| target.name == name) {
                    unknown.push(name.to_owned());
                    continue;
                }
                match state
                    .pending
                    .iter_mut()
                    .find(|(pending, _)| pending == name)
                {
                    Some((_, certificates)) => {
                        if !certificates.iter().any(|c| c == certificate) {
                            certificates.push(certificate.to_owned());
                        }
                    }
                    None => state
                        .pending
                        .push((name.to_owned(), vec![certificate.to_owned()])),
                }
                state.first_request.get_or_insert(now);
                state.last_request = Some(now);
            }
        }
        self.requested.notify_waiters();
        if unknown.is_empty() {
            Ok(())
        } else {
            Err(HookError::UnknownReloadTargets {
                certificate: certificate.to_owned(),
                names: unknown,
            })
        }
    }

    /// Target names with a pending request, in configured order.
    #[must_use]
    pub fn pending(&self) -> Vec<String> {
        let state = self.lock();
        state
            .targets
            .iter()
            .filter(|target| state.pending.iter().any(|(name, _)| name == &target.name))
            .map(|target| target.name.clone())
            .collect()
    }

    /// Wait until something is pending and the quiet period has passed, then take the batch.
    ///
    /// Cancel-safe: the batch is only taken when the future completes, so dropping it (a
    /// `select!` on shutdown) loses no request.
    pub async fn quiet_batch(&self) -> ReloadBatch {
        loop {
            let requested = self.requested.notified();
            tokio::pin!(requested);
            // Registered before looking at the state, so a request in between still wakes us.
            requested.as_mut().enable();
            let due = self.due();
            match due {
                None => requested.await,
                Some(due) if Instant::now() >= due => return self.take_batch(),
                Some(due) => {
                    tokio::select! {
                        () = &mut requested => {}
                        () = tokio::time::sleep_until(due) => {}
                    }
                }
            }
        }
    }

    /// Take whatever is pending now (possibly nothing).
    #[must_use]
    pub fn take_batch(&self) -> ReloadBatch {
        let mut state = self.lock();
        let mut pending = std::mem::take(&mut state.pending);
        state.first_request = None;
        state.last_request = None;
        let requests = state
            .targets
            .iter()
            .filter_map(|target| {
                let index = pending.iter().position(|(name, _)| name == &target.name)?;
                let (_, certificates) = pending.swap_remove(index);
                Some(ReloadRequest {
                    target: target.clone(),
                    certificates,
                })
            })
            .collect();
        ReloadBatch { requests }
    }

    /// Run what is pending now, without waiting for the quiet period: what `certkeeper
    /// renew` does after its pass.
    pub async fn flush(&self) -> Vec<ReloadOutcome> {
        self.take_batch().run().await
    }

    /// Run batches as they become due until `shutdown` completes, then flush what is
    /// pending, so certificates deployed just before a stop are still picked up. A batch
    /// that has started is finished even when `shutdown` completes meanwhile: killing a web
    /// server's reload halfway helps nobody. Outcomes are logged (see [`log_outcomes`]).
    pub async fn serve(&self, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let batch = tokio::select! {
                batch = self.quiet_batch() => batch,
                () = &mut shutdown => break,
            };
            log_outcomes(&batch.run().await);
        }
        log_outcomes(&self.flush().await);
    }

    /// When the pending batch is due: `quiet` after the last request, at most `max_wait`
    /// after the first. `None` when nothing is pending.
    fn due(&self) -> Option<Instant> {
        let state = self.lock();
        let quiet = state.last_request? + self.quiet;
        let latest = state.first_request? + self.max_wait;
        Some(quiet.min(latest))
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // No code path panics while holding the lock with the state half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ReloadBatch {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.requests.is_empty()
    }

    /// Run each target once, one after the other, labelled `reload:NAME`, with
    /// `CERTKEEPER_RENEWED` set to the certificates that requested it.
    pub async fn run(self) -> Vec<ReloadOutcome> {
        let mut outcomes = Vec::with_capacity(self.requests.len());
        for request in self.requests {
            let label = format!("reload:{}", request.target.name);
            let env = post_env(request.certificates.iter().map(String::as_str));
            let result = run(HookRun::new(&label, &request.target.hook, &env)).await;
            outcomes.push(ReloadOutcome {
                target: request.target.name,
                certificates: request.certificates,
                result,
            });
        }
        outcomes
    }
}

/// Log each outcome: success at info; a failure at error, because the web server now serves
/// an older certificate than the one on disk and a human has to look.
pub fn log_outcomes(outcomes: &[ReloadOutcome]) {
    for outcome in outcomes {
        let hook = format!("reload:{}", outcome.target);
        let certificates = outcome.certificates.join(" ");
        match &outcome.result {
            Ok(result) if result.success => tracing::info!(
                hook,
                certificates,
                duration = ?result.duration,
                "reload succeeded"
            ),
            Ok(result) => tracing::error!(
                hook,
                certificates,
                exit = result.exit,
                timed_out = result.timed_out,
                "reload {result}; the new certificates are installed but may not be served yet"
            ),
            Err(err) => tracing::error!(
                hook,
                certificates,
                error = %certkeeper_core::error_chain(err),
                "reload could not run; the new certificates are installed but may not be served yet"
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use certkeeper_core::{Hook, HookCommand};

    use super::*;

    fn target(name: &str) -> ReloadTarget {
        ReloadTarget {
            name: name.to_owned(),
            hook: Hook {
                command: HookCommand::Argv(vec!["true".to_owned()]),
                timeout: Duration::from_secs(5),
            },
        }
    }

    fn names(batch: &ReloadBatch) -> Vec<(&str, Vec<&str>)> {
        batch
            .requests
            .iter()
            .map(|request| {
                let certificates = request.certificates.iter().map(String::as_str).collect();
                (request.target.name.as_str(), certificates)
            })
            .collect()
    }

    const QUIET: Duration = Duration::from_secs(2);
    const STEP: Duration = Duration::from_millis(300);

    #[tokio::test(start_paused = true)]
    async fn ten_requests_in_the_quiet_period_make_one_batch() {
        let coalescer = ReloadCoalescer::new(vec![target("nginx")], QUIET);
        let start = Instant::now();
        let requests = async {
            for i in 0..10 {
                coalescer
                    .request(&format!("c{i}"), &["nginx"])
                    .expect("known target");
                tokio::time::sleep(STEP).await;
            }
        };
        let (batch, ()) = tokio::join!(coalescer.quiet_batch(), requests);
        let certificates: Vec<String> = (0..10).map(|i| format!("c{i}")).collect();
        let certificates: Vec<&str> = certificates.iter().map(String::as_str).collect();
        assert_eq!(names(&batch), [("nginx", certificates)]);
        // The last request came at 9 steps; the batch is due a quiet period later.
        assert_eq!(start.elapsed(), STEP * 9 + QUIET);
        assert!(coalescer.pending().is_empty());
        assert!(coalescer.take_batch().is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn each_target_once_in_configured_order() {
        let coalescer = ReloadCoalescer::new(vec![target("postfix"), target("nginx")], QUIET);
        coalescer.request("www", &["nginx"]).expect("known");
        coalescer
            .request("mail", &["nginx", "postfix"])
            .expect("known");
        coalescer.request("www", &["nginx"]).expect("known");
        assert_eq!(coalescer.pending(), ["postfix", "nginx"]);
        let batch = coalescer.quiet_batch().await;
        assert_eq!(
            names(&batch),
            [("postfix", vec!["mail"]), ("nginx", vec!["www", "mail"])]
        );
    }

    #[tokio::test(start_paused = true)]
    async fn a_steady_stream_waits_at_most_max_wait() {
        let coalescer = ReloadCoalescer::new(vec![target("nginx")], QUIET)
            .with_max_wait(Duration::from_millis(10_500));
        let start = Instant::now();
        let requests = async {
            for i in 0..30 {
                coalescer
                    .request(&format!("c{i}"), &["nginx"])
                    .expect("known");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        };
        let batch = tokio::select! {
            batch = coalescer.quiet_batch() => batch,
            () = requests => panic!("the batch never became due"),
        };
        // Requests at 0 s, 1 s, ... 10 s; due 10.5 s after the first, not 2 s after a last.
        assert_eq!(start.elapsed(), Duration::from_millis(10_500));
        assert_eq!(batch.requests[0].certificates.len(), 11);
    }

    #[tokio::test(start_paused = true)]
    async fn nothing_pending_means_no_batch() {
        let coalescer = ReloadCoalescer::new(vec![target("nginx")], QUIET);
        let waited = tokio::time::timeout(Duration::from_secs(3600), coalescer.quiet_batch()).await;
        assert!(waited.is_err(), "a batch without requests: {waited:?}");
    }

    #[tokio::test(start_paused = true)]
    async fn unknown_and_removed_targets() {
        let coalescer = ReloadCoalescer::new(vec![target("nginx"), target("apache")], QUIET);
        let err = coalescer
            .request("www", &["nginx", "haproxy"])
            .expect_err("haproxy is not configured");
        assert_eq!(
            err.to_string(),
            "certificate www requested unknown reload targets: haproxy"
        );
        coalescer.request("mail", &["apache"]).expect("known");
        assert_eq!(coalescer.pending(), ["nginx", "apache"]);
        coalescer.set_targets(vec![target("nginx")]);
        assert_eq!(coalescer.pending(), ["nginx"]);
        assert_eq!(names(&coalescer.take_batch()), [("nginx", vec!["www"])]);
    }
}
