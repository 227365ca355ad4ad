//! ACME accounts: one per (directory, EAB key id).
//!
//! The account is registered against the directory *without* DigiCert's lifecycle parameters
//! ([`certkeeper_core::lifecycle::account_directory`]) and stored by the caller as
//! [`StoredAccount`] JSON. Each order then opens a session on whatever directory URL the
//! lifecycle rule chose, signing with the same key and account URL, so `?action=renew` and
//! `?action=reissue&orderId=..` never register a second account (DigiCert refuses a second
//! binding of one EAB credential).

use std::fmt;

use base64::Engine;
use base64::prelude::BASE64_URL_SAFE_NO_PAD;
use certkeeper_core::lifecycle::{account_directory, account_storage_key};
use certkeeper_core::{CaSpec, RevocationReason};
use instant_acme::{Account, ExternalAccountKey, HttpClient, NewAccount, RevocationRequest};
use rustls_pki_types::{CertificateDer, PrivatePkcs8KeyDer};
use serde::{Deserialize, Serialize};

use crate::directory::fetch_directory;
use crate::error::{AcmeError, CaFailure, registration_error};
use crate::transport::Transport;

/// How often a step is retried when the CA keeps rejecting nonces, on top of instant-acme's
/// own three attempts. CAs reject a share of nonces on purpose (Pebble does 5% by default).
pub(crate) const BAD_NONCE_RETRIES: u32 = 10;

/// Re-run an instant-acme call while it fails with `badNonce`.
macro_rules! retry_bad_nonce {
    ($call:expr) => {{
        let mut attempt = 0u32;
        loop {
            match $call {
                Err(err)
                    if $crate::error::is_bad_nonce(&err)
                        && attempt < $crate::account::BAD_NONCE_RETRIES =>
                {
                    attempt += 1;
                    tracing::debug!(attempt, "CA rejected the nonce; retrying");
                }
                other => break other,
            }
        }
    }};
}
pub(crate) use retry_bad_nonce;

/// Account credentials as certkeeper persists them (the file is written 0600 by the store).
#[derive(Clone, Serialize, Deserialize)]
pub struct StoredAccount {
    /// The account URL (`kid` of every signed request).
    pub account_url: String,
    /// The directory the account was registered with, lifecycle parameters removed.
    pub directory: String,
    /// The EAB key id it was bound with, if any.
    pub eab_kid: Option<String>,
    /// PKCS#8 DER of the account key, base64url.
    pub(crate) key_pkcs8: String,
}

impl fmt::Debug for StoredAccount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredAccount")
            .field("account_url", &self.account_url)
            .field("directory", &self.directory)
            .field("eab_kid", &self.eab_kid)
            .field("key_pkcs8", &"<redacted>")
            .finish()
    }
}

impl StoredAccount {
    /// Serialized form for the store.
    ///
    /// # Errors
    /// Never in practice (plain strings); kept fallible to avoid a panic path.
    pub fn to_json(&self) -> Result<Vec<u8>, serde_json::Error> {
        serde_json::to_vec_pretty(self)
    }
}

/// A registered account at one CA, ready to open order sessions.
#[derive(Debug, Clone)]
pub struct AcmeAccount {
    ca: String,
    transport: Transport,
    stored: StoredAccount,
}

impl AcmeAccount {
    /// Where the account for `ca` is stored: path components from the core's rule.
    ///
    /// # Errors
    /// When the CA's directory URL is invalid (the config crate has already checked it).
    pub fn storage_key(ca: &CaSpec) -> Result<(String, String), AcmeError> {
        account_storage_key(&ca.directory, ca.eab.as_ref().map(|eab| eab.kid.as_str())).map_err(
            |err| AcmeError::StoredAccount {
                ca: ca.name.to_string(),
                reason: err.to_string(),
                hint: "the account file".to_owned(),
            },
        )
    }

