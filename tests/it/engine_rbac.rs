//! RBAC listeners in the engine's own config.yaml (settled decision 15): a raw control-plane
//! worker on the trusted port serves the auth function, the middleware and the hooks; raw
//! clients and the Node SDK connect to the RBAC port (`tests/fixtures/engine-rbac.yaml`).

use std::collections::HashMap;
use std::time::Duration;

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio::task::JoinSet;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::ws::{self, Incoming};
use crate::support::{Driver, Engine, RawWorker, STEP, is_uuid};

/// The functions the control plane serves.
const CONTROL_FUNCTIONS: [&str; 7] = [
    "app::auth",
    "app::mw",
    "app::on-fn-reg",
    "app::on-trig-reg",
    "api::echo",
    "api::admin",
    "secret::run",
];

/// The engine with the RBAC fixture, and the RBAC listener's address.
async fn engine() -> (Engine, String) {
    let engine = Engine::start_with_fixture("engine-rbac.yaml").await;
    let addr = engine
        .addrs
        .get("worker:1")
        .cloned()
        .unwrap_or_else(|| panic!("no RBAC listener in the ready file: {:?}", engine.addrs));
    (engine, addr)
}

/// The trusted worker behind the RBAC listener: auth, middleware, hooks and a few functions.
/// Its task ends when this is dropped (its socket closes).
struct ControlPlane {
    _task: JoinSet<()>,
}

impl ControlPlane {
    async fn start(engine: &Engine) -> Self {
        let mut w = RawWorker::connect_named(engine, "control-plane").await;
        for id in CONTROL_FUNCTIONS {
            w.register_function(id).await;
        }
        w.send(
            json!({"type": "registerfunction", "id": "pub::listed", "metadata": {"public": true}}),
        )
        .await;
        w.sync().await;
        let mut task = JoinSet::new();
        task.spawn(serve_control_plane(w));
        Self { _task: task }
    }
}

fn token(auth_input: &Value) -> Option<&str> {
    auth_input["query_params"]["token"][0].as_str().or_else(|| {
        auth_input["headers"]["authorization"]
            .as_str()?
            .strip_prefix("Bearer ")
    })
}

async fn answer_error(w: &mut RawWorker, invoke: &Value, code: &str, message: &str) {
    w.send(json!({"type": "invocationresult", "invocation_id": invoke["invocation_id"],
                  "function_id": invoke["function_id"], "error": {"code": code, "message": message}}))
        .await;
}

async fn serve_control_plane(mut w: RawWorker) {
    // Calls the middleware made on behalf of a caller: call id → the middleware's invoke.
    let mut waiting: HashMap<String, Value> = HashMap::new();
    loop {
        let frame = match ws::next_within(&mut w.ws, Duration::from_secs(3600)).await {
            Some(Incoming::Json(frame)) => frame,
            None => continue,
            Some(_) => return,
        };
        if frame["type"] == "invocationresult" {
            let Some(invoke) = frame["invocation_id"]
                .as_str()
                .and_then(|id| waiting.remove(id))
            else {
                continue;
            };
            if let Some(error) = frame.get("error").filter(|e| !e.is_null()) {
                let code = error["code"].as_str().unwrap_or_default();
                let message = error["message"].as_str().unwrap_or_default();
                answer_error(&mut w, &invoke, code, message).await;
                continue;
            }
            let target = invoke["data"]["function_id"].as_str().unwrap_or_default();
            // Wrapped for `api::*` so tests can see the middleware ran; passed through
            // otherwise (the SDK's own sync calls expect their exact result).
            let result = if target.starts_with("api::") {
                json!({"via": "middleware", "function_id": target,
                       "user": invoke["data"]["context"]["user"], "result": frame["result"]})
            } else {
                frame["result"].clone()
            };
            w.answer(&invoke, result).await;
            continue;
        }
        if frame["type"] != "invokefunction" {
            continue;
        }
        let data = &frame["data"];
        match frame["function_id"].as_str().unwrap_or_default() {
            "app::auth" => match token(data) {
                Some("alice") => {
                    let session = json!({"context": {"user": "alice"},
                        "forbidden_functions": ["api::admin"], "function_registration_prefix": "alice"});
                    w.answer(&frame, session).await;
                }
                Some("bob") => w.answer(&frame, json!({"context": {"user": "bob"}})).await,
                Some("nobody") => w.answer(&frame, Value::Null).await,
                _ => answer_error(&mut w, &frame, "UNAUTHORIZED", "bad token").await,
            },
            "app::mw" => {
                let id = uuid::Uuid::new_v4().to_string();
                w.send(json!({"type": "invokefunction", "invocation_id": id,
                              "function_id": data["function_id"], "data": data["payload"]}))
                    .await;
                waiting.insert(id, frame.clone());
            }
            "app::on-fn-reg" => {
                let id = data["function_id"].as_str().unwrap_or_default();
                let verdict = if id == "denied" {
                    Value::Null
                } else if id.starts_with("pub") {
                    json!({"metadata": {"public": true, "hooked": true, "user": data["context"]["user"]}})
                } else {
                    json!({})
                };
                w.answer(&frame, verdict).await;
            }
            "app::on-trig-reg" => w.answer(&frame, json!({})).await,
            "api::echo" => w.answer(&frame, json!({"echo": data})).await,
            "api::admin" => w.answer(&frame, json!("admin")).await,
            "secret::run" => w.answer(&frame, json!("secret")).await,
            _ => {}
        }
    }
}

