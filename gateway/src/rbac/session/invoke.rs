//! Gating an `invokefunction` from the client: the rate limit, the access decision (with the
//! target's metadata when a filter needs it), own-id resolution under a prefix, trigger calls
//! (`engine::register_trigger` / `engine::unregister_trigger`), discovery calls (recorded so
//! their results can be filtered), and the middleware, which runs as a task and answers
//! through the session's reply channel.

use std::sync::atomic::Ordering;
use std::sync::{Arc, PoisonError};

use policies::DiscoveryFunction;
use serde_json::{Map, Value, json};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use tracing::Instrument as _;

use super::{Outbox, Shared};
use crate::limits::RATE_LIMITED_MESSAGE;
use crate::rbac::control::CallError;
use crate::rbac::frames::{self, str_field};
use crate::status::bump;

/// Middleware calls one session may have in flight before its frames wait.
const MAX_MIDDLEWARE_IN_FLIGHT: usize = 256;
/// Discovery calls one session may have in flight (their requests are kept until answered).
const MAX_DISCOVERY_IN_FLIGHT: usize = 256;

pub(super) async fn on_invoke(
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
pub(super) fn invoke_fast(
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
        // Reap finished middleware tasks so the set stays small; at the cap, wait for one to
        // finish (the client is not read meanwhile: back-pressure, not unbounded memory).
        while middleware.try_join_next().is_some() {}
        while middleware.len() >= MAX_MIDDLEWARE_IN_FLIGHT {
            let _ = middleware.join_next().await;
        }
        middleware
            .spawn(async move { run_middleware(&shared, &middleware_id, frame, &target).await });
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
        // The call travels under an id of the gateway's own, so its result is found whatever
        // the client's id looked like (the engine may canonicalise it) and cannot be confused
        // with another call; the client's id is put back on the result.
        let ours = uuid::Uuid::new_v4().to_string();
        {
            let mut pending = shared
                .discovery
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if pending.len() >= MAX_DISCOVERY_IN_FLIGHT {
                drop(pending);
                let why = "too many discovery calls in flight";
                shared.refused(
                    "discovery",
                    function_id,
                    "RATE_LIMITED",
                    why,
                    false,
                    &shared.listener.status.rate_limited,
                );
                out.client(frames::invocation_error(
                    Some(id),
                    function_id,
                    "RATE_LIMITED",
                    why,
                    Some(&frame),
                ));
                return;
            }
            pending.insert(ours.clone(), (function, request, id.to_owned()));
        }
        shared.discovery_pending.fetch_add(1, Ordering::Relaxed);
        frame.insert("invocation_id".into(), ours.into());
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
