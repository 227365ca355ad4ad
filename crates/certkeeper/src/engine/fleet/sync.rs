//! Installing what the fleet published: a node brings its own `live/` up to the fleet's newest
//! version of each certificate it is configured for, then runs its own deploy hooks.
//!
//! The database is the fleet's record of which version is current; a node's `live/` is its
//! copy, written through the store's ordinary install (verified before a byte is written,
//! assembled in a new archive version, swapped in with one atomic rename), so a crash leaves
//! the old pair or the new one live and a version that fails the checks leaves the old pair
//! untouched. The node's own inventory decides what it installs: only certificates it is
//! configured for, checked against *its* names (a version for other names is refused, as a
//! CA's certificate for other names would be), its key group and its deploy hooks. Lineages
//! the fleet holds but this node does not serve are not its business.
//!
//! A version is compared with `live/` by serial. A different serial is installed unless the
//! local certificate was issued later (its notBefore is newer): that is this node's own
//! renewal, installed a moment before it is published, and the fleet's older head must not
//! overwrite it. A node restarted with an empty state directory has nothing live and so fills
//! itself from the database at its first [`sync_all`].
//!
//! An install is recorded on the lineage as an attempt's success is (`record_install`: the
//! failure streak ends, an order this node had in flight for it is dropped), the deploy hooks
//! run once (`issue` when nothing was live, else `renew`) and their outcome is recorded as an
//! attempt's is: a failed hook leaves the deploy pending for the daemon's retries, it never
//! un-installs the certificate.
//!
//! [`sync_all`] asks the database for every lineage's head (number and serial) in one query
//! and reads (and decrypts) a version only for lineages whose head differs from `live/`, so the
//! periodic check costs one query when the node is in sync.
//!
//! A sync and this node's own attempt on the same lineage both write its state file, so they
//! must not run for one lineage at once. An attempt runs only under the lineage's lease, so
//! the follower leaves out the lineages whose lease this node holds ([`sync_all_except`],
//! [`Synced::Skipped`]); the attempt itself installs and publishes. [`sync_lineage`] does not
//! look at leases: a node that just took a lease may call it to catch up before it plans.

use std::collections::{BTreeSet, HashMap};
use std::time::SystemTime;

use certkeeper_core::hooks::DeployAction;
use certkeeper_core::{CertName, CertificateSpec, Inventory};
use certkeeper_fleet::{Fleet, FleetError, StoredVersion};
use certkeeper_store::{LiveCert, Store, StoreError, VerifyProblem, inspect_issue};

use crate::engine::deploy;
use crate::engine::fleet::LineageGuards;
use crate::engine::ports::Hooks;
use crate::report::{error_chain, timestamp};

/// What a sync did for one lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Synced {
    /// The fleet's newest version was installed into `live/` (and the deploy hooks ran;
    /// `deployed` says whether they all succeeded, the failure is recorded on the lineage).
    Installed {
        /// Its serial.
        serial: String,
        /// Its version number in the fleet.
        version: i64,
        /// Whether every deploy hook succeeded.
        deployed: bool,
    },
    /// `live/` already holds the fleet's newest version.
    UpToDate,
    /// The fleet holds no version of this lineage yet.
    NothingPublished,
    /// Left out on purpose ([`sync_all_except`]): this node holds the lineage's lease, its own
    /// attempt installs and publishes.
    Skipped,
    /// `live/` holds a certificate issued after the fleet's newest version: this node's own
    /// renewal, about to be published. Nothing was installed.
    LocalNewer {
        /// The serial that is live here.
        local: String,
        /// The serial of the fleet's newest version.
        fleet: String,
    },
}

