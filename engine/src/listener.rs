//! The worker listeners (`iii-worker-manager`: the trusted 49134, and RBAC listeners): accept
//! TCP, perform the WebSocket upgrade within `handshake_timeout_ms`, and route by path — `/`
//! to a worker session, `/otel` to a drain, `/ws/channels/{id}` to a channel end (404 before
//! the upgrade for an unknown id or key). On an RBAC listener `/` and `/otel` authenticate
//! first (`crate::rbac`); channels are a capability check on both kinds.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use http::StatusCode;
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::{WebSocketStream, accept_hdr_async_with_config};
use tracing::Instrument;

use crate::channels::{self, Direction, End};
use policies::ListenerPolicy;
use serde_json::Value;

use crate::engine::{Engine, shutting_down};
use crate::{rbac, worker_conn};

/// Largest message accepted (fragments reassembled); larger ones close the socket with 1009.
pub(crate) const MAX_MESSAGE_BYTES: usize = 64 << 20;
/// Read and write buffers stay small so an idle connection costs a few KiB, not 128.
const IO_BUFFER_BYTES: usize = 4 << 10;
/// Accept errors (fd exhaustion) back off this long so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The WebSocket settings every engine socket uses.
pub(crate) fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(IO_BUFFER_BYTES)
        .write_buffer_size(IO_BUFFER_BYTES)
        .max_message_size(Some(MAX_MESSAGE_BYTES))
        .max_frame_size(Some(MAX_MESSAGE_BYTES))
}

/// Where an upgrade request goes.
#[derive(Debug)]
enum Route {
    Worker,
    Otel,
    Channel {
        id: String,
        key: String,
        direction: Direction,
    },
}

/// Accepts connections until the task is dropped; each connection is owned by the loop's
/// `JoinSet` and aborted with it. `rbac` is the policy of an RBAC listener; `None` for a
/// trusted one.
pub(crate) async fn accept_loop(
    engine: Arc<Engine>,
    listener: TcpListener,
    handshake_timeout: Duration,
    rbac: Option<Arc<ListenerPolicy>>,
) {
    let name = if rbac.is_some() { "rbac" } else { "worker" };
    let mut conns = JoinSet::new();
    let mut shutdown = engine.shutdown.subscribe();
    loop {
        tokio::select! {
            () = shutting_down(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let _ = stream.set_nodelay(true);
                    let span = tracing::debug_span!("conn", client.addr = %peer, listener = name);
                    let conn = handle(engine.clone(), stream, peer, handshake_timeout, rbac.clone());
                    conns.spawn(conn.instrument(span));
                }
                Err(e) => {
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    // Shutting down: no new connections; the open ones end when the engine closes them.
    drop(listener);
    while conns.join_next().await.is_some() {}
}

fn not_found() -> ErrorResponse {
    let mut resp = ErrorResponse::new(Some("Not Found".to_owned()));
    *resp.status_mut() = StatusCode::NOT_FOUND;
    resp
}

fn route_request(engine: &Engine, req: &Request) -> Option<Route> {
    let path = req.uri().path();
    match path {
        "/" | "" => Some(Route::Worker),
        "/otel" => Some(Route::Otel),
        _ => {
            let id = path
                .strip_prefix("/ws/channels/")
                .filter(|id| !id.is_empty() && !id.contains('/'))?;
            let mut key = None;
            let mut dir = None;
            for (k, v) in form_urlencoded::parse(req.uri().query().unwrap_or_default().as_bytes()) {
                match k.as_ref() {
                    "key" => key = Some(v.into_owned()),
                    "dir" => dir = Direction::parse(&v),
                    _ => {}
                }
            }
            match (key, dir) {
                (Some(key), Some(direction)) if engine.channels.exists(id, &key) => {
                    Some(Route::Channel {
                        id: id.to_owned(),
                        key,
                        direction,
                    })
                }
                _ => None,
            }
        }
    }
}

async fn handle(
    engine: Arc<Engine>,
    stream: TcpStream,
    peer: SocketAddr,
    handshake_timeout: Duration,
    rbac: Option<Arc<ListenerPolicy>>,
) {
    let mut route = None;
    // On an RBAC listener, what the auth function will see of the upgrade request.
    let mut auth_input: Option<Value> = None;
    #[allow(clippy::result_large_err, reason = "tungstenite's callback signature")]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        let found = route_request(&engine, req).ok_or_else(not_found)?;
        if rbac.is_some() && matches!(found, Route::Worker | Route::Otel) {
            auth_input = Some(rbac::auth_input(req, peer));
        }
        route = Some(found);
        Ok(resp)
    };
    let upgraded = tokio::time::timeout(
        handshake_timeout,
        accept_hdr_async_with_config(stream, callback, Some(ws_config())),
    )
    .await;
    let ws = match upgraded {
        Ok(Ok(ws)) => ws,
        Ok(Err(e)) => {
            tracing::debug!(error = %e, "upgrade refused or failed");
            return;
        }
        Err(_) => {
            tracing::debug!("handshake timed out");
            return;
        }
    };
    match (route, rbac) {
        (Some(Route::Worker), None) => worker_conn::serve(engine, ws, peer, None).await,
        (Some(Route::Worker), Some(policy)) => {
            let input = auth_input.unwrap_or(Value::Null);
            rbac::serve_worker(engine, policy, ws, peer, input).await;
        }
        (Some(Route::Otel), None) => drain(ws).await,
        (Some(Route::Otel), Some(policy)) => {
            let input = auth_input.unwrap_or(Value::Null);
            rbac::serve_otel(engine, policy, ws, input).await;
        }
        (Some(Route::Channel { id, key, direction }), _) => {
            match engine.channels.take(&id, &key, direction) {
                Some(End::Writer(tx)) => channels::serve_writer(ws, tx).await,
                Some(End::Reader(rx)) => {
                    channels::serve_reader(ws, rx).await;
                    // The reader is done: the channel is over.
                    engine.channels.remove_str(&id);
                }
                None => {
                    // That end is already taken: upgraded, then closed at once (spec §4).
                    let mut ws = ws;
                    let _ = ws.close(None).await;
                }
            }
        }
        (None, _) => {}
    }
}

/// `/otel`: telemetry frames are accepted and discarded (rejecting them makes the SDK
/// exporters reconnect forever).
pub(crate) async fn drain(mut ws: WebSocketStream<TcpStream>) {
    while let Some(Ok(msg)) = ws.next().await {
        if msg.is_close() {
            break;
        }
    }
}
