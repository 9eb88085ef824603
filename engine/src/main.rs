//! `iii-engine [--config FILE] [--ready-file PATH]`.

use std::path::PathBuf;

use anyhow::Context as _;
use clap::Parser;
use iii_engine::Error;
use iii_engine::config::{self, EMBEDDED_DEFAULT};

/// mimalloc: every call allocates on several runtime threads, where it costs less CPU per
/// call than the system allocator (8% less per REST-triggered call, BENCHMARKS.md, edge).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// On SIGTERM / Ctrl-C, calls in flight get this long to deliver their results before workers
/// are closed (container runtimes usually wait 10 s before killing).
const SHUTDOWN_GRACE: std::time::Duration = std::time::Duration::from_secs(8);

/// An engine that speaks the iii worker protocol.
#[derive(Debug, Parser)]
#[command(name = "iii-engine", version, about)]
struct Cli {
    /// iii config.yaml (workers: / modules:). Without it, the embedded default runs: the
    /// trusted worker listener on 127.0.0.1:49134 and the REST API on 127.0.0.1:3111.
    #[arg(long, short = 'c')]
    config: Option<PathBuf>,
    /// Write `{"service","pid","addrs"}` here (atomically) once every listener accepts.
    #[arg(long)]
    ready_file: Option<PathBuf>,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    match run(&cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn run(cli: &Cli) -> anyhow::Result<()> {
    let config = match &cli.config {
        Some(path) => config::load_file(path).map_err(Error::from)?,
        None => config::load_str(EMBEDDED_DEFAULT, "<embedded default>", |_| None)
            .map_err(Error::from)?,
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(worker_threads())
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    runtime.block_on(async {
        let running = iii_engine::start(&config).await.map_err(Error::from)?;
        let line = iii_engine::ready_line("iii-engine", running.addrs());
        if let Some(path) = &cli.ready_file {
            iii_engine::write_ready_file(path, &line).map_err(|source| Error::ReadyFile {
                path: path.clone(),
                source,
            })?;
        }
        tracing::info!(target: "ready", "{line}");
        shutdown_signal().await;
        tracing::info!("shutting down: calls in flight get {SHUTDOWN_GRACE:?} to finish");
        running.shutdown(SHUTDOWN_GRACE).await;
        Ok(())
    })
}

/// Runtime threads: `TOKIO_WORKER_THREADS` when set, else half the cores (at least one). The
/// engine is I/O-bound and usually shares its host with workers; on a 2-core host one thread
/// routes as many calls as two with less CPU taken from the workers (see BENCHMARKS.md).
fn worker_threads() -> usize {
    let from_env = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok());
    from_env
        .filter(|n| *n > 0)
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)))
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let term = async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut s) => {
                    s.recv().await;
                }
                Err(_) => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = ctrl_c => {}
            () = term => {}
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
