//! Fleet mode's shared storage: the PostgreSQL adapter that several certkeeper nodes use to
//! share accounts, certificates and the work of renewing them.
//!
//! The engine will reach this crate through its ports; nothing here knows about the engine. The
//! crate owns the schema (embedded migrations), the connection (TLS verified or absent, with
//! timeouts so that a vanished database is an error, not a hang), and four guarantees:
//!
//! - **Leases, on the database's clock.** A node works on a lineage only while it holds its
//!   lease: a row with owner, `generation` and `expires_at`. Expiry is computed and compared
//!   with `clock_timestamp()` in SQL, never with a node's clock, so nodes whose clocks disagree
//!   still agree on who holds a lease. [`Fleet::acquire`] takes a free or expired lease in one
//!   statement (`INSERT .. ON CONFLICT .. DO UPDATE .. WHERE expires_at <= clock_timestamp()`),
//!   bumping the generation on takeover; a lease that has not expired is never taken.
//! - **Fencing.** Every write made for a lineage ([`Fleet::publish_version`],
//!   [`Fleet::save_state`], [`Fleet::record_order`], [`Fleet::publish_challenge`]) runs in one
//!   transaction that first locks the lease row (`SELECT .. FOR UPDATE`) and checks that the
//!   caller's generation is still the current one and has not expired. A node that was paused
//!   or partitioned past its lease's expiry and then carries on gets [`FleetError::Fenced`]
//!   instead of overwriting what the new holder wrote. A lease check before the work is not
//!   enough on its own: the check and the write must be one transaction.
//! - **Keys the database cannot read.** Private keys and ACME accounts are sealed with the fleet
//!   key (AES-256-GCM, a random nonce per value, the row's identity as additional data; see
//!   [`FleetKey`]). The database holds a sealed known constant, so a node started with another
//!   key fails at [`Fleet::connect`] with [`FleetError::WrongFleetKey`].
//! - **Notifications.** Writes that other nodes act on also `pg_notify` (delivered at commit);
//!   [`Fleet::listen`] keeps a dedicated connection that LISTENs, yields [`FleetEvent`]s and
//!   reconnects by itself. Notifications can be missed while disconnected, so each
//!   (re)subscription yields [`FleetEvent::Listening`]: the consumer re-reads the snapshots
//!   ([`Fleet::challenges`], [`Fleet::version_heads`]) then.
//!
//! Migrations run at connect inside one transaction holding `pg_advisory_xact_lock`, so two
//! nodes starting together apply them once; a database migrated by a newer certkeeper is refused
//! with [`FleetError::SchemaTooNew`] rather than written with an older idea of the schema.

mod error;
mod key;
mod link;
mod listen;
mod migrate;

use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use certkeeper_core::Secret;
use tokio::sync::Mutex;
use tokio_postgres::{Client, Row, Transaction};

pub use error::FleetError;
pub use key::FleetKey;
pub use listen::{FleetEvent, FleetListener};
pub use migrate::SCHEMA_VERSION;

use link::{Conn, Link};

/// The notification channel for HTTP-01 key authorisations.
pub const CHALLENGE_CHANNEL: &str = "certkeeper_challenge";
/// The notification channel for new certificate versions.
pub const VERSION_CHANNEL: &str = "certkeeper_version";

/// How a node reaches the fleet's database; what `[cluster]` in the inventory becomes.
#[derive(Clone)]
pub struct FleetSettings {
    /// `postgres://user@host:port/database[?sslmode=...]`; the password belongs in `password`.
    pub url: String,
    /// The database password (from a secret file, environment or systemd credential).
    pub password: Option<Secret>,
    /// The CA that signed the database's TLS certificate; the system's roots when `None`.
    pub ca_file: Option<PathBuf>,
    /// This node's name, unique in the fleet (default: the host name).
    pub node: String,
    /// The fleet key every node shares.
    pub fleet_key: FleetKey,
    /// How long to wait for a connection (default 10 s).
    pub connect_timeout: Duration,
    /// How long one operation may take, connecting included (default 30 s).
    pub operation_timeout: Duration,
}

impl FleetSettings {
    /// Settings with the default timeouts, no password and the system's roots.
    #[must_use]
    pub fn new(url: impl Into<String>, node: impl Into<String>, fleet_key: FleetKey) -> Self {
        Self {
            url: url.into(),
            password: None,
            ca_file: None,
            node: node.into(),
            fleet_key,
            connect_timeout: Duration::from_secs(10),
            operation_timeout: Duration::from_secs(30),
        }
    }
}

