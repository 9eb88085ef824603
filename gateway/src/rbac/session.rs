//! One authenticated session: the client's WebSocket bridged to its own upstream WebSocket on
//! the engine's trusted port, every frame gated on the way up and rewritten on the way down.
//!
//! Up (client → engine): invokes are gated (rate limit, access, middleware, discovery,
//! trigger calls), registrations go through the session's flags, the hooks and the prefix,
//! unregistrations through ownership; other frames pass unchanged. Down (engine → client):
//! the prefix is stripped from calls and trigger results, discovery results are filtered.
//! The client's frames are read in order, so a registration is applied before the invoke
//! that follows it; middleware calls run as tasks so the pump never waits on them.
//!
//! This module holds the loop and the frames handled in place; `invoke`, `registration` and
//! `downstream` hold the full paths.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use policies::{Decision, Denial, DiscoveryFunction, FunctionCatalog, Session};
use serde_json::Value;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};

use super::ListenerState;
use super::frames::{self, Head};
use crate::limits::InvocationLimiter;
use crate::status::bump;
use downstream::on_engine_text;
use invoke::{invoke_fast, on_invoke};
use registration::{
    on_register_function, on_register_trigger, on_register_trigger_type, on_unregister_function,
    on_unregister_trigger,
};

mod downstream;
mod invoke;
mod registration;

/// Middleware answers queued for the client before middleware tasks wait.
const REPLY_QUEUE: usize = 64;
/// A session whose client sent nothing for this long is closed (the SDKs ping every 20 s).
const CLIENT_IDLE: Duration = Duration::from_secs(90);
/// How long the closing handshake may take on each side.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How old the catalog may be for access decisions that need metadata.
const CATALOG_MAX_AGE: Duration = Duration::from_secs(1);

/// How a session ended, for the close frame sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed or vanished.
    Client,
    /// The engine side closed: 1011.
    Upstream,
    /// The gateway is shutting down: 1001.
    Shutdown,
    /// Nothing from the client for [`CLIENT_IDLE`]: 1001.
    Idle,
    /// A message above the hard size ceiling: 1009.
    TooBig,
}

/// Per-session state shared by the two directions and the middleware tasks.
struct Shared {
    listener: Arc<ListenerState>,
    session: Mutex<Session>,
    ip: IpAddr,
    id: String,
    limiter: Option<InvocationLimiter>,
    /// Discovery calls in flight: the gateway's invocation id → (function, request payload,
    /// the client's invocation id).
    discovery: Mutex<HashMap<String, (DiscoveryFunction, Value, String)>>,
    /// How many discovery calls are in flight: while none are and the session has no prefix,
    /// engine frames are forwarded without being parsed.
    discovery_pending: AtomicUsize,
    /// Trigger types this session provides (it may re-register them).
    own_trigger_types: Mutex<std::collections::HashSet<String>>,
    /// `P::` for a session with `function_registration_prefix` P (fixed for the session).
    prefix: Option<String>,
    /// Middleware answers, written to the client by the session loop (with middleware only).
    replies: Option<mpsc::Sender<Message>>,
}

impl Shared {
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether this session registered trigger type `id`.
    fn owns_trigger_type(&self, id: &str) -> bool {
        self.own_trigger_types
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(id)
    }

