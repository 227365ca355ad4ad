//! The provider port: how a TXT record gets into DNS and out again.
//!
//! A provider adds *one* value at a name and removes exactly that value, never the whole
//! RRset: a wildcard and its apex are validated at the same `_acme-challenge` name at once,
//! with two values, and two certificates may be ordered for one name concurrently. Both
//! operations are idempotent (adding a value that is there, or removing one that is not, is
//! success), because the order code cleans up whatever it started to present, possibly twice.
//!
//! The futures are boxed and own nothing borrowed past the call's arguments, like the core's
//! solver port, so `dyn DnsProvider` works and the solver can run a removal from the `'static`
//! future its `cleanup` returns.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;

use crate::error::DnsError;

/// The future a provider step returns.
pub type ProviderFuture<'a> = Pin<Box<dyn Future<Output = Result<(), DnsError>> + Send + 'a>>;

/// One TXT value at one name, with what a hook may want to know about why it is there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxtRecord {
    /// Where the record is written: the `_acme-challenge` name, or the end of its CNAME
    /// chain; absolute, lower case, with the trailing dot.
    pub fqdn: String,
    /// The TXT value (base64url SHA-256 of the key authorization).
    pub value: String,
    pub context: RecordContext,
}

/// Why a record is presented, for hooks' environments. Empty where unknown (a stale record
/// removed after a crash knows only its name and value).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RecordContext {
    /// The domain under validation, without `*.` and without `_acme-challenge.`
    /// (`CERTBOT_DOMAIN`).
    pub domain: String,
    /// The certificate's name (`CERTKEEPER_NAME`).
    pub certificate: Option<String>,
    /// The certificate's domains (`CERTBOT_ALL_DOMAINS`, comma separated).
    pub all_domains: Vec<String>,
    /// Challenges still to be presented after this one (`CERTBOT_REMAINING_CHALLENGES`).
    pub remaining_challenges: usize,
}

/// Adds and removes single TXT values.
pub trait DnsProvider: Send + Sync + 'static {
    /// The provider's configured name, for errors, logs and the journal.
    fn name(&self) -> &str;

    /// Add `record`'s value at its name, next to any values already there.
    fn add_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a>;

    /// Remove `record`'s value at its name, and nothing else. Success when it is not there.
    fn remove_txt<'a>(&'a self, record: &'a TxtRecord) -> ProviderFuture<'a>;

    /// The server the provider writes to, when it is a DNS server (RFC 2136): lookups ask it
    /// first, and the propagation check queries it at this port rather than 53.
    fn update_server(&self) -> Option<SocketAddr> {
        None
    }
}
