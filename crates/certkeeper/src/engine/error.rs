//! The ways an attempt ends without doing what it set out to: [`AttemptError`] (no certificate
//! was installed; the live one, if any, stays) with its one classification
//! ([`AttemptError::class`]), and [`HookFailure`] (a phase of hooks did not succeed).
//!
//! They sit below everything else in the engine because its ports (`engine/ports.rs`) speak
//! them: the solvers port may refuse a certificate ([`NoSolver`]), the hooks port answers with
//! a [`HookFailure`], and the daemon's runner port hands back an [`AttemptError`]. The
//! classification itself is decided by the crate that knows each cause (the ACME adapter for
//! the CA's answers, the store for the disk), so a scripted port that returns the adapter's
//! own error values gets the same class as the real one.

use std::fmt;

use certkeeper_acme::{AcmeError, CaFailure};
use certkeeper_core::lifecycle::DirectoryUrlError;
use certkeeper_core::{CaName, CertName};
use certkeeper_fleet::FleetError;
use certkeeper_hooks::{HookError, HookOutcome};
use certkeeper_store::{FailureClass, StoreError};

use crate::accounts::AccountError;
use crate::report::error_chain;

/// After this node lost a certificate's lease, look at the certificate again this much later
/// (by then the new holder has published it, or its lease ran out too).
pub const RECHECK_LOST_CLAIM: std::time::Duration = std::time::Duration::from_secs(60);

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
    /// No challenge solver can answer the certificate's challenges, so no order was placed.
    #[error(transparent)]
    NoSolver(#[from] NoSolver),
    /// Another node of the fleet holds the certificate's lease: it renews it, and this node
    /// installs what it publishes. Not a failure.
    #[error(
        "node {owner} of the fleet is renewing this certificate; it is installed here once published"
    )]
    Elsewhere {
        owner: String,
        until: std::time::SystemTime,
    },
    /// This node lost the certificate's lease while working on it (the database's clock said
    /// it expired, or another node took it over): it stopped without publishing anything.
    #[error("the fleet lease on {cert} was lost; the node that holds it now carries the order on")]
    ClaimLost { cert: CertName },
    /// Another node of the fleet failed at this certificate lately and its backoff runs until
    /// `until`: the fleet waits as one node would. Not counted as a failure here.
    #[error(
        "another node of the fleet failed at this certificate lately; the fleet tries again after its backoff"
    )]
    FleetBackoff { until: std::time::SystemTime },
    /// Another node's certificate was installed here since the attempt was planned: nothing
    /// to order. Not a failure.
    #[error("a certificate another node of the fleet published was installed meanwhile")]
    Superseded,
    /// The fleet's database could not be used for the attempt (unreachable, refused, fenced).
    #[error(transparent)]
    Fleet(#[from] FleetError),
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
            AttemptError::Account(AccountError::FleetRegistering { .. }) => {
                FailureClass::Transient { retry_after: None }
            }
            AttemptError::Account(AccountError::Fleet { source, .. }) => fleet_class(source),
            AttemptError::Stopping => FailureClass::WaitingOnCa,
            AttemptError::Elsewhere { until, .. } => FailureClass::Elsewhere { recheck_at: *until },
            // The new holder carries it on; look again once a lease would have run out.
            AttemptError::ClaimLost { .. } => FailureClass::Elsewhere {
                recheck_at: std::time::SystemTime::now() + RECHECK_LOST_CLAIM,
            },
            AttemptError::Fleet(error) => fleet_class(error),
            AttemptError::FleetBackoff { until } => FailureClass::Elsewhere { recheck_at: *until },
            // Planned again at once, from what is live now.
            AttemptError::Superseded => FailureClass::Elsewhere {
                recheck_at: std::time::SystemTime::now(),
            },
            AttemptError::UnknownCa { .. }
            | AttemptError::DirectoryUrl { .. }
            | AttemptError::NoSolver(_) => FailureClass::NeedsHuman,
        }
    }

    /// The profile the CA refused because it does not offer it, if that is what happened.
    pub fn refused_profile(&self) -> Option<&str> {
        match self {
            AttemptError::Acme(CaFailure {
                error: AcmeError::UnknownProfile { profile, .. },
                ..
            }) => Some(profile),
            _ => None,
        }
    }

    /// The CA answered `accountDoesNotExist`: registering again may carry the attempt on.
    pub fn is_account_gone(&self) -> bool {
        matches!(self, AttemptError::Acme(failure) if failure.error.is_account_gone())
    }
}

/// Why the engine's solvers port has no challenge solver for a certificate (a solver that
/// cannot be set up from its configuration, say): a human must look.
#[derive(Debug, thiserror::Error)]
#[error("no challenge solver for certificate {cert}")]
pub struct NoSolver {
    pub cert: CertName,
    #[source]
    pub source: Box<dyn std::error::Error + Send + Sync + 'static>,
}

/// The class of a fleet database error: a lost lease is the new holder's business, an
/// unavailable database is retried, anything else (a refused login, a wrong fleet key) needs
/// a human.
fn fleet_class(error: &FleetError) -> FailureClass {
    match error {
        FleetError::Fenced { .. }
        | FleetError::LeaseExpired { .. }
        | FleetError::LeaseLost { .. } => FailureClass::Elsewhere {
            recheck_at: std::time::SystemTime::now() + RECHECK_LOST_CLAIM,
        },
        error if error.is_unavailable() => FailureClass::Transient { retry_after: None },
        _ => FailureClass::NeedsHuman,
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

/// The hooks of one phase that did not succeed (the others of the phase still ran).
#[derive(Debug)]
pub struct HookFailure(Vec<FailedHook>);

/// One hook that did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum FailedHook {
    /// It ran and failed: its exit code, the signal that ended it, or its timeout.
    #[error("hook {label} {outcome}")]
    Ran {
        label: String,
        outcome: Box<HookOutcome>,
    },
    /// It could not be started or waited for, or its hooks directory could not be listed.
    #[error(transparent)]
    NotRun(#[from] HookError),
}

impl From<Vec<FailedHook>> for HookFailure {
    fn from(failed: Vec<FailedHook>) -> Self {
        HookFailure(failed)
    }
}

impl From<HookError> for HookFailure {
    fn from(error: HookError) -> Self {
        HookFailure(vec![error.into()])
    }
}

impl fmt::Display for HookFailure {
    /// Each failed hook with its causes, `; `-separated.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, failed) in self.0.iter().enumerate() {
            if index > 0 {
                f.write_str("; ")?;
            }
            f.write_str(&error_chain(failed))?;
        }
        Ok(())
    }
}

/// Its causes are in its message (there may be several), so it has no `source`.
impl std::error::Error for HookFailure {}

#[cfg(test)]
mod tests {
    use std::time::{Duration, SystemTime};

    use certkeeper_acme::AcmeError;
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
