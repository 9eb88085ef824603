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

/// A worker named `raw-infra` that owns `raw::alpha` and `raw::hooked`, provides the trigger
/// type `raw-type`, binds `GET /winfo` to `raw::alpha` and `raw-type` (with metadata) to
/// `raw::hooked`. Returns it with the two binding ids (http, raw-type).
async fn infra_worker(engine: &Engine) -> (RawWorker, String, String) {
    let mut w = RawWorker::connect_named(engine, "raw-infra").await;
    w.send(json!({"type": "registerfunction", "id": "raw::alpha", "description": "first"}))
        .await;
    w.register_function("raw::hooked").await;
    w.send(json!({"type": "registertriggertype", "id": "raw-type",
                  "description": "raw provided"}))
        .await;
    let http_id = uuid::Uuid::new_v4().to_string();
    w.send(
        json!({"type": "registertrigger", "id": http_id, "trigger_type": "http",
                  "function_id": "raw::alpha",
                  "config": {"api_path": "/winfo", "http_method": "get"}}),
    )
    .await;
    let raw_id = uuid::Uuid::new_v4().to_string();
    w.send(
        json!({"type": "registertrigger", "id": raw_id, "trigger_type": "raw-type",
                  "function_id": "raw::hooked", "config": {"k": "v"},
                  "metadata": {"team": "blue"}}),
    )
    .await;
    w.sync().await;
    (w, http_id, raw_id)
}

/// Rows of `rows` without the helpers' own `__sync::*` functions.
fn without_sync(rows: &Value) -> Vec<Value> {
    rows.as_array()
        .unwrap_or_else(|| panic!("expected an array, got {rows}"))
        .iter()
        .filter(|r| {
            !r["function_id"]
                .as_str()
                .is_some_and(|f| f.starts_with("__sync::"))
        })
        .cloned()
        .collect()
}

#[tokio::test]
async fn workers_info_by_name_lists_the_workers_functions_types_and_bindings() {
    let engine = Engine::start().await;
    let (infra, http_id, raw_id) = infra_worker(&engine).await;
    let mut w = RawWorker::connect(&engine).await;

    let info = w
        .call_ok("engine::workers::info", json!({"name": "raw-infra"}))
        .await;
    let worker = &info["worker"];
    assert_eq!(worker["id"], json!(infra.worker_id), "{info}");
    assert_eq!(worker["name"], "raw-infra", "{info}");
    assert_eq!(worker["runtime"], "rust", "{info}");
    assert_eq!(worker["namespace"], "default", "{info}");
    assert_eq!(worker["status"], "connected", "{info}");
    assert_eq!(
        worker["pid"],
        std::process::id(),
        "pid from the metadata: {info}"
    );
    assert_eq!(worker["internal"], false, "{info}");

    let functions = without_sync(&info["functions"]);
    assert_eq!(
        ids(&Value::Array(functions.clone()), "function_id"),
        vec!["raw::alpha", "raw::hooked"],
        "{info}"
    );
    assert_eq!(functions[0]["description"], "first", "{info}");
    assert_eq!(functions[0]["worker_name"], "raw-infra", "{info}");

    let types = info["trigger_types"]
        .as_array()
        .expect("trigger_types array");
    assert_eq!(types.len(), 1, "{info}");
    assert_eq!(types[0]["id"], "raw-type", "{info}");
    assert_eq!(types[0]["description"], "raw provided", "{info}");
    assert_eq!(types[0]["worker_name"], "raw-infra", "{info}");

    let bindings = info["registered_triggers"]
        .as_array()
        .expect("registered_triggers array");
    assert_eq!(bindings.len(), 2, "{info}");
    let http = bindings
        .iter()
        .find(|b| b["id"] == json!(http_id))
        .unwrap_or_else(|| panic!("http binding listed: {info}"));
    assert_eq!(http["trigger_type"], "http", "{http}");
    assert_eq!(http["function_id"], "raw::alpha", "{http}");
    assert_eq!(http["worker_name"], "raw-infra", "{http}");
    assert_eq!(http["config"]["api_path"], "/winfo", "{http}");
    let raw = bindings
        .iter()
        .find(|b| b["id"] == json!(raw_id))
        .unwrap_or_else(|| panic!("raw-type binding listed: {info}"));
    assert_eq!(raw["trigger_type"], "raw-type", "{raw}");
    assert_eq!(raw["function_id"], "raw::hooked", "{raw}");
    assert_eq!(raw["config"], json!({"k": "v"}), "{raw}");

    let missing = w
        .call("engine::workers::info", json!({"name": "nobody"}))
        .await;
    assert!(
        missing.get("error").is_some_and(|e| !e.is_null()),
        "unknown worker name is an error: {missing}"
    );
}

