//! One certificate order, from `newOrder` to the downloaded chain.
//!
//! The flow follows RFC 8555 section 7.4: create the order on the directory URL the lifecycle
//! rule chose, answer HTTP-01 for every *pending* authorization (authorizations that are
//! already `valid` — DigiCert's prevalidated domains, or a CA reusing a recent validation — are
//! skipped and may list no challenge at all), wait for `ready`, finalize with a fresh key's CSR,
//! wait through `processing`, download the chain. Polling starts fast and backs off, and
//! honours the CA's `Retry-After`.

use std::collections::HashSet;
use std::fmt;
use std::time::Duration;

use certkeeper_core::{CertName, DomainName, Http01Responder, KeyType, Secret};
use instant_acme::{
    AuthorizationStatus, ChallengeStatus, ChallengeType, Identifier, NewOrder, Order, OrderStatus,
    RetryPolicy,
};

use crate::account::{AcmeAccount, retry_bad_nonce};
use crate::error::AcmeError;
use crate::keys::{csr_der, generate_key_pem};

/// What to order.
#[derive(Debug, Clone)]
pub struct OrderRequest<'a> {
    pub cert: &'a CertName,
    pub domains: &'a [DomainName],
    pub key_type: KeyType,
    /// The directory URL for this order (the lifecycle rule's output).
    pub directory_url: &'a str,
}

/// How long to wait for the CA, and how eagerly to poll.
#[derive(Debug, Clone, Copy)]
pub struct PollPolicy {
    /// First pause between polls; later ones grow by `backoff`.
    pub initial_delay: Duration,
    pub backoff: f32,
    /// Give up waiting for one state (ready, then valid) after this long.
    pub timeout: Duration,
}

impl Default for PollPolicy {
    fn default() -> Self {
        Self {
            initial_delay: Duration::from_millis(100),
            backoff: 1.5,
            timeout: Duration::from_secs(600),
        }
    }
}

impl PollPolicy {
    fn retry_policy(self) -> RetryPolicy {
        RetryPolicy::new()
            .initial_delay(self.initial_delay)
            .backoff(self.backoff)
            .timeout(self.timeout)
    }
}

/// A freshly issued certificate, not yet verified or installed.
pub struct Issued {
    /// PKCS#8 PEM private key.
    pub key_pem: Secret,
    /// PEM chain as the CA sent it, leaf first.
    pub chain_pem: String,
    pub order_url: String,
}

impl fmt::Debug for Issued {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Issued")
            .field("key_pem", &self.key_pem)
            .field("order_url", &self.order_url)
            .finish_non_exhaustive()
    }
}

/// Retracts the published HTTP-01 tokens when the order attempt ends, however it ends.
struct PublishedTokens<'a> {
    responder: &'a dyn Http01Responder,
    tokens: Vec<String>,
}

impl Drop for PublishedTokens<'_> {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.responder.retract(token);
        }
    }
}

/// An order at the CA, new or resumed by URL, that [`PlacedOrder::complete`] drives to a
/// certificate.
pub struct PlacedOrder<'a> {
    account: &'a AcmeAccount,
    order: Order,
    url: String,
}

impl fmt::Debug for PlacedOrder<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PlacedOrder")
            .field("url", &self.url)
            .finish_non_exhaustive()
    }
}

