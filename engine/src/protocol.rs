//! The iii worker protocol on the wire: inbound frames parsed into one borrowed view, and
//! outbound frames written straight into a `String` (no intermediate `Value`).
//!
//! Unknown fields are ignored and unknown `type`s are reported as [`FrameType::Other`]; the
//! SDKs send both (spec §0). Routing decisions live in `router`, not here.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use uuid::Uuid;

/// The `type` tags the engine acts on. Everything else is [`FrameType::Other`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum FrameType {
    RegisterFunction,
    UnregisterFunction,
    RegisterTriggerType,
    RegisterTrigger,
    UnregisterTrigger,
    TriggerRegistrationResult,
    InvokeFunction,
    InvocationResult,
    Reattach,
    Ping,
    Pong,
    Other,
}

impl FrameType {
    fn from_tag(tag: &str) -> Self {
        match tag {
            "registerfunction" => Self::RegisterFunction,
            "unregisterfunction" => Self::UnregisterFunction,
            "registertriggertype" => Self::RegisterTriggerType,
            "registertrigger" => Self::RegisterTrigger,
            "unregistertrigger" => Self::UnregisterTrigger,
            "triggerregistrationresult" => Self::TriggerRegistrationResult,
            "invokefunction" => Self::InvokeFunction,
            "invocationresult" => Self::InvocationResult,
            "reattach" => Self::Reattach,
            "ping" => Self::Ping,
            "pong" => Self::Pong,
            _ => Self::Other,
        }
    }
}

/// One inbound frame, every field optional and borrowed from the message text.
///
/// A single struct (rather than a tagged enum) keeps parsing to one pass with no buffering,
/// and lets each handler say which missing field makes a frame invalid.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    pub(crate) tag: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) id: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) function_id: Option<Cow<'a, str>>,
    pub(crate) invocation_id: Option<Uuid>,
    #[serde(borrow)]
    pub(crate) data: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) metadata: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) traceparent: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) baggage: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) action: Option<Action<'a>>,
    #[serde(borrow)]
    pub(crate) result: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) error: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) trigger_type: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) config: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) description: Option<Cow<'a, str>>,
    #[serde(borrow)]
    pub(crate) request_format: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) response_format: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) trigger_request_format: Option<&'a RawValue>,
    #[serde(borrow)]
    pub(crate) call_request_format: Option<&'a RawValue>,
    pub(crate) previous_worker_id: Option<Uuid>,
    pub(crate) reattach_token: Option<Uuid>,
}

impl Frame<'_> {
    /// Which frame this is.
    pub(crate) fn frame_type(&self) -> FrameType {
        self.tag
            .as_deref()
            .map_or(FrameType::Other, FrameType::from_tag)
    }
}

/// `action` on `invokefunction`.
#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub(crate) enum Action<'a> {
    Void,
    Enqueue {
        #[serde(borrow)]
        queue: Option<Cow<'a, str>>,
    },
    #[serde(other)]
    Unknown,
}

/// Parses one frame (text or binary JSON); the caller logs and drops what does not parse.
pub(crate) fn parse_frame(text: &str) -> Result<Frame<'_>, serde_json::Error> {
    serde_json::from_str(text)
}

/// iii's error body: `{code, message, stacktrace?}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// Machine-readable code (`function_not_found`, `invocation_stopped`, …).
    pub code: String,
    /// Human-readable message.
    pub message: String,
    /// Optional stack trace from the SDK that failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stacktrace: Option<String>,
}

impl ErrorBody {
    /// An error body without a stack trace.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            code: code.into(),
            message: message.into(),
            stacktrace: None,
        }
    }
}

/// Appends `s` to `out` as a JSON string literal.
pub(crate) fn push_json_str(out: &mut String, s: &str) {
    out.push('"');
    let mut start = 0;
    for (i, c) in s.char_indices() {
        let escape = match c {
            '"' => Some("\\\""),
            '\\' => Some("\\\\"),
            '\n' => Some("\\n"),
            '\r' => Some("\\r"),
            '\t' => Some("\\t"),
            c if (c as u32) < 0x20 => None,
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        match escape {
            Some(e) => out.push_str(e),
            None => {
                use std::fmt::Write as _;
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
        }
        start = i + c.len_utf8();
    }
    out.push_str(s.get(start..).unwrap_or_default());
    out.push('"');
}

fn push_uuid(out: &mut String, id: &Uuid) {
    let mut buf = Uuid::encode_buffer();
    out.push('"');
    out.push_str(id.hyphenated().encode_lower(&mut buf));
    out.push('"');
}

/// The optional trace fields carried by invocations and results.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Trace<'a> {
    pub(crate) traceparent: Option<&'a str>,
    pub(crate) baggage: Option<&'a str>,
}

impl Trace<'_> {
    fn push(&self, out: &mut String) {
        if let Some(tp) = self.traceparent {
            out.push_str(",\"traceparent\":");
            push_json_str(out, tp);
        }
        if let Some(b) = self.baggage {
            out.push_str(",\"baggage\":");
            push_json_str(out, b);
        }
    }
}

