//! Starting the engine from a validated config: bind every listener (so port 0 resolves),
//! spawn the accept loops and background tasks, and report the bound addresses.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio::time::Instant;

use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::task::{self, AbortOnDrop};
use crate::{events, http, listener};

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {host}:{port} for {what}")]
    Bind {
        /// Which listener.
        what: &'static str,
        /// Configured host.
        host: String,
        /// Configured port.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
}

/// A running engine. Dropping it stops every listener and background task at once;
/// [`RunningEngine::shutdown`] stops it gracefully.
#[derive(Debug)]
pub struct RunningEngine {
    addrs: Vec<(String, SocketAddr)>,
    /// Accept loops; each owns its connections and ends once they have.
    listeners: Vec<AbortOnDrop<()>>,
    /// Sweepers and event debouncers: they never end by themselves.
    _background: Vec<AbortOnDrop<()>>,
    engine: Arc<Engine>,
}

/// How often a shutdown checks whether calls in flight have finished.
const DRAIN_POLL: Duration = Duration::from_millis(20);
/// How long connections get to close once the engine has told them to.
const CLOSE_WAIT: Duration = Duration::from_secs(2);

impl RunningEngine {
    /// Bound addresses keyed as in the ready file (`worker`, `worker:1`, …, `http`).
    pub fn addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
    }

    /// Stops gracefully: listeners stop accepting, calls in flight get up to `grace` to
    /// deliver their results, then every worker is closed with 1001 (going away) and the
    /// REST API finishes the requests it is serving.
    pub async fn shutdown(mut self, grace: Duration) {
        let deadline = Instant::now() + grace;
        self.engine.shutdown.send_replace(true);
        while !self.engine.pending.is_empty() && Instant::now() < deadline {
            tokio::time::sleep(DRAIN_POLL).await;
        }
        let left = self.engine.pending.len();
        if left > 0 {
            tracing::warn!(
                invocations = left,
                "shutdown grace over with calls still in flight"
            );
        }
        for worker in self.engine.workers.iter() {
            worker.go_away();
        }
        let listeners = std::mem::take(&mut self.listeners);
        let all_closed = async {
            for mut l in listeners {
                let _ = (&mut l.0).await;
            }
        };
        if tokio::time::timeout(CLOSE_WAIT, all_closed).await.is_err() {
            tracing::debug!("connections still open after the close wait; dropped");
        }
    }
}

/// Binds one listener, naming it and its address in the error.
async fn bind(
    what: &'static str,
    host: &str,
    port: u16,
) -> Result<(TcpListener, SocketAddr), StartError> {
    let listener = TcpListener::bind((host, port)).await;
    let listener = listener.map_err(|source| StartError::Bind {
        what,
        host: host.to_owned(),
        port,
        source,
    })?;
    let addr = listener.local_addr().map_err(|source| StartError::Bind {
        what,
        host: host.to_owned(),
        port,
        source,
    })?;
    Ok((listener, addr))
}

/// Binds and starts everything `config` lists. Must run inside a tokio runtime.
pub async fn start(config: &EngineConfig) -> Result<RunningEngine, StartError> {
    let engine = Engine::new(config.http.is_some());
    let mut listeners = Vec::new();
    let mut addrs = Vec::new();
    for (i, l) in config.worker_listeners.iter().enumerate() {
        let what = if l.rbac.is_some() {
            "an RBAC worker listener (iii-worker-manager with rbac)"
        } else {
            "the worker listener (iii-worker-manager)"
        };
        let (tcp, addr) = bind(what, &l.host, l.port).await?;
        let key = if i == 0 {
            "worker".to_owned()
        } else {
            format!("worker:{i}")
        };
        let policy = l.rbac.as_ref().map(|r| r.policy().clone());
        if let Some(policy) = &policy {
            tracing::info!(
                listener = %key,
                addr = %addr,
                auth = policy.auth_function_id().is_some(),
                middleware = policy.config().middleware_function_id.is_some(),
                "RBAC listener enforced in process"
            );
        }
        addrs.push((key, addr));
        listeners.push(AbortOnDrop(task::spawn(listener::accept_loop(
            engine.clone(),
            tcp,
            l.handshake_timeout,
            policy,
        ))));
    }
    if let (Some(h), Some(routes)) = (&config.http, &engine.http) {
        let (tcp, addr) = bind("the REST API (iii-http)", &h.host, h.port).await?;
        addrs.push(("http".to_owned(), addr));
        listeners.push(AbortOnDrop(task::spawn(http::serve(
            engine.clone(),
            routes.clone(),
            h.clone(),
            tcp,
        ))));
    }
    let background = vec![
        engine.channels.start_sweeper(),
        events::start_functions_watch(&engine),
    ];
    Ok(RunningEngine {
        addrs,
        listeners,
        _background: background,
        engine,
    })
}
