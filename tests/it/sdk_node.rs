//! Node `iii-sdk` 0.22.1 workers against the engine.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Driver, Engine, RawWorker};

fn assert_ok(reply: &Value) -> &Value {
    assert_eq!(reply["ok"], json!(true), "call failed: {reply}");
    &reply["result"]
}

fn assert_error(reply: &Value, code: &str) {
    assert_eq!(
        reply["ok"],
        json!(false),
        "call should fail with {code}: {reply}"
    );
    assert_eq!(reply["error"]["code"], code, "{reply}");
}

#[tokio::test]
async fn node_worker_invokes_functions_registered_by_another_node_worker() {
    let engine = Engine::start().await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner
        .register(&[("math::add", "add"), ("util::echo", "echo")])
        .await;
    let mut caller = Driver::node(&engine, "node-caller").await;

    let sum = caller.trigger("math::add", json!({"a": 2, "b": 40})).await;
    assert_eq!(assert_ok(&sum), &json!({"sum": 42}));

    let payload = json!({"text": "héllo ✓", "list": [1, null, true], "nested": {"x": 1.5}});
    let echoed = caller.trigger("util::echo", payload.clone()).await;
    let echoed = assert_ok(&echoed);
    for key in ["text", "list", "nested"] {
        assert_eq!(echoed[key], payload[key], "{echoed}");
    }
}

#[tokio::test]
async fn unknown_function_rejects_with_function_not_found() {
    let engine = Engine::start().await;
    let mut caller = Driver::node(&engine, "node-caller").await;
    let reply = caller.trigger("nobody::here", json!({})).await;
    assert_error(&reply, "function_not_found");
}

#[tokio::test]
async fn handler_exception_reaches_the_caller_as_invocation_failed() {
    let engine = Engine::start().await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner.register(&[("fail::boom", "boom")]).await;
    let mut caller = Driver::node(&engine, "node-caller").await;
    let reply = caller.trigger("fail::boom", json!({})).await;
    assert_error(&reply, "invocation_failed");
    assert!(
        reply["error"]["message"]
            .as_str()
            .is_some_and(|m| m.contains("kaboom")),
        "{reply}"
    );
}

#[tokio::test]
async fn owner_disconnect_mid_call_stops_the_waiting_call() {
    let engine = Engine::start().await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner.register(&[("slow::wait", "slow")]).await;
    let mut caller = Driver::node(&engine, "node-caller").await;

    let call = caller
        .send(
            "trigger",
            json!({"function_id": "slow::wait", "payload": {"ms": 60000}, "timeoutMs": 20000}),
        )
        .await;
    let invoked = owner.event_within("invoked", Duration::from_secs(10)).await;
    assert_eq!(invoked["function_id"], "slow::wait");
    owner.kill().await;

    let reply = caller.reply_within(call, Duration::from_secs(15)).await;
    assert_error(&reply, "invocation_stopped");
    let again = caller.trigger("slow::wait", json!({"ms": 1})).await;
    assert_error(&again, "function_not_found");
}

#[tokio::test]
async fn void_call_runs_the_handler_and_resolves_at_once() {
    let engine = Engine::start().await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner.register(&[("void::record", "record")]).await;
    let mut caller = Driver::node(&engine, "node-caller").await;
    let reply = caller
        .request(
            "trigger",
            json!({"function_id": "void::record", "payload": {"n": 7}, "void": true}),
        )
        .await;
    assert_eq!(assert_ok(&reply), &Value::Null);
    let invoked = owner.event_within("invoked", Duration::from_secs(10)).await;
    assert_eq!(invoked["input"]["n"], 7, "{invoked}");
}

