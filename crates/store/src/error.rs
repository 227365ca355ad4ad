//! The store's one error type.
//!
//! Every variant carries the context an operator needs to act (the path, the lineage name)
//! and is written as a sentence about *what* failed; the underlying cause, when there is one,
//! is the error's `source()` and is not repeated in the message, so printing the chain with
//! `{:#}` shows each piece once. No variant ever holds private key or account material.
//!
//! [`StoreError::Unsafe`] is the refusal of something in the state directory that certkeeper
//! did not make (a symlink, a file of another owner, a secret others can read). It is typed
//! ([`UnsafeProblem`]) so tests and callers can tell the cases apart, and its message says
//! what to do, because reaching it usually means someone tampered with the directory.

use std::fmt;
use std::io;
use std::path::PathBuf;

use certkeeper_core::{CertName, KeyGroup};
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

/// What kind of entry was found in the state directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Directory,
    RegularFile,
    Symlink,
    /// A device, socket or FIFO: nothing certkeeper ever makes.
    Other,
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Directory => "a directory",
            FileKind::RegularFile => "a regular file",
            FileKind::Symlink => "a symlink",
            FileKind::Other => "a device, socket or FIFO",
        })
    }
}

/// Why an entry of the state directory was refused (see [`StoreError::Unsafe`]).
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum UnsafeProblem {
    /// A symlink where certkeeper expects a file or directory of its own. `target` is what
    /// it points to, when it could be read.
    #[error("it is a symlink{}", target.as_ref().map(|t| format!(" to {}", t.display())).unwrap_or_default())]
    Symlink { target: Option<PathBuf> },
    /// An entry of another kind than expected.
    #[error("it is {found} where {expected} was expected")]
    WrongType { expected: FileKind, found: FileKind },
    /// An entry not owned by the user certkeeper runs as.
    #[error("it is owned by uid {uid}, not by uid {expected} that certkeeper runs as")]
    WrongOwner { uid: u32, expected: u32 },
    /// A `live/NAME` symlink pointing anywhere but `../archive/NAME/vNNNN`.
    #[error("it points to {}, not to a version of its own lineage (../archive/NAME/vNNNN)", target.display())]
    LinkTarget { target: PathBuf },
    /// A file with more than one hard link: it may be another file's name too.
    #[error("it has {links} hard links where certkeeper's files have one")]
    TooManyLinks { links: u64 },
    /// A secret (private key, account credentials) with group or other permission bits.
    #[error("it holds a secret but its mode {mode:04o} opens it to others")]
    OpenToOthers { mode: u32 },
}

impl UnsafeProblem {
    /// What the operator should do about it.
    fn advice(&self) -> &'static str {
        match self {
            UnsafeProblem::Symlink { .. } | UnsafeProblem::LinkTarget { .. } => {
                "certkeeper never follows symlinks in its state directory (its own live/NAME -> ../archive/NAME/vNNNN links aside): remove it; if nobody you trust made it, the account owning the state directory may have been compromised"
            }
            UnsafeProblem::WrongType { .. } => "move it aside",
            UnsafeProblem::WrongOwner { .. } => {
                "certkeeper only uses what the user it runs as made: chown it to that user if it is yours, remove it otherwise"
            }
            UnsafeProblem::TooManyLinks { .. } => {
                "remove it (certkeeper recreates it), and check who made the other link"
            }
            UnsafeProblem::OpenToOthers { .. } => {
                "treat the secret as leaked: replace it (reissue the certificate or re-register the account), or if you are sure it was not read, chmod 600 it"
            }
        }
    }
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
    /// An entry of the state directory is not what certkeeper made: a symlink, the wrong kind
    /// of file, another user's file, a secret open to others. It was not used, and nothing
    /// was written through it.
    #[error("refusing {}: {problem}; {}", path.display(), problem.advice())]
    Unsafe {
        path: PathBuf,
        problem: UnsafeProblem,
    },
    /// The state directory belongs to another user than the one certkeeper runs as. Whoever
    /// owns it controls every entry in it, so certkeeper must run as that user, not act there
    /// with its own (possibly root) rights.
    #[error(
        "the state directory {} belongs to uid {owner}, not to uid {running_as} that certkeeper runs as; run certkeeper as that user: runuser -u \"$(id -nu {owner})\" -- certkeeper ...",
        path.display()
    )]
    StateDirNotOwned {
        path: PathBuf,
        owner: u32,
        running_as: u32,
    },
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
    /// The private key could not be given to its `key_group`: certkeeper is neither root nor
    /// a member of the group, or (`member`) a system call filter refused `fchown(2)`. Nothing
    /// was published; the live certificate stays as it was.
    #[error(
        "cannot give the private key {} to group {group}: {}; the live certificate was left as it was",
        path.display(),
        key_group_advice(group, *uid, *member)
    )]
    KeyGroup {
        group: KeyGroup,
        path: PathBuf,
        /// The user certkeeper runs as.
        uid: u32,
        /// Whether that user is in the group (so it was not membership that was missing).
        member: bool,
        #[source]
        source: io::Error,
    },
    /// Every candidate archive version name was taken while installing (concurrent installs
    /// of one lineage, which the store lock exists to prevent).
    #[error("no free version name in {}; is another process installing this lineage?", dir.display())]
    NoFreeVersion { dir: PathBuf },
}

/// What to do when a key cannot be given to its group (see [`StoreError::KeyGroup`]).
fn key_group_advice(group: &KeyGroup, uid: u32, member: bool) -> String {
    let name = &group.name;
    if member {
        format!(
            "uid {uid} is a member of {name}, yet fchown(2) was refused: a system call filter forbids it (under systemd, allow it with SystemCallFilter=fchown in a drop-in: systemctl edit certkeeper)"
        )
    } else {
        format!(
            "certkeeper runs as uid {uid}, which is neither root nor a member of {name}; add that user to the group (usermod -aG {name} certkeeper for the packaged user, then restart certkeeper; or for the daemon alone, a drop-in with [Service] SupplementaryGroups={name}: systemctl edit certkeeper), or remove key_group from the configuration"
        )
    }
}

impl StoreError {
    /// Whether the same operation may succeed later without anyone changing anything: a file
    /// system error (a full disk freed, a transient I/O failure) or another process holding
    /// the lock or installing the lineage. Everything else (a refused certificate, a damaged
    /// or planted file, a foreign owner) needs a human.
    #[must_use]
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::Io { .. }
            | StoreError::Locked { .. }
            | StoreError::NoFreeVersion { .. } => true,
            StoreError::Verify { .. }
            | StoreError::Corrupt { .. }
            | StoreError::LiveNotSymlink { .. }
            | StoreError::Unsafe { .. }
            | StoreError::StateDirNotOwned { .. }
            | StoreError::State { .. }
            | StoreError::KeyGroup { .. }
            | StoreError::InvalidAccountKey { .. } => false,
        }
    }

    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        StoreError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
