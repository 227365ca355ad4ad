//! One module per subcommand. [`run`] loads the inventory (exit 78 when it is invalid) and
//! hands it to the command; `import-certbot`, which writes an inventory, runs without one.

mod check;
mod import_certbot;
mod renew;
mod revoke;
mod status;

use std::path::Path;

use anyhow::Context;
use certkeeper_config::Environment;
use certkeeper_core::Inventory;
use certkeeper_store::{Store, StoreError, StoreLock};

use crate::cli::{Cli, Command};
use crate::engine::{self, daemon::Daemon};
use crate::exit::Exit;
use crate::privilege;

/// Run the parsed command line.
pub fn run(cli: Cli) -> anyhow::Result<Exit> {
    if let Command::ImportCertbot(args) = &cli.command {
        return import_certbot::run(args);
    }
    let Some(inventory) = load_inventory(&cli.config) else {
        return Ok(Exit::InvalidConfig);
    };
    // The inventory and its secrets are read (as root, when run from a root shell); from
    // here on nothing runs as root inside another user's state directory.
    match &cli.command {
        Command::Check | Command::ImportCertbot(_) => {}
        Command::Run => privilege::refuse_root_daemon(&inventory.state_dir)?,
        Command::Status(_) | Command::Renew(_) | Command::Revoke(_) => {
            privilege::drop_to_state_owner(&inventory.state_dir)?;
        }
    }
    match cli.command {
        Command::Check => Ok(check::run(&cli.config, &inventory)),
        Command::Run => {
            let Some(locked) = open_locked(&inventory)? else {
                return Ok(Exit::Locked);
            };
            runtime()?.block_on(Daemon::run(
                cli.config,
                Environment::from_process(),
                inventory,
                locked,
            ))?;
            Ok(Exit::Success)
        }
        Command::Status(args) => status::run(&inventory, &args),
        Command::Renew(args) => runtime()?.block_on(renew::run(&inventory, &args)),
        Command::Revoke(args) => runtime()?.block_on(revoke::run(&inventory, &args)),
        // Dispatched above, before the inventory is loaded.
        Command::ImportCertbot(args) => import_certbot::run(&args),
    }
}

/// Load and validate the inventory, printing every problem (and warning) to stderr.
fn load_inventory(path: &Path) -> Option<Inventory> {
    match certkeeper_config::load(path, &Environment::from_process()) {
        Ok(loaded) => {
            for warning in &loaded.warnings {
                tracing::warn!("{warning}");
            }
            Some(loaded.inventory)
        }
        Err(errors) => {
            for warning in &errors.warnings {
                eprintln!("warning: {warning}");
            }
            for error in &errors.errors {
                eprintln!("error: {error}");
            }
            eprintln!(
                "{}: invalid configuration ({} problem{})",
                path.display(),
                errors.errors.len(),
                if errors.errors.len() == 1 { "" } else { "s" }
            );
            None
        }
    }
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    // One thread: certkeeper's work is waiting on the network and on child processes, and a
    // single-threaded runtime keeps memory and wake-ups down (a daemon at rest should cost
    // next to nothing). Key generation is the only CPU-bound step and takes milliseconds.
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")
}

/// Open the store and take its lock; `Ok(None)` (after a message) when another certkeeper
/// holds it, which the command reports as exit code 75.
fn open_locked(inventory: &Inventory) -> anyhow::Result<Option<(Store, StoreLock)>> {
    match engine::open_store(inventory) {
        Ok(locked) => Ok(Some(locked)),
        Err(err @ StoreError::Locked { .. }) => {
            eprintln!("error: {err}");
            Ok(None)
        }
        Err(err) => Err(err.into()),
    }
}
