//! The REST API server: each request is matched to a route, bounded by
//! `concurrency_request_limit` and `default_timeout`, invoked with a fresh invocation id, and
//! answered from the handler's return value or from its `response` channel, whichever comes
//! first (spec §3.3).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode};
use axum::response::Response;
use futures_util::stream;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use serde_json::Value;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinSet;
use tokio::time::{Instant, timeout_at};
use tokio_tungstenite::tungstenite::Message;
use tower_http::cors::{AllowMethods, AllowOrigin, Any, CorsLayer};
use uuid::Uuid;

use super::pre_handler::{self, Gate};
use super::request::{RequestParts, channel_ref, request_object};
use super::response;
use super::routes::RouteTable;
use crate::channels::{ChannelTx, DEFAULT_BUFFER, Direction, End, Item};
use crate::config::{CorsConfig, HttpConfig, HttpMiddleware};
use crate::engine::{Engine, shutting_down};
use crate::router;
use crate::task::{self, AbortOnDrop};
use crate::wire_error::WireError;

/// REST API connections open at once; more are refused (closed) until one ends.
const MAX_CONNECTIONS: usize = 10_000;
/// A connection must send complete request headers within this time (slowloris).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Accept errors (fd exhaustion) back off this long so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);
/// Largest request body read (larger gets 413).
const MAX_BODY_BYTES: usize = 16 << 20;
/// Request bodies reach the handler in frames of this size (as the SDK writers do).
const BODY_FRAME_BYTES: usize = 64 << 10;

#[derive(Debug)]
struct HttpState {
    engine: Arc<Engine>,
    routes: Arc<RouteTable>,
    timeout: Duration,
    limit: Arc<Semaphore>,
    middleware: Vec<HttpMiddleware>,
}

/// Serves the REST API on `listener` until the task is dropped.
pub(crate) async fn serve(
    engine: Arc<Engine>,
    routes: Arc<RouteTable>,
    config: HttpConfig,
    listener: TcpListener,
) {
    let engine_shutdown = engine.shutdown.subscribe();
    let state = Arc::new(HttpState {
        engine,
        routes,
        timeout: config.default_timeout,
        limit: Arc::new(Semaphore::new(config.concurrency_request_limit)),
        middleware: config.middleware.clone(),
    });
    let app = Router::new()
        .fallback(handle)
        .with_state(state)
        .layer(cors(config.cors.as_ref()));
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut shutdown = engine_shutdown.clone();
    let mut conns = JoinSet::new();
    loop {
        tokio::select! {
            () = shutting_down(&mut shutdown) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    let Ok(slot) = slots.clone().try_acquire_owned() else {
                        tracing::warn!(client.addr = %peer, "REST API connection refused: {MAX_CONNECTIONS} connections open");
                        continue;
                    };
                    let _ = stream.set_nodelay(true);
                    let service = TowerToHyperService::new(app.clone());
                    let mut shutdown = engine_shutdown.clone();
                    conns.spawn(async move {
                        let conn = http1::Builder::new()
                            .timer(TokioTimer::new())
                            .header_read_timeout(HEADER_READ_TIMEOUT)
                            .serve_connection(TokioIo::new(stream), service);
                        tokio::pin!(conn);
                        let done = tokio::select! {
                            done = conn.as_mut() => done,
                            () = shutting_down(&mut shutdown) => {
                                // Finish the request in progress, then close.
                                conn.as_mut().graceful_shutdown();
                                conn.await
                            }
                        };
                        if let Err(e) = done {
                            tracing::debug!(client.addr = %peer, error = %e, "REST API connection ended with an error");
                        }
                        drop(slot);
                    });
                }
                Err(e) => {
                    tracing::warn!(error = %e, "REST API accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                }
            },
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
        }
    }
    drop(listener);
    while conns.join_next().await.is_some() {}
}