impl fmt::Debug for FleetSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A URL may carry a password after all (user:password@host, or ?password=): show the
        // host and database only.
        let mut url = match self.url.rsplit_once('@') {
            Some((_, rest)) => format!("postgres://<redacted>@{rest}"),
            None => self.url.clone(),
        };
        if url.contains("password")
            && let Some((base, _)) = url.split_once('?')
        {
            url = format!("{base}?<redacted>");
        }
        f.debug_struct("FleetSettings")
            .field("url", &url)
            .field("password", &self.password)
            .field("ca_file", &self.ca_file)
            .field("node", &self.node)
            .field("fleet_key", &self.fleet_key)
            .field("connect_timeout", &self.connect_timeout)
            .field("operation_timeout", &self.operation_timeout)
            .finish()
    }
}

/// A lineage's lease as acquired by a node. Pass it to every write for the lineage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Lease {
    /// The lineage (certificate name).
    pub lineage: String,
    /// The node holding it.
    pub owner: String,
    /// Bumped at every takeover; fenced writes check it.
    pub generation: i64,
    /// When it expires, by the database's clock.
    pub expires_at: SystemTime,
}

/// A certificate version as issued: certificates in PEM, the private key secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionRecord {
    /// The certificate's serial number (hex).
    pub serial: String,
    /// The leaf certificate.
    pub cert_pem: String,
    /// The intermediates.
    pub chain_pem: String,
    /// Leaf and intermediates.
    pub fullchain_pem: String,
    /// The private key in PEM; sealed with the fleet key before it leaves the node.
    pub key_pem: Secret,
    /// The certificate's notAfter.
    pub not_after: SystemTime,
}

/// A version read back from the database, its key opened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredVersion {
    /// The lineage.
    pub lineage: String,
    /// 1, 2, ... per lineage.
    pub version: i64,
    /// The version itself.
    pub record: VersionRecord,
    /// The node that published it.
    pub published_by: String,
    /// The lease generation it was published under.
    pub generation: i64,
    /// When, by the database's clock.
    pub published_at: SystemTime,
}

/// The newest version of a lineage, for comparing a node's `live/` with the fleet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VersionHead {
    /// The lineage.
    pub lineage: String,
    /// Its newest version.
    pub version: i64,
    /// That version's serial.
    pub serial: String,
}

/// An order placed for a lineage: what another node needs to carry it on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderRecord {
    /// The ACME order URL.
    pub order_url: String,
    /// The directory URL it was placed through (a DigiCert renewal carries its action in it).
    pub directory_url: String,
    /// The private key the order's CSR is made from; sealed with the fleet key.
    pub key_pem: Secret,
}

/// An order in flight, so that another node can resume it by URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderInFlight {
    /// The lineage.
    pub lineage: String,
    /// The order, its key opened.
    pub order: OrderRecord,
    /// The node that placed it.
    pub owner: String,
    /// The lease generation it was placed under.
    pub generation: i64,
    /// When it was recorded, by the database's clock.
    pub recorded_at: SystemTime,
}

/// An HTTP-01 key authorisation that every node serves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Http01Challenge {
    /// The challenge token (the last path segment).
    pub token: String,
    /// The body to serve.
    pub key_authorization: String,
    /// The lineage whose order it belongs to.
    pub lineage: String,
}

/// A node of the fleet as the database last saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    /// The node's name.
    pub name: String,
    /// First registration.
    pub first_seen: SystemTime,
    /// Last registration or heartbeat.
    pub last_seen: SystemTime,
}

/// A handle on the fleet's database for one node.
///
/// Operations share one connection, one at a time, reopened after it breaks; each is bounded by
/// the operation timeout, so a database that went away is a [`FleetError::Unreachable`] or
/// [`FleetError::TimedOut`] (see [`FleetError::is_unavailable`]) instead of a hang.
#[derive(Debug, Clone)]
pub struct Fleet {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    link: Link,
    node: String,
    key: FleetKey,
    conn: Mutex<Option<Conn>>,
}

