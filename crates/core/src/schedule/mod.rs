//! The daemon's planner: when to act next for each certificate, and why.
//!
//! [`plan_certificate`] is a pure function of the instant `now`, the configured certificate,
//! the live certificate, the persisted attempt history and the policy. The engine sleeps until
//! the earliest planned instant ([`next_wake`]) instead of polling, and asks again after every
//! attempt, reload or wake-up. Nothing here reads a clock or a random source: jitter is a hash
//! of the certificate name, so a restart computes the same plan.
//!
//! # For operators
//!
//! certkeeper renews a certificate when a third of its lifetime is left (half, for certificates
//! of 10 days or less; or `renew_before`, when set), moved earlier by a fixed per-certificate
//! amount of up to a tenth of that period, so that certificates issued together do not all
//! renew at once and a restart never changes the plan. When the CA suggests a renewal window
//! (ARI), certkeeper renews at an instant chosen at random inside it instead (no earlier than
//! `renew_before` asks, when set), and a maintenance window that would open only after the
//! CA's window has closed is not waited for. With a maintenance window (a crontab time such as `30 2 1 * *` in a chosen time
//! zone), a due renewal waits for the next window start, unless that would leave less than the
//! urgent margin before expiry (by default 7 days, or a tenth of the lifetime for short
//! certificates); then it runs at that point, window or not. Missing certificates and
//! certificates whose names or key type changed in the configuration are ordered at once.
//! After a failure certkeeper retries after 1 minute, then 2, 4, 8 and so on up to 6 hours,
//! and never before the time a CA asked for with Retry-After, even close to expiry. Window
//! times follow the local clock: a start skipped by a daylight-saving change runs right after
//! the change, and one that happens twice runs only the first time.
//!
//! # Rules
//!
//! 1. **Due time.** From [`decide`]: a missing certificate, changed names or key type, or an
//!    expired certificate is due *now* and urgent. Otherwise the due time is the renewal point
//!    ([`ObservedCert::renewal_due_at`]) minus [`jitter`] over a tenth of the renew-before
//!    span (`renew_before`, or [`default_renew_before`]). Jitter only ever moves renewal
//!    earlier, and never moves the instant chosen in a CA's suggested window (ARI), which is
//!    random already. A revoked lineage is not planned (`None`).
//! 2. **Backoff.** After `n >= 1` consecutive failures, not before
//!    `last_failure_at + backoff_delay(n)` ([`Hold::Backoff`]), and never before the CA's
//!    `retry_not_before` ([`Hold::RetryAfter`]). Both hold even past the urgent point or
//!    expiry: the CA asked us to wait and a tight loop would not help.
//! 3. **Window.** If a window is configured and the certificate is not urgent at the
//!    candidate instant (the later of 1 and 2), the attempt waits for the window's next start
//!    at or after that candidate ([`Hold::Window`]), but never past the urgent point
//!    `not_after - urgent_threshold`: if the next start is later (or there is none), the
//!    attempt runs at the urgent point. A CA's suggested window that ends before both the
//!    next start and the urgent point overrides the maintenance window: the attempt runs at
//!    its chosen instant.
//! 4. **Urgent.** A plan is urgent when it is at or past the urgent point, or the certificate
//!    is missing, expired or no longer matches its configuration.
//! 5. **Now.** A plan whose instant has passed is returned as `now` (and then without a hold).
//!
//! Windows are looked up from the candidate instant, not from `now`, so the plan does not
//! depend on when the engine happens to wake: an engine that wakes a little late, or is busy
//! with another certificate when a window opens, still runs inside that window. The flip side
//! is that a window start missed entirely while the daemon was not running is made up as
//! soon as it runs again, as with systemd's `Persistent=true` timers.

mod backoff;
mod cron;
mod jitter;
#[cfg(test)]
mod tests;

use std::time::{Duration, SystemTime};

pub use backoff::{Backoff, backoff_delay};
pub use cron::{CronError, CronExpr, CronField, MaintenanceWindow};
pub use jitter::jitter;

use crate::inventory::CertificateSpec;
use crate::names::CertName;
use crate::renewal::{Decision, ObservedCert, Reason, decide, default_renew_before};

/// Default urgent margin for long-lived certificates.
const URGENT_BEFORE_MAX: Duration = Duration::from_secs(7 * 86_400);

/// Used by [`next_wake`] when `now + idle_recheck` cannot be represented.
const FALLBACK_RECHECK: Duration = Duration::from_secs(3600);

