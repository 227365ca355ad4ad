//! ACME accounts for the CAs in use: loaded from the store, registered when missing (the new
//! credentials are written 0600 before any order uses them), cached per CA and shared by
//! concurrent orders.
//!
//! Registration at one CA happens once even when several orders ask at the same moment (they
//! wait for the first), and never holds up orders at another CA: a CA that takes its time
//! answering only delays its own certificates.
//!
//! An account the CA no longer knows (`accountDoesNotExist`: a CA that lost its data, an
//! account removed at the CA) is registered again by [`Accounts::register_again`], once per
//! attempt, with the configured credentials. The old credentials are kept aside first, under
//! `accounts/<server>/<kid>~replaced-<unix seconds>/account.json` next to the live
//! `accounts/<server>/<kid>/`: written through the store like any account (0700 directories,
//! 0600 file, no symlink followed), and before the CA is asked, so a failed registration loses
//! nothing.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

use certkeeper_acme::{AcmeAccount, AcmeError, CaFailure, Transport, TransportSettings};
use certkeeper_core::{CaName, CaSpec, Secret};
use certkeeper_fleet::{Fleet, FleetError};
use certkeeper_store::{AccountKey, Store, StoreError, unix_seconds};

/// One CA's slot: empty until the account is loaded or registered.
type Slot = Arc<tokio::sync::Mutex<Option<AcmeAccount>>>;

#[derive(Debug, Clone, Default)]
pub struct Accounts {
    slots: Arc<Mutex<HashMap<CaName, Slot>>>,
    /// In a fleet: where the fleet's one account per CA and EAB credential lives.
    fleet: Option<Fleet>,
}

/// How long a node of a fleet waits for the account another node is registering.
const FLEET_REGISTRATION_WAIT: Duration = Duration::from_secs(60);

/// Why the account at a CA could not be loaded or registered. Each variant keeps its cause.
#[derive(Debug, thiserror::Error)]
pub enum AccountError {
    /// The CA (or the way to it) failed or refused, with the Retry-After it sent.
    #[error(transparent)]
    Acme(#[from] CaFailure),
    /// The stored credentials could not be read.
    #[error("reading the stored account for CA {ca:?}")]
    Read {
        ca: String,
        #[source]
        source: StoreError,
    },
    /// The credentials of an account the CA no longer knows could not be kept aside, so no
    /// new one was registered.
    #[error("keeping the old account for CA {ca:?} aside")]
    KeepAside {
        ca: String,
        #[source]
        source: StoreError,
    },
    /// A newly registered account could not be saved; no order used it.
    #[error("saving the new account for CA {ca:?}")]
    Save {
        ca: String,
        #[source]
        source: StoreError,
    },
    /// The fleet's account could not be read or shared.
    #[error("the fleet's account for CA {ca:?}")]
    Fleet {
        ca: String,
        #[source]
        source: FleetError,
    },
    /// Another node of the fleet is registering the account and has not shared it in time.
    #[error(
        "node {owner} of the fleet is registering the account at CA {ca:?} and has not shared it yet; trying again later"
    )]
    FleetRegistering { ca: String, owner: String },
}

impl From<AcmeError> for AccountError {
    fn from(error: AcmeError) -> Self {
        AccountError::Acme(error.into())
    }
}

/// The CA's name as messages quote it.
fn ca_label(ca: &CaSpec) -> String {
    ca.name.as_str().to_owned()
}

impl Accounts {
    /// Accounts shared through `fleet`: one per CA and EAB credential for every node.
    #[must_use]
    pub fn in_fleet(fleet: Fleet) -> Self {
        Self {
            slots: Arc::default(),
            fleet: Some(fleet),
        }
    }

    /// One CA's slot, created empty on first use.
    fn slot(&self, ca: &CaSpec) -> Slot {
        Arc::clone(
            self.slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(ca.name.clone())
                .or_default(),
        )
    }

