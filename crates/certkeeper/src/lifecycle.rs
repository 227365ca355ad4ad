//! The one owner of the daemon's process lifecycle: signals, systemd notifications, the
//! watchdog, and the two cancellation tokens every long-running task receives.
//!
//! * **SIGHUP** is a reload event ([`Event::Reload`]); the daemon re-reads its configuration
//!   between `RELOADING=1` and `READY=1`.
//! * **SIGTERM / SIGINT** is a stop event ([`Event::Stop`]): `STOPPING=1` is sent and the
//!   *soft* token is cancelled. Attempts stop at their next safe point (never between placing
//!   an order and persisting it; an order already persisted is parked and resumed at the
//!   next start), no new attempt starts, reloads still run for what was installed.
//! * A **second** stop signal, or the end of the grace period ([`Lifecycle::wait_unless_hard`]),
//!   cancels the *hard* token: what is still running is dropped at once.
//! * The **watchdog** (`WATCHDOG=1` at half of `WatchdogSec=`) is petted while the daemon's
//!   loop waits for its next event, from that loop only: a wedged loop stops petting and
//!   systemd restarts the daemon. An attempt that hangs does not wedge the loop (attempts are
//!   tasks of their own), so it cannot starve the watchdog either.
//!
//! Nothing else in certkeeper installs a signal handler or talks to systemd.

use std::io;

use tokio::signal::unix::{Signal, SignalKind, signal};
use tokio::time::{Instant, Interval, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use crate::systemd::Notifier;

/// What the lifecycle tells the daemon's loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// Re-read the configuration (SIGHUP).
    Reload,
    /// Stop (SIGTERM or SIGINT, named); the soft token is cancelled already.
    Stop(&'static str),
}

#[derive(Debug)]
pub struct Lifecycle {
    notifier: Notifier,
    hangup: Signal,
    terminate: Signal,
    interrupt: Signal,
    watchdog: Option<Interval>,
    soft: CancellationToken,
    hard: CancellationToken,
    /// A stop asked for from inside the process (scheduler tests), like a SIGTERM.
    requested: CancellationToken,
    /// A reload asked for from inside the process (scheduler tests), like a SIGHUP.
    reload_requested: std::sync::Arc<tokio::sync::Notify>,
}

impl Lifecycle {
    /// Install the signal handlers and connect to systemd (when started by it).
    ///
    /// # Errors
    /// When a signal handler cannot be installed.
    pub fn start() -> io::Result<Self> {
        let notifier = Notifier::from_env();
        let every = notifier.watchdog_interval();
        Self::new(notifier, every)
    }

    /// With a notifier and watchdog interval of the caller's (scheduler tests).
    ///
    /// # Errors
    /// When a signal handler cannot be installed.
    pub fn new(
        notifier: Notifier,
        watchdog_every: Option<std::time::Duration>,
    ) -> io::Result<Self> {
        let watchdog = watchdog_every.map(|every| {
            let mut interval = tokio::time::interval(every);
            interval.set_missed_tick_behavior(MissedTickBehavior::Delay);
            interval
        });
        Ok(Self {
            notifier,
            hangup: signal(SignalKind::hangup())?,
            terminate: signal(SignalKind::terminate())?,
            interrupt: signal(SignalKind::interrupt())?,
            watchdog,
            soft: CancellationToken::new(),
            hard: CancellationToken::new(),
            requested: CancellationToken::new(),
            reload_requested: std::sync::Arc::default(),
        })
    }

    /// Cancel it to stop the daemon as a SIGTERM would.
    #[cfg(test)]
    pub fn stop_handle(&self) -> CancellationToken {
        self.requested.clone()
    }

    /// Notify it to reload the configuration as a SIGHUP would.
    #[cfg(test)]
    pub fn reload_handle(&self) -> std::sync::Arc<tokio::sync::Notify> {
        std::sync::Arc::clone(&self.reload_requested)
    }

    /// Cancelled when the daemon is asked to stop: finish or park what is running, start
    /// nothing new.
    pub fn soft(&self) -> CancellationToken {
        self.soft.clone()
    }

    /// Cancelled when the daemon must stop now.
    pub fn hard(&self) -> CancellationToken {
        self.hard.clone()
    }

    /// Wait for the next reload or stop, petting the watchdog meanwhile. Cancel-safe: the
    /// daemon's loop races it against its own work.
    pub async fn next_event(&mut self) -> Event {
        loop {
            tokio::select! {
                _ = self.hangup.recv() => return Event::Reload,
                () = self.reload_requested.notified() => return Event::Reload,
                _ = self.terminate.recv() => return self.stop("SIGTERM"),
                _ = self.interrupt.recv() => return self.stop("SIGINT"),
                () = self.requested.cancelled() => return self.stop("stop request"),
                _ = tick(self.watchdog.as_mut()) => self.notifier.watchdog(),
            }
        }
    }

    fn stop(&mut self, signal: &'static str) -> Event {
        self.soft.cancel();
        Event::Stop(signal)
    }

    /// After a stop: run `work` (typically: wait for the next task to finish) until it
    /// resolves, petting the watchdog meanwhile. A second stop signal, or reaching `deadline`
    /// (the end of the grace period), cancels the hard token and returns at once.
    pub async fn wait_unless_hard(&mut self, deadline: Instant, work: impl Future<Output = ()>) {
        if self.hard.is_cancelled() {
            return;
        }
        let deadline = tokio::time::sleep_until(deadline);
        tokio::pin!(deadline, work);
        loop {
            tokio::select! {
                () = &mut work => return,
                () = &mut deadline => {
                    tracing::warn!("grace period over; stopping what still runs (persisted orders resume at the next start)");
                    break;
                }
                _ = self.terminate.recv() => {
                    tracing::warn!("second signal; stopping at once");
                    break;
                }
                _ = self.interrupt.recv() => {
                    tracing::warn!("second signal; stopping at once");
                    break;
                }
                _ = tick(self.watchdog.as_mut()) => self.notifier.watchdog(),
            }
        }
        self.hard.cancel();
    }

    pub fn ready(&self, status: &str) {
        self.notifier.ready(status);
    }

    pub fn status(&self, status: &str) {
        self.notifier.status(status);
    }

    pub fn reloading(&self) {
        self.notifier.reloading();
    }

    pub fn stopping(&self, status: &str) {
        self.notifier.stopping(status);
    }
}

/// The next watchdog tick, or never when there is no watchdog.
async fn tick(watchdog: Option<&mut Interval>) {
    match watchdog {
        Some(interval) => {
            interval.tick().await;
        }
        None => std::future::pending().await,
    }
}
