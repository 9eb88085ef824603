//! `iii-gateway run`: start every surface of a validated config, write the ready file once
//! all of them accept, and stop gracefully on SIGTERM / Ctrl-C.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::GatewayConfig;
use crate::rbac;
use crate::status::Status;

/// Sessions get this long after SIGTERM before they are closed with 1001.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// Runs the gateway until a shutdown signal.
///
/// # Errors
/// A surface that cannot start (bind failure, missing certificates) or the ready file.
pub fn run(config: &GatewayConfig, ready_file: Option<&Path>) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the runtime")?;
    let telemetry = {
        let _context = runtime.enter();
        crate::telemetry::init(&config.telemetry)?
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let outcome = runtime.block_on(async {
        let status = Arc::new(Status::default());
        let listeners = rbac::start(config, None, Arc::clone(&status)).await?;
        let line = iii_engine::ready_line("iii-gateway", listeners.addrs());
        if let Some(path) = ready_file {
            iii_engine::write_ready_file(path, &line)
                .with_context(|| format!("cannot write the ready file {}", path.display()))?;
        }
        tracing::info!(target: "ready", "{line}");
        shutdown_signal().await;
        tracing::info!("shutting down: sessions get {SHUTDOWN_GRACE:?} before they are closed");
        listeners.shutdown(SHUTDOWN_GRACE).await;
        Ok(())
    });
    telemetry.shutdown();
    outcome
}

/// SIGTERM or Ctrl-C.
pub async fn shutdown_signal() {
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
