//! The gate driven through a real worker connection over an in-memory socket: deny frames,
//! the size limit, registration refusals, the prefix, and no takeover of other workers' ids.

use std::sync::Arc;

use futures_util::{SinkExt, StreamExt};
use policies::{ListenerConfig, ListenerPolicy};
use serde_json::{Value, json};
use tokio::io::DuplexStream;
use tokio::sync::mpsc;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::Gate;
use crate::engine::Engine;
use crate::registry::{FunctionEntry, Owner};
use crate::task;
use crate::worker_conn;
use crate::worker_handle::{OUTBOUND_QUEUE, WorkerHandle};

type Client = WebSocketStream<DuplexStream>;

/// A session behind a gate for `yaml` (a listener block), with `auth` as its auth result
/// (permissive when `None`); returns the client end, `workerregistered` already read.
async fn session(engine: &Arc<Engine>, yaml: &str, auth: Option<Value>) -> Client {
    let config = policies::from_yaml::<ListenerConfig>(yaml).unwrap();
    let policy = Arc::new(ListenerPolicy::new(config).unwrap());
    let session = match auth {
        Some(result) => policy.session_from_auth(result).unwrap(),
        None => policy.permissive_session(),
    };
    let (server_io, client_io) = tokio::io::duplex(1 << 20);
    let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
    let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
    let peer = "127.0.0.1:9".parse().unwrap();
    let gate = Gate::new(policy, session);
    drop(task::spawn(worker_conn::serve(
        engine.clone(),
        server,
        peer,
        Some(gate),
    )));
    let first = recv(&mut client).await;
    assert_eq!(first["type"], "workerregistered");
    client
}

async fn send(client: &mut Client, frame: Value) {
    client.send(Message::text(frame.to_string())).await.unwrap();
}

async fn recv(client: &mut Client) -> Value {
    loop {
        match client.next().await.unwrap().unwrap() {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Ping(_) | Message::Pong(_) => {}
            other => panic!("expected a text frame, got {other:?}"),
        }
    }
}

const API_ONLY: &str = "rbac: { expose_functions: ['match(\"api::*\")'] }";

#[tokio::test]
async fn a_denied_invoke_echoes_id_and_trace_and_the_session_goes_on() {
    let engine = Engine::new(false);
    let mut client = session(&engine, API_ONLY, None).await;
    let id = uuid::Uuid::new_v4().to_string();
    send(
        &mut client,
        json!({"type": "invokefunction", "invocation_id": id, "function_id": "secret::x",
               "data": {}, "traceparent": "00-a-b-01"}),
    )
    .await;
    assert_eq!(
        recv(&mut client).await,
        json!({"type": "invocationresult", "invocation_id": id, "function_id": "secret::x",
               "error": {"code": "FORBIDDEN",
                         "message": "function 'secret::x' not allowed (add to rbac.expose_functions)"},
               "traceparent": "00-a-b-01"})
    );
    // The carve-out still answers.
    send(
        &mut client,
        json!({"type": "invokefunction", "invocation_id": id, "function_id": "engine::channels::create", "data": {}}),
    )
    .await;
    assert!(recv(&mut client).await["result"]["reader"].is_object());
}

