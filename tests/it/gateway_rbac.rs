//! The gateway's RBAC listener in front of a real engine: authentication, per-frame gating,
//! middleware, hooks, prefixes, discovery filtering, channels, sizes, limits and failures,
//! driven by raw sockets (exact frames) and the official SDKs.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::ws::{Incoming, connect, next_within};
use crate::support::{Driver, Engine, Gateway, RawWorker, STEP, eventually, is_uuid, within};

/// AuthResults the test auth function hands out, by bearer token.
fn auth_table() -> Value {
    json!({
        "user": { "context": { "user": "u1" } },
        "tenant": { "function_registration_prefix": "t1", "context": { "tenant": "t1" } },
        "limited": { "forbidden_functions": ["api::echo"], "context": {} },
        "granted": { "allowed_functions": ["secret::run"] },
    })
}

/// An engine with a trusted Node worker serving the auth function, an echo and a hidden
/// function.
async fn backend() -> (Engine, Driver) {
    let engine = Engine::start().await;
    let mut trusted = Driver::node(&engine, "trusted").await;
    trusted
        .ok(
            "register",
            json!({"functions": [
                {"id": "test::auth", "kind": "auth_table", "table": auth_table()},
                {"id": "test::mw", "kind": "middleware_wrap"},
                {"id": "api::echo", "kind": "echo"},
                {"id": "secret::run", "kind": "echo"},
                {"id": "api::read", "kind": "channel_read"},
            ]}),
        )
        .await;
    (engine, trusted)
}

const LISTENER: &str = r#"
listeners:
  - name: pub
    port: 0
    rbac:
      auth_function_id: test::auth
      expose_functions: [ 'match("api::*")', 'match("engine::functions::list")' ]
"#;

/// Reads until a Close frame (its code) or the end of the stream (`None`), within [`STEP`].
async fn close_code(ws: &mut crate::support::ws::Socket) -> Option<u16> {
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_within(ws, left).await {
            Some(Incoming::Close(close)) => return close.map(|c| u16::from(c.code)),
            Some(Incoming::Gone(_)) => return None,
            None => panic!("no close within {STEP:?}"),
            Some(_) => {}
        }
    }
}

async fn client(gateway: &Gateway, token: &str) -> RawWorker {
    RawWorker::connect_url_with_token(&format!("{}/", gateway.ws_url("listener:pub")), Some(token))
        .await
}

#[tokio::test]
async fn a_connection_without_credentials_gets_auth_error_then_close_1008() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let mut ws = connect(&format!("{}/", gateway.ws_url("listener:pub"))).await;
    let first = next_within(&mut ws, STEP).await;
    let Some(Incoming::Json(frame)) = first else {
        panic!("expected the AUTH_ERROR frame, got {first:?}");
    };
    assert_eq!(
        frame,
        json!({"type": "error", "error": {"code": "AUTH_ERROR", "message": "invalid token"}})
    );
    match next_within(&mut ws, STEP).await {
        Some(Incoming::Close(Some(close))) => assert_eq!(u16::from(close.code), 1008, "{close:?}"),
        other => panic!("expected Close 1008, got {other:?}"),
    }
}

#[tokio::test]
async fn exposed_calls_pass_and_hidden_or_forbidden_ones_get_iii_deny_frames() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let mut user = client(&gateway, "user").await;
    assert!(is_uuid(&user.worker_id), "{}", user.registered);

    let echoed = user.call_ok("api::echo", json!({"x": 1})).await;
    assert_eq!(echoed["x"], 1, "{echoed}");

    let id = user.invoke("secret::run", json!({})).await;
    let denied = user.result_of(&id).await;
    assert_eq!(
        denied,
        json!({"type": "invocationresult", "invocation_id": id, "function_id": "secret::run",
               "error": {"code": "FORBIDDEN", "message": "function 'secret::run' not allowed (add to rbac.expose_functions)"}})
    );
    // A void call to a hidden function is answered too, under a made-up id.
    user.send(json!({"type": "invokefunction", "function_id": "secret::run", "data": {}, "action": {"type": "void"}})).await;
    let void = user
        .recv_matching("void deny", |v| v["function_id"] == "secret::run")
        .await;
    assert!(
        is_uuid(void["invocation_id"].as_str().unwrap_or_default()),
        "{void}"
    );
    assert_eq!(void["error"]["code"], "FORBIDDEN");

    // Per-session lists from the auth result.
    let mut limited = client(&gateway, "limited").await;
    let frame = limited.call("api::echo", json!({})).await;
    assert_eq!(
        frame["error"]["message"],
        "function 'api::echo' not allowed (remove from rbac.forbidden_functions)",
        "{frame}"
    );
    let mut granted = client(&gateway, "granted").await;
    assert_eq!(
        granted.call_ok("secret::run", json!({"y": 2})).await["y"],
        2
    );
}