    /// Records a trigger type this session provides.
    fn record_trigger_type(&self, id: &str) {
        self.own_trigger_types
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned());
    }

    async fn catalog(&self, bindings: bool) -> Arc<FunctionCatalog> {
        self.listener
            .control
            .catalog(CATALOG_MAX_AGE, bindings)
            .await
    }

    /// One structured audit line per denial (never payloads or credentials).
    fn audit(&self, kind: &str, denial: &Denial<'_>, shadow: bool) {
        let counter = if shadow {
            &self.listener.status.shadow_denied
        } else {
            &self.listener.status.denied
        };
        self.refused(
            kind,
            denial.subject(),
            denial.code().as_str(),
            &denial.message(),
            shadow,
            counter,
        );
    }

    /// The audit line and counter of any refusal: `kind` of frame, what it was about, the iii
    /// code, and why.
    fn refused(
        &self,
        kind: &str,
        subject: &str,
        code: &str,
        why: &str,
        shadow: bool,
        counter: &AtomicU64,
    ) {
        bump(counter);
        tracing::info!(
            target: "audit",
            listener = %self.listener.key,
            session = %self.id,
            ip = %self.ip,
            kind,
            subject,
            code,
            shadow,
            "{why}"
        );
    }

    /// Applies a decision: `true` when the frame may go on. Shadow denials are audited and
    /// let through.
    fn allowed(&self, kind: &str, decision: &Decision<'_>) -> Result<(), Denial<'static>> {
        match decision {
            Decision::Allow(_) => Ok(()),
            Decision::ShadowAllow(denial) => {
                self.audit(kind, denial, true);
                Ok(())
            }
            Decision::Deny(denial) => {
                self.audit(kind, denial, false);
                Err(denial.clone().into_owned())
            }
        }
    }
}

/// What one frame turned into: messages for either side, written by the session loop in
/// order. Reused from frame to frame.
#[derive(Debug, Default)]
pub(crate) struct Outbox {
    items: Vec<(Side, Message)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Client,
    Engine,
}

impl Outbox {
    fn client(&mut self, text: String) {
        self.items.push((Side::Client, Message::text(text)));
    }

    fn client_message(&mut self, message: Message) {
        self.items.push((Side::Client, message));
    }

    fn engine(&mut self, message: Message) {
        self.items.push((Side::Engine, message));
    }
}

