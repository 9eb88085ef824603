//! One authenticated session: the client's WebSocket bridged to its own upstream WebSocket on
//! the engine's trusted port, every frame gated on the way up and rewritten on the way down.
//!
//! Up (client → engine): invokes are gated (rate limit, access, middleware, discovery,
//! trigger calls), registrations go through the session's flags, the hooks and the prefix,
//! unregistrations through ownership; other frames pass unchanged. Down (engine → client):
//! the prefix is stripped from calls and trigger results, discovery results are filtered.
//! The client's frames are read in order, so a registration is applied before the invoke
//! that follows it; middleware calls run as tasks so the pump never waits on them.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures_util::{FutureExt as _, SinkExt as _, StreamExt as _};
use policies::{
    Decision, Denial, DiscoveryFunction, FunctionCatalog, Session, is_ownable_function,
};
use serde_json::{Map, Value, json};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinSet;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tracing::Instrument as _;

use super::ListenerState;
use super::control::CallError;
use super::frames::{self, Head, str_field};
use crate::limits::{InvocationLimiter, RATE_LIMITED_MESSAGE};
use crate::status::bump;

/// Middleware answers queued for the client before middleware tasks wait.
const REPLY_QUEUE: usize = 64;
/// How long the closing handshake may take on each side.
const CLOSE_WAIT: Duration = Duration::from_secs(2);
/// How old the catalog may be for access decisions that need metadata.
const CATALOG_MAX_AGE: Duration = Duration::from_secs(1);
/// How long a registration of an id another worker still serves waits for that worker to go
/// (a reconnecting client's old session may not be cleaned up yet).
const TAKEOVER_WAIT: Duration = Duration::from_millis(1000);
const TAKEOVER_POLL: Duration = Duration::from_millis(100);

/// How a session ended, for the close frame sent to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The client closed or vanished.
    Client,
    /// The engine side closed: 1011.
    Upstream,
    /// The gateway is shutting down: 1001.
    Shutdown,
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
    /// Discovery calls in flight: invocation id → (function, request payload).
    discovery: Mutex<HashMap<String, (DiscoveryFunction, Value)>>,
    /// How many discovery calls are in flight: while none are and the session has no prefix,
    /// engine frames are forwarded without being parsed.
    discovery_pending: AtomicUsize,
    /// `P::` for a session with `function_registration_prefix` P (fixed for the session).
    prefix: Option<String>,
    /// Middleware answers, written to the client by the session loop (with middleware only).
    replies: Option<mpsc::Sender<Message>>,
}

impl Shared {
    fn session(&self) -> std::sync::MutexGuard<'_, Session> {
        self.session.lock().unwrap_or_else(PoisonError::into_inner)
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
        replies,
    });
    tracing::debug!(session = %shared.id, "session open");
    let mut middleware = JoinSet::new();
    let mut out = Outbox::default();
    let max = shared.listener.max_message_bytes();

    let mut dirty = (false, false);
    let mut client_first = false;
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
                    Some(reply) = recv(&mut replies_rx) => Event::Reply(reply),
                    message = client.next() => Event::Client(message),
                    message = upstream.next() => Event::Engine(message),
                }
            }
        };
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
        // Not a frame we understand: passed through unchanged.
        out.engine(Message::Text(text));
        return;
    };
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

async fn on_invoke(
    shared: &Arc<Shared>,
    text: Utf8Bytes,
    function_id: &str,
    invocation_id: Option<&str>,
    middleware: &mut JoinSet<()>,
    out: &mut Outbox,
) {
    let span = tracing::debug_span!("invoke", function_id, invocation_id);
    gate_invoke(shared, text, function_id, invocation_id, middleware, out)
        .instrument(span)
        .await;
}

/// The rate limit: `false` when the invoke was answered `RATE_LIMITED`.
fn admit_invoke(
    shared: &Shared,
    text: &Utf8Bytes,
    function_id: &str,
    invocation_id: Option<&str>,
    out: &mut Outbox,
) -> bool {
    let Some(limiter) = &shared.limiter else {
        return true;
    };
    if limiter.try_acquire() {
        return true;
    }
    let status = &shared.listener.status;
    shared.refused(
        "invoke",
        function_id,
        "RATE_LIMITED",
        RATE_LIMITED_MESSAGE,
        false,
        &status.rate_limited,
    );
    let trace = frames::parse_object(text.as_str());
    out.client(frames::invocation_error(
        invocation_id,
        function_id,
        "RATE_LIMITED",
        RATE_LIMITED_MESSAGE,
        trace.as_ref(),
    ));
    false
}

