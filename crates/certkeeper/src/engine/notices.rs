//! The daemon's notifications: what it observed about a certificate, turned into notices in
//! the outbox.
//!
//! The rule of which notices an observation calls for is the core's pure
//! [`decide`](certkeeper_core::notify::decide); what was notified lives in the lineage's state
//! (written only through [`Lineage::record_notified`], and only when it changes). Queueing is a
//! few file writes in the outbox ([`Dispatcher::notify`]); delivery is [`Dispatcher::run`],
//! one future the daemon owns as a task, cancelled with the lifecycle's soft token and
//! rebuilt on a reload with the new targets. So a slow or failing target never holds up the
//! daemon's loop: at worst its notices wait in the outbox. The daily digest is queued per
//! target from the daemon's pass ([`Notifier::queue_digests`]); when the last one went out is
//! the outbox's to remember, when the next is due the core's
//! [`next_digest`](certkeeper_core::notify::next_digest).

use std::sync::Arc;
use std::time::SystemTime;

use certkeeper_core::notify::{NotifyState, Observation, decide, digest_due, next_digest};
use certkeeper_core::{CertificateSpec, Clock, Event, Inventory};
use certkeeper_notify::{DigestEntry, Dispatcher, Entry, Notice, Outbox, host_name};
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

    /// Queue the daily digest for every target that wants it and has not had one in the last
    /// day ([`digest_due`]; the instant is remembered in the outbox, so a restart does not
    /// send a second one), with `entries()` (made once, only when a digest is due). Returns
    /// when the next digest is due, `None` when no target wants one. Failures are logged.
    pub fn queue_digests(
        &self,
        entries: impl FnOnce() -> Vec<DigestEntry>,
        now: SystemTime,
    ) -> Option<SystemTime> {
        let mut entries = Some(entries);
        let mut made: Option<Vec<DigestEntry>> = None;
        let mut next: Option<SystemTime> = None;
        let outbox = self.dispatcher.outbox();
        for target in self.dispatcher.wanting(Event::Digest) {
            let last = match outbox.last_digest(&target) {
                Ok(last) => last,
                Err(err) => {
                    tracing::warn!(
                        notify_target = target,
                        error = error_chain(&err),
                        "cannot read when the last digest was queued; no digest until it can be read"
                    );
                    continue;
                }
            };
            let due = if digest_due(last, now) {
                let lines =
                    made.get_or_insert_with(|| entries.take().map(|f| f()).unwrap_or_default());
                let notice = Notice::digest(lines.clone(), &self.host, now);
                match self.dispatcher.notify_target(&target, &notice) {
                    Ok(Some(_)) => {
                        tracing::info!(notify_event = %Event::Digest, notify_target = target, certificates = lines.len(), "notice queued");
                        if let Err(err) = outbox.record_digest(&target, now) {
                            tracing::warn!(
                                notify_target = target,
                                error = error_chain(&err),
                                "cannot record that the digest was queued; it may be sent again"
                            );
                        }
                    }
                    Ok(None) => {}
                    Err(err) => {
                        tracing::error!(notify_target = target, notify_event = %Event::Digest, error = error_chain(&err), "cannot queue a notice");
                    }
                }
                next_digest(Some(now), now)
            } else {
                next_digest(last, now)
            };
            next = Some(next.map_or(due, |next| next.min(due)));
        }
        next
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
    count_by_target(&pending(outbox), targets)
}

/// Every entry waiting in `outbox`; none (logged) when it cannot be read.
#[must_use]
pub fn pending(outbox: &Outbox) -> Vec<Entry> {
    outbox.pending().unwrap_or_else(|err| {
        tracing::warn!(
            error = error_chain(&err),
            "cannot read the notification outbox"
        );
        Vec::new()
    })
}

/// How many of `entries` wait for each of `targets` (zero included), then for any other
/// target that has some, in that order.
#[must_use]
pub fn count_by_target<'e>(
    entries: impl IntoIterator<Item = &'e Entry>,
    targets: &[String],
) -> Vec<(String, usize)> {
    let mut counts: Vec<(String, usize)> = targets.iter().map(|name| (name.clone(), 0)).collect();
    for entry in entries {
        match counts.iter_mut().find(|(name, _)| *name == entry.target) {
            Some((_, count)) => *count += 1,
            None => counts.push((entry.target.clone(), 1)),
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
