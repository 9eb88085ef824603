//! Discovery calls from an RBAC session (spec rbac §8, settled decision 10): the eight
//! `engine::*` discovery functions run in process and their results are filtered for the
//! session by `policies` against a catalog read from the live registry.

use std::sync::Arc;

use policies::DiscoveryFunction;
use serde_json::Value;
use serde_json::value::RawValue;

use super::gate::{Gate, answer_error, catalog, trace_of};
use crate::builtins;
use crate::engine::Engine;
use crate::protocol::{self, ErrorBody, Frame};
use crate::registry::Owner;
use crate::router;
use crate::wire_error::WireError;
use crate::worker_handle::WorkerHandle;

impl Gate {
    /// Runs an allowed discovery call and answers with what the session may see. Void calls
    /// get no answer, so they are not run at all (discovery has no side effects).
    pub(super) async fn discovery(
        &self,
        engine: &Arc<Engine>,
        worker: &Arc<WorkerHandle>,
        frame: &Frame<'_>,
        sent: &str,
        function: DiscoveryFunction,
    ) {
        let Some(reply_to) = router::reply_id(frame) else {
            return;
        };
        let owner = engine.functions.get(function.id()).map(|e| e.owner.clone());
        let Some(Owner::Builtin(builtin)) = owner else {
            // Built-ins cannot be registered over; nothing else serves these ids.
            return answer_error(worker, frame, sent, &WireError::FunctionNotFound(sent)).await;
        };
        let data = frame.data.map_or("null", RawValue::get);
        let request: Value = serde_json::from_str(data).unwrap_or(Value::Null);
        let catalog = catalog(engine);
        let decision =
            self.policy
                .decide_discovery_request(&self.session, function, &request, &catalog);
        if let Some(denial) = decision.enforced_denial() {
            return answer_error(worker, frame, sent, &WireError::Denied(denial)).await;
        }
        let outcome = match builtins::call(engine, builtin, Some(worker), data).await {
            Ok(text) => match serde_json::from_str::<Value>(&text) {
                Ok(result) => {
                    let reply =
                        self.policy
                            .filter_discovery(&self.session, function, result, &catalog);
                    if !reply.hidden.is_empty() {
                        tracing::trace!(hidden = reply.hidden.len(), "discovery result filtered");
                    }
                    reply
                        .result
                        .map_err(|denial| WireError::Denied(&denial).body())
                }
                Err(e) => Err(WireError::Serialization(e.to_string()).body()),
            },
            Err(error) => Err(self
                .policy
                .discovery_error(function, &request, &error.code)
                .map_or(error, |denial| WireError::Denied(&denial).body())),
        };
        let text = match outcome {
            Ok(result) => {
                protocol::result_frame(&reply_to, sent, &result.to_string(), trace_of(frame))
            }
            Err(error) => error_text(&reply_to, sent, &error, frame),
        };
        let _ = worker.send_text(text).await;
    }
}

fn error_text(id: &uuid::Uuid, function_id: &str, error: &ErrorBody, frame: &Frame<'_>) -> String {
    protocol::traced_error_frame(id, function_id, error, trace_of(frame))
}