#[tokio::test]
async fn middleware_wraps_exposed_calls_and_gets_the_session_context() {
    let (engine, mut trusted) = backend().await;
    let config = format!("{LISTENER}    middleware_function_id: test::mw\n");
    let gateway = Gateway::start(&engine, &config).await;
    let mut user = client(&gateway, "user").await;
    let result = user.call_ok("api::echo", json!({"n": 7})).await;
    assert_eq!(result["via"], "middleware", "{result}");
    assert_eq!(result["context"], json!({"user": "u1"}), "{result}");
    assert_eq!(result["result"]["n"], 7, "{result}");
    let seen = trusted.event_within("middleware", STEP).await;
    assert_eq!(seen["input"]["function_id"], "api::echo", "{seen}");
    // Discovery and infrastructure calls bypass the middleware.
    let list = user.call_ok("engine::functions::list", json!({})).await;
    assert!(list.get("via").is_none(), "{list}");
}

#[tokio::test]
async fn discovery_lists_only_what_the_session_may_call() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let mut user = client(&gateway, "user").await;
    let list = user.call_ok("engine::functions::list", json!({})).await;
    let ids: Vec<&str> = list["functions"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|f| f["function_id"].as_str())
        .collect();
    assert!(ids.contains(&"api::echo"), "{ids:?}");
    for hidden in ["secret::run", "test::auth", "test::mw"] {
        assert!(!ids.contains(&hidden), "{hidden} leaked: {ids:?}");
    }
    // Not exposed: the other discovery functions.
    let frame = user.call("engine::workers::list", json!({})).await;
    assert_eq!(frame["error"]["code"], "FORBIDDEN", "{frame}");
}

