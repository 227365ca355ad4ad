//! Fleet mode: the engine's side of `[cluster]`, over the PostgreSQL adapter
//! (`certkeeper_fleet`).
//!
//! A node in a fleet keeps its own state directory, `live/` and hooks, exactly as a single
//! node does; the database is where the nodes coordinate (a lease per certificate: only its
//! holder orders) and replicate (accounts, certificate versions with their keys sealed by the
//! fleet key, orders in flight, HTTP-01 key authorisations). This module turns the validated
//! [`ClusterSpec`] into the adapter's settings and connects.

use certkeeper_core::CaSpec;
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

/// The name under which the fleet's database keeps the ACME account for `ca`: one account per
/// CA and EAB credential for the whole fleet, as a single node keeps one per
/// (directory, key id) in its `accounts/`.
///
/// A pure function of the CA's directory URL (without DigiCert's lifecycle parameters, which
/// change per order but not the account) and its EAB key id; never of a secret, so it can be
/// logged and shown. Every node derives the same name from the same `[[ca]]`, whatever the
/// CA is called in each node's inventory.
#[must_use]
pub fn fleet_account_key(ca: &CaSpec) -> String {
    let directory = certkeeper_core::lifecycle::account_directory(&ca.directory)
        .unwrap_or_else(|_| ca.directory.clone());
    match &ca.eab {
        Some(eab) => format!("{directory} eab:{}", eab.kid),
        None => format!("{directory} no-eab"),
    }
}

#[cfg(test)]
mod tests {
    use certkeeper_core::{CaName, Eab, Secret};

    use super::*;

    fn ca(directory: &str, kid: Option<&str>) -> CaSpec {
        CaSpec {
            name: CaName::new("digicert").expect("valid"),
            directory: directory.to_owned(),
            eab: kid.map(|kid| Eab {
                kid: kid.to_owned(),
                hmac_key: Secret::new(b"hmac-secret-bytes".to_vec()),
            }),
            terms_of_service_agreed: true,
            contact: Vec::new(),
            root_ca_file: None,
            max_concurrent: None,
            request_timeout: None,
        }
    }

    #[test]
    fn the_account_key_names_directory_and_key_id_never_the_secret() {
        const DIR: &str = "https://one.digicert.com/mpki/api/v1/acme/v2/directory";
        let key = fleet_account_key(&ca(DIR, Some("kid-1")));
        assert_eq!(key, format!("{DIR} eab:kid-1"));
        assert!(!key.contains("hmac-secret"), "{key}");
        assert_eq!(fleet_account_key(&ca(DIR, None)), format!("{DIR} no-eab"));
        assert_ne!(key, fleet_account_key(&ca(DIR, Some("kid-2"))));
        // DigiCert's lifecycle parameters select an order, not an account.
        assert_eq!(
            fleet_account_key(&ca(&format!("{DIR}?action=renew&orderId=5"), Some("kid-1"))),
            key
        );
    }
}
