//! The `certkeeper` binary: parse the command line, run one command, map the outcome to an
//! exit code. Everything else lives in the modules below and in the adapter crates.

mod accounts;
mod allocator;
mod cli;
mod commands;
mod control;
#[cfg(test)]
mod docs;
mod engine;
mod exit;
mod lifecycle;
mod logging;
mod privilege;
mod report;
mod systemd;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    // Before anything else, while the process has one thread: every thread and every hook
    // inherits a non-dumpable process and an empty ambient capability set.
    if let Err(err) = privilege::harden_process() {
        eprintln!("error: {:#}", anyhow::Error::from(err));
        return exit::Exit::Failure.into();
    }
    raise_open_file_limit();
    logging::init(cli.log_level.as_deref(), cli.log_format);
    match commands::run(cli) {
        Ok(code) => code.into(),
        Err(err) => {
            // Print the whole chain once; the typed errors below keep causes out of their
            // own messages so nothing is repeated.
            eprintln!("error: {err:#}");
            exit::Exit::Failure.into()
        }
    }
}

/// The HTTP-01 responder holds one descriptor per client; lift the soft limit on open files to
/// the hard limit (as most daemons do) so its connection cap, not the default 1024, applies.
fn raise_open_file_limit() {
    use rustix::process::{Resource, getrlimit, setrlimit};
    let mut limit = getrlimit(Resource::Nofile);
    if limit.current < limit.maximum {
        limit.current = limit.maximum;
        let _ = setrlimit(Resource::Nofile, limit);
    }
}
