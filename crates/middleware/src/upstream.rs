//! How an inner service tells the middleware that a request never left.

use std::fmt;

/// The error an inner service returns (anywhere in its error's source
/// chain) when the request was certainly not delivered to the upstream: the
/// connection could not be made. Only then does the middleware release the
/// record, so that a retry executes afresh. Any other error leaves the
/// outcome unknown, and the record stays in flight until its lease ends.
#[derive(Debug)]
pub struct UpstreamNotReached {
    source: Box<dyn std::error::Error + Send + Sync>,
}

impl UpstreamNotReached {
    /// Wraps the connection error.
    pub fn new(source: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        Self {
            source: source.into(),
        }
    }
}

impl fmt::Display for UpstreamNotReached {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the upstream could not be reached: {}", self.source)
    }
}

impl std::error::Error for UpstreamNotReached {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        Some(&*self.source)
    }
}

/// A request extension on every request the middleware forwards under a
/// deadline of its own: each keyed request, and one forwarded without a
/// record (the store down under `on_store_error = "pass-through"`, or no
/// key in the body on an optional route that takes its key from a JSON
/// field; a request without a key on a route keyed by a header or a path
/// is passed through untouched, unmarked). Its call to the inner service is
/// dropped when the route's `upstream_timeout` is up, so an inner service
/// that bounds calls itself (the gateway's proxy does, for requests that
/// pass through untouched) may leave such a request to the middleware.
#[derive(Debug, Clone, Copy)]
pub struct UpstreamBounded;

/// Whether `error`, or anything in its source chain, is [`UpstreamNotReached`].
pub(crate) fn was_not_reached(error: &(dyn std::error::Error + 'static)) -> bool {
    let mut current = Some(error);
    while let Some(e) = current {
        if e.is::<UpstreamNotReached>() {
            return true;
        }
        current = e.source();
    }
    false
}
