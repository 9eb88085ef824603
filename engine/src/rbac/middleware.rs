//! The listener middleware (spec rbac §5, settled decision 6): an allowed invoke becomes a
//! call of `middleware_function_id` with `{function_id, payload, action, context}`; what it
//! returns or throws is the caller's answer. Each call runs in a task owned by the session's
//! gate, so the connection's frame pump never waits on it (the middleware may call back into
//! a function this very session serves).

use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::gate::Gate;
use crate::engine::Engine;
use crate::protocol::{self, Action, Frame, Trace, push_json_str};
use crate::router;
use crate::worker_handle::WorkerHandle;

/// Upper bound on one middleware call. The caller's SDK times out first (30 s by default);
/// this only keeps a middleware that never answers from holding the task forever.
const MIDDLEWARE_DEADLINE: Duration = Duration::from_secs(300);

impl Gate {
    /// Starts the middleware for an allowed invoke of `resolved` (the own `P::id` of a bare
    /// self-invoke, else the id as sent).
    pub(super) fn spawn_middleware(
        &mut self,
        engine: &Arc<Engine>,
        worker: &Arc<WorkerHandle>,
        frame: &Frame<'_>,
        resolved: &str,
        data: &str,
        middleware: String,
    ) {
        let input = middleware_input(resolved, data, frame.action.as_ref(), self.context.get());
        let engine = engine.clone();
        let caller = worker.clone();
        // Void calls get no answer (spec §2.2), as on the trusted path and in iii-gateway.
        let reply_to = router::reply_id(frame);
        // The answer names the resolved target, as iii-gateway's does.
        let function_id = resolved.to_owned();
        let metadata = frame.metadata.map(|m| m.get().to_owned());
        let traceparent = frame.traceparent.as_deref().map(str::to_owned);
        let baggage = frame.baggage.as_deref().map(str::to_owned);
        while self.calls.try_join_next().is_some() {}
        let call = async move {
            let outcome = router::invoke(
                &engine,
                &middleware,
                &input,
                metadata.as_deref(),
                MIDDLEWARE_DEADLINE,
            )
            .await;
            let Some(reply_to) = reply_to else {
                return;
            };
            let trace = Trace {
                traceparent: traceparent.as_deref(),
                baggage: baggage.as_deref(),
            };
            let text = match outcome {
                Ok(result) => protocol::result_frame(&reply_to, &function_id, result.get(), trace),
                Err(error) => protocol::traced_error_frame(&reply_to, &function_id, &error, trace),
            };
            let _ = caller.send_text(text).await;
        };
        let span = tracing::debug_span!("invocation", fn.id = resolved, invocation.id = ?reply_to);
        self.calls.spawn(call.instrument(span));
    }
}

/// `{"function_id":…,"payload":…,"action":…,"context":…}`, written without a `Value`.
fn middleware_input(
    resolved: &str,
    data: &str,
    action: Option<&Action<'_>>,
    context: &str,
) -> String {
    let mut out = String::with_capacity(data.len() + context.len() + resolved.len() + 96);
    out.push_str("{\"function_id\":");
    push_json_str(&mut out, resolved);
    out.push_str(",\"payload\":");
    out.push_str(data);
    out.push_str(",\"action\":");
    match action {
        Some(Action::Void) => out.push_str("{\"type\":\"void\"}"),
        Some(Action::Enqueue { queue }) => {
            out.push_str("{\"type\":\"enqueue\",\"queue\":");
            match queue {
                Some(queue) => push_json_str(&mut out, queue),
                None => out.push_str("null"),
            }
            out.push('}');
        }
        Some(Action::Unknown) | None => out.push_str("null"),
    }
    out.push_str(",\"context\":");
    out.push_str(context);
    out.push('}');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn the_input_carries_the_resolved_id_payload_action_and_context() {
        let input = middleware_input("t1::f", "{\"a\":1}", None, "{\"tenant\":\"t1\"}");
        let v: Value = serde_json::from_str(&input).unwrap();
        assert_eq!(
            v,
            json!({"function_id": "t1::f", "payload": {"a": 1}, "action": null, "context": {"tenant": "t1"}})
        );
        let queue = Action::Enqueue {
            queue: Some("q\"".into()),
        };
        let v: Value =
            serde_json::from_str(&middleware_input("f", "null", Some(&queue), "{}")).unwrap();
        assert_eq!(v["action"], json!({"type": "enqueue", "queue": "q\""}));
        let v: Value =
            serde_json::from_str(&middleware_input("f", "[]", Some(&Action::Void), "{}")).unwrap();
        assert_eq!(v["action"], json!({"type": "void"}));
    }
}
