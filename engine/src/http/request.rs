//! An HTTP request as the handler sees it (spec §3.3): query and path params, lowercase
//! headers, the registered pattern as `path`, the JSON body when the content type says JSON,
//! and channel refs for the raw request body and a streamed response.

use axum::http::{HeaderMap, header};
use serde_json::{Map, Value, json};
use uuid::Uuid;

/// A channel reference as it appears in invocation data.
pub(super) fn channel_ref(id: &Uuid, key: &Uuid, direction: &str) -> Value {
    json!({ "channel_id": id, "access_key": key, "direction": direction })
}

/// Everything the request object is built from.
pub(super) struct RequestParts<'a> {
    pub(super) method: &'a str,
    pub(super) pattern: &'a str,
    pub(super) query: Option<&'a str>,
    pub(super) path_params: Vec<(String, String)>,
    pub(super) headers: &'a HeaderMap,
    pub(super) body: &'a [u8],
    pub(super) request_body: Value,
    pub(super) response: Value,
}

/// Builds the invocation `data` (repeated query keys and headers collapse: the last wins).
pub(super) fn request_object(parts: RequestParts<'_>) -> Value {
    let query_params: Map<String, Value> =
        form_urlencoded::parse(parts.query.unwrap_or_default().as_bytes())
            .map(|(k, v)| (k.into_owned(), Value::String(v.into_owned())))
            .collect();
    let path_params: Map<String, Value> = parts
        .path_params
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    let headers: Map<String, Value> = parts
        .headers
        .iter()
        .map(|(k, v)| {
            (
                k.as_str().to_owned(),
                Value::String(String::from_utf8_lossy(v.as_bytes()).into_owned()),
            )
        })
        .collect();
    let is_json = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|ct| ct.to_ascii_lowercase().contains("application/json"));
    let body = if is_json {
        serde_json::from_slice(parts.body).unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    json!({
        "query_params": query_params,
        "path_params": path_params,
        "headers": headers,
        "path": parts.pattern,
        "method": parts.method,
        "body": body,
        "trigger": { "type": "http", "path": parts.pattern, "method": parts.method },
        "request_body": parts.request_body,
        "response": parts.response,
    })
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;

    use super::*;

    #[test]
    fn request_object_has_the_documented_shape() {
        let mut headers = HeaderMap::new();
        headers.insert(
            "Content-Type",
            HeaderValue::from_static("application/json; charset=utf-8"),
        );
        headers.insert("X-Thing", HeaderValue::from_static("1"));
        let v = request_object(RequestParts {
            method: "POST",
            pattern: "/users/:id",
            query: Some("page=2&q=a+b&page=3"),
            path_params: vec![("id".into(), "42".into())],
            headers: &headers,
            body: br#"{"name":"x"}"#,
            request_body: Value::Null,
            response: Value::Null,
        });
        assert_eq!(v["query_params"], json!({ "page": "3", "q": "a b" }));
        assert_eq!(v["path_params"], json!({ "id": "42" }));
        assert_eq!(v["headers"]["x-thing"], "1");
        assert_eq!(v["body"], json!({ "name": "x" }));
        assert_eq!(v["path"], "/users/:id");
        assert_eq!(
            v["trigger"],
            json!({ "type": "http", "path": "/users/:id", "method": "POST" })
        );
    }

    #[test]
    fn non_json_bodies_and_invalid_json_give_null() {
        let headers = HeaderMap::new();
        let parts = |body: &'static [u8], headers: &'static HeaderMap| RequestParts {
            method: "POST",
            pattern: "/",
            query: None,
            path_params: vec![],
            headers,
            body,
            request_body: Value::Null,
            response: Value::Null,
        };
        let headers: &'static HeaderMap = Box::leak(Box::new(headers));
        assert_eq!(request_object(parts(b"{}", headers))["body"], Value::Null);
        let mut json_headers = HeaderMap::new();
        json_headers.insert("content-type", HeaderValue::from_static("application/json"));
        let json_headers: &'static HeaderMap = Box::leak(Box::new(json_headers));
        assert_eq!(
            request_object(parts(b"{nope", json_headers))["body"],
            Value::Null
        );
    }
}