/// Why a lineage could not be brought in sync. The live pair is kept in every case.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SyncError {
    /// The database could not be read (or a key did not open).
    #[error("cannot read the fleet's versions of {cert}")]
    Fleet {
        /// The lineage.
        cert: CertName,
        /// The adapter's error.
        #[source]
        source: FleetError,
    },
    /// The database could not be read for the heads of every lineage.
    #[error("cannot read the fleet's newest versions")]
    Heads(#[source] FleetError),
    /// This node's lineage state or live certificate cannot be read.
    #[error("cannot read the local state of {cert}")]
    Local {
        /// The lineage.
        cert: CertName,
        /// The store's error.
        #[source]
        source: Box<StoreError>,
    },
    /// The published version does not check out against this node's configuration (other
    /// names) or itself (a key that is not the certificate's).
    #[error(
        "version {version} of {cert} (published by {published_by}) is refused; the live certificate stays"
    )]
    Refused {
        /// The lineage.
        cert: CertName,
        /// The refused version.
        version: i64,
        /// The node that published it.
        published_by: String,
        /// What is wrong with it.
        #[source]
        problem: VerifyProblem,
    },
    /// The published version's serial is not its certificate's.
    #[error(
        "version {version} of {cert} (published by {published_by}) says serial {claimed} but its certificate has {found}; refused, the live certificate stays"
    )]
    SerialMismatch {
        /// The lineage.
        cert: CertName,
        /// The refused version.
        version: i64,
        /// The node that published it.
        published_by: String,
        /// The serial in the record.
        claimed: String,
        /// The certificate's.
        found: String,
    },
    /// Writing the version failed; the previous pair stays live.
    #[error("cannot install version {version} of {cert}; the live certificate stays")]
    Install {
        /// The lineage.
        cert: CertName,
        /// The version.
        version: i64,
        /// The store's error.
        #[source]
        source: Box<StoreError>,
    },
    /// The blocking pool could not run the install.
    #[error("the install of {cert} did not run")]
    Blocking {
        /// The lineage.
        cert: CertName,
        /// Why.
        #[source]
        source: tokio::task::JoinError,
    },
}

impl SyncError {
    /// Whether the database is down or unreachable (the node keeps what it has and retries),
    /// rather than something a human must look at.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        match self {
            SyncError::Fleet { source, .. } | SyncError::Heads(source) => source.is_unavailable(),
            _ => false,
        }
    }
}

/// One lineage's result in [`sync_all`].
pub type LineageSync = (CertName, Result<Synced, SyncError>);

/// Bring `spec`'s lineage in `store` up to the fleet's newest version, running its deploy
/// hooks through `hooks` when a version was installed (see the module documentation).
///
/// # Errors
/// [`SyncError`]; the live pair is kept whatever went wrong.
pub async fn sync_lineage(
    fleet: &Fleet,
    store: &Store,
    inventory: &Inventory,
    spec: &CertificateSpec,
    hooks: &dyn Hooks,
    guards: &LineageGuards,
) -> Result<Synced, SyncError> {
    // Never at the same time as this node's own attempt at the lineage, which installs what
    // the fleet published too: the version is installed, and its deploy hooks run, once.
    // Skipped while the attempt runs; the follower asks again shortly.
    let Some(_installing) = guards.try_hold(&spec.name) else {
        return Ok(Synced::Skipped);
    };
    sync_held(fleet, store, inventory, spec, hooks).await
}

/// [`sync_lineage`] while no attempt of this node works on the lineage.
async fn sync_held(
    fleet: &Fleet,
    store: &Store,
    inventory: &Inventory,
    spec: &CertificateSpec,
    hooks: &dyn Hooks,
) -> Result<Synced, SyncError> {
    let cert = spec.name.clone();
    let Some(stored) = fleet
        .latest_version(cert.as_str())
        .await
        .map_err(|source| SyncError::Fleet {
            cert: cert.clone(),
            source,
        })?
    else {
        return Ok(Synced::NothingPublished);
    };
    // Reading, checking and writing the version (and parsing an RSA key) on the blocking pool,
    // off the thread that answers HTTP-01 requests.
    let (store_, spec_) = (store.clone(), spec.clone());
    let installing = tokio::task::spawn_blocking(move || install(&store_, &spec_, &stored))
        .await
        .map_err(|source| SyncError::Blocking {
            cert: cert.clone(),
            source,
        })??;
    let (live, mut lineage, action, version) = match installing {
        Installing::Done(synced) => return Ok(synced),
        Installing::Installed {
            live,
            lineage,
            action,
            version,
        } => (live, lineage, action, version),
    };
    tracing::info!(
        cert = %spec.name,
        serial = %live.serial_hex,
        version,
        not_after = %timestamp(live.observed.not_after),
        live_dir = %live.live_dir.display(),
        "certificate installed from the fleet"
    );
    let deployed = deploy::deploy(hooks, inventory, spec, &live, action).await;
    let failure = deployed.as_ref().err().map(ToString::to_string);
    deploy::record(&mut lineage, failure.as_deref());
    Ok(Synced::Installed {
        serial: live.serial_hex,
        version,
        deployed: deployed.is_ok(),
    })
}

