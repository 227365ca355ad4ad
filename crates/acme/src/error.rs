//! Errors of the ACME adapter.
//!
//! Each variant names the CA and the step, and keeps the CA's problem document (type and
//! detail) so the operator sees *why* the CA refused. [`AcmeError::is_retryable`] and
//! [`AcmeError::is_rate_limited`] let the caller choose between retrying later and asking a
//! human; [`AcmeError::is_account_gone`] tells it the CA no longer knows the account.
//!
//! What a refusal means is decided from the problem *type* alone ([`ProblemType`], RFC 8555
//! section 6.7), never from the detail text, which every CA words differently. A refused
//! account registration becomes [`AcmeError::Registration`] with a [`RegistrationFix`]: the
//! `[[ca]]` key the type points at, so a CA asking for a contact address does not send the
//! operator after the EAB credential.
//!
//! Variants with a `source` leave it out of their own message; render errors with their
//! chain (`{:#}` through anyhow) so each cause is printed exactly once.
//!
//! When the CA may be asked again is part of its answer: [`CaFailure`] is an [`AcmeError`]
//! with the `Retry-After` the CA sent along, taken from the transport where the error was
//! met. It renders as the error itself, so carrying it adds nothing to the chain.

use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use certkeeper_core::{ChallengeKind, SolverError};
use instant_acme::Problem;

/// The RFC 8555 problem types (section 6.7), `urn:ietf:params:acme:error:<name>`, and
/// `alreadyReplaced` from ACME Renewal Information (RFC 9773 section 7.4).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProblemType {
    AccountDoesNotExist,
    /// The certificate a `replaces` field names was already replaced by another order.
    AlreadyReplaced,
    AlreadyRevoked,
    BadCsr,
    BadNonce,
    BadPublicKey,
    BadRevocationReason,
    BadSignatureAlgorithm,
    Caa,
    Compound,
    Connection,
    Dns,
    ExternalAccountRequired,
    IncorrectResponse,
    InvalidContact,
    Malformed,
    OrderNotReady,
    RateLimited,
    RejectedIdentifier,
    ServerInternal,
    Tls,
    Unauthorized,
    UnsupportedContact,
    UnsupportedIdentifier,
    UserActionRequired,
}

/// The namespace of RFC 8555 problem types.
const ACME_ERROR_NAMESPACE: &str = "urn:ietf:params:acme:error:";

/// Every problem type with its name in the namespace, for both directions of the mapping.
const PROBLEM_TYPES: [(ProblemType, &str); 25] = [
    (ProblemType::AccountDoesNotExist, "accountDoesNotExist"),
    (ProblemType::AlreadyReplaced, "alreadyReplaced"),
    (ProblemType::AlreadyRevoked, "alreadyRevoked"),
    (ProblemType::BadCsr, "badCSR"),
    (ProblemType::BadNonce, "badNonce"),
    (ProblemType::BadPublicKey, "badPublicKey"),
    (ProblemType::BadRevocationReason, "badRevocationReason"),
    (ProblemType::BadSignatureAlgorithm, "badSignatureAlgorithm"),
    (ProblemType::Caa, "caa"),
    (ProblemType::Compound, "compound"),
    (ProblemType::Connection, "connection"),
    (ProblemType::Dns, "dns"),
    (
        ProblemType::ExternalAccountRequired,
        "externalAccountRequired",
    ),
    (ProblemType::IncorrectResponse, "incorrectResponse"),
    (ProblemType::InvalidContact, "invalidContact"),
    (ProblemType::Malformed, "malformed"),
    (ProblemType::OrderNotReady, "orderNotReady"),
    (ProblemType::RateLimited, "rateLimited"),
    (ProblemType::RejectedIdentifier, "rejectedIdentifier"),
    (ProblemType::ServerInternal, "serverInternal"),
    (ProblemType::Tls, "tls"),
    (ProblemType::Unauthorized, "unauthorized"),
    (ProblemType::UnsupportedContact, "unsupportedContact"),
    (ProblemType::UnsupportedIdentifier, "unsupportedIdentifier"),
    (ProblemType::UserActionRequired, "userActionRequired"),
];

