//! The worker protocol at the frame level, with a raw WebSocket client.

use futures_util::SinkExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::Frame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::{Data, OpCode};

use crate::support::ws::{Incoming, connect, next_within};
use crate::support::{Engine, RawWorker, STEP, eventually, is_uuid, within};

#[tokio::test]
async fn workerregistered_arrives_first_with_a_uuid_worker_id() {
    let engine = Engine::start().await;
    let a = RawWorker::connect(&engine).await;
    let b = RawWorker::connect(&engine).await;
    assert_ne!(a.worker_id, b.worker_id, "each connection gets its own id");
    if let Some(token) = a.registered.get("reattach_token") {
        assert!(
            token.as_str().is_some_and(is_uuid),
            "reattach_token is a UUID: {}",
            a.registered
        );
    }
    // Section 8: no `features` unless implemented (Python 0.25 would switch on observe).
    assert!(
        a.registered.get("features").is_none(),
        "workerregistered carries no features: {}",
        a.registered
    );
}

#[tokio::test]
async fn invocation_is_routed_to_the_owner_with_the_same_invocation_id() {
    let engine = Engine::start().await;
    let mut owner = RawWorker::connect_named(&engine, "owner").await;
    owner.register_function("raw::double").await;
    owner.sync().await;
    let mut caller = RawWorker::connect_named(&engine, "caller").await;

    let id = caller.invoke("raw::double", json!({"n": 21})).await;
    let invoke = owner.next_invoke().await;
    assert_eq!(
        invoke["invocation_id"],
        json!(id),
        "same id end to end: {invoke}"
    );
    assert_eq!(invoke["function_id"], "raw::double");
    assert_eq!(invoke["data"]["n"], 21, "data forwarded: {invoke}");
    assert!(
        invoke.get("action").is_none(),
        "engine never forwards action: {invoke}"
    );
    owner.answer(&invoke, json!({"n": 42})).await;

    let result = caller.result_of(&id).await;
    assert_eq!(result["function_id"], "raw::double", "{result}");
    assert_eq!(result["result"], json!({"n": 42}), "{result}");
}

#[tokio::test]
async fn unknown_frame_types_and_fields_are_ignored() {
    let engine = Engine::start().await;
    let mut w = RawWorker::connect(&engine).await;
    w.send(json!({"type": "bogus", "x": 1})).await;
    w.send(json!({"type": "unregistertriggertype", "id": "whatever"}))
        .await;
    w.send_text("   ").await;
    w.send_text("not json at all").await;
    w.send(json!({"type": "registerfunction", "id": "raw::extra",
                  "surprise": {"nested": true}, "features": ["x"]}))
        .await;
    w.send(
        json!({"type": "registertrigger", "id": uuid::Uuid::new_v4().to_string(),
                  "trigger_type": "no-such-type", "function_id": "raw::extra",
                  "config": {}, "message_type": "registertrigger"}),
    )
    .await;

    // The connection is still there and the function with unknown fields is registered.
    w.sync().await;
    let mut caller = RawWorker::connect(&engine).await;
    let id = caller.invoke("raw::extra", json!({"k": "v"})).await;
    let invoke = w.next_invoke().await;
    assert_eq!(invoke["function_id"], "raw::extra");
    w.answer(&invoke, json!("fine")).await;
    assert_eq!(caller.result_of(&id).await["result"], "fine");
}

#[tokio::test]
async fn json_ping_gets_pong() {
    let engine = Engine::start().await;
    let mut w = RawWorker::connect(&engine).await;
    w.send(json!({"type": "ping"})).await;
    let pong = w.recv_matching("pong", |v| v["type"] == "pong").await;
    assert_eq!(pong, json!({"type": "pong"}));
}

