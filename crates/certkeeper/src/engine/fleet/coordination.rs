//! The fleet's [`Coordination`]: a certificate's lease in the database decides which node
//! orders it.
//!
//! A claim is a lease taken for [`ClusterSpec::lease`](certkeeper_core::cluster::ClusterSpec)
//! and renewed every third of that while the attempt lasts. It is lost, and the attempt stops
//! at its next safe point, when a renewal is refused (another node took the lease over after
//! it expired) or when renewals kept failing until the lease ran out by this node's own
//! count (the database unreachable: then nobody can write for it, and the next holder resumes
//! the order by URL). Every write made for the certificate (the order, the HTTP-01 key
//! authorisations, the new version) is fenced by the database with the lease's generation,
//! so a node that carried on regardless (paused past its lease, say) is refused there.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime};

use certkeeper_core::ports::{
    ChallengeAnswer, ChallengeKind, SolverError, SolverFuture, SolverStep,
};
use certkeeper_core::{CertName, ChallengeSolver, Secret};
use certkeeper_fleet::{Fleet, FleetError, Lease, OrderRecord, VersionRecord};
use certkeeper_store::{AttemptRecord, CheckedIssue};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::engine::fleet::{LineageGuard, LineageGuards};
use crate::engine::ports::{
    Claim, Claimed, Coordination, LeftOrder, OrderLocation, PortFuture, PublishedVersion,
};
use crate::report::error_chain;

/// The key of the attempts record in a lineage's state in the fleet (`certkeeper_state`).
const ATTEMPTS: &str = "attempts";

/// How long after publishing an HTTP-01 key authorisation the CA is told to validate: the
/// other nodes learn of it by a notification, which arrives within milliseconds of the commit;
/// this leaves room for a busy database.
const PROPAGATION_MARGIN: Duration = Duration::from_secs(1);

/// How often a node that could not withdraw an HTTP-01 key authorisation from the fleet (the
/// database away) tries again.
const WITHDRAW_RETRY: Duration = Duration::from_secs(5);

/// How long such a key authorisation is served at most: the CA's validation is long over.
const STALE_CHALLENGE: Duration = Duration::from_secs(600);

/// Leases in `fleet`, each for `lease`.
#[derive(Debug, Clone)]
pub struct FleetCoordination {
    fleet: Fleet,
    lease: Duration,
    guards: LineageGuards,
    deferred: DeferredWithdrawals,
}

impl FleetCoordination {
    /// `guards`: shared with this node's follower, whose syncs never run with an attempt.
    #[must_use]
    pub fn new(fleet: Fleet, lease: Duration, guards: LineageGuards) -> Self {
        Self {
            fleet,
            lease,
            guards,
            deferred: DeferredWithdrawals::default(),
        }
    }
}

impl Coordination for FleetCoordination {
    fn claim<'a>(&'a self, cert: &'a CertName) -> PortFuture<'a, Result<Claimed, FleetError>> {
        Box::pin(async move {
            let Some(lease) = self.fleet.acquire(cert.as_str(), self.lease).await? else {
                let held = self
                    .fleet
                    .leases()
                    .await?
                    .into_iter()
                    .find(|lease| lease.lineage == cert.as_str());
                // Gone between the two reads: it is free again; the next pass claims it.
                let (owner, until) = held.map_or_else(
                    || (String::from("another node"), SystemTime::now()),
                    |lease| (lease.owner, lease.expires_at),
                );
                return Ok(Claimed::Elsewhere { owner, until });
            };
            tracing::debug!(cert = %cert, generation = lease.generation, "fleet lease taken");
            let guard = self.guards.hold(cert).await;
            Ok(Claimed::Held(Box::new(FleetClaim::start(
                self.fleet.clone(),
                lease,
                self.lease,
                guard,
                self.deferred.clone(),
            ))))
        })
    }
}

/// One attempt's lease, renewed in the background until released.
#[derive(Debug)]
struct FleetClaim {
    fleet: Fleet,
    lease: Arc<Mutex<Lease>>,
    lost: CancellationToken,
    renewer: JoinHandle<()>,
    deferred: DeferredWithdrawals,
    /// Keeps this node's follower from syncing the lineage meanwhile.
    _guard: LineageGuard,
}