impl Fleet {
    /// Connect, migrate the schema, check the fleet key and register this node.
    ///
    /// # Errors
    /// [`FleetError::Unreachable`], [`FleetError::TimedOut`], [`FleetError::Authentication`] and
    /// [`FleetError::Tls`] for the connection; [`FleetError::SchemaTooNew`] and
    /// [`FleetError::Migration`] for the schema; [`FleetError::WrongFleetKey`].
    pub async fn connect(settings: &FleetSettings) -> Result<Self, FleetError> {
        let link = Link::new(settings)?;
        let fleet = Self {
            inner: Arc::new(Inner {
                link,
                node: settings.node.clone(),
                key: settings.fleet_key.clone(),
                conn: Mutex::new(None),
            }),
        };
        fleet
            .run(async |client, link| migrate::migrate(client, link).await)
            .await?;
        fleet.check_key().await?;
        fleet.heartbeat().await?;
        tracing::debug!(node = %fleet.inner.node, target_db = %fleet.inner.link.target, "connected to the fleet's database");
        Ok(fleet)
    }

    /// This node's name.
    #[must_use]
    pub fn node(&self) -> &str {
        &self.inner.node
    }

    /// Run `op` on the connection, reconnecting first when it is missing or broken, bounded by
    /// the operation timeout. A connection that failed or timed out is dropped.
    async fn run<T>(
        &self,
        op: impl AsyncFnOnce(&mut Client, &Link) -> Result<T, FleetError>,
    ) -> Result<T, FleetError> {
        let link = &self.inner.link;
        let mut slot = self.inner.conn.lock().await;
        let attempt = async {
            let mut conn = match slot.take() {
                Some(conn) if !conn.client.is_closed() => conn,
                _ => link.open().await?,
            };
            let result = op(&mut conn.client, link).await;
            if !matches!(&result, Err(error) if error.is_unavailable()) {
                *slot = Some(conn);
            }
            result
        };
        match tokio::time::timeout(link.operation_timeout, attempt).await {
            Ok(result) => result,
            Err(_) => Err(FleetError::TimedOut {
                target: link.target.clone(),
                after: link.operation_timeout,
            }),
        }
    }

    async fn check_key(&self) -> Result<(), FleetError> {
        let check = self.inner.key.seal_check()?;
        let stored: Vec<u8> = self
            .run(async |client, link| {
                client
                    .execute(
                        "INSERT INTO certkeeper_key_check (id, sealed) VALUES (1, $1) \
                         ON CONFLICT (id) DO NOTHING",
                        &[&check],
                    )
                    .await
                    .map_err(|e| link.classify(e, "write the fleet key check"))?;
                let row = client
                    .query_one("SELECT sealed FROM certkeeper_key_check WHERE id = 1", &[])
                    .await
                    .map_err(|e| link.classify(e, "read the fleet key check"))?;
                Ok(row.get(0))
            })
            .await?;
        if self.inner.key.matches_check(&stored) {
            Ok(())
        } else {
            Err(FleetError::WrongFleetKey)
        }
    }

    /// Record that this node is alive (`last_seen` from the database's clock).
    ///
    /// # Errors
    /// When the database is unavailable or refuses.
    pub async fn heartbeat(&self) -> Result<(), FleetError> {
        let node = &self.inner.node;
        self.run(async |client, link| {
            client
                .execute(
                    "INSERT INTO certkeeper_nodes (name) VALUES ($1) \
                     ON CONFLICT (name) DO UPDATE SET last_seen = now()",
                    &[node],
                )
                .await
                .map_err(|e| link.classify(e, "register the node"))?;
            Ok(())
        })
        .await
    }

    /// The fleet's nodes, by name.
    ///
    /// # Errors
    /// When the database is unavailable or refuses.
    pub async fn nodes(&self) -> Result<Vec<NodeInfo>, FleetError> {
        self.run(async |client, link| {
            let rows = client
                .query(
                    "SELECT name, first_seen, last_seen FROM certkeeper_nodes ORDER BY name",
                    &[],
                )
                .await
                .map_err(|e| link.classify(e, "list the nodes"))?;
            Ok(rows
                .iter()
                .map(|row| NodeInfo {
                    name: row.get(0),
                    first_seen: row.get(1),
                    last_seen: row.get(2),
                })
                .collect())
        })
        .await
    }

