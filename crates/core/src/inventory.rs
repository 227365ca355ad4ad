//! The validated inventory: what certkeeper must keep issued.
//!
//! Only the config crate builds these values, after checking every field; everything
//! downstream can rely on the invariants (unique names, known CA references, valid domains).

use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use crate::challenge::{ChallengeSpec, Challenges, DnsProviderSpec};
use crate::cluster::ClusterSpec;
use crate::hooks::{CertHooks, ReloadTarget};
use crate::lifecycle::LifecycleAction;
use crate::names::{CaName, CertName, DomainName};
use crate::notify::NotifySpec;
use crate::schedule::SchedulePolicy;
use crate::secret::Secret;

/// The whole validated configuration.
#[derive(Debug, Clone)]
pub struct Inventory {
    /// Root of the on-disk state: `accounts/`, `archive/`, `live/`, `state/`.
    pub state_dir: PathBuf,
    pub http01: Http01Spec,
    pub cas: Vec<CaSpec>,
    pub certificates: Vec<CertificateSpec>,
    /// At most this many orders in flight at once (all CAs together).
    pub max_concurrent: usize,
    /// The optional admin listener (`/healthz`, `/metrics`).
    pub admin: Option<AdminSpec>,
    /// Files the inventory was read from and `include` directories: what the daemon watches
    /// to reload on edits.
    pub watch_paths: Vec<PathBuf>,
    /// `hooks_dir`: executables in its `pre/`, `deploy/` and `post/` folders run like
    /// certbot's `renewal-hooks/`, with [`Inventory::hook_timeout`] each.
    pub hooks_dir: Option<PathBuf>,
    /// `hook_timeout`: the timeout of hooks that set none, and of `hooks_dir` executables.
    /// The configured hooks already carry their effective timeout.
    pub hook_timeout: Duration,
    /// `[reload.NAME]` targets, in file order; certificates refer to them by name.
    pub reload_targets: Vec<ReloadTarget>,
    /// The challenge each certificate answers and the `[dns.NAME]` providers they use; see
    /// [`crate::challenge`] for why this is not a field of [`CertificateSpec`].
    pub challenges: Challenges,
    /// `[[notify]]` targets, in file order, names unique.
    pub notify: Vec<NotifySpec>,
    /// `[cluster]`: the database a fleet of nodes shares; `None` for a single node.
    pub cluster: Option<ClusterSpec>,
}

/// Default for [`Inventory::max_concurrent`].
pub const DEFAULT_MAX_CONCURRENT: usize = 4;

/// The admin HTTP listener: health and Prometheus metrics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AdminSpec {
    pub listen: SocketAddr,
}

impl Inventory {
    /// The CA a certificate refers to. Validation guarantees it exists.
    #[must_use]
    pub fn ca(&self, name: &CaName) -> Option<&CaSpec> {
        self.cas.iter().find(|ca| &ca.name == name)
    }

    /// A certificate by lineage name.
    #[must_use]
    pub fn certificate(&self, name: &str) -> Option<&CertificateSpec> {
        self.certificates
            .iter()
            .find(|cert| cert.name.as_str() == name)
    }

    /// The challenge certificate `name` answers: its own, the configured default, or the
    /// embedded HTTP-01 responder.
    #[must_use]
    pub fn challenge(&self, name: &CertName) -> &ChallengeSpec {
        self.challenges.of(name)
    }

    /// A DNS provider by name. Validation guarantees every provider a certificate names
    /// exists.
    #[must_use]
    pub fn dns_provider(&self, name: &str) -> Option<&DnsProviderSpec> {
        self.challenges.dns_provider(name)
    }

    /// A notification target by name.
    #[must_use]
    pub fn notify_target(&self, name: &str) -> Option<&NotifySpec> {
        self.notify.iter().find(|target| target.name == name)
    }

    /// A reload target by name. Validation guarantees every name a certificate lists exists.
    #[must_use]
    pub fn reload_target(&self, name: &str) -> Option<&ReloadTarget> {
        self.reload_targets
            .iter()
            .find(|target| target.name == name)
    }
}

/// The embedded HTTP-01 responder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http01Spec {
    /// Addresses to listen on while orders are in flight.
    pub listen: Vec<SocketAddr>,
}

