//! Trigger types provided by workers, bindings, durable triggers and their built-ins
//! (protocol.md §1.5, §3.1, §6).

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Driver, Engine, RawWorker, http};

const EVENT: Duration = Duration::from_secs(10);

#[tokio::test]
async fn worker_provided_trigger_type_receives_bindings_and_fires_them() {
    let engine = Engine::start().await;
    let mut provider = Driver::node(&engine, "node-provider").await;
    provider
        .ok("register_trigger_type", json!({"trigger_type": "webhook"}))
        .await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner.register(&[("hook::handle", "record")]).await;
    owner
        .ok(
            "register_trigger",
            json!({"key": "w", "type": "webhook", "function_id": "hook::handle",
                   "config": {"path": "/x"}, "metadata": {"m": 1}}),
        )
        .await;

    let bound = provider.event_within("trigger_registered", EVENT).await;
    assert_eq!(bound["function_id"], "hook::handle", "{bound}");
    assert_eq!(bound["config"], json!({"path": "/x"}), "{bound}");
    assert!(bound["id"].is_string(), "{bound}");

    let fired = provider.ok("fire", json!({"payload": {"hello": 1}})).await;
    assert_eq!(fired[0]["seen"]["hello"], 1, "{fired}");
    let invoked = owner.event_within("invoked", EVENT).await;
    assert_eq!(invoked["input"]["hello"], 1, "{invoked}");

    owner.ok("unregister_trigger", json!({"key": "w"})).await;
    let unbound = provider.event_within("trigger_unregistered", EVENT).await;
    assert_eq!(unbound["id"], bound["id"], "{unbound}");
}

#[tokio::test]
async fn binding_made_before_its_trigger_type_exists_is_delivered_when_it_registers() {
    let engine = Engine::start().await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner.register(&[("late::handle", "echo")]).await;
    owner
        .ok(
            "register_trigger",
            json!({"key": "l", "type": "late-type", "function_id": "late::handle",
                   "config": {"n": 1}}),
        )
        .await;
    let mut provider = Driver::node(&engine, "node-provider").await;
    provider
        .ok(
            "register_trigger_type",
            json!({"trigger_type": "late-type"}),
        )
        .await;
    let bound = provider.event_within("trigger_registered", EVENT).await;
    assert_eq!(bound["function_id"], "late::handle", "{bound}");
    assert_eq!(bound["config"], json!({"n": 1}), "{bound}");
}

#[tokio::test]
async fn bindings_of_a_departed_provider_go_to_the_next_one() {
    let engine = Engine::start().await;
    let mut first = Driver::node(&engine, "provider-1").await;
    first
        .ok("register_trigger_type", json!({"trigger_type": "relay"}))
        .await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner.register(&[("relay::handle", "echo")]).await;
    owner
        .ok(
            "register_trigger",
            json!({"key": "r", "type": "relay", "function_id": "relay::handle", "config": {}}),
        )
        .await;
    first.event_within("trigger_registered", EVENT).await;
    first.kill().await;

    let mut second = Driver::node(&engine, "provider-2").await;
    second
        .ok("register_trigger_type", json!({"trigger_type": "relay"}))
        .await;
    let bound = second.event_within("trigger_registered", EVENT).await;
    assert_eq!(bound["function_id"], "relay::handle", "{bound}");
}

#[tokio::test]
async fn binding_owner_leaving_unregisters_its_trigger_at_the_provider() {
    let engine = Engine::start().await;
    let mut provider = Driver::node(&engine, "node-provider").await;
    provider
        .ok("register_trigger_type", json!({"trigger_type": "owned"}))
        .await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner.register(&[("owned::handle", "echo")]).await;
    owner
        .ok(
            "register_trigger",
            json!({"key": "o", "type": "owned", "function_id": "owned::handle", "config": {}}),
        )
        .await;
    let bound = provider.event_within("trigger_registered", EVENT).await;
    owner.kill().await;
    let unbound = provider.event_within("trigger_unregistered", EVENT).await;
    assert_eq!(unbound["id"], bound["id"], "{unbound}");
}

