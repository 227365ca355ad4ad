//! certkeeper's notification delivery: tells people when a certificate needs them, through
//! the `[[notify]]` targets of the configuration, without flooding them and without losing a
//! notice.
//!
//! Which notices to send is decided by the pure core ([`certkeeper_core::notify::decide`]);
//! this crate delivers them:
//!
//! - [`Notice`]: what a notice says, rendered as webhook JSON, Slack `{"text": ...}`, an
//!   e-mail (subject and plain-text body) and a command's environment.
//! - [`Outbox`]: every notice is written to disk (one file per notice per target, `0600`,
//!   atomically) before it is sent, removed once a target took it, and retried with backoff
//!   from one minute to one hour until then, across restarts.
//! - [`Dispatcher`]: queues a notice for every target that wants its event, and delivers
//!   each target's backlog on its own, with the target's timeout, so a slow or failing target
//!   never delays another, and queueing (a few file writes) never waits for any target.
//! - Senders, one per target type: webhooks with hyper and rustls; e-mail over SMTP with
//!   lettre and rustls (STARTTLS, implicit TLS or none; AUTH PLAIN or LOGIN), or piped to a
//!   local `sendmail`; commands through the hook runner, like every other hook.
//!
//! Errors ([`NotifyError`]) name the target and the cause (connection refused, TLS, login
//! refused, HTTP status, timeout) and never carry a secret: tokens and passwords are only
//! read where they are sent, and a webhook is named by its scheme, host and port only,
//! because a Slack-style URL's path is itself the credential.

mod command;
mod dispatch;
mod email;
mod notice;
mod outbox;
mod webhook;

use std::io;
use std::path::PathBuf;
use std::time::Duration;

pub use dispatch::{Delivery, Dispatcher, host_name};
pub use notice::{DigestEntry, Notice};
pub use outbox::{Entry, Outbox, RETRY_INITIAL, RETRY_MAX, retry_delay};

/// Why a notice was not delivered, or the outbox could not be used.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// Nobody answered at the target's address.
    #[error(
        "notify target {target}: cannot connect to {address}: {reason}; check the address in the \
         target and that the server is up"
    )]
    Connect {
        target: String,
        address: String,
        reason: String,
    },
    /// The TLS handshake failed (an untrusted certificate, a server without TLS, ...).
    #[error(
        "notify target {target}: TLS with {address} failed: {reason}; check `tls`, and set \
         `root_ca_file` when a private CA signed the server's certificate"
    )]
    Tls {
        target: String,
        address: String,
        reason: String,
    },
    /// The target took longer than its timeout.
    #[error(
        "notify target {target}: no answer within {}s; check that it is up, or raise `timeout` \
         if it is only slow",
        timeout.as_secs_f32()
    )]
    Timeout { target: String, timeout: Duration },
    /// A webhook answered with an error status.
    #[error(
        "notify target {target}: {address} answered HTTP {status}{}",
        body_suffix(body)
    )]
    HttpStatus {
        target: String,
        address: String,
        status: u16,
        /// The start of the response body, which often says why.
        body: String,
    },
    /// The SMTP server refused the login.
    #[error(
        "notify target {target}: {address} refused the login of {username:?}: {reason}; check \
         `username` and the password"
    )]
    AuthRefused {
        target: String,
        address: String,
        username: String,
        reason: String,
    },
    /// The SMTP server or the local sendmail refused the message, or the exchange failed.
    #[error("notify target {target}: {address} did not take the message: {reason}")]
    Mail {
        target: String,
        address: String,
        reason: String,
    },
    /// A webhook request failed otherwise.
    #[error("notify target {target}: request to {address} failed: {reason}")]
    Http {
        target: String,
        address: String,
        reason: String,
    },
    /// A command target could not run, or failed.
    #[error("notify target {target}: command {reason}")]
    Command { target: String, reason: String },
    /// The target cannot be set up (an unreadable `root_ca_file`, an invalid address).
    #[error("notify target {target}: {reason}")]
    Setup { target: String, reason: String },
    /// `certkeeper notify test NAME` for a name that is not configured.
    #[error("no notify target named {name:?}{}", known_suffix(known))]
    UnknownTarget { name: String, known: Vec<String> },
    /// The outbox on disk.
    #[error("notification outbox {}", path.display())]
    Outbox {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl NotifyError {
    /// The target the error is about, if any.
    #[must_use]
    pub fn target(&self) -> Option<&str> {
        match self {
            NotifyError::Connect { target, .. }
            | NotifyError::Tls { target, .. }
            | NotifyError::Timeout { target, .. }
            | NotifyError::HttpStatus { target, .. }
            | NotifyError::AuthRefused { target, .. }
            | NotifyError::Mail { target, .. }
            | NotifyError::Http { target, .. }
            | NotifyError::Command { target, .. }
            | NotifyError::Setup { target, .. } => Some(target),
            NotifyError::UnknownTarget { .. } | NotifyError::Outbox { .. } => None,
        }
    }
}

fn body_suffix(body: &str) -> String {
    if body.is_empty() {
        String::new()
    } else {
        format!(": {body}")
    }
}

fn known_suffix(known: &[String]) -> String {
    if known.is_empty() {
        "; no [[notify]] target is configured".to_owned()
    } else {
        format!("; configured targets: {}", known.join(", "))
    }
}

/// The innermost cause of `error`, which says what actually went wrong ("Connection refused
/// (os error 111)") where outer layers only say "client error (Connect)".
pub(crate) fn root_cause(error: &(dyn std::error::Error + 'static)) -> String {
    let mut current = error;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

/// Whether a TLS error is somewhere in `error`'s chain.
pub(crate) fn is_tls(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(error) = current {
        if error.is::<rustls::Error>() {
            return true;
        }
        if let Some(io) = error.downcast_ref::<io::Error>()
            && io
                .get_ref()
                .is_some_and(<dyn std::error::Error + Send + Sync>::is::<rustls::Error>)
        {
            return true;
        }
        current = error.source();
    }
    false
}
