//! Telling systemd how the daemon is: `READY=1`, `STATUS=`, `WATCHDOG=1`, `RELOADING=1` with
//! `MONOTONIC_USEC` (what `Type=notify-reload` expects) and `STOPPING=1`.
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd) every call is a no-op, so the daemon runs
//! the same way from a terminal.

use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, Clone, Copy)]
pub struct Notifier {
    enabled: bool,
}

impl Notifier {
    pub fn from_env() -> Self {
        Self {
            enabled: std::env::var_os("NOTIFY_SOCKET").is_some(),
        }
    }

    fn send(self, states: &[NotifyState<'_>]) {
        if !self.enabled {
            return;
        }
        if let Err(err) = sd_notify::notify(states) {
            tracing::debug!(error = %err, "cannot notify systemd");
        }
    }

    pub fn ready(self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn reloading(self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    pub fn watchdog(self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// How often to pet the watchdog: half of `WatchdogSec=`, when systemd set one.
    pub fn watchdog_interval(self) -> Option<Duration> {
        if !self.enabled {
            return None;
        }
        sd_notify::watchdog_enabled().map(|interval| interval / 2)
    }
}