/// What the blocking part of a sync ended with.
#[expect(
    clippy::large_enum_variant,
    reason = "one value per sync, moved once out of the blocking pool"
)]
enum Installing {
    /// Nothing to install.
    Done(Synced),
    /// `live` is the new version, recorded on `lineage`; deploy it as `action`.
    Installed {
        live: LiveCert,
        lineage: certkeeper_store::Lineage,
        action: DeployAction,
        version: i64,
    },
}

/// Compare `stored` with `live/`, check it, install it and record the install.
fn install(
    store: &Store,
    spec: &CertificateSpec,
    stored: &StoredVersion,
) -> Result<Installing, SyncError> {
    let cert = &spec.name;
    let local = |source| SyncError::Local {
        cert: cert.clone(),
        source: Box::new(source),
    };
    let mut lineage = store.lineage(cert).map_err(local)?;
    let record = &stored.record;
    // A live pair this node cannot read (hand-broken files) is replaced by the fleet's.
    let (live, had_live) = match lineage.live_certificate() {
        Ok(live) => {
            let had_live = live.is_some();
            (live, had_live)
        }
        Err(err) => {
            tracing::warn!(cert = %cert, error = error_chain(&err), "the live certificate cannot be read; installing the fleet's version");
            (None, true)
        }
    };
    if let Some(live) = &live
        && same_serial(&live.serial_hex, &record.serial)
    {
        return Ok(Installing::Done(Synced::UpToDate));
    }
    let key_pem = std::str::from_utf8(record.key_pem.expose()).map_err(|_| SyncError::Refused {
        cert: cert.clone(),
        version: stored.version,
        published_by: stored.published_by.clone(),
        problem: VerifyProblem::BadPem {
            what: "private key",
            detail: "it is not UTF-8 text".to_owned(),
        },
    })?;
    let facts =
        inspect_issue(&spec.domains, key_pem, &record.fullchain_pem).map_err(|problem| {
            SyncError::Refused {
                cert: cert.clone(),
                version: stored.version,
                published_by: stored.published_by.clone(),
                problem,
            }
        })?;
    if !same_serial(&facts.serial_hex, &record.serial) {
        return Err(SyncError::SerialMismatch {
            cert: cert.clone(),
            version: stored.version,
            published_by: stored.published_by.clone(),
            claimed: record.serial.clone(),
            found: facts.serial_hex,
        });
    }
    if let Some(live) = &live
        && live.observed.not_before > facts.not_before
    {
        return Ok(Installing::Done(Synced::LocalNewer {
            local: live.serial_hex.clone(),
            fleet: facts.serial_hex,
        }));
    }
    let installed = lineage
        .install(
            &spec.domains,
            record.key_pem.expose(),
            &record.fullchain_pem,
            spec.key_group.as_ref(),
        )
        .map_err(|source| SyncError::Install {
            cert: cert.clone(),
            version: stored.version,
            source: Box::new(source),
        })?;
    if let Err(err) = lineage.record_install(SystemTime::now()) {
        tracing::warn!(cert = %cert, error = error_chain(&err), "cannot record the install");
    }
    Ok(Installing::Installed {
        live: installed,
        lineage,
        action: if had_live {
            DeployAction::Renew
        } else {
            DeployAction::Issue
        },
        version: stored.version,
    })
}

