//! The REST API (iii-http) with `http` triggers registered by the Node SDK (protocol.md §3.3).

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::http::{self, Response};
use crate::support::{Driver, Engine, RawWorker, STEP, eventually, pattern};

/// A Node worker with an `http` function registered under `id` and bound to
/// `method path`; the handler answers `status` with `headers` and echoes the request.
async fn node_route(
    engine: &Engine,
    id: &str,
    method: &str,
    path: &str,
    status: u16,
    headers: Value,
) -> Driver {
    let mut node = Driver::node(engine, "node-http").await;
    node.ok(
        "register",
        json!({"functions": [{"id": id, "kind": "http", "status": status, "headers": headers}]}),
    )
    .await;
    node.ok(
        "register_trigger",
        json!({"key": id, "type": "http", "function_id": id,
               "config": {"api_path": path, "http_method": method}}),
    )
    .await;
    node
}

fn assert_not_found(resp: &Response) {
    assert_eq!(resp.status, 404, "body: {}", resp.text());
    assert_eq!(
        resp.json()["error"]["code"],
        "NOT_FOUND",
        "404 body per §3.3: {}",
        resp.text()
    );
}

#[tokio::test]
async fn unknown_route_answers_404_not_found() {
    let engine = Engine::start().await;
    let resp = http::get(engine.http(), "/no/such/route").await;
    assert_not_found(&resp);
}

#[tokio::test]
async fn get_trigger_passes_path_and_query_params_with_custom_status_and_headers() {
    let engine = Engine::start().await;
    let _node = node_route(
        &engine,
        "api::get_item",
        "GET",
        "/items/:id",
        201,
        json!({"x-custom": "yes", "content-type": "application/json"}),
    )
    .await;

    let resp = http::request(
        engine.http(),
        "GET",
        "/items/42?q=abc&page=2",
        &[("x-request-tag", "t1")],
        None,
    )
    .await;
    assert_eq!(resp.status, 201, "body: {}", resp.text());
    assert_eq!(resp.header("x-custom"), Some("yes"), "{:?}", resp.headers);
    let body = resp.json();
    assert_eq!(body["method"], "GET", "{body}");
    assert_eq!(
        body["path"], "/items/:id",
        "path is the registered pattern: {body}"
    );
    assert_eq!(body["path_params"], json!({"id": "42"}), "{body}");
    assert_eq!(
        body["query_params"],
        json!({"q": "abc", "page": "2"}),
        "{body}"
    );
    assert_eq!(
        body["headers"]["x-request-tag"], "t1",
        "lowercased headers: {body}"
    );
    assert_eq!(body["body"], Value::Null, "no JSON body on GET: {body}");
}

#[tokio::test]
async fn post_trigger_receives_the_json_body() {
    let engine = Engine::start().await;
    let _node = node_route(
        &engine,
        "api::create",
        "post",
        "users",
        202,
        json!({"X-Created-By": "node"}),
    )
    .await;

    let sent = json!({"name": "x", "tags": [1, 2, 3], "nested": {"ok": true}});
    let resp = http::post_json(engine.http(), "/users", &sent).await;
    assert_eq!(resp.status, 202, "body: {}", resp.text());
    assert_eq!(
        resp.header("x-created-by"),
        Some("node"),
        "{:?}",
        resp.headers
    );
    assert!(
        resp.header("content-type")
            .is_some_and(|v| v.contains("application/json")),
        "JSON body without a content-type gets application/json: {:?}",
        resp.headers
    );
    let body = resp.json();
    assert_eq!(body["method"], "POST", "{body}");
    assert_eq!(body["body"], sent, "{body}");
}

#[tokio::test]
async fn unregistered_trigger_answers_404() {
    let engine = Engine::start().await;
    let mut node = node_route(&engine, "api::temp", "GET", "/temp", 200, json!({})).await;
    assert_eq!(http::get(engine.http(), "/temp").await.status, 200);

    node.ok("unregister_trigger", json!({"key": "api::temp"}))
        .await;
    // The driver's sync round trip ran after the unregister frame: no waiting needed.
    assert_not_found(&http::get(engine.http(), "/temp").await);
}