#[tokio::test]
async fn prefixed_registrations_carry_hook_metadata_and_self_invoke_works() {
    let (engine, mut trusted) = backend().await;
    trusted
        .ok("register", json!({"functions": [{"id": "test::on-fn", "kind": "hook", "value": {"metadata": {"tagged": true}}}]}))
        .await;
    let config = format!("{LISTENER}      on_function_registration_function_id: test::on-fn\n");
    let gateway = Gateway::start(&engine, &config).await;
    let mut tenant = client(&gateway, "tenant").await;
    tenant.register_function("mine").await;
    let hook = trusted.event_within("hook", STEP).await;
    assert_eq!(
        hook["input"]["function_id"], "mine",
        "the hook sees the bare id: {hook}"
    );
    assert_eq!(hook["input"]["context"], json!({"tenant": "t1"}), "{hook}");

    // The engine has it under the prefix, with the hook's metadata.
    let mut admin = RawWorker::connect(&engine).await;
    let deadline = tokio::time::Instant::now() + STEP;
    let info = loop {
        let frame = admin
            .call(
                "engine::functions::info",
                json!({"function_id": "t1::mine"}),
            )
            .await;
        if let Some(info) = frame.get("result").filter(|r| !r.is_null()) {
            break info.clone();
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "t1::mine never registered: {frame}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(info["metadata"], json!({"tagged": true}), "{info}");

    // A self-invoke by the bare id reaches the session's own handler, prefix stripped.
    let id = tenant.invoke("mine", json!({"q": 1})).await;
    let call = tenant.next_invoke().await;
    assert_eq!(call["function_id"], "mine", "{call}");
    tenant.answer(&call, json!({"answer": 42})).await;
    let result = tenant.result_of(&id).await;
    assert_eq!(result["result"], json!({"answer": 42}), "{result}");
}

#[tokio::test]
async fn a_trigger_bound_to_a_hidden_function_is_refused() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let mut user = client(&gateway, "user").await;
    user.send(json!({"type": "registertrigger", "id": "b1", "trigger_type": "http",
                     "function_id": "secret::run", "config": {"api_path": "/x", "http_method": "GET"}}))
        .await;
    let refused = user
        .recv_matching("refusal", |v| v["type"] == "triggerregistrationresult")
        .await;
    assert_eq!(refused["id"], "b1");
    assert_eq!(refused["error"]["code"], "REGISTRATION_DENIED", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .contains("add to rbac.expose_functions"),
        "{refused}"
    );
}

#[tokio::test]
async fn an_oversized_invoke_is_refused_while_the_session_and_others_go_on() {
    let (engine, _trusted) = backend().await;
    let config = format!("{LISTENER}    limits: {{ max_message_bytes: 1048576 }}\n");
    let gateway = Gateway::start(&engine, &config).await;
    let mut big = client(&gateway, "user").await;
    let mut other = client(&gateway, "user").await;
    let id = big
        .invoke("api::echo", json!({"blob": "x".repeat(1_500_000)}))
        .await;
    let refused = big.result_of(&id).await;
    assert_eq!(
        refused["error"]["code"], "payload_too_large",
        "{}",
        refused["error"]
    );
    assert_eq!(
        big.call_ok("api::echo", json!({"after": true})).await["after"],
        true
    );
    assert_eq!(
        other.call_ok("api::echo", json!({"other": true})).await["other"],
        true
    );
    // Anything else that large closes the session with 1009.
    big.send_text(
        &json!({"type": "registerfunction", "id": "x", "description": "y".repeat(1_500_000)})
            .to_string(),
    )
    .await;
    assert_eq!(close_code(&mut big.ws).await, Some(1009));
    assert_eq!(
        other.call_ok("api::echo", json!({"still": 1})).await["still"],
        1
    );
}

#[tokio::test]
async fn the_auth_worker_gone_means_fail_closed() {
    let (engine, mut trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let mut user = client(&gateway, "user").await;
    assert_eq!(user.call_ok("api::echo", json!({"a": 1})).await["a"], 1);
    trusted.kill().await;
    let mut ws = connect(&format!("{}/", gateway.ws_url("listener:pub"))).await;
    match next_within(&mut ws, STEP).await {
        Some(Incoming::Json(frame)) => {
            assert_eq!(frame["type"], "error", "{frame}");
            assert_eq!(frame["error"]["code"], "AUTH_ERROR", "{frame}");
        }
        other => panic!("expected AUTH_ERROR, got {other:?}"),
    }
}

#[tokio::test]
async fn an_engine_that_is_down_gets_503_before_the_upgrade() {
    let (engine, _trusted) = backend().await;
    let url = engine.ws_url();
    drop(engine);
    let config = format!("engine:\n  url: {url}\n{LISTENER}");
    let gateway = Gateway::start_with_config(&config).await;
    let error = within(
        STEP,
        "refused upgrade",
        Box::pin(tokio_tungstenite::connect_async(format!(
            "{}/",
            gateway.ws_url("listener:pub")
        ))),
    )
    .await
    .expect_err("the upgrade must be refused");
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => {
            assert_eq!(response.status(), 503);
            assert!(
                response.headers().contains_key("retry-after"),
                "{response:?}"
            );
        }
        other => panic!("expected HTTP 503, got {other}"),
    }
}

#[tokio::test]
async fn the_invocation_rate_limit_answers_rate_limited() {
    let (engine, _trusted) = backend().await;
    let config = format!("{LISTENER}    limits: {{ invocations_per_second: 1, burst: 1 }}\n");
    let gateway = Gateway::start(&engine, &config).await;
    let mut user = client(&gateway, "user").await;
    let first = user.call("api::echo", json!({})).await;
    assert!(first.get("error").is_none(), "{first}");
    let second = user.call("api::echo", json!({})).await;
    assert_eq!(
        second["error"],
        json!({"code": "RATE_LIMITED", "message": "rate limit exceeded (limits.invocations_per_second)"})
    );
}

#[tokio::test]
async fn node_and_python_sdks_work_through_the_gateway() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let url = gateway.ws_url("listener:pub");
    let mut node = Driver::node_at(
        &url,
        "node-via-gateway",
        &json!({"authorization": "Bearer user"}),
    )
    .await;
    let reply = node.trigger("api::echo", json!({"from": "node"})).await;
    assert_eq!(reply["result"]["from"], "node", "{reply}");
    let reply = node.trigger("secret::run", json!({})).await;
    assert_eq!(reply["error"]["code"], "FORBIDDEN", "{reply}");
    // The SDK's own functions are callable by itself (own-id exemption).
    node.register(&[("mine::echo", "echo")]).await;
    let reply = node.trigger("mine::echo", json!({"own": true})).await;
    assert_eq!(reply["result"]["own"], true, "{reply}");

    let mut python = Driver::python_at(&url, "py-via-gateway", Some("user")).await;
    let reply = python.trigger("api::echo", json!({"from": "python"})).await;
    assert_eq!(reply["result"]["from"], "python", "{reply}");
}

