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
use certkeeper_store::{AttemptRecord, Lineage, LiveCert, LoadedLineage, Store, from_unix_seconds};

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
        let loaded = store.lineage(name).map(|lineage| {
            let live = lineage.live_certificate();
            (lineage, live)
        });
        Self::from_loaded(name, loaded)
    }

    fn from_loaded(name: &CertName, loaded: LoadedLineage) -> Self {
        let (lineage, live) = match loaded {
            Ok(loaded) => loaded,
            Err(err) => {
                let error = error_chain(&err);
                tracing::warn!(cert = %name, error, "lineage state unreadable; starting afresh");
                return Self::default();
            }
        };
        let live = match live {
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

    /// The planner's view of the attempt history of `spec`.
    pub fn attempts(&self, spec: &CertificateSpec) -> Attempts {
        attempts_from(&self.record, spec)
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
            &self.attempts(spec),
            &spec.schedule,
            now,
            force,
        )
    }
}

impl LineageView {
    /// [`LineageView::load`] for every spec, in order, spread over the machine's cores: for a
    /// large inventory, reading each lineage's state and certificate (`openat`, `read`, parse)
    /// is most of the work of a pass, and lineages are independent. Blocking: call it from a
    /// command's main thread or the runtime's blocking pool, never from the runtime thread
    /// that answers HTTP-01.
    #[must_use]
    pub fn load_all(store: &Store, specs: &[&CertificateSpec]) -> Vec<Self> {
        Self::load_each(store, specs, |_, view| view)
    }

    /// [`LineageView::load_all`], each view handed to `keep` as soon as it is read, so only
    /// what `keep` returns is held for the whole inventory (the daemon keeps a lighter
    /// copy; a full view holds the certificate's DER and the lineage's state).
    pub fn load_each<R: Send>(
        store: &Store,
        specs: &[&CertificateSpec],
        keep: impl Fn(&CertificateSpec, Self) -> R + Sync,
    ) -> Vec<R> {
        par_chunks(specs, |part| {
            let names: Vec<&CertName> = part.iter().map(|spec| &spec.name).collect();
            store
                .load_lineages(&names)
                .into_iter()
                .zip(part)
                .map(|(loaded, spec)| keep(spec, Self::from_loaded(&spec.name, loaded)))
                .collect()
        })
    }
}

/// `f` over `items`, in order, on up to as many threads as the machine has cores (small
/// inputs stay on the calling thread: a thread costs more than a few lineages).
pub fn par_map<T: Sync, R: Send>(items: &[T], f: impl Fn(&T) -> R + Sync) -> Vec<R> {
    par_chunks(items, |part| part.iter().map(&f).collect())
}

/// `f` over consecutive chunks of `items`, one chunk a thread, the results joined in order.
fn par_chunks<T: Sync, R: Send>(items: &[T], f: impl Fn(&[T]) -> Vec<R> + Sync) -> Vec<R> {
    const PER_THREAD_AT_LEAST: usize = 256;
    let threads = std::thread::available_parallelism()
        .map_or(1, std::num::NonZero::get)
        .min(items.len() / PER_THREAD_AT_LEAST)
        .min(8);
    if threads <= 1 {
        return f(items);
    }
    let chunk = items.len().div_ceil(threads);
    let f = &f;
    std::thread::scope(|scope| {
        let workers: Vec<_> = items
            .chunks(chunk)
            .map(|part| scope.spawn(move || f(part)))
            .collect();
        workers
            .into_iter()
            .flat_map(|worker| match worker.join() {
                Ok(part) => part,
                Err(panic) => std::panic::resume_unwind(panic),
            })
            .collect()
    })
}

/// The planner's view of a lineage's attempt history.
///
/// Failures that came from a profile the CA refused do not hold back `spec` once it asks for
/// another profile: the operator changed what failed, so it is ordered at once (a CA's
/// Retry-After still holds).
pub fn attempts_from(record: &AttemptRecord, spec: &CertificateSpec) -> Attempts {
    if record
        .refused_profile
        .as_ref()
        .is_some_and(|refused| spec.profile.as_ref() != Some(refused))
    {
        return Attempts {
            retry_not_before: record.retry_not_before_unix.map(from_unix_seconds),
            ..Attempts::default()
        };
    }
    Attempts {
        consecutive_failures: record.consecutive_failures,
        last_failure_at: record.last_failure_at_unix.map(from_unix_seconds),
        retry_not_before: record.retry_not_before_unix.map(from_unix_seconds),
    }
}
