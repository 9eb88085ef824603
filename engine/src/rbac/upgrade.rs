//! What follows the upgrade on an RBAC listener: authenticate, then serve a gated worker
//! session (`/`) or the telemetry drain (`/otel`), or refuse with `AUTH_ERROR`.

use std::net::SocketAddr;
use std::sync::Arc;

use policies::ListenerPolicy;
use serde_json::Value;
use tokio::net::TcpStream;
use tokio_tungstenite::WebSocketStream;

use super::auth::{authenticate, refuse};
use super::gate::Gate;
use crate::engine::Engine;
use crate::{listener, worker_conn};

/// `/` on an RBAC listener: a worker session behind a [`Gate`] once auth succeeds.
pub(crate) async fn serve_worker(
    engine: Arc<Engine>,
    policy: Arc<ListenerPolicy>,
    ws: WebSocketStream<TcpStream>,
    peer: SocketAddr,
    input: Value,
) {
    match authenticate(&engine, &policy, &input).await {
        Ok(session) => {
            let gate = Gate::new(policy, session);
            worker_conn::serve(engine, ws, peer, Some(gate)).await;
        }
        Err(reason) => {
            tracing::debug!(error = %reason, "auth failed; connection refused");
            refuse(ws, &reason).await;
        }
    }
}

/// `/otel` on an RBAC listener: the same auth gate, then the drain (no worker is registered).
pub(crate) async fn serve_otel(
    engine: Arc<Engine>,
    policy: Arc<ListenerPolicy>,
    ws: WebSocketStream<TcpStream>,
    input: Value,
) {
    match authenticate(&engine, &policy, &input).await {
        Ok(_) => listener::drain(ws).await,
        Err(reason) => {
            tracing::debug!(error = %reason, "auth failed on /otel; connection refused");
            refuse(ws, &reason).await;
        }
    }
}