/// An ACME CA and the account certkeeper holds with it.
#[derive(Debug, Clone)]
pub struct CaSpec {
    pub name: CaName,
    /// Directory URL exactly as configured (it may already carry a query).
    pub directory: String,
    pub eab: Option<Eab>,
    pub terms_of_service_agreed: bool,
    pub contact: Vec<String>,
    /// Extra trust anchor (PEM) for the CA's HTTPS endpoint: private or test CAs.
    pub root_ca_file: Option<PathBuf>,
    /// At most this many orders in flight at this CA; `None`: only the global limit.
    pub max_concurrent: Option<usize>,
    /// Time allowed for one request to this CA; `None`: the adapter's default (30 s).
    pub request_timeout: Option<Duration>,
}

/// External Account Binding credentials (RFC 8555 section 7.3.4).
#[derive(Debug, Clone)]
pub struct Eab {
    pub kid: String,
    /// The decoded HMAC key (the config holds it base64url-encoded).
    pub hmac_key: Secret,
}

/// One certificate lineage to keep issued.
#[derive(Debug, Clone)]
pub struct CertificateSpec {
    pub name: CertName,
    pub ca: CaName,
    /// Names in the certificate, in configured order, without duplicates.
    pub domains: Vec<DomainName>,
    pub key_type: KeyType,
    /// DigiCert CertCentral order to renew or reissue.
    pub order_id: Option<String>,
    /// DigiCert lifecycle action used for renewals.
    pub action: LifecycleAction,
    /// Renew when less than this is left; `None` means a third of the lifetime.
    pub renew_before: Option<Duration>,
    /// The ACME profile to request (draft-ietf-acme-profiles): the certificate's own, or
    /// its CA's default; `None` leaves the choice to the CA. Checked against the CA's
    /// directory (`meta.profiles`) when an order is placed.
    pub profile: Option<String>,
    /// `preferred_chain`: among the chains the CA offers (RFC 8555 section 7.4.2), the one
    /// whose last certificate's issuer has this common name; `None`, or no chain so named,
    /// keeps the CA's default chain.
    pub preferred_chain: Option<String>,
    /// Maintenance window, urgency margin and backoff for this certificate (the global
    /// settings, or the certificate's own). Shared: most certificates use the global
    /// settings, and a fleet of ten thousand keeps one copy of them, not ten thousand.
    pub schedule: Arc<SchedulePolicy>,
    /// Pre, deploy, post hooks and reload targets (the certificate's own, or the `[hooks]`
    /// defaults). Shared like [`CertificateSpec::schedule`].
    pub hooks: Arc<CertHooks>,
    /// `reuse_key`: renewals keep the live private key while its type is
    /// [`CertificateSpec::key_type`] (a key pinned elsewhere, such as a DANE TLSA record, stays
    /// valid); `false` makes a new key for every order.
    pub reuse_key: bool,
    /// `key_group`: the group that may read the lineage's `privkey.pem` (`0640`); `None`
    /// keeps it `0600`, the owner's only.
    pub key_group: Option<KeyGroup>,
}

/// A group allowed to read a lineage's private key, resolved when the configuration was
/// loaded: the name for messages, the number for `fchown(2)`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyGroup {
    pub name: String,
    pub gid: u32,
}

impl fmt::Display for KeyGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (gid {})", self.name, self.gid)
    }
}

/// Private key algorithm for a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum KeyType {
    #[default]
    EcdsaP256,
    EcdsaP384,
    Rsa2048,
    Rsa3072,
    Rsa4096,
}

impl KeyType {
    /// Every accepted spelling, for error messages and docs.
    pub const ALL: [KeyType; 5] = [
        KeyType::EcdsaP256,
        KeyType::EcdsaP384,
        KeyType::Rsa2048,
        KeyType::Rsa3072,
        KeyType::Rsa4096,
    ];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ecdsa-p256",
            KeyType::EcdsaP384 => "ecdsa-p384",
            KeyType::Rsa2048 => "rsa2048",
            KeyType::Rsa3072 => "rsa3072",
            KeyType::Rsa4096 => "rsa4096",
        }
    }
}

impl fmt::Display for KeyType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The text was not one of [`KeyType::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown key type {0:?}; expected one of ecdsa-p256, ecdsa-p384, rsa2048, rsa3072, rsa4096"
)]
pub struct UnknownKeyType(pub String);

impl FromStr for KeyType {
    type Err = UnknownKeyType;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        KeyType::ALL
            .into_iter()
            .find(|k| k.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownKeyType(s.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_types_round_trip() {
        for key in KeyType::ALL {
            assert_eq!(key.as_str().parse::<KeyType>(), Ok(key));
        }
        assert_eq!("RSA2048".parse::<KeyType>(), Ok(KeyType::Rsa2048));
        assert!("rsa1024".parse::<KeyType>().is_err());
    }
}
