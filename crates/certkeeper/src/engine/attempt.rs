//! One attempt at one certificate, the same for `certkeeper renew` and the daemon: the pre
//! hooks, the order ([`job::obtain`]: resume or place, persist, validate, verify, install),
//! the record the planner reads next time, the log line of an installed certificate, and the
//! deploy hooks once the certificate is live. A failure is an [`AttemptError`], recorded on
//! the lineage by its class and reported once by the caller, rendered by
//! [`error_chain`]: the daemon logs it with [`log_failure`] (its level says whether a human
//! must act), `renew` prints it as the command's error line.
//!
//! Callers decide *when* (the planner) and *how many at once* (`Limits`); what happens inside
//! an attempt is decided here only, so `renew` and `run` cannot drift apart. Everything it
//! does outside the store goes through the ports of its [`JobContext`] (CA, challenge solver,
//! hooks), so its tests run it on scripted ones; [`EngineRunner`] is the daemon's real
//! [`Runner`]: this attempt.

use std::time::SystemTime;

use certkeeper_core::hooks::DeployAction;
use certkeeper_core::schedule::backoff_until;
use certkeeper_core::{CertificateSpec, Inventory, LifecycleAction, OrderPurpose};
use certkeeper_store::{AttemptRecord, FailureClass, Lineage, LiveCert};

use crate::engine::deploy;
use crate::engine::error::{AttemptError, HookFailure};
use crate::engine::job::{self, JobContext};
use crate::engine::plan::{LineageView, attempts_from};
use crate::engine::ports::{AttemptInput, Claimed, Outcome, Runner, Task};
use crate::report::{error_chain, timestamp};

/// Everything one attempt needs.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    pub inventory: &'a Inventory,
    pub ctx: &'a JobContext,
    pub spec: &'a CertificateSpec,
    pub purpose: OrderPurpose,
    /// `false` for `renew --no-hooks`: no pre, deploy or reload hooks.
    pub run_hooks: bool,
    /// `renew --new-key`: a new order gets a new key even with `reuse_key`.
    pub new_key: bool,
    /// `Some(planned)`: the daemon planned this attempt when the live certificate had notAfter
    /// `planned` (`None`: none was live). In a fleet, another node's certificate may have been
    /// installed here since; the attempt then orders nothing. `None`: no such check (`renew`).
    pub planned_live: Option<Option<SystemTime>>,
}

/// A renewal when a certificate is live (with `action` overriding the configured lifecycle
/// action), else a first issuance.
pub fn purpose(
    spec: &CertificateSpec,
    renewal: bool,
    action: Option<LifecycleAction>,
) -> OrderPurpose {
    if renewal {
        OrderPurpose::Renewal(action.unwrap_or(spec.action))
    } else {
        OrderPurpose::FirstIssuance
    }
}