/// Runs a session until either side closes or the gateway shuts down. One task reads both
/// sockets and writes each frame's outcome straight to its socket: no queue, no extra task
/// between a frame and its destination. Middleware answers come back through `replies`.
pub(crate) async fn run<C, U>(
    listener: Arc<ListenerState>,
    session: Session,
    ip: IpAddr,
    mut client: WebSocketStream<C>,
    mut upstream: WebSocketStream<U>,
    mut shutdown: watch::Receiver<bool>,
) where
    C: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    U: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    // Only a listener with middleware needs a way back for answers produced off the loop.
    let (replies, mut replies_rx) = if listener.policy.config().middleware_function_id.is_some() {
        let (tx, rx) = mpsc::channel(REPLY_QUEUE);
        (Some(tx), Some(rx))
    } else {
        (None, None)
    };
    let limiter = InvocationLimiter::new(&listener.policy.config().limits);
    let prefix = session.prefix().map(|p| format!("{p}::"));
    let shared = Arc::new(Shared {
        prefix,
        id: uuid::Uuid::new_v4().to_string(),
        listener,
        session: Mutex::new(session),
        ip,
        limiter,
        discovery: Mutex::new(HashMap::new()),
        discovery_pending: AtomicUsize::new(0),
        own_trigger_types: Mutex::new(std::collections::HashSet::new()),
        replies,
    });
    tracing::debug!(session = %shared.id, "session open");
    let mut middleware = JoinSet::new();
    let mut out = Outbox::default();
    let max = shared.listener.max_message_bytes();

    let mut dirty = (false, false);
    let mut client_first = false;
    // A client that sends nothing (not even the SDKs' pings, every 20 s) for this long is
    // gone; its session is closed so its functions are released.
    let idle = tokio::time::sleep(CLIENT_IDLE);
    tokio::pin!(idle);
    let end = loop {
        // Frames already buffered are handled without flushing in between: under load many
        // frames share one write. Only when nothing is ready are the writes flushed and the
        // task parked.
        let event = match ready_now(
            &mut client,
            &mut upstream,
            &mut replies_rx,
            &mut client_first,
        ) {
            Some(event) => event,
            None => {
                if let Err(end) = flush(&mut client, &mut upstream, &mut dirty).await {
                    break end;
                }
                tokio::select! {
                    () = super::stopped(&mut shutdown) => break End::Shutdown,
                    () = &mut idle => break End::Idle,
                    Some(reply) = recv(&mut replies_rx) => Event::Reply(reply),
                    message = client.next() => Event::Client(message),
                    message = upstream.next() => Event::Engine(message),
                }
            }
        };
        if matches!(event, Event::Client(_)) {
            idle.as_mut()
                .reset(tokio::time::Instant::now() + CLIENT_IDLE);
        }
        let step = match event {
            Event::Reply(reply) => {
                out.client_message(reply);
                Ok(())
            }
            // The common frames are handled in place; the rest go through handlers boxed per
            // frame, whose state exists only while a frame is being handled (an idle session
            // does not carry it).
            Event::Client(Some(Ok(Message::Text(text))))
                if text.len() <= max && client_fast(&shared, &text, &mut out) =>
            {
                Ok(())
            }
            Event::Engine(Some(Ok(Message::Text(text)))) if engine_fast(&shared) => {
                out.client_message(Message::Text(text));
                Ok(())
            }
            Event::Client(message) => {
                Box::pin(on_client_message(
                    &shared,
                    message,
                    max,
                    &mut middleware,
                    &mut out,
                ))
                .await
            }
            Event::Engine(message) => Box::pin(on_engine_message(&shared, message, &mut out)).await,
        };
        // Write what the frame produced, in order, before reading more.
        let mut failed = None;
        for (side, message) in out.items.drain(..) {
            let written = match side {
                Side::Client => {
                    dirty.0 = true;
                    client.feed(message).await.map_err(|_| End::Client)
                }
                Side::Engine => {
                    dirty.1 = true;
                    upstream.feed(message).await.map_err(|_| End::Upstream)
                }
            };
            if let Err(end) = written {
                failed = Some(end);
                break;
            }
        }
        out.items.clear();
        if let Err(end) = step {
            // What the last frame produced (an error reply) still goes out.
            let _ = flush(&mut client, &mut upstream, &mut dirty).await;
            break end;
        }
        if let Some(end) = failed {
            break end;
        }
        // Reap finished middleware tasks so the set stays small.
        while middleware.try_join_next().is_some() {}
    };
    middleware.abort_all();
    let close = match end {
        End::Client => None,
        End::Upstream => Some((CloseCode::Error, "engine connection lost")),
        End::Shutdown => Some((CloseCode::Away, "gateway shutting down")),
        End::Idle => Some((CloseCode::Away, "idle timeout")),
        End::TooBig => Some((CloseCode::Size, "message too big")),
    };
    let frame = close.map(|(code, reason)| CloseFrame {
        code,
        reason: reason.into(),
    });
    // Both closes are bounded: a peer that stopped reading cannot hold the session open.
    let _ = Box::pin(tokio::time::timeout(CLOSE_WAIT, async {
        let _ = client.close(frame).await;
        let _ = upstream.close(None).await;
    }))
    .await;
    tracing::debug!(session = %shared.id, ?end, "session closed");
}

/// Something for the session loop to handle.
enum Event {
    Client(Option<Result<Message, WsError>>),
    Engine(Option<Result<Message, WsError>>),
    Reply(Message),
}

/// An event that is ready without waiting, if any. The side asked first alternates, so a
/// busy side cannot starve the other.
fn ready_now<C, U>(
    client: &mut WebSocketStream<C>,
    upstream: &mut WebSocketStream<U>,
    replies: &mut Option<mpsc::Receiver<Message>>,
    client_first: &mut bool,
) -> Option<Event>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    *client_first = !*client_first;
    let mut from_client = || client.next().now_or_never().map(Event::Client);
    let mut from_engine = || upstream.next().now_or_never().map(Event::Engine);
    let first = if *client_first {
        from_client().or_else(from_engine)
    } else {
        from_engine().or_else(from_client)
    };
    first.or_else(|| replies.as_mut()?.try_recv().ok().map(Event::Reply))
}

/// The next middleware answer; never resolves without middleware.
async fn recv(replies: &mut Option<mpsc::Receiver<Message>>) -> Option<Message> {
    match replies {
        Some(replies) => replies.recv().await,
        None => std::future::pending().await,
    }
}

