//! The pure core of certkeeper.
//!
//! This crate owns the vocabulary every other crate speaks: the validated inventory
//! ([`Inventory`], [`CaSpec`], [`CertificateSpec`]), the newtypes that make invalid
//! inventory unrepresentable ([`CertName`], [`DomainName`], [`KeyType`], ...), the renewal
//! decision ([`renewal`]), DigiCert's lifecycle URL rules ([`lifecycle`]), the hook
//! vocabulary with its environment contract ([`hooks`]), notification targets and the rule
//! that decides which notices to send ([`notify`]), and the ports adapters implement
//! ([`ChallengeSolver`]).
//!
//! It performs no I/O: no files, no sockets, no clock. Time enters as a parameter so the
//! planning rules are plain functions that tests drive with tables of instants. A test in
//! the binary crate checks that this crate never links tokio, axum or instant-acme.

pub mod ari;
pub mod challenge;
pub mod clock;
pub mod cluster;
pub mod hooks;
pub mod inventory;
pub mod lifecycle;
pub mod names;
pub mod notify;
pub mod ports;
pub mod renewal;
pub mod report;
pub mod revocation;
pub mod schedule;
pub mod secret;

pub use clock::Clock;
pub use hooks::{
    CertHooks, DeployAction, Deployment, Hook, HookCommand, ReloadTarget, deploy_env, post_env,
    pre_env,
};
pub use inventory::{
    AdminSpec, CaSpec, CertificateSpec, Eab, Http01Spec, Inventory, KeyGroup, KeyType,
};
pub use lifecycle::{LifecycleAction, OrderPurpose};
pub use names::{CaName, CertName, DomainName, NameError};
pub use notify::{Event, EventSet, NotifySpec, NotifyTarget};
pub use ports::{
    ChallengeAnswer, ChallengeKind, ChallengeSolver, SolverError, SolverFuture, SolverStep,
};
pub use renewal::{Decision, ObservedCert};
pub use report::error_chain;
pub use revocation::RevocationReason;
pub use secret::Secret;
