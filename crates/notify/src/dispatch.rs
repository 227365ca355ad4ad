//! The dispatcher: queues notices for the targets that want them and delivers every target's
//! backlog independently.
//!
//! [`Dispatcher::notify`] only writes the outbox and wakes the targets concerned, so the
//! engine never waits for a receiver. [`Dispatcher::run`] drives one loop per target, all
//! inside the one future the caller awaits (no detached tasks): each loop sends its target's
//! due entries oldest first, each within the target's timeout, then sleeps until its next
//! entry is due, a new notice arrives, or the caller cancels. A target that fails is left
//! alone until the failed entry's next try (one attempt per backoff step, not one per queued
//! notice), while the other loops carry on. Cancellation drops an attempt in flight; its
//! entry stays in the outbox and is sent after the restart.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certkeeper_core::notify::NotifyTarget;
use certkeeper_core::{Clock, Event, NotifySpec};
use futures_util::future::join_all;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::email::EmailSender;
use crate::webhook::WebhookSender;
use crate::{Entry, Notice, NotifyError, Outbox, command};

/// The longest a target's loop sleeps before looking at the outbox and the clock again
/// (catches clock jumps and entries written by another process, such as `notify test`).
const IDLE_RECHECK: Duration = Duration::from_secs(300);
/// What a command target is given beyond its own timeout, so the hook runner reports the
/// timeout (and kills the process group) before the dispatcher gives up on it.
const COMMAND_GRACE: Duration = Duration::from_secs(10);

/// The outcome of one attempt to deliver one entry.
#[derive(Debug)]
pub struct Delivery {
    pub target: String,
    /// The outbox entry's id.
    pub id: String,
    pub event: Event,
    pub certificate: Option<String>,
    pub result: Result<(), NotifyError>,
}

/// Sends notices to the configured targets through an [`Outbox`].
#[derive(Debug)]
pub struct Dispatcher {
    outbox: Outbox,
    targets: Vec<Target>,
    clock: Arc<dyn Clock>,
}

#[derive(Debug)]
struct Target {
    spec: NotifySpec,
    sender: Sender,
    /// Woken when a notice is queued for this target.
    wake: Notify,
}

#[derive(Debug)]
enum Sender {
    Webhook(Box<WebhookSender>),
    Email(EmailSender),
    Command,
}

impl Dispatcher {
    /// A dispatcher for `specs` (the inventory's `notify`) over `outbox`; `host` is this
    /// host's name (for EHLO), `clock` where it reads the time.
    ///
    /// # Errors
    /// When a target cannot be set up: an unreadable `root_ca_file`, an address the mailer
    /// does not accept. The configuration checks these too, so this means the file changed.
    pub fn new(
        specs: &[NotifySpec],
        outbox: Outbox,
        host: &str,
        clock: Arc<dyn Clock>,
    ) -> Result<Self, NotifyError> {
        let targets = specs
            .iter()
            .map(|spec| {
                let sender = match &spec.target {
                    NotifyTarget::Webhook(webhook) => {
                        Sender::Webhook(Box::new(WebhookSender::new(&spec.name, webhook)?))
                    }
                    NotifyTarget::Email(email) => {
                        Sender::Email(EmailSender::new(&spec.name, email, host)?)
                    }
                    NotifyTarget::Command(_) => Sender::Command,
                };
                Ok(Target {
                    spec: spec.clone(),
                    sender,
                    wake: Notify::new(),
                })
            })
            .collect::<Result<Vec<_>, NotifyError>>()?;
        Ok(Self {
            outbox,
            targets,
            clock,
        })
    }

    /// The outbox notices are queued in.
    #[must_use]
    pub fn outbox(&self) -> &Outbox {
        &self.outbox
    }

    /// Queue `notice` for every target that wants its event, and wake them. Returns the
    /// entries written (none when no target wants the event).
    ///
    /// # Errors
    /// When the outbox cannot be written; entries written before the failure stay queued.
    pub fn notify(&self, notice: &Notice) -> Result<Vec<Entry>, NotifyError> {
        let mut entries = Vec::new();
        for target in self.targets.iter().filter(|t| t.spec.wants(notice.event)) {
            entries.push(self.outbox.enqueue(&target.spec.name, notice)?);
            target.wake.notify_one();
        }
        Ok(entries)
    }

