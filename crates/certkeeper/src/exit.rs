//! Exit codes, documented in the README and in `certkeeper --help`.
//!
//! They follow `sysexits.h` where one fits, so systemd's `RestartPreventExitStatus=78` stops a
//! restart loop on a broken config.

use std::process::ExitCode;

/// How a command ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    /// Everything asked for was done (or nothing was due).
    Success,
    /// At least one certificate failed, or the command itself failed.
    Failure,
    /// Another certkeeper holds the state directory lock (EX_TEMPFAIL).
    Locked,
    /// The configuration is invalid (EX_CONFIG).
    InvalidConfig,
}

impl Exit {
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Locked => 75,
            Exit::InvalidConfig => 78,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}
