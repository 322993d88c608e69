//! The `idem` binary: parses the command line, validates the configuration
//! before binding any port, and runs the gateway or the demo.

use std::process::ExitCode;

use clap::Parser;
use idem_gateway::cli::{Cli, Command};
use idem_gateway::{config, demo, run};
use tokio::net::TcpListener;

/// Exit code for bad usage or configuration (as sysexits' EX_USAGE is to
/// shells, and as clap uses for bad flags).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    match cli.command {
        Command::Serve(args) => {
            let settings = match config::load(&args) {
                Ok(settings) => settings,
                Err(error) => {
                    eprintln!("idem: {error}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            let runtime = match runtime(settings.worker_threads) {
                Ok(runtime) => runtime,
                Err(error) => return fail(error.into()),
            };
            let served = runtime.block_on(async move {
                let listener = TcpListener::bind(settings.listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
                // A stable, machine-readable line: tests and scripts that
                // ask for port 0 read the real address from it.
                println!("idem listening on {}", listener.local_addr()?);
                run::run(settings, listener, shutdown_signal()).await
            });
            served.map_or_else(fail, |()| ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            let served = runtime(None)
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(demo::run(args)));
            served.map_or_else(fail, |()| ExitCode::SUCCESS)
        }
    }
}

fn fail(error: anyhow::Error) -> ExitCode {
    eprintln!("idem: {error:#}");
    ExitCode::FAILURE
}

fn runtime(worker_threads: Option<usize>) -> std::io::Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    builder.enable_all();
    if let Some(n) = worker_threads {
        builder.worker_threads(n);
    }
    builder.build()
}

/// Logs go to stderr; the level comes from `IDEM_LOG`, else `RUST_LOG`,
/// else `info`.
fn init_logging() {
    let filter = std::env::var("IDEM_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .unwrap_or_else(|_| "info".to_owned());
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::new(filter))
        .with_writer(std::io::stderr)
        .init();
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let interrupt = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut terminate =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(signal) => signal,
                Err(_) => {
                    let _ = interrupt.await;
                    return;
                }
            };
        tokio::select! {
            _ = interrupt => {}
            _ = terminate.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = interrupt.await;
}