/// A raw client on the RBAC listener, authenticated with `token`.
async fn session(addr: &str, token: &str) -> RawWorker {
    RawWorker::connect_url(&format!("ws://{addr}/?token={token}")).await
}

/// Connects with `query` and expects the `AUTH_ERROR` frame, then Close 1008; returns the
/// error message.
async fn refused(addr: &str, query: &str) -> String {
    let mut socket = ws::connect(&format!("ws://{addr}/{query}")).await;
    let frame = match ws::next_within(&mut socket, STEP).await {
        Some(Incoming::Json(frame)) => frame,
        other => panic!("expected the AUTH_ERROR frame, got {other:?}"),
    };
    assert_eq!(frame["type"], "error", "{frame}");
    assert_eq!(frame["error"]["code"], "AUTH_ERROR", "{frame}");
    assert_eq!(frame.as_object().map(|o| o.len()), Some(2), "{frame}");
    match ws::next_within(&mut socket, STEP).await {
        Some(Incoming::Close(Some(close))) => assert_eq!(close.code, CloseCode::Policy),
        other => panic!("expected Close 1008 after AUTH_ERROR, got {other:?}"),
    }
    frame["error"]["message"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test]
async fn missing_or_invalid_credentials_get_auth_error_then_close_1008() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    assert_eq!(refused(&addr, "").await, "bad token");
    assert_eq!(refused(&addr, "?token=mallory").await, "bad token");
    assert_eq!(
        refused(&addr, "?token=nobody").await,
        "auth function returned no result"
    );
    let mut alice = session(&addr, "alice").await;
    assert_eq!(alice.registered["type"], "workerregistered");
    alice.sync().await;
}

