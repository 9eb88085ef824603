//! Accepting connections on an RBAC listener: optional TLS, the HTTP/1.1 upgrade request read
//! within `handshake_timeout_ms`, and every refusal answered in HTTP *before* the upgrade —
//! 404 for an unknown path or channel, 426 for a non-WebSocket request, 503 (+ `Retry-After`)
//! while the engine is unreachable or the gateway is stopping. Accepted upgrades run as a
//! worker session, a telemetry sink (`/otel`) or a channel bridge.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http::{HeaderValue, Request, Response, StatusCode, header};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::protocol::{CloseFrame, Role};
use tracing::Instrument as _;

use super::auth_input::{EDGE_SECRET_HEADER, RequestInfo, client_ip};
use super::authenticate::authenticate;
use super::upstream::Upstream;
use super::{ListenerState, channel_bridge, frames, session, ws_config};
use crate::status::{bump, drop_one};
use crate::task;

/// Accept errors (fd exhaustion) back off this long so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Largest upgrade request head (a long JWT fits).
const MAX_HEAD_BYTES: usize = 32 << 10;
/// `Retry-After` for 503 answers, in seconds.
const RETRY_AFTER_SECS: &str = "2";
/// Dialling the engine for a session.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a refused client gets to read the AUTH_ERROR frame and the close.
const CLOSE_LINGER: Duration = Duration::from_secs(1);

type Body = Full<Bytes>;

/// Where an upgrade goes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Worker,
    Otel,
    Channel(String),
}

/// Accepts connections until the gateway stops (the task is aborted) or shutdown is signalled.
pub(crate) async fn accept_loop(
    state: Arc<ListenerState>,
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    via_edge: bool,
) {
    let mut shutdown = state.shutdown.clone();
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = super::stopped(&mut shutdown) => return,
        };
        match accepted {
            Ok((stream, peer)) => {
                let state = Arc::clone(&state);
                let tls = tls.clone();
                let span = tracing::debug_span!("conn", listener = %state.key, %peer);
                task::spawn(serve_connection(state, stream, peer, tls, via_edge).instrument(span));
            }
            Err(error) => {
                tracing::warn!(listener = %state.key, %error, "accept failed");
                tokio::time::sleep(ACCEPT_BACKOFF).await;
            }
        }
    }
}

async fn serve_connection(
    state: Arc<ListenerState>,
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<tokio_rustls::TlsAcceptor>,
    via_edge: bool,
) {
    let _ = stream.set_nodelay(true);
    let handshake = Duration::from_millis(state.policy.config().handshake_timeout_ms);
    match tls {
        Some(acceptor) => match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
            Ok(Ok(stream)) => serve_http(state, stream, peer, via_edge, handshake).await,
            Ok(Err(error)) => tracing::debug!(%peer, %error, "TLS handshake failed"),
            Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
        },
        None => serve_http(state, stream, peer, via_edge, handshake).await,
    }
}