#[tokio::test]
async fn fragmented_text_message_is_reassembled() {
    let engine = Engine::start().await;
    let mut owner = RawWorker::connect(&engine).await;
    owner.register_function("raw::frag").await;
    owner.sync().await;
    let mut caller = RawWorker::connect(&engine).await;

    let id = uuid::Uuid::new_v4().to_string();
    let frame = json!({"type": "invokefunction", "invocation_id": id,
                       "function_id": "raw::frag", "data": {"text": "x".repeat(3000)}})
    .to_string();
    let bytes = frame.into_bytes();
    let parts: Vec<&[u8]> = bytes.chunks(1000).collect();
    assert!(parts.len() >= 3);
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let last = i + 1 == parts.len();
        within(
            STEP,
            "send a fragment",
            caller
                .ws
                .send(Message::Frame(Frame::message(part.to_vec(), opcode, last))),
        )
        .await
        .expect("send fragment");
    }
    let invoke = owner.next_invoke().await;
    assert_eq!(invoke["invocation_id"], json!(id));
    assert_eq!(invoke["data"]["text"].as_str().map(str::len), Some(3000));
    owner.answer(&invoke, json!("joined")).await;
    assert_eq!(caller.result_of(&id).await["result"], "joined");
}

#[tokio::test]
async fn message_over_64_mib_is_refused_and_other_workers_are_unaffected() {
    let engine = Engine::start().await;
    let mut owner = RawWorker::connect(&engine).await;
    owner.register_function("raw::big").await;
    owner.sync().await;
    let mut bystander = RawWorker::connect(&engine).await;
    let mut sender = RawWorker::connect(&engine).await;

    // 65 MiB of JSON, sent as 1 MiB fragments as Python 0.25 does.
    let id = uuid::Uuid::new_v4().to_string();
    let frame = json!({"type": "invokefunction", "invocation_id": id,
                       "function_id": "raw::big", "data": {"blob": "x".repeat(65 << 20)}})
    .to_string()
    .into_bytes();
    let parts: Vec<&[u8]> = frame.chunks(1 << 20).collect();
    let mut send_error = None;
    for (i, part) in parts.iter().enumerate() {
        let opcode = if i == 0 {
            OpCode::Data(Data::Text)
        } else {
            OpCode::Data(Data::Continue)
        };
        let msg = Message::Frame(Frame::message(part.to_vec(), opcode, i + 1 == parts.len()));
        match within(STEP * 3, "send a 1 MiB fragment", sender.ws.send(msg)).await {
            Ok(()) => {}
            Err(e) => {
                // The engine may close as soon as the limit is crossed.
                send_error = Some(e.to_string());
                break;
            }
        }
    }

    // Either an invocationresult error payload_too_large, or Close 1009.
    let outcome = next_within(&mut sender.ws, STEP * 3).await;
    match &outcome {
        Some(Incoming::Json(v)) => {
            assert_eq!(v["type"], "invocationresult", "{v}");
            assert_eq!(v["invocation_id"], json!(id), "{v}");
            assert_eq!(v["error"]["code"], "payload_too_large", "{v}");
        }
        Some(Incoming::Close(Some(c))) => {
            assert_eq!(u16::from(c.code), 1009, "close code: {c:?}");
        }
        other => panic!(
            "expected payload_too_large or Close 1009, got {other:?} (send error: {send_error:?})"
        ),
    }

    // The owner never saw it, and everybody else still works.
    let id2 = bystander.invoke("raw::big", json!({"small": true})).await;
    let invoke = owner.next_invoke().await;
    assert_eq!(
        invoke["invocation_id"],
        json!(id2),
        "the oversized call never reached the owner"
    );
    owner.answer(&invoke, json!("ok")).await;
    assert_eq!(bystander.result_of(&id2).await["result"], "ok");
}

#[tokio::test]
async fn void_invoke_never_gets_a_reply() {
    let engine = Engine::start().await;
    let mut owner = RawWorker::connect(&engine).await;
    owner.register_function("raw::sink").await;
    owner.sync().await;
    let mut caller = RawWorker::connect(&engine).await;

    // A void call that even carries an id, then one without any id.
    let void_id = uuid::Uuid::new_v4().to_string();
    caller
        .send(json!({"type": "invokefunction", "invocation_id": void_id,
                     "function_id": "raw::sink", "data": {"n": 1}, "action": {"type": "void"}}))
        .await;
    caller
        .send(json!({"type": "invokefunction", "function_id": "raw::sink", "data": {"n": 2}}))
        .await;
    for n in [1, 2] {
        let invoke = owner.next_invoke().await;
        assert_eq!(invoke["data"]["n"], n, "{invoke}");
        // The engine gives the owner an id anyway (reference behaviour).
        assert!(
            invoke["invocation_id"].as_str().is_some_and(is_uuid),
            "engine to worker invokes always carry an id: {invoke}"
        );
        owner.answer(&invoke, json!({"answered": n})).await;
    }
    // Then an ordinary call: its result must be the next frame the caller sees.
    let id = caller.invoke("raw::sink", json!({"n": 3})).await;
    let invoke = owner.next_invoke().await;
    owner.answer(&invoke, json!({"answered": 3})).await;
    let next = caller.recv_within(STEP).await;
    assert_eq!(next["type"], "invocationresult", "{next}");
    assert_eq!(
        next["invocation_id"],
        json!(id),
        "no reply for void calls came first: {next}"
    );
}

