//! Frames from the engine to the client when they need rewriting: the session's prefix
//! stripped from calls and trigger results, and discovery results filtered to what the
//! session may see (spec §7, §8).

use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use policies::DiscoveryFunction;
use serde_json::{Map, Value, json};
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};

use super::{Outbox, Shared};
use crate::rbac::frames::{self, Head, str_field};
use crate::status::bump;

pub(super) async fn on_engine_text(shared: &Shared, text: Utf8Bytes, out: &mut Outbox) {
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
    if let Some((function, request, client_id)) = discovery {
        frame.insert("invocation_id".into(), client_id.into());
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
