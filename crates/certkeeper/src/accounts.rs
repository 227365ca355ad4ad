//! ACME accounts for the CAs of one run: loaded from the store, registered when missing (the
//! new credentials are written 0600 before any order uses them), cached per CA.

use std::collections::HashMap;

use anyhow::Context;
use certkeeper_acme::{AcmeAccount, Transport, TransportSettings};
use certkeeper_core::{CaName, CaSpec};
use certkeeper_store::Store;

pub struct Accounts<'a> {
    store: &'a Store,
    cache: HashMap<CaName, AcmeAccount>,
}

impl<'a> Accounts<'a> {
    pub fn new(store: &'a Store) -> Self {
        Self {
            store,
            cache: HashMap::new(),
        }
    }

    /// The account at `ca`, registering it on first use.
    pub async fn get(&mut self, ca: &CaSpec) -> anyhow::Result<AcmeAccount> {
        if let Some(account) = self.cache.get(&ca.name) {
            return Ok(account.clone());
        }
        let key = AcmeAccount::storage_key(ca)?;
        let stored = self
            .store
            .read_account(&key)
            .with_context(|| format!("reading the stored account for CA {:?}", ca.name.as_str()))?;
        let transport = Transport::new(&TransportSettings {
            root_ca_file: ca.root_ca_file.clone(),
            ..TransportSettings::default()
        })?;
        let (account, registered) =
            AcmeAccount::load_or_register(ca, transport, stored.as_deref()).await?;
        if let Some(json) = registered {
            let path = self
                .store
                .write_account(&key, &json)
                .with_context(|| format!("saving the new account for CA {:?}", ca.name.as_str()))?;
            tracing::info!(ca = %ca.name, path = %path.display(), "account credentials saved");
        }
        self.cache.insert(ca.name.clone(), account.clone());
        Ok(account)
    }
}
