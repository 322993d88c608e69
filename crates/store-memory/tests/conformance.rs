//! The memory store passes the shared conformance suite.

use idem_store_memory::MemoryStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn memory_store_conforms() {
    idem_store_conformance::run_all(|| async { MemoryStore::new() }).await;
}
