//! Fleet mode: what `[cluster]` says about the PostgreSQL database that several certkeeper
//! nodes share, validated by the config crate. Connecting, leases and the shared records are
//! the fleet adapter's business; this is the plain data it starts from.

use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

use url::Url;

use crate::secret::Secret;

/// The length of the fleet key: AES-256.
pub const FLEET_KEY_LEN: usize = 32;

/// How long a node's lease on a certificate lasts unless renewed, when `lease` is unset.
pub const DEFAULT_LEASE: Duration = Duration::from_secs(60);

/// How often a node compares its `live/` with the database without a notification, when
/// `sync_interval` is unset.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(300);

/// `[cluster]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    /// `postgres`: the connection URL, user, host, port and database; never a password.
    pub postgres: Url,
    /// The database password, from `password_file`, `password_env` or `password_credential`.
    pub password: Option<Secret>,
    /// How the connection is protected.
    pub tls: ClusterTls,
    /// `ca_file`: the CA that signed the database server's certificate, when it is not one
    /// the system trusts.
    pub ca_file: Option<PathBuf>,
    /// `node`: this node's name; `None` for the host name.
    pub node: Option<String>,
    /// The key that encrypts private keys in the database, from `fleet_key_file`,
    /// `fleet_key_env` or `fleet_key_credential`: [`FLEET_KEY_LEN`] bytes. The database never
    /// holds it.
    pub fleet_key: Secret,
    /// `lease`: how long a node holds a certificate it works on without renewing its lease.
    pub lease: Duration,
    /// `sync_interval`: how often a node checks the database for certificates it missed.
    pub sync_interval: Duration,
}

/// `tls` of `[cluster]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ClusterTls {
    /// TLS, the server's certificate verified against `ca_file` or the system's roots and
    /// its name against the URL's host. The default.
    #[default]
    Verify,
    /// No TLS: only for a database on this host (localhost or a loopback address).
    None,
}

impl ClusterTls {
    pub const ALL: [ClusterTls; 2] = [ClusterTls::Verify, ClusterTls::None];

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ClusterTls::Verify => "verify",
            ClusterTls::None => "none",
        }
    }
}

impl fmt::Display for ClusterTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}
