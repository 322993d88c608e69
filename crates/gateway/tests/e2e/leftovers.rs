//! What a shared-store test leaves in the test servers, removed when it
//! passes: the PostgreSQL tables of its prefix, and the Redis keys under
//! it. Without this every CI run left three sets of tables (which never
//! expire) and a few dozen keys (which do, after a day) behind. A failed
//! test keeps its records, for whoever looks into the failure.

use std::time::Duration;

/// How long one cleanup may take before the test says it gave up.
const LIMIT: Duration = Duration::from_secs(10);

/// A test's own corner of a shared store.
pub(crate) struct Corner {
    /// `postgres`, `redis` or `redis-cluster`.
    pub(crate) store: &'static str,
    /// The server's URL, without idem's `prefix=`.
    pub(crate) base_url: String,
    /// The prefix every table or key of this test starts with.
    pub(crate) prefix: String,
}

impl Corner {
    /// Drops the corner's tables, or deletes its keys, and fails the test
    /// if that fails, or finds nothing to remove (every test using a
    /// corner writes to it): a test that cannot clean up says so.
    pub(crate) async fn remove(&self) {
        let removed = tokio::time::timeout(LIMIT, self.try_remove()).await;
        match removed {
            Ok(Ok(())) => {}
            Ok(Err(error)) => panic!(
                "{}: removing {}: {}",
                self.store,
                self.prefix,
                chain(&*error)
            ),
            Err(_) => panic!(
                "{}: removing {} took over {LIMIT:?}",
                self.store, self.prefix
            ),
        }
    }

    async fn try_remove(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        match self.store {
            "postgres" => self.drop_tables().await,
            "redis" => self.unlink_keys().await,
            // A cluster's keys are spread over its nodes, each of which
            // would have to be scanned; they expire with their TTL.
            _ => Ok(()),
        }
    }

    async fn drop_tables(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let (client, connection) =
            tokio_postgres::connect(&self.base_url, tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(connection);
        let p = &self.prefix;
        client
            .batch_execute(&format!(
                "DROP TABLE \"{p}records\", \"{p}schema_version\"; \
                 DROP SEQUENCE \"{p}fence_seq\""
            ))
            .await?;
        drop(client);
        driver.await??;
        Ok(())
    }

    async fn unlink_keys(&self) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let client = redis::Client::open(self.base_url.as_str())?;
        let mut conn = client.get_multiplexed_async_connection().await?;
        let pattern = format!("{}*", self.prefix);
        let mut cursor: u64 = 0;
        let mut unlinked = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(&pattern)
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                unlinked += redis::cmd("UNLINK")
                    .arg(&keys)
                    .query_async::<usize>(&mut conn)
                    .await?;
            }
            if next == 0 {
                return match unlinked {
                    0 => Err(format!("no key starts with {pattern}").into()),
                    _ => Ok(()),
                };
            }
            cursor = next;
        }
    }
}

/// An error and its causes, "outer: inner: ...": a driver's own message
/// (tokio-postgres says "db error") is often only the first link.
fn chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