#[tokio::test]
async fn a_channel_round_trip_goes_through_the_listener() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let url = gateway.ws_url("listener:pub");
    let mut node = Driver::node_at(
        &url,
        "node-channel",
        &json!({"authorization": "Bearer user"}),
    )
    .await;
    let reply = node
        .request(
            "channel_send",
            json!({"function_id": "api::read", "messages": ["hello"], "data": "payload bytes"}),
        )
        .await;
    assert_eq!(reply["ok"], true, "{reply}");
    assert_eq!(
        reply["result"]["answer"]["text"], "payload bytes",
        "{reply}"
    );
    // A channel that does not exist is a 404 before the upgrade.
    let error = within(
        STEP,
        "refused channel",
        Box::pin(tokio_tungstenite::connect_async(format!(
            "{url}/ws/channels/nope?key=x&dir=read"
        ))),
    )
    .await
    .expect_err("unknown channel");
    match error {
        tokio_tungstenite::tungstenite::Error::Http(response) => assert_eq!(response.status(), 404),
        other => panic!("expected 404, got {other}"),
    }
}

#[tokio::test]
async fn sessions_are_closed_with_1011_when_the_engine_goes_and_recover_after_restart() {
    let (engine, trusted) = backend().await;
    let port = engine.worker_addr.port();
    let gateway = Gateway::start(&engine, LISTENER).await;
    let mut user = client(&gateway, "user").await;
    drop(trusted);
    drop(engine);
    assert_eq!(close_code(&mut user.ws).await, Some(1011));
    // The same engine address comes back: the control connection reconnects by itself.
    let engine = Engine::start_with_config(&format!(
        "workers:\n  - name: iii-worker-manager\n    config: {{ host: 127.0.0.1, port: {port} }}\n"
    ))
    .await;
    let mut trusted = Driver::node(&engine, "trusted-again").await;
    trusted
        .ok(
            "register",
            json!({"functions": [
            {"id": "test::auth", "kind": "auth_table", "table": auth_table()},
            {"id": "api::echo", "kind": "echo"}]}),
        )
        .await;
    let recovered = eventually(
        Duration::from_secs(20),
        "a session after the restart",
        || {
            let url = format!("{}/", gateway.ws_url("listener:pub"));
            async move {
                let (mut ws, _) = tokio_tungstenite::connect_async_with_config(
                    tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
                        url.as_str(),
                    )
                    .map(|mut r| {
                        r.headers_mut()
                            .insert("authorization", "Bearer user".parse().unwrap());
                        r
                    })
                    .ok()?,
                    None,
                    false,
                )
                .await
                .ok()?;
                match next_within(&mut ws, STEP).await {
                    Some(Incoming::Json(v)) if v["type"] == "workerregistered" => Some(v),
                    _ => None,
                }
            }
        },
    )
    .await;
    assert_eq!(recovered["type"], "workerregistered");
}

