//! The `engine::*` built-ins, shapes per protocol.md §6.

use serde_json::{Value, json};

use crate::support::{Engine, RawWorker, is_uuid};

/// Registers `raw::alpha` (with a description) and `raw::beta` on a worker named `raw-owner`.
async fn owner_with_two_functions(engine: &Engine) -> RawWorker {
    let mut owner = RawWorker::connect_named(engine, "raw-owner").await;
    owner
        .send(json!({"type": "registerfunction", "id": "raw::alpha",
                     "description": "first", "metadata": {"tier": "gold"}}))
        .await;
    owner.register_function("raw::beta").await;
    owner.sync().await;
    owner
}

fn ids(rows: &Value, key: &str) -> Vec<String> {
    rows.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {rows}"))
        .iter()
        .map(|r| r[key].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn functions_list_shows_worker_functions_and_hides_engine_ones() {
    let engine = Engine::start().await;
    let _owner = owner_with_two_functions(&engine).await;
    let mut w = RawWorker::connect(&engine).await;

    let list = w.call_ok("engine::functions::list", json!({})).await;
    let rows = &list["functions"];
    let names = ids(rows, "function_id");
    assert!(names.contains(&"raw::alpha".to_owned()), "{list}");
    assert!(names.contains(&"raw::beta".to_owned()), "{list}");
    assert!(
        !names
            .iter()
            .any(|n| n.starts_with("engine::") && !n.starts_with("engine::queue::")),
        "engine::* is hidden by default: {list}"
    );
    let alpha = rows
        .as_array()
        .and_then(|r| r.iter().find(|f| f["function_id"] == "raw::alpha"))
        .expect("alpha row");
    assert_eq!(alpha["namespace"], "default", "{alpha}");
    assert_eq!(alpha["worker_name"], "raw-owner", "{alpha}");
    assert_eq!(alpha["description"], "first", "{alpha}");
    assert_eq!(alpha["metadata"], json!({"tier": "gold"}), "{alpha}");

    let internal = w
        .call_ok("engine::functions::list", json!({"include_internal": true}))
        .await;
    let all = ids(&internal["functions"], "function_id");
    assert!(
        all.contains(&"engine::functions::list".to_owned()),
        "include_internal shows built-ins: {internal}"
    );

    let prefixed = w
        .call_ok("engine::functions::list", json!({"prefix": "raw::b"}))
        .await;
    assert_eq!(
        ids(&prefixed["functions"], "function_id"),
        vec!["raw::beta"],
        "{prefixed}"
    );
}

#[tokio::test]
async fn functions_info_answers_single_and_batch_forms() {
    let engine = Engine::start().await;
    let _owner = owner_with_two_functions(&engine).await;
    let mut w = RawWorker::connect(&engine).await;

    let one = w
        .call_ok(
            "engine::functions::info",
            json!({"function_id": "raw::alpha"}),
        )
        .await;
    assert_eq!(one["function_id"], "raw::alpha", "{one}");
    assert_eq!(one["namespace"], "default", "{one}");
    assert_eq!(one["worker_name"], "raw-owner", "{one}");
    assert_eq!(one["description"], "first", "{one}");
    assert!(one["registered_triggers"].is_array(), "{one}");

    let missing = w
        .call(
            "engine::functions::info",
            json!({"function_id": "raw::nope"}),
        )
        .await;
    assert_eq!(missing["error"]["code"], "NOT_FOUND", "{missing}");

    let batch = w
        .call_ok(
            "engine::functions::info",
            json!({"function_ids": ["raw::alpha", "raw::nope", "raw::beta"]}),
        )
        .await;
    let rows = batch["functions"].as_array().expect("functions array");
    assert_eq!(rows.len(), 3, "{batch}");
    assert_eq!(rows[0]["function_id"], "raw::alpha", "{batch}");
    assert_eq!(rows[0]["worker_name"], "raw-owner", "{batch}");
    assert_eq!(
        rows[1],
        json!({"function_id": "raw::nope", "error": "not_found"}),
        "{batch}"
    );
    assert_eq!(rows[2]["function_id"], "raw::beta", "{batch}");
}

#[tokio::test]
async fn workers_list_reports_connected_workers_with_their_metadata() {
    let engine = Engine::start().await;
    let owner = owner_with_two_functions(&engine).await;
    let mut w = RawWorker::connect_named(&engine, "raw-asker").await;
    w.sync().await;

    let list = w.call_ok("engine::workers::list", json!({})).await;
    let rows = list["workers"].as_array().expect("workers array");
    let row = rows
        .iter()
        .find(|r| r["id"] == json!(owner.worker_id))
        .unwrap_or_else(|| panic!("owner {} listed: {list}", owner.worker_id));
    for key in [
        "name",
        "description",
        "version",
        "id",
        "namespace",
        "runtime",
        "os",
        "status",
        "function_count",
        "connected_at_ms",
        "active_invocations",
        "isolation",
        "ip_address",
    ] {
        assert!(
            row.get(key).is_some(),
            "workers::list row lacks {key}: {row}"
        );
    }
    assert_eq!(row["name"], "raw-owner", "{row}");
    assert_eq!(row["runtime"], "rust", "{row}");
    assert_eq!(row["namespace"], "default", "{row}");
    assert_eq!(row["function_count"], 2, "{row}");
    assert!(row["connected_at_ms"].is_u64(), "{row}");
    assert!(is_uuid(row["id"].as_str().unwrap_or_default()), "{row}");

    let info = w
        .call_ok("engine::workers::info", json!({"name": "raw-owner"}))
        .await;
    assert_eq!(info["worker"]["id"], json!(owner.worker_id), "{info}");
    let fns = &info["functions"];
    assert!(fns.is_array(), "workers::info functions: {info}");
}

#[tokio::test]
async fn channels_create_returns_a_reader_and_writer_sharing_id_and_key() {
    let engine = Engine::start().await;
    let mut w = RawWorker::connect(&engine).await;
    // Python 0.25 sends an explicit null buffer size and a namespace.
    let id = uuid::Uuid::new_v4().to_string();
    w.send(json!({"type": "invokefunction", "invocation_id": id,
                  "function_id": "engine::channels::create",
                  "data": {"buffer_size": null}, "namespace": "default"}))
        .await;
    let frame = w.result_of(&id).await;
    let result = &frame["result"];
    let (reader, writer) = (&result["reader"], &result["writer"]);
    assert_eq!(reader["direction"], "read", "{frame}");
    assert_eq!(writer["direction"], "write", "{frame}");
    assert_eq!(reader["channel_id"], writer["channel_id"], "{frame}");
    assert_eq!(reader["access_key"], writer["access_key"], "{frame}");
    assert!(
        is_uuid(reader["channel_id"].as_str().unwrap_or_default()),
        "{frame}"
    );
    assert!(
        is_uuid(reader["access_key"].as_str().unwrap_or_default()),
        "{frame}"
    );
}

#[tokio::test]
async fn log_builtins_accept_a_message() {
    let engine = Engine::start().await;
    let mut w = RawWorker::connect(&engine).await;
    for level in ["info", "warn", "error", "debug", "trace"] {
        let frame = w
            .call(
                &format!("engine::log::{level}"),
                json!({"message": "hello from the tests"}),
            )
            .await;
        assert!(
            frame.get("error").is_none_or(Value::is_null),
            "engine::log::{level} failed: {frame}"
        );
    }
}

#[tokio::test]
async fn workers_available_trigger_fires_on_connect_and_disconnect() {
    let engine = Engine::start().await;
    let mut watcher = RawWorker::connect(&engine).await;
    watcher.register_function("watch::workers").await;
    watcher
        .send(
            json!({"type": "registertrigger", "id": uuid::Uuid::new_v4().to_string(),
                     "trigger_type": "engine::workers-available",
                     "function_id": "watch::workers", "config": {}}),
        )
        .await;
    watcher.sync().await;

    let other = RawWorker::connect(&engine).await;
    let other_id = other.worker_id.clone();
    wait_for_worker_event(&mut watcher, "worker_connected", &other_id).await;
    drop(other);
    wait_for_worker_event(&mut watcher, "worker_disconnected", &other_id).await;
}

/// Serves `watch::workers` until it is called with `{event, worker_id}`.
async fn wait_for_worker_event(watcher: &mut RawWorker, event: &str, worker_id: &str) {
    loop {
        let invoke = watcher.next_invoke().await;
        watcher.answer(&invoke, json!(null)).await;
        if invoke["data"]["event"] == event && invoke["data"]["worker_id"] == worker_id {
            return;
        }
    }
}

#[tokio::test]
async fn functions_available_trigger_reports_new_functions() {
    let engine = Engine::start().await;
    let mut watcher = RawWorker::connect(&engine).await;
    watcher.register_function("watch::functions").await;
    watcher
        .send(
            json!({"type": "registertrigger", "id": uuid::Uuid::new_v4().to_string(),
                     "trigger_type": "engine::functions-available",
                     "function_id": "watch::functions", "config": {}}),
        )
        .await;
    watcher.sync().await;
    let mut other = RawWorker::connect(&engine).await;
    other.register_function("fresh::one").await;
    other.sync().await;
    // Checked every 5 s by the reference engine: allow a few rounds.
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no functions_changed event naming fresh::one"
        );
        let invoke = watcher.next_invoke().await;
        watcher.answer(&invoke, json!(null)).await;
        let data = &invoke["data"];
        if data["event"] == "functions_changed"
            && data["functions"]
                .as_array()
                .is_some_and(|f| f.iter().any(|r| r["function_id"] == "fresh::one"))
        {
            break;
        }
    }
}
