//! Telling systemd how the daemon is: `READY=1`, `STATUS=`, `WATCHDOG=1`, `RELOADING=1` with
//! `MONOTONIC_USEC` (what `Type=notify-reload` expects) and `STOPPING=1`.
//!
//! Without `$NOTIFY_SOCKET` (not started by systemd) every call is a no-op, so the daemon runs
//! the same way from a terminal.
//!
//! The socket is connected once and is non-blocking: the daemon's only runtime thread also
//! answers the CA's HTTP-01 requests, so a notification must never wait. When the service
//! manager does not read (its queue is full: ten datagrams by default), the message is dropped
//! and that is logged once; the next message that gets through carries the current state
//! anyway (each `STATUS=` replaces the last, and a lost `WATCHDOG=1` is followed by the next).

use std::ffi::OsStr;
use std::io::{self, ErrorKind};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use sd_notify::NotifyState;

#[derive(Debug, Clone, Default)]
pub struct Notifier {
    socket: Option<Arc<NotifySocket>>,
}

#[derive(Debug)]
struct NotifySocket {
    socket: UnixDatagram,
    /// A full queue was reported already.
    warned: AtomicBool,
}

impl Notifier {
    /// Connect to `$NOTIFY_SOCKET` when it is set. A socket that cannot be reached is logged
    /// and ignored: the daemon works without systemd.
    pub fn from_env() -> Self {
        match std::env::var_os("NOTIFY_SOCKET") {
            Some(path) => Self::connect(&path),
            None => Self::default(),
        }
    }

    /// Notify the socket at `path` (`@name` for the abstract namespace).
    pub fn connect(path: &OsStr) -> Self {
        match connect(path) {
            Ok(socket) => Self {
                socket: Some(Arc::new(NotifySocket {
                    socket,
                    warned: AtomicBool::new(false),
                })),
            },
            Err(err) => {
                tracing::warn!(error = %err, socket = %path.to_string_lossy(), "cannot reach systemd's notification socket; not notifying");
                Self::default()
            }
        }
    }

    fn send(&self, states: &[NotifyState<'_>]) {
        let Some(notify) = &self.socket else {
            return;
        };
        let message: String = states.iter().map(|state| format!("{state}\n")).collect();
        match notify.socket.send(message.as_bytes()) {
            Ok(_) => {}
            Err(err) if err.kind() == ErrorKind::WouldBlock => {
                if !notify.warned.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        "systemd is not reading its notification socket; dropping notifications rather than waiting (logged once)"
                    );
                }
            }
            Err(err) => tracing::debug!(error = %err, "cannot notify systemd"),
        }
    }

    pub fn ready(&self, status: &str) {
        self.send(&[NotifyState::Ready, NotifyState::Status(status)]);
    }

    pub fn status(&self, status: &str) {
        self.send(&[NotifyState::Status(status)]);
    }

    pub fn reloading(&self) {
        match NotifyState::monotonic_usec_now() {
            Ok(now) => self.send(&[NotifyState::Reloading, now]),
            Err(_) => self.send(&[NotifyState::Reloading]),
        }
    }

    pub fn stopping(&self, status: &str) {
        self.send(&[NotifyState::Stopping, NotifyState::Status(status)]);
    }

    pub fn watchdog(&self) {
        self.send(&[NotifyState::Watchdog]);
    }

    /// How often to pet the watchdog: half of `WatchdogSec=`, when systemd set one.
    pub fn watchdog_interval(&self) -> Option<Duration> {
        self.socket.as_ref()?;
        sd_notify::watchdog_enabled().map(|interval| interval / 2)
    }
}

/// A non-blocking datagram socket connected to `path` (`@name`: the abstract namespace).
fn connect(path: &OsStr) -> io::Result<UnixDatagram> {
    let socket = UnixDatagram::unbound()?;
    match path.as_bytes().strip_prefix(b"@") {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
            socket.connect_addr(&addr)?;
        }
        None => socket.connect(path)?,
    }
    socket.set_nonblocking(true)?;
    Ok(socket)
}
