//! `PostgresOptions`: where the store keeps its tables, how many
//! connections it opens, and how long anything may take.
//!
//! Every wait is bounded, so that a store that cannot answer becomes a
//! `StoreError::Unavailable` (the gateway's `503`) within a known time
//! instead of a hung request. The defaults are chosen for a gateway in front
//! of a payments API: a second or two, then fail closed.

use std::time::Duration;

use crate::error::ConnectError;

/// How the store connects and where it keeps its records.
///
/// Build it from [`PostgresOptions::default`] and change the fields you
/// need; the struct is `#[non_exhaustive]` so that later releases can add
/// settings without breaking callers.
///
/// ```
/// use std::time::Duration;
/// use idem_store_postgres::PostgresOptions;
///
/// let mut options = PostgresOptions::default();
/// options.schema = "payments".to_owned();
/// options.pool_size = 8;
/// options.operation_timeout = Duration::from_secs(1);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct PostgresOptions {
    /// The PostgreSQL schema that holds the tables. Created by the migration
    /// if it does not exist. Lowercase ASCII letters, digits and `_`, not
    /// starting with a digit. Default `public`.
    pub schema: String,
    /// Prepended to every object the store creates: `{prefix}records`,
    /// `{prefix}fence_seq`, `{prefix}schema_version`. Lowercase ASCII
    /// letters, digits and `_`. Default `idem_`. Two stores with different
    /// prefixes (or schemas) share nothing, which is how tests isolate
    /// themselves.
    pub table_prefix: String,
    /// The most connections the pool opens. Default 16.
    ///
    /// Claims and completions use at most `batch_lanes` connections each
    /// (see below); the rest serve `release`, `get`, `delete`, purges and
    /// listings, and the batches' rare re-runs.
    pub pool_size: usize,
    /// How many batches of claims, and separately of completions, may be
    /// in flight at once, each on one pooled connection. Concurrent claims
    /// (and completions) are gathered into one statement and one commit
    /// each: an operation that arrives while this many batches run waits
    /// for the next batch, which takes everything that waits (see
    /// `max_batch`). A claim that arrives at a quiet moment is sent at
    /// once, alone. Default 2: on a 2-core machine one lane made the largest
    /// batches and the most requests per second, and a second keeps claims
    /// flowing while one connection hangs until its deadline.
    pub batch_lanes: usize,
    /// The most claims (or completions) one statement carries. 1 turns the
    /// batching off: every operation is its own statement, at most
    /// `batch_lanes` at once. Default 64, at most 1024.
    pub max_batch: usize,
    /// How long to wait for a free pooled connection when all are busy.
    /// Default 1 s.
    pub pool_wait_timeout: Duration,
    /// How long opening one new connection (TCP, startup, authentication)
    /// may take. Default 1 s.
    pub connect_timeout: Duration,
    /// The server-side `statement_timeout` of every connection: PostgreSQL
    /// cancels a statement that runs longer, for instance one stuck behind a
    /// lock. Default 1 s.
    pub statement_timeout: Duration,
    /// The bound on one whole store operation as the caller sees it: pool
    /// wait, connecting, and every round trip. When it passes, the operation
    /// returns `Unavailable` and its connection is discarded (a connection
    /// that stopped answering is not trusted again). Default 2 s.
    pub operation_timeout: Duration,
    /// The bound on an explicit [`migrate`](crate::PostgresStore::migrate),
    /// which may wait for another gateway's migration to finish. Default
    /// 30 s. (The migration a first operation runs by itself is bounded by
    /// `operation_timeout` instead.)
    pub migration_timeout: Duration,
    /// The `application_name` the connections report, so that operators can
    /// tell idem's sessions apart in `pg_stat_activity`, unless the URL
    /// names one. Default `idem`.
    pub application_name: String,
}

impl Default for PostgresOptions {
    fn default() -> Self {
        Self {
            schema: "public".to_owned(),
            table_prefix: "idem_".to_owned(),
            pool_size: 16,
            batch_lanes: 2,
            max_batch: 64,
            pool_wait_timeout: Duration::from_secs(1),
            connect_timeout: Duration::from_secs(1),
            statement_timeout: Duration::from_secs(1),
            operation_timeout: Duration::from_secs(2),
            migration_timeout: Duration::from_secs(30),
            application_name: "idem".to_owned(),
        }
    }
}

/// The longest name PostgreSQL keeps (`NAMEDATALEN - 1`); longer names are
/// silently truncated, which could make two prefixes collide.
const MAX_IDENTIFIER: usize = 63;

/// The largest batch allowed: a batch's statement holds the row locks of
/// all its members until it commits, so a huge one would hold up other
/// gateways' claims on those keys for longer than it saves.
const MAX_BATCH: usize = 1024;

