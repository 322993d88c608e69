//! The connection: made lazily, every exchange bounded in time, and
//! replaced when it stops answering.
//!
//! Both backends multiplex: one connection per Redis node carries every
//! concurrent operation, pipelined (with `wait_replicas`, writes that wait
//! take connections of their own: `replication.rs`). The `redis` crate
//! reconnects by itself when a connection breaks (an I/O error, a reset, a
//! closed socket) and, in a cluster, follows `MOVED`/`ASK` and refreshes its
//! slot map after a failover. What it does not do is give up on a connection
//! that is open but silent (a partition without a reset, a stalled proxy, a
//! frozen server): its response timeout fails the request but keeps the
//! connection. So a timed-out exchange here also replaces the connection, at
//! most once per operation timeout, so that a silent connection cannot hold
//! the store down after the network heals.

use std::sync::Mutex;
use std::time::Duration;

use redis::aio::{ConnectionLike, ConnectionManager, ConnectionManagerConfig};
use redis::cluster::{ClusterClient, ClusterClientBuilder, ClusterConfig};
use redis::cluster_async::ClusterConnection;
use redis::{Cmd, Pipeline, Value};
use tokio::time::Instant;

use crate::error::{ConnectError, Failure};
use crate::options::RedisOptions;
use crate::url::Target;

/// The connection to one Redis or one Redis Cluster.
pub(crate) struct Connection {
    maker: Maker,
    current: Mutex<Current>,
    operation_timeout: Duration,
}

/// How to make a fresh (lazy) connection.
enum Maker {
    Single {
        client: redis::Client,
        config: ConnectionManagerConfig,
    },
    Cluster {
        client: ClusterClient,
        config: ClusterConfig,
    },
}

/// A cheap handle on the current connection; clones share it.
#[derive(Clone)]
enum Handle {
    Single(ConnectionManager),
    Cluster(ClusterConnection),
}

struct Current {
    handle: Handle,
    /// Bumped on every replacement, so that many operations timing out on
    /// one connection replace it once.
    generation: u64,
    made_at: Instant,
}

impl Connection {
    /// Sets up the client for `target`. Nothing is sent to Redis until the
    /// first operation, so this succeeds whether or not Redis is up.
    pub(crate) fn open(target: Target, options: &RedisOptions) -> Result<Self, ConnectError> {
        // The client's own bound on an answer must cover a `WAIT` sent in
        // the same pipeline as the write: cut short, the write would be
        // applied with its answer lost (see `scripts::eval_replicated`).
        let response_timeout =
            options.operation_timeout + options.wait_replicas.map_or(Duration::ZERO, |w| w.timeout);
        let maker = match target {
            Target::Single(info) => {
                let client = redis::Client::open(info).map_err(client_error)?;
                let config = ConnectionManagerConfig::new()
                    .set_connection_timeout(Some(options.connect_timeout))
                    .set_response_timeout(Some(response_timeout))
                    // Reconnect attempts are few and quick: an operation
                    // waits for them only up to its own time bound, and the
                    // next operation starts a new attempt anyway.
                    .set_number_of_retries(1)
                    .set_min_delay(Duration::from_millis(50))
                    .set_max_delay(Duration::from_millis(500));
                Maker::Single { client, config }
            }
            Target::Cluster(nodes) => {
                let client = ClusterClientBuilder::new(nodes)
                    .connection_timeout(options.connect_timeout)
                    .response_timeout(response_timeout)
                    // Redirections and a failover's slot refresh are retried
                    // quickly; the default waits grow past a second, longer
                    // than any operation may take.
                    .retries(4)
                    .min_retry_wait(10)
                    .max_retry_wait(200)
                    .build()
                    .map_err(client_error)?;
                let config = ClusterConfig::new()
                    .set_connection_timeout(options.connect_timeout)
                    .set_response_timeout(response_timeout);
                Maker::Cluster { client, config }
            }
        };
        let handle = maker.make().map_err(client_error)?;
        Ok(Self {
            maker,
            current: Mutex::new(Current {
                handle,
                generation: 0,
                made_at: Instant::now(),
            }),
            operation_timeout: options.operation_timeout,
        })
    }

    /// Whether this is a cluster connection.
    pub(crate) fn is_cluster(&self) -> bool {
        matches!(self.maker, Maker::Cluster { .. })
    }

