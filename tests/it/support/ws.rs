//! A raw tokio-tungstenite worker, for what the SDKs cannot show.

use std::collections::VecDeque;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{Engine, STEP, is_uuid};

/// A client WebSocket to the engine.
pub(crate) type Socket = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// What arrived on a socket, pings and pongs aside.
#[derive(Debug)]
pub(crate) enum Incoming {
    Json(Value),
    Text(String),
    Binary(Vec<u8>),
    Close(Option<CloseFrame>),
    /// The stream ended or failed without a Close frame.
    Gone(String),
}

/// Opens a WebSocket to `url`, bounded by [`STEP`].
pub(crate) async fn connect(url: &str) -> Socket {
    match super::within(
        STEP,
        "websocket connect",
        Box::pin(tokio_tungstenite::connect_async(url)),
    )
    .await
    {
        Ok((ws, _)) => ws,
        Err(e) => panic!("connecting to {url}: {e}"),
    }
}

/// Opens a WebSocket to `url` with an optional bearer token, bounded by [`STEP`].
pub(crate) async fn connect_with_token(url: &str, token: Option<&str>) -> Socket {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = url.into_client_request().expect("a ws:// URL");
    if let Some(token) = token {
        let value = format!("Bearer {token}").parse().expect("header value");
        request.headers_mut().insert("authorization", value);
    }
    match super::within(
        STEP,
        "websocket connect",
        Box::pin(tokio_tungstenite::connect_async(request)),
    )
    .await
    {
        Ok((ws, _)) => ws,
        Err(e) => panic!("connecting to {url}: {e}"),
    }
}

/// Reads the next non-ping message within `limit`; `None` when nothing came in time.
pub(crate) async fn next_within(ws: &mut Socket, limit: Duration) -> Option<Incoming> {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let msg = match tokio::time::timeout_at(deadline, ws.next()).await {
            Err(_) => return None,
            Ok(None) => return Some(Incoming::Gone("end of stream".into())),
            Ok(Some(Err(e))) => return Some(Incoming::Gone(e.to_string())),
            Ok(Some(Ok(m))) => m,
        };
        return Some(match msg {
            Message::Text(t) => match serde_json::from_str::<Value>(t.as_str()) {
                Ok(v) => Incoming::Json(v),
                Err(_) => Incoming::Text(t.as_str().to_owned()),
            },
            Message::Binary(b) => Incoming::Binary(b.to_vec()),
            Message::Close(c) => Incoming::Close(c),
            Message::Ping(_) | Message::Pong(_) | Message::Frame(_) => continue,
        });
    }
}

/// A worker speaking the protocol by hand.
#[derive(Debug)]
pub(crate) struct RawWorker {
    pub(crate) ws: Socket,
    /// From `workerregistered`.
    pub(crate) worker_id: String,
    /// The whole `workerregistered` frame.
    pub(crate) registered: Value,
    backlog: VecDeque<Value>,
}

impl RawWorker {
    /// Connects to the engine's worker listener and reads `workerregistered`.
    pub(crate) async fn connect(engine: &Engine) -> Self {
        Self::connect_url(&format!("{}/", engine.ws_url())).await
    }

    /// Connects to a worker listener at `url` (the engine, or a gateway listener) and reads
    /// `workerregistered`.
    pub(crate) async fn connect_url(url: &str) -> Self {
        Self::connect_url_with_token(url, None).await
    }