/// The access decision for a resolved target: `false` when the invoke was answered with
/// iii's deny frame.
fn allow_invoke(
    shared: &Shared,
    text: &Utf8Bytes,
    function_id: &str,
    invocation_id: Option<&str>,
    target: &str,
    metadata: Option<&Value>,
    out: &mut Outbox,
) -> bool {
    let decision = {
        let session = shared.session();
        shared
            .listener
            .policy
            .decide_invoke(&session, target, metadata)
    };
    if let Err(denial) = shared.allowed("invoke", &decision) {
        let trace = frames::parse_object(text.as_str());
        out.client(frames::invocation_error(
            invocation_id,
            function_id,
            denial.code().as_str(),
            &denial.message(),
            trace.as_ref(),
        ));
        return false;
    }
    bump(&shared.listener.status.allowed);
    true
}

/// `engine::register_trigger` / `engine::unregister_trigger`: gated like the frames.
fn is_trigger_call(function_id: &str) -> bool {
    matches!(
        function_id,
        "engine::register_trigger" | "engine::unregister_trigger"
    )
}

/// The common invoke, handled without awaiting anything: an id the session may call as
/// sent, no metadata needed, no middleware, discovery or trigger call. `false` leaves the
/// frame (untouched, no rate token taken) to the full path.
fn invoke_fast(
    shared: &Shared,
    text: &Utf8Bytes,
    function_id: &str,
    invocation_id: Option<&str>,
    out: &mut Outbox,
) -> bool {
    let policy = &shared.listener.policy;
    let (as_sent, owned) = {
        let session = shared.session();
        let target = policy.resolve_target(&session, function_id);
        let owned = session.owns_function(&target);
        (target == function_id, owned)
    };
    let simple = as_sent
        && (owned || !policy.needs_metadata())
        && policy.middleware_for(function_id).is_none()
        && DiscoveryFunction::from_id(function_id).is_none()
        && !is_trigger_call(function_id);
    if !simple {
        return false;
    }
    if admit_invoke(shared, text, function_id, invocation_id, out)
        && allow_invoke(
            shared,
            text,
            function_id,
            invocation_id,
            function_id,
            None,
            out,
        )
    {
        out.engine(Message::Text(text.clone()));
    }
    true
}