    /// Take the lineage's lease for `ttl` if it is free or expired (then with the next
    /// generation). `None` when another node (or this one) holds it and it has not expired.
    ///
    /// # Errors
    /// When the database is unavailable or refuses.
    pub async fn acquire(&self, lineage: &str, ttl: Duration) -> Result<Option<Lease>, FleetError> {
        let node = &self.inner.node;
        let seconds = ttl.as_secs_f64();
        self.run(async |client, link| {
            let row = client
                .query_opt(
                    "INSERT INTO certkeeper_leases AS l (lineage, owner, generation, expires_at) \
                     VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3)) \
                     ON CONFLICT (lineage) DO UPDATE \
                       SET owner = excluded.owner, generation = l.generation + 1, \
                           expires_at = excluded.expires_at, acquired_at = clock_timestamp() \
                       WHERE l.expires_at <= clock_timestamp() \
                     RETURNING lineage, owner, generation, expires_at",
                    &[&lineage, node, &seconds],
                )
                .await
                .map_err(|e| link.classify(e, "acquire a lease"))?;
            Ok(row.as_ref().map(lease_from_row))
        })
        .await
    }

    /// Extend the lease by `ttl` from now (database clock), if it is still this generation.
    /// A lease that expired but was not taken over can still be renewed: nobody else wrote.
    ///
    /// # Errors
    /// [`FleetError::LeaseLost`] when another generation holds the lineage.
    pub async fn renew(&self, lease: &Lease, ttl: Duration) -> Result<Lease, FleetError> {
        let seconds = ttl.as_secs_f64();
        let row = self
            .run(async |client, link| {
                client
                    .query_opt(
                        "UPDATE certkeeper_leases \
                         SET expires_at = clock_timestamp() + make_interval(secs => $4) \
                         WHERE lineage = $1 AND owner = $2 AND generation = $3 \
                         RETURNING lineage, owner, generation, expires_at",
                        &[&lease.lineage, &lease.owner, &lease.generation, &seconds],
                    )
                    .await
                    .map_err(|e| link.classify(e, "renew a lease"))
            })
            .await?;
        row.as_ref()
            .map(lease_from_row)
            .ok_or_else(|| FleetError::LeaseLost {
                lineage: lease.lineage.clone(),
                generation: lease.generation,
            })
    }

    /// Give the lease up now; the next acquirer gets the next generation.
    ///
    /// # Errors
    /// [`FleetError::LeaseLost`] when it was no longer this node's.
    pub async fn release(&self, lease: &Lease) -> Result<(), FleetError> {
        let released = self
            .run(async |client, link| {
                client
                    .execute(
                        "UPDATE certkeeper_leases SET expires_at = clock_timestamp() \
                         WHERE lineage = $1 AND owner = $2 AND generation = $3",
                        &[&lease.lineage, &lease.owner, &lease.generation],
                    )
                    .await
                    .map_err(|e| link.classify(e, "release a lease"))
            })
            .await?;
        if released == 1 {
            Ok(())
        } else {
            Err(FleetError::LeaseLost {
                lineage: lease.lineage.clone(),
                generation: lease.generation,
            })
        }
    }

    /// All leases, for `cluster status`.
    ///
    /// # Errors
    /// When the database is unavailable or refuses.
    pub async fn leases(&self) -> Result<Vec<Lease>, FleetError> {
        self.run(async |client, link| {
            let rows = client
                .query(
                    "SELECT lineage, owner, generation, expires_at FROM certkeeper_leases \
                     ORDER BY lineage",
                    &[],
                )
                .await
                .map_err(|e| link.classify(e, "list the leases"))?;
            Ok(rows.iter().map(lease_from_row).collect())
        })
        .await
    }

    /// Store a new version of the lease's lineage (its key sealed), notify the other nodes, and
    /// return its version number. Fenced.
    ///
    /// # Errors
    /// [`FleetError::Fenced`] or [`FleetError::LeaseExpired`] when the lease is no longer good.
    pub async fn publish_version(
        &self,
        lease: &Lease,
        record: &VersionRecord,
    ) -> Result<i64, FleetError> {
        let key = &self.inner.key;
        self.run(async |client, link| {
            let tx = begin(client, link).await?;
            check_fence(&tx, link, lease).await?;
            let row = tx
                .query_one(
                    "SELECT coalesce(max(version), 0) + 1 FROM certkeeper_versions \
                     WHERE lineage = $1",
                    &[&lease.lineage],
                )
                .await
                .map_err(|e| link.classify(e, "number a version"))?;
            let version: i64 = row.get(0);
            let sealed = key.seal(
                &key::version_key_aad(&lease.lineage, version),
                record.key_pem.expose(),
                "a private key",
            )?;
            tx.execute(
                "INSERT INTO certkeeper_versions (lineage, version, serial, cert_pem, chain_pem, \
                   fullchain_pem, key_sealed, not_after, published_by, generation) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
                &[
                    &lease.lineage,
                    &version,
                    &record.serial,
                    &record.cert_pem,
                    &record.chain_pem,
                    &record.fullchain_pem,
                    &sealed,
                    &record.not_after,
                    &lease.owner,
                    &lease.generation,
                ],
            )
            .await
            .map_err(|e| link.classify(e, "store a version"))?;
            let payload = listen::version_payload(&lease.lineage, version);
            notify(&tx, link, VERSION_CHANNEL, &payload).await?;
            commit(tx, link).await?;
            Ok(version)
        })
        .await
    }

