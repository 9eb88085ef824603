//! Handler results and failures as HTTP responses (spec §3.3): `{status_code, headers, body}`
//! mapping, the JSON default, and the error envelope with an `error_id`.

use axum::body::Body;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

use crate::protocol::ErrorBody;
use crate::wire_error::WireError;

/// A status code from a handler: an integer 100–599, else 200.
pub(super) fn status_from(value: Option<&Value>) -> StatusCode {
    value
        .and_then(Value::as_u64)
        .and_then(|n| u16::try_from(n).ok())
        .filter(|n| (100..=599).contains(n))
        .and_then(|n| StatusCode::from_u16(n).ok())
        .unwrap_or(StatusCode::OK)
}

/// Headers as `{"Name": "value"}` or `["Name: value", …]`; invalid names or values are
/// skipped (a handler bug must not fail the whole response).
pub(super) fn headers_from(value: Option<&Value>) -> Vec<(HeaderName, HeaderValue)> {
    let pair = |name: &str, value: &str| {
        Some((
            HeaderName::try_from(name.trim()).ok()?,
            HeaderValue::try_from(value.trim()).ok()?,
        ))
    };
    match value {
        Some(Value::Object(map)) => map
            .iter()
            .filter_map(|(k, v)| match v {
                Value::String(s) => pair(k, s),
                other => pair(k, &other.to_string()),
            })
            .collect(),
        Some(Value::Array(items)) => items
            .iter()
            .filter_map(Value::as_str)
            .filter_map(|line| line.split_once(':').and_then(|(k, v)| pair(k, v)))
            .collect(),
        _ => Vec::new(),
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let mut resp = Response::new(Body::from(serde_json::to_vec(body).unwrap_or_default()));
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    resp
}

/// Maps a handler's return value to a response.
pub(super) fn from_result(result: Value) -> Response {
    let Value::Object(mut map) = result else {
        return json_response(StatusCode::OK, &json!({}));
    };
    let status = status_from(map.get("status_code"));
    let headers = headers_from(map.get("headers"));
    let body = map.remove("body").unwrap_or_else(|| json!({}));
    let has_content_type = headers.iter().any(|(k, _)| k == header::CONTENT_TYPE);
    let mut resp = if has_content_type {
        let bytes = match body {
            Value::String(s) => s.into_bytes(),
            Value::Null => Vec::new(),
            other => other.to_string().into_bytes(),
        };
        let mut r = Response::new(Body::from(bytes));
        *r.status_mut() = status;
        r
    } else {
        json_response(status, &body)
    };
    for (k, v) in headers {
        resp.headers_mut().append(k, v);
    }
    resp
}

/// The error envelope: `{"error":{"code","message","error_id"}}`.
pub(super) fn error(status: StatusCode, e: &ErrorBody) -> Response {
    let error_id = format!("{:032x}", uuid::Uuid::new_v4().as_u128());
    json_response(
        status,
        &json!({ "error": { "code": e.code, "message": e.message, "error_id": error_id } }),
    )
}

/// A failed invocation: 504 for a timeout, 500 otherwise.
pub(super) fn from_error(e: &ErrorBody) -> Response {
    if e.code == "TIMEOUT" {
        return timeout();
    }
    tracing::debug!(error.code = %e.code, "http handler failed");
    error(StatusCode::INTERNAL_SERVER_ERROR, e)
}

/// 504 with an empty body (the request outlived `default_timeout`).
pub(super) fn timeout() -> Response {
    let mut resp = Response::new(Body::empty());
    *resp.status_mut() = StatusCode::GATEWAY_TIMEOUT;
    resp
}

/// 422 when the route's condition returned `false`.
pub(super) fn condition_not_met() -> Response {
    let e = WireError::ConditionNotMet.body();
    json_response(
        StatusCode::UNPROCESSABLE_ENTITY,
        &json!({ "error": { "code": e.code, "message": e.message }, "skipped": true }),
    )
}

/// 404 for a path no route matches.
pub(super) fn not_found() -> Response {
    let e = WireError::RouteNotFound.body();
    json_response(
        StatusCode::NOT_FOUND,
        &json!({ "error": { "code": e.code, "message": e.message } }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_defaults_to_200_when_missing_or_not_a_number() {
        assert_eq!(status_from(Some(&json!(201))), StatusCode::CREATED);
        assert_eq!(status_from(Some(&json!("201"))), StatusCode::OK);
        assert_eq!(status_from(Some(&json!(99))), StatusCode::OK);
        assert_eq!(status_from(None), StatusCode::OK);
    }

    #[test]
    fn headers_accept_both_shapes_and_skip_invalid_ones() {
        let h = headers_from(Some(&json!({ "X-A": "1", "Bad Name": "x", "X-N": 5 })));
        assert_eq!(h.len(), 2);
        let h = headers_from(Some(&json!(["X-A: 1", "nocolon", "X-B:2"])));
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn non_object_results_give_200_empty_object() {
        let r = from_result(json!(5));
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "application/json");
    }

    #[test]
    fn content_type_given_sends_string_bodies_raw() {
        let r = from_result(
            json!({ "status_code": 201, "headers": { "content-type": "text/plain" }, "body": "hi" }),
        );
        assert_eq!(r.status(), StatusCode::CREATED);
        assert_eq!(r.headers()[header::CONTENT_TYPE], "text/plain");
    }
}
