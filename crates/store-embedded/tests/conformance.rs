//! The embedded store passes the shared conformance suite, each case on a
//! fresh store in its own directory.

mod common;

use std::sync::atomic::{AtomicU32, Ordering};

use idem_store_embedded::EmbeddedStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn embedded_store_conforms() {
    let root = common::TempDir::new("conformance");
    let next = AtomicU32::new(0);
    idem_store_conformance::run_all(|| {
        let dir = root
            .path()
            .join(format!("case-{}", next.fetch_add(1, Ordering::Relaxed)));
        async move {
            match EmbeddedStore::open(&dir) {
                Ok(store) => store,
                Err(e) => panic!("open {}: {e}", dir.display()),
            }
        }
    })
    .await;
}