impl AcmeAccount {
    /// Create a new order for `request` on its directory URL.
    ///
    /// # Errors
    /// When the directory cannot be read or the CA refuses the order.
    pub async fn place_order(
        &self,
        request: &OrderRequest<'_>,
    ) -> Result<PlacedOrder<'_>, AcmeError> {
        tracing::info!(
            cert = %request.cert,
            directory = %request.directory_url,
            domains = %join(request.domains),
            "placing ACME order"
        );
        let account = self.session(request.directory_url).await?;
        let identifiers: Vec<Identifier> = request
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.to_string()))
            .collect();
        let order = retry_bad_nonce!(account.new_order(&NewOrder::new(&identifiers)).await)
            .map_err(|source| self.protocol("new order", source))?;
        let url = order.url().to_owned();
        tracing::info!(cert = %request.cert, order_url = %url, "order created");
        Ok(PlacedOrder {
            account: self,
            order,
            url,
        })
    }

    /// Pick up an order created earlier (before a restart) by its URL.
    ///
    /// # Errors
    /// When the CA cannot be reached or no longer knows the order.
    pub async fn resume_order(
        &self,
        order_url: &str,
        directory_url: &str,
    ) -> Result<PlacedOrder<'_>, AcmeError> {
        let account = self.session(directory_url).await?;
        let mut order = retry_bad_nonce!(account.order(order_url.to_owned()).await)
            .map_err(|source| self.protocol("resuming the order", source))?;
        tracing::info!(order_url = %order_url, status = ?order.state().status, "resumed order");
        Ok(PlacedOrder {
            account: self,
            order,
            url: order_url.to_owned(),
        })
    }

    /// Order, validate, finalize and download a certificate with a fresh key, in one go.
    ///
    /// # Errors
    /// Any refusal or failure of the CA, a failed validation, or a timeout.
    pub async fn issue(
        &self,
        request: &OrderRequest<'_>,
        responder: &dyn Http01Responder,
        poll: PollPolicy,
    ) -> Result<Issued, AcmeError> {
        let mut placed = self.place_order(request).await?;
        let key_pem = generate_key_pem(request.key_type)?;
        let chain_pem = placed
            .complete(&key_pem, request.domains, responder, poll)
            .await?;
        Ok(Issued {
            key_pem,
            chain_pem,
            order_url: placed.url,
        })
    }

    fn protocol(&self, step: &'static str, source: instant_acme::Error) -> AcmeError {
        AcmeError::Protocol {
            ca: self.ca().to_owned(),
            step,
            source: Box::new(source),
        }
    }
}

impl PlacedOrder<'_> {
    /// The order URL: persist it to resume after a restart.
    #[must_use]
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Drive the order from wherever it is to a downloaded chain: answer HTTP-01 for pending
    /// authorizations, finalize with a CSR signed by `key_pem`, wait through `processing`.
    ///
    /// # Errors
    /// A failed validation, an invalid order, a refusal or a timeout.
    pub async fn complete(
        &mut self,
        key_pem: &Secret,
        domains: &[DomainName],
        responder: &dyn Http01Responder,
        poll: PollPolicy,
    ) -> Result<String, AcmeError> {
        let account = self.account;
        let url = self.url.clone();
        let mut published = PublishedTokens {
            responder,
            tokens: Vec::new(),
        };
        match self.order.state().status {
            OrderStatus::Pending => {
                account
                    .answer_challenges(&mut self.order, &mut published)
                    .await?;
                let status = retry_bad_nonce!(self.order.poll_ready(&poll.retry_policy()).await)
                    .map_err(|source| {
                        account.timeout_or(source, &url, "ready", poll, "validation")
                    })?;
                if status == OrderStatus::Invalid {
                    return Err(account.validation_failure(&mut self.order).await);
                }
            }
            OrderStatus::Ready => {
                tracing::info!(order_url = %url, "every authorization already valid; no challenge needed");
            }
            OrderStatus::Invalid => return Err(account.validation_failure(&mut self.order).await),
            OrderStatus::Processing | OrderStatus::Valid => {}
        }
        drop(published);

        if self.order.state().status == OrderStatus::Ready {
            let csr = csr_der(key_pem, domains)?;
            retry_bad_nonce!(self.order.finalize_csr(&csr).await)
                .map_err(|source| account.protocol("finalize", source))?;
        }
        let chain_pem = retry_bad_nonce!(self.order.poll_certificate(&poll.retry_policy()).await)
            .map_err(|source| {
            account.timeout_or(source, &url, "valid", poll, "certificate download")
        })?;
        tracing::info!(order_url = %url, "certificate downloaded");
        Ok(chain_pem)
    }
}