#[tokio::test]
async fn auth_fails_closed_when_the_auth_worker_is_gone() {
    let (engine, addr) = engine().await;
    let control = ControlPlane::start(&engine).await;
    let _alice = session(&addr, "alice").await;
    drop(control);
    let message = crate::support::eventually(STEP, "app::auth unregistered", || async {
        let mut socket = ws::connect(&format!("ws://{addr}/?token=alice")).await;
        match ws::next_within(&mut socket, STEP).await {
            Some(Incoming::Json(f)) if f["type"] == "error" => {
                // While the worker is leaving, a call already routed to it is stopped: that
                // fails closed too. Wait for the steady state, where the id is gone.
                assert_eq!(f["error"]["code"], "AUTH_ERROR", "{f}");
                f["error"]["message"]
                    .as_str()
                    .is_some_and(|m| m.contains("app::auth"))
                    .then_some(f)
            }
            _ => None,
        }
    })
    .await;
    assert_eq!(message["error"]["code"], "AUTH_ERROR");
    assert!(
        message["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("app::auth")),
        "{message}"
    );
    // The trusted listener is unaffected.
    let mut trusted = RawWorker::connect(&engine).await;
    trusted.sync().await;
}

#[tokio::test]
async fn an_exposed_call_runs_through_the_middleware_with_the_session_context() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let mut bob = session(&addr, "bob").await;
    let reply = bob.call("api::echo", json!({"n": 1})).await;
    let result = &reply["result"];
    assert_eq!(result["via"], "middleware", "{reply}");
    assert_eq!(result["user"], "bob", "{reply}");
    assert_eq!(result["function_id"], "api::echo", "{reply}");
    assert_eq!(result["result"]["echo"]["n"], 1, "{reply}");
    // The carve-out bypasses the middleware.
    let created = bob.call_ok("engine::channels::create", json!({})).await;
    assert!(created["reader"]["channel_id"].is_string(), "{created}");
}

#[tokio::test]
async fn forbidden_and_unexposed_calls_get_the_exact_deny_frames() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let mut alice = session(&addr, "alice").await;
    let id = uuid::Uuid::new_v4().to_string();
    let traceparent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";
    alice
        .send(
            json!({"type": "invokefunction", "invocation_id": id, "function_id": "secret::run",
                     "data": {}, "traceparent": traceparent, "baggage": "k=v"}),
        )
        .await;
    let denied = alice.result_of(&id).await;
    assert_eq!(
        denied,
        json!({"type": "invocationresult", "invocation_id": id, "function_id": "secret::run",
               "error": {"code": "FORBIDDEN",
                         "message": "function 'secret::run' not allowed (add to rbac.expose_functions)"},
               "traceparent": traceparent, "baggage": "k=v"})
    );
    // api::admin is exposed, but this session's auth result forbids it.
    let denied = alice.call("api::admin", json!({})).await;
    assert_eq!(
        denied["error"]["message"],
        "function 'api::admin' not allowed (remove from rbac.forbidden_functions)"
    );
    // Bob has no such list: the same id is allowed for him.
    let mut bob = session(&addr, "bob").await;
    assert_eq!(
        bob.call("api::admin", json!({})).await["result"]["result"],
        "admin"
    );
    // A void call is answered too, under a made-up id.
    alice
        .send(
            json!({"type": "invokefunction", "function_id": "secret::run", "data": {},
                     "action": {"type": "void"}}),
        )
        .await;
    let denied = alice
        .recv_matching("the void deny", |v| v["type"] == "invocationresult")
        .await;
    assert!(
        is_uuid(denied["invocation_id"].as_str().unwrap_or_default()),
        "{denied}"
    );
    assert_eq!(denied["error"]["code"], "FORBIDDEN");
}

#[tokio::test]
async fn discovery_lists_only_what_the_session_may_call() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let mut alice = session(&addr, "alice").await;
    let list = alice.call_ok("engine::functions::list", json!({})).await;
    let ids: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["function_id"].as_str())
        .collect();
    assert!(ids.contains(&"api::echo"), "{ids:?}");
    assert!(ids.contains(&"pub::listed"), "metadata filter: {ids:?}");
    for hidden in ["api::admin", "secret::run", "app::auth", "app::mw"] {
        assert!(!ids.contains(&hidden), "{hidden} leaked: {ids:?}");
    }
    // Discovery functions that are not exposed are denied like any function.
    let denied = alice.call("engine::workers::list", json!({})).await;
    assert_eq!(denied["error"]["code"], "FORBIDDEN", "{denied}");
}

