//! One certificate attempt's order, shared by `certkeeper renew` and the daemon: resume the
//! order in flight or place a new one, persist it before waiting on the CA, verify and install
//! the result, and record the outcome the scheduler plans from. Every change to the lineage's
//! state goes through its [`Lineage`] transitions, loaded once for the attempt.
//!
//! Persisting the order's location and its key *before* waiting is what lets a restart (or a
//! crash) pick the same order up by its URL instead of ordering twice: a DigiCert order can
//! wait a day for approval.
//!
//! The CA and the challenge solver are ports ([`JobContext`]); the decisions on what the CA
//! answers are made here, the same for the real CA and a scripted one: register again (once)
//! after `accountDoesNotExist`, forget an order the CA refused, keep one it is still working
//! on, stop at the safe points.

use std::sync::Arc;
use std::time::SystemTime;

use certkeeper_acme::{CaFailure, PollPolicy};
use certkeeper_core::lifecycle::order_directory_url;
use certkeeper_core::{CaSpec, CertificateSpec, Inventory, OrderPurpose, Secret};
use certkeeper_hooks::ReloadCoalescer;
use certkeeper_store::{Lineage, LiveCert, PendingOrder, Store};
use tokio_util::sync::CancellationToken;

use crate::engine::ca::AcmeCa;
use crate::engine::deploy::ProcessHooks;
/// Defined with the engine's other errors; named here, where the attempt's callers find it.
pub use crate::engine::error::AttemptError;
use crate::engine::ports::{
    CaAccount, CaOrder, CertificateAuthority, Hooks, NewOrder, OrderLocation, Solvers,
};
use crate::engine::solvers::ConfiguredSolvers;
use crate::report::error_chain;

/// Everything one attempt needs from its surroundings: the store its lineage lives in, and
/// the ports (see [`ports`](super::ports)) it orders, answers challenges and runs hooks
/// through.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub store: Store,
    pub ca: Arc<dyn CertificateAuthority>,
    pub solvers: Arc<dyn Solvers>,
    pub hooks: Arc<dyn Hooks>,
    /// The lifecycle's soft token: cancelled, an attempt stops at its next safe point.
    pub stop: CancellationToken,
}

impl JobContext {
    /// The real ports: ACME CAs waiting on each order as `poll` says, with their accounts in
    /// `store`; the challenge solvers of the inventory (`solvers`, made by the caller, which
    /// serves their embedded responder and removes stale DNS-01 records with them); the
    /// operator's hooks, reloads requested from `reloads`.
    pub fn real(
        store: Store,
        poll: PollPolicy,
        solvers: Arc<ConfiguredSolvers>,
        reloads: Arc<ReloadCoalescer>,
        stop: CancellationToken,
    ) -> Self {
        Self {
            ca: Arc::new(AcmeCa::new(store.clone(), poll)),
            solvers,
            hooks: Arc::new(ProcessHooks::new(reloads)),
            store,
            stop,
        }
    }
}

/// Obtain and install a certificate for `spec` of `inventory` from `ca`, recording the order on
/// `lineage`.
pub async fn obtain(
    ctx: &JobContext,
    lineage: &mut Lineage,
    inventory: &Inventory,
    ca: &CaSpec,
    spec: &CertificateSpec,
    purpose: OrderPurpose,
) -> Result<LiveCert, AttemptError> {
    let solver = ctx.solvers.for_certificate(inventory, spec)?;
    let account = ctx.ca.account(ca).await?;
    // A safe point: nothing is placed yet.
    if ctx.stop.is_cancelled() {
        return Err(AttemptError::Stopping);
    }
    // Declared before the order that may borrow it: the account registered again when the CA
    // no longer knows ours (once per attempt; a second refusal ends the attempt).
    let replacement;
    let (mut order, key_pem) = match resume(lineage, account.as_ref(), spec).await {
        Some(resumed) => resumed,
        None => match place(lineage, account.as_ref(), ca, spec, purpose).await {
            Ok(placed) => placed,
            Err(failure) if failure.is_account_gone() => {
                replacement = ctx.ca.register_again(ca, account.as_ref()).await?;
                place(lineage, replacement.as_ref(), ca, spec, purpose).await?
            }
            Err(failure) => return Err(failure),
        },
    };
    // Waiting on the CA is a safe point: the order is persisted (resumed, or placed and
    // persisted before anything waited), so a stop parks it for the next start.
    let completed = tokio::select! {
        completed = order.complete(&key_pem, &spec.domains, solver.as_ref()) => completed,
        () = ctx.stop.cancelled() => return Err(AttemptError::Stopping),
    };
    let chain_pem = match completed {
        Ok(chain) => chain,
        Err(failure) => {
            if !failure.error.is_retryable() {
                // The order is dead (validation failed, CA refused): the next attempt must
                // start over rather than resume it.
                forget_order(lineage);
            }
            return Err(failure.into());
        }
    };
    // Verifying, writing and fsyncing the new version happen on the blocking pool, off the
    // thread that answers the CA's HTTP-01 requests for the other orders. `install` only
    // writes files; the lineage's state is recorded afterwards, here, by `record`.
    let installing = lineage.clone();
    let domains = spec.domains.clone();
    let key = key_pem.expose().to_vec();
    let key_group = spec.key_group.clone();
    let installed = tokio::task::spawn_blocking(move || {
        installing.install(&domains, &key, &chain_pem, key_group.as_ref())
    })
    .await
    .map_err(AttemptError::Blocking)?;
    match installed {
        // The order is done; [`record`] says so with the success.
        Ok(installed) => Ok(installed),
        Err(err) => {
            // A chain that does not verify will not verify next time either.
            forget_order(lineage);
            Err(AttemptError::Install {
                order_url: order.location().order_url.clone(),
                source: err,
            })
        }
    }
}