impl Attempt<'_> {
    /// Run the attempt to its end on the lineage as it is on disk now. Never fails: every way
    /// it can end is in the [`Outcome`].
    pub async fn run(self) -> Outcome {
        match self.ctx.store.lineage(&self.spec.name) {
            Ok(lineage) => self.run_on(lineage).await,
            // Nothing can be recorded either; the error names the file to fix.
            Err(err) => Outcome {
                result: Err(err.into()),
                deploy: Ok(()),
            },
        }
    }

    /// Run the attempt on `lineage`, loaded by the caller for its plan (the state is read
    /// once per pass), recording every step on it.
    pub async fn run_on(self, mut lineage: Lineage) -> Outcome {
        let spec = self.spec;
        let result = match self.inventory.ca(&spec.ca) {
            None => Err(AttemptError::UnknownCa {
                name: spec.name.clone(),
                ca: spec.ca.clone(),
            }),
            // Claimed first: a node of a fleet whose certificate another node is renewing
            // runs no hooks for it.
            Some(ca) => match self.ctx.coordination.claim(&spec.name).await {
                Err(err) => Err(AttemptError::Fleet(err)),
                Ok(Claimed::Elsewhere { owner, until }) => {
                    Err(AttemptError::Elsewhere { owner, until })
                }
                Ok(Claimed::Held(claim)) if self.superseded(&lineage) => {
                    claim.release().await;
                    Err(AttemptError::Superseded)
                }
                Ok(Claimed::Held(claim)) => 'held: {
                    // The daemon's own plans wait for the fleet's backoff; `renew` run by
                    // hand does not.
                    let shared = claim.shared_attempts().await.ok().flatten();
                    if self.planned_live.is_some()
                        && let Some(until) = shared.as_ref().and_then(|s| held_back(s, spec))
                    {
                        claim.release().await;
                        break 'held Err(AttemptError::FleetBackoff { until });
                    }
                    let pre = if self.run_hooks {
                        self.ctx.hooks.pre(self.inventory, spec).await
                    } else {
                        Ok(())
                    };
                    let obtained = match pre {
                        Ok(()) => {
                            job::obtain(
                                self.ctx,
                                claim.as_ref(),
                                &mut lineage,
                                self.inventory,
                                ca,
                                spec,
                                self.purpose,
                                self.new_key,
                            )
                            .await
                        }
                        Err(failure) => Err(AttemptError::PreHook(failure)),
                    };
                    // Recorded before the lease goes: the fleet's follower leaves a lineage
                    // alone while this node holds its lease. The others learn the outcome, so
                    // a failure's backoff is the whole fleet's.
                    job::record(&mut lineage, &obtained, SystemTime::now());
                    if let (Err(failure), Some(shared)) = (&obtained, &shared)
                        && failure.class().is_failure()
                        && let Err(err) = lineage.continue_streak(shared.consecutive_failures)
                    {
                        tracing::warn!(cert = %spec.name, error = error_chain(&err), "cannot record the fleet's failure streak");
                    }
                    if !matches!(
                        &obtained,
                        Err(AttemptError::Stopping | AttemptError::ClaimLost { .. })
                    ) && let Err(err) = claim.share_attempts(&lineage.state().attempts).await
                    {
                        tracing::warn!(cert = %spec.name, error = error_chain(&err), "cannot record the attempt in the fleet");
                    }
                    claim.release().await;
                    return self.deploy(lineage, obtained).await;
                }
            },
        };
        job::record(&mut lineage, &result, SystemTime::now());
        self.deploy(lineage, result).await
    }

    /// The deploy hooks of what `result` installed, recorded on `lineage`.
    async fn deploy(
        &self,
        mut lineage: Lineage,
        result: Result<LiveCert, AttemptError>,
    ) -> Outcome {
        let spec = self.spec;
        let deploy = match &result {
            Ok(installed) => {
                tracing::info!(
                    cert = %spec.name,
                    serial = %installed.serial_hex,
                    not_after = %timestamp(installed.observed.not_after),
                    live_dir = %installed.live_dir.display(),
                    "certificate installed"
                );
                if self.run_hooks {
                    let deployed = deploy::deploy(
                        self.ctx.hooks.as_ref(),
                        self.inventory,
                        spec,
                        installed,
                        deploy::deploy_action(self.purpose),
                    )
                    .await;
                    let failure = deployed.as_ref().err().map(ToString::to_string);
                    deploy::record(&mut lineage, failure.as_deref());
                    deployed
                } else {
                    Ok(())
                }
            }
            Err(_) => Ok(()),
        };
        Outcome { result, deploy }
    }

    /// Whether the live certificate is no longer the one the attempt was planned on: another
    /// node's, installed here since.
    fn superseded(&self, lineage: &Lineage) -> bool {
        let Some(planned) = self.planned_live else {
            return false;
        };
        let live = lineage
            .live_certificate()
            .ok()
            .flatten()
            .map(|live| live.observed.not_after);
        live != planned
    }

    /// Run the deploy hooks of the live certificate again (a pending deploy), recording the
    /// outcome on the lineage as it is on disk now.
    pub async fn redeploy(self, live: &LiveCert) -> Result<(), HookFailure> {
        tracing::info!(cert = %self.spec.name, "running the deploy hooks again");
        let deployed = deploy::deploy(
            self.ctx.hooks.as_ref(),
            self.inventory,
            self.spec,
            live,
            DeployAction::Renew,
        )
        .await;
        let failure = deployed.as_ref().err().map(ToString::to_string);
        deploy::record_on_disk(&self.ctx.store, &self.spec.name, failure.as_deref());
        deployed
    }
}