#[tokio::test]
async fn an_oversized_invoke_is_answered_and_anything_else_that_large_closes_1009() {
    let engine = Engine::new(false);
    let mut client = session(
        &engine,
        &format!("{API_ONLY}\nlimits: {{ max_message_bytes: 1024 }}"),
        None,
    )
    .await;
    let blob = "x".repeat(2048);
    send(
        &mut client,
        json!({"type": "invokefunction", "function_id": "api::x", "data": blob, "action": {"type": "void"}}),
    )
    .await;
    let answer = recv(&mut client).await;
    assert_eq!(answer["error"]["code"], "payload_too_large", "{answer}");
    assert_eq!(answer["function_id"], "api::x");
    send(&mut client, json!({"type": "registerfunction", "id": blob})).await;
    match client.next().await.unwrap().unwrap() {
        Message::Close(Some(close)) => assert_eq!(close.code, CloseCode::Size),
        other => panic!("expected Close 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn refused_registrations_are_dropped_or_answered_registration_denied() {
    let engine = Engine::new(false);
    let auth = json!({"allow_function_registration": false, "allowed_trigger_types": ["cron"]});
    let mut client = session(&engine, API_ONLY, Some(auth)).await;
    send(&mut client, json!({"type": "registerfunction", "id": "f"})).await;
    send(
        &mut client,
        json!({"type": "registertriggertype", "id": "webhook", "description": "d"}),
    )
    .await;
    assert_eq!(
        recv(&mut client).await,
        json!({"type": "triggerregistrationresult", "id": "webhook", "trigger_type": "",
               "function_id": "", "error": {"code": "REGISTRATION_DENIED",
               "message": "trigger type registration not allowed"}})
    );
    send(
        &mut client,
        json!({"type": "registertrigger", "id": "t1", "trigger_type": "http", "function_id": "api::x", "config": {}}),
    )
    .await;
    let refused = recv(&mut client).await;
    assert_eq!(refused["error"]["message"], "trigger type not allowed");
    assert!(!engine.functions.contains_key("f"));
    assert!(!engine.trigger_types.contains_key("webhook"));
}

#[tokio::test]
async fn registrations_are_prefixed_and_a_bare_self_invoke_reaches_the_own_function() {
    let engine = Engine::new(false);
    let auth = json!({"function_registration_prefix": "t1"});
    let mut client = session(&engine, API_ONLY, Some(auth)).await;
    send(&mut client, json!({"type": "registerfunction", "id": "f"})).await;
    let id = uuid::Uuid::new_v4().to_string();
    send(
        &mut client,
        json!({"type": "invokefunction", "invocation_id": id, "function_id": "f", "data": {}}),
    )
    .await;
    let invoke = recv(&mut client).await;
    assert_eq!(invoke["type"], "invokefunction");
    assert_eq!(invoke["function_id"], "f", "prefix stripped outbound");
    assert!(engine.functions.contains_key("t1::f"));
    send(
        &mut client,
        json!({"type": "invocationresult", "invocation_id": id, "function_id": "f", "result": 7}),
    )
    .await;
    assert_eq!(recv(&mut client).await["result"], 7);
    send(
        &mut client,
        json!({"type": "unregisterfunction", "id": "f"}),
    )
    .await;
    send(
        &mut client,
        json!({"type": "invokefunction", "invocation_id": id, "function_id": "f", "data": {}}),
    )
    .await;
    assert_eq!(recv(&mut client).await["error"]["code"], "FORBIDDEN");
    assert!(!engine.functions.contains_key("t1::f"));
}

#[tokio::test]
async fn a_session_never_takes_over_another_live_workers_function() {
    let engine = Engine::new(false);
    let (tx, _rx) = mpsc::channel(OUTBOUND_QUEUE);
    let other = Arc::new(WorkerHandle::new("127.0.0.1".into(), 0, tx));
    let entry = FunctionEntry {
        owner: Owner::Worker(other.clone()),
        description: None,
        request_format: None,
        response_format: None,
        metadata: None,
    };
    engine.functions.insert("billing::charge".into(), entry);
    let mut client = session(&engine, "rbac: { expose_functions: [] }", None).await;
    send(
        &mut client,
        json!({"type": "registerfunction", "id": "billing::charge"}),
    )
    .await;
    // Still not callable as the session's own, and still the other worker's.
    let id = uuid::Uuid::new_v4().to_string();
    send(
        &mut client,
        json!({"type": "invokefunction", "invocation_id": id, "function_id": "billing::charge", "data": {}}),
    )
    .await;
    assert_eq!(recv(&mut client).await["error"]["code"], "FORBIDDEN");
    let owner = engine.functions.get("billing::charge").unwrap().owner_id();
    assert_eq!(owner, Some(other.id));
}