#[tokio::test]
async fn route_is_removed_when_its_worker_leaves() {
    let engine = Engine::start().await;
    let mut node = node_route(&engine, "api::leaving", "GET", "/leaving", 200, json!({})).await;
    assert_eq!(http::get(engine.http(), "/leaving").await.status, 200);
    node.kill().await;
    // Cleanup follows the socket close; poll with a deadline.
    let addr = engine.http();
    let resp = eventually(
        Duration::from_secs(10),
        "route removed after disconnect",
        || async move {
            let r = http::get(addr, "/leaving").await;
            (r.status == 404).then_some(r)
        },
    )
    .await;
    assert_not_found(&resp);
}

#[tokio::test]
async fn http_helper_streams_status_headers_and_body() {
    let engine = Engine::start().await;
    let mut node = Driver::node(&engine, "node-http").await;
    node.ok(
        "register",
        json!({"functions": [{"id": "api::stream", "kind": "http_stream", "status": 203,
                               "headers": {"content-type": "text/plain", "x-streamed": "yes"}}]}),
    )
    .await;
    node.ok(
        "register_trigger",
        json!({"key": "s", "type": "http", "function_id": "api::stream",
               "config": {"api_path": "/stream", "http_method": "GET"}}),
    )
    .await;
    let resp = http::get(engine.http(), "/stream").await;
    assert_eq!(resp.status, 203, "body: {}", resp.text());
    assert_eq!(resp.header("x-streamed"), Some("yes"), "{:?}", resp.headers);
    assert_eq!(resp.text(), "hello world");
}

#[tokio::test]
async fn request_slower_than_default_timeout_answers_504() {
    let engine = Engine::start_with_fixture("engine-short-timeout.yaml").await;
    let mut node = Driver::node(&engine, "node-http").await;
    node.register(&[("api::slow", "slow")]).await;
    node.ok(
        "register_trigger",
        json!({"key": "slow", "type": "http", "function_id": "api::slow",
               "config": {"api_path": "/slow", "http_method": "GET"}}),
    )
    .await;
    let resp = http::get(engine.http(), "/slow").await;
    assert_eq!(resp.status, 504, "body: {}", resp.text());
}

/// A raw worker owning `raw::h`, bound to `GET /map`.
async fn raw_route(engine: &Engine) -> RawWorker {
    let mut w = RawWorker::connect(engine).await;
    w.register_function("raw::h").await;
    w.send(
        json!({"type": "registertrigger", "id": uuid::Uuid::new_v4().to_string(),
                  "trigger_type": "http", "function_id": "raw::h",
                  "config": {"api_path": "/map", "http_method": "GET"}}),
    )
    .await;
    w.sync().await;
    w
}

/// `GET /map`, answered by the raw worker with `result`.
async fn get_answered_with(engine: &Engine, w: &mut RawWorker, result: Value) -> Response {
    let addr = engine.http();
    let serve = async {
        let invoke = w.next_invoke().await;
        assert!(
            invoke["data"].get("_caller_worker_id").is_none(),
            "HTTP calls are engine-started: no _caller_worker_id: {invoke}"
        );
        w.answer(&invoke, result).await;
    };
    let (resp, ()) = tokio::join!(http::get(addr, "/map"), serve);
    resp
}

#[tokio::test]
async fn response_mapping_follows_the_spec() {
    let engine = Engine::start().await;
    let mut w = raw_route(&engine).await;

    // Header list form, explicit content-type: a string body is sent raw.
    let resp = get_answered_with(
        &engine,
        &mut w,
        json!({"status_code": 418, "headers": ["Content-Type: text/plain", "X-One: 1"],
               "body": "just text"}),
    )
    .await;
    assert_eq!(resp.status, 418);
    assert_eq!(resp.header("x-one"), Some("1"), "{:?}", resp.headers);
    assert!(
        resp.header("content-type")
            .is_some_and(|v| v.starts_with("text/plain"))
    );
    assert_eq!(resp.text(), "just text");

    // No status code: 200; no content-type: JSON.
    let resp = get_answered_with(&engine, &mut w, json!({"body": {"a": [1, 2]}})).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({"a": [1, 2]}));

    // A result that is not an object: 200 {}.
    let resp = get_answered_with(&engine, &mut w, json!("not an object")).await;
    assert_eq!(resp.status, 200);
    assert_eq!(resp.json(), json!({}));
}