/// `invokefunction` engine → worker. `caller` adds `_caller_worker_id` to object `data`
/// (spec §2.3) so handlers see who called, as with the reference engine.
pub(crate) fn invoke_frame(
    invocation_id: &Uuid,
    function_id: &str,
    data: &str,
    metadata: Option<&str>,
    trace: Trace<'_>,
    caller: Option<&Uuid>,
) -> String {
    let mut out = String::with_capacity(data.len() + function_id.len() + 160);
    out.push_str("{\"type\":\"invokefunction\",\"invocation_id\":");
    push_uuid(&mut out, invocation_id);
    out.push_str(",\"function_id\":");
    push_json_str(&mut out, function_id);
    out.push_str(",\"data\":");
    push_data(&mut out, data, caller);
    if let Some(m) = metadata {
        out.push_str(",\"metadata\":");
        out.push_str(m);
    }
    trace.push(&mut out);
    out.push('}');
    out
}

/// Writes `data`, adding `_caller_worker_id` last (so it wins over a forged key) when `data`
/// is a JSON object. `data` is already-validated JSON text.
fn push_data(out: &mut String, data: &str, caller: Option<&Uuid>) {
    let data = data.trim();
    let body = match (caller, data.strip_suffix('}')) {
        (Some(_), Some(body)) if data.starts_with('{') => body,
        _ => {
            out.push_str(data);
            return;
        }
    };
    out.push_str(body);
    let empty = body.get(1..).is_some_and(|inner| inner.trim().is_empty());
    out.push_str(if empty {
        "\"_caller_worker_id\":"
    } else {
        ",\"_caller_worker_id\":"
    });
    if let Some(caller) = caller {
        push_uuid(out, caller);
    }
    out.push('}');
}

/// `invocationresult` with a successful `result` (raw JSON text).
pub(crate) fn result_frame(
    invocation_id: &Uuid,
    function_id: &str,
    result: &str,
    trace: Trace<'_>,
) -> String {
    let mut out = String::with_capacity(result.len() + function_id.len() + 96);
    out.push_str("{\"type\":\"invocationresult\",\"invocation_id\":");
    push_uuid(&mut out, invocation_id);
    out.push_str(",\"function_id\":");
    push_json_str(&mut out, function_id);
    out.push_str(",\"result\":");
    out.push_str(result);
    trace.push(&mut out);
    out.push('}');
    out
}

/// `invocationresult` carrying an error body.
pub(crate) fn error_frame(invocation_id: &Uuid, function_id: &str, error: &ErrorBody) -> String {
    traced_error_frame(invocation_id, function_id, error, Trace::default())
}

/// `invocationresult` carrying an error body and the caller's trace context (RBAC denials
/// echo it, spec rbac §4.5).
pub(crate) fn traced_error_frame(
    invocation_id: &Uuid,
    function_id: &str,
    error: &ErrorBody,
    trace: Trace<'_>,
) -> String {
    let mut out = String::with_capacity(function_id.len() + error.message.len() + 128);
    out.push_str("{\"type\":\"invocationresult\",\"invocation_id\":");
    push_uuid(&mut out, invocation_id);
    out.push_str(",\"function_id\":");
    push_json_str(&mut out, function_id);
    out.push_str(",\"error\":");
    push_error(&mut out, error);
    trace.push(&mut out);
    out.push('}');
    out
}

/// The one frame outside the message enum: `{"type":"error","error":{code,message}}`, sent
/// when an RBAC listener's auth fails, before the Close.
pub(crate) fn connection_error_frame(error: &ErrorBody) -> String {
    let mut out = String::with_capacity(error.message.len() + 64);
    out.push_str("{\"type\":\"error\",\"error\":");
    push_error(&mut out, error);
    out.push('}');
    out
}

fn push_error(out: &mut String, error: &ErrorBody) {
    out.push_str("{\"code\":");
    push_json_str(out, &error.code);
    out.push_str(",\"message\":");
    push_json_str(out, &error.message);
    if let Some(st) = &error.stacktrace {
        out.push_str(",\"stacktrace\":");
        push_json_str(out, st);
    }
    out.push('}');
}

/// `workerregistered`, sent first on every worker connection (no `features`: spec §8).
pub(crate) fn worker_registered_frame(worker_id: &Uuid, reattach_token: &Uuid) -> String {
    let mut out = String::with_capacity(128);
    out.push_str("{\"type\":\"workerregistered\",\"worker_id\":");
    push_uuid(&mut out, worker_id);
    out.push_str(",\"reattach_token\":");
    push_uuid(&mut out, reattach_token);
    out.push('}');
    out
}

