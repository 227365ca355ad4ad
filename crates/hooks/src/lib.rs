//! certkeeper's hook runner: runs the commands that make web servers pick up new
//! certificates, and makes sure none of them outlives its welcome.
//!
//! What a hook is and which environment it gets is the core's business
//! ([`certkeeper_core::hooks`]); this crate executes it:
//!
//! - [`run`] starts one hook, argv directly or a string through `/bin/sh -c`, in a process
//!   group of its own, with a cleared environment plus a short pass-through list and the
//!   contract variables. Its stdout and stderr are logged line by line under its label
//!   (`hook = "deploy:www"`), bounded, and kept in the [`HookOutcome`]. On timeout the whole
//!   group gets SIGTERM, then SIGKILL after a grace period, so a hook's children die with it.
//! - [`dir_hooks`] lists the executables of `hooks_dir/{pre,deploy,post}/` in name order,
//!   like certbot's `renewal-hooks/`.
//! - [`ReloadCoalescer`] turns "reload nginx" requests from many certificates into one run
//!   per target after a quiet period, or at once when the caller asks.
//!
//! Process groups are signalled with rustix (`kill(-pgid, sig)`); there is no `unsafe` here.
//! The crate depends on the core only; the binary decides when each phase runs.

mod dir;
mod reload;
mod runner;

use std::io;
use std::path::PathBuf;

pub use dir::{Phase, dir_hooks};
pub use reload::{
    DEFAULT_MAX_WAIT, DEFAULT_QUIET, ReloadBatch, ReloadCoalescer, ReloadOutcome, ReloadRequest,
    log_outcomes,
};
pub use runner::{
    HookOutcome, HookRun, KILL_GRACE, MAX_LINE_BYTES, MAX_LINES, OutputLine, PASSED_THROUGH,
    Stream, run,
};

/// Why a hook could not be run, or the runner lost track of it. A hook that ran and failed
/// is not an error: see [`HookOutcome::success`].
#[derive(Debug, thiserror::Error)]
pub enum HookError {
    /// The program could not be started: not found, not executable, ...
    #[error("cannot start hook {label}: {program}")]
    Spawn {
        label: String,
        program: String,
        #[source]
        source: io::Error,
    },
    /// Waiting for the hook's process failed.
    #[error("cannot wait for hook {label}")]
    Wait {
        label: String,
        #[source]
        source: io::Error,
    },
    /// A hooks directory exists but cannot be listed.
    #[error("cannot read hooks directory {}", path.display())]
    ReadDir {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A certificate asked for reload targets the coalescer does not know (its inventory is
    /// not the one the coalescer was configured with). The known ones were still requested.
    #[error("certificate {certificate} requested unknown reload targets: {}", names.join(", "))]
    UnknownReloadTargets {
        certificate: String,
        names: Vec<String>,
    },
}
