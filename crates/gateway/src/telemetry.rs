//! The Prometheus exporter: where the middleware's metrics go, rendered by
//! the admin listener at `GET /metrics`.
//!
//! Only the gateway knows about Prometheus; the libraries record through
//! the `metrics` facade. The exporter is used without its HTTP listener and
//! push gateway (its default features), because the admin listener serves
//! the text itself, and those features would bring a TLS stack for nothing.

use std::sync::Mutex;
use std::time::Duration;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Histogram buckets for every `*_seconds` metric, from 100µs (a memory
/// store, a replay) to 30s (a slow upstream), so that both ends of the
/// distribution are visible rather than summarised away.
const BUCKETS: &[f64] = &[
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
    5.0, 10.0, 30.0,
];

/// How often histograms are drained when nobody scrapes, so that samples
/// do not pile up in memory between scrapes.
const UPKEEP_EVERY: Duration = Duration::from_secs(5);

/// The handle of the recorder this process installed. A process has one
/// global recorder; a second `run` in the same process (tests, the demo)
/// reuses it.
static INSTALLED: Mutex<Option<PrometheusHandle>> = Mutex::new(None);

/// Installs the Prometheus recorder as the global `metrics` recorder, once
/// per process, with `store` as a label on every series, and returns the
/// handle that renders it.
///
/// If some other recorder was installed first (an embedding program's), the
/// metrics go there, and the handle returned renders an empty page.
pub(crate) fn install(store: &str) -> PrometheusHandle {
    let mut installed = INSTALLED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(handle) = installed.as_ref() {
        return handle.clone();
    }
    let builder = PrometheusBuilder::new().add_global_label("store", store);
    // Setting buckets only fails for an empty list, and the list is not.
    let builder = builder
        .set_buckets_for_metric(Matcher::Suffix("_seconds".to_owned()), BUCKETS)
        .expect("the bucket list is not empty");
    let recorder = builder.build_recorder();
    let handle = recorder.handle();
    match metrics::set_global_recorder(recorder) {
        Ok(()) => {
            idem_middleware::describe_metrics();
            crate::batching::describe_metrics();
        }
        Err(error) => {
            tracing::warn!(%error, "another metrics recorder is installed; /metrics will be empty");
        }
    }
    *installed = Some(handle.clone());
    handle
}

/// Drains histograms periodically until the task is aborted.
pub(crate) fn spawn_upkeep(handle: PrometheusHandle) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut every = tokio::time::interval(UPKEEP_EVERY);
        loop {
            every.tick().await;
            handle.run_upkeep();
        }
    })
}

/// The `store` label: the store URL's scheme (`embedded`, `memory`, ...),
/// never the rest of the URL, which may hold a password.
pub(crate) fn store_label(url: &impl std::fmt::Display) -> String {
    let text = url.to_string();
    text.split(':').next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_store_label_is_the_scheme_only() {
        assert_eq!(store_label(&"embedded:./idem-data"), "embedded");
        assert_eq!(store_label(&"memory:"), "memory");
        assert_eq!(store_label(&"postgres://u:secret@h/db"), "postgres");
    }
}
