//! Reading the few fields the gate needs from a frame, and building the frames the gateway
//! answers with itself (deny replies, `triggerregistrationresult` refusals, the AUTH_ERROR
//! frame). Frames the gate lets through unchanged are forwarded as the exact text received.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The routing fields of a frame; everything else is skipped without allocating.
#[derive(Debug, Deserialize)]
pub(crate) struct Head<'a> {
    /// `type`.
    #[serde(rename = "type", borrow)]
    pub kind: Cow<'a, str>,
    /// `function_id` (invokes, results).
    #[serde(borrow, default)]
    pub function_id: Option<Cow<'a, str>>,
    /// `invocation_id`; `null` reads as absent.
    #[serde(borrow, default)]
    pub invocation_id: Option<Cow<'a, str>>,
    /// `namespace` (iii HEAD); only `default` exists behind the gateway.
    #[serde(borrow, default)]
    pub namespace: Option<Cow<'a, str>>,
}

impl<'a> Head<'a> {
    /// Parses the head of a JSON frame; `None` when it is not a JSON object with a `type`.
    pub(crate) fn parse(text: &'a str) -> Option<Self> {
        serde_json::from_str(text).ok()
    }
}

/// A frame parsed in full, for the frames the gate rewrites.
pub(crate) fn parse_object(text: &str) -> Option<Map<String, Value>> {
    match serde_json::from_str(text) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    }
}

/// A string field of a parsed frame (`""` when missing or not a string).
pub(crate) fn str_field<'m>(frame: &'m Map<String, Value>, key: &str) -> &'m str {
    frame.get(key).and_then(Value::as_str).unwrap_or_default()
}

/// Whether an invoke expects no reply: `action: {type: void}` or no `invocation_id`.
pub(crate) fn is_void(frame: &Map<String, Value>) -> bool {
    let void_action = frame
        .get("action")
        .and_then(|a| a.get("type"))
        .and_then(Value::as_str)
        == Some("void");
    void_action || frame.get("invocation_id").is_none_or(Value::is_null)
}

/// An `invocationresult` carrying an error, echoing the invoke's id (or a made-up one for a
/// call without id, as iii does) and its trace headers.
pub(crate) fn invocation_error(
    invocation_id: Option<&str>,
    function_id: &str,
    code: &str,
    message: &str,
    trace: Option<&Map<String, Value>>,
) -> String {
    let id = invocation_id.map_or_else(|| uuid::Uuid::new_v4().to_string(), str::to_owned);
    let mut frame = Map::new();
    frame.insert("type".into(), "invocationresult".into());
    frame.insert("invocation_id".into(), id.into());
    frame.insert("function_id".into(), function_id.into());
    frame.insert("error".into(), json!({ "code": code, "message": message }));
    copy_trace(trace, &mut frame);
    Value::Object(frame).to_string()
}

/// An `invocationresult` carrying a result.
pub(crate) fn invocation_result(
    invocation_id: &str,
    function_id: &str,
    outcome: Result<Value, (String, String)>,
    trace: Option<&Map<String, Value>>,
) -> String {
    let mut frame = Map::new();
    frame.insert("type".into(), "invocationresult".into());
    frame.insert("invocation_id".into(), invocation_id.into());
    frame.insert("function_id".into(), function_id.into());
    match outcome {
        Ok(result) => {
            frame.insert("result".into(), result);
        }
        Err((code, message)) => {
            frame.insert("error".into(), json!({ "code": code, "message": message }));
        }
    }
    copy_trace(trace, &mut frame);
    Value::Object(frame).to_string()
}

fn copy_trace(from: Option<&Map<String, Value>>, to: &mut Map<String, Value>) {
    for key in ["traceparent", "baggage"] {
        if let Some(value) = from.and_then(|f| f.get(key)).filter(|v| !v.is_null()) {
            to.insert(key.into(), value.clone());
        }
    }
}

/// A `triggerregistrationresult` refusal (settled decision 5).
pub(crate) fn registration_denied(
    id: &str,
    trigger_type: &str,
    function_id: &str,
    code: &str,
    message: &str,
) -> String {
    json!({
        "type": "triggerregistrationresult",
        "id": id,
        "trigger_type": trigger_type,
        "function_id": function_id,
        "error": { "code": code, "message": message },
    })
    .to_string()
}

/// The frame sent before closing a connection whose authentication failed.
pub(crate) fn auth_error(message: &str) -> String {
    json!({ "type": "error", "error": { "code": "AUTH_ERROR", "message": message } }).to_string()
}

#[cfg(test)]
mod tests {
    use super::{Head, invocation_error, is_void, parse_object};
    use serde_json::Value;

    #[test]
    fn the_head_borrows_and_skips_the_payload() {
        let head = Head::parse(
            r#"{"type":"invokefunction","data":{"big":[1,2,3]},"function_id":"a::b","invocation_id":null}"#,
        )
        .unwrap();
        assert_eq!(head.kind, "invokefunction");
        assert_eq!(head.function_id.as_deref(), Some("a::b"));
        assert!(head.invocation_id.is_none());
        assert!(Head::parse("[1]").is_none());
        assert!(Head::parse(r#"{"no":"type"}"#).is_none());
    }

    #[test]
    fn void_calls_are_recognised() {
        let void = parse_object(r#"{"invocation_id":"x","action":{"type":"void"}}"#).unwrap();
        assert!(is_void(&void));
        assert!(is_void(&parse_object(r#"{"function_id":"f"}"#).unwrap()));
        assert!(!is_void(&parse_object(r#"{"invocation_id":"x"}"#).unwrap()));
    }

    #[test]
    fn deny_frames_echo_ids_and_trace_headers() {
        let invoke = parse_object(r#"{"traceparent":"00-a-b-01","baggage":null}"#).unwrap();
        let frame: Value = serde_json::from_str(&invocation_error(
            Some("id-1"),
            "f",
            "FORBIDDEN",
            "no",
            Some(&invoke),
        ))
        .unwrap();
        assert_eq!(frame["invocation_id"], "id-1");
        assert_eq!(frame["traceparent"], "00-a-b-01");
        assert!(frame.get("baggage").is_none());
        assert!(frame.get("result").is_none());
        let made_up: Value =
            serde_json::from_str(&invocation_error(None, "f", "FORBIDDEN", "no", None)).unwrap();
        assert!(uuid::Uuid::parse_str(made_up["invocation_id"].as_str().unwrap()).is_ok());
    }
}
