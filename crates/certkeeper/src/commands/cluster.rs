//! `certkeeper cluster status|import`: this node and the fleet it shares certificates with.
//!
//! `status` is read-only on this node (the state directory is read as `certkeeper status`
//! reads it, no lock) and compares each certificate's live serial with the fleet's newest
//! version; its exit code is usable from monitoring (0 in sync, 3 behind). `import` moves a
//! single node's state directory (one made by `import-certbot` too) into the fleet: each live
//! certificate with its key is published under the lineage's lease, so it is fenced like any
//! other write, and the ACME accounts are stored under [`fleet_account_key`]. Both connect as
//! the daemon does ([`engine::fleet::connect`]), which registers this node, migrates the schema
//! when this node is the newest and checks the fleet key.
//!
//! A database that cannot be used is an error with its own exit code (the adapter's
//! [`FleetError`] says what to change): 69 unreachable or not answering, 77 the login refused,
//! 78 a wrong fleet key, a schema newer than this certkeeper, or any other setting to fix. No
//! message quotes the password or the fleet key: neither is ever formatted.

use std::path::Path;
use std::time::{Duration, SystemTime};

use certkeeper_acme::AcmeAccount;
use certkeeper_core::cluster::ClusterSpec;
use certkeeper_core::{CertificateSpec, Inventory, Secret};
use certkeeper_fleet::{Fleet, FleetError, Lease, NodeInfo, StoredVersion, VersionRecord};
use certkeeper_store::{LiveCert, Store};
use serde::Serialize;

use crate::accounts::fleet_account_key;
use crate::cli::ClusterStatusArgs;
use crate::engine;
use crate::engine::fleet::publish::live_version;
use crate::exit::Exit;
use crate::report::{error_chain, short_duration, timestamp};

/// `[cluster]`, or the error that this node is not in a fleet.
fn cluster_of<'a>(config: &Path, inventory: &'a Inventory) -> Option<&'a ClusterSpec> {
    let spec = inventory.cluster.as_ref();
    if spec.is_none() {
        eprintln!(
            "error: this node is not in a cluster (no [cluster] in {})",
            config.display()
        );
    }
    spec
}

/// The exit code for a database this command could not use.
pub(super) fn exit_for(error: &FleetError) -> Exit {
    match error {
        _ if error.is_unavailable() => Exit::Unavailable,
        FleetError::Authentication { .. } => Exit::Refused,
        FleetError::Fenced { .. }
        | FleetError::LeaseExpired { .. }
        | FleetError::LeaseLost { .. }
        | FleetError::Database { .. }
        | FleetError::Corrupt { .. }
        | FleetError::Decrypt { .. }
        | FleetError::Encrypt { .. } => Exit::Failure,
        // A wrong fleet key, a newer schema, TLS, the URL, the CA or key file: settings to
        // change on this node before a retry can help.
        _ => Exit::InvalidConfig,
    }
}

fn fail(error: &FleetError) -> Exit {
    eprintln!("error: {}", error_chain(error));
    exit_for(error)
}

async fn connect(spec: &ClusterSpec) -> Result<Fleet, Exit> {
    engine::fleet::connect(spec).await.map_err(|e| fail(&e))
}

#[derive(Debug, Serialize)]
struct StatusReport {
    node: String,
    nodes: Vec<NodeRow>,
    leases: Vec<LeaseRow>,
    certificates: Vec<CertRow>,
    in_sync: bool,
}

#[derive(Debug, Serialize)]
struct NodeRow {
    name: String,
    this_node: bool,
    last_seen: String,
    /// Seconds since the database last heard from it (by this node's clock).
    last_seen_ago_seconds: u64,
}

#[derive(Debug, Serialize)]
struct LeaseRow {
    lineage: String,
    owner: String,
    generation: i64,
    expires_at: String,
    /// Seconds until it expires; 0 once expired (free to take).
    expires_in_seconds: u64,
}

#[derive(Debug, Serialize)]
struct CertRow {
    name: String,
    /// `in sync`, `behind`, `not yet published`, `not issued yet` or `unreadable`.
    state: &'static str,
    fleet_version: Option<i64>,
    fleet_serial: Option<String>,
    fleet_published_at: Option<String>,
    local_serial: Option<String>,
    /// When behind: seconds since the fleet's version was published.
    lag_seconds: Option<u64>,
    detail: Option<String>,
}