/// Serials as hex digits, whatever their case, padding or separators.
fn same_serial(a: &str, b: &str) -> bool {
    fn digits(serial: &str) -> String {
        let digits: String = serial
            .chars()
            .filter(char::is_ascii_hexdigit)
            .map(|c| c.to_ascii_lowercase())
            .collect();
        let trimmed = digits.trim_start_matches('0');
        if trimmed.is_empty() {
            "0".to_owned()
        } else {
            trimmed.to_owned()
        }
    }
    digits(a) == digits(b)
}

/// [`sync_lineage`] for every certificate of `inventory` whose fleet head differs from its
/// `live/`, one after the other; one that fails does not stop the others. Lineages in sync,
/// and those the fleet has no version of, cost nothing beyond the one query for the heads.
///
/// # Errors
/// [`SyncError::Heads`] when the heads cannot be read (nothing was synced).
#[cfg(test)]
pub async fn sync_all(
    fleet: &Fleet,
    store: &Store,
    inventory: &Inventory,
    hooks: &dyn Hooks,
    guards: &LineageGuards,
) -> Result<Vec<LineageSync>, SyncError> {
    sync_all_except(fleet, store, inventory, hooks, guards, &BTreeSet::new()).await
}

/// [`sync_all`], leaving out the lineages named in `skip` (each reported as
/// [`Synced::Skipped`]).
///
/// # Errors
/// As [`sync_all`].
pub async fn sync_all_except(
    fleet: &Fleet,
    store: &Store,
    inventory: &Inventory,
    hooks: &dyn Hooks,
    guards: &LineageGuards,
    skip: &BTreeSet<String>,
) -> Result<Vec<LineageSync>, SyncError> {
    let heads: HashMap<String, String> = fleet
        .version_heads()
        .await
        .map_err(SyncError::Heads)?
        .into_iter()
        .map(|head| (head.lineage, head.serial))
        .collect();
    let mut results = Vec::with_capacity(inventory.certificates.len());
    for spec in &inventory.certificates {
        let result = match heads.get(spec.name.as_str()) {
            _ if skip.contains(spec.name.as_str()) => Ok(Synced::Skipped),
            None => Ok(Synced::NothingPublished),
            Some(head) => {
                let live = store.read_live_certificate(&spec.name).ok().flatten();
                match live {
                    Some(live) if same_serial(&live.serial_hex, head) => Ok(Synced::UpToDate),
                    _ => sync_lineage(fleet, store, inventory, spec, hooks, guards).await,
                }
            }
        };
        results.push((spec.name.clone(), result));
    }
    Ok(results)
}

/// Log what a sync did: installs at info (done in [`sync_lineage`]), refusals at error (a
/// human must look at what was published), an unavailable database at debug (the caller says
/// so once per outage), anything else at warn.
pub fn log_result(cert: &CertName, result: &Result<Synced, SyncError>) {
    match result {
        Ok(Synced::LocalNewer { local, fleet }) => {
            tracing::info!(cert = %cert, local, fleet, "the live certificate is newer than the fleet's; keeping it");
        }
        Ok(_) => {}
        Err(err) if err.is_unavailable() => {
            tracing::debug!(cert = %cert, error = error_chain(err), "fleet sync postponed");
        }
        Err(err @ (SyncError::Refused { .. } | SyncError::SerialMismatch { .. })) => {
            tracing::error!(cert = %cert, error = error_chain(err), "a version published to the fleet does not check out; fix its publisher or the configuration");
        }
        Err(err) => {
            tracing::warn!(cert = %cert, error = error_chain(err), "fleet sync failed; will retry");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::same_serial;

    #[test]
    fn serials_compare_as_hex_digits() {
        assert!(same_serial("1a2b", "1A2B"));
        assert!(same_serial("1a2b", "00:1A:2B"));
        assert!(same_serial("0", "00"));
        assert!(!same_serial("1a2b", "1a2c"));
        assert!(!same_serial("1a2b", "1a2b00"));
    }
}
