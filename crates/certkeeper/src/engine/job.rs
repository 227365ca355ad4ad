//! One certificate attempt, shared by `certkeeper renew` and the daemon: resume the order in
//! flight or place a new one, persist it before waiting on the CA, verify and install the
//! result, and record the outcome the scheduler plans from. Every change to the lineage's
//! state goes through its [`Lineage`] transitions, loaded once for the attempt.
//!
//! Persisting the order URL and its key *before* waiting is what lets a restart (or a crash)
//! pick the same order up with `Account::order(url)` instead of ordering twice: a DigiCert
//! order can wait a day for approval.

use std::time::SystemTime;

use certkeeper_acme::{AcmeAccount, AcmeError, OrderRequest, PlacedOrder, PollPolicy};
use certkeeper_challenge::ChallengeTokens;
use certkeeper_core::lifecycle::order_directory_url;
use certkeeper_core::{CaSpec, CertificateSpec, OrderPurpose, Secret};
use certkeeper_store::{FailureClass, Lineage, LiveCert, PendingOrder, Store};

use crate::accounts::{AccountError, Accounts};

/// How an attempt ended when it did not install a certificate.
#[derive(Debug)]
pub enum Failure {
    /// The CA has not finished yet (approval pending, still processing): the order is kept
    /// and polled again later. Not counted as a failure.
    StillWaiting(anyhow::Error),
    /// The attempt failed; `retryable` tells transient trouble from a problem a human must fix.
    Failed {
        error: anyhow::Error,
        retryable: bool,
        rate_limited: bool,
        /// The CA's Retry-After, when it sent one.
        retry_after: Option<SystemTime>,
    },
}

impl Failure {
    fn from_acme(err: AcmeError) -> Self {
        if matches!(err, AcmeError::Timeout { .. }) {
            return Failure::StillWaiting(err.into());
        }
        let retryable = err.is_retryable();
        let rate_limited = err.is_rate_limited();
        Failure::Failed {
            error: err.into(),
            retryable,
            rate_limited,
            retry_after: None,
        }
    }

    /// A problem that will not go away by itself (a configuration mistake).
    pub fn needs_human(error: anyhow::Error) -> Self {
        Failure::Failed {
            error,
            retryable: false,
            rate_limited: false,
            retry_after: None,
        }
    }

    /// The pre hooks failed, so no order was placed; retried with backoff like any transient
    /// failure (the hook may depend on something that comes back).
    pub fn pre_hook(why: &str) -> Self {
        Failure::other(anyhow::anyhow!(
            "pre hook failed, so no order was placed: {why}"
        ))
    }

    fn other(error: anyhow::Error) -> Self {
        Failure::Failed {
            error,
            retryable: true,
            rate_limited: false,
            retry_after: None,
        }
    }

    /// Attach the CA's Retry-After to a failure.
    fn with_retry_after(mut self, at: Option<SystemTime>) -> Self {
        if let (Failure::Failed { retry_after, .. }, Some(at)) = (&mut self, at) {
            *retry_after = Some(at);
        }
        self
    }

    /// How the lineage records it.
    fn class(&self) -> FailureClass {
        match self {
            Failure::StillWaiting(_) => FailureClass::WaitingOnCa,
            Failure::Failed {
                rate_limited: true,
                retry_after,
                ..
            } => FailureClass::RateLimited {
                retry_after: *retry_after,
            },
            Failure::Failed {
                retryable: true,
                retry_after,
                ..
            } => FailureClass::Transient {
                retry_after: *retry_after,
            },
            Failure::Failed { .. } => FailureClass::NeedsHuman,
        }
    }

    /// The lineage could not be loaded.
    pub fn store(error: certkeeper_store::StoreError) -> Self {
        if error.is_transient() {
            Failure::other(error.into())
        } else {
            Failure::needs_human(error.into())
        }
    }

    /// The CA answered `accountDoesNotExist`: registering again may carry the attempt on.
    fn is_account_gone(&self) -> bool {
        matches!(self, Failure::Failed { error, .. }
            if error.downcast_ref::<AcmeError>().is_some_and(AcmeError::is_account_gone))
    }

    pub fn error(&self) -> &anyhow::Error {
        match self {
            Failure::StillWaiting(error) | Failure::Failed { error, .. } => error,
        }
    }
}

/// The account could not be loaded or registered.
fn account_failure(AccountError { error, retry_after }: AccountError) -> Failure {
    match error.downcast::<AcmeError>() {
        Ok(acme) => Failure::from_acme(acme),
        Err(other) => Failure::other(other),
    }
    .with_retry_after(retry_after)
}

/// Everything one attempt needs from its surroundings.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub store: Store,
    pub accounts: Accounts,
    pub tokens: ChallengeTokens,
    pub poll: PollPolicy,
}

