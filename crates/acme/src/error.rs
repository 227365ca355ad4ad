//! Errors of the ACME adapter.
//!
//! Each variant names the CA and the step, and keeps the CA's problem document (type and
//! detail) so the operator sees *why* the CA refused. [`AcmeError::is_retryable`] and
//! [`AcmeError::is_rate_limited`] let the caller choose between retrying later and asking a
//! human.
//!
//! Variants with a `source` leave it out of their own message; render errors with their
//! chain (`{:#}` through anyhow) so each cause is printed exactly once.

use std::path::PathBuf;
use std::time::Duration;

use instant_acme::Problem;

/// RFC 8555 problem types this adapter reacts to.
pub(crate) mod problem_type {
    pub const BAD_NONCE: &str = "urn:ietf:params:acme:error:badNonce";
    pub const RATE_LIMITED: &str = "urn:ietf:params:acme:error:rateLimited";
    pub const UNAUTHORIZED: &str = "urn:ietf:params:acme:error:unauthorized";
    pub const MALFORMED: &str = "urn:ietf:params:acme:error:malformed";
    pub const EXTERNAL_ACCOUNT_REQUIRED: &str =
        "urn:ietf:params:acme:error:externalAccountRequired";
    pub const SERVER_INTERNAL: &str = "urn:ietf:params:acme:error:serverInternal";
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
    #[error(
        "CA {ca:?} refused the account registration with External Account Binding key id {kid:?}: {problem}; check eab_kid and the HMAC key (regenerating the credential in CertCentral revokes the old one)"
    )]
    ExternalAccountBinding {
        ca: String,
        kid: String,
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
    #[error(
        "CA {ca:?} offers no http-01 challenge for {domain} (offered: {offered}); certkeeper answers HTTP-01 only"
    )]
    NoHttp01Challenge {
        ca: String,
        domain: String,
        offered: String,
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
}

impl AcmeError {
    /// The CA's problem document, when the CA answered with one.
    #[must_use]
    pub fn problem(&self) -> Option<&Problem> {
        match self {
            AcmeError::ExternalAccountBinding { problem, .. } => Some(problem),
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
        self.problem()
            .and_then(|p| p.r#type.as_deref())
            .is_some_and(|t| t == problem_type::RATE_LIMITED)
    }

    /// Worth retrying later without a human changing anything: transport failures, timeouts,
    /// rate limits and server-side errors. Configuration and validation problems are not.
    #[must_use]
    pub fn is_retryable(&self) -> bool {
        match self {
            AcmeError::Timeout { .. } => true,
            AcmeError::Directory { source, .. } | AcmeError::Protocol { source, .. } => {
                match source.as_ref() {
                    instant_acme::Error::Api(problem) => {
                        let kind = problem.r#type.as_deref().unwrap_or_default();
                        kind == problem_type::RATE_LIMITED
                            || kind == problem_type::BAD_NONCE
                            || kind == problem_type::SERVER_INTERNAL
                            || problem.status.is_some_and(|s| s >= 500)
                    }
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

/// Whether an instant-acme error is a `badNonce` that survived instant-acme's own retries.
pub(crate) fn is_bad_nonce(err: &instant_acme::Error) -> bool {
    matches!(err, instant_acme::Error::Api(problem)
        if problem.r#type.as_deref() == Some(problem_type::BAD_NONCE))
}

/// Whether an account-creation problem is the CA rejecting the External Account Binding.
pub(crate) fn is_eab_rejection(problem: &Problem) -> bool {
    matches!(
        problem.r#type.as_deref(),
        Some(
            problem_type::UNAUTHORIZED
                | problem_type::MALFORMED
                | problem_type::EXTERNAL_ACCOUNT_REQUIRED
        )
    )
}