impl ProblemType {
    /// The type named by a problem document's `type` URN; `None` for a type outside the ACME
    /// namespace's known names (a CA's own URN, `about:blank`).
    #[must_use]
    pub fn from_urn(urn: &str) -> Option<Self> {
        let name = urn.strip_prefix(ACME_ERROR_NAMESPACE)?;
        PROBLEM_TYPES
            .iter()
            .find(|(_, known)| *known == name)
            .map(|(kind, _)| *kind)
    }

    /// The type of a CA's problem document, when it has an RFC 8555 one.
    #[must_use]
    pub fn of(problem: &Problem) -> Option<Self> {
        problem.r#type.as_deref().and_then(Self::from_urn)
    }

    /// The full URN, `urn:ietf:params:acme:error:<name>`.
    #[must_use]
    pub fn urn(self) -> String {
        let name = PROBLEM_TYPES
            .iter()
            .find(|(kind, _)| *kind == self)
            .map_or("", |(_, name)| name);
        format!("{ACME_ERROR_NAMESPACE}{name}")
    }
}

/// What the operator changes in a `[[ca]]` entry after the CA refused to register an account,
/// decided by the problem type alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegistrationFix {
    /// `unauthorized`, `externalAccountRequired`: the External Account Binding credential
    /// (`eab_kid` and the HMAC key). A wrong HMAC key or an unknown key id is `unauthorized`
    /// (RFC 8555 section 7.3.4; Pebble and step-ca answer so).
    ExternalAccountBinding,
    /// `invalidContact`, `unsupportedContact`: the `contact` list.
    Contact,
    /// `userActionRequired`: something to do at the CA first, most often new terms of service
    /// (`terms_of_service_agreed`).
    UserAction,
    /// `rateLimited`, `badNonce`, `serverInternal`: nothing; the next attempt may succeed.
    RetryLater,
    /// Any other type, or none: it names no key, so the CA's own words are all there is.
    Unclassified,
}

impl RegistrationFix {
    /// The fix a registration refusal of type `kind` points at.
    #[must_use]
    pub fn for_type(kind: Option<ProblemType>) -> Self {
        match kind {
            Some(ProblemType::Unauthorized | ProblemType::ExternalAccountRequired) => {
                Self::ExternalAccountBinding
            }
            Some(ProblemType::InvalidContact | ProblemType::UnsupportedContact) => Self::Contact,
            Some(ProblemType::UserActionRequired) => Self::UserAction,
            Some(
                ProblemType::RateLimited | ProblemType::BadNonce | ProblemType::ServerInternal,
            ) => Self::RetryLater,
            Some(
                ProblemType::AccountDoesNotExist
                | ProblemType::AlreadyReplaced
                | ProblemType::AlreadyRevoked
                | ProblemType::BadCsr
                | ProblemType::BadPublicKey
                | ProblemType::BadRevocationReason
                | ProblemType::BadSignatureAlgorithm
                | ProblemType::Caa
                | ProblemType::Compound
                | ProblemType::Connection
                | ProblemType::Dns
                | ProblemType::IncorrectResponse
                | ProblemType::Malformed
                | ProblemType::OrderNotReady
                | ProblemType::RejectedIdentifier
                | ProblemType::Tls
                | ProblemType::UnsupportedIdentifier,
            )
            | None => Self::Unclassified,
        }
    }
}

/// The advice of [`AcmeError::Registration`]: the `[[ca]]` key to change, given what the entry
/// already sets.
struct RegistrationAdvice<'a> {
    fix: RegistrationFix,
    eab_kid: Option<&'a str>,
    has_contact: bool,
}

impl fmt::Display for RegistrationAdvice<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const ADD_CONTACT: &str = "add contact = [\"mailto:you@example.com\"] to its [[ca]] entry";
        match (self.fix, self.eab_kid) {
            (RegistrationFix::ExternalAccountBinding, Some(kid)) => write!(
                f,
                "it refused the External Account Binding with key id {kid:?}: check eab_kid and \
                 the HMAC key in its [[ca]] entry (regenerating the credential in CertCentral \
                 revokes the old one)"
            ),
            (RegistrationFix::ExternalAccountBinding, None) => f.write_str(
                "if it binds accounts to an external account, set eab_kid and an HMAC key source \
                 (eab_hmac_key_file, eab_hmac_key_env or eab_hmac_key_credential) in its [[ca]] \
                 entry",
            ),
            (RegistrationFix::Contact, _) if self.has_contact => f.write_str(
                "it does not accept the contact addresses: change contact in its [[ca]] entry to \
                 mailto: addresses it accepts",
            ),
            (RegistrationFix::Contact, _) => write!(f, "it wants a contact address: {ADD_CONTACT}"),
            (RegistrationFix::UserAction, _) => f.write_str(
                "it asks for an action on its side first (often new terms of service: read them, \
                 then keep terms_of_service_agreed = true in its [[ca]] entry)",
            ),
            (RegistrationFix::RetryLater, _) => f.write_str("try again later"),
            (RegistrationFix::Unclassified, _) if !self.has_contact => write!(
                f,
                "its reason follows; if it wants a contact address, {ADD_CONTACT}"
            ),
            (RegistrationFix::Unclassified, _) => f.write_str("its reason follows"),
        }
    }
}

