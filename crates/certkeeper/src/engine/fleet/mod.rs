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