impl AcmeAccount {
    /// Publish and trigger HTTP-01 for every pending authorization.
    ///
    /// The authorization stream fetches states lazily; a fetch that fails (a `badNonce`
    /// streak) restarts the stream, which skips states already fetched, and `done` keeps a
    /// challenge from being triggered twice.
    async fn answer_challenges(
        &self,
        order: &mut Order,
        published: &mut PublishedTokens<'_>,
    ) -> Result<(), AcmeError> {
        let ca = self.ca().to_owned();
        let mut done: HashSet<String> = HashSet::new();
        let mut restarts = 0u32;
        'restart: loop {
            let mut authorizations = order.authorizations();
            while let Some(next) = authorizations.next().await {
                let mut authz = match next {
                    Ok(authz) => authz,
                    Err(err)
                        if crate::error::is_bad_nonce(&err)
                            && restarts < crate::account::BAD_NONCE_RETRIES =>
                    {
                        restarts += 1;
                        continue 'restart;
                    }
                    Err(source) => {
                        return Err(AcmeError::Protocol {
                            ca,
                            step: "fetching an authorization",
                            source: Box::new(source),
                        });
                    }
                };
                let url = authz.url().to_owned();
                let domain = authz.identifier().to_string();
                match authz.status {
                    AuthorizationStatus::Valid => {
                        tracing::info!(domain = %domain, "authorization already valid; no challenge needed for it");
                        continue;
                    }
                    AuthorizationStatus::Pending => {}
                    other => {
                        return Err(AcmeError::Validation {
                            ca,
                            domain,
                            detail: format!("authorization is {other:?}"),
                        });
                    }
                }
                if done.contains(&url) {
                    continue;
                }
                let offered = authz
                    .challenges
                    .iter()
                    .map(|c| format!("{:?}", c.r#type))
                    .collect::<Vec<_>>()
                    .join(", ");
                let Some(mut challenge) = authz.challenge(ChallengeType::Http01) else {
                    return Err(AcmeError::NoHttp01Challenge {
                        ca,
                        domain,
                        offered,
                    });
                };
                let key_authorization = challenge.key_authorization();
                published
                    .responder
                    .publish(&challenge.token, key_authorization.as_str());
                published.tokens.push(challenge.token.clone());
                // A resumed order may have triggered this challenge before a restart: the
                // token is published again (the CA may still be fetching it) but the
                // challenge is not triggered twice.
                if challenge.status != ChallengeStatus::Pending {
                    tracing::debug!(domain = %domain, status = ?challenge.status, "http-01 challenge already triggered");
                    done.insert(url);
                    continue;
                }
                retry_bad_nonce!(challenge.set_ready().await).map_err(|source| {
                    AcmeError::Protocol {
                        ca: ca.clone(),
                        step: "triggering the http-01 challenge",
                        source: Box::new(source),
                    }
                })?;
                tracing::debug!(domain = %domain, "http-01 challenge triggered");
                done.insert(url);
            }
            return Ok(());
        }
    }

    /// Explain why an order became invalid, from its authorizations' challenge errors.
    async fn validation_failure(&self, order: &mut Order) -> AcmeError {
        let ca = self.ca().to_owned();
        let mut authorizations = order.authorizations();
        while let Some(Ok(mut authz)) = authorizations.next().await {
            let Ok(state) = retry_bad_nonce!(authz.refresh().await) else {
                continue;
            };
            if state.status == AuthorizationStatus::Valid {
                continue;
            }
            let domain = state.identifier().to_string();
            let detail = state
                .challenges
                .iter()
                .find_map(|c| c.error.as_ref().map(ToString::to_string))
                .unwrap_or_else(|| format!("authorization is {:?}", state.status));
            return AcmeError::Validation { ca, domain, detail };
        }
        AcmeError::Validation {
            ca,
            domain: "the order".to_owned(),
            detail: "the order became invalid without an authorization error".to_owned(),
        }
    }

    fn timeout_or(
        &self,
        source: instant_acme::Error,
        order_url: &str,
        waiting_for: &'static str,
        poll: PollPolicy,
        step: &'static str,
    ) -> AcmeError {
        match source {
            instant_acme::Error::Timeout(_) => AcmeError::Timeout {
                ca: self.ca().to_owned(),
                order_url: order_url.to_owned(),
                waiting_for,
                waited: poll.timeout,
            },
            instant_acme::Error::Api(problem) => AcmeError::Validation {
                ca: self.ca().to_owned(),
                domain: "the order".to_owned(),
                detail: problem.to_string(),
            },
            source => AcmeError::Protocol {
                ca: self.ca().to_owned(),
                step,
                source: Box::new(source),
            },
        }
    }
}

fn join(domains: &[DomainName]) -> String {
    domains
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}