/// The longest object name the store derives from the prefix.
const LONGEST_SUFFIX: &str = "records_expires_at_idx";

impl PostgresOptions {
    /// Checks every setting, so that a bad one is refused at construction
    /// with its name rather than as an SQL error on the first request.
    pub(crate) fn validate(&self) -> Result<(), ConnectError> {
        let invalid =
            |name: &'static str, reason: String| Err(ConnectError::InvalidOption { name, reason });
        if !is_identifier(&self.schema, false) || self.schema.len() > MAX_IDENTIFIER {
            return invalid(
                "schema",
                format!(
                    "{:?} must be 1 to {MAX_IDENTIFIER} lowercase ASCII letters, digits or '_', \
                     not starting with a digit",
                    self.schema
                ),
            );
        }
        if !is_identifier(&self.table_prefix, true)
            || self.table_prefix.len() + LONGEST_SUFFIX.len() > MAX_IDENTIFIER
        {
            return invalid(
                "table_prefix",
                format!(
                    "{:?} must be at most {} lowercase ASCII letters, digits or '_'",
                    self.table_prefix,
                    MAX_IDENTIFIER - LONGEST_SUFFIX.len()
                ),
            );
        }
        if self.pool_size == 0 {
            return invalid("pool_size", "must be at least 1".to_owned());
        }
        if self.batch_lanes == 0 {
            return invalid("batch_lanes", "must be at least 1".to_owned());
        }
        if !(1..=MAX_BATCH).contains(&self.max_batch) {
            return invalid("max_batch", format!("must be between 1 and {MAX_BATCH}"));
        }
        for (name, value) in [
            ("pool_wait_timeout", self.pool_wait_timeout),
            ("connect_timeout", self.connect_timeout),
            ("statement_timeout", self.statement_timeout),
            ("operation_timeout", self.operation_timeout),
            ("migration_timeout", self.migration_timeout),
        ] {
            // Zero would mean "no timeout" to PostgreSQL and "fail at once"
            // to the pool: neither is what anyone who wrote 0 meant.
            if value.as_millis() == 0 {
                return invalid(name, "must be at least 1 ms".to_owned());
            }
        }
        if self.application_name.is_empty() || self.application_name.chars().any(char::is_control) {
            return invalid(
                "application_name",
                format!(
                    "{:?} must be non-empty and free of control characters",
                    self.application_name
                ),
            );
        }
        Ok(())
    }
}

/// Whether `s` is a name the store may splice into SQL: lowercase ASCII
/// letters, digits and `_` (and, unless `may_be_empty`, at least one
/// character, not starting with a digit). Nothing else is accepted, so no
/// quoting or escaping can go wrong.
fn is_identifier(s: &str, may_be_empty: bool) -> bool {
    let Some(first) = s.bytes().next() else {
        return may_be_empty;
    };
    (may_be_empty || !first.is_ascii_digit())
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check(change: impl FnOnce(&mut PostgresOptions), refused: Option<&str>) {
        let mut options = PostgresOptions::default();
        change(&mut options);
        let got = match options.validate() {
            Ok(()) => None,
            Err(ConnectError::InvalidOption { name, .. }) => Some(name),
            Err(other) => panic!("unexpected error {other}"),
        };
        assert_eq!(got, refused);
    }

    #[test]
    fn validation_table() {
        check(|_| {}, None);
        check(|o| o.schema = "idem_test_1".to_owned(), None);
        check(|o| o.table_prefix = String::new(), None);
        check(|o| o.table_prefix = "c12_".to_owned(), None);
        check(|o| o.schema = String::new(), Some("schema"));
        check(|o| o.schema = "Public".to_owned(), Some("schema"));
        check(|o| o.schema = "1x".to_owned(), Some("schema"));
        check(|o| o.schema = "a\"; drop".to_owned(), Some("schema"));
        check(|o| o.schema = "a".repeat(64), Some("schema"));
        check(|o| o.table_prefix = "x-".to_owned(), Some("table_prefix"));
        check(|o| o.table_prefix = "p".repeat(42), Some("table_prefix"));
        check(|o| o.pool_size = 0, Some("pool_size"));
        check(|o| o.batch_lanes = 0, Some("batch_lanes"));
        check(|o| o.max_batch = 0, Some("max_batch"));
        check(|o| o.max_batch = 1, None);
        check(|o| o.max_batch = 1025, Some("max_batch"));
        check(
            |o| o.statement_timeout = Duration::from_micros(10),
            Some("statement_timeout"),
        );
        check(
            |o| o.operation_timeout = Duration::ZERO,
            Some("operation_timeout"),
        );
        check(|o| o.application_name = "idem gw 1".to_owned(), None);
        check(
            |o| o.application_name = String::new(),
            Some("application_name"),
        );
    }
}
