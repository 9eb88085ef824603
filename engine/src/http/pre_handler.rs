//! What runs before an `http` handler (spec §3.3): the global middleware (by priority), the
//! route's own `middleware_function_ids`, then its `condition_function_id`. Middleware answers
//! `{action:"continue"}` or `{action:"respond", response:{status_code, headers, body}}`; a
//! condition that returns a literal `false` skips the handler with 422.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::response::Response;
use serde_json::{Value, json};
use tokio::time::Instant;

use super::response;
use super::routes::Route;
use crate::config::HttpMiddleware;
use crate::engine::Engine;
use crate::router;
use crate::wire_error::WireError;

/// Whether the handler runs.
pub(super) enum Gate {
    /// Go on to the handler.
    Continue,
    /// Answer with this instead.
    Respond(Response),
}

/// Runs the middleware chain and the condition for one request.
pub(super) async fn run(
    engine: &Arc<Engine>,
    global: &[HttpMiddleware],
    route: &Route,
    request: &Value,
    data: &str,
    deadline: Instant,
) -> Gate {
    let ids = global
        .iter()
        .map(|m| m.function_id.as_str())
        .chain(route.middleware_function_ids.iter().map(String::as_str));
    let mut input = None;
    for id in ids {
        let input = input.get_or_insert_with(|| middleware_input(request));
        let remaining = deadline.saturating_duration_since(Instant::now());
        match router::invoke(engine, id, input, None, remaining).await {
            Ok(raw) => {
                let answer: Value = serde_json::from_str(raw.get()).unwrap_or(Value::Null);
                if answer.get("action").and_then(Value::as_str) == Some("respond") {
                    let reply = answer.get("response").cloned().unwrap_or(Value::Null);
                    return Gate::Respond(response::from_result(reply));
                }
            }
            Err(e) if e.code == WireError::Timeout.body().code => {
                return Gate::Respond(response::error(
                    StatusCode::GATEWAY_TIMEOUT,
                    &WireError::MiddlewareTimeout.body(),
                ));
            }
            Err(e) => return Gate::Respond(response::from_error(&e)),
        }
    }
    if let Some(condition) = &route.condition_function_id {
        let remaining = deadline.saturating_duration_since(Instant::now());
        match router::invoke(engine, condition, data, None, remaining).await {
            Ok(raw) if raw.get().trim() == "false" => {
                return Gate::Respond(response::condition_not_met());
            }
            Ok(_) => {}
            Err(e) => return Gate::Respond(response::from_error(&e)),
        }
    }
    Gate::Continue
}

/// `{phase, request: {path_params, query_params, headers, method}, context}`.
fn middleware_input(request: &Value) -> String {
    let field = |k: &str| request.get(k).cloned().unwrap_or(Value::Null);
    json!({
        "phase": "preHandler",
        "request": {
            "path_params": field("path_params"),
            "query_params": field("query_params"),
            "headers": field("headers"),
            "method": field("method"),
        },
        "context": {},
    })
    .to_string()
}