#[tokio::test]
async fn unknown_function_gets_function_not_found() {
    let engine = Engine::start().await;
    let mut caller = RawWorker::connect(&engine).await;
    let result = caller.call("nobody::home", json!({})).await;
    assert_eq!(result["error"]["code"], "function_not_found", "{result}");
    assert!(result["error"]["message"].is_string(), "{result}");
}

#[tokio::test]
async fn functions_vanish_when_their_worker_disconnects_and_waiting_calls_stop() {
    let engine = Engine::start().await;
    let mut owner = RawWorker::connect(&engine).await;
    owner.register_function("raw::gone").await;
    owner.sync().await;
    let mut caller = RawWorker::connect(&engine).await;

    let id = caller.invoke("raw::gone", json!({})).await;
    let _invoke = owner.next_invoke().await;
    drop(owner);
    let result = caller.result_of(&id).await;
    assert_eq!(result["error"]["code"], "invocation_stopped", "{result}");

    let again = caller.call("raw::gone", json!({})).await;
    assert_eq!(again["error"]["code"], "function_not_found", "{again}");
}

#[tokio::test]
async fn otel_socket_accepts_binary_frames() {
    let engine = Engine::start().await;
    let mut otel = connect(&format!("{}/otel", engine.ws_url())).await;
    for prefix in [&b"OTLP"[..], b"MTRC", b"LOGS"] {
        let mut frame = prefix.to_vec();
        frame.extend_from_slice(br#"{"resourceSpans":[]}"#);
        within(STEP, "send telemetry", otel.send(Message::binary(frame)))
            .await
            .expect("send telemetry frame");
    }
    within(STEP, "send text", otel.send(Message::text("ignored")))
        .await
        .expect("send text frame");
    within(
        STEP,
        "send ping",
        otel.send(Message::Ping(b"still-there".to_vec().into())),
    )
    .await
    .expect("send ping");
    // Nothing comes back but the pong; the socket stays open.
    let deadline = tokio::time::Instant::now() + STEP;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        use futures_util::StreamExt;
        match tokio::time::timeout(left, otel.next()).await {
            Ok(Some(Ok(Message::Pong(p)))) => {
                assert_eq!(&p[..], b"still-there");
                break;
            }
            Ok(Some(Ok(Message::Ping(_)))) => {}
            other => panic!("expected a pong on /otel, got {other:?}"),
        }
    }
    // /otel is not a worker: it does not show up in engine::workers::list.
    let mut w = RawWorker::connect(&engine).await;
    let list = w.call_ok("engine::workers::list", json!({})).await;
    let count = list["workers"].as_array().map_or(0, Vec::len);
    assert_eq!(count, 1, "only the raw worker is listed: {list}");
}

#[tokio::test]
async fn many_raw_calls_in_flight_all_correlate() {
    let engine = Engine::start().await;
    let mut owner = RawWorker::connect(&engine).await;
    owner.register_function("raw::echo").await;
    owner.sync().await;
    let mut caller = RawWorker::connect(&engine).await;

    let mut ids = Vec::new();
    for i in 0..500 {
        ids.push(caller.invoke("raw::echo", json!({"i": i})).await);
    }
    // Answer in reverse order of arrival.
    let mut invokes: Vec<Value> = Vec::new();
    for _ in 0..500 {
        invokes.push(owner.next_invoke().await);
    }
    for invoke in invokes.iter().rev() {
        let data = invoke["data"].clone();
        owner.answer(invoke, json!({"i": data["i"]})).await;
    }
    for (i, id) in ids.iter().enumerate() {
        let result = caller.result_of(id).await;
        assert_eq!(result["result"]["i"], json!(i), "{result}");
    }
}