    /// As [`Self::connect_url`], sending `Authorization: Bearer <token>` when given.
    pub(crate) async fn connect_url_with_token(url: &str, token: Option<&str>) -> Self {
        let mut ws = connect_with_token(url, token).await;
        let first = next_within(&mut ws, STEP).await;
        let registered = match first {
            Some(Incoming::Json(v)) => v,
            other => panic!("expected workerregistered as the first frame, got {other:?}"),
        };
        assert_eq!(
            registered["type"], "workerregistered",
            "first frame must be workerregistered: {registered}"
        );
        let worker_id = registered["worker_id"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(is_uuid(&worker_id), "worker_id is not a UUID: {registered}");
        Self {
            ws,
            worker_id,
            registered,
            backlog: VecDeque::new(),
        }
    }

    /// Connects and sends the `engine::workers::register` metadata call as the SDKs do.
    pub(crate) async fn connect_named(engine: &Engine, name: &str) -> Self {
        let mut w = Self::connect(engine).await;
        w.send(json!({
            "type": "invokefunction",
            "function_id": "engine::workers::register",
            "data": {"runtime": "rust", "version": "0.0.0-test", "name": name,
                     "os": "Linux test", "pid": std::process::id(), "isolation": null,
                     "telemetry": {"language": "rust", "project_name": "iii-tests", "framework": "raw"}},
            "action": {"type": "void"}
        }))
        .await;
        w
    }

    /// Sends one JSON frame.
    pub(crate) async fn send(&mut self, v: Value) {
        self.send_text(&v.to_string()).await;
    }

    /// Sends one text frame as is.
    pub(crate) async fn send_text(&mut self, text: &str) {
        super::within(STEP, "send a frame", self.ws.send(Message::text(text)))
            .await
            .unwrap_or_else(|e| panic!("sending a frame: {e}"));
    }

    /// Next JSON frame within `limit`, from the backlog first; panics on anything else.
    pub(crate) async fn recv_within(&mut self, limit: Duration) -> Value {
        if let Some(v) = self.backlog.pop_front() {
            return v;
        }
        match next_within(&mut self.ws, limit).await {
            Some(Incoming::Json(v)) => v,
            None => panic!("no frame within {limit:?}"),
            Some(other) => panic!("expected a JSON frame, got {other:?}"),
        }
    }

    /// Next JSON frame for which `pred` holds; other frames are kept for later.
    pub(crate) async fn recv_matching(
        &mut self,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        if let Some(pos) = self.backlog.iter().position(&pred) {
            return self.backlog.remove(pos).expect("position is valid");
        }
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let v = match next_within(&mut self.ws, left).await {
                Some(Incoming::Json(v)) => v,
                None => panic!("no {what} within {STEP:?}; kept frames: {:?}", self.backlog),
                Some(other) => panic!("waiting for {what}, got {other:?}"),
            };
            if pred(&v) {
                return v;
            }
            self.backlog.push_back(v);
        }
    }

    /// Registers a function id.
    pub(crate) async fn register_function(&mut self, id: &str) {
        self.send(json!({"type": "registerfunction", "id": id}))
            .await;
    }

    /// Sends an `invokefunction` with a fresh id; returns the id.
    pub(crate) async fn invoke(&mut self, function_id: &str, data: Value) -> String {
        let invocation_id = uuid::Uuid::new_v4().to_string();
        self.send(json!({
            "type": "invokefunction",
            "invocation_id": invocation_id,
            "function_id": function_id,
            "data": data,
        }))
        .await;
        invocation_id
    }

    /// Waits for the `invocationresult` of `invocation_id`.
    pub(crate) async fn result_of(&mut self, invocation_id: &str) -> Value {
        let id = invocation_id.to_owned();
        self.recv_matching("invocationresult", move |v| {
            v["type"] == "invocationresult" && v["invocation_id"] == json!(id)
        })
        .await
    }

    /// Calls `function_id` (owned by another connection, or a built-in) and returns the
    /// `invocationresult` frame.
    pub(crate) async fn call(&mut self, function_id: &str, data: Value) -> Value {
        let id = self.invoke(function_id, data).await;
        self.result_of(&id).await
    }

    /// Calls a built-in and returns its `result`, panicking on an error.
    pub(crate) async fn call_ok(&mut self, function_id: &str, data: Value) -> Value {
        let frame = self.call(function_id, data.clone()).await;
        assert!(
            frame.get("error").is_none_or(Value::is_null),
            "{function_id} {data} failed: {frame}"
        );
        frame["result"].clone()
    }

    /// The `engine::workers::list` row of the worker with id `worker_id`, panicking when it is
    /// not listed.
    pub(crate) async fn worker_row(&mut self, worker_id: &str) -> Value {
        let list = self.call_ok("engine::workers::list", json!({})).await;
        list["workers"]
            .as_array()
            .and_then(|rows| rows.iter().find(|r| r["id"] == worker_id))
            .unwrap_or_else(|| panic!("worker {worker_id} listed: {list}"))
            .clone()
    }

    /// Waits for an `invokefunction` addressed to this worker.
    pub(crate) async fn next_invoke(&mut self) -> Value {
        self.recv_matching("invokefunction", |v| v["type"] == "invokefunction")
            .await
    }

    /// Answers an invocation with `result`.
    pub(crate) async fn answer(&mut self, invoke: &Value, result: Value) {
        self.send(json!({
            "type": "invocationresult",
            "invocation_id": invoke["invocation_id"],
            "function_id": invoke["function_id"],
            "result": result,
        }))
        .await;
    }

    /// Round trip through the engine to itself: once it returns, every frame sent
    /// before has been applied.
    pub(crate) async fn sync(&mut self) {
        let fid = format!("__sync::{}", uuid::Uuid::new_v4());
        self.register_function(&fid).await;
        let id = self.invoke(&fid, json!({})).await;
        let want = fid.clone();
        let invoke = self
            .recv_matching("the sync invoke", move |v| {
                v["type"] == "invokefunction" && v["function_id"] == json!(want)
            })
            .await;
        self.answer(&invoke, json!("synced")).await;
        let res = self.result_of(&id).await;
        assert_eq!(res["result"], "synced", "sync result: {res}");
        self.send(json!({"type": "unregisterfunction", "id": fid}))
            .await;
    }
}
