//! The real [`Solvers`]: which challenge solver answers a certificate's challenges.
//!
//! Today there is one: the embedded HTTP-01 responder, whose [`ChallengeTokens`] the command
//! (`renew`, or the daemon) serves on its listeners for as long as attempts may need them.
//! This is where a certificate's configured challenge (`inventory.challenge(&spec.name)`, the
//! core's `ChallengeSpec`) is matched once there is a choice: a webroot solver for an
//! HTTP-01 challenge with a webroot, a DNS-01 solver for the `[dns.NAME]` provider it names,
//! the embedded responder otherwise. Until then every certificate gets the embedded
//! responder, whatever its configuration says.

use std::sync::Arc;

use certkeeper_challenge::ChallengeTokens;
use certkeeper_core::{CertificateSpec, ChallengeSolver, Inventory};

use crate::engine::error::NoSolver;
use crate::engine::ports::Solvers;

/// The solvers of the inventory: today the embedded HTTP-01 responder for every certificate.
#[derive(Debug, Clone)]
pub struct ConfiguredSolvers {
    http01: Arc<ChallengeTokens>,
}

impl ConfiguredSolvers {
    /// `http01`: the tokens the embedded responder serves.
    pub fn new(http01: ChallengeTokens) -> Self {
        Self {
            http01: Arc::new(http01),
        }
    }
}

impl Solvers for ConfiguredSolvers {
    fn for_certificate(
        &self,
        _inventory: &Inventory,
        _spec: &CertificateSpec,
    ) -> Result<Arc<dyn ChallengeSolver>, NoSolver> {
        let solver: Arc<dyn ChallengeSolver> = self.http01.clone();
        Ok(solver)
    }
}
