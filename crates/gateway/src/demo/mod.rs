//! `idem demo`: the first thing a newcomer runs.
//!
//! It starts the sample API and the gateway on loopback, on the embedded
//! store in a fresh directory, plays a scripted scenario, prints what
//! happened, and then keeps serving so that the printed `curl` lines can be
//! tried by hand.

mod sample_api;
mod scenario;

use std::time::{SystemTime, UNIX_EPOCH};

use tokio::net::TcpListener;

use crate::cli::{DemoArgs, ServeArgs};
use crate::config;

/// The routes of the demo: one per case of the SPEC.
const DEMO_CONFIG: &str = r#"# The routes of `idem demo`.
upstream_timeout = "5s"
lease = "10s"

[[route]]
methods = ["POST"]
path = "/v1/payments"
mode = "required"

[[route]]
methods = ["POST"]
path = "/v1/checkout"
mode = "required"
key = { json = "/order_id" }

[[route]]
methods = ["POST"]
path = "/v1/signup"
mode = "required"
key = { json = "/user_id" }

[[route]]
methods = ["POST"]
path = "/webhooks/payments"
mode = "required"
key = { header = "webhook-id" }
"#;

/// Runs the demo. Returns an error if idem did not keep any of its promises.
pub async fn run(args: DemoArgs) -> anyhow::Result<()> {
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| format!("{:x}", d.as_millis()))
        .unwrap_or_else(|_| "0".to_owned());
    let dir = std::env::temp_dir().join(format!("idem-demo-{run_id}"));
    std::fs::create_dir_all(&dir)?;
    let config_path = dir.join("demo.toml");
    std::fs::write(&config_path, DEMO_CONFIG)?;

    let (api, effects) = sample_api::start().await?;
    let store = args
        .store
        .clone()
        .unwrap_or_else(|| format!("embedded:{}", dir.join("data").display()));
    let listen = args
        .listen
        .clone()
        .unwrap_or_else(|| "127.0.0.1:8080".to_owned());
    let settings = config::load(&ServeArgs {
        config: Some(config_path.clone()),
        listen: Some(listen),
        upstream: Some(format!("http://{api}")),
        store: Some(store.clone()),
        ..ServeArgs::default()
    })?;
    let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
        anyhow::anyhow!(
            "cannot listen on {}: {e} (try --listen 127.0.0.1:0)",
            settings.listen
        )
    })?;
    let gateway = listener.local_addr()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(crate::run::run(settings, listener, async {
        let _ = stopped.await;
    }));

    println!("idem demo");
    println!("  sample API  http://{api}  (no idempotency of its own)");
    println!("  gateway     http://{gateway}  -> sample API");
    println!("  store       {store}");
    println!("  routes      {}", config_path.display());
    println!();
    let report = scenario::play(gateway, effects, &run_id).await?;
    print!("{}", report.table);
    println!();
    if report.failures.is_empty() {
        println!("All promises kept: every side effect happened once.");
    } else {
        for failure in &report.failures {
            println!("BROKEN PROMISE: {failure}");
        }
    }

    if args.no_serve || !report.failures.is_empty() {
        let _ = stop.send(());
        server.await??;
        anyhow::ensure!(report.failures.is_empty(), "the demo found broken promises");
        return Ok(());
    }
    println!();
    println!("Still serving. Try it by hand (run each line twice):");
    println!(
        "  curl -i http://{gateway}/v1/payments -H 'Idempotency-Key: my-key-1' -H 'Content-Type: application/json' -d '{{\"amount\":100}}'"
    );
    println!(
        "  curl -i http://{gateway}/v1/checkout -H 'Content-Type: application/json' -d '{{\"order_id\":\"my-order\",\"total\":5}}'"
    );
    println!(
        "  curl -i http://{gateway}/webhooks/payments -H 'webhook-id: msg-1' -H 'Content-Type: application/json' -d '{{}}'"
    );
    println!("Change the body with the same key to see 422; count the side effects with:");
    println!("  curl http://{api}/v1/side-effects");
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c().await?;
    let _ = stop.send(());
    server.await??;
    Ok(())
}
