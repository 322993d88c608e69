//! The `idem` binary: parses the command line, validates the configuration
//! before binding any port, and runs the gateway, the demo, or `idem keys`.

use std::process::ExitCode;

use clap::Parser;
use idem_gateway::cli::{Cli, Command};
use idem_gateway::logging::{self, LogFormat};
use idem_gateway::{config, demo, keys, run};
use tokio::net::TcpListener;

/// The gateway allocates a few small buffers per request (bodies, headers,
/// the stored response) and frees them on other threads' time; mimalloc's
/// thread-local free lists do that in a fraction of glibc malloc's
/// instructions (measured with callgrind on the keyed path, see
/// docs/performance-history.md). Only the binary chooses an allocator: the library
/// crates leave that to whoever embeds them.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Exit code for bad usage or configuration (as sysexits' EX_USAGE is to
/// shells, and as clap uses for bad flags).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Serve(args) => {
            // Configuration errors go to stderr as plain text, before any
            // logging is set up: the log format is itself a setting.
            let settings = match config::load(&args) {
                Ok(settings) => settings,
                Err(error) => {
                    eprintln!("idem: {error}");
                    return ExitCode::from(EXIT_USAGE);
                }
            };
            logging::init(settings.log_format);
            let runtime = match runtime(settings.worker_threads) {
                Ok(runtime) => runtime,
                Err(error) => return fail(error.into()),
            };
            let served = runtime.block_on(async move {
                let shutdown = shutdown_signal()?;
                // Both bound before either serves, so that a taken port
                // stops the start-up rather than leaving half a gateway.
                let admin = TcpListener::bind(settings.admin_listen)
                    .await
                    .map_err(|e| {
                        anyhow::anyhow!("cannot listen on {} (admin): {e}", settings.admin_listen)
                    })?;
                let listener = TcpListener::bind(settings.listen)
                    .await
                    .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.listen))?;
                let (admin_addr, addr) = (admin.local_addr()?, listener.local_addr()?);
                // Stable, machine-readable lines, printed once the store is
                // open: tests and scripts that ask for port 0 read the real
                // addresses from them. The admin line comes first, so that
                // a reader that stops at the gateway's line has seen both.
                let started = move || {
                    println!("idem admin listening on {admin_addr}");
                    println!("idem listening on {addr}");
                };
                run::run_with_admin(settings, listener, admin, shutdown, started).await
            });
            served.map_or_else(fail, |()| ExitCode::SUCCESS)
        }
        Command::Demo(args) => {
            logging::init(LogFormat::Human);
            let served = runtime(None)
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(demo::run(args)));
            served.map_or_else(fail, |()| ExitCode::SUCCESS)
        }
        Command::Keys(args) => {
            logging::init(LogFormat::Human);
            let done = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(anyhow::Error::from)
                .and_then(|runtime| runtime.block_on(keys::run(args)));
            done.map_or_else(fail, |()| ExitCode::SUCCESS)
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

/// A future that resolves on SIGTERM or SIGINT. The handlers are installed
/// here, before the gateway says it listens, so that a signal sent as soon
/// as it does starts a graceful shutdown rather than killing the process.
#[cfg(unix)]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => tracing::info!("SIGTERM received"),
            _ = interrupt.recv() => tracing::info!("SIGINT received"),
        }
    })
}

/// A future that resolves on Ctrl-C.
#[cfg(not(unix))]
fn shutdown_signal() -> std::io::Result<impl std::future::Future<Output = ()>> {
    Ok(async {
        let _ = tokio::signal::ctrl_c().await;
    })
}