    /// Use the stored account, or register one (with EAB when configured).
    ///
    /// Returns the account and, when it was just registered, the JSON the caller must persist.
    ///
    /// # Errors
    /// Unreadable stored credentials, an unreachable directory, terms not agreed, EAB missing
    /// or refused, or any other refusal of the registration.
    pub async fn load_or_register(
        ca: &CaSpec,
        transport: Transport,
        stored: Option<&[u8]>,
    ) -> Result<(Self, Option<Vec<u8>>), AcmeError> {
        let ca_name = ca.name.to_string();
        let directory =
            account_directory(&ca.directory).map_err(|err| AcmeError::StoredAccount {
                ca: ca_name.clone(),
                reason: err.to_string(),
                hint: "nothing".to_owned(),
            })?;
        let kid = ca.eab.as_ref().map(|eab| eab.kid.clone());
        if let Some(bytes) = stored {
            let unusable = |reason: String| AcmeError::StoredAccount {
                ca: ca_name.clone(),
                reason,
                hint: "the account file under accounts/".to_owned(),
            };
            let stored: StoredAccount =
                serde_json::from_slice(bytes).map_err(|err| unusable(err.to_string()))?;
            if stored.directory != directory || stored.eab_kid != kid {
                return Err(unusable(format!(
                    "it belongs to {} with key id {:?}",
                    stored.directory, stored.eab_kid
                )));
            }
            return Ok((
                Self {
                    ca: ca_name,
                    transport,
                    stored,
                },
                None,
            ));
        }

        let meta = fetch_directory(&ca_name, &transport, &directory)
            .await?
            .meta;
        if let Some(terms) = meta.terms_of_service
            && !ca.terms_of_service_agreed
        {
            return Err(AcmeError::TermsNotAgreed { ca: ca_name, terms });
        }
        if meta.external_account_required && ca.eab.is_none() {
            return Err(AcmeError::ExternalAccountRequired { ca: ca_name });
        }

        let eab_key = ca
            .eab
            .as_ref()
            .map(|eab| ExternalAccountKey::new(eab.kid.clone(), eab.hmac_key.expose()));
        let contact: Vec<&str> = ca.contact.iter().map(String::as_str).collect();
        let new_account = NewAccount {
            contact: &contact,
            terms_of_service_agreed: ca.terms_of_service_agreed,
            only_return_existing: false,
        };
        tracing::info!(ca = %ca_name, directory = %directory, eab_kid = kid.as_deref().map(tracing::field::display), "registering ACME account");
        let created = retry_bad_nonce!(
            Account::builder_with_http(transport.boxed())
                .create(&new_account, directory.clone(), eab_key.as_ref())
                .await
        );
        let (_account, credentials) = created.map_err(|source| {
            registration_error(&ca_name, kid.as_deref(), !ca.contact.is_empty(), source)
        })?;
        let stored = stored_from_credentials(&credentials, directory, kid).ok_or_else(|| {
            AcmeError::StoredAccount {
                ca: ca_name.clone(),
                reason: "instant-acme returned credentials in an unknown shape".to_owned(),
                hint: "nothing".to_owned(),
            }
        })?;
        let json = stored.to_json().map_err(|err| AcmeError::StoredAccount {
            ca: ca_name.clone(),
            reason: err.to_string(),
            hint: "nothing".to_owned(),
        })?;
        tracing::info!(ca = %ca_name, account = %stored.account_url, "ACME account registered");
        Ok((
            Self {
                ca: ca_name,
                transport,
                stored,
            },
            Some(json),
        ))
    }

    /// The latest Retry-After this CA sent with an error, if not yet taken.
    #[must_use]
    pub fn take_retry_after(&self) -> Option<std::time::SystemTime> {
        self.transport.take_retry_after()
    }

    /// `error`, met using this account, with the Retry-After the CA sent with it (taken).
    #[must_use]
    pub fn failure(&self, error: AcmeError) -> CaFailure {
        self.transport.failure(error)
    }