impl FleetClaim {
    fn start(
        fleet: Fleet,
        lease: Lease,
        ttl: Duration,
        guard: LineageGuard,
        deferred: DeferredWithdrawals,
    ) -> Self {
        let lost = CancellationToken::new();
        let shared = Arc::new(Mutex::new(lease));
        let renewer = tokio::spawn(keep(fleet.clone(), Arc::clone(&shared), ttl, lost.clone()));
        Self {
            fleet,
            lease: shared,
            lost,
            renewer,
            deferred,
            _guard: guard,
        }
    }

    fn lease(&self) -> Lease {
        self.lease
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// Renew `lease` every third of `ttl`; cancel `lost` when it is lost, or when renewals failed
/// until it ran out by this node's count.
async fn keep(fleet: Fleet, lease: Arc<Mutex<Lease>>, ttl: Duration, lost: CancellationToken) {
    let mut good_until = Instant::now() + ttl;
    loop {
        tokio::time::sleep(ttl / 3).await;
        let current = lease.lock().unwrap_or_else(PoisonError::into_inner).clone();
        match fleet.renew(&current, ttl).await {
            Ok(renewed) => {
                good_until = Instant::now() + ttl;
                *lease.lock().unwrap_or_else(PoisonError::into_inner) = renewed;
            }
            Err(err) if err.is_unavailable() && Instant::now() < good_until => {
                tracing::debug!(cert = %current.lineage, error = error_chain(&err), "cannot renew the fleet lease; trying again");
            }
            Err(err) => {
                tracing::warn!(cert = %current.lineage, error = error_chain(&err), "the fleet lease is lost; stopping work on this certificate");
                lost.cancel();
                return;
            }
        }
    }
}

impl Claim for FleetClaim {
    fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    fn published<'a>(
        &'a self,
        local_serial: Option<&'a str>,
    ) -> PortFuture<'a, Result<Option<PublishedVersion>, FleetError>> {
        Box::pin(async move {
            let lineage = self.lease().lineage;
            let latest = self.fleet.latest_version(&lineage).await?;
            Ok(latest
                .filter(|stored| Some(stored.record.serial.as_str()) != local_serial)
                .map(|stored| PublishedVersion {
                    serial_hex: stored.record.serial,
                    key_pem: stored.record.key_pem,
                    fullchain_pem: stored.record.fullchain_pem,
                    published_by: stored.published_by,
                }))
        })
    }