#[tokio::test]
async fn http_trigger_without_api_path_gets_a_registration_error() {
    let engine = Engine::start().await;
    let mut w = RawWorker::connect(&engine).await;
    w.register_function("raw::nopath").await;
    let id = uuid::Uuid::new_v4().to_string();
    w.send(
        json!({"type": "registertrigger", "id": id, "trigger_type": "http",
                  "function_id": "raw::nopath", "config": {"http_method": "GET"}}),
    )
    .await;
    let result = w
        .recv_matching("triggerregistrationresult", |v| {
            v["type"] == "triggerregistrationresult"
        })
        .await;
    assert_eq!(result["id"], json!(id), "{result}");
    assert_eq!(result["trigger_type"], "http", "{result}");
    assert_eq!(result["function_id"], "raw::nopath", "{result}");
    assert_eq!(
        result["error"]["code"], "trigger_registration_failed",
        "{result}"
    );
}

#[tokio::test]
async fn durable_http_trigger_made_with_engine_register_trigger_serves_lists_and_goes() {
    let engine = Engine::start().await;
    let mut w = RawWorker::connect_named(&engine, "raw-durable").await;
    w.register_function("dur::fn").await;
    w.sync().await;
    let made = w
        .call_ok(
            "engine::register_trigger",
            json!({"trigger_type": "http", "function_id": "dur::fn",
                   "config": {"api_path": "/durable", "http_method": "GET"}}),
        )
        .await;
    let trigger_id = made["id"]
        .as_str()
        .expect("register_trigger returns {id}")
        .to_owned();

    let addr = engine.http();
    let serve = async {
        let invoke = w.next_invoke().await;
        assert_eq!(invoke["function_id"], "dur::fn", "{invoke}");
        assert_eq!(invoke["data"]["path"], "/durable", "{invoke}");
        w.answer(
            &invoke,
            json!({"status_code": 200, "body": {"durable": true}}),
        )
        .await;
    };
    let (resp, ()) = tokio::join!(http::get(addr, "/durable"), serve);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json(), json!({"durable": true}));

    let list = w
        .call_ok("engine::registered-triggers::list", json!({}))
        .await;
    let row = list["registered_triggers"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == json!(trigger_id)))
        .unwrap_or_else(|| panic!("durable trigger listed: {list}"))
        .clone();
    assert_eq!(row["trigger_type"], "http", "{row}");
    assert_eq!(row["function_id"], "dur::fn", "{row}");
    assert_eq!(row["config"]["api_path"], "/durable", "{row}");

    let info = w
        .call_ok(
            "engine::registered-triggers::info",
            json!({"id": trigger_id}),
        )
        .await;
    assert_eq!(info["id"], json!(trigger_id), "{info}");
    assert_eq!(info["function_id"], "dur::fn", "{info}");

    let removed = w
        .call_ok("engine::unregister_trigger", json!({"id": trigger_id}))
        .await;
    assert_eq!(removed["removed"], true, "{removed}");
    let gone = http::get(addr, "/durable").await;
    assert_eq!(gone.status, 404, "{}", gone.text());
}

#[tokio::test]
async fn triggers_list_and_info_describe_worker_provided_types() {
    let engine = Engine::start().await;
    let mut provider = Driver::node(&engine, "node-provider").await;
    provider
        .ok(
            "register_trigger_type",
            json!({"trigger_type": "listed-type", "description": "listed in tests"}),
        )
        .await;
    let mut w = RawWorker::connect(&engine).await;
    let list = w.call_ok("engine::triggers::list", json!({})).await;
    let row = list["triggers"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == "listed-type"))
        .unwrap_or_else(|| panic!("listed-type in engine::triggers::list: {list}"))
        .clone();
    assert_eq!(row["worker_name"], "node-provider", "{row}");
    assert_eq!(row["description"], "listed in tests", "{row}");
    assert_eq!(row["namespace"], "default", "{row}");

    let info = w
        .call_ok("engine::triggers::info", json!({"id": "listed-type"}))
        .await;
    assert_eq!(info["id"], "listed-type", "{info}");
    assert_eq!(info["worker_name"], "node-provider", "{info}");
    assert!(info["instance_count"].is_u64(), "{info}");

    let winfo = w
        .call_ok("engine::workers::info", json!({"name": "node-provider"}))
        .await;
    let types: Vec<Value> = winfo["trigger_types"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("workers::info trigger_types: {winfo}"));
    assert!(
        types
            .iter()
            .any(|t| t == "listed-type" || t["id"] == "listed-type"),
        "{winfo}"
    );
    assert!(winfo["registered_triggers"].is_array(), "{winfo}");
}