    /// The targets that want `event`, in configuration order.
    #[must_use]
    pub fn wanting(&self, event: Event) -> Vec<String> {
        self.targets
            .iter()
            .filter(|target| target.spec.wants(event))
            .map(|target| target.spec.name.clone())
            .collect()
    }

    /// Queue `notice` for target `name` alone (the daily digest, which each target gets on
    /// its own day) and wake it. `None` when no such target is configured or it does not
    /// want the notice's event.
    ///
    /// # Errors
    /// When the outbox cannot be written.
    pub fn notify_target(&self, name: &str, notice: &Notice) -> Result<Option<Entry>, NotifyError> {
        let Some(target) = self
            .targets
            .iter()
            .find(|t| t.spec.name == name && t.spec.wants(notice.event))
        else {
            return Ok(None);
        };
        let entry = self.outbox.enqueue(name, notice)?;
        target.wake.notify_one();
        Ok(Some(entry))
    }

    /// Send `notice` to target `name` now, without the outbox: `certkeeper notify test`.
    ///
    /// # Errors
    /// [`NotifyError::UnknownTarget`], or why the target did not take it.
    pub async fn send_now(&self, name: &str, notice: &Notice) -> Result<(), NotifyError> {
        let target = self
            .targets
            .iter()
            .find(|target| target.spec.name == name)
            .ok_or_else(|| NotifyError::UnknownTarget {
                name: name.to_owned(),
                known: self.names(),
            })?;
        target.send(notice).await
    }

    /// Target names, in configuration order.
    #[must_use]
    pub fn names(&self) -> Vec<String> {
        self.targets
            .iter()
            .map(|target| target.spec.name.clone())
            .collect()
    }

    /// Targets that have entries in the outbox but are no longer configured: their notices
    /// wait there until the target comes back.
    ///
    /// # Errors
    /// When the outbox cannot be listed.
    pub fn unconfigured_targets(&self) -> Result<Vec<String>, NotifyError> {
        let mut names: Vec<String> = Vec::new();
        for entry in self.outbox.pending()? {
            let known = self.targets.iter().any(|t| t.spec.name == entry.target);
            if !known && !names.contains(&entry.target) {
                names.push(entry.target);
            }
        }
        Ok(names)
    }

    /// One round: every target's due entries, targets concurrently, each target's entries
    /// oldest first until one fails. Returns every attempt's outcome.
    pub async fn deliver_due(&self) -> Vec<Delivery> {
        let rounds = self
            .targets
            .iter()
            .map(|target| self.deliver_target(target));
        join_all(rounds)
            .await
            .into_iter()
            .flat_map(|(deliveries, _)| deliveries)
            .collect()
    }

    /// Deliver notices until `cancel` fires: one loop per target (see the module
    /// documentation). Returns once every loop has stopped.
    pub async fn run(&self, cancel: CancellationToken) {
        let loops = self
            .targets
            .iter()
            .map(|target| self.run_target(target, &cancel));
        join_all(loops).await;
    }

    async fn run_target(&self, target: &Target, cancel: &CancellationToken) {
        let name = target.spec.name.as_str();
        // After a failure: not before the failed entry's next try.
        let mut held_until: Option<SystemTime> = None;
        loop {
            let now = self.clock.now();
            if held_until.is_none_or(|until| until <= now) {
                tokio::select! {
                    () = cancel.cancelled() => return,
                    (_, failed) = self.deliver_target(target) => held_until = failed,
                }
            }
            let now = self.clock.now();
            let next = match self.outbox.pending_for(name) {
                Ok(entries) => entries.iter().map(|entry| entry.next_try).min(),
                Err(error) => {
                    tracing::warn!(target = name, error = %crate::root_cause(&error), "cannot read the notification outbox");
                    None
                }
            };
            let next = match (next, held_until) {
                (Some(next), Some(held)) => Some(next.max(held)),
                (next, None) => next,
                (None, held) => held,
            };
            let sleep = next
                .map_or(IDLE_RECHECK, |next| {
                    next.duration_since(now).unwrap_or_default()
                })
                .min(IDLE_RECHECK);
            tokio::select! {
                () = cancel.cancelled() => return,
                () = target.wake.notified() => {}
                () = tokio::time::sleep(sleep) => {}
            }
        }
    }

