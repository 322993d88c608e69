//! The tower `Layer` that wraps a service in idempotency.

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::IdempotencyConfig;
use crate::executions::Executions;
use crate::prepared::Prepared;
use crate::service::Idempotency;

/// Wraps services in [`Idempotency`].
#[derive(Clone)]
pub struct IdempotencyLayer {
    prepared: Arc<Prepared>,
}

impl IdempotencyLayer {
    /// A layer with this configuration.
    pub fn new(config: IdempotencyConfig) -> Self {
        Self {
            prepared: Arc::new(Prepared::new(config)),
        }
    }

    /// The requests this layer (and every service it made) is executing,
    /// for a server to wait on when it shuts down.
    pub fn executions(&self) -> Executions {
        Executions::new(self.prepared.tasks.clone())
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency::new(inner, self.prepared.clone())
    }
}
