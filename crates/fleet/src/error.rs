//! The fleet adapter's one error type. Each variant says what went wrong and what to do, so the
//! binary can print the chain once and pick an exit code from the variant.

use std::path::PathBuf;
use std::time::Duration;

/// Everything the PostgreSQL adapter can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum FleetError {
    /// The `[cluster] postgres` URL does not parse.
    #[error(
        "the cluster's PostgreSQL URL is not valid (expected postgres://user@host:port/database)"
    )]
    InvalidUrl(#[source] tokio_postgres::Error),

    /// The URL names no TCP host (a Unix socket path or nothing).
    #[error(
        "the cluster's PostgreSQL URL names no host; give host and port (postgres://user@host:5432/database)"
    )]
    NoHost,

    /// The CA file for the database's TLS certificate could not be read or holds no certificate.
    #[error("cannot use {path} as the CA for the database's TLS certificate: {reason}")]
    CaFile {
        /// The file named by the configuration.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// The fleet key file could not be read.
    #[error("cannot read the fleet key file {path}")]
    FleetKeyFile {
        /// The file named by the configuration.
        path: PathBuf,
        /// Why it could not be read.
        #[source]
        source: std::io::Error,
    },

    /// The fleet key is not 32 bytes written as hex or base64.
    #[error(
        "the fleet key is not 32 bytes written as 64 hex digits or 44 base64 characters ({reason}); create one with `openssl rand -hex 32` and give every node the same"
    )]
    FleetKeyFormat {
        /// What was found instead.
        reason: String,
    },

    /// Nothing answered at the database's address, or the connection broke.
    #[error(
        "the database at {target} is unreachable; nodes keep serving their local certificates and retry, check that PostgreSQL runs and the address is right"
    )]
    Unreachable {
        /// host:port of the database.
        target: String,
        /// The connection error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// The database closed the connection.
    #[error(
        "the database at {target} closed the connection; nodes keep serving their local certificates and retry"
    )]
    Closed {
        /// host:port of the database.
        target: String,
    },

    /// The database did not answer in time.
    #[error(
        "the database at {target} did not answer within {after:?}; nodes keep serving their local certificates and retry"
    )]
    TimedOut {
        /// host:port of the database.
        target: String,
        /// How long we waited.
        after: Duration,
    },

    /// The server refused the user name or password.
    #[error(
        "the database at {target} refused the login of {user:?}: check the password (secret file, environment or credential) and pg_hba.conf"
    )]
    Authentication {
        /// host:port of the database.
        target: String,
        /// The role we logged in as.
        user: String,
        /// The server's message.
        #[source]
        source: tokio_postgres::Error,
    },

    /// TLS to the database failed: no TLS on the server, or a certificate we do not trust.
    #[error(
        "TLS with the database at {target} failed: check the server's certificate, its name, and the cluster's CA file (or sslmode=disable for a local socket-only test database)"
    )]
    Tls {
        /// host:port of the database.
        target: String,
        /// The TLS error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// The database's schema was written by a newer certkeeper.
    #[error(
        "the database's fleet schema is version {found}, this certkeeper knows up to {known}: upgrade certkeeper on this node (all nodes of a fleet should run the same version)"
    )]
    SchemaTooNew {
        /// The version recorded in the database.
        found: i32,
        /// The newest version this binary embeds.
        known: i32,
    },

    /// A migration failed; the transaction was rolled back.
    #[error("migrating the fleet schema to version {version} failed (nothing was changed)")]
    Migration {
        /// The migration that failed.
        version: i32,
        /// The database's error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// The fleet key does not open the key check written at the fleet's first start.
    #[error(
        "the fleet key does not match the key this fleet's database was set up with: give this node the same fleet_key_file as the other nodes"
    )]
    WrongFleetKey,

    /// A sealed value did not open with the fleet key (tampered, or moved to another row).
    #[error(
        "{what} in the database does not decrypt with the fleet key: it was changed or copied from another row"
    )]
    Decrypt {
        /// What was being opened.
        what: String,
    },

    /// Sealing failed (the system's random source).
    #[error("encrypting {what} with the fleet key failed")]
    Encrypt {
        /// What was being sealed.
        what: String,
    },

    /// A newer lease generation exists: this node lost the lease and another node owns the lineage.
    #[error(
        "write for {lineage} refused: this node's lease (generation {held}) was taken over by {owner} (generation {current}); stop working on it"
    )]
    Fenced {
        /// The lineage.
        lineage: String,
        /// The generation this node held.
        held: i64,
        /// The current generation.
        current: i64,
        /// The current owner.
        owner: String,
    },

    /// The lease expired (nobody took it over yet); renew it before writing.
    #[error(
        "the lease on {lineage} (generation {generation}) has expired; renew it before writing"
    )]
    LeaseExpired {
        /// The lineage.
        lineage: String,
        /// The generation held.
        generation: i64,
    },

    /// Renewing or releasing a lease that is no longer ours.
    #[error(
        "the lease on {lineage} (generation {generation}) is no longer this node's; stop working on it"
    )]
    LeaseLost {
        /// The lineage.
        lineage: String,
        /// The generation held.
        generation: i64,
    },

    /// Any other database error.
    #[error("the database refused to {action}")]
    Database {
        /// What we were doing.
        action: &'static str,
        /// The database's error.
        #[source]
        source: tokio_postgres::Error,
    },

    /// A row that this binary cannot make sense of.
    #[error("the database holds an unexpected value: {what}")]
    Corrupt {
        /// What was wrong.
        what: String,
    },
}

impl FleetError {
    /// True when the database could not be reached or did not answer: a transient condition in
    /// which nodes keep serving what they have and retry later.
    #[must_use]
    pub fn is_unavailable(&self) -> bool {
        matches!(
            self,
            Self::Unreachable { .. } | Self::Closed { .. } | Self::TimedOut { .. }
        )
    }
}
