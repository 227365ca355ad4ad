//! Revoking a lineage's live certificate at its CA and recording it, so plans leave the
//! lineage alone until forced. The same for `certkeeper revoke` and for a revoke that reached
//! the daemon over its control socket. The CA is the engine's [`CertificateAuthority`] port.

use std::time::SystemTime;

use certkeeper_acme::CaFailure;
use certkeeper_core::{CertName, Inventory, RevocationReason};
use certkeeper_store::{Store, StoreError};
use thiserror::Error;

use crate::accounts::AccountError;
use crate::engine::pass::{UnknownCertificate, select};
use crate::engine::ports::CertificateAuthority;

/// Why a revocation did not happen (or was not recorded).
#[derive(Debug, Error)]
pub enum RevokeError {
    #[error(transparent)]
    UnknownCertificate(#[from] UnknownCertificate),
    #[error("certificate {name} refers to unknown CA {ca}")]
    UnknownCa { name: CertName, ca: String },
    #[error("{name} has no certificate to revoke")]
    NothingLive { name: CertName },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Account(#[from] AccountError),
    #[error("the CA did not revoke the certificate of {name}")]
    Ca {
        name: CertName,
        #[source]
        source: CaFailure,
    },
}

/// A certificate revoked and recorded.
#[derive(Debug, Clone)]
pub struct Revoked {
    pub name: CertName,
    pub serial_hex: String,
    pub reason: RevocationReason,
}

impl Revoked {
    /// What the command says about it.
    pub fn line(&self) -> String {
        format!(
            "{name}: revoked serial {} ({}); it will not be renewed until `certkeeper renew --force {name}`",
            self.serial_hex,
            self.reason,
            name = self.name
        )
    }
}

/// Revoke the live certificate of `name` at its CA (through `authority`) and record it in the
/// lineage.
///
/// # Errors
/// [`RevokeError`]: an unknown name or CA, nothing live, the account, the CA's refusal, or
/// the store.
pub async fn revoke(
    inventory: &Inventory,
    store: &Store,
    authority: &dyn CertificateAuthority,
    name: &str,
    reason: RevocationReason,
) -> Result<Revoked, RevokeError> {
    let spec = select(inventory, &[name.to_owned()])?[0];
    let ca = inventory
        .ca(&spec.ca)
        .ok_or_else(|| RevokeError::UnknownCa {
            name: spec.name.clone(),
            ca: spec.ca.to_string(),
        })?;
    let mut lineage = store.lineage(&spec.name)?;
    let live = lineage.live()?.ok_or_else(|| RevokeError::NothingLive {
        name: spec.name.clone(),
    })?;
    let account = authority.account(ca).await?;
    account
        .revoke(&live.leaf_der, reason)
        .await
        .map_err(|source| RevokeError::Ca {
            name: spec.name.clone(),
            source,
        })?;
    lineage.record_revocation(&live.serial_hex, reason, SystemTime::now())?;
    tracing::info!(cert = %spec.name, serial = %live.serial_hex, %reason, "certificate revoked");
    Ok(Revoked {
        name: spec.name.clone(),
        serial_hex: live.serial_hex,
        reason,
    })
}