/// A client frame handled without awaiting anything; `false` sends it down the full
/// (boxed) path.
fn client_fast(shared: &Shared, text: &Utf8Bytes, out: &mut Outbox) -> bool {
    let Some(head) = Head::parse(text.as_str()) else {
        // Not a frame we understand: passed through unchanged.
        out.engine(Message::Text(text.clone()));
        return true;
    };
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

async fn gate_invoke(
    shared: &Arc<Shared>,
    text: Utf8Bytes,
    function_id: &str,
    invocation_id: Option<&str>,
    middleware: &mut JoinSet<()>,
    out: &mut Outbox,
) {
    let policy = &shared.listener.policy;
    if !admit_invoke(shared, &text, function_id, invocation_id, out) {
        return;
    }
    let (target, owned) = {
        let session = shared.session();
        let target = policy.resolve_target(&session, function_id);
        let owned = session.owns_function(&target);
        (target, owned)
    };
    let metadata_catalog = if policy.needs_metadata() && !owned {
        Some(shared.catalog(false).await)
    } else {
        None
    };
    let metadata = metadata_catalog.as_ref().and_then(|c| c.metadata(&target));
    if !allow_invoke(
        shared,
        &text,
        function_id,
        invocation_id,
        &target,
        metadata,
        out,
    ) {
        return;
    }

    let discovery = DiscoveryFunction::from_id(&target);
    let is_trigger_call = is_trigger_call(&target);
    let middleware_id = policy.middleware_for(&target).map(str::to_owned);
    if target == function_id && discovery.is_none() && !is_trigger_call && middleware_id.is_none() {
        // The hot path: forwarded exactly as received.
        out.engine(Message::Text(text));
        return;
    }
    let Some(mut frame) = frames::parse_object(text.as_str()) else {
        out.engine(Message::Text(text));
        return;
    };
    if is_trigger_call {
        let catalog = shared.catalog(false).await;
        let data = frame.get("data").cloned().unwrap_or(Value::Null);
        let decision = {
            let session = shared.session();
            policy.decide_trigger_call(&session, &target, &data, &catalog)
        };
        if let Err(denial) = shared.allowed("trigger_call", &decision) {
            out.client(frames::invocation_error(
                invocation_id,
                function_id,
                denial.code().as_str(),
                &denial.message(),
                Some(&frame),
            ));
            return;
        }
        if target == "engine::register_trigger"
            && let Some(Value::Object(data)) = frame.get_mut("data")
        {
            let bound = str_field(data, "function_id").to_owned();
            let resolved = {
                let session = shared.session();
                policy.resolve_trigger_target(&session, &bound).into_owned()
            };
            data.insert("function_id".into(), resolved.into());
        }
    }
    if let Some(middleware_id) = middleware_id {
        let shared = Arc::clone(shared);
        let target = target.into_owned();
        middleware
            .spawn(async move { run_middleware(&shared, &middleware_id, frame, &target).await });
        // Reap finished middleware tasks so the set stays small.
        while middleware.try_join_next().is_some() {}
        return;
    }
    if let Some(function) = discovery
        && let Some(id) = invocation_id
        && !frames::is_void(&frame)
    {
        let request = frame.get("data").cloned().unwrap_or(Value::Null);
        let catalog = shared.catalog(false).await;
        let decision = {
            let session = shared.session();
            policy
                .decide_discovery_request(&session, function, &request, &catalog)
                .into_owned()
        };
        if let Err(denial) = shared.allowed("discovery", &decision) {
            out.client(frames::invocation_error(
                Some(id),
                function_id,
                denial.code().as_str(),
                &denial.message(),
                Some(&frame),
            ));
            return;
        }
        shared
            .discovery
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(id.to_owned(), (function, request));
        shared.discovery_pending.fetch_add(1, Ordering::Relaxed);
    }
    frame.insert("function_id".into(), target.into_owned().into());
    out.engine(Message::text(Value::Object(frame).to_string()));
}

/// The middleware is the call (spec §5.3): its result or error is the caller's.
async fn run_middleware(
    shared: &Shared,
    middleware_id: &str,
    frame: Map<String, Value>,
    target: &str,
) {
    let context = shared.session().context().clone();
    let input = json!({
        "function_id": target,
        "payload": frame.get("data").cloned().unwrap_or(Value::Null),
        "action": frame.get("action").cloned().unwrap_or(Value::Null),
        "context": context,
    });
    let outcome = shared
        .listener
        .control
        .invoke(middleware_id, input, None)
        .await
        .map_err(|error| match error {
            CallError::Remote { code, message } => (code, message),
            CallError::Timeout => ("TIMEOUT".to_owned(), "middleware timed out".to_owned()),
            CallError::Unavailable => (
                "MIDDLEWARE_UNAVAILABLE".to_owned(),
                "middleware/control connection unavailable".to_owned(),
            ),
        });
    if frames::is_void(&frame) {
        return;
    }
    let invocation_id = str_field(&frame, "invocation_id");
    let reply = Message::text(frames::invocation_result(
        invocation_id,
        target,
        outcome,
        Some(&frame),
    ));
    if let Some(replies) = &shared.replies {
        let _ = replies.send(reply).await;
    }
}

/// Calls a registration hook: `Ok(Some(map))` to go on with the mapped fields, `Ok(None)`
/// when no hook is configured, `Err` when it denied (threw, timed out, or returned a
/// non-object).
async fn call_hook(
    shared: &Shared,
    hook: Option<&str>,
    input: Value,
) -> Result<Option<Map<String, Value>>, String> {
    let Some(hook) = hook else {
        return Ok(None);
    };
    let timeout = Duration::from_millis(shared.listener.policy.config().auth_timeout_ms);
    match shared
        .listener
        .control
        .invoke(hook, input, Some(timeout))
        .await
    {
        Ok(Value::Object(map)) => Ok(Some(map)),
        Ok(_) => Err("hook returned no object".to_owned()),
        Err(error) => Err(error.to_string()),
    }
}

fn hook_denial(shared: &Shared, kind: &str, subject: &str, why: &str) {
    let why = format!("denied by hook: {why}");
    shared.refused(
        kind,
        subject,
        "REGISTRATION_DENIED",
        &why,
        false,
        &shared.listener.status.denied,
    );
}

fn rbac_hook(
    shared: &Shared,
    pick: fn(&policies::RbacConfig) -> Option<&String>,
) -> Option<String> {
    shared
        .listener
        .policy
        .config()
        .rbac
        .as_ref()
        .and_then(pick)
        .cloned()
}

/// Copies the string fields a hook may change (absent keeps the value).
fn take_string(mapped: &Map<String, Value>, key: &str, into: &mut String) {
    if let Some(Value::String(value)) = mapped.get(key) {
        value.clone_into(into);
    }
}

async fn on_register_function(shared: &Shared, text: &str, out: &mut Outbox) {
    let policy = &shared.listener.policy;
    let Some(mut frame) = frames::parse_object(text) else {
        return;
    };
    let mut id = str_field(&frame, "id").to_owned();
    let decision = policy
        .decide_register_function(&shared.session(), &id)
        .into_owned();
    if shared.allowed("register_function", &decision).is_err() {
        return;
    }
    let context = shared.session().context().clone();
    let hook = rbac_hook(shared, |r| r.on_function_registration_function_id.as_ref());
    let input = json!({
        "function_id": id,
        "description": frame.get("description").cloned().unwrap_or(Value::Null),
        "metadata": frame.get("metadata").cloned().unwrap_or(Value::Null),
        "context": context,
    });
    match call_hook(shared, hook.as_deref(), input).await {
        Err(why) => return hook_denial(shared, "register_function", &id, &why),
        Ok(Some(mapped)) => {
            take_string(&mapped, "function_id", &mut id);
            for key in ["description", "metadata"] {
                if let Some(value) = mapped.get(key) {
                    frame.insert(key.into(), value.clone());
                }
            }
        }
        Ok(None) => {}
    }
    let stored = shared.session().stored_id(&id).into_owned();
    if !shared.session().owns_function(&stored) && taken_by_another(shared, &stored).await {
        let why = "function id already served by another worker";
        shared.refused(
            "register_function",
            &stored,
            "REGISTRATION_DENIED",
            why,
            false,
            &shared.listener.status.denied,
        );
        return;
    }
    if is_ownable_function(&stored) {
        shared.session().record_function(stored.clone());
    }
    frame.insert("id".into(), stored.into());
    bump(&shared.listener.status.allowed);
    out.engine(Message::text(Value::Object(frame).to_string()));
}

/// Whether the engine serves `stored_id` from another connection: such a registration would
/// take the function over, so it is refused. Waits briefly for a departing owner (the same
/// client reconnecting) to be cleaned up.
async fn taken_by_another(shared: &Shared, stored_id: &str) -> bool {
    let deadline = tokio::time::Instant::now() + TAKEOVER_WAIT;
    loop {
        let catalog = shared.listener.control.catalog(Duration::ZERO, false).await;
        if !catalog.contains(stored_id) {
            return false;
        }
        if tokio::time::Instant::now() >= deadline {
            return true;
        }
        tokio::time::sleep(TAKEOVER_POLL).await;
    }
}

async fn on_unregister_function(shared: &Shared, text: &str, out: &mut Outbox) {
    let Some(mut frame) = frames::parse_object(text) else {
        return;
    };
    let stored = shared
        .session()
        .stored_id(str_field(&frame, "id"))
        .into_owned();
    if !shared.session().owns_function(&stored) {
        let why = "not registered by this session";
        shared.refused(
            "unregister_function",
            &stored,
            "REGISTRATION_DENIED",
            why,
            false,
            &shared.listener.status.denied,
        );
        return;
    }
    shared.session().forget_function(&stored);
    frame.insert("id".into(), stored.into());
    out.engine(Message::text(Value::Object(frame).to_string()));
}

async fn on_register_trigger_type(shared: &Shared, text: &str, out: &mut Outbox) {
    let policy = &shared.listener.policy;
    let Some(mut frame) = frames::parse_object(text) else {
        return;
    };
    let mut id = str_field(&frame, "id").to_owned();
    let decision = policy
        .decide_register_trigger_type(&shared.session(), &id)
        .into_owned();
    if let Err(denial) = shared.allowed("register_trigger_type", &decision) {
        let reply =
            frames::registration_denied(&id, "", "", denial.code().as_str(), &denial.message());
        return out.client(reply);
    }
    let context = shared.session().context().clone();
    let hook = rbac_hook(shared, |r| {
        r.on_trigger_type_registration_function_id.as_ref()
    });
    let description = str_field(&frame, "description").to_owned();
    let input = json!({ "trigger_type_id": id, "description": description, "context": context });
    match call_hook(shared, hook.as_deref(), input).await {
        Err(why) => {
            hook_denial(shared, "register_trigger_type", &id, &why);
            let reply =
                frames::registration_denied(&id, "", "", "REGISTRATION_DENIED", "denied by hook");
            return out.client(reply);
        }
        Ok(Some(mapped)) => {
            take_string(&mapped, "trigger_type_id", &mut id);
            if let Some(Value::String(d)) = mapped.get("description") {
                frame.insert("description".into(), d.clone().into());
            }
        }
        Ok(None) => {}
    }
    frame.insert("id".into(), id.into());
    bump(&shared.listener.status.allowed);
    out.engine(Message::text(Value::Object(frame).to_string()));
}

async fn on_register_trigger(shared: &Shared, text: &str, out: &mut Outbox) {
    let policy = &shared.listener.policy;
    let Some(mut frame) = frames::parse_object(text) else {
        return;
    };
    let mut id = str_field(&frame, "id").to_owned();
    let mut trigger_type = str_field(&frame, "trigger_type").to_owned();
    let mut function_id = str_field(&frame, "function_id").to_owned();
    let deny = |id: &str, trigger_type: &str, function_id: &str, denial: &Denial<'_>| {
        frames::registration_denied(
            id,
            trigger_type,
            function_id,
            denial.code().as_str(),
            &denial.message(),
        )
    };
    let decision = policy
        .decide_trigger_type(&shared.session(), &trigger_type)
        .into_owned();
    if let Err(denial) = shared.allowed("register_trigger", &decision) {
        return out.client(deny(&id, &trigger_type, &function_id, &denial));
    }
    let context = shared.session().context().clone();
    let hook = rbac_hook(shared, |r| r.on_trigger_registration_function_id.as_ref());
    let input = json!({
        "trigger_id": id,
        "trigger_type": trigger_type,
        "function_id": function_id,
        "config": frame.get("config").cloned().unwrap_or(Value::Null),
        "metadata": frame.get("metadata").cloned().unwrap_or(Value::Null),
        "context": context,
    });
    match call_hook(shared, hook.as_deref(), input).await {
        Err(why) => {
            hook_denial(shared, "register_trigger", &id, &why);
            let reply = frames::registration_denied(
                &id,
                &trigger_type,
                &function_id,
                "REGISTRATION_DENIED",
                "denied by hook",
            );
            return out.client(reply);
        }
        Ok(Some(mapped)) => {
            take_string(&mapped, "trigger_id", &mut id);
            take_string(&mapped, "trigger_type", &mut trigger_type);
            take_string(&mapped, "function_id", &mut function_id);
            if let Some(config) = mapped.get("config") {
                frame.insert("config".into(), config.clone());
            }
        }
        Ok(None) => {}
    }
    let target = policy
        .resolve_trigger_target(&shared.session(), &function_id)
        .into_owned();
    let catalog = if policy.needs_metadata() {
        Some(shared.catalog(false).await)
    } else {
        None
    };
    let decision = {
        let session = shared.session();
        let metadata = catalog.as_ref().and_then(|c| c.metadata(&target));
        policy
            .decide_register_trigger(&session, &trigger_type, &target, metadata)
            .into_owned()
    };
    if let Err(denial) = shared.allowed("register_trigger", &decision) {
        return out.client(deny(&id, &trigger_type, &function_id, &denial));
    }
    shared.session().record_trigger(id.clone());
    frame.insert("id".into(), id.into());
    frame.insert("trigger_type".into(), trigger_type.into());
    frame.insert("function_id".into(), target.into());
    bump(&shared.listener.status.allowed);
    out.engine(Message::text(Value::Object(frame).to_string()));
}

