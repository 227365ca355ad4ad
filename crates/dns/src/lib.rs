//! certkeeper's DNS-01 solver.
//!
//! [`Dns01Solver`] implements the core's [`ChallengeSolver`](certkeeper_core::ChallengeSolver)
//! port for `dns-01` over a small [`DnsProvider`] port of this crate, which adds one TXT value
//! at a name and removes exactly that value (a wildcard and its apex need two values at one
//! name at once). Two providers:
//!
//! - [`Rfc2136`]: dynamic UPDATE (RFC 2136) signed with TSIG (RFC 8945), to BIND, Knot,
//!   PowerDNS or anything else that speaks it; the answer's signature is verified, and the
//!   server's refusals become errors that say what to change ([`DnsError`]).
//! - [`HookProvider`]: the operator's command, called like lego's `exec` provider and with
//!   certbot's manual-hook environment, through the shared hook runner.
//!
//! Around the provider the solver follows CNAME delegation of `_acme-challenge` names, waits
//! until every authoritative server of the zone (or every configured resolver) serves the
//! value, and keeps a journal ([`PresentedRecords`]) so records a crash left behind are
//! removed at the next start ([`remove_stale_records`]).
//!
//! DNS messages and TSIG come from hickory-proto; the transport is this crate's own
//! (tokio UDP and TCP, one deadline per exchange), so every failure
//! names the server it concerns. Settings are plain structs ([`Rfc2136Settings`],
//! [`Dns01Settings`], a core [`Hook`](certkeeper_core::Hook) for the hook provider); reading
//! them from the configuration is the config crate's job.

mod error;
mod hook;
mod journal;
mod lookup;
mod propagation;
mod provider;
mod rfc2136;
mod solver;
mod wire;

/// The settings' vocabulary is the core's, as the configuration produces it.
pub use certkeeper_core::challenge::{Propagation, TsigAlgorithm};
pub use error::{DnsError, ProviderError, Rcode, TsigRejection};
pub use hook::HookProvider;
pub use journal::{PresentedRecord, PresentedRecords, StaleRemoval, remove_stale_records};
pub use lookup::MAX_CNAME_LINKS;
pub use provider::{DnsProvider, ProviderFuture, RecordContext, TxtRecord};
pub use rfc2136::{DEFAULT_TIMEOUT, DEFAULT_TTL, Rfc2136, Rfc2136Settings, decode_tsig_secret};
pub use solver::{DEFAULT_QUERY_TIMEOUT, Dns01Settings, Dns01Solver};