    fn shared_attempts(&self) -> PortFuture<'_, Result<Option<AttemptRecord>, FleetError>> {
        Box::pin(async move {
            let lineage = self.lease().lineage;
            let state = self.fleet.state(&lineage).await?;
            // A record this version cannot read is as good as none: the node's own backoff
            // still applies.
            Ok(state
                .and_then(|state| state.get(ATTEMPTS).cloned())
                .and_then(|attempts| serde_json::from_value(attempts).ok()))
        })
    }

    fn share_attempts<'a>(
        &'a self,
        record: &'a AttemptRecord,
    ) -> PortFuture<'a, Result<(), FleetError>> {
        Box::pin(async move {
            let state = serde_json::json!({ ATTEMPTS: record });
            self.fleet.save_state(&self.lease(), &state).await
        })
    }

    fn order_left(&self) -> PortFuture<'_, Result<Option<LeftOrder>, FleetError>> {
        Box::pin(async move {
            let lineage = self.lease().lineage;
            Ok(self
                .fleet
                .order_in_flight(&lineage)
                .await?
                .map(|left| LeftOrder {
                    location: OrderLocation {
                        order_url: left.order.order_url,
                        directory_url: left.order.directory_url,
                    },
                    key_pem: left.order.key_pem,
                    placed_by: left.owner,
                }))
        })
    }

    fn record_order<'a>(
        &'a self,
        location: &'a OrderLocation,
        key_pem: &'a Secret,
    ) -> PortFuture<'a, Result<(), FleetError>> {
        Box::pin(async move {
            let order = OrderRecord {
                order_url: location.order_url.clone(),
                directory_url: location.directory_url.clone(),
                key_pem: key_pem.clone(),
            };
            self.fleet.record_order(&self.lease(), &order).await
        })
    }

    fn forget_order(&self) -> PortFuture<'_, Result<(), FleetError>> {
        Box::pin(async move { self.fleet.clear_order(&self.lease()).await })
    }

    fn solver(&self, solver: Arc<dyn ChallengeSolver>) -> Arc<dyn ChallengeSolver> {
        Arc::new(FleetSolver {
            inner: solver,
            fleet: self.fleet.clone(),
            lease: Arc::clone(&self.lease),
            deferred: self.deferred.clone(),
        })
    }

    fn publish<'a>(
        &'a self,
        issue: &'a CheckedIssue,
        key_pem: &'a Secret,
    ) -> PortFuture<'a, Result<(), FleetError>> {
        Box::pin(async move {
            let lease = self.lease();
            let record = VersionRecord {
                serial: issue.serial_hex.clone(),
                cert_pem: issue.cert_pem.clone(),
                chain_pem: issue.chain_pem.clone(),
                fullchain_pem: issue.fullchain_pem.clone(),
                key_pem: key_pem.clone(),
                not_after: issue.not_after,
            };
            let version = self.fleet.publish_version(&lease, &record).await?;
            tracing::info!(cert = %lease.lineage, version, serial = %issue.serial_hex, "published to the fleet");
            // The order is done; a failure here only leaves a finished order for the next
            // holder, who finds its certificate published.
            if let Err(err) = self.fleet.clear_order(&lease).await {
                tracing::warn!(cert = %lease.lineage, error = error_chain(&err), "cannot clear the finished order in the fleet");
            }
            Ok(())
        })
    }

    fn release(self: Box<Self>) -> PortFuture<'static, ()> {
        Box::pin(async move {
            self.renewer.abort();
            let lease = self.lease();
            if let Err(err) = self.fleet.release(&lease).await {
                tracing::debug!(cert = %lease.lineage, error = error_chain(&err), "fleet lease not released (it lapses by itself)");
            }
        })
    }
}

impl Drop for FleetClaim {
    fn drop(&mut self) {
        self.renewer.abort();
    }
}

/// A solver whose HTTP-01 key authorisations every node of the fleet serves: published in the
/// database (fenced by the lease) after the local solver presented them, withdrawn at cleanup.
struct FleetSolver {
    inner: Arc<dyn ChallengeSolver>,
    fleet: Fleet,
    lease: Arc<Mutex<Lease>>,
    deferred: DeferredWithdrawals,
}

impl ChallengeSolver for FleetSolver {
    fn kind(&self) -> ChallengeKind {
        self.inner.kind()
    }

    fn present<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        Box::pin(async move {
            if let ChallengeAnswer::Http01 { token, .. } = answer {
                // An earlier attempt's cleanup still waiting for the database: this attempt
                // serves the token now, and withdraws it in its own cleanup.
                self.deferred.take_over(token);
            }
            self.inner.present(answer).await?;
            if let ChallengeAnswer::Http01 {
                token,
                key_authorization,
                ..
            } = answer
            {
                let lease = self
                    .lease
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .clone();
                self.fleet
                    .publish_challenge(&lease, token, key_authorization)
                    .await
                    .map_err(|err| SolverError::failed(SolverStep::Present, answer, err))?;
            }
            Ok(())
        })
    }

    fn ready<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        Box::pin(async move {
            self.inner.ready(answer).await?;
            if matches!(answer, ChallengeAnswer::Http01 { .. }) {
                tokio::time::sleep(PROPAGATION_MARGIN).await;
            }
            Ok(())
        })
    }

    fn cleanup(&self, answer: &ChallengeAnswer) -> SolverFuture<'static> {
        let ChallengeAnswer::Http01 { token, .. } = answer else {
            return self.inner.cleanup(answer);
        };
        let (fleet, inner) = (self.fleet.clone(), Arc::clone(&self.inner));
        let (answer, token) = (answer.clone(), token.clone());
        let deferred = self.deferred.clone();
        Box::pin(async move {
            match fleet.withdraw_challenge(&token).await {
                Ok(()) => inner.cleanup(&answer).await,
                // The CA may be validating it right now (this cleanup may follow a lease lost
                // to the outage), and the other nodes keep serving it: so does this one, until
                // the fleet has withdrawn it.
                Err(err) if err.is_unavailable() => {
                    tracing::warn!(
                        error = error_chain(&err),
                        "cannot withdraw an HTTP-01 key authorisation from the fleet; serving it until the database is back"
                    );
                    let taken_over = deferred.defer(&token);
                    tokio::spawn(withdraw_later(
                        fleet, inner, answer, token, deferred, taken_over,
                    ));
                    Ok(())
                }
                Err(err) => {
                    tracing::warn!(
                        error = error_chain(&err),
                        "cannot withdraw an HTTP-01 key authorisation from the fleet; it is withdrawn with its order"
                    );
                    inner.cleanup(&answer).await
                }
            }
        })
    }
}

