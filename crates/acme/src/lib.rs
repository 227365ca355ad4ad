//! certkeeper's ACME adapter.
//!
//! It turns the core's inventory types into RFC 8555 traffic through instant-acme and owns
//! everything protocol-shaped:
//!
//! - [`transport`]: the HTTPS client, with connect and request timeouts (instant-acme's default
//!   client has none, and a CA that stops answering must not wedge the daemon) and the
//!   operator's extra trust anchor for private or test CAs. aws-lc-rs is the only crypto
//!   provider, shared with rcgen.
//! - [`account`]: one account per (directory, EAB key id), registered once and stored by the
//!   caller; orders then reach the CA through whatever lifecycle URL the core derives (DigiCert's
//!   `?action=..&orderId=..`) with the same account.
//! - [`order`]: new order (with the certificate profile the CA's directory offers, and
//!   `replaces` naming the certificate it renews when the CA offers ARI), challenges answered
//!   through the core's [`ChallengeSolver`] port (cleaned up however the attempt ends),
//!   already-valid authorizations skipped, finalize with a CSR from [`keys`], certificate
//!   download.
//! - [`renewal_info`]: ACME Renewal Information (RFC 9773): the certificate ID, and the CA's
//!   suggested renewal window for a certificate, fetched with a plain GET through the same
//!   transport; the planner in the core decides what to do with the window.
//! - [`error`]: errors that keep the CA's problem document and say whether to retry, what a
//!   refused registration asks the operator to change, and whether the CA lost the account;
//!   [`CaFailure`] adds the Retry-After the CA sent with one.
//!
//! It never touches the disk except to read `root_ca_file`; persisting credentials and
//! certificates is the caller's business (the store adapter).
//!
//! [`ChallengeSolver`]: certkeeper_core::ChallengeSolver

pub mod account;
mod chain;
mod directory;
pub mod error;
pub mod keys;
pub mod order;
pub mod renewal_info;
pub mod transport;

pub use account::{AcmeAccount, StoredAccount};
pub use error::{AcmeError, CaFailure, ProblemType, RegistrationFix, RenewalInfoFailure};
pub use order::{Issued, OrderRequest, PlacedOrder, PollPolicy};
pub use renewal_info::{RenewalInfoAnswer, RenewalInfoClient, cert_id};
pub use transport::{Transport, TransportSettings};
