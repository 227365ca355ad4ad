//! The real [`CertificateAuthority`]: the ACME adapter (`certkeeper_acme`) with the accounts the
//! binary keeps in the store ([`Accounts`]: loaded, registered once per CA, registered again
//! when the CA lost one).
//!
//! Every failure met through an account is reported with the Retry-After the CA sent with it
//! (`AcmeAccount::failure`), so the engine's classification sees the CA's own wait.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use certkeeper_acme::{AcmeAccount, AcmeError, CaFailure, OrderRequest, PlacedOrder, PollPolicy};
use certkeeper_acme::{RenewalInfoAnswer, RenewalInfoClient};
use certkeeper_core::ari::Window;
use certkeeper_core::{CaName, CaSpec, ChallengeSolver, DomainName, RevocationReason, Secret};
use certkeeper_store::Store;

use crate::accounts::{AccountError, Accounts, transport_for};
use crate::engine::ports::{
    CaAccount, CaOrder, CertificateAuthority, NewOrder, OrderLocation, PortFuture, RenewalInfo,
};

/// ACME CAs, their accounts stored in `store`; orders wait on the CA as `poll` says.
#[derive(Debug, Clone)]
pub struct AcmeCa {
    store: Store,
    accounts: Accounts,
    poll: PollPolicy,
    /// Per CA, the client that reads its directory once and asks for renewal information.
    renewal_info: Arc<Mutex<HashMap<CaName, Arc<RenewalInfoClient>>>>,
}

impl AcmeCa {
    /// No account is loaded until an attempt asks for one.
    pub fn new(store: Store, poll: PollPolicy) -> Self {
        Self {
            store,
            accounts: Accounts::default(),
            poll,
            renewal_info: Arc::default(),
        }
    }

    /// The same CAs, each with the one account the nodes of `fleet` share.
    #[must_use]
    pub fn in_fleet(mut self, fleet: certkeeper_fleet::Fleet) -> Self {
        self.accounts = Accounts::in_fleet(fleet);
        self
    }

    fn renewal_info_client(&self, ca: &CaSpec) -> Result<Arc<RenewalInfoClient>, AcmeError> {
        let mut clients = self
            .renewal_info
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(client) = clients.get(&ca.name) {
            return Ok(Arc::clone(client));
        }
        let client = Arc::new(RenewalInfoClient::new(
            ca.name.to_string(),
            transport_for(ca)?,
            ca.directory.clone(),
        ));
        clients.insert(ca.name.clone(), Arc::clone(&client));
        Ok(client)
    }

    fn wrap(&self, account: AcmeAccount) -> Box<dyn CaAccount> {
        Box::new(Account {
            account,
            poll: self.poll,
        })
    }
}

impl CertificateAuthority for AcmeCa {
    fn renewal_info<'a>(
        &'a self,
        ca: &'a CaSpec,
        leaf_der: &'a [u8],
    ) -> PortFuture<'a, Result<RenewalInfo, AcmeError>> {
        Box::pin(async move {
            let client = self.renewal_info_client(ca)?;
            Ok(match client.check(leaf_der).await? {
                RenewalInfoAnswer::Unsupported => RenewalInfo::Unsupported,
                RenewalInfoAnswer::Window {
                    start,
                    end,
                    explanation_url,
                    retry_after,
                } => RenewalInfo::Window {
                    window: Window { start, end },
                    explanation_url,
                    retry_after,
                },
            })
        })
    }

    fn account<'a>(
        &'a self,
        ca: &'a CaSpec,
    ) -> PortFuture<'a, Result<Box<dyn CaAccount>, AccountError>> {
        Box::pin(async move { Ok(self.wrap(self.accounts.get(&self.store, ca).await?)) })
    }

    fn register_again<'a>(
        &'a self,
        ca: &'a CaSpec,
        gone: &'a dyn CaAccount,
    ) -> PortFuture<'a, Result<Box<dyn CaAccount>, AccountError>> {
        Box::pin(async move {
            let account = self
                .accounts
                .register_again(&self.store, ca, gone.url())
                .await?;
            Ok(self.wrap(account))
        })
    }

    fn forget_accounts(&self) {
        self.accounts.clear();
        self.renewal_info
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

/// One ACME account.
#[derive(Debug)]
struct Account {
    account: AcmeAccount,
    poll: PollPolicy,
}

impl CaAccount for Account {
    fn url(&self) -> &str {
        self.account.account_url()
    }

    fn place_order(
        &self,
        order: NewOrder,
    ) -> PortFuture<'_, Result<Box<dyn CaOrder + '_>, CaFailure>> {
        Box::pin(async move {
            let placed = self
                .account
                .place_order(&OrderRequest {
                    cert: &order.cert,
                    domains: &order.domains,
                    key_type: order.key_type,
                    directory_url: &order.directory_url,
                    replaces: order.replaces.as_deref(),
                    profile: order.profile.as_deref(),
                })
                .await
                .map_err(|err| self.account.failure(err))?;
            Ok(self.order(placed, order.directory_url))
        })
    }

    fn resume_order(
        &self,
        location: OrderLocation,
    ) -> PortFuture<'_, Result<Box<dyn CaOrder + '_>, CaFailure>> {
        Box::pin(async move {
            let placed = self
                .account
                .resume_order(&location.order_url, &location.directory_url)
                .await
                // The Retry-After stays with the transport: the engine only logs a failed
                // resume and places a new order, whose own failure then reports it.
                .map_err(CaFailure::from)?;
            Ok(self.order(placed, location.directory_url))
        })
    }

    fn revoke<'a>(
        &'a self,
        leaf_der: &'a [u8],
        reason: RevocationReason,
    ) -> PortFuture<'a, Result<(), CaFailure>> {
        Box::pin(async move {
            self.account
                .revoke(leaf_der, reason)
                .await
                .map_err(|err| self.account.failure(err))
        })
    }
}

impl Account {
    fn order<'a>(
        &'a self,
        placed: PlacedOrder<'a>,
        directory_url: String,
    ) -> Box<dyn CaOrder + 'a> {
        Box::new(Order {
            account: &self.account,
            location: OrderLocation {
                order_url: placed.url().to_owned(),
                directory_url,
            },
            placed,
            poll: self.poll,
        })
    }
}

/// One ACME order, borrowing the account it was placed or resumed with.
#[derive(Debug)]
struct Order<'a> {
    account: &'a AcmeAccount,
    placed: PlacedOrder<'a>,
    location: OrderLocation,
    poll: PollPolicy,
}

impl CaOrder for Order<'_> {
    fn location(&self) -> &OrderLocation {
        &self.location
    }

    fn complete<'a>(
        &'a mut self,
        key_pem: &'a Secret,
        domains: &'a [DomainName],
        solver: &'a dyn ChallengeSolver,
        preferred_chain: Option<&'a str>,
    ) -> PortFuture<'a, Result<String, CaFailure>> {
        Box::pin(async move {
            self.placed
                .complete(key_pem, domains, solver, self.poll, preferred_chain)
                .await
                .map_err(|err| self.account.failure(err))
        })
    }
}
