//! `certkeeper revoke NAME --reason R`: revoke the live certificate at its CA and record it,
//! so `renew` leaves the lineage alone until forced (the engine's [`revoke`]).

use certkeeper_acme::PollPolicy;
use certkeeper_core::Inventory;

use crate::cli::RevokeArgs;
use crate::engine::ca::AcmeCa;
use crate::engine::revoke::revoke;
use crate::exit::Exit;

pub async fn run(inventory: &Inventory, args: &RevokeArgs) -> anyhow::Result<Exit> {
    let Some((store, _lock)) = super::open_locked(inventory)? else {
        return Ok(Exit::Locked);
    };
    // A revocation places no order: the poll policy is never used.
    let authority = AcmeCa::new(store.clone(), PollPolicy::default());
    let revoked = revoke(inventory, &store, &authority, &args.name, args.reason).await?;
    println!("{}", revoked.line());
    Ok(Exit::Success)
}
