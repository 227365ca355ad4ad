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
    /// The configuration is invalid (EX_CONFIG); also a fleet whose key differs from this
    /// node's, or whose database schema is newer than this certkeeper.
    InvalidConfig,
    /// `cluster status`: this node's `live/` is behind the fleet's database, or holds a
    /// certificate not published to it yet.
    Behind,
    /// The fleet's database is unreachable or does not answer (EX_UNAVAILABLE).
    Unavailable,
    /// The fleet's database refused this node's login (EX_NOPERM).
    Refused,
}

impl Exit {
    #[must_use]
    pub fn code(self) -> u8 {
        match self {
            Exit::Success => 0,
            Exit::Failure => 1,
            Exit::Behind => 3,
            Exit::Unavailable => 69,
            Exit::Locked => 75,
            Exit::Refused => 77,
            Exit::InvalidConfig => 78,
        }
    }
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> Self {
        ExitCode::from(exit.code())
    }
}