/// What went wrong talking to a CA.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("no trusted root certificates: the system store is empty and no root_ca_file is set")]
    NoTrustAnchors,
    #[error("cannot use root_ca_file {path}: {reason}")]
    RootCaFile { path: PathBuf, reason: String },
    #[error("cannot set up TLS: {0}")]
    Tls(String),
    #[error("CA {ca:?}: cannot read the ACME directory {url}")]
    Directory {
        ca: String,
        url: String,
        #[source]
        source: Box<instant_acme::Error>,
    },
    #[error(
        "CA {ca:?} has terms of service ({terms}); accept them with terms_of_service_agreed = true in its [[ca]] entry"
    )]
    TermsNotAgreed { ca: String, terms: String },
    #[error(
        "CA {ca:?} requires External Account Binding; set eab_kid and an HMAC key source (eab_hmac_key_file, eab_hmac_key_env or eab_hmac_key_credential) in its [[ca]] entry"
    )]
    ExternalAccountRequired { ca: String },
    /// The CA refused to register an account; `fix` is what its problem type points at.
    #[error(
        "CA {ca:?} refused to register an account; {}",
        RegistrationAdvice { fix: *fix, eab_kid: eab_kid.as_deref(), has_contact: *has_contact }
    )]
    Registration {
        ca: String,
        fix: RegistrationFix,
        /// The EAB key id the registration was bound with, if any.
        eab_kid: Option<String>,
        /// Whether the `[[ca]]` entry lists a contact.
        has_contact: bool,
        #[source]
        problem: Box<Problem>,
    },
    #[error(
        "stored ACME account for CA {ca:?} is unusable ({reason}); remove {hint} to register again"
    )]
    StoredAccount {
        ca: String,
        reason: String,
        hint: String,
    },
    #[error("CA {ca:?}: {step} failed")]
    Protocol {
        ca: String,
        step: &'static str,
        #[source]
        source: Box<instant_acme::Error>,
    },
    #[error("CA {ca:?} could not validate {domain}: {detail}")]
    Validation {
        ca: String,
        domain: String,
        detail: String,
    },
    /// The CA offers no challenge of the type the configured solver answers for a name.
    #[error(
        "CA {ca:?} offers no {wanted} challenge for {domain} (offered: {offered}); the configured challenge solver answers {wanted} only"
    )]
    NoSolvableChallenge {
        ca: String,
        domain: String,
        wanted: ChallengeKind,
        offered: String,
    },
    /// The challenge solver could not present, confirm or remove an answer. Not retried on its
    /// own: what the solver reports (a web root, DNS credentials) is for a human to look at.
    #[error("CA {ca:?}: the challenge solver failed")]
    Solver {
        ca: String,
        #[source]
        source: SolverError,
    },
    #[error("CA {ca:?}: order {order_url} did not reach {waiting_for} within {waited:?}")]
    Timeout {
        ca: String,
        order_url: String,
        waiting_for: &'static str,
        waited: Duration,
    },
    #[error("cannot generate the {key_type} key or CSR: {reason}")]
    KeyGeneration { key_type: String, reason: String },
    /// The order asks for a certificate profile (draft-ietf-acme-profiles) the CA's directory
    /// does not list; checked before `newOrder`, so nothing was ordered.
    #[error(
        "CA {ca:?} does not offer the certificate profile {profile:?} ({}); change profile in the configuration",
        OfferedProfiles(offered)
    )]
    UnknownProfile {
        ca: String,
        profile: String,
        /// The profiles the CA's directory lists, sorted.
        offered: Vec<String>,
    },
    /// The certificate has no Authority Key Identifier with a `keyIdentifier`, which the ARI
    /// certificate ID is made of (RFC 9773 section 4.1): ARI cannot be used for it.
    #[error(
        "the certificate has no authority key identifier, so ACME Renewal Information cannot be used for it"
    )]
    NoAuthorityKeyId,
    /// The bytes given as a certificate do not parse as an X.509 certificate.
    #[error("cannot read the certificate: {reason}")]
    UnreadableCertificate { reason: String },
    /// A `renewalInfo` request (RFC 9773 section 4.2) failed or its answer is unusable.
    #[error("CA {ca:?}: cannot get renewal information from {url}")]
    RenewalInfo {
        ca: String,
        url: String,
        #[source]
        source: Box<RenewalInfoFailure>,
    },
}

