//! The admin HTTP/1.1 server (hyper): binds, routes the four paths, and stops on shutdown.
//! What each path reports is `probes.rs` and `metrics.rs`; counters are [`Status`]'s.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::metrics;
use super::probes::Probes;
use crate::config::{AdminSection, EngineTarget};
use crate::status::Status;
use crate::task::{self, AbortOnDrop};

/// A client gets this long to send its request head.
const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Pause after an accept error before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Why the admin listener could not start.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The address could not be bound.
    #[error(
        "cannot listen on {host}:{port} for the admin listener (admin.host/admin.port): {source}"
    )]
    Bind {
        /// Configured host.
        host: String,
        /// Configured port.
        port: u16,
        /// The OS error.
        source: std::io::Error,
    },
}

/// The running admin listener; dropping it stops it.
#[derive(Debug)]
pub struct RunningAdmin {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: AbortOnDrop<()>,
}

impl RunningAdmin {
    /// The bound address.
    #[must_use]
    pub const fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and closes open admin connections.
    pub async fn shutdown(mut self) {
        self.stop.send_replace(true);
        let _ = (&mut self.task.0).await;
    }
}

struct Shared {
    status: Arc<Status>,
    probes: Probes,
}

/// Binds and serves the admin listener. Must run inside a tokio runtime.
///
/// # Errors
/// The bind failure.
pub async fn start(
    section: &AdminSection,
    engine: &EngineTarget,
    readiness_path: Option<String>,
    status: Arc<Status>,
) -> Result<RunningAdmin, AdminError> {
    let bind_error = |source| AdminError::Bind {
        host: section.host.clone(),
        port: section.port,
        source,
    };
    let listener = TcpListener::bind((section.host.as_str(), section.port))
        .await
        .map_err(bind_error)?;
    let addr = listener.local_addr().map_err(bind_error)?;
    let shared = Arc::new(Shared {
        status,
        probes: Probes {
            worker_url: engine.url.clone(),
            rest_url: engine.rest_url.clone(),
            readiness_path,
        },
    });
    let (stop, stop_rx) = watch::channel(false);
    let task = AbortOnDrop(task::spawn(accept_loop(listener, shared, stop_rx)));
    Ok(RunningAdmin { addr, stop, task })
}

async fn accept_loop(listener: TcpListener, shared: Arc<Shared>, mut stop: watch::Receiver<bool>) {
    let mut connections = JoinSet::new();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            changed = stop.changed() => {
                if changed.is_err() || *stop.borrow() {
                    break;
                }
                continue;
            }
            Some(_) = connections.join_next() => continue,
        };
        let (tcp, _) = match accepted {
            Ok(pair) => pair,
            Err(error) => {
                tracing::warn!(error = %error, "admin: accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
                continue;
            }
        };
        let shared = shared.clone();
        connections.spawn(async move {
            let service = service_fn(move |req| {
                let shared = shared.clone();
                async move { Ok::<_, Infallible>(handle(&shared, &req).await) }
            });
            let result = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(tcp), service)
                .await;
            if let Err(error) = result {
                tracing::debug!(error = %error, "admin: connection ended with an error");
            }
        });
    }
    connections.shutdown().await;
}

async fn handle(shared: &Shared, req: &Request<Incoming>) -> Response<Full<Bytes>> {
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return text(StatusCode::METHOD_NOT_ALLOWED, "GET only\n");
    }
    match req.uri().path() {
        "/healthz" => text(StatusCode::OK, "ok\n"),
        "/readyz" => {
            let (ready, report) = shared.probes.run().await;
            let code = if ready {
                StatusCode::OK
            } else {
                StatusCode::SERVICE_UNAVAILABLE
            };
            json(code, &report)
        }
        "/status" => json(StatusCode::OK, &shared.status.snapshot()),
        "/metrics" => respond(
            StatusCode::OK,
            "text/plain; version=0.0.4; charset=utf-8",
            metrics::render(&shared.status).into(),
        ),
        _ => text(StatusCode::NOT_FOUND, "not found\n"),
    }
}

fn text(code: StatusCode, body: &'static str) -> Response<Full<Bytes>> {
    respond(
        code,
        "text/plain; charset=utf-8",
        Bytes::from_static(body.as_bytes()),
    )
}

fn json(code: StatusCode, value: &serde_json::Value) -> Response<Full<Bytes>> {
    let mut body = value.to_string();
    body.push('\n');
    respond(code, "application/json", body.into())
}

fn respond(code: StatusCode, content_type: &'static str, body: Bytes) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(body));
    *response.status_mut() = code;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static(content_type),
    );
    response
}