/// When the fleet's record of the certificate's attempts (another node's failures) puts the
/// next attempt at a time still to come (the backoff the planner counts, or the CA's
/// Retry-After): that time. Without a readable record, nothing holds back.
fn held_back(shared: &AttemptRecord, spec: &CertificateSpec) -> Option<SystemTime> {
    let attempts = attempts_from(shared, spec);
    let until = backoff_until(&spec.name, &attempts, &spec.schedule.backoff)
        .into_iter()
        .chain(attempts.retry_not_before)
        .max()?;
    (until > SystemTime::now()).then_some(until)
}

/// The daemon's real [`Runner`]: the engine's [`Attempt`] on the ports of `ctx`.
#[derive(Debug, Clone)]
pub struct EngineRunner {
    pub ctx: JobContext,
}

impl Runner for EngineRunner {
    fn attempt(&self, input: AttemptInput) -> Task<Outcome> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            Attempt {
                inventory: &input.inventory,
                ctx: &ctx,
                spec: &input.spec,
                purpose: input.purpose,
                run_hooks: true,
                new_key: input.new_key,
                planned_live: Some(input.planned_live),
            }
            .run()
            .await
        })
    }

    fn redeploy(&self, input: AttemptInput) -> Task<()> {
        let ctx = self.ctx.clone();
        Box::pin(async move {
            let view = LineageView::load(&ctx.store, &input.spec.name);
            if let (true, Some(live)) = (view.record.pending_deploy, &view.live) {
                let attempt = Attempt {
                    inventory: &input.inventory,
                    ctx: &ctx,
                    spec: &input.spec,
                    purpose: purpose(&input.spec, true, None),
                    run_hooks: true,
                    new_key: false,
                    planned_live: None,
                };
                // A failure stays recorded as pending and is retried later.
                let _ = attempt.redeploy(live).await;
            }
        })
    }
}

/// Whether a failed attempt is one a human must act on: a problem that will not go away by
/// itself, or a certificate running out of time (`urgent`: inside its urgent threshold, or
/// missing). [`log_failure`] logs exactly these at `error`, and they are the `failed`
/// notifications.
#[must_use]
pub fn needs_human(failure: &AttemptError, urgent: bool) -> bool {
    if matches!(failure, AttemptError::Stopping) {
        return false;
    }
    match failure.class() {
        FailureClass::WaitingOnCa | FailureClass::Elsewhere { .. } => false,
        FailureClass::NeedsHuman => true,
        FailureClass::Transient { .. } | FailureClass::RateLimited { .. } => urgent,
    }
}

/// The daemon's log line for a failed attempt: `error` when [`needs_human`].
pub fn log_failure(spec: &CertificateSpec, failure: &AttemptError, urgent: bool) {
    if matches!(failure, AttemptError::Stopping) {
        tracing::info!(cert = %spec.name, "attempt stopped at a safe point; certkeeper is stopping");
        return;
    }
    let error = error_chain(failure);
    let class = failure.class();
    if matches!(class, FailureClass::WaitingOnCa) {
        tracing::info!(
            cert = %spec.name,
            error,
            "the CA has not finished the order yet; it is kept and checked again later"
        );
    } else if matches!(class, FailureClass::Elsewhere { .. }) {
        tracing::info!(
            cert = %spec.name,
            error,
            "another node of the fleet is renewing this certificate"
        );
    } else if !needs_human(failure, urgent) {
        tracing::warn!(
            cert = %spec.name,
            error,
            "renewal failed; the certificate is still valid; will retry with backoff"
        );
    } else if matches!(class, FailureClass::NeedsHuman) {
        tracing::error!(
            cert = %spec.name,
            error,
            "attempt failed and will not succeed by itself; fix the cause (the live certificate, if any, stays; will retry with backoff)"
        );
    } else {
        tracing::error!(
            cert = %spec.name,
            error,
            "certificate not obtained close to expiry (or missing); will retry with backoff"
        );
    }
}

#[cfg(test)]
mod tests;