fn cors(config: Option<&CorsConfig>) -> CorsLayer {
    let Some(c) = config else {
        return CorsLayer::permissive();
    };
    let any = |list: &[String]| list.is_empty() || list.iter().any(|s| s == "*");
    let origins = if any(&c.allowed_origins) {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            c.allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::try_from(o.as_str()).ok()),
        )
    };
    let methods = if any(&c.allowed_methods) {
        AllowMethods::any()
    } else {
        AllowMethods::list(
            c.allowed_methods
                .iter()
                .filter_map(|m| Method::try_from(m.to_uppercase().as_str()).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(origins)
        .allow_methods(methods)
        .allow_headers(Any)
}

/// The two channels of one request, removed when the request ends.
struct RequestChannels {
    engine: Arc<Engine>,
    ids: [Uuid; 2],
}

impl Drop for RequestChannels {
    fn drop(&mut self) {
        for id in &self.ids {
            self.engine.channels.remove(id);
        }
    }
}

async fn handle(State(state): State<Arc<HttpState>>, req: Request) -> Response {
    let deadline = Instant::now() + state.timeout;
    let (parts, body) = req.into_parts();
    let Some((route, path_params)) = state.routes.find(parts.method.as_str(), parts.uri.path())
    else {
        return response::not_found();
    };
    // A request waits for a slot within its own deadline; the slot is held until the response
    // (streamed ones included) is complete.
    let Ok(Ok(permit)) = timeout_at(deadline, state.limit.clone().acquire_owned()).await else {
        return response::error(
            StatusCode::SERVICE_UNAVAILABLE,
            &WireError::Overloaded.body(),
        );
    };
    let body = match timeout_at(deadline, axum::body::to_bytes(body, MAX_BODY_BYTES)).await {
        Ok(Ok(b)) => b,
        Ok(Err(_)) => {
            return response::error(
                StatusCode::PAYLOAD_TOO_LARGE,
                &WireError::PayloadTooLarge.body(),
            );
        }
        Err(_) => return response::timeout(),
    };

    let engine = &state.engine;
    let (req_id, req_key) = engine.channels.create(Some(DEFAULT_BUFFER));
    let (resp_id, resp_key) = engine.channels.create(Some(DEFAULT_BUFFER));
    let guard = RequestChannels {
        engine: engine.clone(),
        ids: [req_id, resp_id],
    };
    let (Some(End::Writer(body_tx)), Some(End::Reader(resp_rx))) = (
        engine
            .channels
            .take(&req_id.to_string(), &req_key.to_string(), Direction::Write),
        engine
            .channels
            .take(&resp_id.to_string(), &resp_key.to_string(), Direction::Read),
    ) else {
        return response::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            &WireError::ChannelUnavailable.body(),
        );
    };
    let request = request_object(RequestParts {
        method: parts.method.as_str(),
        pattern: &route.pattern,
        query: parts.uri.query(),
        path_params,
        headers: &parts.headers,
        body: &body,
        request_body: channel_ref(&req_id, &req_key, "read"),
        response: channel_ref(&resp_id, &resp_key, "write"),
    });
    // serde_json's own writer: `Value`'s `Display` goes through `fmt::Write` piece by piece
    // and cost ~4x more per request. A `Value` always serializes.
    let data = serde_json::to_string(&request).unwrap_or_default();
    let feeder = AbortOnDrop(task::spawn(feed_body(body_tx, body)));

    if let Gate::Respond(resp) =
        pre_handler::run(engine, &state.middleware, &route, &request, &data, deadline).await
    {
        return resp;
    }
    drop(request);
    let metadata = route.metadata.as_ref().map(|m| m.get());
    let invocation = router::invoke(engine, &route.function_id, &data, metadata, state.timeout);
    tokio::pin!(invocation);
    let mut invocation_done = false;
    // The response channel's writer closed with no body: the answer is the status and headers
    // it set, once the handler has returned (a channel swept for age is not an answer).
    let mut channel_closed = false;
    let mut resp_rx = resp_rx;
    let mut status = StatusCode::OK;
    let mut headers: Vec<(HeaderName, HeaderValue)> = Vec::new();
    loop {
        tokio::select! {
            outcome = &mut invocation, if !invocation_done => {
                invocation_done = true;
                match outcome {
                    Ok(raw) => {
                        let value: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                        if !value.is_null() {
                            return response::from_result(value);
                        }
                        if channel_closed {
                            return streamed_empty(status, headers);
                        }
                        // No return value: the handler answers through its response channel.
                    }
                    Err(e) => return response::from_error(&e),
                }
            }
            item = resp_rx.recv(), if !channel_closed => match item.map(|i| i.msg) {
                Some(Message::Text(text)) => apply_control(&text, &mut status, &mut headers),
                Some(Message::Binary(first)) => {
                    return streamed(status, headers, first, resp_rx, (guard, feeder, permit));
                }
                Some(_) => {}
                None if invocation_done => return streamed_empty(status, headers),
                None => channel_closed = true,
            },
            () = tokio::time::sleep_until(deadline) => return response::timeout(),
        }
    }
}

/// Writes the request body into the `request_body` channel, then closes it.
async fn feed_body(tx: ChannelTx, body: Bytes) {
    let mut rest = body;
    while !rest.is_empty() {
        let chunk = rest.split_to(rest.len().min(BODY_FRAME_BYTES));
        if tx.send(Message::Binary(chunk)).await.is_err() {
            return;
        }
    }
}

/// `set_status` / `set_headers` control messages on the response channel.
fn apply_control(
    text: &str,
    status: &mut StatusCode,
    headers: &mut Vec<(HeaderName, HeaderValue)>,
) {
    let Ok(msg) = serde_json::from_str::<Value>(text) else {
        return;
    };
    match msg.get("type").and_then(Value::as_str) {
        Some("set_status") => *status = response::status_from(msg.get("status_code")),
        Some("set_headers") => headers.extend(response::headers_from(msg.get("headers"))),
        _ => {}
    }
}

fn with_head(
    mut resp: Response,
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
) -> Response {
    *resp.status_mut() = status;
    for (k, v) in headers {
        resp.headers_mut().append(k, v);
    }
    resp
}

fn streamed_empty(status: StatusCode, headers: Vec<(HeaderName, HeaderValue)>) -> Response {
    with_head(Response::new(Body::empty()), status, headers)
}

/// A streamed body: the first binary frame, then every later one until the writer closes.
/// `keep` holds the request's channels, body feeder and concurrency slot while the stream runs.
fn streamed<K: Send + 'static>(
    status: StatusCode,
    headers: Vec<(HeaderName, HeaderValue)>,
    first: Bytes,
    rx: mpsc::Receiver<Item>,
    keep: K,
) -> Response {
    let rest = stream::unfold((rx, keep), |(mut rx, keep)| async move {
        loop {
            match rx.recv().await {
                Some(Item {
                    msg: Message::Binary(b),
                    ..
                }) => {
                    return Some((Ok::<_, Infallible>(b), (rx, keep)));
                }
                Some(_) => {}
                None => return None,
            }
        }
    });
    let body = Body::from_stream(futures_util::StreamExt::chain(
        stream::once(async move { Ok(first) }),
        rest,
    ));
    with_head(Response::new(body), status, headers)
}
