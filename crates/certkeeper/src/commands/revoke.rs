//! `certkeeper revoke NAME --reason R`: revoke the live certificate at its CA and record it,
//! so `renew` leaves the lineage alone until forced.

use std::time::SystemTime;

use anyhow::Context;
use certkeeper_core::Inventory;

use crate::accounts::Accounts;
use crate::cli::RevokeArgs;
use crate::exit::Exit;

pub async fn run(inventory: &Inventory, args: &RevokeArgs) -> anyhow::Result<Exit> {
    let spec = inventory
        .certificate(&args.name)
        .with_context(|| format!("no certificate named {:?} in the inventory", args.name))?;
    let ca = inventory
        .ca(&spec.ca)
        .with_context(|| format!("certificate {} refers to unknown CA {}", spec.name, spec.ca))?;
    let Some((store, _lock)) = super::open_locked(inventory)? else {
        return Ok(Exit::Locked);
    };
    let mut lineage = store.lineage(&spec.name)?;
    let live = lineage
        .live()?
        .with_context(|| format!("{} has no certificate to revoke", spec.name))?;
    let account = Accounts::default().get(&store, ca).await?;
    account.revoke(&live.leaf_der, args.reason).await?;

    lineage.record_revocation(&live.serial_hex, args.reason, SystemTime::now())?;
    tracing::info!(cert = %spec.name, serial = %live.serial_hex, reason = %args.reason, "certificate revoked");
    println!(
        "{}: revoked serial {} ({}); it will not be renewed until `certkeeper renew --force {}`",
        spec.name, live.serial_hex, args.reason, spec.name
    );
    Ok(Exit::Success)
}
