//! Small interfaces the core defines and the adapters implement, so adapters never depend on
//! each other: the ACME adapter answers challenges through [`ChallengeSolver`] without knowing
//! whether an embedded listener, a webroot or a DNS provider is behind it.
//!
//! # The challenge solver
//!
//! A solver answers one challenge type ([`ChallengeKind`]) in three steps, each a future so a
//! solver may do I/O: [`present`](ChallengeSolver::present) makes the key authorization
//! reachable, [`ready`](ChallengeSolver::ready) waits until the CA can see it (DNS propagation;
//! nothing for the embedded responder), [`cleanup`](ChallengeSolver::cleanup) removes it.
//!
//! The futures are boxed ([`SolverFuture`]) rather than `impl Future`, so the trait stays
//! usable as `dyn ChallengeSolver`: the engine picks a solver per certificate at run time. A
//! box per challenge step costs nothing next to a round trip to the CA.
//!
//! `cleanup` returns a `'static` future and is not `async fn`-shaped on purpose: the order code
//! must clean up even when the attempt is dropped half-way (a stop cancels it while it waits on
//! the CA), and a `Drop` cannot await. It can call `cleanup` though, which does whatever can be
//! done at once (the embedded responder forgets the token there and then) and hands back the
//! rest as a future that owns what it needs, to finish on the runtime.

use std::error::Error;
use std::fmt;
use std::future::Future;
use std::pin::Pin;

/// A challenge type of RFC 8555 section 8 that a solver can answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChallengeKind {
    /// `http-01`: the key authorization at `http://<domain>/.well-known/acme-challenge/<token>`.
    Http01,
    /// `dns-01`: a TXT record `_acme-challenge.<domain>` holding the key authorization's
    /// digest.
    Dns01,
}

impl ChallengeKind {
    /// The name the CA uses for it, `http-01` or `dns-01`.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::Dns01 => "dns-01",
        }
    }
}

impl fmt::Display for ChallengeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What a solver makes reachable for one challenge of one authorization, already in the form
/// its challenge type publishes.
#[derive(Clone, PartialEq, Eq)]
pub enum ChallengeAnswer {
    /// Serve `key_authorization` at `/.well-known/acme-challenge/<token>` on `domain`.
    Http01 {
        /// The identifier under validation, as the CA names it.
        domain: String,
        token: String,
        key_authorization: String,
    },
    /// Publish a TXT record `record_name` with `value` (the base64url SHA-256 digest of the key
    /// authorization).
    Dns01 {
        /// The identifier under validation, as the CA names it (`*.example.org` for a
        /// wildcard).
        domain: String,
        /// `_acme-challenge.<domain>`, the wildcard label removed.
        record_name: String,
        value: String,
    },
}

impl ChallengeAnswer {
    /// The challenge type this answer is for.
    #[must_use]
    pub fn kind(&self) -> ChallengeKind {
        match self {
            Self::Http01 { .. } => ChallengeKind::Http01,
            Self::Dns01 { .. } => ChallengeKind::Dns01,
        }
    }

    /// The identifier under validation.
    #[must_use]
    pub fn domain(&self) -> &str {
        match self {
            Self::Http01 { domain, .. } | Self::Dns01 { domain, .. } => domain,
        }
    }
}

/// Leaves out the key authorization and its digest: they prove control of the account key's
/// challenges and have no business in logs.
impl fmt::Debug for ChallengeAnswer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Http01 { domain, token, .. } => f
                .debug_struct("Http01")
                .field("domain", domain)
                .field("token", token)
                .finish_non_exhaustive(),
            Self::Dns01 {
                domain,
                record_name,
                ..
            } => f
                .debug_struct("Dns01")
                .field("domain", domain)
                .field("record_name", record_name)
                .finish_non_exhaustive(),
        }
    }
}

/// The step of a solver that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SolverStep {
    Present,
    Ready,
    Cleanup,
}

impl fmt::Display for SolverStep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::Present => "presenting",
            Self::Ready => "waiting for",
            Self::Cleanup => "cleaning up",
        })
    }
}

/// Why a solver could not do its part.
#[derive(Debug, thiserror::Error)]
pub enum SolverError {
    /// The solver was handed an answer of a type it does not publish (a caller's mistake: the
    /// order code picks challenges by [`ChallengeSolver::kind`]).
    #[error("this solver answers {solver} challenges, not {requested}")]
    WrongKind {
        solver: ChallengeKind,
        requested: ChallengeKind,
    },
    /// The solver's own work failed (a web root not writable, a DNS API refusing, a record
    /// not visible in time); `source` says why.
    #[error("{step} the {kind} challenge for {domain} failed")]
    Failed {
        step: SolverStep,
        kind: ChallengeKind,
        domain: String,
        #[source]
        source: Box<dyn Error + Send + Sync + 'static>,
    },
}

impl SolverError {
    /// `step` failed for `answer` because of `source`.
    pub fn failed(
        step: SolverStep,
        answer: &ChallengeAnswer,
        source: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> Self {
        Self::Failed {
            step,
            kind: answer.kind(),
            domain: answer.domain().to_owned(),
            source: source.into(),
        }
    }
}

/// The future every solver step returns.
pub type SolverFuture<'a> = Pin<Box<dyn Future<Output = Result<(), SolverError>> + Send + 'a>>;

/// Makes key authorizations reachable for the CA while an order is validated.
///
/// The order code calls, for each challenge it answers: `present`, then `ready`, and only then
/// tells the CA to validate; `cleanup` follows once the order is validated or has failed, and
/// also when the attempt is dropped half-way. `cleanup` is called for every answer whose
/// `present` was *started*, so it must tolerate removing what is not there, and calling it
/// twice must be harmless.
pub trait ChallengeSolver: Send + Sync {
    /// The one challenge type this solver answers.
    fn kind(&self) -> ChallengeKind;

    /// Make `answer` reachable for the CA.
    fn present<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a>;

    /// Resolve once what was presented for `answer` can be validated (DNS propagation, say);
    /// at once when presenting takes effect immediately.
    fn ready<'a>(&'a self, answer: &'a ChallengeAnswer) -> SolverFuture<'a>;

    /// Remove what was presented for `answer`, whatever the outcome of the order.
    ///
    /// Do what can be done at once in the call itself: after a dropped attempt it is called
    /// from `Drop`, and the returned future (which must own what it needs) can then only be
    /// handed to the runtime, with nobody waiting for it.
    fn cleanup(&self, answer: &ChallengeAnswer) -> SolverFuture<'static>;
}
