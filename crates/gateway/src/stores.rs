//! Opening the configured store, and keeping the gateway up while it is
//! down.
//!
//! The SPEC says a gateway whose store is down at start-up starts anyway:
//! keyed requests get `503` and `off` routes keep flowing. So a store that
//! fails to open is wrapped in [`DeferredStore`], which answers
//! `Unavailable` and tries to open it again, at most once a second, until it
//! succeeds.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use idem_core::{
    BoxError, BoxFuture, ClaimOutcome, ClaimRequest, Completion, Fence, Record, RecordId, Store,
    StoreError, Timestamp, WriteError,
};
use idem_store_embedded::{DEFAULT_OPERATION_TIMEOUT, EmbeddedStore};
use idem_store_memory::MemoryStore;
use idem_store_postgres::{PostgresOptions, PostgresStore};
use idem_store_redis::{RedisOptions, RedisStore};

use crate::batching::BatchingWatch;
use crate::config::StoreUrl;

/// How often a store that failed to open is tried again.
const REOPEN_EVERY: Duration = Duration::from_secs(1);

type Opener = Box<dyn Fn() -> Result<Arc<dyn Store>, BoxError> + Send + Sync>;

/// Opens the store named by `url`. A store that cannot be opened now is
/// returned as a [`DeferredStore`] that keeps trying.
pub fn open(url: &StoreUrl) -> Arc<dyn Store> {
    open_watched(url, &BatchingWatch::default())
}

/// [`open`], and `watch` reads the store's batching counts once it is open
/// (the embedded, PostgreSQL and Redis stores batch; memory does not).
pub(crate) fn open_watched(url: &StoreUrl, watch: &BatchingWatch) -> Arc<dyn Store> {
    match url {
        StoreUrl::Memory => Arc::new(MemoryStore::new()),
        StoreUrl::Redis {
            url,
            prefix,
            tuning,
        } => {
            let mut options = RedisOptions::default();
            if let Some(prefix) = prefix {
                options = options.with_prefix(prefix.clone());
            }
            if let Some(n) = tuning.batch_lanes {
                options = options.with_batch_lanes(n);
            }
            if let Some(n) = tuning.max_batch {
                options = options.with_max_batch(n);
            }
            let url = url.clone();
            // Connecting is lazy: it never waits for Redis, so a Redis that
            // is down at start-up gives 503s until it is back.
            let watch = watch.clone();
            DeferredStore::open(Box::new(move || {
                let store = Arc::new(RedisStore::connect(&url, options.clone())?);
                watch.redis(&store);
                Ok(store as Arc<dyn Store>)
            }))
        }
        StoreUrl::Postgres {
            url,
            prefix,
            tuning,
        } => {
            let mut options = PostgresOptions::default();
            if let Some(prefix) = prefix {
                options.table_prefix = prefix.clone();
            }
            if let Some(n) = tuning.pool_size {
                options.pool_size = n;
            }
            if let Some(n) = tuning.batch_lanes {
                options.batch_lanes = n;
            }
            if let Some(n) = tuning.max_batch {
                options.max_batch = n;
            }
            let url = url.clone();
            let watch = watch.clone();
            // The pool is lazy: connecting never waits for PostgreSQL, and
            // the schema is created or migrated by the first operation that
            // reaches the server.
            DeferredStore::open(Box::new(move || {
                let store = Arc::new(PostgresStore::connect(&url, options.clone())?);
                watch.postgres(&store);
                Ok(store as Arc<dyn Store>)
            }))
        }
        StoreUrl::Embedded(path) => {
            let path = path.clone();
            let watch = watch.clone();
            DeferredStore::open(Box::new(move || {
                let store = Arc::new(
                    EmbeddedStore::open(&path)?.with_operation_timeout(DEFAULT_OPERATION_TIMEOUT),
                );
                watch.embedded(&store);
                Ok(store as Arc<dyn Store>)
            }))
        }
    }
}

/// A store that is opened on first successful attempt.
pub struct DeferredStore {
    opener: Opener,
    state: Mutex<Deferred>,
}

struct Deferred {
    store: Option<Arc<dyn Store>>,
    last_attempt: Option<Instant>,
}

impl DeferredStore {
    /// Tries to open the store now; returns it directly if that works.
    fn open(opener: Opener) -> Arc<dyn Store> {
        match opener() {
            Ok(store) => store,
            Err(error) => {
                tracing::error!(%error, "store could not be opened; keyed requests get 503 until it can");
                Arc::new(DeferredStore {
                    opener,
                    state: Mutex::new(Deferred {
                        store: None,
                        last_attempt: Some(Instant::now()),
                    }),
                })
            }
        }
    }

    /// The store, if it is open or can be opened now.
    fn current(&self) -> Result<Arc<dyn Store>, StoreError> {
        // A std mutex: it is held only for the open attempt, never across
        // an await.
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(store) = &state.store {
            return Ok(store.clone());
        }
        let due = state
            .last_attempt
            .is_none_or(|at| at.elapsed() >= REOPEN_EVERY);
        if !due {
            return Err(unavailable("the store is not open yet"));
        }
        state.last_attempt = Some(Instant::now());
        match (self.opener)() {
            Ok(store) => {
                tracing::info!("store opened");
                state.store = Some(store.clone());
                Ok(store)
            }
            Err(error) => {
                tracing::warn!(%error, "store still cannot be opened");
                Err(StoreError::Unavailable(error))
            }
        }
    }
}

fn unavailable(message: &str) -> StoreError {
    StoreError::Unavailable(message.into())
}

impl Store for DeferredStore {
    fn claim(&self, request: ClaimRequest) -> BoxFuture<'_, Result<ClaimOutcome, StoreError>> {
        match self.current() {
            Ok(store) => Box::pin(async move { store.claim(request).await }),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    fn complete(&self, completion: Completion) -> BoxFuture<'_, Result<(), WriteError>> {
        match self.current() {
            Ok(store) => Box::pin(async move { store.complete(completion).await }),
            Err(error) => Box::pin(async move { Err(error.into()) }),
        }
    }

    fn release(&self, id: RecordId, fence: Fence) -> BoxFuture<'_, Result<(), WriteError>> {
        match self.current() {
            Ok(store) => Box::pin(async move { store.release(id, fence).await }),
            Err(error) => Box::pin(async move { Err(error.into()) }),
        }
    }

    fn get(&self, id: RecordId) -> BoxFuture<'_, Result<Option<Record>, StoreError>> {
        match self.current() {
            Ok(store) => Box::pin(async move { store.get(id).await }),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    fn delete(&self, id: RecordId) -> BoxFuture<'_, Result<bool, StoreError>> {
        match self.current() {
            Ok(store) => Box::pin(async move { store.delete(id).await }),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    fn list_in_flight(
        &self,
        after: Option<RecordId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<(RecordId, Record)>, StoreError>> {
        match self.current() {
            Ok(store) => Box::pin(async move { store.list_in_flight(after, limit).await }),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }

    fn purge_expired(
        &self,
        now: Timestamp,
        limit: usize,
    ) -> BoxFuture<'_, Result<usize, StoreError>> {
        match self.current() {
            Ok(store) => Box::pin(async move { store.purge_expired(now, limit).await }),
            Err(error) => Box::pin(async move { Err(error) }),
        }
    }
}
