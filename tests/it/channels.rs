//! Channels at the socket level: `/ws/channels/{id}?key=…&dir=read|write` (protocol.md §4).

use futures_util::SinkExt;
use serde_json::json;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};

use crate::support::ws::{Incoming, Socket, connect, next_within};
use crate::support::{Engine, RawWorker, STEP, within};

/// Creates a channel with `engine::channels::create`; returns `(channel_id, access_key)`.
async fn create_channel(engine: &Engine) -> (String, String) {
    let mut w = RawWorker::connect(engine).await;
    let result = w
        .call_ok("engine::channels::create", json!({"buffer_size": 4}))
        .await;
    let reader = &result["reader"];
    (
        reader["channel_id"]
            .as_str()
            .expect("channel_id")
            .to_owned(),
        reader["access_key"]
            .as_str()
            .expect("access_key")
            .to_owned(),
    )
}

fn channel_url(engine: &Engine, id: &str, key: &str, dir: &str) -> String {
    format!("{}/ws/channels/{id}?key={key}&dir={dir}", engine.ws_url())
}

/// The HTTP status of a refused upgrade, or `None` when the upgrade succeeded.
async fn upgrade_status(url: &str) -> Option<u16> {
    match within(
        STEP,
        "channel upgrade",
        Box::pin(tokio_tungstenite::connect_async(url)),
    )
    .await
    {
        Ok(_) => None,
        Err(WsError::Http(resp)) => Some(resp.status().as_u16()),
        Err(e) => panic!("upgrade to {url} failed without an HTTP answer: {e}"),
    }
}

#[tokio::test]
async fn channel_upgrade_with_bad_id_or_key_is_refused_with_404() {
    let engine = Engine::start().await;
    let (id, key) = create_channel(&engine).await;
    let bogus = uuid::Uuid::new_v4().to_string();

    assert_eq!(
        upgrade_status(&channel_url(&engine, &bogus, &key, "read")).await,
        Some(404)
    );
    assert_eq!(
        upgrade_status(&channel_url(&engine, &id, &bogus, "read")).await,
        Some(404)
    );
    let no_key = format!("{}/ws/channels/{id}?dir=read", engine.ws_url());
    assert_eq!(upgrade_status(&no_key).await, Some(404), "missing key");
    // The right id and key are accepted.
    assert_eq!(
        upgrade_status(&channel_url(&engine, &id, &key, "read")).await,
        None
    );
}

#[tokio::test]
async fn channel_frames_keep_their_type_and_close_reaches_the_reader() {
    let engine = Engine::start().await;
    let (id, key) = create_channel(&engine).await;
    // Reader first, writer second (either order is allowed).
    let mut reader = connect(&channel_url(&engine, &id, &key, "read")).await;
    let mut writer = connect(&channel_url(&engine, &id, &key, "write")).await;

    send(&mut writer, Message::text("hello-text")).await;
    send(&mut writer, Message::binary(b"bin".to_vec())).await;
    send(&mut writer, Message::binary(vec![7u8; 100_000])).await;
    within(STEP, "writer close", writer.close(None))
        .await
        .expect("close writer");

    expect(
        &mut reader,
        |m| matches!(m, Incoming::Text(t) if t == "hello-text"),
    )
    .await;
    expect(
        &mut reader,
        |m| matches!(m, Incoming::Binary(b) if b == b"bin"),
    )
    .await;
    expect(
        &mut reader,
        |m| matches!(m, Incoming::Binary(b) if b.len() == 100_000),
    )
    .await;
    match next_within(&mut reader, STEP).await {
        Some(Incoming::Close(_) | Incoming::Gone(_)) => {}
        other => panic!("reader should be closed after the writer left, got {other:?}"),
    }
}

#[tokio::test]
async fn channel_writer_first_then_reader_gets_everything_in_order() {
    let engine = Engine::start().await;
    let (id, key) = create_channel(&engine).await;
    let mut writer = connect(&channel_url(&engine, &id, &key, "write")).await;
    // More messages than the buffer (4) holds: the engine pushes back, nothing is lost.
    let count = 50u32;
    let sending = async {
        for i in 0..count {
            send(&mut writer, Message::text(format!("m{i}"))).await;
        }
        within(STEP, "writer close", writer.close(None))
            .await
            .expect("close writer");
    };
    let receiving = async {
        let mut reader = connect(&channel_url(&engine, &id, &key, "read")).await;
        let mut got = Vec::new();
        loop {
            match next_within(&mut reader, STEP).await {
                Some(Incoming::Text(t)) => got.push(t),
                Some(Incoming::Json(v)) => got.push(v.to_string()),
                Some(Incoming::Close(_) | Incoming::Gone(_)) => break,
                other => panic!("unexpected on the reader: {other:?}"),
            }
        }
        got
    };
    let ((), got) = tokio::join!(sending, receiving);
    let want: Vec<String> = (0..count).map(|i| format!("m{i}")).collect();
    assert_eq!(got, want);
}

#[tokio::test]
async fn second_socket_for_the_same_direction_is_closed() {
    let engine = Engine::start().await;
    let (id, key) = create_channel(&engine).await;
    let _first = connect(&channel_url(&engine, &id, &key, "read")).await;
    let url = channel_url(&engine, &id, &key, "read");
    // protocol.md §4: upgraded and closed at once (a 404/409 refusal is also tolerated).
    match within(
        STEP,
        "second reader",
        Box::pin(tokio_tungstenite::connect_async(&url)),
    )
    .await
    {
        Ok((mut second, _)) => match next_within(&mut second, STEP).await {
            Some(Incoming::Close(_) | Incoming::Gone(_)) => {}
            other => panic!("second reader should be closed, got {other:?}"),
        },
        Err(WsError::Http(resp)) => assert!(resp.status().is_client_error(), "{resp:?}"),
        Err(e) => panic!("second reader: {e}"),
    }
}

async fn send(ws: &mut Socket, msg: Message) {
    within(STEP, "channel send", ws.send(msg))
        .await
        .expect("channel send");
}

async fn expect(ws: &mut Socket, pred: impl Fn(&Incoming) -> bool) {
    match next_within(ws, STEP).await {
        Some(m) if pred(&m) => {}
        other => panic!("unexpected channel message: {other:?}"),
    }
}
