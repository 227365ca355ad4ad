//! The engine's ports: every place where its logic meets time or the outside world, as a trait,
//! so the same logic runs on the real adapters and, in tests, on scripted ones.
//!
//! # The attempt's ports
//! What one attempt at one certificate uses, bundled in the engine's `JobContext`
//! (`engine/job.rs`), whose `JobContext::real` wires the real implementations:
//!
//! * [`CertificateAuthority`], with its [`CaAccount`]s and their [`CaOrder`]s: the account at
//!   each configured CA (loaded, registered, registered again when the CA lost it), orders
//!   placed, resumed by their persisted [`OrderLocation`] and completed through a challenge
//!   solver, revocation. Real: `AcmeCa` (`engine/ca.rs`), the ACME adapter with the accounts
//!   the binary keeps in the store.
//! * [`Solvers`]: which [`ChallengeSolver`] answers a certificate's challenges. Real:
//!   `ConfiguredSolvers` (`engine/solvers.rs`): the embedded HTTP-01 responder, a webroot, or
//!   a DNS-01 solver over the certificate's `[dns.NAME]` provider, as configured.
//! * [`Hooks`]: the operator's pre, deploy and post hooks and the reload requests. Real:
//!   `ProcessHooks` (`engine/deploy.rs`), the hook runner and reload coalescer of
//!   `certkeeper_hooks`.
//!
//! # The daemon's ports
//! * [`Clock`]: the wall clock ([`SystemClock`]); scheduler tests use one that follows
//!   tokio's paused time, so a month of renewals runs in milliseconds.
//! * [`Runner`]: how one attempt (or a pending deploy) is carried out. The real one is
//!   `EngineRunner` (`engine/attempt.rs`): the engine's attempt on the ports above. Scheduler
//!   tests script outcomes instead, recording them on a real store in a temporary directory,
//!   so what the loop plans from is what it would read after a real attempt.
//!
//! # The store is not a port (yet)
//! The engine uses `certkeeper_store::Store` and its `Lineage` aggregate directly: `Lineage`
//! is the one writer of a lineage's state, each transition a pure edit of the state followed by
//! one atomic save. A second backend (PostgreSQL for fleets) belongs below that aggregate,
//! inside the store crate, where the transitions keep one implementation: a trait here over
//! `Lineage` would make every backend re-implement them. The planner's side (`engine/plan.rs`,
//! `engine/pass.rs`) also hands the attempt a concrete `Lineage` loaded for its plan.
//!
//! # Where to plug in
//! * A new challenge solver: implement the core's [`ChallengeSolver`] in its adapter crate,
//!   then return it from `ConfiguredSolvers::for_certificate` for the certificates configured
//!   to use it.
//! * A new CA capability: a method here (see [`CertificateAuthority`]'s "Growing it"),
//!   implemented by `AcmeCa` over the ACME adapter and by the scripted CA of the attempt's
//!   tests.
//! * A new hook kind: a method of [`Hooks`], called by the attempt where it belongs, implemented
//!   by `ProcessHooks`.
//! * A new renewal signal: an input of the core's planner, read into `engine/plan.rs`'s view
//!   (through a CA capability when the CA is its source).
//! * A new store: see above; behind the store crate's own seam, not here.

use std::fmt::Debug;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certkeeper_acme::{AcmeError, CaFailure};
pub use certkeeper_core::Clock;
use certkeeper_core::ari::Window;
use certkeeper_core::hooks::DeployAction;
use certkeeper_core::{
    CaSpec, CertName, CertificateSpec, ChallengeSolver, DomainName, Inventory, KeyType,
    OrderPurpose, RevocationReason, Secret,
};
use certkeeper_fleet::FleetError;
use certkeeper_store::{AttemptRecord, CheckedIssue, LiveCert};
use tokio_util::sync::CancellationToken;

use crate::accounts::AccountError;
use crate::engine::error::{AttemptError, HookFailure, NoSolver};

