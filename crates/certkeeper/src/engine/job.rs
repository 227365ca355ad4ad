//! One certificate attempt's order, shared by `certkeeper renew` and the daemon: resume the
//! order in flight or place a new one, persist it before waiting on the CA, verify and install
//! the result, and record the outcome the scheduler plans from. Every change to the lineage's
//! state goes through its [`Lineage`] transitions, loaded once for the attempt.
//!
//! Persisting the order's location and its key *before* waiting is what lets a restart (or a
//! crash) pick the same order up by its URL instead of ordering twice: a DigiCert order can
//! wait a day for approval. A resumed order always finalizes with the key persisted with it,
//! whatever `reuse_key` says now.
//!
//! The key of a new order is the live one when the certificate has `reuse_key` and the live
//! key is of the configured `key_type` (and loads), so a key pinned elsewhere (a DANE TLSA
//! record, HPKP-style pins in clients) stays valid across renewals; otherwise, and once when
//! `renew --new-key` asks for it, a new one. Why a new key was made although `reuse_key` is
//! set is logged at info.
//!
//! The CA and the challenge solver are ports ([`JobContext`]); the decisions on what the CA
//! answers are made here, the same for the real CA and a scripted one: register again (once)
//! after `accountDoesNotExist`, forget an order the CA refused, keep one it is still working
//! on, stop at the safe points.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certkeeper_acme::{CaFailure, PollPolicy};
use certkeeper_core::lifecycle::order_directory_url;
use certkeeper_core::{
    CaSpec, CertificateSpec, DomainName, Inventory, KeyType, OrderPurpose, Secret,
};
use certkeeper_fleet::Fleet;
use certkeeper_hooks::ReloadCoalescer;
use certkeeper_store::{Lineage, LiveCert, PendingOrder, Store};
use tokio_util::sync::CancellationToken;

use crate::engine::ca::AcmeCa;
use crate::engine::deploy::ProcessHooks;
/// Defined with the engine's other errors; named here, where the attempt's callers find it.
pub use crate::engine::error::AttemptError;
use crate::engine::fleet::{FleetCoordination, LineageGuards};
use crate::engine::ports::{
    CaAccount, CaOrder, CertificateAuthority, Claim, Coordination, Hooks, NewOrder, OrderLocation,
    Solo, Solvers,
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
    /// Who may order: [`Solo`] for a node on its own, the fleet's leases in a cluster.
    pub coordination: Arc<dyn Coordination>,
    /// The lifecycle's soft token: cancelled, an attempt stops at its next safe point.
    pub stop: CancellationToken,
}

impl JobContext {
    /// The real ports: ACME CAs waiting on each order as `poll` says, with their accounts in
    /// `store`; the challenge solvers of the inventory (`solvers`, made by the caller, which
    /// serves their embedded responder and removes stale DNS-01 records with them); the
    /// operator's hooks, reloads requested from `reloads`. With `fleet` (its database and the
    /// lease length), attempts are coordinated through its leases and the accounts are the
    /// fleet's; without, the node is on its own ([`Solo`]).
    pub fn real(
        store: Store,
        poll: PollPolicy,
        solvers: Arc<ConfiguredSolvers>,
        reloads: Arc<ReloadCoalescer>,
        stop: CancellationToken,
        fleet: Option<(Fleet, Duration, LineageGuards)>,
    ) -> Self {
        let ca = AcmeCa::new(store.clone(), poll);
        let (ca, coordination): (AcmeCa, Arc<dyn Coordination>) = match fleet {
            None => (ca, Arc::new(Solo)),
            Some((fleet, lease, guards)) => (
                ca.in_fleet(fleet.clone()),
                Arc::new(FleetCoordination::new(fleet, lease, guards)),
            ),
        };
        Self {
            ca: Arc::new(ca),
            solvers,
            hooks: Arc::new(ProcessHooks::new(reloads)),
            coordination,
            store,
            stop,
        }
    }
}