#[tokio::test]
async fn sigterm_closes_sessions_with_1001_and_the_gateway_exits_cleanly() {
    let (engine, _trusted) = backend().await;
    let mut gateway = Gateway::start(&engine, LISTENER).await;
    let mut user = client(&gateway, "user").await;
    assert_eq!(user.call_ok("api::echo", json!({"a": 1})).await["a"], 1);
    gateway.terminate();
    // New upgrades are refused at once (the listener stops accepting).
    let addr = gateway.addr("listener:pub");
    eventually(STEP, "the listener stops accepting", || async move {
        tokio::net::TcpStream::connect(addr)
            .await
            .is_err()
            .then_some(())
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let code = loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        match next_within(&mut user.ws, left).await {
            Some(Incoming::Close(close)) => break close.map(|c| u16::from(c.code)),
            Some(Incoming::Gone(why)) => panic!("closed without a close frame: {why}"),
            None => panic!("no close within 15 s"),
            Some(_) => {}
        }
    };
    assert_eq!(code, Some(1001));
    let status = gateway.exit_status(Duration::from_secs(10)).await;
    assert!(
        status.success(),
        "exit status {status}\n{}",
        gateway.output()
    );
}

#[tokio::test]
async fn the_status_function_reports_sessions_and_denials() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let mut user = client(&gateway, "user").await;
    let denied = user.call("secret::run", json!({})).await;
    assert_eq!(denied["error"]["code"], "FORBIDDEN");
    let mut admin = RawWorker::connect(&engine).await;
    let status = admin.call_ok("iii-gateway::status", json!({})).await;
    assert_eq!(status["service"], "iii-gateway", "{status}");
    assert_eq!(status["control_connected"], true, "{status}");
    assert_eq!(status["sessions"]["open"], 1, "{status}");
    assert!(
        status["denied"].as_u64().unwrap_or_default() >= 1,
        "{status}"
    );
    // The audit line names the denial, never the credential.
    let output = gateway.output();
    assert!(
        output.contains("function 'secret::run' not allowed"),
        "{output}"
    );
    assert!(
        !output.contains("Bearer user"),
        "a credential reached the log:\n{output}"
    );
}

#[tokio::test]
async fn a_slow_upgrade_request_is_cut_at_the_handshake_timeout() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let (engine, _trusted) = backend().await;
    let config = format!("{LISTENER}    handshake_timeout_ms: 300\n");
    let gateway = Gateway::start(&engine, &config).await;
    let mut stream = tokio::net::TcpStream::connect(gateway.addr("listener:pub"))
        .await
        .unwrap();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut buf = [0_u8; 256];
    let read = within(STEP, "the slow client is cut", stream.read(&mut buf)).await;
    // Either a 408 answer or a plain close, but never a wait past the deadline.
    match read {
        Ok(0) | Err(_) => {}
        Ok(n) => assert!(
            String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 408"),
            "{:?}",
            &buf[..n]
        ),
    }
}

#[tokio::test]
async fn otel_sockets_are_authenticated_and_drained() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let url = format!("{}/otel", gateway.ws_url("listener:pub"));
    let mut anonymous = connect(&url).await;
    match next_within(&mut anonymous, STEP).await {
        Some(Incoming::Json(frame)) => assert_eq!(frame["error"]["code"], "AUTH_ERROR", "{frame}"),
        other => panic!("expected AUTH_ERROR, got {other:?}"),
    }
    let mut ws = crate::support::ws::connect_with_token(&url, Some("user")).await;
    use futures_util::SinkExt as _;
    ws.send(tokio_tungstenite::tungstenite::Message::binary(
        b"OTLP{}".to_vec(),
    ))
    .await
    .unwrap();
    // Nothing comes back, and the socket stays open.
    assert!(
        next_within(&mut ws, Duration::from_millis(300))
            .await
            .is_none()
    );
}

