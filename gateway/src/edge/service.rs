//! The edge's accept loop as a pingora service: it accepts on a socket we bound ourselves
//! (so a bind failure is our clear error, and port 0 reports its real port), runs the TLS
//! handshake with our rustls `ServerConfig` (server cipher order, shared reloadable SNI
//! resolver, ALPN per listener), then hands each connection to pingora's HTTP proxy.

use std::os::fd::AsRawFd as _;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pingora::apps::ServerApp as _;
use pingora::listeners::tls::Acceptor;
use pingora::protocols::l4::stream::Stream as L4Stream;
use pingora::protocols::{GetSocketDigest as _, SocketDigest, Stream};
use pingora::proxy::HttpProxy;
use pingora::server::{ListenFds, ShutdownWatch};
use pingora::services::Service;
use tokio::net::{TcpListener, TcpStream};

use super::proxy::EdgeProxy;
use super::write_buffer::BufferedL4;
use crate::task;

/// A client gets this long to finish its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after an accept error (e.g. out of file descriptors) before accepting again.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The pingora service hosting the edge.
pub(crate) struct EdgeService {
    pub(crate) listener: Option<std::net::TcpListener>,
    pub(crate) acceptor: Option<Arc<Acceptor>>,
    pub(crate) app: Arc<HttpProxy<EdgeProxy>>,
    pub(crate) threads: usize,
    /// Told once the accept loop runs.
    pub(crate) accepting: Option<tokio::sync::oneshot::Sender<()>>,
}

#[async_trait]
impl Service for EdgeService {
    async fn start_service(
        &mut self,
        _fds: Option<ListenFds>,
        mut shutdown: ShutdownWatch,
        _listeners_per_fd: usize,
    ) {
        let Some(std_listener) = self.listener.take() else {
            return;
        };
        let listener = match TcpListener::from_std(std_listener) {
            Ok(l) => l,
            Err(error) => {
                tracing::error!(error = %error, "edge: cannot use the bound socket");
                return;
            }
        };
        if let Some(accepting) = self.accepting.take() {
            let _ = accepting.send(());
        }
        loop {
            let accepted = tokio::select! {
                accepted = listener.accept() => accepted,
                changed = shutdown.changed() => {
                    if changed.is_err() || *shutdown.borrow() {
                        tracing::debug!("edge: stopped accepting");
                        return;
                    }
                    continue;
                }
            };
            match accepted {
                Ok((tcp, _)) => {
                    let acceptor = self.acceptor.clone();
                    let app = self.app.clone();
                    let shutdown = shutdown.clone();
                    drop(task::spawn(serve_connection(tcp, acceptor, app, shutdown)));
                }
                Err(error) => {
                    tracing::warn!(error = %error, "edge: accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            }
        }
    }

    fn name(&self) -> &'static str {
        "iii-gateway edge"
    }

    fn threads(&self) -> Option<usize> {
        Some(self.threads)
    }
}

/// One downstream connection: TLS (when configured), then HTTP requests until it closes.
async fn serve_connection(
    tcp: TcpStream,
    acceptor: Option<Arc<Acceptor>>,
    app: Arc<HttpProxy<EdgeProxy>>,
    shutdown: ShutdownWatch,
) {
    let _ = tcp.set_nodelay(true);
    let mut l4: L4Stream = tcp.into();
    let digest = SocketDigest::from_raw_fd(l4.as_raw_fd());
    l4.set_socket_digest(digest);
    // Under TLS too: the buffer sits below rustls, so a response's records leave together.
    let l4 = BufferedL4::new(l4);
    let stream: Stream = match acceptor {
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.tls_handshake(l4)).await {
                Ok(Ok(tls)) => Box::new(tls),
                Ok(Err(error)) => {
                    tracing::debug!(error = %error, "edge: TLS handshake failed");
                    return;
                }
                Err(_) => {
                    tracing::debug!("edge: TLS handshake timed out");
                    return;
                }
            }
        }
        None => Box::new(l4),
    };
    let mut next = app.process_new(stream, &shutdown).await;
    while let Some(stream) = next {
        next = app.process_new(stream, &shutdown).await;
    }
}