#[tokio::test]
async fn registered_triggers_list_filters_by_type_and_function() {
    let engine = Engine::start().await;
    let (_infra, http_id, raw_id) = infra_worker(&engine).await;
    let mut w = RawWorker::connect(&engine).await;

    let all = w
        .call_ok("engine::registered-triggers::list", json!({}))
        .await;
    let all_ids = ids(&all["registered_triggers"], "id");
    assert!(
        all_ids.contains(&http_id) && all_ids.contains(&raw_id),
        "{all}"
    );
    let http_row = all["registered_triggers"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["id"] == json!(http_id)))
        .expect("http row");
    assert_eq!(http_row["worker_name"], "raw-infra", "{http_row}");
    assert!(http_row["config_summary"].is_string(), "{http_row}");

    let by_type = w
        .call_ok(
            "engine::registered-triggers::list",
            json!({"trigger_type": "raw-type"}),
        )
        .await;
    assert_eq!(
        ids(&by_type["registered_triggers"], "id"),
        vec![raw_id.clone()],
        "{by_type}"
    );

    let by_function = w
        .call_ok(
            "engine::registered-triggers::list",
            json!({"function_id": "raw::alpha"}),
        )
        .await;
    assert_eq!(
        ids(&by_function["registered_triggers"], "id"),
        vec![http_id.clone()],
        "{by_function}"
    );

    let none = w
        .call_ok(
            "engine::registered-triggers::list",
            json!({"trigger_type": "http", "function_id": "raw::hooked"}),
        )
        .await;
    assert_eq!(
        none["registered_triggers"],
        json!([]),
        "filters combine: {none}"
    );
}

#[tokio::test]
async fn registered_triggers_info_joins_the_trigger_type_and_the_function() {
    let engine = Engine::start().await;
    let (_infra, http_id, raw_id) = infra_worker(&engine).await;
    let mut w = RawWorker::connect(&engine).await;

    let info = w
        .call_ok("engine::registered-triggers::info", json!({"id": raw_id}))
        .await;
    assert_eq!(info["id"], json!(raw_id), "{info}");
    assert_eq!(info["trigger_type"], "raw-type", "{info}");
    assert_eq!(info["function_id"], "raw::hooked", "{info}");
    assert_eq!(info["worker_name"], "raw-infra", "{info}");
    assert_eq!(info["config"], json!({"k": "v"}), "{info}");
    assert_eq!(info["metadata"], json!({"team": "blue"}), "{info}");
    let trigger = &info["trigger"];
    assert_eq!(trigger["id"], "raw-type", "{info}");
    assert_eq!(trigger["description"], "raw provided", "{info}");
    assert_eq!(trigger["worker_name"], "raw-infra", "{info}");
    assert_eq!(trigger["instance_count"], 1, "{info}");
    let function = &info["function"];
    assert_eq!(function["function_id"], "raw::hooked", "{info}");
    assert_eq!(function["worker_name"], "raw-infra", "{info}");
    let bound = function["registered_triggers"]
        .as_array()
        .unwrap_or_else(|| panic!("function.registered_triggers: {info}"));
    assert!(bound.iter().any(|b| b["id"] == json!(raw_id)), "{info}");

    let http = w
        .call_ok("engine::registered-triggers::info", json!({"id": http_id}))
        .await;
    assert_eq!(http["trigger"]["id"], "http", "{http}");
    assert_eq!(http["function"]["function_id"], "raw::alpha", "{http}");
    assert_eq!(http["function"]["description"], "first", "{http}");

    let missing = w
        .call(
            "engine::registered-triggers::info",
            json!({"id": uuid::Uuid::new_v4().to_string()}),
        )
        .await;
    assert_eq!(missing["error"]["code"], "NOT_FOUND", "{missing}");
}

#[tokio::test]
async fn triggers_info_counts_the_instances_of_a_type() {
    let engine = Engine::start().await;
    let (mut infra, _http_id, raw_id) = infra_worker(&engine).await;
    let mut w = RawWorker::connect(&engine).await;
    let count = |info: &Value| info["instance_count"].clone();

    let info = w
        .call_ok("engine::triggers::info", json!({"id": "raw-type"}))
        .await;
    assert_eq!(count(&info), 1, "{info}");
    assert_eq!(info["description"], "raw provided", "{info}");

    let second = uuid::Uuid::new_v4().to_string();
    infra
        .send(
            json!({"type": "registertrigger", "id": second, "trigger_type": "raw-type",
                     "function_id": "raw::alpha", "config": {}}),
        )
        .await;
    infra.sync().await;
    let info = w
        .call_ok("engine::triggers::info", json!({"id": "raw-type"}))
        .await;
    assert_eq!(count(&info), 2, "{info}");

    infra
        .send(json!({"type": "unregistertrigger", "id": raw_id, "trigger_type": "raw-type"}))
        .await;
    infra
        .send(json!({"type": "unregistertrigger", "id": second}))
        .await;
    infra.sync().await;
    let info = w
        .call_ok("engine::triggers::info", json!({"id": "raw-type"}))
        .await;
    assert_eq!(count(&info), 0, "{info}");
}
