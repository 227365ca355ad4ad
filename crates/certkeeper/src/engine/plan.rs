//! What the engine knows about a lineage when it plans, and the plan itself.
//!
//! Every command that plans (`run`, `renew`, `status`) reads a lineage through
//! [`LineageView::load`] and asks the core's planner, so they cannot drift apart: the daemon
//! with `plan_certificate` (maintenance windows included; it keeps a lighter copy of the view
//! between passes), a one-shot pass with [`plan_one_shot`] (the same rules without the
//! window; `--force` skips certkeeper's own backoff but never a CA's Retry-After).

use std::time::SystemTime;

use certkeeper_core::schedule::{Attempts, Planned, plan_one_shot};
use certkeeper_core::{CertName, CertificateSpec, ObservedCert};
use certkeeper_store::{AttemptRecord, Lineage, LiveCert, Store, from_unix_seconds};

use crate::report::error_chain;

/// A lineage as the planner sees it: the live certificate (if readable) and its history, read
/// once; the same [`Lineage`] then records what an attempt does.
#[derive(Debug, Clone, Default)]
pub struct LineageView {
    /// The live certificate; `None` when there is none or it is unreadable (then it is
    /// replaced: an unreadable lineage is re-issued rather than trusted).
    pub live: Option<LiveCert>,
    /// The persisted record of attempts and deploys.
    pub record: AttemptRecord,
    /// The lineage, loaded; `None` when its state is unreadable (planned from a fresh
    /// history; an attempt then fails loading it, naming the file).
    pub lineage: Option<Lineage>,
}

impl LineageView {
    /// Read `name` from the store: its state once, then the certificate only (what planning
    /// needs; `status` checks the pair itself) against that state.
    pub fn load(store: &Store, name: &CertName) -> Self {
        let lineage = match store.lineage(name) {
            Ok(lineage) => lineage,
            Err(err) => {
                let error = error_chain(&err);
                tracing::warn!(cert = %name, error, "lineage state unreadable; starting afresh");
                return Self::default();
            }
        };
        let live = match lineage.live_certificate() {
            Ok(live) => live,
            Err(err) => {
                let error = error_chain(&err);
                tracing::warn!(cert = %name, error, "live certificate unreadable; it will be replaced");
                None
            }
        };
        Self {
            live,
            record: lineage.state().attempts.clone(),
            lineage: Some(lineage),
        }
    }

    pub fn observed(&self) -> Option<&ObservedCert> {
        self.live.as_ref().map(|live| &live.observed)
    }

    /// The planner's view of the attempt history.
    pub fn attempts(&self) -> Attempts {
        attempts_from(&self.record)
    }

    /// A one-shot pass's plan (`certkeeper renew`).
    pub fn plan_one_shot(
        &self,
        spec: &CertificateSpec,
        now: SystemTime,
        force: bool,
    ) -> Option<Planned> {
        plan_one_shot(
            &spec.name,
            spec,
            self.observed(),
            &self.attempts(),
            &spec.schedule,
            now,
            force,
        )
    }
}

/// The planner's view of a lineage's attempt history.
pub fn attempts_from(record: &AttemptRecord) -> Attempts {
    Attempts {
        consecutive_failures: record.consecutive_failures,
        last_failure_at: record.last_failure_at_unix.map(from_unix_seconds),
        retry_not_before: record.retry_not_before_unix.map(from_unix_seconds),
    }
}