    /// Send `target`'s due entries oldest first, stopping at the first failure. Returns the
    /// outcomes and, after a failure, the failed entry's next try.
    async fn deliver_target(&self, target: &Target) -> (Vec<Delivery>, Option<SystemTime>) {
        let name = target.spec.name.as_str();
        let due = match self.outbox.due_for(name, self.clock.now()) {
            Ok(due) => due,
            Err(error) => {
                tracing::warn!(target = name, error = %crate::root_cause(&error), "cannot read the notification outbox");
                return (Vec::new(), None);
            }
        };
        let mut deliveries = Vec::new();
        for entry in due {
            let result = target.send(&entry.notice).await;
            let now = self.clock.now();
            let mut held = None;
            match &result {
                Ok(()) => {
                    tracing::info!(target = name, event = %entry.notice.event, cert = entry.notice.certificate.as_deref(), attempts = entry.attempts + 1, "notice delivered");
                    if let Err(error) = self.outbox.delivered(&entry) {
                        tracing::warn!(target = name, error = %error, cause = %crate::root_cause(&error), "notice delivered but not removed from the outbox; it may be sent again");
                    }
                }
                Err(error) => match self.outbox.failed(&entry, now, &error.to_string()) {
                    Ok(updated) => {
                        tracing::warn!(target = name, event = %entry.notice.event, cert = entry.notice.certificate.as_deref(), attempts = updated.attempts, error = %error, next_try = %crate::notice::format_time(updated.next_try), "notice not delivered; it stays in the outbox");
                        held = Some(updated.next_try);
                    }
                    Err(outbox_error) => {
                        tracing::warn!(target = name, error = %error, outbox_error = %crate::root_cause(&outbox_error), "notice not delivered, and the attempt could not be recorded");
                        held = Some(now + crate::RETRY_INITIAL);
                    }
                },
            }
            deliveries.push(Delivery {
                target: name.to_owned(),
                id: entry.id.clone(),
                event: entry.notice.event,
                certificate: entry.notice.certificate.clone(),
                result,
            });
            if held.is_some() {
                return (deliveries, held);
            }
        }
        (deliveries, None)
    }
}

impl Target {
    /// Deliver `notice`, within the target's timeout.
    async fn send(&self, notice: &Notice) -> Result<(), NotifyError> {
        let name = self.spec.name.as_str();
        let timeout = match &self.spec.target {
            NotifyTarget::Command(hook) => hook.timeout + COMMAND_GRACE,
            _ => self.spec.timeout,
        };
        let attempt = async {
            match (&self.sender, &self.spec.target) {
                (Sender::Webhook(sender), _) => sender.send(name, notice).await,
                (Sender::Email(sender), _) => sender.send(name, notice).await,
                (Sender::Command, NotifyTarget::Command(hook)) => {
                    command::send(name, hook, notice).await
                }
                // `new` makes the sender from the target: they always match.
                (Sender::Command, _) => Err(NotifyError::Setup {
                    target: name.to_owned(),
                    reason: "internal error: sender and target differ".to_owned(),
                }),
            }
        };
        tokio::time::timeout(timeout, attempt)
            .await
            .unwrap_or_else(|_| {
                Err(NotifyError::Timeout {
                    target: name.to_owned(),
                    timeout,
                })
            })
    }
}

/// This host's name, for notices and EHLO: the kernel's host name, else `localhost`.
#[must_use]
pub fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .map(|name| name.trim().to_owned())
        .ok()
        .filter(|name| !name.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}
