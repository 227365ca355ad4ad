//! The embedded schema migrations, applied in order at connect.
//!
//! All of it runs in one transaction that first takes `pg_advisory_xact_lock`: a second node
//! starting at the same moment waits for the first to commit, then finds the schema current.
//! PostgreSQL's DDL is transactional, so a failed migration leaves nothing half-applied.

use tokio_postgres::Client;

use crate::FleetError;
use crate::link::Link;

/// The migrations, in order; the position plus one is the version.
const MIGRATIONS: &[&str] = &[include_str!("../migrations/0001_init.sql")];

/// The newest schema version this build knows.
#[expect(
    clippy::cast_possible_truncation,
    clippy::cast_possible_wrap,
    reason = "a handful of migrations"
)]
pub const SCHEMA_VERSION: i32 = MIGRATIONS.len() as i32;

/// The advisory lock's key: "ckfleet1" in ASCII, unlikely to collide with another application's.
const MIGRATION_LOCK: i64 = 0x636b_666c_6565_7431;

pub(crate) async fn migrate(client: &mut Client, link: &Link) -> Result<(), FleetError> {
    let tx = client
        .transaction()
        .await
        .map_err(|e| link.classify(e, "begin the migration"))?;
    tx.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])
        .await
        .map_err(|e| link.classify(e, "take the migration lock"))?;
    tx.batch_execute(
        "CREATE TABLE IF NOT EXISTS certkeeper_schema (\
           version integer PRIMARY KEY, \
           applied_at timestamptz NOT NULL DEFAULT now())",
    )
    .await
    .map_err(|e| link.classify(e, "create the schema version table"))?;
    let found: i32 = tx
        .query_one(
            "SELECT coalesce(max(version), 0) FROM certkeeper_schema",
            &[],
        )
        .await
        .map_err(|e| link.classify(e, "read the schema version"))?
        .get(0);
    if found > SCHEMA_VERSION {
        return Err(FleetError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    for (version, sql) in (1..).zip(MIGRATIONS) {
        if version <= found {
            continue;
        }
        tx.batch_execute(sql)
            .await
            .map_err(|source| FleetError::Migration { version, source })?;
        tx.execute(
            "INSERT INTO certkeeper_schema (version) VALUES ($1)",
            &[&version],
        )
        .await
        .map_err(|source| FleetError::Migration { version, source })?;
        tracing::info!(version, "fleet schema migrated");
    }
    tx.commit()
        .await
        .map_err(|e| link.classify(e, "commit the migration"))
}
