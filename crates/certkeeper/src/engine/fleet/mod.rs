//! Fleet mode: the engine's side of `[cluster]`, over the PostgreSQL adapter
//! (`certkeeper_fleet`).
//!
//! A node in a fleet keeps its own state directory, `live/` and hooks, exactly as a single
//! node does; the database is where the nodes coordinate (a lease per certificate: only its
//! holder orders) and replicate (accounts, certificate versions with their keys sealed by the
//! fleet key, orders in flight, HTTP-01 key authorisations). This module turns the validated
//! [`ClusterSpec`] into the adapter's settings and connects; [`publish`] makes the record of a
//! version this node installed, [`sync`] installs into this node what the fleet published, and
//! [`follow`] is the task that keeps a node in step with the fleet (challenges to serve,
//! versions to install).

pub mod follow;
pub mod publish;
pub mod sync;
#[cfg(test)]
mod tests;

mod coordination;
pub mod metrics;

pub use coordination::FleetCoordination;

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use certkeeper_core::CertName;
use certkeeper_core::cluster::{ClusterSpec, ClusterTls};
use certkeeper_fleet::{Fleet, FleetError, FleetKey, FleetSettings};

/// The adapter's settings for `spec`; the node name defaults to the host name.
///
/// # Errors
/// When the fleet key is not 32 bytes (the config crate checked it already).
pub fn settings(spec: &ClusterSpec) -> Result<FleetSettings, FleetError> {
    let key: [u8; 32] =
        spec.fleet_key
            .expose()
            .try_into()
            .map_err(|_| FleetError::FleetKeyFormat {
                reason: format!("{} bytes", spec.fleet_key.expose().len()),
            })?;
    let mut url = spec.postgres.clone();
    if spec.tls == ClusterTls::None {
        // Validated: only for a database on this host. Anything else is raised to verified TLS
        // by the adapter.
        url.query_pairs_mut().append_pair("sslmode", "disable");
    }
    let node = spec
        .node
        .clone()
        .unwrap_or_else(certkeeper_notify::host_name);
    let mut settings = FleetSettings::new(url.as_str(), node, FleetKey::from_bytes(key));
    settings.password.clone_from(&spec.password);
    settings.ca_file.clone_from(&spec.ca_file);
    Ok(settings)
}

/// Connect to the fleet's database (migrating it when this node is the first of a newer
/// version) as `spec` says.
///
/// # Errors
/// The adapter's, each saying what to change: unreachable, refused login, TLS, a schema newer
/// than this certkeeper, a fleet key other than the one the fleet uses.
pub async fn connect(spec: &ClusterSpec) -> Result<Fleet, FleetError> {
    Fleet::connect(&settings(spec)?).await
}

/// How long a node waits before trying an unreachable database again at start.
const RECONNECT_PAUSE: std::time::Duration = std::time::Duration::from_secs(5);

/// [`connect`], trying again while the database is unreachable (it may start after this node),
/// until `stop`: `None` when stopped first.
///
/// # Errors
/// What trying again cannot mend: a refused login, TLS, a newer schema, another fleet key.
pub async fn connect_until(
    spec: &ClusterSpec,
    stop: &tokio_util::sync::CancellationToken,
) -> Result<Option<Fleet>, FleetError> {
    loop {
        match connect(spec).await {
            Ok(fleet) => return Ok(Some(fleet)),
            Err(err) if err.is_unavailable() => {
                tracing::error!(
                    error = crate::report::error_chain(&err),
                    "cannot reach the fleet's database; no certificate is ordered until it answers; trying again"
                );
            }
            Err(err) => return Err(err),
        }
        tokio::select! {
            () = tokio::time::sleep(RECONNECT_PAUSE) => {}
            () = stop.cancelled() => return Ok(None),
        }
    }
}

/// The lineages this node works on now, an attempt under the fleet's lease or a sync of what
/// the fleet published: one at a time per lineage within the node, so a version another node
/// published is installed here, and its deploy hooks run, once.
#[derive(Debug, Clone, Default)]
pub struct LineageGuards(Arc<Mutex<HashSet<CertName>>>);

impl LineageGuards {
    /// Hold `name`, unless it is held already.
    #[must_use]
    pub fn try_hold(&self, name: &CertName) -> Option<LineageGuard> {
        let mut held = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        held.insert(name.clone()).then(|| LineageGuard {
            guards: self.clone(),
            name: name.clone(),
        })
    }

    /// Hold `name`, waiting for whoever holds it (a sync takes moments).
    pub async fn hold(&self, name: &CertName) -> LineageGuard {
        loop {
            if let Some(guard) = self.try_hold(name) {
                return guard;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }
}

/// A lineage held until dropped.
#[derive(Debug)]
pub struct LineageGuard {
    guards: LineageGuards,
    name: CertName,
}

impl Drop for LineageGuard {
    fn drop(&mut self) {
        self.guards
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&self.name);
    }
}