#[tokio::test]
async fn handler_errors_are_relayed_with_their_code() {
    let engine = Engine::start().await;
    let mut owner = RawWorker::connect(&engine).await;
    owner.register_function("raw::fails").await;
    owner.sync().await;
    let mut caller = RawWorker::connect(&engine).await;
    let id = caller.invoke("raw::fails", json!({})).await;
    let invoke = owner.next_invoke().await;
    owner
        .send(json!({"type": "invocationresult", "invocation_id": invoke["invocation_id"],
                     "function_id": "raw::fails",
                     "error": {"code": "invocation_failed", "message": "kaboom", "stacktrace": "at x"}}))
        .await;
    let result = caller.result_of(&id).await;
    assert_eq!(result["error"]["code"], "invocation_failed", "{result}");
    assert_eq!(result["error"]["message"], "kaboom", "{result}");
}

#[tokio::test]
async fn engine_outlives_a_client_that_vanishes_mid_frame() {
    let mut engine = Engine::start().await;
    {
        let mut w = RawWorker::connect(&engine).await;
        let opening = Frame::message(
            b"{\"type\":\"invokefu".to_vec(),
            OpCode::Data(Data::Text),
            false,
        );
        within(
            STEP,
            "send half a message",
            w.ws.send(Message::Frame(opening)),
        )
        .await
        .expect("send");
    }
    engine.assert_running();
    let mut w = RawWorker::connect(&engine).await;
    w.sync().await;
}

/// Reads `ws` until the engine closes it (Close frame or end of stream); JSON frames are
/// skipped. Returns what ended it.
async fn closed_by_engine(ws: &mut crate::support::ws::Socket) -> Incoming {
    loop {
        match next_within(ws, STEP).await {
            Some(Incoming::Json(_) | Incoming::Text(_) | Incoming::Binary(_)) => {}
            Some(end) => return end,
            None => panic!("connection still open {STEP:?} after the reattach"),
        }
    }
}

fn function_is_registered(frame: &Value) -> bool {
    frame.get("error").is_none_or(Value::is_null)
}

#[tokio::test]
async fn reattach_with_the_right_token_closes_the_previous_connection() {
    let engine = Engine::start().await;
    let mut a = RawWorker::connect(&engine).await;
    let token = a.registered["reattach_token"]
        .as_str()
        .filter(|t| is_uuid(t))
        .unwrap_or_else(|| {
            panic!(
                "workerregistered carries a UUID reattach_token: {}",
                a.registered
            )
        })
        .to_owned();
    a.register_function("raw::previous").await;
    a.sync().await;
    let mut b = RawWorker::connect(&engine).await;

    // A wrong token, or the right token for an unknown id, does nothing.
    b.send(
        json!({"type": "reattach", "previous_worker_id": a.worker_id,
                  "reattach_token": uuid::Uuid::new_v4().to_string()}),
    )
    .await;
    b.send(
        json!({"type": "reattach", "previous_worker_id": uuid::Uuid::new_v4().to_string(),
                  "reattach_token": token}),
    )
    .await;
    b.sync().await;
    a.sync().await;
    let info = b
        .call(
            "engine::functions::info",
            json!({"function_id": "raw::previous"}),
        )
        .await;
    assert!(function_is_registered(&info), "A kept its function: {info}");

    // The right pair retires A's connection.
    b.send(
        json!({"type": "reattach", "previous_worker_id": a.worker_id,
                  "reattach_token": token}),
    )
    .await;
    let end = closed_by_engine(&mut a.ws).await;
    assert!(
        matches!(end, Incoming::Close(_) | Incoming::Gone(_)),
        "A closed: {end:?}"
    );
    let a_id = a.worker_id.clone();
    // Cleanup runs before the engine sends the Close; poll anyway in case the socket just ended.
    let engine_ref = &engine;
    let gone = eventually(
        STEP,
        "A's functions removed after the reattach",
        || async move {
            let mut asker = RawWorker::connect(engine_ref).await;
            let info = asker
                .call(
                    "engine::functions::info",
                    json!({"function_id": "raw::previous"}),
                )
                .await;
            (!function_is_registered(&info)).then_some(info)
        },
    )
    .await;
    assert_eq!(gone["error"]["code"], "NOT_FOUND", "{gone}");
    let workers = b.call_ok("engine::workers::list", json!({})).await;
    assert!(
        !workers["workers"]
            .as_array()
            .is_some_and(|rows| rows.iter().any(|r| r["id"] == json!(a_id))),
        "A is no longer listed: {workers}"
    );
    // B itself is unaffected.
    b.sync().await;
}

