//! What a node publishes after it installed a certificate: the live version of a lineage as the
//! fleet adapter's [`VersionRecord`].
//!
//! The record is read back from the store (`Lineage::live_files`: certificate, chain, full
//! chain and key from the one version `live/NAME` names, the key checked against the
//! certificate) rather than assembled from what the CA answered: the other nodes then install
//! exactly the bytes this node serves, and the serial they compare with is the store's own
//! rendering ([`LiveCert::serial_hex`](certkeeper_store::LiveCert::serial_hex)), the one
//! their own `live/` reports after installing it.

use certkeeper_fleet::VersionRecord;
use certkeeper_store::{Lineage, LiveFiles, StoreError};

/// The fleet's record of the live version whose files are `files`.
#[must_use]
pub fn version_record(files: &LiveFiles) -> VersionRecord {
    VersionRecord {
        serial: files.cert.serial_hex.clone(),
        cert_pem: files.cert_pem.clone(),
        chain_pem: files.chain_pem.clone(),
        fullchain_pem: files.fullchain_pem.clone(),
        key_pem: files.key_pem.clone(),
        not_after: files.cert.observed.not_after,
    }
}

/// The record of what is live for `lineage` now, to hand to `Fleet::publish_version` under the
/// lineage's lease; `None` when nothing is live.
///
/// # Errors
/// As `Lineage::live`: the live files cannot be read, or the key does not match.
pub fn live_version(lineage: &Lineage) -> Result<Option<VersionRecord>, StoreError> {
    Ok(lineage.live_files()?.as_ref().map(version_record))
}