/// How certificates are scheduled, for the whole daemon.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SchedulePolicy {
    /// Inside this margin before expiry a renewal ignores the maintenance window.
    /// `None`: the smaller of 7 days and a tenth of the certificate's lifetime.
    pub urgent_before: Option<Duration>,
    /// When renewals may start; `None`: whenever they are due.
    pub window: Option<MaintenanceWindow>,
    pub backoff: Backoff,
}

/// Persisted history of attempts for one certificate (the engine stores it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Attempts {
    /// Failed attempts since the last success.
    pub consecutive_failures: u32,
    /// When the last of them failed. Without it there is nothing to count backoff from.
    pub last_failure_at: Option<SystemTime>,
    /// CA-imposed earliest retry (Retry-After header, or rateLimited).
    pub retry_not_before: Option<SystemTime>,
}

/// Why [`Planned::at`] is later than the certificate's due time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Waiting for the maintenance window (or, when the window is too far, the urgent point).
    Window,
    /// Waiting out the backoff after failures.
    Backoff,
    /// Waiting for the instant the CA asked for.
    RetryAfter,
}

impl Hold {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Hold::Window => "maintenance window",
            Hold::Backoff => "backoff",
            Hold::RetryAfter => "CA retry-after",
        }
    }
}

/// The next action for one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Planned {
    /// When to order; never before the `now` it was planned at (equal to it means: now).
    pub at: SystemTime,
    /// Why the certificate is ordered at `at`.
    pub reason: Reason,
    /// `true`: replaces a live certificate (renew); `false`: first issuance.
    pub renewal: bool,
    /// At `at` the certificate is inside the urgent margin, missing, expired, or no longer
    /// matches its configuration.
    pub urgent: bool,
    /// What postpones `at` beyond both the due time and `now`, if anything.
    pub hold: Option<Hold>,
}

/// Plan the next order for `spec`; `None` only for a lineage the operator revoked.
///
/// See the module documentation for the rules.
#[must_use]
pub fn plan_certificate(
    name: &CertName,
    spec: &CertificateSpec,
    observed: Option<&ObservedCert>,
    attempts: &Attempts,
    policy: &SchedulePolicy,
    now: SystemTime,
) -> Option<Planned> {
    let (reason, renewal, due, immediate) = match decide(spec, observed, now, false) {
        Decision::Revoked => return None,
        Decision::Issue(reason) => (reason, false, now, true),
        Decision::NotDue { due_at } => {
            let due = observed.map_or(due_at, |cert| jittered(name, spec, cert, due_at));
            (Reason::RenewalDue, true, due, false)
        }
        // Due already: anchor on the same jittered instant as before it became due, so the
        // plan (and any window it waits for) does not shift with the instant of asking.
        Decision::Renew(Reason::RenewalDue) => {
            let due = observed.map_or(now, |cert| {
                jittered(name, spec, cert, cert.renewal_due_at(spec.renew_before))
            });
            (Reason::RenewalDue, true, due, false)
        }
        Decision::Renew(reason) => (reason, true, now, true),
    };
    let urgent_point = observed.map(|cert| {
        cert.not_after
            .checked_sub(urgent_threshold(cert, policy))
            .unwrap_or(cert.not_before)
    });

    let mut at = due;
    let mut hold = None;
    if let Some(until) = backoff_until(name, attempts, &policy.backoff)
        && until > at
    {
        at = until;
        hold = Some(Hold::Backoff);
    }
    if let Some(until) = attempts.retry_not_before {
        // On a tie with the backoff the CA's word is the one to report.
        if until > due && until >= at {
            at = until;
            hold = Some(Hold::RetryAfter);
        }
    }
    if let (Some(window), Some(urgent_point), false) = (&policy.window, urgent_point, immediate)
        && at < urgent_point
    {
        // The CA's suggested window, when it ends first, is a deadline like the urgent
        // point, except that the renewal then runs at its chosen instant: the CA asked for
        // a renewal inside its window, not at its last moment.
        let ari_end = observed
            .and_then(|cert| cert.suggested.as_deref())
            .map(|suggested| suggested.window.end)
            .filter(|end| *end < urgent_point);
        let start = match window.next_start(at) {
            Some(start) if start < ari_end.unwrap_or(urgent_point) => start,
            _ if ari_end.is_some() => at,
            _ => urgent_point,
        };
        if start > at {
            at = start;
            hold = Some(Hold::Window);
        }
    }
    if at <= now {
        at = now;
        hold = None;
    }

    let expired = observed.is_some_and(|cert| at >= cert.not_after);
    let reason = if reason == Reason::RenewalDue && expired {
        Reason::Expired
    } else {
        reason
    };
    Some(Planned {
        at,
        reason,
        renewal,
        urgent: immediate || observed.is_none() || urgent_point.is_none_or(|point| at >= point),
        hold,
    })
}