    /// The CA's name, for messages.
    #[must_use]
    pub fn ca(&self) -> &str {
        &self.ca
    }

    /// The account URL.
    #[must_use]
    pub fn account_url(&self) -> &str {
        &self.stored.account_url
    }

    /// The account key, PKCS#8 DER: for the requests certkeeper signs itself.
    pub(crate) fn key_pkcs8_der(&self) -> Option<Vec<u8>> {
        BASE64_URL_SAFE_NO_PAD.decode(&self.stored.key_pkcs8).ok()
    }

    /// The transport this account talks through.
    pub(crate) fn transport(&self) -> &Transport {
        &self.transport
    }

    /// Open a session on `directory_url` (the account directory, or a lifecycle variant of it).
    pub(crate) async fn session(&self, directory_url: &str) -> Result<Account, AcmeError> {
        self.session_through(directory_url, self.transport.boxed())
            .await
    }

    /// Open a session on `directory_url` whose requests go through `http` (a wrapper around
    /// this account's transport).
    pub(crate) async fn session_through(
        &self,
        directory_url: &str,
        http: Box<dyn HttpClient>,
    ) -> Result<Account, AcmeError> {
        let unusable = |reason: String| AcmeError::StoredAccount {
            ca: self.ca.clone(),
            reason,
            hint: "the account file under accounts/".to_owned(),
        };
        let key = BASE64_URL_SAFE_NO_PAD
            .decode(&self.stored.key_pkcs8)
            .map_err(|err| unusable(format!("account key: {err}")))?;
        Account::builder_with_http(http)
            .from_parts(
                self.stored.account_url.clone(),
                PrivatePkcs8KeyDer::from(key),
                directory_url.to_owned(),
            )
            .await
            .map_err(|source| match source {
                instant_acme::Error::KeyRejected | instant_acme::Error::Crypto => {
                    unusable("the account key does not load".to_owned())
                }
                source => AcmeError::Directory {
                    ca: self.ca.clone(),
                    url: directory_url.to_owned(),
                    source: Box::new(source),
                },
            })
    }

    /// Revoke a certificate (DER) issued to this account.
    ///
    /// # Errors
    /// When the CA cannot be reached or refuses the revocation.
    pub async fn revoke(&self, leaf_der: &[u8], reason: RevocationReason) -> Result<(), AcmeError> {
        let account = self.session(&self.stored.directory).await?;
        let certificate = CertificateDer::from(leaf_der.to_vec());
        let request = RevocationRequest {
            certificate: &certificate,
            reason: Some(acme_reason(reason)),
        };
        retry_bad_nonce!(account.revoke(&request).await).map_err(|source| AcmeError::Protocol {
            ca: self.ca.clone(),
            step: "revocation",
            source: Box::new(source),
        })
    }
}

fn acme_reason(reason: RevocationReason) -> instant_acme::RevocationReason {
    match reason {
        RevocationReason::Unspecified => instant_acme::RevocationReason::Unspecified,
        RevocationReason::KeyCompromise => instant_acme::RevocationReason::KeyCompromise,
        RevocationReason::AffiliationChanged => instant_acme::RevocationReason::AffiliationChanged,
        RevocationReason::Superseded => instant_acme::RevocationReason::Superseded,
        RevocationReason::CessationOfOperation => {
            instant_acme::RevocationReason::CessationOfOperation
        }
    }
}

/// instant-acme keeps its credential fields private but serializes them; read the two we need.
fn stored_from_credentials(
    credentials: &instant_acme::AccountCredentials,
    directory: String,
    eab_kid: Option<String>,
) -> Option<StoredAccount> {
    let value = serde_json::to_value(credentials).ok()?;
    Some(StoredAccount {
        account_url: value.get("id")?.as_str()?.to_owned(),
        key_pkcs8: value.get("key_pkcs8")?.as_str()?.to_owned(),
        directory,
        eab_kid,
    })
}
