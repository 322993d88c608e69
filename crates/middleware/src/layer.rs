//! The tower `Layer` that wraps a service in idempotency.

use std::sync::Arc;

use tower_layer::Layer;

use crate::config::IdempotencyConfig;
use crate::service::Idempotency;

/// Wraps services in [`Idempotency`].
#[derive(Clone)]
pub struct IdempotencyLayer {
    config: Arc<IdempotencyConfig>,
}

impl IdempotencyLayer {
    /// A layer with this configuration.
    pub fn new(config: IdempotencyConfig) -> Self {
        Self {
            config: Arc::new(config),
        }
    }
}

impl<S> Layer<S> for IdempotencyLayer {
    type Service = Idempotency<S>;

    fn layer(&self, inner: S) -> Self::Service {
        Idempotency::new(inner, self.config.clone())
    }
}