/// Withdraw `token` from the fleet once the database answers again, then stop serving it here;
/// after [`STALE_CHALLENGE`] stop serving it here regardless (the CA has long decided), and
/// leave the fleet's copy to be cleared with its order. Nothing, once `taken_over` (a new
/// attempt of this node presents the token again).
async fn withdraw_later(
    fleet: Fleet,
    inner: Arc<dyn ChallengeSolver>,
    answer: ChallengeAnswer,
    token: String,
    deferred: DeferredWithdrawals,
    taken_over: CancellationToken,
) {
    let give_up = Instant::now() + STALE_CHALLENGE;
    loop {
        tokio::select! {
            () = taken_over.cancelled() => return,
            () = tokio::time::sleep(WITHDRAW_RETRY) => {}
        }
        match fleet.withdraw_challenge(&token).await {
            Ok(()) => break,
            Err(err) if err.is_unavailable() && Instant::now() < give_up => {}
            Err(err) => {
                tracing::debug!(
                    error = error_chain(&err),
                    "HTTP-01 key authorisation left in the fleet; it is withdrawn with its order"
                );
                break;
            }
        }
    }
    if !deferred.finish(&token, &taken_over) {
        return;
    }
    if let Err(err) = inner.cleanup(&answer).await {
        tracing::warn!(
            error = error_chain(&err),
            "cannot clean up an HTTP-01 challenge"
        );
    }
}

/// This node's HTTP-01 cleanups waiting for the database ([`withdraw_later`]), by token.
#[derive(Debug, Clone, Default)]
struct DeferredWithdrawals(Arc<Mutex<HashMap<String, CancellationToken>>>);

impl DeferredWithdrawals {
    /// Defer the cleanup of `token`; the returned token is cancelled if it is taken over.
    fn defer(&self, token: &str) -> CancellationToken {
        let taken_over = CancellationToken::new();
        let earlier = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_owned(), taken_over.clone());
        if let Some(earlier) = earlier {
            earlier.cancel();
        }
        taken_over
    }

    /// The deferred cleanup of `token` ends: whether it is still its to do (not taken over).
    fn finish(&self, token: &str, taken_over: &CancellationToken) -> bool {
        let mut deferred = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        if taken_over.is_cancelled() {
            return false;
        }
        deferred.remove(token);
        true
    }

    /// A new attempt serves `token`: the deferred cleanup, if any, must not retract it.
    fn take_over(&self, token: &str) {
        let deferred = self
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(token);
        if let Some(deferred) = deferred {
            deferred.cancel();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::DeferredWithdrawals;

    #[test]
    fn a_deferred_cleanup_is_done_once_unless_a_new_attempt_took_the_token_over() {
        let deferred = DeferredWithdrawals::default();
        let first = deferred.defer("tok");
        assert!(deferred.finish("tok", &first), "nobody took it over");

        let second = deferred.defer("tok");
        deferred.take_over("tok");
        assert!(second.is_cancelled());
        assert!(
            !deferred.finish("tok", &second),
            "the new attempt serves it"
        );

        // Deferred twice (two attempts' cleanups): only the newer one is left to do.
        let older = deferred.defer("tok");
        let newer = deferred.defer("tok");
        assert!(!deferred.finish("tok", &older));
        assert!(deferred.finish("tok", &newer));
    }
}
