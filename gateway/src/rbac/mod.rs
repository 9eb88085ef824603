//! The public RBAC listeners: the only door an untrusted worker or browser reaches.
//!
//! Each listener accepts WebSocket upgrades (`/`, `/otel`, `/ws/channels/{id}`), authenticates
//! them (`authenticate.rs`), and bridges each session to its own upstream connection on the
//! engine's trusted port, gating every frame (`session.rs`); channels are bridged 1:1
//! (`channel_bridge.rs`). One control connection (`control.rs`) serves the auth function,
//! hooks, middleware and catalog calls for every listener.

mod accept;
mod auth_input;
mod authenticate;
mod channel_bridge;
mod control;
mod frames;
mod session;
mod upstream;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use policies::ListenerPolicy;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

use crate::auth::BuiltinAuth;
use crate::config::GatewayConfig;
use crate::limits::ConnectionLimits;
use crate::status::Status;
use crate::task::{self, AbortOnDrop};
use control::Control;

/// Socket read/write buffers: small, so an idle session costs little (ARCHITECTURE lessons).
const IO_BUFFER_BYTES: usize = 1 << 10;
/// How long the control connection gets to come up at start before listeners open anyway
/// (upgrades meanwhile get 503).
const CONTROL_STARTUP_WAIT: Duration = Duration::from_secs(3);
/// After the grace period, sessions get this long to close.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// How often the per-address upgrade-rate state is trimmed to the addresses seen lately.
const LIMITS_SWEEP: Duration = Duration::from_secs(10);

/// WebSocket settings for every gateway socket, with the largest message accepted.
pub(crate) fn ws_config(max_message: usize) -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(IO_BUFFER_BYTES)
        .write_buffer_size(IO_BUFFER_BYTES)
        .max_message_size(Some(max_message))
        .max_frame_size(Some(max_message))
}