#[tokio::test]
async fn a_prefixed_registration_is_visible_with_the_hooks_metadata() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let mut alice = session(&addr, "alice").await;
    alice.register_function("pubfn").await;
    alice.register_function("denied").await;
    alice.sync().await;
    let mut trusted = RawWorker::connect(&engine).await;
    let info = trusted
        .call_ok(
            "engine::functions::info",
            json!({"function_id": "alice::pubfn"}),
        )
        .await;
    assert_eq!(
        info["metadata"],
        json!({"public": true, "hooked": true, "user": "alice"}),
        "{info}"
    );
    let missing = trusted
        .call(
            "engine::functions::info",
            json!({"function_id": "alice::denied"}),
        )
        .await;
    assert_eq!(
        missing["error"]["code"], "NOT_FOUND",
        "the hook's denial drops it"
    );
    // Another session reaches it through the metadata filter; the owner sees its bare id.
    let mut bob = session(&addr, "bob").await;
    let call = bob.invoke("alice::pubfn", json!({"x": 1})).await;
    let invoke = alice.next_invoke().await;
    assert_eq!(
        invoke["function_id"], "pubfn",
        "prefix stripped outbound: {invoke}"
    );
    alice.answer(&invoke, json!("from alice")).await;
    assert_eq!(bob.result_of(&call).await["result"], "from alice");
}

#[tokio::test]
async fn a_session_invokes_its_own_function_by_its_bare_id() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let mut alice = session(&addr, "alice").await;
    alice.register_function("mine").await;
    alice.sync().await;
    // Not exposed, but alice's own: resolved to alice::mine, run through the middleware,
    // which calls it back on this very connection.
    let call = alice.invoke("mine", json!({})).await;
    let invoke = alice.next_invoke().await;
    assert_eq!(invoke["function_id"], "mine", "{invoke}");
    alice.answer(&invoke, json!("own")).await;
    assert_eq!(alice.result_of(&call).await["result"], "own");
    // Bob may not call it.
    let mut bob = session(&addr, "bob").await;
    let denied = bob.call("alice::mine", json!({})).await;
    assert_eq!(denied["error"]["code"], "FORBIDDEN", "{denied}");
}

#[tokio::test]
async fn a_trigger_to_a_hidden_function_is_refused() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let mut alice = session(&addr, "alice").await;
    let trigger_id = uuid::Uuid::new_v4().to_string();
    alice
        .send(
            json!({"type": "registertrigger", "id": trigger_id, "trigger_type": "cron",
                     "function_id": "secret::run", "config": {"expression": "* * * * * *"}}),
        )
        .await;
    let refused = alice
        .recv_matching("triggerregistrationresult", |v| {
            v["type"] == "triggerregistrationresult"
        })
        .await;
    assert_eq!(
        refused,
        json!({"type": "triggerregistrationresult", "id": trigger_id, "trigger_type": "cron",
               "function_id": "secret::run",
               "error": {"code": "REGISTRATION_DENIED",
                         "message": "function 'secret::run' not allowed (add to rbac.expose_functions)"}})
    );
    let mut trusted = RawWorker::connect(&engine).await;
    let bindings = trusted
        .call_ok("engine::registered-triggers::list", json!({}))
        .await;
    assert!(!bindings.to_string().contains(&trigger_id), "{bindings}");
}

#[tokio::test]
async fn channels_round_trip_on_the_rbac_port() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let mut alice = session(&addr, "alice").await;
    let refs = alice.call_ok("engine::channels::create", json!({})).await;
    let channel = |dir: &str| {
        let r = &refs["writer"];
        format!(
            "ws://{addr}/ws/channels/{}?key={}&dir={dir}",
            r["channel_id"].as_str().unwrap(),
            r["access_key"].as_str().unwrap()
        )
    };
    let mut writer = ws::connect(&channel("write")).await;
    let mut reader = ws::connect(&channel("read")).await;
    writer.send(Message::text("hello over rbac")).await.unwrap();
    writer.close(None).await.unwrap();
    match ws::next_within(&mut reader, STEP).await {
        Some(Incoming::Text(text)) => assert_eq!(text, "hello over rbac"),
        other => panic!("expected the channel text, got {other:?}"),
    }
}

