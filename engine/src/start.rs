//! Starting the engine from a validated config: bind every listener (so port 0 resolves),
//! spawn the accept loops and background tasks, and report the bound addresses.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;

use crate::config::EngineConfig;
use crate::engine::Engine;
use crate::task::{self, AbortOnDrop};
use crate::{events, http, listener};

/// Why the engine could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A listener could not bind.
    #[error("cannot listen on {host}:{port} for {what}: {source}")]
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

/// A running engine. Dropping it stops every listener and background task.
#[derive(Debug)]
pub struct RunningEngine {
    addrs: Vec<(String, SocketAddr)>,
    _tasks: Vec<AbortOnDrop<()>>,
    _engine: Arc<Engine>,
}

impl RunningEngine {
    /// Bound addresses keyed as in the ready file (`worker`, `worker:1`, …, `http`).
    pub fn addrs(&self) -> &[(String, SocketAddr)] {
        &self.addrs
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
    let mut tasks = Vec::new();
    let mut addrs = Vec::new();
    for (i, l) in config.worker_listeners.iter().enumerate() {
        let (tcp, addr) = bind("the worker listener (iii-worker-manager)", &l.host, l.port).await?;
        let key = if i == 0 {
            "worker".to_owned()
        } else {
            format!("worker:{i}")
        };
        addrs.push((key, addr));
        tasks.push(AbortOnDrop(task::spawn(listener::accept_loop(
            engine.clone(),
            tcp,
            l.handshake_timeout,
        ))));
    }
    if let (Some(h), Some(routes)) = (&config.http, &engine.http) {
        let (tcp, addr) = bind("the REST API (iii-http)", &h.host, h.port).await?;
        addrs.push(("http".to_owned(), addr));
        tasks.push(AbortOnDrop(task::spawn(http::serve(
            engine.clone(),
            routes.clone(),
            h.clone(),
            tcp,
        ))));
    }
    tasks.push(engine.channels.start_sweeper());
    tasks.push(events::start_functions_watch(&engine));
    Ok(RunningEngine {
        addrs,
        _tasks: tasks,
        _engine: engine,
    })
}
