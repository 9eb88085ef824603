//! Python `iii-sdk` 0.25.0 workers, alone and with Node workers.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Driver, Engine, RawWorker, http};

fn assert_ok(reply: &Value) -> &Value {
    assert_eq!(reply["ok"], json!(true), "call failed: {reply}");
    &reply["result"]
}

#[tokio::test]
async fn node_worker_calls_a_python_function() {
    let engine = Engine::start().await;
    let mut py = Driver::python(&engine, "py-owner").await;
    py.register(&[("py::add", "add")]).await;
    let mut node = Driver::node(&engine, "node-caller").await;
    let reply = node.trigger("py::add", json!({"a": 20, "b": 22})).await;
    assert_eq!(assert_ok(&reply), &json!({"sum": 42}));
}

#[tokio::test]
async fn python_worker_calls_a_node_function() {
    let engine = Engine::start().await;
    let mut node = Driver::node(&engine, "node-owner").await;
    node.register(&[("node::add", "add")]).await;
    let mut py = Driver::python(&engine, "py-caller").await;
    let reply = py.trigger("node::add", json!({"a": 1, "b": 2})).await;
    assert_eq!(assert_ok(&reply), &json!({"sum": 3}));
}

#[tokio::test]
async fn node_to_python_to_node_chain_returns_to_the_first_caller() {
    let engine = Engine::start().await;
    let mut node_owner = Driver::node(&engine, "node-owner").await;
    node_owner.register(&[("node::echo", "echo")]).await;
    let mut py = Driver::python(&engine, "py-relay").await;
    py.register(&[("py::relay", "relay")]).await;
    let mut node_caller = Driver::node(&engine, "node-caller").await;
    let reply = node_caller
        .trigger(
            "py::relay",
            json!({"target": "node::echo", "payload": {"word": "round"}}),
        )
        .await;
    let result = assert_ok(&reply);
    assert_eq!(result["by"], "python", "{result}");
    assert_eq!(result["relayed"]["word"], "round", "{result}");
}

#[tokio::test]
async fn python_handler_exception_reaches_node_as_invocation_failed() {
    let engine = Engine::start().await;
    let mut py = Driver::python(&engine, "py-owner").await;
    py.register(&[("py::boom", "boom")]).await;
    let mut node = Driver::node(&engine, "node-caller").await;
    let reply = node.trigger("py::boom", json!({})).await;
    assert_eq!(reply["ok"], json!(false), "{reply}");
    assert_eq!(reply["error"]["code"], "invocation_failed", "{reply}");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("kaboom")),
        "{reply}"
    );
}

#[tokio::test]
async fn fragmented_17_mib_payload_from_python_is_reassembled() {
    let engine = Engine::start().await;
    let mut owner = Driver::python(&engine, "py-owner").await;
    owner.register(&[("py::size", "size")]).await;
    let mut caller = Driver::python(&engine, "py-caller").await;
    // Over 16 MiB, so Python 0.25 sends it as 1 MiB continuation frames.
    let bytes = 17 * 1024 * 1024;
    let id = caller
        .send(
            "trigger",
            json!({"function_id": "py::size", "blob_bytes": bytes, "timeoutMs": 60000}),
        )
        .await;
    let reply = caller.reply_within(id, Duration::from_secs(90)).await;
    assert_eq!(assert_ok(&reply), &json!({"len": bytes}));
}

#[tokio::test]
async fn python_worker_is_listed_with_its_sdk_metadata() {
    let engine = Engine::start().await;
    let mut py = Driver::python(&engine, "py-listed").await;
    py.register(&[("listed::py", "echo")]).await;
    let mut raw = RawWorker::connect(&engine).await;
    let row = raw.worker_row(&py.worker_id).await;
    assert_eq!(row["name"], "py-listed", "{row}");
    assert_eq!(row["runtime"], "python", "{row}");
    assert_eq!(row["version"], "0.25.0", "{row}");
}

#[tokio::test]
async fn python_writes_a_channel_that_a_node_worker_reads() {
    let engine = Engine::start().await;
    let mut node = Driver::node(&engine, "node-reader").await;
    node.register(&[("node::read", "channel_read")]).await;
    let mut py = Driver::python(&engine, "py-writer").await;
    // 200 KiB: the Python writer splits binary into 64 KiB frames.
    let reply = py
        .request(
            "channel_send",
            json!({"function_id": "node::read", "messages": ["from-python"],
                   "data": "0123456789abcdef".repeat(64), "repeat": 200}),
        )
        .await;
    let answer = &assert_ok(&reply)["answer"];
    assert_eq!(answer["messages"], json!(["from-python"]), "{answer}");
    assert_eq!(answer["bytes"], 200 * 1024, "{answer}");
}

#[tokio::test]
async fn python_http_trigger_serves_and_unregisters() {
    let engine = Engine::start().await;
    let mut py = Driver::python(&engine, "py-http").await;
    py.ok(
        "register",
        json!({"functions": [{"id": "py::http", "kind": "http", "status": 201}]}),
    )
    .await;
    py.ok(
        "register_trigger",
        json!({"key": "h", "type": "http", "function_id": "py::http",
               "config": {"api_path": "/py/:name", "http_method": "GET"}}),
    )
    .await;
    let resp = http::get(engine.http(), "/py/ada?x=1").await;
    assert_eq!(resp.status, 201, "{}", resp.text());
    let body = resp.json();
    assert_eq!(body["path_params"], json!({"name": "ada"}), "{body}");
    assert_eq!(body["query_params"], json!({"x": "1"}), "{body}");

    py.ok("unregister_trigger", json!({"key": "h"})).await;
    assert_eq!(http::get(engine.http(), "/py/ada").await.status, 404);
}

#[tokio::test]
async fn python_void_call_runs_the_node_handler_and_returns_nothing() {
    let engine = Engine::start().await;
    let mut node = Driver::node(&engine, "node-owner").await;
    node.register(&[("void::record", "record")]).await;
    let mut py = Driver::python(&engine, "py-caller").await;
    let reply = py
        .request(
            "trigger",
            json!({"function_id": "void::record", "payload": {"n": 9}, "void": true}),
        )
        .await;
    assert_eq!(
        assert_ok(&reply),
        &Value::Null,
        "TriggerAction.Void() returns None"
    );
    let invoked = node.event_within("invoked", Duration::from_secs(10)).await;
    assert_eq!(invoked["input"]["n"], 9, "{invoked}");
    assert_eq!(
        invoked["input"]["_caller_worker_id"],
        json!(py.worker_id),
        "void calls are decorated with the caller id: {invoked}"
    );
}