/// The future a port's call returns. Boxed rather than `impl Future`, so the traits work as
/// `dyn` (the engine holds `Arc<dyn ...>` and tests swap in scripted ports), as the core's
/// `ChallengeSolver` does; a box per call costs nothing next to a round trip to a CA or a hook
/// process.
pub type PortFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// A future the daemon can run as a task of its own.
pub type Task<T> = PortFuture<'static, T>;

// ------------------------------------------------------------------ the certificate authority

/// A certificate authority as attempts and revocations use it: the account at each configured
/// CA, through which orders are placed, resumed and completed, and certificates revoked.
///
/// Errors are the ACME adapter's own values ([`AccountError`], [`CaFailure`] with the CA's
/// problem and Retry-After), so `AttemptError::class` classifies a scripted CA's answer exactly
/// as the real one's, and the engine's own decisions on them (register again after
/// `accountDoesNotExist`, forget an order the CA refused, keep one it is still working on) stay
/// the engine's.
///
/// # Growing it
/// A new CA capability is a method here (as [`CertificateAuthority::renewal_info`], per CA and
/// unauthenticated) or a field of [`NewOrder`] (as `replaces` and `profile`) that `AcmeCa`
/// sends with the order, implemented by the scripted CA of the attempt's tests too.
pub trait CertificateAuthority: Send + Sync + Debug {
    /// What `ca` suggests for renewing the certificate `leaf_der` (ACME Renewal Information,
    /// RFC 9773): its window, or that it offers none. No account is needed: renewalInfo is a
    /// plain GET, and the CA's directory is read once per CA.
    fn renewal_info<'a>(
        &'a self,
        ca: &'a CaSpec,
        leaf_der: &'a [u8],
    ) -> PortFuture<'a, Result<RenewalInfo, AcmeError>>;

    /// The account at `ca`: the stored one, or one registered (and stored before any order
    /// uses it) on first use.
    fn account<'a>(
        &'a self,
        ca: &'a CaSpec,
    ) -> PortFuture<'a, Result<Box<dyn CaAccount>, AccountError>>;

    /// A new account at `ca` after the CA answered `accountDoesNotExist` for `gone`. Attempts
    /// that met the same refusal at the same moment share one new registration.
    fn register_again<'a>(
        &'a self,
        ca: &'a CaSpec,
        gone: &'a dyn CaAccount,
    ) -> PortFuture<'a, Result<Box<dyn CaAccount>, AccountError>>;

    /// Forget what is cached about the CAs: a reload may have changed their definitions.
    fn forget_accounts(&self);
}

/// An account at a CA.
pub trait CaAccount: Send + Sync + Debug {
    /// The account URL, which tells one registration from the next.
    fn url(&self) -> &str;

    /// Place a new order.
    fn place_order(
        &self,
        order: NewOrder,
    ) -> PortFuture<'_, Result<Box<dyn CaOrder + '_>, CaFailure>>;

    /// Pick up an order placed earlier (before a restart) from where it was persisted.
    fn resume_order(
        &self,
        location: OrderLocation,
    ) -> PortFuture<'_, Result<Box<dyn CaOrder + '_>, CaFailure>>;

    /// Revoke a certificate (DER) issued through this account's CA.
    fn revoke<'a>(
        &'a self,
        leaf_der: &'a [u8],
        reason: RevocationReason,
    ) -> PortFuture<'a, Result<(), CaFailure>>;
}

/// An order at a CA, new or resumed.
pub trait CaOrder: Send + Debug {
    /// Where the order lives: persisted before anything waits on the CA, so a restart resumes
    /// it instead of ordering twice.
    fn location(&self) -> &OrderLocation;