#[tokio::test]
async fn invoke_metadata_reaches_the_handler() {
    let engine = Engine::start().await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner.register(&[("meta::record", "record")]).await;
    let mut caller = Driver::node(&engine, "node-caller").await;
    let reply = caller
        .request(
            "trigger",
            json!({"function_id": "meta::record", "payload": {"n": 1},
                   "metadata": {"tenant": "t-1"}, "timeoutMs": 10000}),
        )
        .await;
    assert_ok(&reply);
    let invoked = owner.event_within("invoked", Duration::from_secs(10)).await;
    assert_eq!(invoked["metadata"], json!({"tenant": "t-1"}), "{invoked}");
}

#[tokio::test]
async fn two_hundred_concurrent_invocations_correlate() {
    let engine = Engine::start().await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner.register(&[("load::echo", "echo")]).await;
    let mut caller = Driver::node(&engine, "node-caller").await;
    let stats = caller
        .ok(
            "bulk",
            json!({"function_id": "load::echo", "count": 200, "inflight": 200, "timeoutMs": 15000}),
        )
        .await;
    assert_eq!(stats["ok"], 200, "{stats}");
    assert_eq!(stats["wrong"], 0, "{stats}");
    assert_eq!(stats["lost"], 0, "{stats}");
}

#[tokio::test]
async fn twenty_thousand_calls_at_64_in_flight_lose_none() {
    let engine = Engine::start().await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner.register(&[("load::echo", "echo")]).await;
    let mut caller = Driver::node(&engine, "node-caller").await;
    let id = caller
        .send(
            "bulk",
            json!({"function_id": "load::echo", "count": 20000, "inflight": 64, "timeoutMs": 20000}),
        )
        .await;
    let reply = caller.reply_within(id, Duration::from_secs(240)).await;
    let stats = assert_ok(&reply);
    assert_eq!(stats["wrong"], 0, "{stats}");
    assert_eq!(stats["lost"], 0, "no call may time out: {stats}");
    assert_eq!(stats["failed"], 0, "{stats}");
    assert_eq!(stats["ok"], 20000, "{stats}");
}

#[tokio::test]
async fn channel_round_trip_between_two_node_workers() {
    let engine = Engine::start().await;
    let mut owner = Driver::node(&engine, "node-owner").await;
    owner
        .register(&[
            ("chan::read", "channel_read"),
            ("chan::write", "channel_write"),
        ])
        .await;
    let mut caller = Driver::node(&engine, "node-caller").await;

    // Caller writes (text frames, then 300 KiB binary in 64 KiB frames), owner reads.
    let chunk = "0123456789abcdef".repeat(64); // 1 KiB
    let sent = caller
        .ok(
            "channel_send",
            json!({"function_id": "chan::read", "messages": ["hello-text", "{\"k\":1}"],
                   "data": chunk, "repeat": 300}),
        )
        .await;
    let answer = &sent["answer"];
    assert_eq!(
        answer["messages"],
        json!(["hello-text", "{\"k\":1}"]),
        "{answer}"
    );
    assert_eq!(answer["bytes"], 300 * 1024, "{answer}");

    // Owner writes, caller reads.
    let received = caller
        .ok(
            "channel_receive",
            json!({"function_id": "chan::write", "text": "from the owner"}),
        )
        .await;
    assert_eq!(received["text"], "from the owner", "{received}");
    assert_eq!(received["answer"]["written"], 14, "{received}");
}

#[tokio::test]
async fn node_worker_is_listed_with_its_sdk_metadata() {
    let engine = Engine::start().await;
    let mut node = Driver::node(&engine, "node-listed").await;
    node.register(&[("listed::echo", "echo")]).await;
    let mut raw = RawWorker::connect(&engine).await;
    let row = raw.worker_row(&node.worker_id).await;
    assert_eq!(row["name"], "node-listed", "{row}");
    assert_eq!(row["runtime"], "node", "{row}");
    assert_eq!(row["version"], "0.22.1", "{row}");
    // The driver's own short-lived sync functions may still be counted.
    assert!(
        row["function_count"].as_u64().is_some_and(|n| n >= 1),
        "{row}"
    );
}