/// `registertrigger` engine → provider worker.
pub(crate) fn register_trigger_frame(
    id: &str,
    trigger_type: &str,
    function_id: &str,
    config: &str,
    metadata: Option<&str>,
) -> String {
    let mut out = String::with_capacity(config.len() + 160);
    out.push_str("{\"type\":\"registertrigger\",\"id\":");
    push_json_str(&mut out, id);
    out.push_str(",\"trigger_type\":");
    push_json_str(&mut out, trigger_type);
    out.push_str(",\"function_id\":");
    push_json_str(&mut out, function_id);
    out.push_str(",\"config\":");
    out.push_str(config);
    if let Some(m) = metadata {
        out.push_str(",\"metadata\":");
        out.push_str(m);
    }
    out.push('}');
    out
}

/// `unregistertrigger` engine → provider worker (always with `trigger_type`).
pub(crate) fn unregister_trigger_frame(id: &str, trigger_type: &str) -> String {
    let mut out = String::with_capacity(96);
    out.push_str("{\"type\":\"unregistertrigger\",\"id\":");
    push_json_str(&mut out, id);
    out.push_str(",\"trigger_type\":");
    push_json_str(&mut out, trigger_type);
    out.push('}');
    out
}

/// `triggerregistrationresult` engine → originating worker (failures only).
pub(crate) fn trigger_result_frame(
    id: &str,
    trigger_type: &str,
    function_id: &str,
    error: &ErrorBody,
) -> String {
    let mut out = String::with_capacity(160 + error.message.len());
    out.push_str("{\"type\":\"triggerregistrationresult\",\"id\":");
    push_json_str(&mut out, id);
    out.push_str(",\"trigger_type\":");
    push_json_str(&mut out, trigger_type);
    out.push_str(",\"function_id\":");
    push_json_str(&mut out, function_id);
    out.push_str(",\"error\":");
    push_error(&mut out, error);
    out.push('}');
    out
}

/// `{"type":"pong"}`.
pub(crate) const PONG_FRAME: &str = "{\"type\":\"pong\"}";

#[cfg(test)]
mod tests {
    use super::*;

    fn caller() -> Uuid {
        Uuid::from_u128(1)
    }

    #[test]
    fn frames_parse_with_unknown_fields_and_types() {
        let f = parse_frame(r#"{"type":"registertrigger","function_id":"a","config":{"x":1},"id":"t","message_type":"registertrigger","trigger_type":"http"}"#).unwrap();
        assert_eq!(f.frame_type(), FrameType::RegisterTrigger);
        assert_eq!(f.config.unwrap().get(), r#"{"x":1}"#);
        let f = parse_frame(r#"{"type":"unregistertriggertype","id":"x"}"#).unwrap();
        assert_eq!(f.frame_type(), FrameType::Other);
    }

    #[test]
    fn void_and_enqueue_actions_parse() {
        let f = parse_frame(
            r#"{"type":"invokefunction","function_id":"a","data":{},"action":{"type":"void"}}"#,
        )
        .unwrap();
        assert!(matches!(f.action, Some(Action::Void)));
        let f = parse_frame(r#"{"type":"invokefunction","function_id":"a","data":1,"action":{"type":"enqueue","queue":"q"}}"#).unwrap();
        assert!(matches!(f.action, Some(Action::Enqueue { queue: Some(q) }) if q == "q"));
    }

    #[test]
    fn caller_id_is_added_last_to_object_data_only() {
        let id = Uuid::nil();
        let out = invoke_frame(
            &id,
            "f",
            r#"{"a":1}"#,
            None,
            Trace::default(),
            Some(&caller()),
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["data"]["a"], 1);
        assert_eq!(v["data"]["_caller_worker_id"], caller().to_string());
        let out = invoke_frame(
            &id,
            "f",
            "{ }",
            Some(r#"{"m":1}"#),
            Trace::default(),
            Some(&caller()),
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["data"].as_object().unwrap().len(), 1);
        assert_eq!(v["metadata"]["m"], 1);
        let out = invoke_frame(&id, "f", "[1]", None, Trace::default(), Some(&caller()));
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["data"], serde_json::json!([1]));
    }

    #[test]
    fn forged_caller_id_is_overridden() {
        let out = invoke_frame(
            &Uuid::nil(),
            "f",
            r#"{"_caller_worker_id":"forged"}"#,
            None,
            Trace::default(),
            Some(&caller()),
        );
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["data"]["_caller_worker_id"], caller().to_string());
    }

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        push_json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(
            serde_json::from_str::<String>(&s).unwrap(),
            "a\"b\\c\nd\u{1}é"
        );
    }

    #[test]
    fn error_frames_round_trip() {
        let e = ErrorBody {
            code: "x".into(),
            message: "m\"".into(),
            stacktrace: Some("s".into()),
        };
        let out = error_frame(&Uuid::nil(), "f", &e);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        let back: ErrorBody = serde_json::from_value(v["error"].clone()).unwrap();
        assert_eq!(back, e);
        let trace = Trace {
            traceparent: Some("00-aa-bb-01"),
            baggage: None,
        };
        let out = result_frame(&Uuid::nil(), "f", "null", trace);
        let v: serde_json::Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["traceparent"], "00-aa-bb-01");
        assert!(v.get("baggage").is_none());
    }
}