    /// Drive the order to a certificate: answer each pending authorization's challenge through
    /// `solver` (present, wait until ready, let the CA validate, clean up however it ends),
    /// finalize with a CSR for `domains` signed by `key_pem`, wait and download. Resolves to
    /// the chain, PEM: the CA's default one, or with `preferred_chain` the one of the CA's
    /// chains whose last certificate's issuer has that common name, when the CA offers it.
    /// Given here rather than with [`NewOrder`], so a resumed order honours it too.
    ///
    /// Dropping the future half-way (a stop) leaves the order at the CA as it is, to be
    /// resumed, and cleans up what was presented.
    fn complete<'a>(
        &'a mut self,
        key_pem: &'a Secret,
        domains: &'a [DomainName],
        solver: &'a dyn ChallengeSolver,
        preferred_chain: Option<&'a str>,
    ) -> PortFuture<'a, Result<String, CaFailure>>;
}

/// What to order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewOrder {
    pub cert: CertName,
    pub domains: Vec<DomainName>,
    pub key_type: KeyType,
    /// The directory URL the lifecycle rule chose for this order (a DigiCert renewal carries
    /// its action and order id in it).
    pub directory_url: String,
    /// The live certificate (DER) this order replaces: sent as ARI's `replaces` when the CA
    /// offers ARI. `None` for a first issuance.
    pub replaces: Option<Vec<u8>>,
    /// The ACME profile to ask for (checked against the CA's directory first).
    pub profile: Option<String>,
}

/// What a CA answered about renewing one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalInfo {
    /// The CA's directory has no `renewalInfo`: the lifetime rule plans the certificate.
    Unsupported,
    /// The CA's suggested window.
    Window {
        window: Window,
        /// A page the CA links to explain the window (a revocation, say).
        explanation_url: Option<String>,
        /// How long the CA asked to wait before asking again (its Retry-After), if it said.
        retry_after: Option<Duration>,
    },
}

/// Where an order lives at its CA: what is persisted to resume it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderLocation {
    pub order_url: String,
    /// The directory URL it was placed through (with any lifecycle query).
    pub directory_url: String,
}

// ------------------------------------------------------------------ challenge solvers

/// Which challenge solver answers a certificate's challenges.
pub trait Solvers: Send + Sync + Debug {
    /// The solver for the orders of `spec`, asked once per attempt before anything is ordered.
    /// `inventory` is the one the attempt runs on (a reload may have changed it): what the
    /// certificate is configured to answer is `inventory.challenge(&spec.name)`, its DNS
    /// provider `inventory.dns_provider(..)`.
    ///
    /// # Errors
    /// [`NoSolver`] when no solver can be had for `spec`: the attempt fails before an order
    /// is placed, as needing a human.
    fn for_certificate(
        &self,
        inventory: &Inventory,
        spec: &CertificateSpec,
    ) -> Result<Arc<dyn ChallengeSolver>, NoSolver>;
}

// ------------------------------------------------------------------ hooks

/// The operator's hooks around attempts, and the reload targets certificates ask for.
///
/// The attempt decides when each runs: `pre` before an order (a failure places none),
/// `deploy` once a certificate is live, then `request_reload` (also after a failed deploy:
/// the certificate is live either way); `post` follows a batch of renewals.
pub trait Hooks: Send + Sync + Debug {
    /// Before an order for `spec`: its `pre_hook` and `hooks_dir/pre/*`.
    fn pre<'a>(
        &'a self,
        inventory: &'a Inventory,
        spec: &'a CertificateSpec,
    ) -> PortFuture<'a, Result<(), HookFailure>>;

    /// After `live` went live for `spec` (`action`: how it came to be): its `deploy_hook` and
    /// `hooks_dir/deploy/*`.
    fn deploy<'a>(
        &'a self,
        inventory: &'a Inventory,
        spec: &'a CertificateSpec,
        live: &'a LiveCert,
        action: DeployAction,
    ) -> PortFuture<'a, Result<(), HookFailure>>;

    /// Ask for the reload targets of `spec` to run. Coalesced: a target runs once for a batch
    /// of certificates; its outcome is recorded on the lineages that asked when it runs.
    fn request_reload(&self, spec: &CertificateSpec);

    /// After a batch of renewals: the distinct `post_hook`s of `renewed` and
    /// `hooks_dir/post/*`. A failure is logged; nothing is left to retry.
    fn post<'a>(
        &'a self,
        inventory: &'a Inventory,
        renewed: &'a [&'a CertificateSpec],
    ) -> PortFuture<'a, ()>;
}

