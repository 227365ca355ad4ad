//! One certificate attempt, shared by `certkeeper renew` and the daemon: resume the order in
//! flight or place a new one, persist it before waiting on the CA, verify and install the
//! result, and record the outcome the scheduler plans from. Every change to the lineage's
//! state goes through its [`Lineage`] transitions, loaded once for the attempt.
//!
//! Persisting the order URL and its key *before* waiting is what lets a restart (or a crash)
//! pick the same order up with `Account::order(url)` instead of ordering twice: a DigiCert
//! order can wait a day for approval.

use std::time::SystemTime;

use certkeeper_acme::{AcmeAccount, CaFailure, OrderRequest, PlacedOrder, PollPolicy};
use certkeeper_challenge::ChallengeTokens;
use certkeeper_core::lifecycle::{DirectoryUrlError, order_directory_url};
use certkeeper_core::{CaName, CaSpec, CertName, CertificateSpec, OrderPurpose, Secret};
use certkeeper_store::{FailureClass, Lineage, LiveCert, PendingOrder, Store, StoreError};

use tokio_util::sync::CancellationToken;

use crate::accounts::{AccountError, Accounts};
use crate::engine::deploy::HookFailure;
use crate::report::error_chain;

/// Why an attempt installed no certificate (the live one, if any, stays). Each variant keeps
/// its cause; [`AttemptError::class`] says what that means for the next attempt.
#[derive(Debug, thiserror::Error)]
pub enum AttemptError {
    /// The CA refused, failed, or has not finished the order yet.
    #[error(transparent)]
    Acme(#[from] CaFailure),
    /// The account at the CA could not be loaded or registered.
    #[error(transparent)]
    Account(#[from] AccountError),
    /// The lineage's state could not be loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The new order could not be persisted: carrying on would risk a second order after a
    /// restart.
    #[error("persisting the new order")]
    PersistOrder(#[source] StoreError),
    /// The certificate the CA issued was refused or could not be installed.
    #[error("installing the certificate from order {order_url}")]
    Install {
        order_url: String,
        #[source]
        source: StoreError,
    },
    /// A pre hook failed, so no order was placed.
    #[error("pre hook failed, so no order was placed")]
    PreHook(#[source] HookFailure),
    /// The certificate names a CA the inventory does not have.
    #[error("certificate {name} refers to unknown CA {ca}")]
    UnknownCa { name: CertName, ca: CaName },
    /// The daemon is stopping: the attempt ended at a safe point (before an order, or while
    /// waiting on one that is persisted and resumes at the next start). Not a failure.
    #[error(
        "stopped at a safe point: certkeeper is stopping (a persisted order resumes at the next start)"
    )]
    Stopping,
    /// A task of the blocking pool (generating the key, installing the certificate) died.
    #[error("a blocking task of the attempt (key generation or install) did not finish")]
    Blocking(#[source] tokio::task::JoinError),
    /// The CA's directory URL cannot be used for this order.
    #[error("the directory URL of CA {ca} cannot be used for this order")]
    DirectoryUrl {
        ca: CaName,
        #[source]
        source: DirectoryUrlError,
    },
}

impl AttemptError {
    /// What the cause means for the next attempt, decided by the crate that knows it: the
    /// ACME adapter for the CA's answers, the store for the disk. A pre hook is retried like
    /// transient trouble (it may depend on something that comes back); a configuration
    /// mistake needs a human.
    pub fn class(&self) -> FailureClass {
        match self {
            AttemptError::Acme(failure) | AttemptError::Account(AccountError::Acme(failure)) => {
                ca_class(failure)
            }
            AttemptError::Account(
                AccountError::Read { source, .. }
                | AccountError::KeepAside { source, .. }
                | AccountError::Save { source, .. },
            )
            | AttemptError::Store(source)
            | AttemptError::PersistOrder(source)
            | AttemptError::Install { source, .. } => {
                if source.is_transient() {
                    FailureClass::Transient { retry_after: None }
                } else {
                    FailureClass::NeedsHuman
                }
            }
            AttemptError::PreHook(_) | AttemptError::Blocking(_) => {
                FailureClass::Transient { retry_after: None }
            }
            AttemptError::Stopping => FailureClass::WaitingOnCa,
            AttemptError::UnknownCa { .. } | AttemptError::DirectoryUrl { .. } => {
                FailureClass::NeedsHuman
            }
        }
    }

    /// The CA answered `accountDoesNotExist`: registering again may carry the attempt on.
    fn is_account_gone(&self) -> bool {
        matches!(self, AttemptError::Acme(failure) if failure.error.is_account_gone())
    }
}

/// The class of a CA's answer: an order still in the works is waited for, a rate limit or
/// transient trouble is retried (not before the CA's Retry-After), anything else is a refusal
/// a human must look at.
fn ca_class(CaFailure { error, retry_after }: &CaFailure) -> FailureClass {
    let retry_after = *retry_after;
    if error.is_waiting_on_ca() {
        FailureClass::WaitingOnCa
    } else if error.is_rate_limited() {
        FailureClass::RateLimited { retry_after }
    } else if error.is_retryable() {
        FailureClass::Transient { retry_after }
    } else {
        FailureClass::NeedsHuman
    }
}

/// Everything one attempt needs from its surroundings.
#[derive(Debug, Clone)]
pub struct JobContext {
    pub store: Store,
    pub accounts: Accounts,
    pub tokens: ChallengeTokens,
    pub poll: PollPolicy,
    /// The lifecycle's soft token: cancelled, an attempt stops at its next safe point.
    pub stop: CancellationToken,
}

/// Obtain and install a certificate for `spec` from `ca`, recording the order on `lineage`.
pub async fn obtain(
    ctx: &JobContext,
    lineage: &mut Lineage,
    ca: &CaSpec,
    spec: &CertificateSpec,
    purpose: OrderPurpose,
) -> Result<LiveCert, AttemptError> {
    let account = ctx.accounts.get(&ctx.store, ca).await?;
    // A safe point: nothing is placed yet.
    if ctx.stop.is_cancelled() {
        return Err(AttemptError::Stopping);
    }
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
                    .await?;
                let (placed, key_pem) = place(lineage, &replacement, ca, spec, purpose).await?;
                (placed, key_pem, &replacement)
            }
            Err(failure) => return Err(failure),
        },
    };
    // Waiting on the CA is a safe point: the order is persisted (resumed, or placed and
    // persisted before anything waited), so a stop parks it for the next start.
    let completed = tokio::select! {
        completed = placed.complete(&key_pem, &spec.domains, &ctx.tokens, ctx.poll) => completed,
        () = ctx.stop.cancelled() => return Err(AttemptError::Stopping),
    };
    let chain_pem = match completed {
        Ok(chain) => chain,
        Err(err) => {
            if !err.is_retryable() {
                // The order is dead (validation failed, CA refused): the next attempt must
                // start over rather than resume it.
                forget_order(lineage);
            }
            return Err(account.failure(err).into());
        }
    };
    // Verifying, writing and fsyncing the new version happen on the blocking pool, off the
    // thread that answers the CA's HTTP-01 requests for the other orders. `install` only
    // writes files; the lineage's state is recorded afterwards, here, by `record`.
    let installing = lineage.clone();
    let domains = spec.domains.clone();
    let key = key_pem.expose().to_vec();
    let installed =
        tokio::task::spawn_blocking(move || installing.install(&domains, &key, &chain_pem))
            .await
            .map_err(AttemptError::Blocking)?;
    match installed {
        // The order is done; [`record`] says so with the success.
        Ok(installed) => Ok(installed),
        Err(err) => {
            // A chain that does not verify will not verify next time either.
            forget_order(lineage);
            Err(AttemptError::Install {
                order_url: placed.url().to_owned(),
                source: err,
            })
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
            tracing::warn!(cert = %spec.name, order_url = %pending.order_url, error = error_chain(&err), "cannot resume the stored order; placing a new one");
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
) -> Result<(PlacedOrder<'a>, Secret), AttemptError> {
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
    let placed = account
        .place_order(&OrderRequest {
            cert: &spec.name,
            domains: &spec.domains,
            key_type: spec.key_type,
            directory_url: &directory_url,
        })
        .await
        .map_err(|err| account.failure(err))?;
    let order = PendingOrder::new(
        placed.url(),
        &directory_url,
        &spec.domains,
        spec.key_type,
        SystemTime::now(),
    );
    lineage
        .record_order(order, key_pem.expose())
        .map_err(AttemptError::PersistOrder)?;
    Ok((placed, key_pem))
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
        Err(error) => lineage.record_failure(error.class(), &error_chain(error), now),
    };
    if let Err(err) = saved {
        tracing::warn!(cert = %lineage.name(), error = error_chain(&err), "cannot record the attempt");
    }
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use certkeeper_acme::AcmeError;
    use certkeeper_hooks::HookError;
    use certkeeper_store::VerifyProblem;
    use instant_acme::Problem;

    use super::*;

    fn refused(kind: &str, status: u16) -> AcmeError {
        AcmeError::Protocol {
            ca: "pebble".to_owned(),
            step: "new order",
            source: Box::new(instant_acme::Error::Api(Problem {
                r#type: Some(format!("urn:ietf:params:acme:error:{kind}")),
                detail: Some(format!("{kind} detail")),
                status: Some(status),
                subproblems: Vec::new(),
            })),
        }
    }

    fn with_retry_after(error: AcmeError, retry_after: Option<SystemTime>) -> CaFailure {
        CaFailure { error, retry_after }
    }

    fn disk_full() -> StoreError {
        StoreError::Io {
            action: "write",
            path: "/var/lib/certkeeper/state/www.json".into(),
            source: std::io::Error::from(std::io::ErrorKind::StorageFull),
        }
    }

    #[test]
    fn each_cause_is_classified_by_the_crate_that_knows_it() {
        let later = Some(SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000));
        let timeout = AcmeError::Timeout {
            ca: "pebble".to_owned(),
            order_url: "https://ca/order/1".to_owned(),
            waiting_for: "valid",
            waited: Duration::from_secs(300),
        };
        let validation = AcmeError::Validation {
            ca: "pebble".to_owned(),
            domain: "www.example.com".to_owned(),
            detail: "connection refused".to_owned(),
        };
        let table: Vec<(AttemptError, FailureClass)> = vec![
            (
                with_retry_after(timeout, later).into(),
                FailureClass::WaitingOnCa,
            ),
            (
                with_retry_after(refused("rateLimited", 429), later).into(),
                FailureClass::RateLimited { retry_after: later },
            ),
            (
                CaFailure::from(refused("rateLimited", 429)).into(),
                FailureClass::RateLimited { retry_after: None },
            ),
            (
                with_retry_after(refused("serverInternal", 500), later).into(),
                FailureClass::Transient { retry_after: later },
            ),
            (CaFailure::from(validation).into(), FailureClass::NeedsHuman),
            (
                CaFailure::from(refused("unauthorized", 403)).into(),
                FailureClass::NeedsHuman,
            ),
            (
                AccountError::Acme(with_retry_after(refused("rateLimited", 429), later)).into(),
                FailureClass::RateLimited { retry_after: later },
            ),
            (
                AccountError::Save {
                    ca: "pebble".to_owned(),
                    source: disk_full(),
                }
                .into(),
                FailureClass::Transient { retry_after: None },
            ),
            (
                AttemptError::PersistOrder(disk_full()),
                FailureClass::Transient { retry_after: None },
            ),
            (
                AttemptError::Install {
                    order_url: "https://ca/order/1".to_owned(),
                    source: StoreError::Verify {
                        name: CertName::new("www").expect("name"),
                        problem: VerifyProblem::KeyMismatch,
                    },
                },
                FailureClass::NeedsHuman,
            ),
            (
                AttemptError::PreHook(HookFailure::from(HookError::ReadDir {
                    path: "/etc/certkeeper/hooks/pre".into(),
                    source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
                })),
                FailureClass::Transient { retry_after: None },
            ),
            (
                AttemptError::UnknownCa {
                    name: CertName::new("www").expect("name"),
                    ca: CaName::new("gone").expect("name"),
                },
                FailureClass::NeedsHuman,
            ),
        ];
        for (error, class) in table {
            assert_eq!(error.class(), class, "{}", error_chain(&error));
        }
    }