impl CertRow {
    fn in_sync(&self) -> bool {
        matches!(self.state, "in sync" | "not issued yet")
    }

    fn line(&self) -> String {
        let local = self.local_serial.as_deref().unwrap_or("none");
        match (self.state, self.fleet_version, &self.fleet_serial) {
            ("in sync", Some(version), Some(serial)) => {
                format!("in sync (fleet v{version} serial {serial})")
            }
            ("behind", Some(version), Some(serial)) => format!(
                "behind (fleet v{version} serial {serial}, here serial {local}; lag {})",
                short_duration(Duration::from_secs(self.lag_seconds.unwrap_or(0)))
            ),
            ("not yet published", ..) => format!(
                "not yet published (here serial {local}; `certkeeper cluster import` publishes it)"
            ),
            ("unreadable", ..) => {
                format!("unreadable here: {}", self.detail.as_deref().unwrap_or("-"))
            }
            (state, ..) => state.to_owned(),
        }
    }
}

fn since(now: SystemTime, then: SystemTime) -> u64 {
    now.duration_since(then).map_or(0, |d| d.as_secs())
}

fn same_serial(a: &str, b: &str) -> bool {
    let trim = |s: &str| s.trim_start_matches('0').to_ascii_lowercase();
    trim(a) == trim(b)
}

fn cert_row(
    spec: &CertificateSpec,
    local: Result<Option<LiveCert>, String>,
    fleet: Option<&StoredVersion>,
    now: SystemTime,
) -> CertRow {
    let mut row = CertRow {
        name: spec.name.to_string(),
        state: "not issued yet",
        fleet_version: fleet.map(|v| v.version),
        fleet_serial: fleet.map(|v| v.record.serial.clone()),
        fleet_published_at: fleet.map(|v| timestamp(v.published_at)),
        local_serial: None,
        lag_seconds: None,
        detail: None,
    };
    let local = match local {
        Ok(local) => local,
        Err(why) => {
            row.state = "unreadable";
            row.detail = Some(why);
            return row;
        }
    };
    row.local_serial = local.as_ref().map(|l| l.serial_hex.clone());
    row.state = match (&local, fleet) {
        (None, None) => "not issued yet",
        (Some(_), None) => "not yet published",
        (Some(live), Some(version)) if same_serial(&live.serial_hex, &version.record.serial) => {
            "in sync"
        }
        (_, Some(version)) => {
            row.lag_seconds = Some(since(now, version.published_at));
            "behind"
        }
    };
    row
}

/// `certkeeper cluster status [--json]`.
pub async fn status(
    config: &Path,
    inventory: &Inventory,
    args: &ClusterStatusArgs,
) -> anyhow::Result<Exit> {
    let Some(spec) = cluster_of(config, inventory) else {
        return Ok(Exit::InvalidConfig);
    };
    let fleet = match connect(spec).await {
        Ok(fleet) => fleet,
        Err(exit) => return Ok(exit),
    };
    match status_report(&fleet, inventory).await {
        Ok(report) => {
            if args.json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                print_status(&report);
            }
            Ok(if report.in_sync {
                Exit::Success
            } else {
                Exit::Behind
            })
        }
        Err(error) => Ok(fail(&error)),
    }
}

async fn status_report(fleet: &Fleet, inventory: &Inventory) -> Result<StatusReport, FleetError> {
    let now = SystemTime::now();
    let nodes = fleet.nodes().await?;
    let leases = fleet.leases().await?;
    let store = Store::open(&inventory.state_dir);
    let mut certificates = Vec::new();
    for spec in &inventory.certificates {
        let fleet_version = fleet.latest_version(spec.name.as_str()).await?;
        let local = match &store {
            Ok(store) => store
                .lineage(&spec.name)
                .and_then(|lineage| lineage.live())
                .map_err(|e| error_chain(&e)),
            Err(e) => Err(error_chain(e)),
        };
        certificates.push(cert_row(spec, local, fleet_version.as_ref(), now));
    }
    Ok(StatusReport {
        node: fleet.node().to_owned(),
        nodes: nodes.iter().map(|n| node_row(fleet, n, now)).collect(),
        leases: leases.iter().map(|l| lease_row(l, now)).collect(),
        in_sync: certificates.iter().all(CertRow::in_sync),
        certificates,
    })
}