async fn upgrade_status(url: &str) -> Option<u16> {
    match within(
        STEP,
        "upgrade",
        Box::pin(tokio_tungstenite::connect_async(url)),
    )
    .await
    {
        Ok(_) => None,
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Some(response.status().as_u16())
        }
        Err(other) => panic!("unexpected upgrade failure: {other}"),
    }
}

#[tokio::test]
async fn connection_caps_answer_429_per_address_and_503_overall_and_free_up_on_close() {
    let (engine, _trusted) = backend().await;
    let config = "listeners:\n  - { name: pub, port: 0, limits: { max_connections_per_ip: 1 } }\n  - { name: small, port: 0, limits: { max_connections: 1, max_connections_per_ip: 5 } }\n";
    let gateway = Gateway::start(&engine, config).await;
    let url = format!("{}/", gateway.ws_url("listener:pub"));
    let first = RawWorker::connect_url(&url).await;
    assert_eq!(upgrade_status(&url).await, Some(429));
    drop(first);
    eventually(STEP, "the permit is released on close", || {
        let url = url.clone();
        async move { upgrade_status(&url).await.is_none().then_some(()) }
    })
    .await;

    let small = format!("{}/", gateway.ws_url("listener:small"));
    let _only = RawWorker::connect_url(&small).await;
    assert_eq!(upgrade_status(&small).await, Some(503));
}

#[tokio::test]
async fn the_edge_hands_rbac_requests_to_the_listener_with_the_client_address() {
    let (engine, mut trusted) = backend().await;
    let config = format!(
        "{LISTENER}edge:\n  port: 0\n  routes: [{{ path_prefix: /rbac/, to: 'listener:pub' }}]\n"
    );
    let gateway = Gateway::start(&engine, &config).await;
    let base = format!("ws://{}/rbac", gateway.addr("edge"));

    // A client-sent X-Forwarded-For is not trusted: the auth function sees the real peer, and
    // never the edge's secret header.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
    let mut request = format!("{base}/").into_client_request().unwrap();
    request
        .headers_mut()
        .insert("authorization", "Bearer user".parse().unwrap());
    request
        .headers_mut()
        .insert("x-forwarded-for", "203.0.113.9".parse().unwrap());
    let (mut ws, _) = within(
        STEP,
        "upgrade through the edge",
        Box::pin(tokio_tungstenite::connect_async(request)),
    )
    .await
    .unwrap();
    match next_within(&mut ws, STEP).await {
        Some(Incoming::Json(frame)) => assert_eq!(frame["type"], "workerregistered", "{frame}"),
        other => panic!("expected workerregistered, got {other:?}"),
    }
    let auth = trusted.event_within("auth", STEP).await;
    assert_eq!(auth["input"]["ip_address"], "127.0.0.1", "{auth}");
    let headers = auth["input"]["headers"].as_object().unwrap();
    assert!(!headers.contains_key("x-iii-edge-secret"), "{auth}");

    // The SDK builds channel URLs from the URL it connected to: /rbac/ws/channels/… works.
    let mut node = Driver::node_at(
        &base,
        "node-via-edge",
        &json!({"authorization": "Bearer user"}),
    )
    .await;
    let reply = node
        .request(
            "channel_send",
            json!({"function_id": "api::read", "data": "through the edge"}),
        )
        .await;
    assert_eq!(
        reply["result"]["answer"]["text"], "through the edge",
        "{reply}"
    );
}

