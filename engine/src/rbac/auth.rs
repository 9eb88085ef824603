//! Authentication on an RBAC listener (spec rbac §3, settled decisions 2 and 3): the
//! `AuthInput` read from the upgrade request, the auth function called in process through the
//! router within `auth_timeout_ms`, and the refusal sent when it fails (closed by default).

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use policies::{ListenerPolicy, Session};
use serde_json::{Map, Value};
use std::sync::Arc;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::Request;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::engine::Engine;
use crate::protocol;
use crate::router;
use crate::wire_error::WireError;

/// How long a refused client gets to answer the Close before the socket is dropped.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// The `AuthInput` of an upgrade request: lowercase header names (the last value wins,
/// values that are not UTF-8 are dropped), query parameters decoded as form-urlencoded with
/// repeated keys kept in order (empty keys skipped), and the TCP peer's address.
pub(crate) fn auth_input(req: &Request, peer: SocketAddr) -> Value {
    let mut headers = Map::new();
    for (name, value) in req.headers() {
        if let Ok(value) = std::str::from_utf8(value.as_bytes()) {
            headers.insert(name.as_str().to_owned(), Value::from(value));
        }
    }
    let mut query: Map<String, Value> = Map::new();
    let raw = req.uri().query().unwrap_or_default();
    for (key, value) in form_urlencoded::parse(raw.as_bytes()) {
        if key.is_empty() {
            continue;
        }
        let values = query
            .entry(key.into_owned())
            .or_insert_with(|| Value::Array(Vec::new()));
        if let Value::Array(values) = values {
            values.push(Value::from(value.into_owned()));
        }
    }
    let mut input = Map::new();
    input.insert("headers".into(), Value::Object(headers));
    input.insert("query_params".into(), Value::Object(query));
    input.insert("ip_address".into(), Value::from(peer.ip().to_string()));
    Value::Object(input)
}

/// The session for a new connection: permissive without an auth function, else what the
/// auth function returned. `Err` carries the `AUTH_ERROR` message: the function failed,
/// timed out, is not registered, returned null or a wrong shape.
pub(crate) async fn authenticate(
    engine: &Arc<Engine>,
    policy: &ListenerPolicy,
    input: &Value,
) -> Result<Session, String> {
    let Some(auth_function) = policy.auth_function_id() else {
        return Ok(policy.permissive_session());
    };
    let timeout = Duration::from_millis(policy.config().auth_timeout_ms);
    let data = input.to_string();
    let result = router::invoke(engine, auth_function, &data, None, timeout)
        .await
        .map_err(|error| error.message)?;
    let value: Value = serde_json::from_str(result.get()).map_err(|e| e.to_string())?;
    policy
        .session_from_auth(value)
        .map_err(|error| error.to_string())
}

/// Refuses a connection whose auth failed: one `AUTH_ERROR` frame, then Close 1008, and no
/// `workerregistered` (settled decision 3).
pub(crate) async fn refuse<S>(mut ws: WebSocketStream<S>, reason: &str)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let frame = protocol::connection_error_frame(&WireError::AuthFailed(reason).body());
    if ws.send(Message::text(frame)).await.is_err() {
        return;
    }
    let close = CloseFrame {
        code: CloseCode::Policy,
        reason: "authentication failed".into(),
    };
    if ws.close(Some(close)).await.is_err() {
        return;
    }
    // Let the client answer the Close, so it sees a clean close rather than a reset.
    let _ = tokio::time::timeout(CLOSE_WAIT, async {
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn input(uri: &str, headers: &[(&str, &[u8])]) -> Value {
        let mut req = Request::builder().uri(uri);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        auth_input(&req.body(()).unwrap(), "203.0.113.7:5000".parse().unwrap())
    }

    #[test]
    fn query_params_are_decoded_and_repeated_keys_kept_in_order() {
        let v = input("/?token=a%20b+c&a=1&a=2&c=&d&=skip", &[]);
        assert_eq!(
            v["query_params"],
            serde_json::json!({"token": ["a b c"], "a": ["1", "2"], "c": [""], "d": [""]})
        );
        assert_eq!(v["ip_address"], "203.0.113.7");
    }

    #[test]
    fn headers_are_lowercase_last_wins_and_non_utf8_values_dropped() {
        let v = input(
            "/",
            &[
                ("Authorization", b"Bearer x"),
                ("X-Dup", b"1"),
                ("x-dup", b"2"),
                ("X-Bin", b"\xff\xfe"),
                ("X-Utf8", "é".as_bytes()),
            ],
        );
        assert_eq!(v["headers"]["authorization"], "Bearer x");
        assert_eq!(v["headers"]["x-dup"], "2");
        assert!(v["headers"].get("x-bin").is_none());
        assert_eq!(v["headers"]["x-utf8"], "é");
    }
}