fn node_row(fleet: &Fleet, node: &NodeInfo, now: SystemTime) -> NodeRow {
    NodeRow {
        name: node.name.clone(),
        this_node: node.name == fleet.node(),
        last_seen: timestamp(node.last_seen),
        last_seen_ago_seconds: since(now, node.last_seen),
    }
}

fn lease_row(lease: &Lease, now: SystemTime) -> LeaseRow {
    LeaseRow {
        lineage: lease.lineage.clone(),
        owner: lease.owner.clone(),
        generation: lease.generation,
        expires_at: timestamp(lease.expires_at),
        expires_in_seconds: lease
            .expires_at
            .duration_since(now)
            .map_or(0, |d| d.as_secs()),
    }
}

fn print_status(report: &StatusReport) {
    println!("node {} ({} in the fleet)", report.node, report.nodes.len());
    for node in &report.nodes {
        println!(
            "  node {}{}: last seen {} ago",
            node.name,
            if node.this_node { " (this node)" } else { "" },
            short_duration(Duration::from_secs(node.last_seen_ago_seconds))
        );
    }
    if report.leases.is_empty() {
        println!("no leases");
    }
    for lease in &report.leases {
        let expiry = if lease.expires_in_seconds == 0 {
            "expired (free)".to_owned()
        } else {
            format!(
                "expires in {}",
                short_duration(Duration::from_secs(lease.expires_in_seconds))
            )
        };
        println!(
            "  lease {}: {} generation {}, {expiry}",
            lease.lineage, lease.owner, lease.generation
        );
    }
    for cert in &report.certificates {
        println!("{}: {}", cert.name, cert.line());
    }
    println!(
        "{}",
        if report.in_sync {
            "this node is in sync with the fleet"
        } else {
            "this node is NOT in sync with the fleet"
        }
    );
}

/// `certkeeper cluster import`.
pub async fn import(config: &Path, inventory: &Inventory) -> anyhow::Result<Exit> {
    let Some(spec) = cluster_of(config, inventory) else {
        return Ok(Exit::InvalidConfig);
    };
    let store = Store::open(&inventory.state_dir)?;
    let fleet = match connect(spec).await {
        Ok(fleet) => fleet,
        Err(exit) => return Ok(exit),
    };
    let mut failed = false;
    for ca in &inventory.cas {
        match import_account(&fleet, &store, ca).await {
            Ok(line) => println!("ca {}: {line}", ca.name),
            Err(ImportError::Fleet(error)) => return Ok(fail(&error)),
            Err(ImportError::Local(why)) => {
                eprintln!("error: ca {}: {why}", ca.name);
                failed = true;
            }
        }
    }
    for cert in &inventory.certificates {
        match import_certificate(&fleet, &store, cert, spec.lease).await {
            Ok(line) => println!("{}: {line}", cert.name),
            Err(ImportError::Fleet(error)) if error.is_unavailable() => return Ok(fail(&error)),
            Err(ImportError::Fleet(error)) => {
                eprintln!("error: {}: {}", cert.name, error_chain(&error));
                failed = true;
            }
            Err(ImportError::Local(why)) => {
                eprintln!("error: {}: {why}", cert.name);
                failed = true;
            }
        }
    }
    Ok(if failed { Exit::Failure } else { Exit::Success })
}

enum ImportError {
    /// The database: unusable, or it refused a write.
    Fleet(FleetError),
    /// This node's state directory.
    Local(String),
}

impl From<FleetError> for ImportError {
    fn from(error: FleetError) -> Self {
        ImportError::Fleet(error)
    }
}

/// Store this node's account for `ca` in the fleet, unless the fleet has one already: one
/// account per CA and EAB credential for the whole fleet, and the fleet's is the one in use.
async fn import_account(
    fleet: &Fleet,
    store: &Store,
    ca: &certkeeper_core::CaSpec,
) -> Result<String, ImportError> {
    let local_key =
        AcmeAccount::storage_key(ca).map_err(|e| ImportError::Local(error_chain(&e)))?;
    let local = store
        .read_account(&local_key)
        .map_err(|e| ImportError::Local(error_chain(&e)))?;
    let fleet_key = fleet_account_key(ca);
    let existing = fleet.account(&fleet_key).await?;
    Ok(match (local, existing) {
        (None, None) => "no account here or in the fleet (the first order registers one)".into(),
        (None, Some(_)) => "the fleet has an account; none here".into(),
        (Some(local), Some(existing)) if existing.expose() == local.as_slice() => {
            "account already in the fleet".into()
        }
        (Some(_), Some(_)) => "the fleet has another account for this CA; keeping the fleet's \
             (this node's is no longer used)"
            .into(),
        (Some(local), None) => {
            fleet.save_account(&fleet_key, &Secret::new(local)).await?;
            "account imported".into()
        }
    })
}

