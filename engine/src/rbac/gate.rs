//! One RBAC session's gate: the listener's policy and the session's boundaries, consulted
//! for every inbound frame. It enforces the size limit (settled decision 8), gates invokes
//! (spec rbac §4, settled decisions 1, 4 and 11) and routes allowed calls to discovery
//! filtering, the middleware or the router; registrations go to `registration.rs`, and
//! everything else to the trusted handlers unchanged.

use std::sync::Arc;

use policies::{DiscoveryFunction, FunctionCatalog, ListenerPolicy, Session};
use serde_json::Value;
use serde_json::value::RawValue;
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use crate::engine::Engine;
use crate::protocol::{self, Frame, FrameType, Trace};
use crate::router;
use crate::wire_error::WireError;
use crate::worker_conn;
use crate::worker_handle::WorkerHandle;

/// The function form of `registertrigger` (gated like the frame, spec rbac §4.6).
const REGISTER_TRIGGER: &str = "engine::register_trigger";
/// The function form of `unregistertrigger` (own triggers only, settled decision 11).
const UNREGISTER_TRIGGER: &str = "engine::unregister_trigger";
/// Where a worker declares its namespace (spec rbac §4.4).
const WORKERS_REGISTER: &str = "engine::workers::register";

/// A session on an RBAC listener. Owned by its connection task; dropping it aborts the
/// middleware calls still running for the session.
#[derive(Debug)]
pub(crate) struct Gate {
    pub(super) policy: Arc<ListenerPolicy>,
    pub(super) session: Session,
    /// The session's context as JSON, written once for the middleware input.
    pub(super) context: Box<RawValue>,
    /// Middleware calls in flight.
    pub(super) calls: JoinSet<()>,
    max_message_bytes: usize,
}

impl Gate {
    /// The gate of a session that passed auth.
    pub(crate) fn new(policy: Arc<ListenerPolicy>, session: Session) -> Self {
        let context = serde_json::value::to_raw_value(session.context())
            .unwrap_or_else(|_| crate::registry::raw_null());
        let max_message_bytes =
            usize::try_from(policy.config().limits.max_message_bytes).unwrap_or(usize::MAX);
        Self {
            policy,
            session,
            context,
            calls: JoinSet::new(),
            max_message_bytes,
        }
    }

    /// The session's `function_registration_prefix`, if any.
    pub(crate) fn prefix(&self) -> Option<&str> {
        self.session.prefix()
    }

    /// Handles one inbound message; `Some(close)` ends the connection.
    pub(crate) async fn on_message(
        &mut self,
        engine: &Arc<Engine>,
        worker: &Arc<WorkerHandle>,
        text: &Utf8Bytes,
    ) -> Option<CloseFrame> {
        if text.len() > self.max_message_bytes {
            return self.oversized(worker, text).await;
        }
        // Whitespace and undecodable frames are ignored (logged); the session goes on.
        let frame = worker_conn::parse(text)?;
        match frame.frame_type() {
            FrameType::InvokeFunction => self.invoke(engine, worker, &frame).await,
            FrameType::RegisterFunction => self.register_function(engine, worker, &frame).await,
            FrameType::UnregisterFunction => self.unregister_function(engine, worker, &frame),
            FrameType::RegisterTriggerType => {
                self.register_trigger_type(engine, worker, &frame).await;
            }
            FrameType::RegisterTrigger => self.register_trigger(engine, worker, &frame).await,
            FrameType::UnregisterTrigger => self.unregister_trigger(engine, worker, &frame).await,
            FrameType::InvocationResult
            | FrameType::TriggerRegistrationResult
            | FrameType::Reattach
            | FrameType::Ping
            | FrameType::Pong
            | FrameType::Other => worker_conn::dispatch_frame(engine, worker, &frame, text).await,
        }
        None
    }

    /// A message over `limits.max_message_bytes`: an invoke is answered `payload_too_large`
    /// and the session goes on; anything else closes it with 1009.
    async fn oversized(&self, worker: &WorkerHandle, text: &str) -> Option<CloseFrame> {
        let limit = self.policy.config().limits.max_message_bytes;
        tracing::debug!(
            bytes = text.len(),
            limit,
            "message over limits.max_message_bytes"
        );
        match protocol::parse_frame(text) {
            Ok(frame) if frame.frame_type() == FrameType::InvokeFunction => {
                let function_id = frame.function_id.as_deref().unwrap_or_default();
                let error = WireError::MessageTooLarge {
                    bytes: text.len(),
                    limit,
                };
                answer_error(worker, &frame, function_id, &error).await;
                None
            }
            _ => Some(CloseFrame {
                code: CloseCode::Size,
                reason: "message too big (limits.max_message_bytes)".into(),
            }),
        }
    }

