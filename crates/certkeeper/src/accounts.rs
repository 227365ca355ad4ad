//! ACME accounts for the CAs in use: loaded from the store, registered when missing (the new
//! credentials are written 0600 before any order uses them), cached per CA and shared by
//! concurrent orders.
//!
//! Registration at one CA happens once even when several orders ask at the same moment (they
//! wait for the first), and never holds up orders at another CA: a CA that takes its time
//! answering only delays its own certificates.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::SystemTime;

use anyhow::Context;
use certkeeper_acme::{AcmeAccount, Transport, TransportSettings};
use certkeeper_core::{CaName, CaSpec};
use certkeeper_store::Store;

/// One CA's slot: empty until the account is loaded or registered.
type Slot = Arc<tokio::sync::Mutex<Option<AcmeAccount>>>;

#[derive(Debug, Clone, Default)]
pub struct Accounts {
    slots: Arc<Mutex<HashMap<CaName, Slot>>>,
}

/// The account could not be loaded or registered.
#[derive(Debug)]
pub struct AccountError {
    pub error: anyhow::Error,
    /// The CA's Retry-After, when it sent one with its refusal.
    pub retry_after: Option<SystemTime>,
}

impl From<anyhow::Error> for AccountError {
    fn from(error: anyhow::Error) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

impl Accounts {
    /// The account at `ca`, registering it on first use.
    pub async fn get(&self, store: &Store, ca: &CaSpec) -> Result<AcmeAccount, AccountError> {
        let slot = Arc::clone(
            self.slots
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .entry(ca.name.clone())
                .or_default(),
        );
        // Held across registration on purpose: a second order for the same CA waits for the
        // first registration instead of registering another account.
        let mut slot = slot.lock().await;
        if let Some(account) = slot.as_ref() {
            return Ok(account.clone());
        }
        let key = AcmeAccount::storage_key(ca).map_err(anyhow::Error::from)?;
        let stored = store
            .read_account(&key)
            .with_context(|| format!("reading the stored account for CA {:?}", ca.name.as_str()))?;
        let defaults = TransportSettings::default();
        let transport = Transport::new(&TransportSettings {
            root_ca_file: ca.root_ca_file.clone(),
            request_timeout: ca.request_timeout.unwrap_or(defaults.request_timeout),
            ..defaults
        })
        .map_err(anyhow::Error::from)?;
        let (account, registered) =
            match AcmeAccount::load_or_register(ca, transport.clone(), stored.as_deref()).await {
                Ok(loaded) => loaded,
                Err(err) => {
                    return Err(AccountError {
                        error: err.into(),
                        retry_after: transport.take_retry_after(),
                    });
                }
            };
        if let Some(json) = registered {
            let path = store
                .write_account(&key, &json)
                .with_context(|| format!("saving the new account for CA {:?}", ca.name.as_str()))?;
            tracing::info!(ca = %ca.name, path = %path.display(), "account credentials saved");
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