/// The profiles a CA offers, for [`AcmeError::UnknownProfile`]'s message.
struct OfferedProfiles<'a>(&'a [String]);

impl fmt::Display for OfferedProfiles<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("it offers no profiles");
        }
        f.write_str("it offers ")?;
        for (i, name) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name:?}")?;
        }
        Ok(())
    }
}

/// Why a `renewalInfo` request gave no usable window ([`AcmeError::RenewalInfo`]).
#[derive(Debug, thiserror::Error)]
pub enum RenewalInfoFailure {
    /// No complete answer: the connection failed or the request timed out.
    #[error("the request failed")]
    Request(#[source] instant_acme::Error),
    /// The CA answered with an error status, and a problem document when it sent one.
    #[error("HTTP status {status}")]
    Status {
        status: http::StatusCode,
        /// When to ask again, if the CA said so (`Retry-After`).
        retry_after: Option<SystemTime>,
        #[source]
        problem: Option<Problem>,
    },
    /// The body is not a renewal information object.
    #[error("the answer is not renewal information")]
    Malformed(#[source] serde_json::Error),
    /// The suggested window ends before it starts (RFC 9773 section 4.2 requires end after
    /// start).
    #[error("the suggested window ends ({end}) before it starts ({start})")]
    InvertedWindow { start: String, end: String },
}

impl RenewalInfoFailure {
    /// Asking again later may succeed without anyone changing anything: no answer, a rate
    /// limit or the CA's own trouble.
    fn is_transient(&self) -> bool {
        match self {
            RenewalInfoFailure::Request(_) => true,
            RenewalInfoFailure::Status {
                status, problem, ..
            } => {
                *status == http::StatusCode::TOO_MANY_REQUESTS
                    || status.is_server_error()
                    || problem.as_ref().is_some_and(is_transient)
            }
            RenewalInfoFailure::Malformed(_) | RenewalInfoFailure::InvertedWindow { .. } => false,
        }
    }
}

impl AcmeError {
    /// The CA's problem document, when the CA answered with one.
    #[must_use]
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            AcmeError::Registration { problem, .. } => Some(problem),
            AcmeError::RenewalInfo { source, .. } => match source.as_ref() {
                RenewalInfoFailure::Status { problem, .. } => problem.as_ref(),
                _ => None,
            },
            AcmeError::Directory { source, .. } | AcmeError::Protocol { source, .. } => {
                match source.as_ref() {
                    instant_acme::Error::Api(problem) => Some(problem),
                    _ => None,
                }
            }
            _ => None,
        }
    }

    /// The CA said to slow down.
    #[must_use]
    pub fn is_rate_limited(&self) -> bool {
        self.problem().and_then(ProblemType::of) == Some(ProblemType::RateLimited)
    }

    /// The CA no longer knows the account (`accountDoesNotExist`: it lost its data, or the
    /// account was removed). Registering again with the configured credentials is the fix.
    ///
    /// A *deactivated* account is not this: RFC 8555 section 7.3.6 answers it with
    /// `unauthorized`, which also refuses many other things, so it is left to a human.
    #[must_use]
    pub fn is_account_gone(&self) -> bool {
        self.problem().and_then(ProblemType::of) == Some(ProblemType::AccountDoesNotExist)
    }

    /// The CA has not finished the order within the wait (approval pending, still
    /// processing): nothing is wrong, and the order is worth resuming later rather than
    /// counted as a failure.
    #[must_use]
    pub fn is_waiting_on_ca(&self) -> bool {
        matches!(self, AcmeError::Timeout { .. })
    }

