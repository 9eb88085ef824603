//! Messages over the 16 MiB frame size between SDK workers (protocol.md §1.3): Node sends
//! every message as one frame, the engine writes larger ones as fragments, Python fragments
//! its own. Content is checked in the drivers against the shared test pattern.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{Driver, Engine, RawWorker, pattern};

/// 20 MiB: over the 16 MiB frame size, under the 64 MiB message limit.
const BIG: usize = 20 << 20;
/// Bound for one big call; each side builds and checks 20 MiB.
const BIG_CALL: Duration = Duration::from_secs(90);

/// Asserts a driver summary of a text of `len` pattern characters.
fn assert_intact(reply: &Value, len: usize) {
    assert_eq!(reply["ok"], json!(true), "call failed: {reply}");
    let s = &reply["result"];
    assert_eq!(s["len"], len, "{s}");
    assert_eq!(s["intact"], true, "content and order kept: {s}");
    assert_eq!(s["head"], "00000000|00000001|", "{s}");
    let tail = pattern(len);
    assert_eq!(s["tail"], json!(tail.get(len - 18..)), "{s}");
}

/// A Node worker owning `big::make`, which answers with `input.bytes` pattern characters.
async fn big_owner(engine: &Engine) -> Driver {
    let mut owner = Driver::node(engine, "node-big").await;
    owner.register(&[("big::make", "big")]).await;
    owner
}

async fn fetch_big(caller: &mut Driver) -> Value {
    let id = caller
        .send(
            "trigger",
            json!({"function_id": "big::make", "payload": {"bytes": BIG},
                   "timeoutMs": 60000, "summarize": true}),
        )
        .await;
    caller.reply_within(id, BIG_CALL).await
}

#[tokio::test]
async fn twenty_mib_result_from_node_reaches_a_node_caller_intact() {
    let engine = Engine::start().await;
    let _owner = big_owner(&engine).await;
    let mut caller = Driver::node(&engine, "node-caller").await;
    assert_intact(&fetch_big(&mut caller).await, BIG);
    // The connections survive: a small call still works.
    let reply = caller.trigger("big::make", json!({"bytes": 20})).await;
    assert_eq!(reply["result"], json!(pattern(20)), "{reply}");
}

#[tokio::test]
async fn twenty_mib_result_from_node_reaches_a_python_caller_intact() {
    let engine = Engine::start().await;
    let _owner = big_owner(&engine).await;
    let mut caller = Driver::python(&engine, "py-caller").await;
    assert_intact(&fetch_big(&mut caller).await, BIG);
}

#[tokio::test]
async fn twenty_mib_payload_from_python_reaches_a_node_function_intact() {
    let engine = Engine::start().await;
    let mut owner = Driver::node(&engine, "node-size").await;
    owner.register(&[("node::size", "size")]).await;
    let mut caller = Driver::python(&engine, "py-caller").await;
    let id = caller
        .send(
            "trigger",
            json!({"function_id": "node::size", "blob_bytes": BIG, "timeoutMs": 60000}),
        )
        .await;
    assert_intact(&caller.reply_within(id, BIG_CALL).await, BIG);
}

#[tokio::test]
async fn twenty_mib_result_reaches_a_raw_caller_in_frames_of_at_most_16_mib() {
    let engine = Engine::start().await;
    let _owner = big_owner(&engine).await;
    // tungstenite's default client config refuses frames over 16 MiB: the result only
    // arrives if the engine fragments it.
    let mut caller = RawWorker::connect(&engine).await;
    let frame = caller.call("big::make", json!({"bytes": BIG})).await;
    let result = frame["result"]
        .as_str()
        .unwrap_or_else(|| panic!("string result, got error {}", frame["error"]));
    assert_eq!(result.len(), BIG);
    assert!(result == pattern(BIG), "content and order kept");
}