    /// The account at `ca`, registering it on first use.
    pub async fn get(&self, store: &Store, ca: &CaSpec) -> Result<AcmeAccount, AccountError> {
        let slot = self.slot(ca);
        // Held across registration on purpose: a second order for the same CA waits for the
        // first registration instead of registering another account.
        let mut slot = slot.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let key = AcmeAccount::storage_key(ca)?;
        let stored = store
            .read_account(&key)
            .map_err(|source| AccountError::Read {
                ca: ca_label(ca),
                source,
            })?;
        let account = match &self.fleet {
            None => load_or_register(store, ca, &key, stored.as_deref()).await?,
            Some(fleet) => fleet_account(fleet, store, ca, &key, stored).await?,
        };
        *slot = Some(account.clone());
        Ok(account)
    }

    /// Register a new account at `ca` after the CA answered the account at `gone` (its URL)
    /// with `accountDoesNotExist`, keeping the old credentials aside (see the module
    /// documentation).
    ///
    /// Orders that met the same refusal at the same moment share one new registration: the
    /// ones that come second find `gone` already replaced and take its replacement.
    pub async fn register_again(
        &self,
        store: &Store,
        ca: &CaSpec,
        gone: &str,
    ) -> Result<AcmeAccount, AccountError> {
        let slot = self.slot(ca);
        let mut slot = slot.lock().await;
        if let Some(current) = slot.as_ref()
            && current.account_url() != gone
        {
            return Ok(current.clone());
        }
        tracing::warn!(ca = %ca.name, account = %gone, "the CA no longer knows the account; registering a new one");
        let key = AcmeAccount::storage_key(ca)?;
        let old = store
            .read_account(&key)
            .map_err(|source| AccountError::Read {
                ca: ca_label(ca),
                source,
            })?;
        if let Some(old) = old {
            let aside = replaced_key(&key, SystemTime::now());
            let path =
                store
                    .write_account(&aside, &old)
                    .map_err(|source| AccountError::KeepAside {
                        ca: ca_label(ca),
                        source,
                    })?;
            tracing::info!(ca = %ca.name, path = %path.display(), "old account credentials kept aside");
        }
        let account = load_or_register(store, ca, &key, None).await?;
        if let Some(fleet) = &self.fleet {
            share(fleet, store, ca, &key).await?;
        }
        *slot = Some(account.clone());
        Ok(account)
    }