    /// Worth retrying later without a human changing anything: transport failures, timeouts,
    /// rate limits and server-side errors. Configuration and validation problems are not.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            AcmeError::Timeout { .. } => true,
            AcmeError::RenewalInfo { source, .. } => source.is_transient(),
            AcmeError::Directory { source, .. } | AcmeError::Protocol { source, .. } => {
                match source.as_ref() {
                    instant_acme::Error::Api(problem) => is_transient(problem),
                    instant_acme::Error::Timeout(_)
                    | instant_acme::Error::Other(_)
                    | instant_acme::Error::Hyper(_) => true,
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

/// An [`AcmeError`] with the `Retry-After` the CA sent with its error response, if any
/// (see [`Transport::failure`](crate::Transport::failure)). It displays as the error and
/// has the error's sources, so a rendered chain names each cause once.
#[derive(Debug)]
pub struct CaFailure {
    pub error: AcmeError,
    /// Not before this instant, when the CA said so.
    pub retry_after: Option<SystemTime>,
}

impl From<AcmeError> for CaFailure {
    fn from(error: AcmeError) -> Self {
        Self {
            error,
            retry_after: None,
        }
    }
}

impl fmt::Display for CaFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.error, f)
    }
}

impl std::error::Error for CaFailure {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.source()
    }
}

/// A problem the CA may not repeat: rate limits, nonces, its own trouble (any 5xx).
fn is_transient(problem: &Problem) -> bool {
    matches!(
        ProblemType::of(problem),
        Some(ProblemType::RateLimited | ProblemType::BadNonce | ProblemType::ServerInternal)
    ) || problem.status.is_some_and(|s| s >= 500)
}

/// Whether an instant-acme error is a `badNonce` that survived instant-acme's own retries.
pub(crate) fn is_bad_nonce(err: &instant_acme::Error) -> bool {
    matches!(err, instant_acme::Error::Api(problem)
        if ProblemType::of(problem) == Some(ProblemType::BadNonce))
}

/// The error for a failed `newAccount`: a refusal the CA will repeat becomes
/// [`AcmeError::Registration`] naming the key to change; anything transient stays a retryable
/// [`AcmeError::Protocol`].
pub(crate) fn registration_error(
    ca: &str,
    eab_kid: Option<&str>,
    has_contact: bool,
    source: instant_acme::Error,
) -> AcmeError {
    match source {
        instant_acme::Error::Api(problem) if !is_transient(&problem) => AcmeError::Registration {
            ca: ca.to_owned(),
            fix: RegistrationFix::for_type(ProblemType::of(&problem)),
            eab_kid: eab_kid.map(str::to_owned),
            has_contact,
            problem: Box::new(problem),
        },
        source => AcmeError::Protocol {
            ca: ca.to_owned(),
            step: "account registration",
            source: Box::new(source),
        },
    }
}

#[cfg(test)]
mod tests {

    use super::*;

    fn problem(kind: Option<&str>, detail: &str, status: u16) -> Problem {
        Problem {
            r#type: kind.map(str::to_owned),
            detail: Some(detail.to_owned()),
            status: Some(status),
            subproblems: Vec::new(),
        }
    }

    /// The message as `{:#}` prints it: each cause once, joined by ": ".
    fn chain(err: &AcmeError) -> String {
        certkeeper_core::error_chain(err)
    }

    #[test]
    fn every_rfc_8555_type_round_trips_through_its_urn() {
        for (kind, name) in PROBLEM_TYPES {
            let urn = format!("urn:ietf:params:acme:error:{name}");
            assert_eq!(kind.urn(), urn);
            assert_eq!(ProblemType::from_urn(&urn), Some(kind), "{urn}");
        }
        for foreign in [
            "about:blank",
            "urn:ietf:params:acme:error:",
            "urn:ietf:params:acme:error:noSuchType",
            "urn:ietf:params:acme:error:Unauthorized",
            "urn:acme:error:unauthorized",
            "unauthorized",
        ] {
            assert_eq!(ProblemType::from_urn(foreign), None, "{foreign}");
        }
    }

    #[test]
    fn already_replaced_from_rfc_9773_round_trips() {
        let urn = "urn:ietf:params:acme:error:alreadyReplaced";
        assert_eq!(
            ProblemType::from_urn(urn),
            Some(ProblemType::AlreadyReplaced)
        );
        assert_eq!(ProblemType::AlreadyReplaced.urn(), urn);
        let refused = problem(Some(urn), "already replaced by order 7", 409);
        assert_eq!(
            ProblemType::of(&refused),
            Some(ProblemType::AlreadyReplaced)
        );
        let err = AcmeError::Protocol {
            ca: "ca-1".to_owned(),
            step: "new order",
            source: Box::new(instant_acme::Error::Api(refused)),
        };
        assert!(!err.is_retryable());
    }

