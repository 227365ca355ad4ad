//! ACME accounts for the CAs in use: loaded from the store, registered when missing (the new
//! credentials are written 0600 before any order uses them), cached per CA and shared by
//! concurrent orders. Registration for one CA happens once even when several orders ask.

use std::collections::HashMap;
use std::sync::Arc;

use anyhow::Context;
use certkeeper_acme::{AcmeAccount, Transport, TransportSettings};
use certkeeper_core::{CaName, CaSpec};
use certkeeper_store::Store;
use tokio::sync::Mutex;

#[derive(Debug, Clone, Default)]
pub struct Accounts {
    cache: Arc<Mutex<HashMap<CaName, AcmeAccount>>>,
}

impl Accounts {
    /// The account at `ca`, registering it on first use.
    pub async fn get(&self, store: &Store, ca: &CaSpec) -> anyhow::Result<AcmeAccount> {
        // Held across registration on purpose: a second order for the same CA waits for the
        // first registration instead of registering another account.
        let mut cache = self.cache.lock().await;
        if let Some(account) = cache.get(&ca.name) {
            return Ok(account.clone());
        }
        let key = AcmeAccount::storage_key(ca)?;
        let stored = store
            .read_account(&key)
            .with_context(|| format!("reading the stored account for CA {:?}", ca.name.as_str()))?;
        let defaults = TransportSettings::default();
        let transport = Transport::new(&TransportSettings {
            root_ca_file: ca.root_ca_file.clone(),
            request_timeout: ca.request_timeout.unwrap_or(defaults.request_timeout),
            ..defaults
        })?;
        let (account, registered) =
            AcmeAccount::load_or_register(ca, transport, stored.as_deref()).await?;
        if let Some(json) = registered {
            let path = store
                .write_account(&key, &json)
                .with_context(|| format!("saving the new account for CA {:?}", ca.name.as_str()))?;
            tracing::info!(ca = %ca.name, path = %path.display(), "account credentials saved");
        }
        cache.insert(ca.name.clone(), account.clone());
        Ok(account)
    }

    /// Forget cached accounts (after a reload changed CA definitions).
    pub async fn clear(&self) {
        self.cache.lock().await.clear();
    }
}
