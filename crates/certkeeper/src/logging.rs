//! Where log lines go.
//!
//! Under systemd, stderr is connected to the journal and `JOURNAL_STREAM` names that stream;
//! then events go to journald natively, with their fields (`CERT`, `DOMAINS`, ...) and the
//! syslog identifier `certkeeper`, so `journalctl -u certkeeper CERT=www` works. Anywhere else
//! they are readable lines on stderr, without colour codes when stderr is not a terminal, or
//! JSON lines with `--log-format json`.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

use crate::cli::LogFormat;

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
            .with(journald.with_syslog_identifier("certkeeper".to_owned()))
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