    /// Forget cached accounts (after a reload changed CA definitions).
    pub fn clear(&self) {
        self.slots
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// Load the stored account, or register one and save its credentials (0600) before any order
/// uses it.
async fn load_or_register(
    store: &Store,
    ca: &CaSpec,
    key: &AccountKey,
    stored: Option<&[u8]>,
) -> Result<AcmeAccount, AccountError> {
    let transport = transport_for(ca)?;
    let (account, registered) = AcmeAccount::load_or_register(ca, transport.clone(), stored)
        .await
        .map_err(|err| transport.failure(err))?;
    if let Some(json) = registered {
        let path = store
            .write_account(key, &json)
            .map_err(|source| AccountError::Save {
                ca: ca_label(ca),
                source,
            })?;
        tracing::info!(ca = %ca.name, path = %path.display(), "account credentials saved");
    }
    Ok(account)
}

/// The fleet's account for `ca`: the one in the database (written here too, so the state
/// directory stays complete), or this node's own shared when the fleet has none (a node moved
/// into the fleet), or one registered by exactly one node, under a lease, and shared before any
/// order uses it.
async fn fleet_account(
    fleet: &Fleet,
    store: &Store,
    ca: &CaSpec,
    key: &AccountKey,
    stored: Option<Vec<u8>>,
) -> Result<AcmeAccount, AccountError> {
    let fleet_key = fleet_account_key(ca);
    let failed = |source| AccountError::Fleet {
        ca: ca_label(ca),
        source,
    };
    let shared = fleet.account(&fleet_key).await.map_err(failed)?;
    if let Some(shared) = shared {
        return adopt(store, ca, key, stored.as_deref(), &shared).await;
    }
    if let Some(stored) = stored {
        let account = load_or_register(store, ca, key, Some(&stored)).await?;
        fleet
            .save_account(&fleet_key, &Secret::new(stored))
            .await
            .map_err(failed)?;
        tracing::info!(ca = %ca.name, "this node's account is now the fleet's");
        return Ok(account);
    }
    // Nobody has one: one node registers it, the others wait for it to be shared.
    let lease_name = format!("account:{fleet_key}");
    let deadline = tokio::time::Instant::now() + FLEET_REGISTRATION_WAIT;
    loop {
        if let Some(lease) = fleet
            .acquire(&lease_name, FLEET_REGISTRATION_WAIT)
            .await
            .map_err(failed)?
        {
            let registered = async {
                // Shared by another node between the first read and the lease.
                if let Some(shared) = fleet.account(&fleet_key).await.map_err(failed)? {
                    return adopt(store, ca, key, None, &shared).await;
                }
                let account = load_or_register(store, ca, key, None).await?;
                share(fleet, store, ca, key).await?;
                Ok(account)
            }
            .await;
            let _ = fleet.release(&lease).await;
            return registered;
        }
        if let Some(shared) = fleet.account(&fleet_key).await.map_err(failed)? {
            return adopt(store, ca, key, None, &shared).await;
        }
        if tokio::time::Instant::now() >= deadline {
            let owner = fleet
                .leases()
                .await
                .map_err(failed)?
                .into_iter()
                .find(|lease| lease.lineage == lease_name)
                .map_or_else(|| "another node".to_owned(), |lease| lease.owner);
            return Err(AccountError::FleetRegistering {
                ca: ca_label(ca),
                owner,
            });
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Use the fleet's account `shared`, written into this node's store too (unless `stored`, what
/// the store holds, is it already), so the state directory stays complete.
async fn adopt(
    store: &Store,
    ca: &CaSpec,
    key: &AccountKey,
    stored: Option<&[u8]>,
    shared: &Secret,
) -> Result<AcmeAccount, AccountError> {
    if stored != Some(shared.expose()) {
        store
            .write_account(key, shared.expose())
            .map_err(|source| AccountError::Save {
                ca: ca_label(ca),
                source,
            })?;
    }
    load_or_register(store, ca, key, Some(shared.expose())).await
}

/// Share this node's stored account for `key` with the fleet.
async fn share(
    fleet: &Fleet,
    store: &Store,
    ca: &CaSpec,
    key: &AccountKey,
) -> Result<(), AccountError> {
    let stored = store
        .read_account(key)
        .map_err(|source| AccountError::Read {
            ca: ca_label(ca),
            source,
        })?;
    if let Some(stored) = stored {
        fleet
            .save_account(&fleet_account_key(ca), &Secret::new(stored))
            .await
            .map_err(|source| AccountError::Fleet {
                ca: ca_label(ca),
                source,
            })?;
        tracing::info!(ca = %ca.name, "account shared with the fleet");
    }
    Ok(())
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

/// Where replaced credentials are kept: a sibling of the account's directory. `~` never
/// appears in a storage key component (they are sanitised to `[A-Za-z0-9._-]`), so this
/// cannot collide with another CA's or key id's account.
fn replaced_key((server, kid): &AccountKey, at: SystemTime) -> AccountKey {
    (
        server.clone(),
        format!("{kid}~replaced-{}", unix_seconds(at)),
    )
}

/// An HTTPS client for `ca`: its extra trust anchor and request timeout.
///
/// # Errors
/// When the trust anchor cannot be read.
pub fn transport_for(ca: &CaSpec) -> Result<Transport, AcmeError> {
    let defaults = TransportSettings::default();
    Transport::new(&TransportSettings {
        root_ca_file: ca.root_ca_file.clone(),
        request_timeout: ca.request_timeout.unwrap_or(defaults.request_timeout),
        ..defaults
    })
}

#[cfg(test)]
mod tests {
    use certkeeper_core::{Eab, Secret};

    use super::*;

    #[test]
    fn replaced_credentials_sit_next_to_the_account_under_a_dated_name() {
        let at = std::time::UNIX_EPOCH + std::time::Duration::from_secs(1_700_000_000);
        assert_eq!(
            replaced_key(&("localhost_14000_dir".to_owned(), "kid-1".to_owned()), at),
            (
                "localhost_14000_dir".to_owned(),
                "kid-1~replaced-1700000000".to_owned()
            )
        );
    }

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