    #[test]
    fn a_registration_refusal_points_at_the_key_its_type_names() {
        use RegistrationFix::{
            Contact, ExternalAccountBinding, RetryLater, Unclassified, UserAction,
        };
        let table = [
            ("unauthorized", ExternalAccountBinding),
            ("externalAccountRequired", ExternalAccountBinding),
            ("invalidContact", Contact),
            ("unsupportedContact", Contact),
            ("userActionRequired", UserAction),
            ("rateLimited", RetryLater),
            ("badNonce", RetryLater),
            ("serverInternal", RetryLater),
            // Nothing in these names a key: malformed is what a CA answers for anything
            // it cannot parse or accept, a missing contact included.
            ("malformed", Unclassified),
            ("badPublicKey", Unclassified),
            ("badSignatureAlgorithm", Unclassified),
            ("accountDoesNotExist", Unclassified),
            ("rejectedIdentifier", Unclassified),
            ("compound", Unclassified),
        ];
        for (name, fix) in table {
            let kind = ProblemType::from_urn(&format!("urn:ietf:params:acme:error:{name}"));
            assert!(kind.is_some(), "{name}");
            assert_eq!(RegistrationFix::for_type(kind), fix, "{name}");
        }
        assert_eq!(RegistrationFix::for_type(None), Unclassified);
    }