#[tokio::test]
async fn configured_cors_allows_only_the_listed_origins() {
    let engine = Engine::start_with_fixture("engine-cors.yaml").await;
    let mut w = raw_route(&engine).await;
    let addr = engine.http();
    let allowed = preflight(addr, "https://app.example.com").await;
    assert_eq!(
        allowed.header("access-control-allow-origin"),
        Some("https://app.example.com"),
        "{allowed:?}"
    );
    let denied = preflight(addr, "https://evil.example.net").await;
    let acao = denied.header("access-control-allow-origin");
    assert!(
        acao.is_none_or(|v| v != "*" && v != "https://evil.example.net"),
        "a foreign origin is not allowed: {denied:?}"
    );
    // A normal request still works.
    let resp = get_answered_with(&engine, &mut w, json!({"body": {"ok": true}})).await;
    assert_eq!(resp.status, 200);
}

async fn preflight(addr: std::net::SocketAddr, origin: &str) -> Response {
    http::request(
        addr,
        "OPTIONS",
        "/map",
        &[("origin", origin), ("access-control-request-method", "GET")],
        None,
    )
    .await
}

/// A Node worker whose `gate` handler serves `GET /gate`.
async fn gate_route(engine: &Engine) -> Driver {
    let mut node = Driver::node(engine, "node-gate").await;
    node.register(&[("api::gate", "gate")]).await;
    node.ok(
        "register_trigger",
        json!({"key": "gate", "type": "http", "function_id": "api::gate",
               "config": {"api_path": "/gate", "http_method": "GET"}}),
    )
    .await;
    node
}

#[tokio::test]
async fn requests_over_the_concurrency_limit_wait_for_a_slot_and_all_succeed() {
    let engine = Engine::start_with_fixture("engine-limit-2.yaml").await;
    let mut node = gate_route(&engine).await;
    let addr = engine.http();
    let requests = join_all((0..3).map(|_| http::get(addr, "/gate")));
    let control = async {
        // Two handlers run and hold both slots; the third request waits.
        node.event_within("invoked", STEP).await;
        node.event_within("invoked", STEP).await;
        let stats = node.ok("gate_stats", json!({})).await;
        assert_eq!(stats["entered"], 2, "limit 2: {stats}");

        // One handler finishes: the waiting request takes its slot.
        let released = node.ok("release", json!({"count": 1})).await;
        assert_eq!(released["released"], 1, "{released}");
        let third = node.event_within("invoked", STEP).await;
        assert!(third["active"].as_u64() <= Some(2), "{third}");
        node.ok("release", json!({})).await;
    };
    let (responses, ()) = tokio::join!(requests, control);
    for resp in responses {
        assert_eq!(resp.status, 200, "body: {}", resp.text());
        assert_eq!(resp.json(), json!({"released": true}));
    }
    let stats = node.ok("gate_stats", json!({})).await;
    assert_eq!(stats["entered"], 3, "{stats}");
    assert_eq!(stats["max"], 2, "never more than 2 at once: {stats}");
}

