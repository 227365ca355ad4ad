//! `certkeeper revoke NAME --reason R`: revoke the live certificate at its CA and record it,
//! so `renew` leaves the lineage alone until forced.

use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use certkeeper_core::Inventory;
use certkeeper_store::RevokedRecord;

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
    let live = store
        .read_live(&spec.name)?
        .with_context(|| format!("{} has no certificate to revoke", spec.name))?;
    let account = Accounts::default()
        .get(&store, ca)
        .await
        .map_err(|failure| failure.error)?;
    account.revoke(&live.leaf_der, args.reason).await?;

    let mut state = store.read_lineage_state(&spec.name)?;
    state.revoked = Some(RevokedRecord {
        serial_hex: live.serial_hex.clone(),
        reason: args.reason.as_str().to_owned(),
        at_unix: SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
    });
    store.write_lineage_state(&spec.name, &state)?;
    tracing::info!(cert = %spec.name, serial = %live.serial_hex, reason = %args.reason, "certificate revoked");
    println!(
        "{}: revoked serial {} ({}); it will not be renewed until `certkeeper renew --force {}`",
        spec.name, live.serial_hex, args.reason, spec.name
    );
    Ok(Exit::Success)
}