/// Obtain and install a certificate for `spec` from `ca`, recording the order on `lineage`.
pub async fn obtain(
    ctx: &JobContext,
    lineage: &mut Lineage,
    ca: &CaSpec,
    spec: &CertificateSpec,
    purpose: OrderPurpose,
) -> Result<LiveCert, Failure> {
    let account = ctx
        .accounts
        .get(&ctx.store, ca)
        .await
        .map_err(account_failure)?;
    // Declared before the order that may borrow it: the account registered again when the CA
    // no longer knows ours (once per attempt; a second refusal ends the attempt).
    let replacement;
    let (mut placed, key_pem, account) = match resume(lineage, &account, spec).await {
        Some((placed, key_pem)) => (placed, key_pem, &account),
        None => match place(lineage, &account, ca, spec, purpose).await {
            Ok((placed, key_pem)) => (placed, key_pem, &account),
            Err(failure) if failure.is_account_gone() => {
                replacement = ctx
                    .accounts
                    .register_again(&ctx.store, ca, &account)
                    .await
                    .map_err(account_failure)?;
                let (placed, key_pem) = place(lineage, &replacement, ca, spec, purpose)
                    .await
                    .map_err(|failure| failure.with_retry_after(replacement.take_retry_after()))?;
                (placed, key_pem, &replacement)
            }
            Err(failure) => return Err(failure.with_retry_after(account.take_retry_after())),
        },
    };
    let chain_pem = match placed
        .complete(&key_pem, &spec.domains, &ctx.tokens, ctx.poll)
        .await
    {
        Ok(chain) => chain,
        Err(err) => {
            if !err.is_retryable() {
                // The order is dead (validation failed, CA refused): the next attempt must
                // start over rather than resume it.
                forget_order(lineage);
            }
            return Err(Failure::from_acme(err).with_retry_after(account.take_retry_after()));
        }
    };
    match lineage.install(&spec.domains, key_pem.expose(), &chain_pem) {
        // The order is done; [`record`] says so with the success.
        Ok(installed) => Ok(installed),
        Err(err) => {
            // A chain that does not verify will not verify next time either.
            forget_order(lineage);
            Err(Failure::needs_human(anyhow::Error::from(err).context(
                format!("installing the certificate from order {}", placed.url()),
            )))
        }
    }
}

/// The order in flight for `spec`, if one was persisted, still matches the config and the CA
/// still knows it.
async fn resume<'a>(
    lineage: &mut Lineage,
    account: &'a AcmeAccount,
    spec: &CertificateSpec,
) -> Option<(PlacedOrder<'a>, Secret)> {
    let pending = lineage.pending_order()?.clone();
    let key = lineage.pending_key().ok().flatten();
    let (true, Some(key)) = (pending.is_for(&spec.domains, spec.key_type), key) else {
        tracing::info!(cert = %spec.name, order_url = %pending.order_url, "dropping the stored order: the configuration changed");
        forget_order(lineage);
        return None;
    };
    match account
        .resume_order(&pending.order_url, &pending.directory_url)
        .await
    {
        Ok(placed) => Some((placed, Secret::new(key))),
        Err(err) => {
            tracing::warn!(cert = %spec.name, order_url = %pending.order_url, error = %format!("{:#}", anyhow::Error::from(err)), "cannot resume the stored order; placing a new one");
            forget_order(lineage);
            None
        }
    }
}

/// Place a new order and persist it (key, then URL) before anything waits on the CA.
async fn place<'a>(
    lineage: &mut Lineage,
    account: &'a AcmeAccount,
    ca: &CaSpec,
    spec: &CertificateSpec,
    purpose: OrderPurpose,
) -> Result<(PlacedOrder<'a>, Secret), Failure> {
    let directory_url = order_directory_url(&ca.directory, purpose, spec.order_id.as_deref())
        .map_err(|err| Failure::needs_human(err.into()))?;
    let key_pem =
        certkeeper_acme::keys::generate_key_pem(spec.key_type).map_err(Failure::from_acme)?;
    let placed = account
        .place_order(&OrderRequest {
            cert: &spec.name,
            domains: &spec.domains,
            key_type: spec.key_type,
            directory_url: &directory_url,
        })
        .await
        .map_err(Failure::from_acme)?;
    let order = PendingOrder::new(
        placed.url(),
        &directory_url,
        &spec.domains,
        spec.key_type,
        SystemTime::now(),
    );
    if let Err(err) = lineage.record_order(order, key_pem.expose()) {
        // Carrying on would risk a second order after a restart; the disk needs a human.
        return Err(Failure::other(
            anyhow::Error::from(err).context("persisting the new order"),
        ));
    }
    Ok((placed, key_pem))
}

/// The order is dead or stale: the next attempt places a new one.
fn forget_order(lineage: &mut Lineage) {
    if let Err(err) = lineage.forget_order() {
        tracing::warn!(cert = %lineage.name(), error = %format!("{:#}", anyhow::Error::from(err)), "cannot clear the stored order");
    }
}

/// Record an attempt's outcome on its lineage, where the planner and `status` read it: the
/// install (which also ends the order), or the failure by its class.
pub fn record(lineage: &mut Lineage, outcome: &Result<LiveCert, Failure>, now: SystemTime) {
    let saved = match outcome {
        Ok(_) => lineage.record_install(now),
        Err(failure) => {
            lineage.record_failure(failure.class(), &format!("{:#}", failure.error()), now)
        }
    };
    if let Err(err) = saved {
        tracing::warn!(cert = %lineage.name(), error = %format!("{:#}", anyhow::Error::from(err)), "cannot record the attempt");
    }
}