#[tokio::test]
async fn request_waiting_for_a_slot_is_answered_at_its_own_deadline() {
    // default_timeout 1000 ms, limit 2, handlers that never finish.
    let engine = Engine::start_with_fixture("engine-limit-2-short-timeout.yaml").await;
    let mut node = gate_route(&engine).await;
    let addr = engine.http();
    let holders = join_all((0..2).map(|_| http::get(addr, "/gate")));
    let extra = async {
        node.event_within("invoked", STEP).await;
        node.event_within("invoked", STEP).await;
        let started = tokio::time::Instant::now();
        let resp = http::get(addr, "/gate").await;
        (resp, started.elapsed())
    };
    let (holders, (extra, waited)) = tokio::join!(holders, extra);
    for resp in holders {
        assert_eq!(resp.status, 504, "body: {}", resp.text());
    }
    // The engine waits for a slot within the request's default_timeout, then answers 503
    // OVERLOADED. Here the holders time out first (they started earlier), so the slot frees
    // up and the extra request runs out of time in the handler instead: 504. Either way it is
    // answered at its own deadline, not before and not much after.
    match extra.status {
        503 => assert_eq!(
            extra.json()["error"]["code"],
            "OVERLOADED",
            "{}",
            extra.text()
        ),
        // The slot a holder freed went to the extra request, which then ran out of time:
        // in its handler, or (the slot freed just before its own deadline) before the
        // invocation went out. Either way it is the engine's bodiless timeout answer.
        504 => assert!(extra.body.is_empty(), "{}", extra.text()),
        other => panic!("extra request answered {other}: {}", extra.text()),
    }
    assert!(
        waited >= Duration::from_millis(900),
        "answered after {waited:?}, before its 1 s deadline (status {})",
        extra.status
    );
    assert!(
        waited < Duration::from_secs(5),
        "answered after {waited:?}, long past its 1 s deadline"
    );
}

/// A Node worker whose `http_body` handler serves `POST /upload`.
async fn upload_route(engine: &Engine) -> Driver {
    let mut node = Driver::node(engine, "node-upload").await;
    node.register(&[("api::upload", "http_body")]).await;
    node.ok(
        "register_trigger",
        json!({"key": "upload", "type": "http", "function_id": "api::upload",
               "config": {"api_path": "/upload", "http_method": "POST"}}),
    )
    .await;
    node
}

async fn upload(engine: &Engine, content_type: &str, body: &str) -> Value {
    let resp = http::request(
        engine.http(),
        "POST",
        "/upload",
        &[("content-type", content_type)],
        Some(body.as_bytes()),
    )
    .await;
    assert_eq!(resp.status, 200, "body: {}", resp.text());
    resp.json()
}

#[tokio::test]
async fn non_json_body_reaches_the_handler_through_request_body_intact() {
    let engine = Engine::start().await;
    let _node = upload_route(&engine).await;

    let small = pattern(100);
    let seen = upload(&engine, "text/plain", &small).await;
    assert_eq!(
        seen["body"],
        Value::Null,
        "no JSON content-type: body null: {seen}"
    );
    assert_eq!(seen["len"], 100, "{seen}");
    assert_eq!(seen["intact"], true, "{seen}");

    // 1 MiB: sixteen 64 KiB frames on the request_body channel.
    let big = pattern(1 << 20);
    let seen = upload(&engine, "application/octet-stream", &big).await;
    assert_eq!(seen["body"], Value::Null, "{seen}");
    assert_eq!(seen["len"], 1 << 20, "{seen}");
    assert_eq!(seen["intact"], true, "content and order kept: {seen}");
    assert_eq!(seen["head"], "00000000|00000001|", "{seen}");
    assert_eq!(seen["tail"], json!(big.get(big.len() - 18..)), "{seen}");
}

#[tokio::test]
async fn handler_failure_answers_500_with_message_and_a_32_hex_error_id() {
    let engine = Engine::start().await;
    let mut node = Driver::node(&engine, "node-http").await;
    node.register(&[("api::boom", "boom")]).await;
    node.ok(
        "register_trigger",
        json!({"key": "b", "type": "http", "function_id": "api::boom",
               "config": {"api_path": "/boom", "http_method": "POST"}}),
    )
    .await;
    let resp = http::post_json(engine.http(), "/boom", &json!({"x": 1})).await;
    assert_eq!(resp.status, 500, "body: {}", resp.text());
    let error = &resp.json()["error"];
    assert_eq!(error["code"], "invocation_failed", "{error}");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("kaboom")),
        "{error}"
    );
    let error_id = error["error_id"].as_str().unwrap_or_default();
    assert!(
        error_id.len() == 32
            && error_id
                .chars()
                .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "error_id is 32 lowercase hex digits: {error}"
    );
}