#[tokio::test]
async fn enqueue_without_a_queue_worker_gets_enqueue_error() {
    let engine = Engine::start().await;
    let mut owner = RawWorker::connect(&engine).await;
    owner.register_function("raw::job").await;
    owner.sync().await;
    let mut caller = RawWorker::connect(&engine).await;

    let id = uuid::Uuid::new_v4().to_string();
    caller
        .send(
            json!({"type": "invokefunction", "invocation_id": id, "function_id": "raw::job",
                     "data": {"n": 1}, "action": {"type": "enqueue", "queue": "jobs"}}),
        )
        .await;
    let result = caller.result_of(&id).await;
    assert_eq!(result["error"]["code"], "enqueue_error", "{result}");
    assert!(result["error"]["message"].is_string(), "{result}");

    // The function was not called: the next invoke the owner sees is the next call.
    let id = caller.invoke("raw::job", json!({"n": 2})).await;
    let invoke = owner.next_invoke().await;
    assert_eq!(
        invoke["data"]["n"], 2,
        "enqueued call never reached the owner: {invoke}"
    );
    owner.answer(&invoke, json!("done")).await;
    assert_eq!(caller.result_of(&id).await["result"], "done");
}

#[tokio::test]
async fn unregisterfunction_removes_only_the_senders_own_function() {
    let engine = Engine::start().await;
    let mut a = RawWorker::connect(&engine).await;
    a.register_function("raw::of_a").await;
    a.sync().await;
    let mut b = RawWorker::connect(&engine).await;
    b.register_function("raw::of_b").await;
    b.sync().await;

    // B tries to remove A's function, then removes its own.
    b.send(json!({"type": "unregisterfunction", "id": "raw::of_a"}))
        .await;
    b.send(json!({"type": "unregisterfunction", "id": "raw::of_b"}))
        .await;
    b.sync().await;

    let theirs = b
        .call(
            "engine::functions::info",
            json!({"function_id": "raw::of_b"}),
        )
        .await;
    assert_eq!(
        theirs["error"]["code"], "NOT_FOUND",
        "own function removed: {theirs}"
    );
    let again = b.call("raw::of_b", json!({})).await;
    assert_eq!(again["error"]["code"], "function_not_found", "{again}");

    // A's function is still there and still routed to A.
    let id = b.invoke("raw::of_a", json!({"still": "here"})).await;
    let invoke = a.next_invoke().await;
    assert_eq!(invoke["function_id"], "raw::of_a", "{invoke}");
    a.answer(&invoke, json!("mine")).await;
    assert_eq!(b.result_of(&id).await["result"], "mine");
}

#[tokio::test]
async fn sigterm_lets_calls_in_flight_deliver_their_results_then_closes_workers_with_1001() {
    let mut engine = Engine::start().await;
    let mut owner = RawWorker::connect(&engine).await;
    owner.register_function("slow::fn").await;
    owner.sync().await;
    let mut caller = RawWorker::connect(&engine).await;
    let id = caller.invoke("slow::fn", json!({"n": 1})).await;
    let invoke = owner.next_invoke().await;

    engine.terminate();
    // The owner answers after the engine was told to stop: the result still arrives.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    owner.answer(&invoke, json!({"done": true})).await;
    let result = caller.result_of(&id).await;
    assert_eq!(result["result"], json!({"done": true}), "{result}");

    // Then every worker is told the engine is going away, and the engine exits cleanly.
    let close = loop {
        match next_within(&mut caller.ws, STEP).await {
            Some(Incoming::Close(frame)) => break frame,
            Some(Incoming::Gone(why)) => panic!("connection dropped without a close frame: {why}"),
            Some(_) => {}
            None => panic!("no close frame within {STEP:?}"),
        }
    };
    assert_eq!(close.map(|c| u16::from(c.code)), Some(1001));
    let status = engine.exit_status(STEP).await;
    assert!(status.success(), "{status}\n{}", engine.stderr());
}