    /// `invokefunction`: resolve the target, decide, then discovery, middleware or router.
    async fn invoke(
        &mut self,
        engine: &Arc<Engine>,
        worker: &Arc<WorkerHandle>,
        frame: &Frame<'_>,
    ) {
        let Some(sent) = frame.function_id.as_deref() else {
            return router::invoke_from_worker(engine, worker, frame).await;
        };
        let resolved = self.policy.resolve_target(&self.session, sent);
        let metadata = self.metadata(engine, &resolved);
        let decision = self
            .policy
            .decide_invoke(&self.session, &resolved, metadata.as_ref());
        if let Some(denial) = decision.enforced_denial() {
            tracing::debug!(fn.id = %resolved, error = %denial, "invoke denied");
            return answer_error(worker, frame, sent, &WireError::Denied(denial)).await;
        }
        let data = frame.data.map_or("null", RawValue::get);
        let mut rewritten = None;
        match resolved.as_ref() {
            WORKERS_REGISTER => {
                let payload: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                let declared = payload.get("namespace").and_then(Value::as_str);
                let decision =
                    self.policy
                        .decide_worker_namespace(&self.session, &resolved, declared);
                if let Some(denial) = decision.enforced_denial() {
                    return answer_error(worker, frame, sent, &WireError::Denied(denial)).await;
                }
            }
            REGISTER_TRIGGER | UNREGISTER_TRIGGER => {
                let mut payload: Value = serde_json::from_str(data).unwrap_or(Value::Null);
                let catalog = if self.policy.needs_metadata() {
                    catalog(engine)
                } else {
                    FunctionCatalog::new()
                };
                let decision =
                    self.policy
                        .decide_trigger_call(&self.session, &resolved, &payload, &catalog);
                if let Some(denial) = decision.enforced_denial() {
                    return answer_error(worker, frame, sent, &WireError::Denied(denial)).await;
                }
                // The target is stored under the session's prefix, as with `registertrigger`.
                if resolved == REGISTER_TRIGGER
                    && let Some(target) = payload.get("function_id").and_then(Value::as_str)
                {
                    let target = self
                        .policy
                        .resolve_trigger_target(&self.session, target)
                        .into_owned();
                    if let Some(object) = payload.as_object_mut() {
                        object.insert("function_id".into(), Value::from(target));
                    }
                    rewritten = Some(payload.to_string());
                }
            }
            _ => {}
        }
        if let Some(function) = DiscoveryFunction::from_id(&resolved) {
            return self.discovery(engine, worker, frame, sent, function).await;
        }
        let data = rewritten.as_deref().unwrap_or(data);
        if let Some(middleware) = self.policy.middleware_for(&resolved) {
            let middleware = middleware.to_owned();
            return self.spawn_middleware(engine, worker, frame, &resolved, data, middleware);
        }
        router::invoke_as(engine, worker, frame, &resolved, data).await;
    }

    /// The registered metadata of `function_id`, read only when an expose filter needs it.
    pub(super) fn metadata(&self, engine: &Engine, function_id: &str) -> Option<Value> {
        if !self.policy.needs_metadata() {
            return None;
        }
        let entry = engine.functions.get(function_id)?;
        serde_json::from_str(entry.metadata.as_deref()?.get()).ok()
    }
}

/// The engine's functions (worker name, metadata) and trigger bindings, read from the live
/// registry for decisions that need more than one function's metadata.
pub(super) fn catalog(engine: &Engine) -> FunctionCatalog {
    let mut catalog = FunctionCatalog::new();
    for entry in &engine.functions {
        let metadata = entry
            .metadata
            .as_deref()
            .and_then(|m| serde_json::from_str(m.get()).ok());
        catalog.insert_function(entry.key(), Some(&entry.worker_name()), metadata);
    }
    for binding in &engine.triggers {
        catalog.insert_binding(&binding.trigger_type, &binding.function_id);
    }
    catalog
}

/// The caller's trace context, echoed on answers the gate gives itself.
pub(super) fn trace_of<'a>(frame: &'a Frame<'_>) -> Trace<'a> {
    Trace {
        traceparent: frame.traceparent.as_deref(),
        baggage: frame.baggage.as_deref(),
    }
}

/// Answers an invoke with an error, even a void one (with a made-up id, spec rbac §4.5).
pub(super) async fn answer_error(
    worker: &WorkerHandle,
    frame: &Frame<'_>,
    function_id: &str,
    error: &WireError<'_>,
) {
    let id = frame.invocation_id.unwrap_or_else(Uuid::new_v4);
    let text = protocol::traced_error_frame(&id, function_id, &error.body(), trace_of(frame));
    let _ = worker.send_text(text).await;
}