    /// The newest version of a lineage, its key opened.
    ///
    /// # Errors
    /// [`FleetError::Decrypt`] when the key does not open; else when the database is
    /// unavailable or refuses.
    pub async fn latest_version(&self, lineage: &str) -> Result<Option<StoredVersion>, FleetError> {
        let rows = self
            .run(async |client, link| {
                client
                    .query(
                        &format!(
                            "{VERSION_COLUMNS} WHERE lineage = $1 ORDER BY version DESC LIMIT 1"
                        ),
                        &[&lineage],
                    )
                    .await
                    .map_err(|e| link.classify(e, "read a version"))
            })
            .await?;
        rows.first()
            .map(|row| self.version_from_row(row))
            .transpose()
    }

    /// The versions of a lineage newer than `after`, oldest first (for a node catching up).
    ///
    /// # Errors
    /// As [`Fleet::latest_version`].
    pub async fn versions_since(
        &self,
        lineage: &str,
        after: i64,
    ) -> Result<Vec<StoredVersion>, FleetError> {
        let rows = self
            .run(async |client, link| {
                client
                    .query(
                        &format!(
                            "{VERSION_COLUMNS} WHERE lineage = $1 AND version > $2 ORDER BY version"
                        ),
                        &[&lineage, &after],
                    )
                    .await
                    .map_err(|e| link.classify(e, "read versions"))
            })
            .await?;
        rows.iter().map(|row| self.version_from_row(row)).collect()
    }

    /// Every lineage's newest version number and serial (the periodic sync check).
    ///
    /// # Errors
    /// When the database is unavailable or refuses.
    pub async fn version_heads(&self) -> Result<Vec<VersionHead>, FleetError> {
        self.run(async |client, link| {
            let rows = client
                .query(
                    "SELECT DISTINCT ON (lineage) lineage, version, serial FROM certkeeper_versions \
                     ORDER BY lineage, version DESC",
                    &[],
                )
                .await
                .map_err(|e| link.classify(e, "read the version heads"))?;
            Ok(rows
                .iter()
                .map(|row| VersionHead {
                    lineage: row.get(0),
                    version: row.get(1),
                    serial: row.get(2),
                })
                .collect())
        })
        .await
    }

    fn version_from_row(&self, row: &Row) -> Result<StoredVersion, FleetError> {
        let lineage: String = row.get(0);
        let version: i64 = row.get(1);
        let sealed: Vec<u8> = row.get(6);
        let key_pem = self.inner.key.open(
            &key::version_key_aad(&lineage, version),
            &sealed,
            &format!("the private key of {lineage} version {version}"),
        )?;
        Ok(StoredVersion {
            record: VersionRecord {
                serial: row.get(2),
                cert_pem: row.get(3),
                chain_pem: row.get(4),
                fullchain_pem: row.get(5),
                key_pem,
                not_after: row.get(7),
            },
            lineage,
            version,
            published_by: row.get(8),
            generation: row.get(9),
            published_at: row.get(10),
        })
    }

    /// Replace the lineage's renewal state (a JSON document the engine owns). Fenced.
    ///
    /// # Errors
    /// [`FleetError::Fenced`] or [`FleetError::LeaseExpired`] when the lease is no longer good.
    pub async fn save_state(
        &self,
        lease: &Lease,
        state: &serde_json::Value,
    ) -> Result<(), FleetError> {
        self.run(async |client, link| {
            let tx = begin(client, link).await?;
            check_fence(&tx, link, lease).await?;
            tx.execute(
                "INSERT INTO certkeeper_state (lineage, state, updated_by, generation) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (lineage) DO UPDATE SET state = excluded.state, \
                   updated_by = excluded.updated_by, generation = excluded.generation, \
                   updated_at = now()",
                &[&lease.lineage, state, &lease.owner, &lease.generation],
            )
            .await
            .map_err(|e| link.classify(e, "save a lineage's state"))?;
            commit(tx, link).await
        })
        .await
    }