async fn on_unregister_trigger(shared: &Shared, text: Utf8Bytes, out: &mut Outbox) {
    let Some(frame) = frames::parse_object(text.as_str()) else {
        return;
    };
    let id = str_field(&frame, "id");
    let decision = shared
        .listener
        .policy
        .decide_unregister_trigger(&shared.session(), id)
        .into_owned();
    if shared.allowed("unregister_trigger", &decision).is_err() {
        return;
    }
    shared.session().forget_trigger(id);
    out.engine(Message::Text(text));
}

async fn on_engine_text(shared: &Shared, text: Utf8Bytes, out: &mut Outbox) {
    let prefix = shared.prefix.as_deref();
    if prefix.is_none() && shared.discovery_pending.load(Ordering::Relaxed) == 0 {
        // Nothing to rewrite on the way down: the hot path forwards the frame as received.
        out.client_message(Message::Text(text));
        return;
    }
    let Some(head) = Head::parse(text.as_str()) else {
        out.client_message(Message::Text(text));
        return;
    };
    let rewrite_prefix = matches!(
        head.kind.as_ref(),
        "invokefunction" | "triggerregistrationresult"
    ) && prefix
        .zip(head.function_id.as_deref())
        .is_some_and(|(p, f)| f.starts_with(p));
    let discovery = if head.kind == "invocationresult"
        && let Some(id) = head.invocation_id.as_deref()
    {
        let removed = shared
            .discovery
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(id);
        if removed.is_some() {
            shared.discovery_pending.fetch_sub(1, Ordering::Relaxed);
        }
        removed
    } else {
        None
    };
    drop(head);
    if !rewrite_prefix && discovery.is_none() {
        out.client_message(Message::Text(text));
        return;
    }
    let Some(mut frame) = frames::parse_object(text.as_str()) else {
        out.client_message(Message::Text(text));
        return;
    };
    if rewrite_prefix {
        let stripped = shared
            .session()
            .strip_prefix(str_field(&frame, "function_id"))
            .to_owned();
        frame.insert("function_id".into(), stripped.into());
    }
    if let Some((function, request)) = discovery {
        Box::pin(filter_discovery_result(
            shared, function, &request, &mut frame,
        ))
        .await;
    }
    out.client(Value::Object(frame).to_string());
}