    /// One row of the registration message table.
    struct Case {
        kind: &'static str,
        detail: &'static str,
        eab_kid: Option<&'static str>,
        has_contact: bool,
        wanted: &'static [&'static str],
        unwanted: &'static [&'static str],
    }

    #[test]
    fn only_an_eab_refusal_sends_the_operator_to_eab_kid_and_the_hmac_key() {
        let table = [
            Case {
                kind: "invalidContact",
                detail: "Contact information is missing",
                eab_kid: Some("kid-1"),
                has_contact: false,
                wanted: &["add contact = [\"mailto:", "Contact information is missing"],
                unwanted: &["eab_kid", "HMAC"],
            },
            Case {
                kind: "malformed",
                detail: "Contact information is missing",
                eab_kid: Some("kid-1"),
                has_contact: false,
                wanted: &[
                    "contact = [\"mailto:",
                    "Contact information is missing",
                    "(urn:ietf:params:acme:error:malformed)",
                ],
                unwanted: &["eab_kid", "HMAC"],
            },
            Case {
                kind: "malformed",
                detail: "too many contacts provided: 3 > 2",
                eab_kid: Some("kid-1"),
                has_contact: true,
                wanted: &["its reason follows", "too many contacts provided: 3 > 2"],
                unwanted: &["eab_kid", "HMAC", "add contact"],
            },
            Case {
                kind: "unsupportedContact",
                detail: "contact method \"tel\" is not supported",
                eab_kid: None,
                has_contact: true,
                wanted: &[
                    "change contact in its [[ca]] entry",
                    "\"tel\" is not supported",
                ],
                unwanted: &["eab_kid", "HMAC"],
            },
            Case {
                kind: "unauthorized",
                detail: "external account binding JWS verification error: square/go-jose: \
                         error in cryptographic primitive",
                eab_kid: Some("kid-1"),
                has_contact: true,
                wanted: &[
                    "key id \"kid-1\"",
                    "check eab_kid and the HMAC key",
                    "verification error",
                ],
                unwanted: &["contact"],
            },
            Case {
                kind: "externalAccountRequired",
                detail: "ACME server policy requires newAccount requests must include a value \
                         for the 'externalAccountBinding' field",
                eab_kid: None,
                has_contact: true,
                wanted: &[
                    "set eab_kid and an HMAC key source",
                    "'externalAccountBinding'",
                ],
                unwanted: &["contact"],
            },
            Case {
                kind: "userActionRequired",
                detail: "Terms of service have changed",
                eab_kid: None,
                has_contact: true,
                wanted: &["terms_of_service_agreed", "Terms of service have changed"],
                unwanted: &["eab_kid", "HMAC"],
            },
            Case {
                kind: "badPublicKey",
                detail: "key too small",
                eab_kid: Some("kid-1"),
                has_contact: true,
                wanted: &["its reason follows", "key too small"],
                unwanted: &["eab_kid", "HMAC"],
            },
        ];
        for case in table {
            let Case { kind, detail, .. } = case;
            let urn = format!("urn:ietf:params:acme:error:{kind}");
            let err = registration_error(
                "ca-1",
                case.eab_kid,
                case.has_contact,
                instant_acme::Error::Api(problem(Some(&urn), detail, 400)),
            );
            assert!(
                matches!(err, AcmeError::Registration { .. }),
                "{kind}: {err:?}"
            );
            assert!(!err.is_retryable(), "{kind}");
            let problem = err.problem().expect("the CA's problem is kept");
            assert_eq!(problem.r#type.as_deref(), Some(urn.as_str()));
            assert_eq!(problem.detail.as_deref(), Some(detail));
            let text = chain(&err);
            assert!(text.starts_with("CA \"ca-1\" refused to register an account; "));
            for part in case.wanted {
                assert!(
                    text.contains(part),
                    "{kind}: {part:?} missing from {text:?}"
                );
            }
            for part in case.unwanted {
                assert!(!text.contains(part), "{kind}: {part:?} in {text:?}");
            }
            assert_eq!(
                text.matches(detail).count(),
                1,
                "{kind}: detail once: {text:?}"
            );
        }
    }

    #[test]
    fn a_transient_registration_failure_stays_retryable() {
        for (kind, status) in [
            (Some("urn:ietf:params:acme:error:rateLimited"), 429),
            (Some("urn:ietf:params:acme:error:serverInternal"), 500),
            (Some("urn:ietf:params:acme:error:unauthorized"), 503),
            (None, 502),
        ] {
            let err = registration_error(
                "ca-1",
                Some("kid-1"),
                true,
                instant_acme::Error::Api(problem(kind, "try later", status)),
            );
            assert!(
                matches!(err, AcmeError::Protocol { .. }),
                "{kind:?}: {err:?}"
            );
            assert!(err.is_retryable(), "{kind:?}");
            assert!(!chain(&err).contains("eab_kid"), "{kind:?}");
        }
    }

    #[test]
    fn a_failure_with_its_retry_after_renders_as_the_error_once() {
        let error = || AcmeError::Protocol {
            ca: "ca-1".to_owned(),
            step: "new order",
            source: Box::new(instant_acme::Error::Api(problem(
                Some("urn:ietf:params:acme:error:rateLimited"),
                "too many orders",
                429,
            ))),
        };
        let failure = CaFailure {
            error: error(),
            retry_after: Some(SystemTime::UNIX_EPOCH),
        };
        let text = certkeeper_core::error_chain(&failure);
        assert_eq!(text, chain(&error()));
        assert_eq!(text.matches("too many orders").count(), 1, "{text}");
        assert!(CaFailure::from(error()).retry_after.is_none());
    }

    #[test]
    fn only_a_timeout_is_waiting_on_the_ca() {
        let timeout = AcmeError::Timeout {
            ca: "ca-1".to_owned(),
            order_url: "https://ca/order/1".to_owned(),
            waiting_for: "valid",
            waited: Duration::from_secs(300),
        };
        assert!(timeout.is_waiting_on_ca());
        assert!(timeout.is_retryable());
        let validation = AcmeError::Validation {
            ca: "ca-1".to_owned(),
            domain: "www.example.com".to_owned(),
            detail: "connection refused".to_owned(),
        };
        assert!(!validation.is_waiting_on_ca());
    }

    #[test]
    fn only_account_does_not_exist_means_the_account_is_gone() {
        let refused = |kind: &str| AcmeError::Protocol {
            ca: "ca-1".to_owned(),
            step: "new order",
            source: Box::new(instant_acme::Error::Api(problem(
                Some(&format!("urn:ietf:params:acme:error:{kind}")),
                "no",
                400,
            ))),
        };
        assert!(refused("accountDoesNotExist").is_account_gone());
        assert!(!refused("accountDoesNotExist").is_retryable());
        // A deactivated account is `unauthorized` (RFC 8555 section 7.3.6): not re-registered.
        for kind in ["unauthorized", "malformed", "rateLimited"] {
            assert!(!refused(kind).is_account_gone(), "{kind}");
        }
        assert!(refused("rateLimited").is_rate_limited());
    }
}