    /// The lineage's renewal state, if any was saved.
    ///
    /// # Errors
    /// When the database is unavailable or refuses.
    pub async fn state(&self, lineage: &str) -> Result<Option<serde_json::Value>, FleetError> {
        self.run(async |client, link| {
            let row = client
                .query_opt(
                    "SELECT state FROM certkeeper_state WHERE lineage = $1",
                    &[&lineage],
                )
                .await
                .map_err(|e| link.classify(e, "read a lineage's state"))?;
            Ok(row.map(|row| row.get(0)))
        })
        .await
    }

    /// Record the lineage's order in flight (replacing any older one), its key sealed. Fenced.
    ///
    /// # Errors
    /// [`FleetError::Fenced`] or [`FleetError::LeaseExpired`] when the lease is no longer good.
    pub async fn record_order(&self, lease: &Lease, order: &OrderRecord) -> Result<(), FleetError> {
        let sealed = self.inner.key.seal(
            &key::order_key_aad(&lease.lineage, &order.order_url),
            order.key_pem.expose(),
            "an order's private key",
        )?;
        self.run(async |client, link| {
            let tx = begin(client, link).await?;
            check_fence(&tx, link, lease).await?;
            tx.execute(
                "INSERT INTO certkeeper_orders \
                   (lineage, order_url, directory_url, key_sealed, owner, generation) \
                 VALUES ($1, $2, $3, $4, $5, $6) \
                 ON CONFLICT (lineage) DO UPDATE SET order_url = excluded.order_url, \
                   directory_url = excluded.directory_url, key_sealed = excluded.key_sealed, \
                   owner = excluded.owner, generation = excluded.generation, recorded_at = now()",
                &[
                    &lease.lineage,
                    &order.order_url,
                    &order.directory_url,
                    &sealed,
                    &lease.owner,
                    &lease.generation,
                ],
            )
            .await
            .map_err(|e| link.classify(e, "record an order"))?;
            commit(tx, link).await
        })
        .await
    }

    /// Forget the lineage's order in flight (finished, or dead at the CA) and the HTTP-01 key
    /// authorisations published for it, whichever node published them (one that died never
    /// withdraws its own); the nodes are told to stop serving them. Fenced.
    ///
    /// # Errors
    /// [`FleetError::Fenced`] or [`FleetError::LeaseExpired`] when the lease is no longer good.
    pub async fn clear_order(&self, lease: &Lease) -> Result<(), FleetError> {
        self.run(async |client, link| {
            let tx = begin(client, link).await?;
            check_fence(&tx, link, lease).await?;
            tx.execute(
                "DELETE FROM certkeeper_orders WHERE lineage = $1",
                &[&lease.lineage],
            )
            .await
            .map_err(|e| link.classify(e, "clear an order"))?;
            let withdrawn = tx
                .query(
                    "DELETE FROM certkeeper_challenges WHERE lineage = $1 RETURNING token",
                    &[&lease.lineage],
                )
                .await
                .map_err(|e| link.classify(e, "clear an order's challenges"))?;
            for row in &withdrawn {
                let token: String = row.get(0);
                let payload = listen::challenge_withdrawn_payload(&token);
                notify(&tx, link, CHALLENGE_CHANNEL, &payload).await?;
            }
            commit(tx, link).await
        })
        .await
    }

    /// The lineage's order in flight, its key opened, for the node that takes over its lease.
    ///
    /// # Errors
    /// [`FleetError::Decrypt`] when its key does not open; else when the database is
    /// unavailable or refuses.
    pub async fn order_in_flight(
        &self,
        lineage: &str,
    ) -> Result<Option<OrderInFlight>, FleetError> {
        let row = self
            .run(async |client, link| {
                client
                    .query_opt(
                        "SELECT lineage, order_url, directory_url, key_sealed, owner, generation, \
                           recorded_at \
                         FROM certkeeper_orders WHERE lineage = $1",
                        &[&lineage],
                    )
                    .await
                    .map_err(|e| link.classify(e, "read an order"))
            })
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let order_url: String = row.get(1);
        let sealed: Vec<u8> = row.get(3);
        let key_pem = self.inner.key.open(
            &key::order_key_aad(lineage, &order_url),
            &sealed,
            &format!("the key of {lineage}'s order in flight"),
        )?;
        Ok(Some(OrderInFlight {
            lineage: row.get(0),
            order: OrderRecord {
                order_url,
                directory_url: row.get(2),
                key_pem,
            },
            owner: row.get(4),
            generation: row.get(5),
            recorded_at: row.get(6),
        }))
    }