/// Flushes whichever side has unflushed writes.
async fn flush<C, U>(
    client: &mut WebSocketStream<C>,
    upstream: &mut WebSocketStream<U>,
    dirty: &mut (bool, bool),
) -> Result<(), End>
where
    C: AsyncRead + AsyncWrite + Unpin,
    U: AsyncRead + AsyncWrite + Unpin,
{
    if std::mem::take(&mut dirty.0) {
        client.flush().await.map_err(|_| End::Client)?;
    }
    if std::mem::take(&mut dirty.1) {
        upstream.flush().await.map_err(|_| End::Upstream)?;
    }
    Ok(())
}

/// A message from the client: gated into `out`; `Err` ends the session.
async fn on_client_message(
    shared: &Arc<Shared>,
    message: Option<Result<Message, WsError>>,
    max: usize,
    middleware: &mut JoinSet<()>,
    out: &mut Outbox,
) -> Result<(), End> {
    match message {
        Some(Ok(Message::Text(text))) if text.len() > max => {
            if too_big(shared, text.as_str(), out) {
                Ok(())
            } else {
                Err(End::TooBig)
            }
        }
        Some(Ok(Message::Text(text))) => {
            on_client_text(shared, text, middleware, out).await;
            Ok(())
        }
        Some(Ok(Message::Binary(bytes))) if bytes.len() > max => {
            bump(&shared.listener.status.oversized);
            Err(End::TooBig)
        }
        Some(Ok(Message::Binary(bytes))) => {
            // Binary telemetry is dropped; binary JSON is gated like text.
            if !is_telemetry(&bytes)
                && let Ok(text) = Utf8Bytes::try_from(bytes)
            {
                on_client_text(shared, text, middleware, out).await;
            }
            Ok(())
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(()),
        Some(Err(WsError::Capacity(_))) => {
            bump(&shared.listener.status.oversized);
            Err(End::TooBig)
        }
        Some(Ok(Message::Close(_)) | Err(_)) | None => Err(End::Client),
    }
}

/// A message from the engine: rewritten into `out`; `Err` ends the session.
async fn on_engine_message(
    shared: &Shared,
    message: Option<Result<Message, WsError>>,
    out: &mut Outbox,
) -> Result<(), End> {
    match message {
        Some(Ok(Message::Text(text))) => {
            on_engine_text(shared, text, out).await;
            Ok(())
        }
        Some(Ok(Message::Binary(bytes))) => {
            out.client_message(Message::Binary(bytes));
            Ok(())
        }
        Some(Ok(Message::Ping(_) | Message::Pong(_) | Message::Frame(_))) => Ok(()),
        Some(Ok(Message::Close(_)) | Err(_)) | None => Err(End::Upstream),
    }
}

fn is_telemetry(bytes: &[u8]) -> bool {
    matches!(bytes.get(..4), Some(b"OTLP" | b"MTRC" | b"LOGS"))
}

/// A message above `max_message_bytes`: an invoke is answered `payload_too_large` and the
/// session continues (`true`); anything else closes the session with 1009 (`false`).
fn too_big(shared: &Shared, text: &str, out: &mut Outbox) -> bool {
    let status = &shared.listener.status;
    let Some(head) = Head::parse(text).filter(|head| head.kind == "invokefunction") else {
        bump(&status.oversized);
        return false;
    };
    let function_id = head.function_id.as_deref().unwrap_or_default();
    let message = format!(
        "message of {} bytes exceeds limits.max_message_bytes ({})",
        text.len(),
        shared.listener.max_message_bytes()
    );
    shared.refused(
        "invoke",
        function_id,
        "payload_too_large",
        &message,
        false,
        &status.oversized,
    );
    out.client(frames::invocation_error(
        head.invocation_id.as_deref(),
        function_id,
        "payload_too_large",
        &message,
        None,
    ));
    true
}

async fn on_client_text(
    shared: &Arc<Shared>,
    text: Utf8Bytes,
    middleware: &mut JoinSet<()>,
    out: &mut Outbox,
) {
    let Some(head) = Head::parse(text.as_str()) else {
        unreadable(shared);
        return;
    };
    if foreign_namespace(shared, &head, &text, out) {
        return;
    }
    match head.kind.as_ref() {
        "invokefunction" => {
            // `text` is reference-counted: the clone is forwarded, the head borrows this one.
            let function_id = head.function_id.as_deref().unwrap_or_default();
            let invocation_id = head.invocation_id.as_deref();
            on_invoke(
                shared,
                text.clone(),
                function_id,
                invocation_id,
                middleware,
                out,
            )
            .await;
        }
        "registerfunction" => Box::pin(on_register_function(shared, text.as_str(), out)).await,
        "unregisterfunction" => Box::pin(on_unregister_function(shared, text.as_str(), out)).await,
        "registertriggertype" => {
            Box::pin(on_register_trigger_type(shared, text.as_str(), out)).await
        }
        "registertrigger" => Box::pin(on_register_trigger(shared, text.as_str(), out)).await,
        "unregistertrigger" => Box::pin(on_unregister_trigger(shared, text, out)).await,
        _ => out.engine(Message::Text(text)),
    }
}

/// An invoke naming a namespace other than `default`: the rules here apply in `default`
/// only (settled decision 1), so it is denied as not exposed there, never forwarded to an
/// engine that would run it elsewhere. `true` when the frame was answered.
fn foreign_namespace(shared: &Shared, head: &Head<'_>, text: &Utf8Bytes, out: &mut Outbox) -> bool {
    let Some(namespace) = head.namespace.as_deref() else {
        return false;
    };
    if head.kind != "invokefunction" || namespace == policies::DEFAULT_NAMESPACE {
        return false;
    }
    let function_id = head.function_id.as_deref().unwrap_or_default();
    let why = format!("function '{function_id}' not allowed in namespace '{namespace}'");
    shared.refused(
        "invoke",
        function_id,
        "FORBIDDEN",
        &why,
        false,
        &shared.listener.status.denied,
    );
    let trace = frames::parse_object(text.as_str());
    out.client(frames::invocation_error(
        head.invocation_id.as_deref(),
        function_id,
        "FORBIDDEN",
        &why,
        trace.as_ref(),
    ));
    true
}

/// A frame whose routing fields cannot be read (not a JSON object with a string `type`, a
/// field of the wrong type, a key given twice) is dropped: forwarding it ungated could let
/// a reader that parses differently act on a value the gate never saw. Frames of a type we
/// do not know, with readable fields, still pass through.
fn unreadable(shared: &Shared) {
    let status = &shared.listener.status;
    shared.refused(
        "frame",
        "",
        "INVALID_FRAME",
        "unreadable frame dropped",
        false,
        &status.denied,
    );
}

/// A client frame handled without awaiting anything; `false` sends it down the full
/// (boxed) path.
fn client_fast(shared: &Shared, text: &Utf8Bytes, out: &mut Outbox) -> bool {
    let Some(head) = Head::parse(text.as_str()) else {
        unreadable(shared);
        return true;
    };
    if foreign_namespace(shared, &head, text, out) {
        return true;
    }
    match head.kind.as_ref() {
        "invokefunction" => {
            let function_id = head.function_id.as_deref().unwrap_or_default();
            invoke_fast(
                shared,
                text,
                function_id,
                head.invocation_id.as_deref(),
                out,
            )
        }
        "registerfunction"
        | "unregisterfunction"
        | "registertriggertype"
        | "registertrigger"
        | "unregistertrigger" => false,
        _ => {
            out.engine(Message::Text(text.clone()));
            true
        }
    }
}

/// Whether engine frames pass as they are: no prefix to strip, no discovery call in flight.
fn engine_fast(shared: &Shared) -> bool {
    shared.prefix.is_none() && shared.discovery_pending.load(Ordering::Relaxed) == 0
}