#[tokio::test]
async fn registrations_cannot_take_over_what_another_worker_serves() {
    let (engine, mut trusted) = backend().await;
    trusted
        .ok("register_trigger_type", json!({"trigger_type": "webhook"}))
        .await;
    trusted
        .ok(
            "register_trigger",
            json!({"key": "t", "type": "webhook", "function_id": "api::echo", "config": {}}),
        )
        .await;
    let mut admin = RawWorker::connect(&engine).await;
    let bindings = admin
        .call_ok("engine::registered-triggers::list", json!({}))
        .await;
    let victim = bindings["registered_triggers"]
        .as_array()
        .and_then(|rows| rows.iter().find(|r| r["function_id"] == "api::echo"))
        .map(|r| r["id"].clone())
        .unwrap_or_else(|| panic!("the trusted binding is listed: {bindings}"));
    // An open listener: every registration is permitted by the session's flags.
    trusted
        .ok(
            "register",
            json!({"functions": [{"id": "test::on-trig", "kind": "hook", "value": {}}]}),
        )
        .await;
    let config = "listeners:\n  - { name: open, port: 0, rbac: { expose_functions: ['match(\"*\")'], on_trigger_registration_function_id: test::on-trig } }\n";
    let gateway = Gateway::start(&engine, config).await;
    let mut attacker =
        RawWorker::connect_url(&format!("{}/", gateway.ws_url("listener:open"))).await;

    // A function another worker serves, and the gateway's own hook: both refused.
    attacker.register_function("secret::run").await;
    attacker.register_function("test::on-trig").await;
    attacker.sync().await;
    let mut caller = RawWorker::connect(&engine).await;
    let answer = caller
        .call_ok("secret::run", json!({"still": "trusted"}))
        .await;
    assert_eq!(answer["still"], "trusted", "{answer}");
    // A trigger type another worker provides.
    attacker
        .send(json!({"type": "registertriggertype", "id": "webhook", "description": "x"}))
        .await;
    let refused = attacker
        .recv_matching("type refusal", |v| v["type"] == "triggerregistrationresult")
        .await;
    assert_eq!(
        refused["error"]["message"], "trigger type already provided by another worker",
        "{refused}"
    );
    // A trigger id another connection registered.
    attacker
        .send(
            json!({"type": "registertrigger", "id": victim, "trigger_type": "webhook",
                     "function_id": "api::echo", "config": {}}),
        )
        .await;
    let refused = attacker
        .recv_matching("trigger refusal", |v| {
            v["type"] == "triggerregistrationresult"
        })
        .await;
    assert_eq!(
        refused["error"]["message"], "trigger id already in use by another worker",
        "{refused}"
    );
    let output = gateway.output();
    assert!(
        output.contains("function id already served by another worker"),
        "{output}"
    );
    assert!(
        output.contains("reserved for the gateway's auth, middleware or hooks"),
        "{output}"
    );
}

#[tokio::test]
async fn discovery_is_filtered_whatever_the_invocation_id_looks_like() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let mut user = client(&gateway, "user").await;
    let id = "6F9619FF-8B86-D011-B42D-00C04FC964FF";
    user.send(json!({"type": "invokefunction", "invocation_id": id,
                     "function_id": "engine::functions::list", "data": {"include_internal": true}}))
        .await;
    let reply = user
        .recv_matching("the list", |v| v["type"] == "invocationresult")
        .await;
    assert_eq!(
        reply["invocation_id"], id,
        "the client's id comes back: {reply}"
    );
    let listed = reply["result"]["functions"].to_string();
    assert!(
        listed.contains("api::echo") && !listed.contains("secret::run"),
        "{listed}"
    );
}

#[tokio::test]
async fn invokes_in_other_namespaces_and_unreadable_frames_never_reach_the_engine() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, LISTENER).await;
    let mut user = client(&gateway, "user").await;
    user.send(
        json!({"type": "invokefunction", "invocation_id": "0d39210b-e8f5-4cb7-8367-9eed202b3d64",
                     "function_id": "api::echo", "namespace": "internal", "data": {}}),
    )
    .await;
    let denied = user
        .recv_matching("namespace denial", |v| v["type"] == "invocationresult")
        .await;
    assert_eq!(denied["error"]["code"], "FORBIDDEN", "{denied}");
    // A frame whose function_id is given twice is dropped, not forwarded.
    user.send_text(r#"{"type":"invokefunction","invocation_id":"6a6a47a0-f2bc-469e-83f4-b57996fc23e6","function_id":"api::echo","function_id":"secret::run","data":{}}"#)
        .await;
    assert!(
        next_within(&mut user.ws, Duration::from_millis(500))
            .await
            .is_none()
    );
    assert_eq!(
        user.call_ok("api::echo", json!({"after": 1})).await["after"],
        1
    );
}