    /// Store the fleet's ACME account for a CA (and EAB credential), sealed; `ca_key` names
    /// both, e.g. the directory URL and the EAB key id. Replaces an older one.
    ///
    /// # Errors
    /// When the database is unavailable or refuses.
    pub async fn save_account(&self, ca_key: &str, account: &Secret) -> Result<(), FleetError> {
        let sealed = self.inner.key.seal(
            &key::account_aad(ca_key),
            account.expose(),
            "an ACME account",
        )?;
        self.run(async |client, link| {
            client
                .execute(
                    "INSERT INTO certkeeper_accounts (ca_key, sealed) VALUES ($1, $2) \
                     ON CONFLICT (ca_key) DO UPDATE SET sealed = excluded.sealed, updated_at = now()",
                    &[&ca_key, &sealed],
                )
                .await
                .map_err(|e| link.classify(e, "save an account"))?;
            Ok(())
        })
        .await
    }

    /// The fleet's ACME account for a CA, opened.
    ///
    /// # Errors
    /// [`FleetError::Decrypt`] when it does not open; else when the database is unavailable.
    pub async fn account(&self, ca_key: &str) -> Result<Option<Secret>, FleetError> {
        let sealed: Option<Vec<u8>> = self
            .run(async |client, link| {
                let row = client
                    .query_opt(
                        "SELECT sealed FROM certkeeper_accounts WHERE ca_key = $1",
                        &[&ca_key],
                    )
                    .await
                    .map_err(|e| link.classify(e, "read an account"))?;
                Ok(row.map(|row| row.get(0)))
            })
            .await?;
        sealed
            .map(|sealed| {
                self.inner.key.open(
                    &key::account_aad(ca_key),
                    &sealed,
                    &format!("the ACME account for {ca_key}"),
                )
            })
            .transpose()
    }

    /// Publish an HTTP-01 key authorisation for every node to serve, and notify them. Fenced.
    ///
    /// # Errors
    /// [`FleetError::Fenced`] or [`FleetError::LeaseExpired`] when the lease is no longer good.
    pub async fn publish_challenge(
        &self,
        lease: &Lease,
        token: &str,
        key_authorization: &str,
    ) -> Result<(), FleetError> {
        self.run(async |client, link| {
            let tx = begin(client, link).await?;
            check_fence(&tx, link, lease).await?;
            tx.execute(
                "INSERT INTO certkeeper_challenges (token, key_authorization, lineage, owner) \
                 VALUES ($1, $2, $3, $4) \
                 ON CONFLICT (token) DO UPDATE SET key_authorization = excluded.key_authorization, \
                   lineage = excluded.lineage, owner = excluded.owner, published_at = now()",
                &[&token, &key_authorization, &lease.lineage, &lease.owner],
            )
            .await
            .map_err(|e| link.classify(e, "publish a challenge"))?;
            let payload =
                listen::challenge_published_payload(token, key_authorization, &lease.lineage);
            notify(&tx, link, CHALLENGE_CHANNEL, &payload).await?;
            commit(tx, link).await
        })
        .await
    }

    /// Withdraw an HTTP-01 key authorisation this node published, and notify. Not fenced, but
    /// a node withdraws only its own: once another node carrying the order on has published
    /// the same token, the row is that node's, and a late cleanup here leaves it alone.
    ///
    /// # Errors
    /// When the database is unavailable or refuses.
    pub async fn withdraw_challenge(&self, token: &str) -> Result<(), FleetError> {
        let node = self.node();
        self.run(async |client, link| {
            let tx = begin(client, link).await?;
            let deleted = tx
                .execute(
                    "DELETE FROM certkeeper_challenges WHERE token = $1 AND owner = $2",
                    &[&token, &node],
                )
                .await
                .map_err(|e| link.classify(e, "withdraw a challenge"))?;
            if deleted > 0 {
                notify(
                    &tx,
                    link,
                    CHALLENGE_CHANNEL,
                    &listen::challenge_withdrawn_payload(token),
                )
                .await?;
            }
            commit(tx, link).await
        })
        .await
    }

