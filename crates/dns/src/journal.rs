//! The journal of presented records: what would be left in DNS if certkeeper died between
//! presenting and cleaning up.
//!
//! The order code cleans up on every exit it sees, including a dropped attempt; only a crash
//! or a SIGKILL escapes it. So the solver writes each record to a [`PresentedRecords`]
//! journal *before* asking the provider to add it, and forgets it once the provider removed
//! it. At the next start the binary hands what is still listed to [`remove_stale_records`].
//! The journal lives where the binary keeps its state; this crate only defines the port.

use std::io;

use crate::error::ProviderError;
use crate::provider::{DnsProvider, RecordContext, TxtRecord};

/// A record as the journal keeps it: enough to remove it again.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct PresentedRecord {
    /// The configured name of the provider that wrote it.
    pub provider: String,
    /// Where it was written (after CNAME delegation), with the trailing dot.
    pub fqdn: String,
    pub value: String,
}

/// Durable storage of the records presented and not yet removed.
pub trait PresentedRecords: Send + Sync {
    /// Remember `record`; called before the provider adds it. An error stops the present:
    /// a record nothing remembers could outlive a crash.
    ///
    /// # Errors
    /// When the journal cannot be written.
    fn record(&self, record: &PresentedRecord) -> io::Result<()>;

    /// Forget `record`; called once the provider removed it. Forgetting what is not there is
    /// no error.
    ///
    /// # Errors
    /// When the journal cannot be written (the record is then removed again at the next
    /// start, which is harmless).
    fn forget(&self, record: &PresentedRecord) -> io::Result<()>;
}

/// What became of one stale record.
#[derive(Debug)]
pub struct StaleRemoval {
    pub record: PresentedRecord,
    /// Removed and forgotten, or why not (it stays in the journal for the next try).
    pub result: Result<(), ProviderError>,
}

/// Remove the records in `records` that `provider` wrote (by name; others are left alone)
/// and forget each one removed. Records are removed one after the other; a failure does not
/// stop the rest.
pub async fn remove_stale_records(
    provider: &dyn DnsProvider,
    records: &[PresentedRecord],
    journal: &dyn PresentedRecords,
) -> Vec<StaleRemoval> {
    let mut removals = Vec::new();
    for record in records.iter().filter(|r| r.provider == provider.name()) {
        let txt = TxtRecord {
            fqdn: record.fqdn.clone(),
            value: record.value.clone(),
            context: RecordContext::default(),
        };
        let result = match provider.remove_txt(&txt).await {
            Ok(()) => {
                if let Err(err) = journal.forget(record) {
                    tracing::warn!(provider = %record.provider, fqdn = %record.fqdn, error = %err, "stale TXT record removed but not forgotten; it is removed again at the next start");
                }
                tracing::info!(provider = %record.provider, fqdn = %record.fqdn, "stale TXT record from an earlier run removed");
                Ok(())
            }
            Err(source) => Err(ProviderError {
                provider: record.provider.clone(),
                certificate: None,
                source,
            }),
        };
        removals.push(StaleRemoval {
            record: record.clone(),
            result,
        });
    }
    removals
}
