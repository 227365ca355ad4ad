//! The store's one error type.
//!
//! Every variant carries the context an operator needs to act (the path, the lineage name)
//! and is written as a sentence about *what* failed; the underlying cause, when there is one,
//! is the error's `source()` and is not repeated in the message, so printing the chain with
//! `{:#}` shows each piece once. No variant ever holds private key or account material.

use std::io;
use std::path::PathBuf;

use certkeeper_core::CertName;
use thiserror::Error;

/// Why a certificate and key were refused (on install) or found broken (on read).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum VerifyProblem {
    /// A PEM block or its contents could not be decoded. `what` names the input
    /// ("certificate chain", "private key", ...); `detail` says what is wrong with it.
    #[error("the {what} is not usable: {detail}")]
    BadPem { what: &'static str, detail: String },
    /// The certificate input holds no `CERTIFICATE` block at all.
    #[error("the certificate chain holds no CERTIFICATE block")]
    NoCertificate,
    /// The leaf certificate was issued for a different key than the private key given.
    #[error("the certificate's public key does not match the private key")]
    KeyMismatch,
    /// The leaf's DNS names are not exactly the configured names (compared as sets,
    /// case-insensitively).
    #[error("the certificate names {found:?} but {expected:?} were expected")]
    NamesMismatch {
        expected: Vec<String>,
        found: Vec<String>,
    },
}

/// Everything that can go wrong in the store.
#[derive(Debug, Error)]
pub enum StoreError {
    /// A file system operation failed.
    #[error("cannot {action} {}", path.display())]
    Io {
        /// What was being done, as a verb phrase ("create directory", "read", "fsync", ...).
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// Another process holds the state directory's lock.
    #[error(
        "the state directory is in use by another certkeeper{} (lock file {}); stop it first, or point this one at a different state directory",
        holder.map(|pid| format!(" (pid {pid})")).unwrap_or_default(),
        path.display()
    )]
    Locked { path: PathBuf, holder: Option<u32> },
    /// A certificate and key handed to [`Store::install`](crate::Store::install) were refused;
    /// nothing was written.
    #[error("refusing to install certificate {name}: {problem}; nothing was written")]
    Verify {
        name: CertName,
        problem: VerifyProblem,
    },
    /// The live certificate of a lineage on disk is unusable (hand edits, disk damage).
    #[error("the live certificate {name} in {} is broken: {problem}; force a reissue or restore the files", path.display())]
    Corrupt {
        name: CertName,
        path: PathBuf,
        problem: VerifyProblem,
    },
    /// `live/NAME` exists but is not a symlink certkeeper can swap, typically a lineage
    /// directory made by certbot.
    #[error(
        "{} is not a symlink managed by certkeeper (a certbot lineage directory?); move it aside so certkeeper can install into it",
        path.display()
    )]
    LiveNotSymlink { path: PathBuf },
    /// A lineage state file does not parse.
    #[error("the lineage state file {} is not valid; fix it or delete it to start over", path.display())]
    State {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    /// An account storage key component would escape the accounts directory.
    #[error("account storage key component {component:?} is not a safe directory name")]
    InvalidAccountKey { component: String },
    /// Every candidate archive version name was taken while installing (concurrent installs
    /// of one lineage, which the store lock exists to prevent).
    #[error("no free version name in {}; is another process installing this lineage?", dir.display())]
    NoFreeVersion { dir: PathBuf },
}

impl StoreError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
