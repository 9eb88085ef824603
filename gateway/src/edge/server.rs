//! Starting the edge: routes resolved, the socket bound by us (clear errors, real port for
//! port 0), our TLS config, then a pingora `Server` on its own thread whose shutdown is driven
//! by our signal handling (`Server::run` with a custom `ShutdownSignalWatch`, never
//! `run_forever`, which exits the process). Grace periods are explicit and short.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::listeners::tls::Acceptor;
use pingora::proxy::http_proxy;
use pingora::server::configuration::ServerConf;
use pingora::server::{RunArgs, Server, ShutdownSignal, ShutdownSignalWatch};
use tokio::sync::watch;
use tokio::time::Instant;

use super::cors::Cors;
use super::proxy::{EdgeProxy, EdgeRoute};
use super::service::EdgeService;
use super::upstream;
use crate::config::{GatewayConfig, RouteTarget};
use crate::rbac::EdgeHandoff;
use crate::tls::{Alpn, TlsError, TlsStore};

/// In-flight HTTP requests get this long after shutdown starts (pingora's
/// `grace_period_seconds`; its default is 300).
const GRACE_PERIOD_SECS: u64 = 1;
/// Then pingora's runtimes get this long to stop (`graceful_shutdown_timeout_seconds`).
const RUNTIME_SHUTDOWN_SECS: u64 = 1;

/// How long [`RunningEdge::stopped`] waits for pingora (its grace and runtime timeouts,
/// plus slack).
const STOP_WAIT: Duration = Duration::from_secs(GRACE_PERIOD_SECS + RUNTIME_SHUTDOWN_SECS + 3);
const STOP_POLL: Duration = Duration::from_millis(20);