#[tokio::test]
async fn an_engine_behind_tls_is_reached_through_engine_ca_file() {
    let (engine, _trusted) = backend().await;
    let cert = crate::support::tls::TestCert::new();
    // A TLS front for the engine's trusted port: a second gateway's edge routing /ws/ to it.
    let front = Gateway::start(
        &engine,
        &format!(
            "tls:\n  certificates: [{{ cert_file: '{}', key_file: '{}' }}]\nedge:\n  port: 0\n  allow_trusted: true\n  routes: [{{ path_prefix: /ws/, to: engine }}]\n",
            cert.cert_path().display(),
            cert.key_path().display()
        ),
    )
    .await;
    let engine_url = format!("wss://localhost:{}/ws", front.addr("edge").port());
    let config = |ca: &str| format!("engine:\n  url: {engine_url}\n{ca}{LISTENER}");

    // Trusting the front's CA: authentication (the control connection) and the session's
    // upstream both go over wss.
    let gateway = Gateway::start_with_config(&config(&format!(
        "  ca_file: '{}'\n",
        cert.cert_path().display()
    )))
    .await;
    let mut user = client(&gateway, "user").await;
    assert_eq!(user.call_ok("api::echo", json!({"x": 7})).await["x"], 7);

    // Without it the engine's certificate is not trusted: the engine is unreachable, and an
    // upgrade gets 503 before it happens.
    let untrusting = Gateway::start_with_config(&config("")).await;
    assert_eq!(
        upgrade_status(&format!("{}/", untrusting.ws_url("listener:pub"))).await,
        Some(503)
    );
    assert!(
        untrusting.output().to_lowercase().contains("certificate"),
        "{}",
        untrusting.output()
    );

    // A CA file that is not there is a start-up error naming it.
    let missing = format!(
        "  ca_file: '{}'\n",
        cert.cert_path().with_file_name("gone.pem").display()
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("gateway.yaml");
    std::fs::write(&path, config(&missing)).unwrap();
    let output = tokio::time::timeout(
        STEP,
        tokio::process::Command::new(crate::support::gateway::gateway_bin())
            .args(["run", "--config", path.to_str().unwrap()])
            .output(),
    )
    .await
    .expect("the gateway exits")
    .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("engine.ca_file") && stderr.contains("gone.pem"),
        "{stderr}"
    );
}

#[tokio::test]
async fn the_edge_reaches_an_https_rest_api_through_engine_ca_file() {
    let (engine, mut trusted) = backend().await;
    trusted.serve_hello().await;
    let cert = crate::support::tls::TestCert::new();
    // The REST API behind TLS: a second gateway's edge in front of it.
    let front = Gateway::start_with_config(&format!(
        "engine:\n  url: {}\n  rest_url: http://{}\ntls:\n  certificates: [{{ cert_file: '{}', key_file: '{}' }}]\nedge:\n  port: 0\n  routes: [{{ path_prefix: /, to: rest }}]\n",
        engine.ws_url(),
        engine.http(),
        cert.cert_path().display(),
        cert.key_path().display()
    ))
    .await;
    let config = |ca: &str| {
        format!(
            "engine:\n  url: {}\n  rest_url: https://localhost:{}\n{ca}edge:\n  port: 0\n  routes: [{{ path_prefix: /api/, to: rest }}]\n",
            engine.ws_url(),
            front.addr("edge").port()
        )
    };
    let trusting = Gateway::start_with_config(&config(&format!(
        "  ca_file: '{}'\n",
        cert.cert_path().display()
    )))
    .await;
    let resp = crate::support::http::get(trusting.addr("edge"), "/api/hello/world").await;
    assert_eq!(resp.status, 200, "{}", resp.text());
    assert_eq!(
        resp.json()["path_params"]["name"],
        "world",
        "{}",
        resp.text()
    );

    // Without the CA the engine's certificate is refused: a gateway error, never the answer.
    let untrusting = Gateway::start_with_config(&config("")).await;
    let resp = crate::support::http::get(untrusting.addr("edge"), "/api/hello/world").await;
    assert_eq!(resp.status, 502, "{}", resp.text());
}
