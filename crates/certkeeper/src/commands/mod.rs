//! One module per subcommand. [`run`] loads the inventory (exit 78 when it is invalid) and
//! hands it to the command; `import-certbot`, which writes an inventory, runs without one.

mod check;
mod cluster;
mod import_certbot;
mod notify;
mod renew;
mod revoke;
mod status;

use std::path::Path;

use anyhow::Context;
use certkeeper_config::Environment;
use certkeeper_core::Inventory;
use certkeeper_store::{Store, StoreError, StoreLock};

use crate::cli::{Cli, ClusterCommand, Command, NotifyCommand};
use crate::control::{self, Reply, Request};
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
        Command::Status(_)
        | Command::Renew(_)
        | Command::Revoke(_)
        | Command::Notify(_)
        | Command::Cluster(_) => {
            privilege::drop_to_state_owner(&inventory.state_dir)?;
        }
    }
    match cli.command {
        Command::Check => Ok(check::run(&cli.config, &inventory)),
        Command::Run => {
            let Some(locked) = open_locked(&inventory)? else {
                return Ok(Exit::Locked);
            };
            let ran = runtime()?.block_on(Daemon::run(
                cli.config,
                Environment::from_process(),
                inventory,
                locked,
            ));
            match ran {
                Ok(()) => Ok(Exit::Success),
                // A fleet that refuses this node at start (a wrong fleet key, a newer schema,
                // the login refused) exits as `cluster status` does: 78 stops systemd's
                // restart loop on a setting only the operator can fix.
                Err(err) => match err
                    .chain()
                    .find_map(|cause| cause.downcast_ref::<certkeeper_fleet::FleetError>())
                {
                    Some(fleet) => {
                        eprintln!("error: {err:#}");
                        Ok(cluster::exit_for(fleet))
                    }
                    None => Err(err),
                },
            }
        }
        Command::Status(args) => {
            let runtime = runtime()?;
            let running = runtime.block_on(in_flight(&inventory));
            let fleet = runtime.block_on(status::fleet_view(&inventory));
            status::run(&inventory, &args, running.as_deref(), fleet.as_ref())
        }
        Command::Renew(args) => runtime()?.block_on(async {
            let request = Request::Renew {
                names: args.names.clone(),
                force: args.force,
                action: args.action.map(|action| action.as_str().to_owned()),
                new_key: args.new_key,
            };
            match via_daemon(&inventory, &request, args.no_hooks).await? {
                Some(exit) => Ok(exit),
                None => renew::run(&inventory, &args).await,
            }
        }),
        Command::Revoke(args) => runtime()?.block_on(async {
            let request = Request::Revoke {
                name: args.name.clone(),
                reason: args.reason.as_str().to_owned(),
            };
            match via_daemon(&inventory, &request, false).await? {
                Some(exit) => Ok(exit),
                None => revoke::run(&inventory, &args).await,
            }
        }),
        Command::Notify(NotifyCommand::Test(args)) => {
            runtime()?.block_on(notify::test(&inventory, args.target.as_deref()))
        }
        Command::Cluster(ClusterCommand::Status(args)) => {
            runtime()?.block_on(cluster::status(&cli.config, &inventory, &args))
        }
        Command::Cluster(ClusterCommand::Import) => {
            runtime()?.block_on(cluster::import(&cli.config, &inventory))
        }
        // Dispatched above, before the inventory is loaded.
        Command::ImportCertbot(args) => import_certbot::run(&args),
    }
}

/// While a daemon runs, `renew` and `revoke` are carried out by it over its control socket:
/// its output is printed as it comes, and the exit code is the one the command would have
/// had. `None` when no daemon answers (the command then runs here, taking the lock).
async fn via_daemon(
    inventory: &Inventory,
    request: &Request,
    no_hooks: bool,
) -> anyhow::Result<Option<Exit>> {
    let Some(client) = control::Client::connect(&inventory.state_dir).await else {
        return Ok(None);
    };
    if no_hooks {
        eprintln!(
            "error: a certkeeper daemon is running and always runs hooks; stop it for a --no-hooks pass"
        );
        return Ok(Some(Exit::Locked));
    }
    let last = client
        .request(request, |reply| match reply {
            Reply::Out(line) => println!("{line}"),
            Reply::Err(line) => eprintln!("{line}"),
            Reply::InFlight(_) | Reply::Done { .. } | Reply::Refused(_) => {}
        })
        .await
        .context("talking to the running daemon")?;
    Ok(Some(match last {
        Reply::Done { ok: true } => Exit::Success,
        Reply::Refused(why) => {
            eprintln!("error: the running daemon refused: {why}");
            Exit::Failure
        }
        _ => Exit::Failure,
    }))
}

/// The certificates the running daemon is attempting now; `None` when no daemon answers.
async fn in_flight(inventory: &Inventory) -> Option<Vec<String>> {
    let client = control::Client::connect(&inventory.state_dir).await?;
    let mut names = None;
    client
        .request(&Request::InFlight, |reply| {
            if let Reply::InFlight(list) = reply {
                names = Some(list);
            }
        })
        .await
        .ok()?;
    names
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
        .on_thread_start(crate::allocator::share_main_arena)
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