async fn serve_http<IO>(
    state: Arc<ListenerState>,
    io: IO,
    peer: SocketAddr,
    via_edge: bool,
    handshake: Duration,
) where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        async move { Ok::<_, Infallible>(upgrade(state, request, peer, via_edge).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(handshake)
        .max_buf_size(MAX_HEAD_BYTES)
        .keep_alive(false)
        .serve_connection(TokioIo::new(io), service)
        .with_upgrades();
    if let Err(error) = connection.await {
        tracing::debug!(%peer, %error, "upgrade request failed");
    }
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(Full::new(Bytes::from_static(text.as_bytes())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    response
}

fn unavailable(text: &'static str) -> Response<Body> {
    let mut response = plain(StatusCode::SERVICE_UNAVAILABLE, text);
    response.headers_mut().insert(
        header::RETRY_AFTER,
        HeaderValue::from_static(RETRY_AFTER_SECS),
    );
    response
}

fn route(path: &str) -> Option<Route> {
    match path {
        "/" | "" => Some(Route::Worker),
        "/otel" => Some(Route::Otel),
        _ => {
            let id = path.strip_prefix("/ws/channels/")?;
            (!id.is_empty() && !id.contains('/')).then(|| Route::Channel(id.to_owned()))
        }
    }
}

fn is_websocket_upgrade(request: &Request<Incoming>) -> bool {
    let has_token = |name: header::HeaderName, token: &str| {
        request.headers().get_all(name).iter().any(|value| {
            value.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    };
    request.method() == http::Method::GET
        && has_token(header::CONNECTION, "upgrade")
        && has_token(header::UPGRADE, "websocket")
        && request
            .headers()
            .get(header::SEC_WEBSOCKET_VERSION)
            .is_some_and(|v| v.as_bytes() == b"13")
}

async fn upgrade(
    state: Arc<ListenerState>,
    mut request: Request<Incoming>,
    peer: SocketAddr,
    via_edge: bool,
) -> Response<Body> {
    let Some(route) = route(request.uri().path()) else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    if !is_websocket_upgrade(&request) {
        let mut response = plain(StatusCode::UPGRADE_REQUIRED, "expected a WebSocket upgrade");
        response
            .headers_mut()
            .insert(header::UPGRADE, HeaderValue::from_static("websocket"));
        return response;
    }
    let Some(key) = request.headers().get(header::SEC_WEBSOCKET_KEY).cloned() else {
        return plain(StatusCode::BAD_REQUEST, "missing Sec-WebSocket-Key");
    };
    let edge_trusted = via_edge
        && request
            .headers()
            .get(EDGE_SECRET_HEADER)
            .is_some_and(|v| bool::from(v.as_bytes().ct_eq(state.edge_secret.as_bytes())));
    if via_edge && !edge_trusted {
        return plain(StatusCode::FORBIDDEN, "forbidden");
    }
    if *state.shutdown.borrow() {
        return unavailable("gateway shutting down");
    }
    let ip = client_ip(
        peer.ip(),
        request.headers(),
        &state.trusted_proxies,
        edge_trusted,
    );
    let permit = match state.limits.admit(ip) {
        Ok(permit) => permit,
        Err(refusal) => {
            bump(&state.status.rate_limited);
            tracing::info!(target: "audit", listener = %state.key, %ip, kind = "upgrade", code = refusal.config_key(), "{refusal}");
            let mut response = plain(refusal.status(), "connection limit reached");
            response.headers_mut().insert(
                header::RETRY_AFTER,
                HeaderValue::from_static(RETRY_AFTER_SECS),
            );
            return response;
        }
    };
    let info = RequestInfo::new(request.headers(), request.uri().query(), ip);

    let channel_upstream = match &route {
        Route::Worker | Route::Otel => {
            if !state.control.is_connected() {
                return unavailable("engine unavailable");
            }
            None
        }
        Route::Channel(id) => {
            if state.policy.config().channels.require_auth
                && let Err(message) = authenticate(&state, &info).await
            {
                bump(&state.status.auth_failures);
                tracing::info!(target: "audit", listener = %state.key, %ip, kind = "channel", code = "AUTH_ERROR", "{message}");
                return plain(StatusCode::UNAUTHORIZED, "authentication failed");
            }
            match channel_bridge::dial(&state, id, request.uri().query()).await {
                Ok(upstream) => Some(Box::new(upstream)),
                Err(channel_bridge::DialError::NotFound) => {
                    return plain(StatusCode::NOT_FOUND, "Channel not found");
                }
                Err(channel_bridge::DialError::Unreachable) => {
                    return unavailable("engine unavailable");
                }
            }
        }
    };

    let on_upgrade = hyper::upgrade::on(&mut request);
    let task_state = Arc::clone(&state);
    task::spawn(async move {
        let _permit = permit;
        let upgraded = match on_upgrade.await {
            Ok(upgraded) => upgraded,
            Err(error) => {
                tracing::debug!(%error, "upgrade failed");
                return;
            }
        };
        let config = ws_config(task_state.read_ceiling());
        // Sessions live long: their task holds only what the session needs (cold steps boxed).
        let socket =
            WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Server, Some(config))
                .await;
        task_state.open.fetch_add(1, Ordering::Relaxed);
        match (route, channel_upstream) {
            (Route::Channel(_), Some(upstream)) => {
                bump(&task_state.status.channels_open);
                Box::pin(channel_bridge::run(
                    socket,
                    *upstream,
                    task_state.shutdown.clone(),
                ))
                .await;
                drop_one(&task_state.status.channels_open);
            }
            (Route::Otel, _) => Box::pin(otel_sink(&task_state, &info, socket)).await,
            _ => {
                // Authentication and the session run in separate allocations, one after the
                // other: the session keeps none of the handshake's state (request headers,
                // the auth call) for its whole life.
                // Scoped so that only the boxed futures are held across an await: the session
                // keeps one allocation, its run, for its whole life.
                let running = {
                    let connecting = {
                        let authenticated =
                            Box::pin(authenticate_worker(&task_state, info, ip, socket)).await;
                        authenticated.map(|(session, socket)| {
                            Box::pin(connect(Arc::clone(&task_state), session, ip, socket))
                        })
                    };
                    match connecting {
                        Some(connecting) => connecting.await,
                        None => None,
                    }
                };
                if let Some(running) = running {
                    running.await;
                    drop_one(&task_state.status.sessions_open);
                }
            }
        }
        task_state.open.fetch_sub(1, Ordering::Relaxed);
    });

    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let headers = response.headers_mut();
    headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    headers.insert(header::UPGRADE, HeaderValue::from_static("websocket"));
    if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
        headers.insert(header::SEC_WEBSOCKET_ACCEPT, accept);
    }
    response
}

/// Authenticates a worker connection: the session and the socket to serve it on, or `None`
/// once the client was told why not (AUTH_ERROR, then Close 1008).
async fn authenticate_worker<S>(
    state: &Arc<ListenerState>,
    info: RequestInfo,
    ip: std::net::IpAddr,
    mut socket: WebSocketStream<S>,
) -> Option<(policies::Session, WebSocketStream<S>)>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let authenticated = Box::pin(authenticate(state, &info)).await;
    drop(info);
    match authenticated {
        Ok(session) => Some((session, socket)),
        Err(message) => {
            bump(&state.status.auth_failures);
            tracing::info!(target: "audit", listener = %state.key, %ip, kind = "auth", code = "AUTH_ERROR", "{message}");
            let _ = socket
                .send(Message::text(frames::auth_error(&message)))
                .await;
            Box::pin(close(socket, CloseCode::Policy, "authentication failed")).await;
            None
        }
    }
}

/// A session's run, boxed: the one allocation it keeps for its life.
type Running = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Dials the session's upstream: the session's run (counted open), or `None` once the client
/// was closed with 1011.
async fn connect<S>(
    state: Arc<ListenerState>,
    session: policies::Session,
    ip: std::net::IpAddr,
    socket: WebSocketStream<S>,
) -> Option<Running>
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let dial = tokio::time::timeout(DIAL_TIMEOUT, Box::pin(super::upstream::dial(&state)));
    let error = match dial.await {
        Ok(Ok(upstream)) => {
            bump(&state.status.sessions_total);
            bump(&state.status.sessions_open);
            let shutdown = state.shutdown.clone();
            let running: Running = match upstream {
                Upstream::Plain(upstream) => {
                    Box::pin(session::run(state, session, ip, socket, upstream, shutdown))
                }
                Upstream::Tls(upstream) => Box::pin(session::run(
                    state, session, ip, socket, *upstream, shutdown,
                )),
            };
            return Some(running);
        }
        Ok(Err(error)) => error.to_string(),
        Err(_) => "timed out".to_owned(),
    };
    tracing::warn!(listener = %state.key, %error, "engine WS dial failed");
    Box::pin(close(socket, CloseCode::Error, "engine WS dial failed")).await;
    None
}

/// `/otel`: authenticated like a worker, then frames are read and dropped (telemetry from
/// untrusted clients is not forwarded), so SDK exporters do not reconnect forever.
async fn otel_sink<S>(
    state: &Arc<ListenerState>,
    info: &RequestInfo,
    mut socket: WebSocketStream<S>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    if let Err(message) = authenticate(state, info).await {
        bump(&state.status.auth_failures);
        let _ = socket
            .send(Message::text(frames::auth_error(&message)))
            .await;
        close(socket, CloseCode::Policy, "authentication failed").await;
        return;
    }
    let mut shutdown = state.shutdown.clone();
    loop {
        tokio::select! {
            message = socket.next() => match message {
                Some(Ok(Message::Close(_)) | Err(_)) | None => return,
                Some(Ok(_)) => {}
            },
            () = super::stopped(&mut shutdown) => {
                close(socket, CloseCode::Away, "gateway shutting down").await;
                return;
            }
        }
    }
}

/// Sends a Close frame and waits briefly for the peer's.
async fn close<S>(mut socket: WebSocketStream<S>, code: CloseCode, reason: &'static str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = CloseFrame {
        code,
        reason: reason.into(),
    };
    let _ = socket.close(Some(frame)).await;
    let _ = tokio::time::timeout(CLOSE_LINGER, async {
        while let Some(Ok(_)) = socket.next().await {}
    })
    .await;
}