/// Obtain and install a certificate for `spec` of `inventory` from `ca`, recording the order on
/// `lineage`. `new_key`: a new order gets a new key even with `reuse_key` (`renew --new-key`).
#[expect(
    clippy::too_many_arguments,
    reason = "one attempt's inputs, each from a different owner; a struct would only rename them"
)]
pub async fn obtain(
    ctx: &JobContext,
    claim: &dyn Claim,
    lineage: &mut Lineage,
    inventory: &Inventory,
    ca: &CaSpec,
    spec: &CertificateSpec,
    purpose: OrderPurpose,
    new_key: bool,
) -> Result<LiveCert, AttemptError> {
    // Another node of the fleet may have renewed it meanwhile: install that, order nothing.
    let local_serial = lineage
        .live_certificate()
        .ok()
        .flatten()
        .map(|live| live.serial_hex);
    if let Some(published) = claim.published(local_serial.as_deref()).await? {
        tracing::info!(cert = %spec.name, serial = %published.serial_hex, node = %published.published_by, "installing the certificate another node of the fleet published");
        return install(
            lineage,
            spec,
            published.key_pem.expose().to_vec(),
            published.fullchain_pem,
            None,
        )
        .await;
    }
    let solver = claim.solver(ctx.solvers.for_certificate(inventory, spec)?);
    let account = ctx.ca.account(ca).await?;
    // A safe point: nothing is placed yet.
    if ctx.stop.is_cancelled() {
        return Err(AttemptError::Stopping);
    }
    // Declared before the order that may borrow it: the account registered again when the CA
    // no longer knows ours (once per attempt; a second refusal ends the attempt).
    let replacement;
    if lineage.pending_order().is_none() {
        adopt_left_order(claim, lineage, spec).await?;
    }
    let (mut order, key_pem) = match resume(lineage, account.as_ref(), spec, new_key).await {
        Some(resumed) => resumed,
        None => match place(lineage, account.as_ref(), ca, spec, purpose, new_key).await {
            Ok(placed) => placed,
            Err(failure) if failure.is_account_gone() => {
                replacement = ctx.ca.register_again(ca, account.as_ref()).await?;
                place(lineage, replacement.as_ref(), ca, spec, purpose, new_key).await?
            }
            Err(failure) => return Err(failure),
        },
    };
    claim.record_order(order.location(), &key_pem).await?;
    // Waiting on the CA is a safe point: the order is persisted (resumed, or placed and
    // persisted before anything waited), so a stop parks it for the next start, and a lost
    // claim leaves it to the node that took it over.
    let lost = claim.lost();
    let completed = tokio::select! {
        completed = order.complete(
            &key_pem,
            &spec.domains,
            solver.as_ref(),
            spec.preferred_chain.as_deref(),
        ) => completed,
        () = ctx.stop.cancelled() => return Err(AttemptError::Stopping),
        () = lost.cancelled() => return Err(AttemptError::ClaimLost { cert: spec.name.clone() }),
    };
    let chain_pem = match completed {
        Ok(chain) => chain,
        Err(failure) => {
            if !failure.error.is_retryable() {
                // The order is dead (validation failed, CA refused): the next attempt, here or
                // on another node, must start over rather than resume it.
                forget_dead_order(claim, lineage, spec).await;
            }
            return Err(failure.into());
        }
    };
    let order_url = order.location().order_url.clone();
    // The others learn of it first (refused once the claim is lost: the new holder's
    // certificate is the fleet's), then it is installed here.
    let checked = {
        let (name, domains) = (spec.name.clone(), spec.domains.clone());
        let (key, chain) = (key_pem.clone(), chain_pem.clone());
        tokio::task::spawn_blocking(move || {
            let key = std::str::from_utf8(key.expose())
                .unwrap_or_default()
                .to_owned();
            Store::check_issue(&name, &domains, &key, &chain)
        })
        .await
        .map_err(AttemptError::Blocking)?
    };
    match checked {
        Ok(checked) => claim.publish(&checked, &key_pem).await?,
        Err(err) => {
            // A chain that does not verify will not verify next time either.
            forget_dead_order(claim, lineage, spec).await;
            return Err(AttemptError::Install {
                order_url,
                source: err,
            });
        }
    }
    install(
        lineage,
        spec,
        key_pem.expose().to_vec(),
        chain_pem,
        Some(order_url),
    )
    .await
}

/// Verify, write and fsync a new version of `lineage` on the blocking pool, off the thread
/// that answers the CA's HTTP-01 requests for the other orders. `install` only writes files;
/// the lineage's state is recorded afterwards by [`record`]. `order_url`: the order it came
/// from, forgotten when the chain is refused; `None` for a version another node published.
async fn install(
    lineage: &mut Lineage,
    spec: &CertificateSpec,
    key: Vec<u8>,
    chain_pem: String,
    order_url: Option<String>,
) -> Result<LiveCert, AttemptError> {
    let installing = lineage.clone();
    let domains = spec.domains.clone();
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
            if order_url.is_some() {
                // A chain that does not verify will not verify next time either.
                forget_order(lineage);
            }
            Err(AttemptError::Install {
                order_url: order_url.unwrap_or_else(|| "published by another node".to_owned()),
                source: err,
            })
        }
    }
}