#[tokio::test]
async fn an_oversized_invoke_is_refused_and_the_session_continues() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let mut bob = session(&addr, "bob").await;
    let big = "x".repeat(70_000);
    let reply = bob.call("api::echo", json!({"blob": big})).await;
    assert_eq!(
        reply["error"]["code"], "payload_too_large",
        "{}",
        reply["error"]
    );
    let reply = bob.call("api::echo", json!({"n": 2})).await;
    assert_eq!(reply["result"]["result"]["echo"]["n"], 2, "{reply}");
    // Anything else that large closes the session with 1009.
    bob.send(json!({"type": "registerfunction", "id": "big", "description": big}))
        .await;
    match ws::next_within(&mut bob.ws, STEP).await {
        Some(Incoming::Close(Some(close))) => assert_eq!(close.code, CloseCode::Size),
        other => panic!("expected Close 1009, got {other:?}"),
    }
}

#[tokio::test]
async fn a_node_sdk_worker_on_the_rbac_port_calls_through_the_gate() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let bearer = json!({"authorization": "Bearer bob"});
    let mut node = Driver::node_at(&format!("ws://{addr}"), "node-rbac", &bearer).await;
    let reply = node.trigger("api::echo", json!({"from": "node"})).await;
    assert_eq!(reply["ok"], json!(true), "{reply}");
    assert_eq!(reply["result"]["via"], "middleware", "{reply}");
    assert_eq!(reply["result"]["result"]["echo"]["from"], "node", "{reply}");
    let denied = node.trigger("secret::run", json!({})).await;
    assert_eq!(denied["ok"], json!(false), "{denied}");
    assert_eq!(denied["error"]["code"], "FORBIDDEN", "{denied}");
    // Its own functions work, through the middleware too.
    node.register(&[("bob::add", "add")]).await;
    let sum = node.trigger("bob::add", json!({"a": 1, "b": 2})).await;
    assert_eq!(sum["result"], json!({"sum": 3}), "{sum}");
}

#[tokio::test]
async fn a_python_sdk_worker_authenticates_with_its_token_on_the_rbac_port() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let mut python = Driver::python_at(&format!("ws://{addr}"), "py-rbac", Some("bob")).await;
    let reply = python.trigger("api::echo", json!({"from": "python"})).await;
    assert_eq!(reply["ok"], json!(true), "{reply}");
    assert_eq!(reply["result"]["user"], "bob", "{reply}");
    let denied = python.trigger("secret::run", json!({})).await;
    assert_eq!(denied["ok"], json!(false), "{denied}");
}

#[tokio::test]
async fn a_session_unregisters_only_its_own_triggers() {
    let (engine, addr) = engine().await;
    let _control = ControlPlane::start(&engine).await;
    let mut bob = session(&addr, "bob").await;
    let trigger_id = uuid::Uuid::new_v4().to_string();
    bob.send(
        json!({"type": "registertrigger", "id": trigger_id, "trigger_type": "cron",
                    "function_id": "api::echo", "config": {}}),
    )
    .await;
    bob.sync().await;
    let mut alice = session(&addr, "alice").await;
    alice
        .send(json!({"type": "unregistertrigger", "id": trigger_id, "trigger_type": "cron"}))
        .await;
    // Nor may alice replace it through its id.
    alice
        .send(
            json!({"type": "registertrigger", "id": trigger_id, "trigger_type": "cron",
                     "function_id": "api::echo", "config": {}}),
        )
        .await;
    let refused = alice
        .recv_matching("triggerregistrationresult", |v| {
            v["type"] == "triggerregistrationresult"
        })
        .await;
    assert_eq!(refused["error"]["code"], "REGISTRATION_DENIED", "{refused}");
    let mut trusted = RawWorker::connect(&engine).await;
    let info = trusted
        .call_ok(
            "engine::registered-triggers::info",
            json!({"id": trigger_id}),
        )
        .await;
    assert!(info.to_string().contains("api::echo"), "{info}");
    bob.send(json!({"type": "unregistertrigger", "id": trigger_id, "trigger_type": "cron"}))
        .await;
    bob.sync().await;
    let gone = trusted
        .call(
            "engine::registered-triggers::info",
            json!({"id": trigger_id}),
        )
        .await;
    assert_eq!(gone["error"]["code"], "NOT_FOUND", "{gone}");
}
