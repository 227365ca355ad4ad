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

/// Leases in `fleet`, each for `lease`.
#[derive(Debug, Clone)]
pub struct FleetCoordination {
    fleet: Fleet,
    lease: Duration,
    guards: LineageGuards,
}

impl FleetCoordination {
    /// `guards`: shared with this node's follower, whose syncs never run with an attempt.
    #[must_use]
    pub fn new(fleet: Fleet, lease: Duration, guards: LineageGuards) -> Self {
        Self {
            fleet,
            lease,
            guards,
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
    /// Keeps this node's follower from syncing the lineage meanwhile.
    _guard: LineageGuard,
}

impl FleetClaim {
    fn start(fleet: Fleet, lease: Lease, ttl: Duration, guard: LineageGuard) -> Self {
        let lost = CancellationToken::new();
        let shared = Arc::new(Mutex::new(lease));
        let renewer = tokio::spawn(keep(fleet.clone(), Arc::clone(&shared), ttl, lost.clone()));
        Self {
            fleet,
            lease: shared,
            lost,
            renewer,
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
                tracing::warn!(cert = %current.lineage, error = error_chain(&err), "cannot renew the fleet lease; trying again");
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

    fn solver(&self, solver: Arc<dyn ChallengeSolver>) -> Arc<dyn ChallengeSolver> {
        Arc::new(FleetSolver {
            inner: solver,
            fleet: self.fleet.clone(),
            lease: Arc::clone(&self.lease),
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
}

impl ChallengeSolver for FleetSolver {
    fn kind(&self) -> ChallengeKind {
        self.inner.kind()
    }

    fn present<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a> {
        Box::pin(async move {
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
        let local = self.inner.cleanup(answer);
        let withdraw = match answer {
            ChallengeAnswer::Http01 { token, .. } => Some((self.fleet.clone(), token.clone())),
            ChallengeAnswer::Dns01 { .. } => None,
        };
        Box::pin(async move {
            if let Some((fleet, token)) = withdraw
                && let Err(err) = fleet.withdraw_challenge(&token).await
            {
                tracing::warn!(
                    error = error_chain(&err),
                    "cannot withdraw an HTTP-01 key authorisation from the fleet; it is removed when its order is"
                );
            }
            local.await
        })
    }
}