/// An order another node of the fleet placed for `spec` and left (it died, or lost its lease):
/// persisted here as this node's own, so the resume below carries it on.
async fn adopt_left_order(
    claim: &dyn Claim,
    lineage: &mut Lineage,
    spec: &CertificateSpec,
) -> Result<(), AttemptError> {
    let Some(left) = claim.order_left().await? else {
        return Ok(());
    };
    tracing::info!(cert = %spec.name, order_url = %left.location.order_url, node = %left.placed_by, "carrying on the order another node of the fleet placed");
    let pending = PendingOrder::new(
        &left.location.order_url,
        &left.location.directory_url,
        &spec.domains,
        spec.key_type,
        SystemTime::now(),
    );
    lineage
        .record_order(pending, left.key_pem.expose())
        .map_err(AttemptError::PersistOrder)
}

/// The order in flight for `spec`, if one was persisted, still matches the config and the CA
/// still knows it; with `new_key`, not if it is for the live key.
async fn resume<'a>(
    lineage: &mut Lineage,
    account: &'a dyn CaAccount,
    spec: &CertificateSpec,
    new_key: bool,
) -> Option<(Box<dyn CaOrder + 'a>, Secret)> {
    let pending = lineage.pending_order()?.clone();
    let key = lineage.pending_key().ok().flatten();
    let (true, Some(key)) = (pending.is_for(&spec.domains, spec.key_type), key) else {
        tracing::info!(cert = %spec.name, order_url = %pending.order_url, "dropping the stored order: the configuration changed");
        forget_order(lineage);
        return None;
    };
    if new_key
        && let Ok(Some(live)) = lineage.live_key()
        && live.pem.expose() == key.as_slice()
    {
        tracing::info!(cert = %spec.name, order_url = %pending.order_url, "dropping the stored order: it reuses the live key and --new-key asks for a new one");
        forget_order(lineage);
        return None;
    }
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
    new_key: bool,
) -> Result<(Box<dyn CaOrder + 'a>, Secret), AttemptError> {
    let directory_url = order_directory_url(&ca.directory, purpose, spec.order_id.as_deref())
        .map_err(|source| AttemptError::DirectoryUrl {
            ca: ca.name.clone(),
            source,
        })?;
    let key_pem = order_key(lineage, spec, new_key).await?;
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

/// The key a new order for `spec` is made with: the live key when `reuse_key` allows it, a
/// new one otherwise. Off the runtime thread: an RSA-4096 key takes a second or more to
/// generate (and a while to parse), and the same thread answers the CA's HTTP-01 requests for
/// every other order.
async fn order_key(
    lineage: &Lineage,
    spec: &CertificateSpec,
    new_key: bool,
) -> Result<Secret, AttemptError> {
    let lineage = lineage.clone();
    let (name, key_type, domains) = (spec.name.clone(), spec.key_type, spec.domains.clone());
    let reuse_key = spec.reuse_key;
    let key = tokio::task::spawn_blocking(move || {
        if reuse_key {
            let reused = if new_key {
                Err("renew --new-key asks for one".to_owned())
            } else {
                reusable_key(&lineage, key_type, &domains)
            };
            match reused {
                Ok(key) => {
                    tracing::info!(cert = %name, "reusing the live private key (reuse_key)");
                    return Ok(key);
                }
                Err(reason) => {
                    tracing::info!(cert = %name, reason, "making a new private key although reuse_key is set");
                }
            }
        }
        certkeeper_acme::keys::generate_key_pem(key_type)
    })
    .await
    .map_err(AttemptError::Blocking)?;
    Ok(key.map_err(CaFailure::from)?)
}

/// The live key of `lineage`, when it is a `key_type` key that signs a CSR for `domains`;
/// otherwise why not.
fn reusable_key(
    lineage: &Lineage,
    key_type: KeyType,
    domains: &[DomainName],
) -> Result<Secret, String> {
    let live = match lineage.live_key() {
        Ok(Some(live)) => live,
        Ok(None) => return Err("no certificate is live yet".to_owned()),
        Err(err) => {
            return Err(format!(
                "the live key cannot be read: {}",
                error_chain(&err)
            ));
        }
    };
    match live.key_type {
        Some(live_type) if live_type == key_type => {}
        Some(live_type) => {
            return Err(format!(
                "the live key is {live_type} and key_type is {key_type}"
            ));
        }
        None => return Err("the live key is of an unknown type".to_owned()),
    }
    certkeeper_acme::keys::csr_der(&live.pem, domains)
        .map_err(|err| format!("the live key cannot sign a request: {}", error_chain(&err)))?;
    Ok(live.pem)
}

/// The order is dead or stale: the next attempt places a new one.
/// Forget a dead order here and for the others (the fleet's copy is what a node that has
/// none resumes). Failing to tell the others only costs the next holder one look at the CA.
async fn forget_dead_order(claim: &dyn Claim, lineage: &mut Lineage, spec: &CertificateSpec) {
    forget_order(lineage);
    if let Err(err) = claim.forget_order().await {
        tracing::warn!(cert = %spec.name, error = error_chain(&err), "cannot forget the dead order in the fleet; the next node to carry it on finds it dead as well");
    }
}

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
