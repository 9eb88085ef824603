//! Orchestration shared by `run` and `dev`: TLS store, RBAC listeners, admin listener and
//! edge started in that order, the ready file once all accept, then a graceful stop of each.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;

use super::signals::Signals;
use crate::admin::{self, AdminError, RunningAdmin};
use crate::config::GatewayConfig;
use crate::edge::{self, EdgeError, RunningEdge};
use crate::rbac::{self, RbacStartError, RunningRbac};
use crate::status::Status;
use crate::task::{self, AbortOnDrop};
use crate::tls::{Alpn, TlsError, TlsStore, watch_files};

/// How long the ready file waits for pingora to run the edge's accept loop.
const EDGE_START_WAIT: Duration = Duration::from_secs(10);

/// RBAC sessions get this long after SIGTERM before they are closed with 1001.
pub(crate) const RBAC_GRACE: Duration = Duration::from_secs(5);

/// Why the gateway stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum RunError {
    /// The certificates could not be loaded.
    #[error("tls: {0}")]
    Tls(#[from] TlsError),
    /// The runtime or the signal handlers could not be set up.
    #[error("cannot start the runtime: {0}")]
    Runtime(std::io::Error),
    /// The admin listener could not start.
    #[error(transparent)]
    Admin(#[from] AdminError),
    /// The edge could not start.
    #[error(transparent)]
    Edge(#[from] EdgeError),
    /// The RBAC listeners could not start.
    #[error("RBAC listener {0}")]
    Rbac(#[from] RbacStartError),
    /// The embedded engine (dev) could not start.
    #[error("embedded engine: {0}")]
    Engine(String),
    /// Telemetry could not start.
    #[error(transparent)]
    Telemetry(#[from] crate::telemetry::TelemetryError),
    /// The ready file could not be written.
    #[error("cannot write the ready file {path}: {source}")]
    ReadyFile {
        /// The path.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}

/// Every running surface of one config.
#[derive(Debug)]
pub struct Gateway {
    addrs: Vec<(String, SocketAddr)>,
    rbac: RunningRbac,
    admin: Option<RunningAdmin>,
    edge: Option<RunningEdge>,
    tls: Option<Arc<TlsStore>>,
    stop_watch: watch::Sender<bool>,
    _watcher: Option<AbortOnDrop<()>>,
}

impl Gateway {
    /// Starts every surface of `config`. Must run inside a tokio runtime.
    ///
    /// # Errors
    /// The first surface that cannot start (the ones started before are stopped on drop).
    pub async fn start(config: &GatewayConfig, status: Arc<Status>) -> Result<Self, RunError> {
        let tls = config.tls.as_ref().map(TlsStore::load).transpose()?;
        let mut addrs = Vec::new();

        let listener_tls = tls
            .as_ref()
            .map(|store| store.server_config(Alpn::Http1))
            .transpose()?;
        let rbac = rbac::start(config, listener_tls, status.clone()).await?;
        addrs.extend(rbac.addrs().iter().cloned());

        let admin = match &config.admin {
            Some(section) => {
                let readiness = config
                    .edge
                    .as_ref()
                    .and_then(|e| e.section.readiness_path.clone());
                let admin =
                    admin::start(section, &config.engine, readiness, status.clone()).await?;
                Some(admin)
            }
            None => None,
        };
        let mut edge = edge::start(config, tls.as_deref(), &|key| rbac.handoff(key))?;
        if let Some(edge) = &mut edge {
            if !edge.accepting(EDGE_START_WAIT).await {
                tracing::warn!("the edge did not start accepting within {EDGE_START_WAIT:?}");
            }
            addrs.push(("edge".to_owned(), edge.addr()));
        }
        if let Some(admin) = &admin {
            addrs.push(("admin".to_owned(), admin.addr()));
        }
        let (stop_watch, stop_rx) = watch::channel(false);
        let watcher = tls
            .clone()
            .map(|store| AbortOnDrop(task::spawn(watch_files(store, stop_rx))));
        Ok(Self {
            addrs,
            rbac,
            admin,
            edge,
            tls,
            stop_watch,
            _watcher: watcher,
        })
    }

    /// Bound addresses, keyed as in the ready file.
    #[must_use]
    pub fn addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// The certificate store, when a `tls:` block is configured.
    #[must_use]
    pub const fn tls(&self) -> Option<&Arc<TlsStore>> {
        self.tls.as_ref()
    }

    /// Stops everything gracefully: the edge stops accepting, RBAC sessions are drained
    /// (closed with 1001 after [`RBAC_GRACE`]), the admin listener stops, and pingora's thread
    /// is joined.
    pub async fn shutdown(self) {
        self.stop_watch.send_replace(true);
        if let Some(edge) = &self.edge {
            edge.begin_shutdown();
        }
        self.rbac.shutdown(RBAC_GRACE).await;
        if let Some(admin) = self.admin {
            admin.shutdown().await;
        }
        if let Some(edge) = self.edge {
            edge.stopped().await;
        }
    }
}

/// Builds the runtime for RBAC, admin and control work (pingora runs its own): one thread
/// per two cores (at least one), or `TOKIO_WORKER_THREADS`. A session is one task, so more
/// threads only help with many busy sessions; on a host shared with the engine and workers,
/// fewer threads leave them more CPU (see BENCHMARKS.md).
pub(crate) fn build_runtime() -> Result<tokio::runtime::Runtime, RunError> {
    let from_env = std::env::var("TOKIO_WORKER_THREADS")
        .ok()
        .and_then(|v| v.trim().parse::<usize>().ok())
        .filter(|n| *n > 0);
    let threads = from_env.unwrap_or_else(|| {
        std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1))
    });
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .thread_name("gateway")
        .enable_all()
        .build()
        .map_err(RunError::Runtime)
}

/// Writes (when asked) and logs the ready line.
pub(crate) fn announce_ready(
    ready_file: Option<&Path>,
    addrs: &[(String, SocketAddr)],
) -> Result<(), RunError> {
    let line = iii_engine::ready_line("iii-gateway", addrs);
    if let Some(path) = ready_file {
        iii_engine::write_ready_file(path, &line).map_err(|source| RunError::ReadyFile {
            path: path.to_owned(),
            source,
        })?;
    }
    tracing::info!(target: "ready", "{line}");
    Ok(())
}

/// `iii-gateway run`: serves `config` until SIGTERM/SIGINT, then stops gracefully.
///
/// # Errors
/// A surface that cannot start, or the ready file that cannot be written.
pub fn run(config: &GatewayConfig, ready_file: Option<&Path>) -> Result<(), RunError> {
    let runtime = build_runtime()?;
    let telemetry = {
        // The OTLP exporter's gRPC channel lives on this runtime.
        let _context = runtime.enter();
        crate::telemetry::init(&config.telemetry)?
    };
    for warning in &config.warnings {
        tracing::warn!("{warning}");
    }
    let outcome = runtime.block_on(async {
        let mut signals = Signals::install().map_err(RunError::Runtime)?;
        let status = Arc::new(Status::default());
        let gateway = Gateway::start(config, status).await?;
        announce_ready(ready_file, gateway.addrs())?;
        let signal = signals.until_shutdown(gateway.tls()).await;
        tracing::info!("{signal}: shutting down");
        gateway.shutdown().await;
        tracing::info!("stopped");
        Ok(())
    });
    telemetry.shutdown();
    outcome
}

/// Waits for SIGTERM/SIGINT with SIGHUP reloading `tls`, for `dev`.
pub(crate) async fn wait_for_shutdown(
    signals: &mut Signals,
    tls: Option<&Arc<TlsStore>>,
) -> &'static str {
    signals.until_shutdown(tls).await
}
