//! The renewal engine, the same for every command: [`plan`] reads a lineage and asks the
//! core's planner, [`attempt`] is one attempt (pre hooks, [`job`]'s order, record, deploy),
//! [`deploy`] the hooks around it, [`limits`] how many run at once, [`daemon`] the scheduler
//! loop of `certkeeper run` with its config [`watch`]er and optional [`admin`] listener,
//! [`revoke`] a revocation. [`error`] holds the ways an attempt fails, classified once.
//!
//! Where the engine meets the outside world it speaks to [`ports`]: the CA, the challenge
//! solvers and the hooks for an attempt, the clock and the attempt runner for the daemon.
//! The real implementations are [`ca`] (the ACME adapter and the stored accounts),
//! [`solvers`] (which solver answers a certificate's challenges), [`deploy`]'s `ProcessHooks`,
//! and [`attempt`]'s `EngineRunner`, wired together by `JobContext::real` in [`job`]; tests of
//! the attempt and of the scheduler swap in scripted ones. The store stays concrete (see
//! [`ports`] for why). [`ports`] also says where a new solver, CA capability, hook kind,
//! renewal signal or store plugs in.
//!
//! Nothing here depends on the command modules: commands call the engine, never the reverse.

pub mod admin;
pub mod attempt;
pub mod ca;
pub mod daemon;
pub mod deploy;
pub mod error;
#[expect(
    dead_code,
    reason = "wired into the daemon and `certkeeper cluster` next"
)]
pub mod fleet;
pub mod job;
pub mod limits;
pub mod notices;
pub mod pass;
pub mod plan;
pub mod ports;
pub mod renewal_info;
pub mod revoke;
pub mod solvers;
pub mod watch;

use certkeeper_core::Inventory;
use certkeeper_store::{Store, StoreError, StoreLock};

/// Open the state directory and take its lock, for a command that changes it.
///
/// # Errors
/// [`StoreError::Locked`] while another certkeeper holds it, or why it cannot be opened.
pub fn open_store(inventory: &Inventory) -> Result<(Store, StoreLock), StoreError> {
    let store = Store::open(&inventory.state_dir)?;
    let lock = store.lock()?;
    Ok((store, lock))
}
