//! The fleet's numbers for `/metrics`: leases this node holds, whether each certificate's
//! `live/` holds the fleet's newest version, and whether the database answers. Read from the
//! database every [`EVERY`] (two queries), so a fleet at rest costs it little.

use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certkeeper_core::Inventory;
use certkeeper_fleet::Fleet;
use certkeeper_store::Store;
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

use crate::engine::admin::{FleetMetrics, SharedSnapshot};

/// How often the numbers are read.
const EVERY: Duration = Duration::from_secs(60);

/// Publish this node's fleet numbers into `snapshot` until `stop`.
pub async fn report(
    fleet: Fleet,
    store: Store,
    inventory: watch::Receiver<Arc<Inventory>>,
    snapshot: SharedSnapshot,
    stop: CancellationToken,
) {
    loop {
        let current = Arc::clone(&inventory.borrow());
        snapshot.publish_fleet(Some(measure(&fleet, &store, &current).await));
        tokio::select! {
            () = tokio::time::sleep(EVERY) => {}
            () = stop.cancelled() => return,
        }
    }
}

/// This node's numbers now; with the database down, only that.
async fn measure(fleet: &Fleet, store: &Store, inventory: &Inventory) -> FleetMetrics {
    let (leases, heads) = match (fleet.leases().await, fleet.version_heads().await) {
        (Ok(leases), Ok(heads)) => (leases, heads),
        _ => {
            return FleetMetrics {
                database_up: false,
                ..FleetMetrics::default()
            };
        }
    };
    let now = SystemTime::now();
    let leases_held = leases
        .iter()
        .filter(|lease| lease.owner == fleet.node() && lease.expires_at > now)
        .count();
    let in_sync = inventory
        .certificates
        .iter()
        .map(|spec| {
            let local = store
                .lineage(&spec.name)
                .ok()
                .and_then(|lineage| lineage.live_certificate().ok().flatten())
                .map(|live| live.serial_hex);
            let fleet_serial = heads
                .iter()
                .find(|head| head.lineage == spec.name.as_str())
                .map(|head| head.serial.clone());
            // Nothing published and nothing here is in sync too.
            (spec.name.to_string(), local == fleet_serial)
        })
        .collect();
    FleetMetrics {
        leases_held,
        in_sync,
        database_up: true,
    }
}