/// The order in flight for `spec`, if one was persisted, still matches the config and the CA
/// still knows it.
async fn resume<'a>(
    lineage: &mut Lineage,
    account: &'a dyn CaAccount,
    spec: &CertificateSpec,
) -> Option<(Box<dyn CaOrder + 'a>, Secret)> {
    let pending = lineage.pending_order()?.clone();
    let key = lineage.pending_key().ok().flatten();
    let (true, Some(key)) = (pending.is_for(&spec.domains, spec.key_type), key) else {
        tracing::info!(cert = %spec.name, order_url = %pending.order_url, "dropping the stored order: the configuration changed");
        forget_order(lineage);
        return None;
    };
    let location = OrderLocation {
        order_url: pending.order_url,
        directory_url: pending.directory_url,
    };
    match account.resume_order(location.clone()).await {
        Ok(order) => Some((order, Secret::new(key))),
        Err(err) => {
            tracing::warn!(cert = %spec.name, order_url = %location.order_url, error = error_chain(&err), "cannot resume the stored order; placing a new one");
            forget_order(lineage);
            None
        }
    }
}

/// Place a new order and persist it (key, then location) before anything waits on the CA.
async fn place<'a>(
    lineage: &mut Lineage,
    account: &'a dyn CaAccount,
    ca: &CaSpec,
    spec: &CertificateSpec,
    purpose: OrderPurpose,
) -> Result<(Box<dyn CaOrder + 'a>, Secret), AttemptError> {
    let directory_url = order_directory_url(&ca.directory, purpose, spec.order_id.as_deref())
        .map_err(|source| AttemptError::DirectoryUrl {
            ca: ca.name.clone(),
            source,
        })?;
    // Off the runtime thread: an RSA-4096 key takes a second or more, and the same thread
    // answers the CA's HTTP-01 requests for every other order.
    let key_type = spec.key_type;
    let key_pem =
        tokio::task::spawn_blocking(move || certkeeper_acme::keys::generate_key_pem(key_type))
            .await
            .map_err(AttemptError::Blocking)?
            .map_err(CaFailure::from)?;
    // ARI's `replaces`: the certificate this order replaces, when there is one to replace
    // (never for a first issuance; a revoked certificate is not renewed but replaced anew).
    let replaces = lineage
        .live_certificate()
        .ok()
        .flatten()
        .filter(|live| !live.observed.revoked)
        .map(|live| live.leaf_der);
    let order = account
        .place_order(NewOrder {
            cert: spec.name.clone(),
            domains: spec.domains.clone(),
            key_type: spec.key_type,
            directory_url,
            replaces,
            profile: spec.profile.clone(),
        })
        .await?;
    let location = order.location();
    let pending = PendingOrder::new(
        &location.order_url,
        &location.directory_url,
        &spec.domains,
        spec.key_type,
        SystemTime::now(),
    );
    lineage
        .record_order(pending, key_pem.expose())
        .map_err(AttemptError::PersistOrder)?;
    Ok((order, key_pem))
}

/// The order is dead or stale: the next attempt places a new one.
fn forget_order(lineage: &mut Lineage) {
    if let Err(err) = lineage.forget_order() {
        tracing::warn!(cert = %lineage.name(), error = error_chain(&err), "cannot clear the stored order");
    }
}

/// Record an attempt's outcome on its lineage, where the planner and `status` read it: the
/// install (which also ends the order), or the failure by its class.
pub fn record(lineage: &mut Lineage, outcome: &Result<LiveCert, AttemptError>, now: SystemTime) {
    let saved = match outcome {
        // Nothing happened that the next start should plan around.
        Err(AttemptError::Stopping) => return,
        Ok(_) => lineage.record_install(now),
        Err(error) => lineage
            .record_failure(error.class(), &error_chain(error), now)
            .and_then(|()| match error.refused_profile() {
                Some(profile) => lineage.record_refused_profile(profile),
                None => Ok(()),
            }),
    };
    if let Err(err) = saved {
        tracing::warn!(cert = %lineage.name(), error = error_chain(&err), "cannot record the attempt");
    }
}
