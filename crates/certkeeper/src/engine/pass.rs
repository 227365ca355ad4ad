//! A one-shot pass over some certificates, as `certkeeper renew` runs it and as the daemon
//! runs it for a `renew` that reached it over the control socket: what to do with each
//! certificate, and the one line said about it. Both say the same words because both come
//! from here.

use std::time::SystemTime;

use certkeeper_core::schedule::{Hold, Planned};
use certkeeper_core::{CertificateSpec, Inventory};
use certkeeper_store::{Lineage, LiveCert};

use crate::engine::job::AttemptError;
use crate::engine::plan::LineageView;
use crate::report::{error_chain, short_duration, timestamp};

/// A name on the command line that the inventory does not have.
#[derive(Debug, thiserror::Error)]
#[error("no certificate named {name:?} in the inventory (known: {known})")]
pub struct UnknownCertificate {
    pub name: String,
    pub known: String,
}

/// The certificates named (all when none are), or the first unknown name.
///
/// # Errors
/// [`UnknownCertificate`] naming the certificates the inventory has.
pub fn select<'a>(
    inventory: &'a Inventory,
    names: &[String],
) -> Result<Vec<&'a CertificateSpec>, UnknownCertificate> {
    if names.is_empty() {
        return Ok(inventory.certificates.iter().collect());
    }
    names
        .iter()
        .map(|name| {
            inventory
                .certificate(name)
                .ok_or_else(|| UnknownCertificate {
                    name: name.clone(),
                    known: inventory
                        .certificates
                        .iter()
                        .map(|c| c.name.as_str())
                        .collect::<Vec<_>>()
                        .join(", "),
                })
        })
        .collect()
}

/// What a pass does with one certificate.
#[derive(Debug)]
pub enum Step {
    /// Attempt it now, on the lineage the plan was made from (when it could be read).
    Attempt(Planned, Option<Lineage>),
    /// Leave it; `line` says why.
    Skip(Skip),
}

#[derive(Debug)]
pub struct Skip {
    pub line: String,
    /// Held by a failure history (backoff, a CA's Retry-After): the certificate is failing.
    pub failing: bool,
    /// Not due, with a deploy still pending for its live certificate.
    pub redeploy: Option<LiveCert>,
}

/// Plan `spec` for a pass at `now`.
pub fn step(view: LineageView, spec: &CertificateSpec, now: SystemTime, force: bool) -> Step {
    if let (Some(refused), false) = (&view.record.refused_profile, force)
        && spec.profile.as_ref() == Some(refused)
    {
        return Step::Skip(Skip {
            line: format!(
                "{}: not attempted: the CA does not offer profile {refused:?}; change `profile` in the configuration (or `certkeeper renew --force {}` to try it again){}",
                spec.name,
                spec.name,
                view.record
                    .last_error
                    .as_ref()
                    .map(|error| format!("; last error: {error}"))
                    .unwrap_or_default(),
            ),
            failing: true,
            redeploy: None,
        });
    }
    let Some(planned) = view.plan_one_shot(spec, now, force) else {
        return Step::Skip(Skip {
            line: format!(
                "{}: revoked; not renewed (use --force to issue anew)",
                spec.name
            ),
            failing: false,
            redeploy: None,
        });
    };
    if planned.at <= now {
        return Step::Attempt(planned, view.lineage);
    }
    let wait = short_duration(planned.at.duration_since(now).unwrap_or_default());
    let at = timestamp(planned.at);
    let last_error = view
        .record
        .last_error
        .as_ref()
        .map(|error| format!("; last error: {error}"))
        .unwrap_or_default();
    let name = &spec.name;
    Step::Skip(match planned.hold {
        Some(Hold::RetryAfter) => Skip {
            line: format!(
                "{name}: not attempted: the CA asked to wait until {at} (in {wait}){last_error}"
            ),
            failing: true,
            redeploy: None,
        },
        Some(Hold::Backoff) => Skip {
            line: format!(
                "{name}: not attempted: backing off after {} failed attempts until {at} (in {wait}); `certkeeper renew --force {name}` tries now{last_error}",
                view.record.consecutive_failures,
            ),
            failing: true,
            redeploy: None,
        },
        Some(Hold::Window) | None => Skip {
            line: format!("{name}: not due (renewal in {wait}, at {at})"),
            failing: false,
            redeploy: if view.record.pending_deploy {
                view.live
            } else {
                None
            },
        },
    })
}

/// The line for a certificate an attempt installed.
pub fn installed_line(spec: &CertificateSpec, renewal: bool, installed: &LiveCert) -> String {
    format!(
        "{}: {} (serial {}, expires {})",
        spec.name,
        if renewal { "renewed" } else { "issued" },
        installed.serial_hex,
        timestamp(installed.observed.not_after)
    )
}

/// The line for installed certificate whose deploy hooks failed.
pub fn deploy_failed_line(spec: &CertificateSpec) -> String {
    format!(
        "{}: deploy hooks failed (the certificate is installed; they run again on the next pass)",
        spec.name
    )
}

/// The error line (stderr) of a failed attempt; the live certificate, if any, stays.
pub fn failed_line(spec: &CertificateSpec, error: &AttemptError) -> String {
    format!("error: {}: {}", spec.name, error_chain(error))
}