/// `GET /guarded` served by a raw worker that answers each engine call in turn with the next
/// of `answers` (middleware, condition, handler…); returns the response and the functions
/// the engine called, in order.
async fn guarded_get(
    engine: &Engine,
    w: &mut RawWorker,
    answers: Vec<Value>,
) -> (Response, Vec<String>) {
    let addr = engine.http();
    let serve = async {
        let mut called = Vec::new();
        for answer in answers {
            let invoke = w.next_invoke().await;
            called.push(invoke["function_id"].as_str().unwrap().to_owned());
            if invoke["function_id"] == "raw::mw" {
                assert_eq!(invoke["data"]["phase"], "preHandler", "{invoke}");
                assert_eq!(invoke["data"]["request"]["method"], "GET", "{invoke}");
                assert_eq!(
                    invoke["data"]["request"]["query_params"]["k"], "v",
                    "{invoke}"
                );
            }
            w.answer(&invoke, answer).await;
        }
        called
    };
    tokio::join!(http::get(addr, "/guarded?k=v"), serve)
}

async fn guarded_route(engine: &Engine) -> RawWorker {
    let mut w = RawWorker::connect(engine).await;
    for id in ["raw::h", "raw::mw", "raw::cond", "raw::global"] {
        w.register_function(id).await;
    }
    w.send(
        json!({"type": "registertrigger", "id": uuid::Uuid::new_v4().to_string(),
                  "trigger_type": "http", "function_id": "raw::h",
                  "config": {"api_path": "/guarded", "http_method": "GET",
                             "middleware_function_ids": ["raw::mw"],
                             "condition_function_id": "raw::cond"}}),
    )
    .await;
    w.sync().await;
    w
}

#[tokio::test]
async fn route_middleware_and_condition_run_before_the_handler() {
    let engine = Engine::start().await;
    let mut w = guarded_route(&engine).await;

    let ok = json!({"status_code": 200, "body": {"ok": true}});
    let (resp, called) = guarded_get(
        &engine,
        &mut w,
        vec![json!({"action": "continue"}), json!(true), ok],
    )
    .await;
    assert_eq!(called, ["raw::mw", "raw::cond", "raw::h"]);
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["ok"], true);

    // A condition returning a literal false skips the handler.
    let (resp, called) = guarded_get(
        &engine,
        &mut w,
        vec![json!({"action": "continue"}), json!(false)],
    )
    .await;
    assert_eq!(called, ["raw::mw", "raw::cond"]);
    assert_eq!(resp.status, 422, "{}", resp.text());
    assert_eq!(resp.json()["error"]["code"], "CONDITION_NOT_MET");
    assert_eq!(resp.json()["skipped"], true);

    // Middleware may answer itself: neither the condition nor the handler runs.
    let deny =
        json!({"action": "respond", "response": {"status_code": 401, "body": {"error": "no"}}});
    let (resp, called) = guarded_get(&engine, &mut w, vec![deny]).await;
    assert_eq!(called, ["raw::mw"]);
    assert_eq!(resp.status, 401, "{}", resp.text());
    assert_eq!(resp.json()["error"], "no");
}

#[tokio::test]
async fn global_middleware_runs_first_in_priority_order() {
    let engine = Engine::start_with_config(
        "workers:\n  - name: iii-worker-manager\n    config: { port: 0 }\n  - name: iii-http\n    config:\n      port: 0\n      middleware:\n        - { function_id: raw::mw, priority: 5 }\n        - { function_id: raw::global, phase: preHandler, priority: 1 }\n",
    )
    .await;
    let mut w = guarded_route(&engine).await;
    let go = json!({"action": "continue"});
    let answers = vec![
        go.clone(),
        go.clone(),
        go,
        json!(null),
        json!({"body": {"done": 1}}),
    ];
    let (resp, called) = guarded_get(&engine, &mut w, answers).await;
    assert_eq!(
        called,
        ["raw::global", "raw::mw", "raw::mw", "raw::cond", "raw::h"]
    );
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(resp.json()["done"], 1);
}