/// Publish `cert`'s live version unless the fleet holds it or a newer one; under the lease.
async fn import_certificate(
    fleet: &Fleet,
    store: &Store,
    cert: &CertificateSpec,
    lease_ttl: Duration,
) -> Result<String, ImportError> {
    let local = |e: certkeeper_store::StoreError| ImportError::Local(error_chain(&e));
    let lineage = store.lineage(&cert.name).map_err(local)?;
    let Some(live) = lineage.live().map_err(local)? else {
        return Ok("nothing live here; nothing to import".into());
    };
    let newer_or_same = |version: &StoredVersion| {
        same_serial(&version.record.serial, &live.serial_hex)
            || version.record.not_after >= live.observed.not_after
    };
    if let Some(version) = fleet.latest_version(cert.name.as_str()).await?
        && newer_or_same(&version)
    {
        return Ok(already(&version, &live));
    }
    // The bytes this node serves, the key checked against the certificate.
    let Some(record) = live_version(&lineage).map_err(local)? else {
        return Ok("nothing live here; nothing to import".into());
    };
    let Some(lease) = fleet.acquire(cert.name.as_str(), lease_ttl).await? else {
        let owner = fleet
            .leases()
            .await?
            .into_iter()
            .find(|l| l.lineage == cert.name.as_str())
            .map_or_else(|| "another node".to_owned(), |l| l.owner);
        return Err(ImportError::Local(format!(
            "{owner} holds the lease and may be renewing it; run the import again later"
        )));
    };
    let published = publish_under(fleet, &lease, &record, newer_or_same).await;
    if let Err(error) = fleet.release(&lease).await {
        tracing::warn!(cert = %cert.name, error = %error_chain(&error), "releasing the lease failed; it expires by itself");
    }
    match published? {
        Published::Already(version) => Ok(already(&version, &live)),
        Published::New(version) => Ok(format!(
            "published as fleet version {version} (serial {}, expires {})",
            live.serial_hex,
            timestamp(live.observed.not_after)
        )),
    }
}

enum Published {
    Already(Box<StoredVersion>),
    New(i64),
}

/// Check again under the lease (another node may have published since), then publish.
async fn publish_under(
    fleet: &Fleet,
    lease: &Lease,
    record: &VersionRecord,
    newer_or_same: impl Fn(&StoredVersion) -> bool,
) -> Result<Published, FleetError> {
    if let Some(version) = fleet.latest_version(&lease.lineage).await?
        && newer_or_same(&version)
    {
        return Ok(Published::Already(Box::new(version)));
    }
    Ok(Published::New(fleet.publish_version(lease, record).await?))
}

fn already(version: &StoredVersion, live: &LiveCert) -> String {
    if same_serial(&version.record.serial, &live.serial_hex) {
        format!(
            "already in the fleet as version {} (serial {})",
            version.version, version.record.serial
        )
    } else {
        format!(
            "the fleet has a newer certificate (version {}, serial {}); nothing published",
            version.version, version.record.serial
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serials_compare_as_numbers_in_hex() {
        assert!(same_serial("0abc", "ABC"));
        assert!(!same_serial("abc", "abd"));
    }

    #[test]
    fn every_fleet_error_has_its_exit_code() {
        assert_eq!(exit_for(&FleetError::WrongFleetKey), Exit::InvalidConfig);
        assert_eq!(
            exit_for(&FleetError::SchemaTooNew { found: 9, known: 1 }),
            Exit::InvalidConfig
        );
        assert_eq!(
            exit_for(&FleetError::TimedOut {
                target: "db:5432".into(),
                after: Duration::from_secs(1)
            }),
            Exit::Unavailable
        );
        assert_eq!(
            exit_for(&FleetError::Corrupt { what: "x".into() }),
            Exit::Failure
        );
    }
}