// ------------------------------------------------------------------ coordination

/// Who may order a certificate, and what the other nodes of a fleet must learn of it. A node
/// on its own ([`Solo`]) always may and tells nobody; a node of a fleet
/// (`engine/fleet/coordination.rs`) works on a certificate only while it holds its lease in
/// the fleet's database, carries on an order another node left, lets every node answer its
/// HTTP-01 challenges and publishes a certificate before installing it.
pub trait Coordination: Send + Sync + Debug {
    /// Claim `cert` for one attempt.
    fn claim<'a>(&'a self, cert: &'a CertName) -> PortFuture<'a, Result<Claimed, FleetError>>;
}

/// What [`Coordination::claim`] found.
#[derive(Debug)]
pub enum Claimed {
    /// This node may work on the certificate until the claim is lost or released.
    Held(Box<dyn Claim>),
    /// Another node works on it; ask again not before `until`.
    Elsewhere { owner: String, until: SystemTime },
}

/// One attempt's hold on a certificate.
pub trait Claim: Send + Sync + Debug {
    /// Cancelled when the claim is lost (its lease expired or was taken): the attempt stops at
    /// its next safe point and writes nothing more for the others.
    fn lost(&self) -> CancellationToken;

    /// The fleet's newest version of the certificate when it is not `local_serial` (this
    /// node's live one): installed instead of ordering another.
    fn published<'a>(
        &'a self,
        local_serial: Option<&'a str>,
    ) -> PortFuture<'a, Result<Option<PublishedVersion>, FleetError>>;

    /// The certificate's attempts as the fleet last recorded them (any node's), for a
    /// backoff the whole fleet keeps; `None` when none was recorded.
    fn shared_attempts(&self) -> PortFuture<'_, Result<Option<AttemptRecord>, FleetError>>;

    /// Record this attempt's outcome (the lineage's attempts as they are now) for the others.
    fn share_attempts<'a>(
        &'a self,
        record: &'a AttemptRecord,
    ) -> PortFuture<'a, Result<(), FleetError>>;

    /// An order another node placed for the certificate and did not finish, to carry on.
    fn order_left(&self) -> PortFuture<'_, Result<Option<LeftOrder>, FleetError>>;

    /// Tell the others about the order this attempt placed or resumed, with its key.
    fn record_order<'a>(
        &'a self,
        location: &'a OrderLocation,
        key_pem: &'a Secret,
    ) -> PortFuture<'a, Result<(), FleetError>>;

    /// Forget the order recorded for the others: it is dead at the CA (its validation failed,
    /// or its certificate does not verify), so the next holder places a new one rather than
    /// carrying it on.
    fn forget_order(&self) -> PortFuture<'_, Result<(), FleetError>>;

    /// The solver to answer this attempt's challenges with: `solver`, its HTTP-01 key
    /// authorisations also served by every other node.
    fn solver(&self, solver: Arc<dyn ChallengeSolver>) -> Arc<dyn ChallengeSolver>;

    /// Publish the certificate this attempt obtained (checked, not yet installed here), so
    /// that every node installs it; refused once the claim is lost.
    fn publish<'a>(
        &'a self,
        issue: &'a CheckedIssue,
        key_pem: &'a Secret,
    ) -> PortFuture<'a, Result<(), FleetError>>;

    /// Let go: the attempt ended, however.
    fn release(self: Box<Self>) -> PortFuture<'static, ()>;
}

/// A version another node published: the key and the chain to install.
#[derive(Debug, Clone)]
pub struct PublishedVersion {
    pub serial_hex: String,
    pub key_pem: Secret,
    /// Leaf first, then the intermediates.
    pub fullchain_pem: String,
    pub published_by: String,
}