/// Why the edge could not start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// The edge address could not be bound.
    #[error("cannot listen on {host}:{port} for the edge (edge.host/edge.port): {source}")]
    Bind {
        /// Configured host.
        host: String,
        /// Configured port.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
    /// An engine URL does not resolve.
    #[error("{key} '{url}' cannot be used as an upstream: {reason}")]
    Upstream {
        /// The config key.
        key: &'static str,
        /// The URL.
        url: String,
        /// What failed.
        reason: String,
    },
    /// A route names an RBAC listener that has no edge handoff.
    #[error("route to {0}: that RBAC listener is not running (no edge handoff)")]
    NoHandoff(String),
    /// TLS is on but the certificate store is missing or unusable.
    #[error("edge TLS: {0}")]
    Tls(#[from] TlsError),
    /// `engine.ca_file` could not be loaded.
    #[error("engine.ca_file: {0}")]
    EngineCa(TlsError),
    /// The edge has TLS on but no certificates were loaded.
    #[error("edge TLS is on but no tls: block was loaded")]
    NoCertificates,
    /// pingora's thread could not be started.
    #[error("cannot start the edge thread: {0}")]
    Thread(std::io::Error),
}

/// Tells pingora to shut down gracefully when our watch turns true (or its sender is gone).
struct OurShutdown(watch::Receiver<bool>);

#[async_trait]
impl ShutdownSignalWatch for OurShutdown {
    async fn recv(&self) -> ShutdownSignal {
        let mut rx = self.0.clone();
        let _ = rx.wait_for(|stop| *stop).await;
        ShutdownSignal::GracefulTerminate
    }
}

/// The running edge.
#[derive(Debug)]
pub struct RunningEdge {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    thread: std::thread::JoinHandle<()>,
    accepting: Option<tokio::sync::oneshot::Receiver<()>>,
}

impl RunningEdge {
    /// Waits (at most `limit`) until pingora runs the accept loop, so the ready file is only
    /// written once the edge serves. `false` when it did not start in time.
    pub async fn accepting(&mut self, limit: Duration) -> bool {
        match self.accepting.take() {
            Some(rx) => matches!(tokio::time::timeout(limit, rx).await, Ok(Ok(()))),
            None => true,
        }
    }

    /// The bound address.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and lets in-flight requests finish (about two seconds at most).
    pub fn begin_shutdown(&self) {
        self.stop.send_replace(true);
    }

    /// Shuts down (if not begun) and waits for pingora's thread to end, polling so no
    /// runtime thread blocks.
    ///
    /// # Cancel safety
    /// Cancel-safe: dropping the future leaves the thread to finish on its own.
    pub async fn stopped(self) {
        self.stop.send_replace(true);
        let deadline = Instant::now() + STOP_WAIT;
        while !self.thread.is_finished() && Instant::now() < deadline {
            tokio::time::sleep(STOP_POLL).await;
        }
        if !self.thread.is_finished() {
            tracing::warn!("the edge did not stop within {STOP_WAIT:?}");
        } else if self.thread.join().is_err() {
            tracing::error!("the edge thread panicked");
        }
    }
}

/// Starts the edge of `config` (`None` when it has no `edge:` block). `handoff` gives an RBAC
/// listener's edge handoff by key (`listener:<name>`).
///
/// # Errors
/// A bind failure, an unresolvable engine URL, a route to a listener without handoff, or
/// TLS without certificates.
pub fn start(
    config: &GatewayConfig,
    tls: Option<&TlsStore>,
    handoff: &dyn Fn(&str) -> Option<EdgeHandoff>,
) -> Result<Option<RunningEdge>, EdgeError> {
    let Some(edge) = &config.edge else {
        return Ok(None);
    };
    let section = &edge.section;
    let mut routes = Vec::with_capacity(edge.routes.len());
    for route in &edge.routes {
        if route.target == RouteTarget::Engine {
            tracing::warn!(
                host = route.host.as_deref().unwrap_or("*"),
                path_prefix = route.path_prefix.as_deref().unwrap_or("/"),
                "edge route to the TRUSTED worker port (edge.allow_trusted): anyone reaching it can do anything"
            );
        }
        routes.push(EdgeRoute {
            upstream: upstream::resolve(&route.target, &config.engine, handoff)?,
            cors: route.target == RouteTarget::Rest && section.cors.is_some(),
            route: route.clone(),
        });
    }
    let acceptor = if edge.tls {
        let store = tls.ok_or(EdgeError::NoCertificates)?;
        let alpn = if section.h2 {
            Alpn::H2Http1
        } else {
            Alpn::Http1
        };
        Some(Arc::new(Acceptor::from_server_config(
            store.server_config(alpn)?,
        )))
    } else {
        None
    };
    let bind_error = |source| EdgeError::Bind {
        host: section.host.clone(),
        port: section.port,
        source,
    };
    let listener =
        std::net::TcpListener::bind((section.host.as_str(), section.port)).map_err(bind_error)?;
    listener.set_nonblocking(true).map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;

    // Half the cores by default, like the gateway's own runtime: the edge shares the host
    // with it (and usually the engine and its workers); on 2 cores a thread per core cost
    // 18% more CPU per request in cross-thread wakeups for 2% more throughput (BENCHMARKS.md).
    let threads = section.threads.map_or_else(
        || std::thread::available_parallelism().map_or(1, |n| (n.get() / 2).max(1)),
        |n| n.get(),
    );
    // Upstream TLS (an https rest_url, a wss stream_url) trusts engine.ca_file when set; it is
    // read here first so that a bad file is our clear error, not a failure inside pingora.
    let ca_file = match &config.engine.ca_file {
        Some(path) => {
            crate::tls::client_config_trusting(path).map_err(EdgeError::EngineCa)?;
            Some(path.display().to_string())
        }
        None => None,
    };
    let conf = ServerConf {
        threads,
        ca_file,
        grace_period_seconds: Some(GRACE_PERIOD_SECS),
        graceful_shutdown_timeout_seconds: Some(RUNTIME_SHUTDOWN_SECS),
        ..ServerConf::default()
    };
    let proxy = EdgeProxy {
        routes,
        cors: section.cors.as_ref().map(Cors::new),
        trusted_proxies: section
            .trusted_proxies
            .iter()
            .filter_map(|p| p.parse().ok())
            .collect(),
        tls: edge.tls,
        max_body_bytes: section.limits.max_body_bytes,
        connect_timeout: Duration::from_millis(section.limits.connect_timeout_ms),
        read_timeout: Duration::from_millis(section.limits.read_timeout_ms),
    };
    let (stop, stop_rx) = watch::channel(false);
    let (accepting, accepting_rx) = tokio::sync::oneshot::channel();
    let thread = std::thread::Builder::new()
        .name("edge".to_owned())
        .spawn(move || {
            let mut server = Server::new_with_opt_and_conf(None, conf);
            server.bootstrap();
            let app = Arc::new(http_proxy(&server.configuration, proxy));
            server.add_service(EdgeService {
                listener: Some(listener),
                acceptor,
                app,
                threads,
                accepting: Some(accepting),
            });
            server.run(RunArgs {
                shutdown_signal: Box::new(OurShutdown(stop_rx)),
            });
            tracing::debug!("edge: pingora stopped");
        })
        .map_err(EdgeError::Thread)?;
    Ok(Some(RunningEdge {
        addr,
        stop,
        thread,
        accepting: Some(accepting_rx),
    }))
}