    /// The bound on one operation, `WAIT` aside.
    pub(crate) fn operation_timeout(&self) -> Duration {
        self.operation_timeout
    }

    /// The deadline of an operation that starts now.
    pub(crate) fn deadline(&self) -> Instant {
        Instant::now() + self.operation_timeout
    }

    /// The deadline of an operation that starts now and may also wait
    /// `extra` (for replicas).
    pub(crate) fn deadline_with(&self, extra: Duration) -> Instant {
        self.deadline() + extra
    }

    /// Sends `cmd` (routed by its keys) and waits for the answer until
    /// `deadline`.
    pub(crate) async fn query(&self, cmd: &Cmd, deadline: Instant) -> Result<Value, Failure> {
        let (handle, generation) = self.handle();
        let exchange = async move {
            match handle {
                Handle::Single(mut c) => c.req_packed_command(cmd).await,
                Handle::Cluster(mut c) => c.req_packed_command(cmd).await,
            }
        };
        // Server errors arrive as values; `extract_error` makes them errors
        // (which is how `NOSCRIPT` is recognised).
        let exchange = async move { exchange.await.and_then(Value::extract_error) };
        self.bounded(exchange, generation, deadline).await
    }

    /// Sends `pipe` (`count` commands) as one pipeline: on one connection,
    /// in order, and in a cluster to the node of its keyed commands (a
    /// keyless one such as `WAIT` goes with them). Waits for every answer
    /// until `deadline`; each is the command's value or its server error.
    pub(crate) async fn pipeline(
        &self,
        pipe: &Pipeline,
        count: usize,
        deadline: Instant,
    ) -> Result<Vec<redis::RedisResult<Value>>, Failure> {
        let (handle, generation) = self.handle();
        let exchange = async move {
            match handle {
                Handle::Single(mut c) => c.req_packed_commands(pipe, 0, count).await,
                Handle::Cluster(mut c) => c.req_packed_commands(pipe, 0, count).await,
            }
        };
        let answers = self.bounded(exchange, generation, deadline).await?;
        Ok(answers.into_iter().map(Value::extract_error).collect())
    }

    /// Waits for `exchange` until `deadline`, and replaces the connection
    /// when it timed out.
    async fn bounded<T>(
        &self,
        exchange: impl Future<Output = redis::RedisResult<T>>,
        generation: u64,
        deadline: Instant,
    ) -> Result<T, Failure> {
        match tokio::time::timeout_at(deadline, exchange).await {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(e)) => {
                if e.is_timeout() {
                    self.replace(generation);
                }
                Err(Failure::Redis(e))
            }
            Err(_elapsed) => {
                self.replace(generation);
                Err(Failure::TimedOut(self.operation_timeout))
            }
        }
    }

    fn handle(&self) -> (Handle, u64) {
        // A std mutex: it is held only to clone a handle or swap one in,
        // never across an await.
        let current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        (current.handle.clone(), current.generation)
    }

    /// Replaces the connection that timed out, unless it was replaced since
    /// or is younger than one operation timeout (a fresh connection gets a
    /// full timeout to answer before it is given up on, so a Redis that is
    /// merely slow does not cause a reconnect storm).
    fn replace(&self, generation: u64) {
        let mut current = self.current.lock().unwrap_or_else(|p| p.into_inner());
        if current.generation != generation || current.made_at.elapsed() < self.operation_timeout {
            return;
        }
        // Setting up a lazy connection does no I/O and does not fail for a
        // client that was set up once; if it ever does, the old one stays.
        if let Ok(handle) = self.maker.make() {
            // Dropping the old handle closes its connection once the
            // operations still holding clones of it finish.
            *current = Current {
                handle,
                generation: generation + 1,
                made_at: Instant::now(),
            };
        }
    }
}

impl Maker {
    /// A connection that connects on first use.
    fn make(&self) -> redis::RedisResult<Handle> {
        match self {
            Maker::Single { client, config } => Ok(Handle::Single(
                ConnectionManager::new_lazy_with_config(client.clone(), config.clone())?,
            )),
            Maker::Cluster { client, config } => Ok(Handle::Cluster(
                client.get_pending_async_connection_with_config(config.clone()),
            )),
        }
    }
}

fn client_error(e: redis::RedisError) -> ConnectError {
    ConnectError::Client(Box::new(e))
}