    /// Every published HTTP-01 key authorisation (the snapshot to serve from memory).
    ///
    /// # Errors
    /// When the database is unavailable or refuses.
    pub async fn challenges(&self) -> Result<Vec<Http01Challenge>, FleetError> {
        self.run(async |client, link| {
            let rows = client
                .query(
                    "SELECT token, key_authorization, lineage FROM certkeeper_challenges \
                     ORDER BY token",
                    &[],
                )
                .await
                .map_err(|e| link.classify(e, "read the challenges"))?;
            Ok(rows
                .iter()
                .map(|row| Http01Challenge {
                    token: row.get(0),
                    key_authorization: row.get(1),
                    lineage: row.get(2),
                })
                .collect())
        })
        .await
    }

    /// Start listening for the fleet's notifications on a dedicated connection that reconnects
    /// by itself until `shutdown` is cancelled or the listener is dropped.
    #[must_use]
    pub fn listen(&self, shutdown: tokio_util::sync::CancellationToken) -> FleetListener {
        FleetListener::spawn(self.inner.link.clone(), shutdown)
    }
}

const VERSION_COLUMNS: &str = "SELECT lineage, version, serial, cert_pem, chain_pem, fullchain_pem, \
     key_sealed, not_after, published_by, generation, published_at FROM certkeeper_versions";

fn lease_from_row(row: &Row) -> Lease {
    Lease {
        lineage: row.get(0),
        owner: row.get(1),
        generation: row.get(2),
        expires_at: row.get(3),
    }
}

async fn begin<'a>(client: &'a mut Client, link: &Link) -> Result<Transaction<'a>, FleetError> {
    client
        .transaction()
        .await
        .map_err(|e| link.classify(e, "begin a transaction"))
}

async fn commit(tx: Transaction<'_>, link: &Link) -> Result<(), FleetError> {
    tx.commit()
        .await
        .map_err(|e| link.classify(e, "commit a transaction"))
}

async fn notify(
    tx: &Transaction<'_>,
    link: &Link,
    channel: &str,
    payload: &str,
) -> Result<(), FleetError> {
    tx.execute("SELECT pg_notify($1, $2)", &[&channel, &payload])
        .await
        .map_err(|e| link.classify(e, "send a notification"))?;
    Ok(())
}

/// The fencing check: lock the lease row for the rest of the transaction and make sure the
/// caller's generation is current and unexpired (database clock).
async fn check_fence(tx: &Transaction<'_>, link: &Link, lease: &Lease) -> Result<(), FleetError> {
    let row = tx
        .query_opt(
            "SELECT owner, generation, expires_at > clock_timestamp() FROM certkeeper_leases \
             WHERE lineage = $1 FOR UPDATE",
            &[&lease.lineage],
        )
        .await
        .map_err(|e| link.classify(e, "check a lease"))?;
    let Some(row) = row else {
        return Err(FleetError::LeaseLost {
            lineage: lease.lineage.clone(),
            generation: lease.generation,
        });
    };
    let owner: String = row.get(0);
    let current: i64 = row.get(1);
    let live: bool = row.get(2);
    if current != lease.generation || owner != lease.owner {
        return Err(FleetError::Fenced {
            lineage: lease.lineage.clone(),
            held: lease.generation,
            current,
            owner,
        });
    }
    if !live {
        return Err(FleetError::LeaseExpired {
            lineage: lease.lineage.clone(),
            generation: lease.generation,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_debug_shows_no_secret() {
        let mut settings = FleetSettings::new(
            "postgres://fleet:hunter2@db.example:5432/certkeeper",
            "node-1",
            FleetKey::from_bytes([1; 32]),
        );
        settings.password = Some(Secret::new(b"s3cret-password".to_vec()));
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
        assert!(!printed.contains("s3cret"), "{printed}");
        assert!(printed.contains("db.example:5432/certkeeper"), "{printed}");
        settings.url = "postgres://db.example/certkeeper?sslmode=require&password=hunter2".into();
        let printed = format!("{settings:?}");
        assert!(!printed.contains("hunter2"), "{printed}");
    }
}