/// Plan a one-shot pass (`certkeeper renew`): the daemon's rules, the same due time, jitter,
/// backoff and CA Retry-After, without the maintenance window (a pass runs when the operator
/// or their timer runs it). Forced, the certificate is due now, revoked or not, and
/// certkeeper's own backoff is skipped; a CA's Retry-After never is: the attempt is held until
/// then ([`Hold::RetryAfter`]).
#[must_use]
pub fn plan_one_shot(
    name: &CertName,
    spec: &CertificateSpec,
    observed: Option<&ObservedCert>,
    attempts: &Attempts,
    policy: &SchedulePolicy,
    now: SystemTime,
    force: bool,
) -> Option<Planned> {
    if force {
        let (at, hold) = match attempts.retry_not_before {
            Some(until) if until > now => (until, Some(Hold::RetryAfter)),
            _ => (now, None),
        };
        return Some(Planned {
            at,
            reason: Reason::Forced,
            renewal: observed.is_some(),
            urgent: observed.is_none_or(|cert| at >= cert.not_after),
            hold,
        });
    }
    let policy = SchedulePolicy {
        window: None,
        ..policy.clone()
    };
    plan_certificate(name, spec, observed, attempts, &policy, now)
}

/// `due_at` moved earlier by the certificate's jitter over a tenth of its renew-before span.
/// An instant chosen in the CA's suggested window is not moved: it is random already, and
/// moving it could take it out of the window.
fn jittered(
    name: &CertName,
    spec: &CertificateSpec,
    cert: &ObservedCert,
    due_at: SystemTime,
) -> SystemTime {
    if cert
        .suggested
        .as_deref()
        .is_some_and(|suggested| suggested.at == due_at)
    {
        return due_at;
    }
    let span = spec
        .renew_before
        .unwrap_or_else(|| default_renew_before(cert.lifetime()))
        / 10;
    due_at.checked_sub(jitter(name, span)).unwrap_or(due_at)
}

/// The earliest instant the backoff allows, if a failure is on record.
#[must_use]
pub fn backoff_until(
    name: &CertName,
    attempts: &Attempts,
    backoff: &Backoff,
) -> Option<SystemTime> {
    if attempts.consecutive_failures == 0 {
        return None;
    }
    let last = attempts.last_failure_at?;
    let delay = backoff_delay(name, attempts.consecutive_failures, backoff);
    Some(last.checked_add(delay).unwrap_or(last))
}

/// The margin before expiry inside which renewal no longer waits for a window:
/// `policy.urgent_before`, or the smaller of 7 days and a tenth of the lifetime.
#[must_use]
pub fn urgent_threshold(observed: &ObservedCert, policy: &SchedulePolicy) -> Duration {
    policy
        .urgent_before
        .unwrap_or_else(|| URGENT_BEFORE_MAX.min(observed.lifetime() / 10))
}

/// When the engine should wake next: the earliest planned instant after `now`, but no later
/// than `now + idle_recheck`.
///
/// Instants at or before `now` are skipped: they are due, and the engine acts on them before
/// it sleeps rather than waking for them. The cap makes the daemon look at the wall clock
/// again at least every `idle_recheck` (hourly, say), which catches suspend/resume and clock
/// jumps that a sleep measured on a monotonic clock would miss.
#[must_use]
pub fn next_wake(
    planned: impl IntoIterator<Item = SystemTime>,
    now: SystemTime,
    idle_recheck: Duration,
) -> SystemTime {
    let earliest = planned.into_iter().filter(|at| *at > now).min();
    // An `idle_recheck` too large to add to `now` means no cap; with nothing planned either,
    // wake in an hour rather than at `now`, which would spin.
    match (earliest, now.checked_add(idle_recheck)) {
        (Some(at), Some(cap)) => at.min(cap),
        (Some(at), None) => at,
        (None, Some(cap)) => cap,
        (None, None) => now.checked_add(FALLBACK_RECHECK).unwrap_or(now),
    }
}