    #[test]
    fn an_attempt_error_renders_each_cause_once() {
        let error = AttemptError::PersistOrder(disk_full());
        assert_eq!(
            error_chain(&error),
            "persisting the new order: cannot write /var/lib/certkeeper/state/www.json: no storage space"
        );
        let error = AttemptError::from(with_retry_after(refused("rateLimited", 429), None));
        let text = error_chain(&error);
        assert!(
            text.starts_with("CA \"pebble\": new order failed"),
            "{text}"
        );
        assert_eq!(text.matches("rateLimited detail").count(), 1, "{text}");
        let error = AttemptError::PreHook(HookFailure::from(HookError::ReadDir {
            path: "/etc/certkeeper/hooks/pre".into(),
            source: std::io::Error::from(std::io::ErrorKind::PermissionDenied),
        }));
        assert_eq!(
            error_chain(&error),
            "pre hook failed, so no order was placed: cannot read hooks directory /etc/certkeeper/hooks/pre: permission denied"
        );
    }

    #[test]
    fn only_an_unknown_account_is_registered_again() {
        assert!(
            AttemptError::from(CaFailure::from(refused("accountDoesNotExist", 400)))
                .is_account_gone()
        );
        assert!(
            !AttemptError::from(CaFailure::from(refused("unauthorized", 403))).is_account_gone()
        );
    }
}