/// Resolves once shutdown is signalled (or its sender is gone).
pub(crate) async fn stopped(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

/// Why the RBAC listeners could not start.
#[derive(Debug, thiserror::Error)]
pub enum RbacStartError {
    /// A listener could not bind.
    #[error("{key}: cannot listen on {addr}: {source}")]
    Bind {
        /// The listener.
        key: String,
        /// The address.
        addr: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// A listener asks for TLS but no certificate store was given.
    #[error("{0}: tls: true but no certificates are loaded")]
    NoTls(String),
    /// `engine.ca_file` could not be loaded.
    #[error("engine.ca_file: {0}")]
    EngineCa(crate::tls::TlsError),
    /// The built-in auth block did not compile.
    #[error("{key}: auth: {problem}")]
    Auth {
        /// The listener.
        key: String,
        /// What is wrong.
        problem: String,
    },
}

/// How the gateway dials the engine's WebSocket surfaces (control connection, `wss://`
/// session upstreams, channels): `engine.ca_file`'s CAs when set, else the public web PKI.
#[derive(Debug, Clone, Default)]
pub(crate) struct EngineTls(Option<Arc<rustls::ClientConfig>>);

impl EngineTls {
    /// Opens a WebSocket to `url` (`ws://` or `wss://`).
    pub(crate) async fn connect(
        &self,
        url: &str,
        config: WebSocketConfig,
    ) -> Result<
        (
            tokio_tungstenite::WebSocketStream<
                tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
            >,
            tokio_tungstenite::tungstenite::handshake::client::Response,
        ),
        tokio_tungstenite::tungstenite::Error,
    > {
        let connector = self
            .0
            .as_ref()
            .map(|c| tokio_tungstenite::Connector::Rustls(Arc::clone(c)));
        tokio_tungstenite::connect_async_tls_with_config(url, Some(config), true, connector).await
    }
}

/// Where the edge hands requests for a listener: a loopback socket that trusts the
/// `X-Forwarded-For` of requests carrying `secret` in `x-iii-edge-secret`.
#[derive(Debug, Clone)]
pub struct EdgeHandoff {
    /// Loopback address of the handoff socket (plain HTTP/1.1).
    pub addr: SocketAddr,
    /// The per-process secret the edge sends.
    pub secret: Arc<str>,
}

/// What every connection of one listener shares.
#[derive(Debug)]
pub(crate) struct ListenerState {
    pub(crate) key: String,
    pub(crate) policy: Arc<ListenerPolicy>,
    pub(crate) builtin: Option<BuiltinAuth>,
    pub(crate) control: Control,
    /// `engine.url` without a trailing slash.
    pub(crate) engine_base: String,
    /// How `wss://` engine URLs are dialled.
    pub(crate) engine_tls: EngineTls,
    pub(crate) status: Arc<Status>,
    pub(crate) trusted_proxies: Vec<IpAddr>,
    pub(crate) edge_secret: Arc<str>,
    pub(crate) shutdown: watch::Receiver<bool>,
    /// Sessions and channels open on every listener (for the drain).
    pub(crate) open: Arc<AtomicUsize>,
    /// Connection caps and the per-address upgrade rate.
    pub(crate) limits: ConnectionLimits,
    /// Function ids the gateway calls with trust (every listener's auth function, middleware
    /// and hooks): no session may register them.
    pub(crate) reserved: Arc<std::collections::HashSet<String>>,
}

impl ListenerState {
    /// Whether a session may not register `stored_id`: one of the ids the gateway calls with
    /// trust, or the gateway's own.
    pub(crate) fn reserved_function(&self, stored_id: &str) -> bool {
        self.reserved.contains(stored_id) || stored_id.starts_with("iii-gateway::")
    }

    /// `limits.max_message_bytes`.
    pub(crate) fn max_message_bytes(&self) -> usize {
        usize::try_from(self.policy.config().limits.max_message_bytes).unwrap_or(usize::MAX)
    }

    /// The largest message read off a client socket: messages between `max_message_bytes`
    /// and this are read so an invoke can be answered `payload_too_large`; above it, 1009.
    pub(crate) fn read_ceiling(&self) -> usize {
        let max = self.max_message_bytes();
        max.saturating_add(max.min(16 << 20))
    }
}

/// The running RBAC listeners.
#[derive(Debug)]
pub struct RunningRbac {
    addrs: Vec<(String, SocketAddr)>,
    handoffs: Vec<(String, EdgeHandoff)>,
    accept_loops: Vec<AbortOnDrop<()>>,
    _control: Option<AbortOnDrop<()>>,
    shutdown: watch::Sender<bool>,
    open: Arc<AtomicUsize>,
}

/// Binds every RBAC listener (port 0 resolves), starts the control connection and the accept
/// loops.
///
/// # Errors
/// A bind failure, a TLS listener without certificates, or a built-in auth block that does
/// not compile.
pub async fn start(
    config: &GatewayConfig,
    tls: Option<Arc<rustls::ServerConfig>>,
    status: Arc<Status>,
) -> Result<RunningRbac, RbacStartError> {
    let (shutdown, shutdown_rx) = watch::channel(false);
    let open = Arc::new(AtomicUsize::new(0));
    let mut running = RunningRbac {
        addrs: Vec::new(),
        handoffs: Vec::new(),
        accept_loops: Vec::new(),
        _control: None,
        shutdown,
        open: Arc::clone(&open),
    };
    if config.listeners.is_empty() {
        return Ok(running);
    }
    let engine_tls = match &config.engine.ca_file {
        Some(path) => EngineTls(Some(
            crate::tls::client_config_trusting(path).map_err(RbacStartError::EngineCa)?,
        )),
        None => EngineTls::default(),
    };
    let (control, control_task) = Control::start(
        config.engine.url.clone(),
        engine_tls.clone(),
        Arc::clone(&status),
    );
    running._control = Some(control_task);
    let secret: Arc<str> = uuid::Uuid::new_v4().simple().to_string().into();
    let engine_base = config.engine.url.trim_end_matches('/').to_owned();
    let reserved: Arc<std::collections::HashSet<String>> = Arc::new(
        config
            .listeners
            .iter()
            .flat_map(|l| {
                let c = l.config();
                let rbac = c.rbac.as_ref();
                [
                    c.middleware_function_id.clone(),
                    rbac.and_then(|r| r.auth_function_id.clone()),
                    rbac.and_then(|r| r.on_function_registration_function_id.clone()),
                    rbac.and_then(|r| r.on_trigger_registration_function_id.clone()),
                    rbac.and_then(|r| r.on_trigger_type_registration_function_id.clone()),
                ]
            })
            .flatten()
            .collect(),
    );
    let mut bound = Vec::new();
    for listener in &config.listeners {
        let c = listener.config();
        let builtin = match &c.auth {
            Some(auth) => Some(BuiltinAuth::from_config(&auth.0).map_err(|errors| {
                RbacStartError::Auth {
                    key: listener.key.clone(),
                    problem: errors
                        .iter()
                        .map(ToString::to_string)
                        .collect::<Vec<_>>()
                        .join("; "),
                }
            })?),
            None => None,
        };
        let acceptor = match (c.tls, &tls) {
            (false, _) => None,
            (true, Some(server)) => Some(tokio_rustls::TlsAcceptor::from(Arc::clone(server))),
            (true, None) => return Err(RbacStartError::NoTls(listener.key.clone())),
        };
        let addr = format!("{}:{}", c.host, c.port);
        let public = TcpListener::bind(&addr)
            .await
            .map_err(|source| RbacStartError::Bind {
                key: listener.key.clone(),
                addr: addr.clone(),
                source,
            })?;
        let handoff =
            TcpListener::bind("127.0.0.1:0")
                .await
                .map_err(|source| RbacStartError::Bind {
                    key: listener.key.clone(),
                    addr: "127.0.0.1:0".to_owned(),
                    source,
                })?;
        let state = Arc::new(ListenerState {
            key: listener.key.clone(),
            policy: Arc::clone(&listener.policy),
            builtin,
            control: control.clone(),
            engine_base: engine_base.clone(),
            engine_tls: engine_tls.clone(),
            status: Arc::clone(&status),
            trusted_proxies: c
                .trusted_proxies
                .iter()
                .filter_map(|p| p.parse().ok())
                .collect(),
            edge_secret: Arc::clone(&secret),
            shutdown: shutdown_rx.clone(),
            open: Arc::clone(&open),
            limits: ConnectionLimits::new(&c.limits),
            reserved: Arc::clone(&reserved),
        });
        bound.push((state, public, acceptor, handoff));
    }
    // Give the control connection a moment so the first upgrades do not get 503.
    if !control.wait_connected(CONTROL_STARTUP_WAIT).await {
        tracing::warn!(url = %config.engine.url, "the engine is not reachable yet; upgrades get 503 until it is");
    }
    for (state, public, acceptor, handoff) in bound {
        let local = public.local_addr().map_err(|source| RbacStartError::Bind {
            key: state.key.clone(),
            addr: String::new(),
            source,
        })?;
        let handoff_addr = handoff
            .local_addr()
            .map_err(|source| RbacStartError::Bind {
                key: state.key.clone(),
                addr: String::new(),
                source,
            })?;
        running.addrs.push((state.key.clone(), local));
        running.handoffs.push((
            state.key.clone(),
            EdgeHandoff {
                addr: handoff_addr,
                secret: Arc::clone(&secret),
            },
        ));
        tracing::info!(listener = %state.key, %local, tls = acceptor.is_some(), "RBAC listener accepting");
        let edge_state = Arc::clone(&state);
        let sweep_state = Arc::clone(&state);
        running
            .accept_loops
            .push(AbortOnDrop(task::spawn(async move {
                let mut every = tokio::time::interval(LIMITS_SWEEP);
                loop {
                    every.tick().await;
                    sweep_state.limits.retain_recent();
                }
            })));
        running
            .accept_loops
            .push(AbortOnDrop(task::spawn(accept::accept_loop(
                state, public, acceptor, false,
            ))));
        running
            .accept_loops
            .push(AbortOnDrop(task::spawn(accept::accept_loop(
                edge_state, handoff, None, true,
            ))));
    }
    Ok(running)
}

impl RunningRbac {
    /// Bound addresses keyed as in the ready file (`listener:<name>`).
    #[must_use]
    pub fn addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// The edge handoff of a listener, by key (`listener:<name>`).
    #[must_use]
    pub fn handoff(&self, key: &str) -> Option<EdgeHandoff> {
        self.handoffs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, handoff)| handoff.clone())
    }

    /// Stops accepting, lets sessions run for up to `grace` (they end early if every client
    /// leaves), then closes the rest with 1001 and waits briefly for them to finish.
    pub async fn shutdown(mut self, grace: Duration) {
        self.accept_loops.clear();
        let deadline = Instant::now() + grace;
        while self.open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        self.shutdown.send_replace(true);
        let deadline = Instant::now() + CLOSE_WAIT;
        while self.open.load(Ordering::Relaxed) > 0 && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
    }
}
