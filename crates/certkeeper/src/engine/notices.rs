//! The daemon's notifications: what it observed about a certificate, turned into notices in
//! the outbox.
//!
//! The rule of which notices an observation calls for is the core's pure
//! [`decide`](certkeeper_core::notify::decide); what was notified lives in the lineage's state
//! (written only through [`Lineage::record_notified`], and only when it changes). Queueing is a
//! few file writes in the outbox ([`Dispatcher::notify`]); delivery is [`Dispatcher::run`],
//! one future the daemon owns as a task, cancelled with the lifecycle's soft token and
//! rebuilt on a reload with the new targets. So a slow or failing target never holds up the
//! daemon's loop: at worst its notices wait in the outbox.

use std::sync::Arc;
use std::time::SystemTime;

use certkeeper_core::notify::{NotifyState, Observation, decide};
use certkeeper_core::{CertificateSpec, Clock, Event, Inventory};
use certkeeper_notify::{Dispatcher, Notice, Outbox, host_name};
use certkeeper_store::{Lineage, Store};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::report::error_chain;

/// What a notice says beyond its event and certificate.
#[derive(Debug, Default, Clone)]
pub struct Details {
    pub error: Option<String>,
    pub not_after: Option<SystemTime>,
    pub next_attempt: Option<SystemTime>,
}

/// The dispatcher of the configured targets and the task delivering for it.
#[derive(Debug)]
pub struct Notifier {
    dispatcher: Arc<Dispatcher>,
    host: String,
    stop: CancellationToken,
    delivery: JoinHandle<()>,
}

impl Notifier {
    /// Start delivering to `inventory.notify` from `state_dir/outbox` until `cancel` fires
    /// (or [`Notifier::stop`]); `None` when no target is configured.
    ///
    /// # Errors
    /// When the outbox cannot be created or a target cannot be set up.
    pub fn start(
        inventory: &Inventory,
        store: &Store,
        clock: Arc<dyn Clock>,
        cancel: &CancellationToken,
    ) -> anyhow::Result<Option<Self>> {
        if inventory.notify.is_empty() {
            return Ok(None);
        }
        let outbox = Outbox::open(store.outbox_dir()?)?;
        let host = host_name();
        let dispatcher = Arc::new(Dispatcher::new(&inventory.notify, outbox, &host, clock)?);
        if let Ok(names) = dispatcher.unconfigured_targets() {
            for name in names {
                tracing::warn!(
                    notify_target = name,
                    "the outbox holds notices for a target that is no longer configured; they wait there until it is"
                );
            }
        }
        let stop = cancel.child_token();
        let delivery = tokio::spawn({
            let (dispatcher, stop) = (Arc::clone(&dispatcher), stop.clone());
            async move { dispatcher.run(stop).await }
        });
        Ok(Some(Self {
            dispatcher,
            host,
            stop,
            delivery,
        }))
    }

    /// The number of notices waiting in the outbox for each configured target, in
    /// configuration order (targets no longer configured are left out).
    #[must_use]
    pub fn undelivered(&self) -> Vec<(String, usize)> {
        undelivered(self.dispatcher.outbox(), &self.dispatcher.names())
    }

    /// Stop delivering and wait for it (an attempt in flight is dropped; its entry stays in
    /// the outbox).
    pub async fn stop(self) {
        self.stop.cancel();
        if let Err(err) = self.delivery.await {
            tracing::error!(error = %err, "the notification task panicked");
        }
    }

    /// Decide what `observation` calls for given `notified` (the lineage's state), queue the
    /// notices and record the new state in the lineage `spec` names (only when it changed).
    /// Returns the state as it now is. Failures are logged, never returned: a notice must
    /// not stop a renewal.
    pub fn observe(
        &self,
        store: &Store,
        spec: &CertificateSpec,
        notified: NotifyState,
        observation: Observation,
        details: &Details,
        now: SystemTime,
    ) -> NotifyState {
        let decided = decide(notified, observation, now);
        if decided.events.is_empty() && decided.state == notified {
            return notified;
        }
        for &event in &decided.events {
            self.enqueue(spec, event, details, now);
        }
        if decided.state != notified {
            let recorded = store
                .lineage(&spec.name)
                .and_then(|mut lineage: Lineage| lineage.record_notified(decided.state));
            if let Err(err) = recorded {
                tracing::warn!(cert = %spec.name, error = error_chain(&err), "cannot record what was notified; a notice may repeat");
            }
        }
        decided.state
    }

    fn enqueue(&self, spec: &CertificateSpec, event: Event, details: &Details, now: SystemTime) {
        let mut notice = Notice::about(event, spec, &self.host, now);
        if let Some(error) = &details.error {
            notice = notice.with_error(error.clone());
        }
        if let Some(not_after) = details.not_after {
            notice = notice.with_not_after(not_after);
        }
        if let Some(next_attempt) = details.next_attempt {
            notice = notice.with_next_attempt(next_attempt);
        }
        match self.dispatcher.notify(&notice) {
            Ok(entries) => {
                for entry in entries {
                    log_enqueued(spec, event, &entry.target);
                }
            }
            Err(err) => {
                tracing::error!(cert = %spec.name, notify_event = %event, error = error_chain(&err), "cannot queue a notice");
            }
        }
    }
}

/// The number of notices waiting in `outbox` for each of `targets`, then for any other
/// target that has some (one no longer configured). A target whose backlog cannot be read
/// counts none (and is logged).
#[must_use]
pub fn undelivered(outbox: &Outbox, targets: &[String]) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = targets.iter().map(|name| (name.clone(), 0)).collect();
    match outbox.pending() {
        Ok(entries) => {
            for entry in entries {
                match counts.iter_mut().find(|(name, _)| *name == entry.target) {
                    Some((_, count)) => *count += 1,
                    None => counts.push((entry.target, 1)),
                }
            }
        }
        Err(err) => {
            tracing::warn!(
                error = error_chain(&err),
                "cannot read the notification outbox"
            );
        }
    }
    counts
}

/// One line per notice queued, at the level of its event: `failed` and `expiring` (only ever
/// decided inside the urgent margin) need a human; the others are news.
fn log_enqueued(spec: &CertificateSpec, event: Event, target: &str) {
    match event {
        Event::Failed | Event::Expiring => tracing::error!(
            cert = %spec.name,
            notify_event = %event,
            notify_target = target,
            "notice queued"
        ),
        _ => tracing::info!(
            cert = %spec.name,
            notify_event = %event,
            notify_target = target,
            "notice queued"
        ),
    }
}
