//! Creating and migrating the store's tables, versioned, under an advisory
//! lock.
//!
//! # Versions
//!
//! `{prefix}schema_version` holds one row per migration applied. A
//! migration runs when the highest version there is below the newest this
//! build knows ([`LATEST`]); a table at a version this build does not know
//! is refused ([`MigrateError::NewerSchema`]) rather than read with the
//! wrong layout. Each migration is an `.sql` file in `sql/migrations/`,
//! applied in order, and never edited once released: a change is a new
//! file.
//!
//! # Concurrency
//!
//! Several gateways may start at once against an empty database. Each
//! migration runs in one transaction that first takes a transaction-level
//! advisory lock derived from the schema and prefix, so migrations of the
//! same tables run one after another: the first creates everything, the
//! others find it done. (`CREATE ... IF NOT EXISTS` alone is not safe
//! against a concurrent `CREATE`.) DDL is transactional in PostgreSQL, so a
//! migration that fails or is cut off leaves nothing behind.

use std::time::Duration;

use crate::conn::Conn;
use crate::error::{Failure, MigrateError};
use crate::sql::Names;

/// One step of the schema's history.
struct Migration {
    version: u32,
    description: &'static str,
    sql: &'static str,
}

/// Every migration, oldest first. Versions are 1, 2, 3, ... in order.
const MIGRATIONS: &[Migration] = &[Migration {
    version: 1,
    description: "records table, fence sequence, expiry index",
    sql: include_str!("sql/migrations/0001_records.sql"),
}];

/// The schema version this build writes and reads.
pub(crate) const LATEST: u32 = MIGRATIONS.len() as u32;

/// Brings the tables named by `names` to [`LATEST`], within `budget` (the
/// server-side bound on each statement, the advisory lock wait included).
/// Returns the version the tables are at.
pub(crate) async fn migrate(
    conn: &mut Conn,
    names: &Names,
    budget: Duration,
) -> Result<u32, MigrateError> {
    match run(conn, names, budget).await {
        Ok(version) => Ok(version),
        Err(Failure::Schema(e)) => {
            // A refusal (a newer version): the server is fine, so the
            // transaction is rolled back and the connection kept. Should
            // the rollback fail, the connection is closed instead.
            if conn.end_transaction("ROLLBACK").await.is_err() {
                conn.discard();
            }
            Err(e)
        }
        Err(other) => {
            // The connection may be inside the failed transaction, or cut
            // off; closing it rolls back, and it never goes back to the
            // pool half-done. (A migration whose future is dropped midway
            // is closed the same way, by the guard's `Drop`.)
            conn.discard();
            Err(MigrateError::Unavailable(Box::new(other)))
        }
    }
}

async fn run(conn: &mut Conn, names: &Names, budget: Duration) -> Result<u32, Failure> {
    conn.begin_transaction(&format!(
        "BEGIN; SET LOCAL statement_timeout = {}",
        budget.as_millis().max(1)
    ))
    .await?;
    conn.execute("SELECT pg_advisory_xact_lock($1)", &[&lock_key(names)])
        .await?;

    let schema_exists = conn
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_namespace WHERE nspname = $1)",
            &[&names.schema_plain],
        )
        .await?
        .try_get::<_, bool>(0)?;
    if !schema_exists {
        // Only when missing: `CREATE SCHEMA` needs the database's CREATE
        // privilege even with IF NOT EXISTS, which a gateway's role may
        // rightly lack when an operator created the schema for it.
        conn.batch_execute(&names.bind("CREATE SCHEMA IF NOT EXISTS {schema}"))
            .await?;
    }
    let versions_exist = conn
        .query_one("SELECT to_regclass($1) IS NOT NULL", &[&names.versions])
        .await?
        .try_get::<_, bool>(0)?;
    if !versions_exist {
        // Likewise: `CREATE TABLE IF NOT EXISTS` checks the schema's CREATE
        // privilege before it looks, so tables made ahead of time by an
        // operator's role are only read, never re-created.
        conn.batch_execute(&names.bind(include_str!("sql/versions.sql")))
            .await?;
    }

    let found: i32 = conn
        .query_one(
            &names.bind("SELECT COALESCE(max(version), 0) FROM {versions}"),
            &[],
        )
        .await?
        .try_get(0)?;
    let found = u32::try_from(found).unwrap_or(0);
    if found > LATEST {
        return Err(Failure::Schema(MigrateError::NewerSchema {
            versions: names.versions.clone(),
            found,
            supported: LATEST,
        }));
    }
    for migration in MIGRATIONS.iter().filter(|m| m.version > found) {
        tracing::info!(
            table = %names.records,
            version = migration.version,
            description = migration.description,
            "migrating the PostgreSQL store"
        );
        conn.batch_execute(&names.bind(migration.sql)).await?;
        let version = i32::try_from(migration.version).unwrap_or(i32::MAX);
        conn.execute(
            &names.bind("INSERT INTO {versions} (version, description) VALUES ($1, $2)"),
            &[&version, &migration.description],
        )
        .await?;
    }
    conn.end_transaction("COMMIT").await?;
    Ok(LATEST)
}

/// The advisory lock key of one store's tables: FNV-1a over a fixed tag,
/// the schema and the prefix. Stable across builds and platforms (unlike
/// std's hasher), so gateways of different versions take the same lock.
fn lock_key(names: &Names) -> i64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    let parts = [
        "idem-store-postgres/migrate",
        &names.schema_plain,
        &names.prefix,
    ];
    for part in parts {
        for byte in part.bytes().chain([0]) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    i64::from_ne_bytes(hash.to_ne_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::PostgresOptions;

    #[test]
    fn versions_are_consecutive() {
        for (i, m) in MIGRATIONS.iter().enumerate() {
            assert_eq!(m.version as usize, i + 1, "{}", m.description);
        }
    }

    #[test]
    fn lock_keys_differ_per_store() {
        let names = |schema: &str, prefix: &str| {
            let o = PostgresOptions {
                schema: schema.to_owned(),
                table_prefix: prefix.to_owned(),
                ..PostgresOptions::default()
            };
            Names::new(&o)
        };
        let a = lock_key(&names("public", "idem_"));
        assert_eq!(a, lock_key(&names("public", "idem_")));
        assert_ne!(a, lock_key(&names("public", "idem2_")));
        // The separator keeps "ab" + "c" apart from "a" + "bc".
        assert_ne!(lock_key(&names("ab", "c")), lock_key(&names("a", "bc")));
    }
}
