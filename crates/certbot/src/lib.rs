//! Reading certbot's configuration directory and writing the equivalent certkeeper inventory,
//! for `certkeeper import-certbot`.
//!
//! This crate is pure: it turns the text of certbot's files into values and values into the
//! inventory's text, and leaves reading the directory, adopting the certificates into
//! certkeeper's store and writing the result to the binary. That keeps every translation rule
//! testable with fixtures, and keeps the one step with side effects (adopting certificates
//! through the store's verified install) in one place.
//!
//! Modules:
//! - [`configobj`]: the INI dialect of `renewal/NAME.conf`.
//! - [`lineage`]: one renewal file in certkeeper's terms, DigiCert's `?action=..&orderId=..`
//!   server URLs split into directory, order id and action.
//! - [`challenge`]: how certbot validated a lineage (standalone, webroot, RFC 2136, manual
//!   hooks, a web server plugin) as the challenge certkeeper answers, or why it cannot.
//! - [`credentials`]: certbot's RFC 2136 credentials file, read for everything but its
//!   secret, which the generated provider reads from the same file.
//! - [`certificate`]: the names and key type of the live certificate, which is where certbot
//!   itself keeps a lineage's domains.
//! - [`account`]: contacts from an account's `regr.json`.
//! - [`inventory`]: which `[[ca]]` and `[[certificate]]` entries to write, and the commented
//!   TOML, with `FILL-ME` for what certbot does not keep (EAB credentials).

pub mod account;
pub mod certificate;
pub mod challenge;
pub mod configobj;
pub mod credentials;
pub mod inventory;
pub mod lineage;

pub use certificate::{CertificateFacts, read_leaf};
pub use challenge::{Challenge, ChallengeError, decide};
pub use credentials::{CredentialsError, Rfc2136Credentials};
pub use inventory::{
    FILL_ME, Imported, Plan, PlannedCertificate, PlannedChallenge, PlannedDnsKind,
    PlannedDnsProvider, Rendered, Source, plan, render,
};
pub use lineage::{Lineage, LineageError, RequestedProfile};