/// Rewrites a discovery `invocationresult` for this session (spec §8).
async fn filter_discovery_result(
    shared: &Shared,
    function: DiscoveryFunction,
    request: &Value,
    frame: &mut Map<String, Value>,
) {
    let policy = &shared.listener.policy;
    if let Some(error) = frame.get("error").filter(|e| !e.is_null()) {
        let code = error
            .get("code")
            .and_then(Value::as_str)
            .unwrap_or_default();
        if let Some(denial) = policy.discovery_error(function, request, code) {
            frame.insert(
                "error".into(),
                json!({ "code": denial.code().as_str(), "message": denial.message() }),
            );
        }
        return;
    }
    let bindings = matches!(function, DiscoveryFunction::TriggersInfo);
    let catalog = shared.catalog(bindings).await;
    let result = frame.remove("result").unwrap_or(Value::Null);
    let reply = {
        let session = shared.session();
        policy.filter_discovery(&session, function, result, &catalog)
    };
    if reply.shadow {
        bump(&shared.listener.status.shadow_denied);
    }
    match reply.result {
        Ok(result) => {
            frame.insert("result".into(), result);
        }
        Err(denial) => {
            shared.audit("discovery", &denial, false);
            frame.insert(
                "error".into(),
                json!({ "code": denial.code().as_str(), "message": denial.message() }),
            );
        }
    }
}