/// An order another node placed and left.
#[derive(Debug, Clone)]
pub struct LeftOrder {
    pub location: OrderLocation,
    pub key_pem: Secret,
    pub placed_by: String,
}

/// A node on its own: every claim is granted and tells nobody.
#[derive(Debug, Clone, Copy, Default)]
pub struct Solo;

impl Coordination for Solo {
    fn claim<'a>(&'a self, _cert: &'a CertName) -> PortFuture<'a, Result<Claimed, FleetError>> {
        Box::pin(async { Ok(Claimed::Held(Box::new(SoloClaim::default()))) })
    }
}

/// [`Solo`]'s claim: never lost, nothing published or left elsewhere.
#[derive(Debug, Default)]
struct SoloClaim {
    lost: CancellationToken,
}

impl Claim for SoloClaim {
    fn lost(&self) -> CancellationToken {
        self.lost.clone()
    }

    fn published<'a>(
        &'a self,
        _local_serial: Option<&'a str>,
    ) -> PortFuture<'a, Result<Option<PublishedVersion>, FleetError>> {
        Box::pin(async { Ok(None) })
    }

    fn shared_attempts(&self) -> PortFuture<'_, Result<Option<AttemptRecord>, FleetError>> {
        Box::pin(async { Ok(None) })
    }

    fn share_attempts<'a>(
        &'a self,
        _record: &'a AttemptRecord,
    ) -> PortFuture<'a, Result<(), FleetError>> {
        Box::pin(async { Ok(()) })
    }

    fn order_left(&self) -> PortFuture<'_, Result<Option<LeftOrder>, FleetError>> {
        Box::pin(async { Ok(None) })
    }

    fn record_order<'a>(
        &'a self,
        _location: &'a OrderLocation,
        _key_pem: &'a Secret,
    ) -> PortFuture<'a, Result<(), FleetError>> {
        Box::pin(async { Ok(()) })
    }

    fn forget_order(&self) -> PortFuture<'_, Result<(), FleetError>> {
        Box::pin(async { Ok(()) })
    }

    fn solver(&self, solver: Arc<dyn ChallengeSolver>) -> Arc<dyn ChallengeSolver> {
        solver
    }

    fn publish<'a>(
        &'a self,
        _issue: &'a CheckedIssue,
        _key_pem: &'a Secret,
    ) -> PortFuture<'a, Result<(), FleetError>> {
        Box::pin(async { Ok(()) })
    }

    fn release(self: Box<Self>) -> PortFuture<'static, ()> {
        Box::pin(async {})
    }
}

// ------------------------------------------------------------------ the daemon's ports

/// The wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> SystemTime {
        SystemTime::now()
    }
}

/// What an attempt needs from the daemon at the moment it starts (the inventory may have
/// been reloaded since the daemon started).
#[derive(Debug, Clone)]
pub struct AttemptInput {
    pub inventory: Arc<Inventory>,
    pub spec: CertificateSpec,
    pub purpose: OrderPurpose,
    /// `renew --new-key`: a new order gets a new key even with `reuse_key`.
    pub new_key: bool,
    /// The notAfter of the certificate live when the attempt was planned (`None`: none was).
    pub planned_live: Option<SystemTime>,
}

/// How an attempt went.
#[derive(Debug)]
pub struct Outcome {
    /// The installed certificate, or why there is none (the live one, if any, stays).
    pub result: Result<LiveCert, AttemptError>,
    /// The deploy hooks of an installed certificate (`Ok` when none ran). A failure is
    /// recorded as a pending deploy and retried without a new order.
    pub deploy: Result<(), HookFailure>,
}

/// How the daemon carries out attempts.
pub trait Runner: Send + Sync + Debug {
    /// One attempt; its outcome is recorded on the lineage before the future resolves.
    fn attempt(&self, input: AttemptInput) -> Task<Outcome>;
    /// Run the deploy hooks of the live certificate again (a pending deploy).
    fn redeploy(&self, input: AttemptInput) -> Task<()>;
}
