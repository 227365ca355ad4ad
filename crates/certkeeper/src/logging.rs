//! Where log lines go.
//!
//! Under systemd, stderr is connected to the journal and `JOURNAL_STREAM` names that stream;
//! then events go to journald natively, with their fields (`CERT`, `DOMAINS`, `ORDER_URL`,
//! `ERROR`, ...) and the syslog identifier `certkeeper`, so `journalctl -u certkeeper CERT=www`
//! works. Anywhere else they are readable lines on stderr, without colour codes when stderr is
//! not a terminal, or JSON lines with `--log-format json`.
//!
//! What reaches the journal, and why (`tests/journald.rs` checks each against a real
//! systemd-journald):
//! - Field names are the tracing field names upper-cased, with no prefix: tracing-journald's
//!   default `F_` prefix would make the README's `CERT=www` match nothing. The price is that a
//!   field must not be named after one of journald's own (`message`, `priority`, `target`,
//!   `code_file`, `code_line`, `syslog_identifier`, ...); none is.
//! - The identifier is `certkeeper` whatever the executable is called (`journalctl -t`).
//! - Levels map to syslog priorities the way journald users read them: error 3 (`journalctl -p
//!   err` lists exactly what a human must act on), warn 4, info 6, debug and trace 7.
//!   tracing-journald's default puts info at 5 (notice), which would mix routine renewals in
//!   with `-p notice`.
//! - An optional value is logged as the value or not at all: write
//!   `field = option.map(tracing::field::display)`, never `field = ?option`, which would
//!   arrive as `Some(...)` and so never match `journalctl FIELD=value`.

use std::io::IsTerminal;

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::LogFormat;

/// `SYSLOG_IDENTIFIER` of every event sent to journald.
const SYSLOG_IDENTIFIER: &str = "certkeeper";

/// tracing levels as syslog priorities (see the module documentation).
const PRIORITIES: PriorityMappings = PriorityMappings {
    error: Priority::Error,
    warn: Priority::Warning,
    info: Priority::Informational,
    debug: Priority::Debug,
    trace: Priority::Debug,
};

/// Install the global subscriber. `filter` overrides `$RUST_LOG`; the default is `info`.
pub fn init(filter: Option<&str>, format: LogFormat) {
    let filter = filter
        .map(EnvFilter::try_new)
        .or_else(|| std::env::var("RUST_LOG").ok().map(EnvFilter::try_new))
        .and_then(Result::ok)
        .unwrap_or_else(|| EnvFilter::new("info"));

    if stderr_is_journal()
        && let Ok(journald) = tracing_journald::layer()
    {
        tracing_subscriber::registry()
            .with(filter)
            .with(
                journald
                    .with_field_prefix(None)
                    .with_syslog_identifier(SYSLOG_IDENTIFIER.to_owned())
                    .with_priority_mappings(PRIORITIES),
            )
            .init();
        return;
    }

    let stderr = std::io::stderr;
    match format {
        LogFormat::Text => tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(stderr)
            .with_ansi(std::io::stderr().is_terminal())
            .with_target(false)
            .init(),
        LogFormat::Json => tracing_subscriber::fmt()
            .json()
            .with_env_filter(filter)
            .with_writer(stderr)
            .init(),
    }
}

/// Whether stderr is the journal stream systemd announced in `JOURNAL_STREAM=<dev>:<ino>`.
fn stderr_is_journal() -> bool {
    let Ok(announced) = std::env::var("JOURNAL_STREAM") else {
        return false;
    };
    let Some((dev, ino)) = announced.split_once(':') else {
        return false;
    };
    let Ok(stat) = rustix::fs::fstat(std::io::stderr()) else {
        return false;
    };
    dev.parse::<u64>().is_ok_and(|dev| dev == stat.st_dev)
        && ino.parse::<u64>().is_ok_and(|ino| ino == stat.st_ino)
}
