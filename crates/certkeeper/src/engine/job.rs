//! One certificate attempt, shared by `certkeeper renew` and the daemon: resume the order in
//! flight or place a new one, persist it before waiting on the CA, verify and install the
//! result, and record the outcome the scheduler plans from.
//!
//! Persisting the order URL and its key *before* waiting is what lets a restart (or a crash)
//! pick the same order up with `Account::order(url)` instead of ordering twice: a DigiCert
//! order can wait a day for approval.

use std::time::SystemTime;

use anyhow::Context;
use certkeeper_acme::{AcmeAccount, AcmeError, OrderRequest, PlacedOrder, PollPolicy};
use certkeeper_challenge::ChallengeTokens;
use certkeeper_core::lifecycle::order_directory_url;
use certkeeper_core::{CaSpec, CertificateSpec, OrderPurpose, Secret};
use certkeeper_store::{LiveCert, PendingOrder, Store, unix_seconds};

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

/// Obtain and install a certificate for `spec` from `ca`.
pub async fn obtain(
    ctx: &JobContext,
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
    let (mut placed, key_pem, account) = match resume(ctx, &account, spec).await {
        Some((placed, key_pem)) => (placed, key_pem, &account),
        None => match place(ctx, &account, ca, spec, purpose).await {
            Ok((placed, key_pem)) => (placed, key_pem, &account),
            Err(failure) if failure.is_account_gone() => {
                replacement = ctx
                    .accounts
                    .register_again(&ctx.store, ca, &account)
                    .await
                    .map_err(account_failure)?;
                let (placed, key_pem) = place(ctx, &replacement, ca, spec, purpose)
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
                forget_pending(ctx, spec);
            }
            return Err(Failure::from_acme(err).with_retry_after(account.take_retry_after()));
        }
    };
    let key_text = std::str::from_utf8(key_pem.expose())
        .context("generated key is not PEM text")
        .map_err(Failure::other)?;
    let installed = ctx
        .store
        .install(&spec.name, &spec.domains, key_text, &chain_pem)
        .with_context(|| format!("installing the certificate from order {}", placed.url()))
        .map_err(|error| {
            // A chain that does not verify will not verify next time either.
            forget_pending(ctx, spec);
            Failure::needs_human(error)
        })?;
    forget_pending(ctx, spec);
    Ok(installed)
}

/// The order in flight for `spec`, if one was persisted, still matches the config and the CA
/// still knows it.
async fn resume<'a>(
    ctx: &JobContext,
    account: &'a AcmeAccount,
    spec: &CertificateSpec,
) -> Option<(PlacedOrder<'a>, Secret)> {
    let state = ctx.store.read_lineage_state(&spec.name).ok()?;
    let pending = state.pending_order?;
    let wanted: Vec<String> = spec.domains.iter().map(ToString::to_string).collect();
    let key = ctx.store.read_pending_key(&spec.name).ok().flatten();
    let (true, Some(key)) = (
        pending.domains == wanted && pending.key_type == spec.key_type.as_str(),
        key,
    ) else {
        tracing::info!(cert = %spec.name, order_url = %pending.order_url, "dropping the stored order: the configuration changed");
        forget_pending(ctx, spec);
        return None;
    };
    match account
        .resume_order(&pending.order_url, &pending.directory_url)
        .await
    {
        Ok(placed) => Some((placed, Secret::new(key))),
        Err(err) => {
            tracing::warn!(cert = %spec.name, order_url = %pending.order_url, error = %format!("{:#}", anyhow::Error::from(err)), "cannot resume the stored order; placing a new one");
            forget_pending(ctx, spec);
            None
        }
    }
}

/// Place a new order and persist it (URL, then key) before anything waits on the CA.
async fn place<'a>(
    ctx: &JobContext,
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
    let persisted = ctx
        .store
        .write_pending_key(&spec.name, key_pem.expose())
        .and_then(|()| {
            let mut state = ctx.store.read_lineage_state(&spec.name)?;
            state.pending_order = Some(PendingOrder {
                order_url: placed.url().to_owned(),
                directory_url,
                domains: spec.domains.iter().map(ToString::to_string).collect(),
                key_type: spec.key_type.as_str().to_owned(),
                placed_at_unix: unix_seconds(SystemTime::now()),
            });
            ctx.store.write_lineage_state(&spec.name, &state)
        });
    if let Err(err) = persisted {
        // Carrying on would risk a second order after a restart; the disk needs a human.
        return Err(Failure::other(
            anyhow::Error::from(err).context("persisting the new order"),
        ));
    }
    Ok((placed, key_pem))
}

fn forget_pending(ctx: &JobContext, spec: &CertificateSpec) {
    let cleared = ctx
        .store
        .read_lineage_state(&spec.name)
        .and_then(|mut state| {
            if state.pending_order.take().is_some() {
                ctx.store.write_lineage_state(&spec.name, &state)?;
            }
            ctx.store.remove_pending_key(&spec.name)
        });
    if let Err(err) = cleared {
        tracing::warn!(cert = %spec.name, error = %format!("{:#}", anyhow::Error::from(err)), "cannot clear the stored order");
    }
}

/// After a `StillWaiting` outcome, look at the order again this much later.
pub const RECHECK_WAITING_ORDER: std::time::Duration = std::time::Duration::from_secs(300);
/// After a `rateLimited` refusal without a usable Retry-After, wait at least this long.
pub const RATE_LIMIT_PAUSE: std::time::Duration = std::time::Duration::from_secs(3_600);

/// Record an attempt's outcome in the lineage state, where the planner and `status` read it.
pub fn record(
    store: &Store,
    spec: &CertificateSpec,
    outcome: &Result<LiveCert, Failure>,
    now: SystemTime,
) {
    let updated = store.read_lineage_state(&spec.name).and_then(|mut state| {
        let attempts = &mut state.attempts;
        match outcome {
            Ok(_) => {
                attempts.consecutive_failures = 0;
                attempts.last_error = None;
                attempts.retry_not_before_unix = None;
                attempts.last_success_at_unix = Some(unix_seconds(now));
                attempts.successes_total += 1;
            }
            Err(Failure::StillWaiting(error)) => {
                attempts.last_error = Some(format!("waiting for the CA: {error:#}"));
                attempts.retry_not_before_unix = Some(unix_seconds(now + RECHECK_WAITING_ORDER));
            }
            Err(Failure::Failed {
                error,
                rate_limited,
                retry_after,
                ..
            }) => {
                attempts.consecutive_failures = attempts.consecutive_failures.saturating_add(1);
                attempts.failures_total += 1;
                attempts.last_failure_at_unix = Some(unix_seconds(now));
                attempts.last_error = Some(format!("{error:#}"));
                // The CA's own Retry-After wins; a rate limit without one pauses an hour.
                attempts.retry_not_before_unix = retry_after
                    .or_else(|| rate_limited.then(|| now + RATE_LIMIT_PAUSE))
                    .map(unix_seconds);
            }
        }
        store.write_lineage_state(&spec.name, &state)
    });
    if let Err(err) = updated {
        tracing::warn!(cert = %spec.name, error = %format!("{:#}", anyhow::Error::from(err)), "cannot record the attempt");
    }
}
