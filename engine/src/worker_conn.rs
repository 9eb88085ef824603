//! One worker connection on the trusted listener: `workerregistered` first, then a read loop
//! that dispatches frames and a writer task that drains the worker's bounded queue, batching
//! what is ready into one flush. On close, everything the worker owned is cleaned up and its
//! waiting callers are answered.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{mpsc, oneshot};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::error::CapacityError;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message, Utf8Bytes};
use tracing::Instrument;

use crate::engine::{Engine, now_ms};
use crate::events::{self, WorkerEvent};
use crate::fragment;
use crate::lock::lock;
use crate::protocol::{self, FrameType};
use crate::rbac::Gate;
use crate::registry::{FunctionEntry, Owner};
use crate::task::{self, AbortOnDrop};
use crate::worker_handle::{OUTBOUND_QUEUE, Outbound, WorkerHandle};
use crate::{router, triggers};

/// How long the writer may take to flush and close after the session ends.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Liveness check period: a worker silent for one period is pinged (the SDKs ping every 20 s
/// themselves, so they are never silent that long).
const IDLE_CHECK: Duration = Duration::from_secs(30);
/// Silent periods after which the worker is closed: a half-open connection must not keep its
/// functions registered and calls routed to it.
const IDLE_CLOSE_PERIODS: u32 = 3;

/// Binary frames with these 4-byte prefixes are telemetry, even on `/` (spec §1.3).
const TELEMETRY_PREFIXES: [&[u8; 4]; 3] = [b"OTLP", b"MTRC", b"LOGS"];

/// Serves an upgraded worker connection until it closes. `gate` is the RBAC session of a
/// connection on an RBAC listener (consulted for every inbound frame); `None` on the trusted
/// listener.
pub(crate) async fn serve<S>(
    engine: Arc<Engine>,
    ws: WebSocketStream<S>,
    peer: SocketAddr,
    mut gate: Option<Gate>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (tx, rx) = mpsc::channel(OUTBOUND_QUEUE);
    let prefix = gate.as_ref().and_then(Gate::prefix);
    let worker =
        Arc::new(WorkerHandle::new(peer.ip().to_string(), now_ms(), tx).with_prefix(prefix));
    let span = tracing::debug_span!("session", worker.id = %worker.id, client.addr = %peer);
    async move {
        let (sink, stream) = ws.split();
        // The queue is empty, so this cannot wait: `workerregistered` goes out before anything
        // is read (spec §1.2).
        let _ = worker
            .send_text(protocol::worker_registered_frame(
                &worker.id,
                &worker.reattach_token,
            ))
            .await;
        let (stop_tx, stop_rx) = oneshot::channel();
        // Owned here: aborted if this connection's task is (listener shutdown).
        let mut writer = AbortOnDrop(task::spawn(write_loop(sink, rx, stop_rx).in_current_span()));
        engine.workers.insert(worker.id, worker.clone());
        tracing::debug!("worker connected");
        events::worker_event(&engine, WorkerEvent::Connected, worker.id);

        let close = read_loop(&engine, &worker, stream, &mut gate).await;
        // Middleware calls still running for this session end with it.
        drop(gate);
        worker.mark_closed();
        cleanup(&engine, &worker).await;
        let _ = stop_tx.send(close);
        // A peer that does not read may leave the writer blocked on a full socket: give it a
        // moment to flush what is queued, then drop it (and the queue) regardless.
        if tokio::time::timeout(CLOSE_GRACE, &mut writer.0)
            .await
            .is_err()
        {
            tracing::debug!("writer did not finish within the close grace; aborted");
        }
        tracing::debug!("worker disconnected");
    }
    .instrument(span)
    .await;
}

async fn read_loop<S>(
    engine: &Arc<Engine>,
    worker: &Arc<WorkerHandle>,
    mut stream: SplitStream<WebSocketStream<S>>,
    gate: &mut Option<Gate>,
) -> Option<CloseFrame>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut idle_check =
        tokio::time::interval_at(tokio::time::Instant::now() + IDLE_CHECK, IDLE_CHECK);
    idle_check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = false;
    let mut silent_periods = 0u32;
    loop {
        let msg = tokio::select! {
            () = worker.kick.notified() => {
                if worker.is_going_away() {
                    return Some(CloseFrame { code: CloseCode::Away, reason: "engine shutting down".into() });
                }
                return Some(CloseFrame { code: CloseCode::Policy, reason: "connection replaced or not reading".into() });
            }
            _ = idle_check.tick() => {
                if std::mem::take(&mut seen) {
                    silent_periods = 0;
                    continue;
                }
                silent_periods += 1;
                if silent_periods >= IDLE_CLOSE_PERIODS {
                    tracing::debug!("worker silent for too long; closing");
                    return Some(CloseFrame { code: CloseCode::Away, reason: "idle".into() });
                }
                let _ = worker.send(Message::Ping(bytes::Bytes::new())).await;
                continue;
            }
            msg = stream.next() => msg,
        };
        seen = true;
        let text = match msg {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Binary(bytes))) => {
                if TELEMETRY_PREFIXES.iter().any(|p| bytes.starts_with(*p)) {
                    continue;
                }
                match Utf8Bytes::try_from(bytes) {
                    Ok(text) => text,
                    Err(_) => {
                        tracing::debug!("binary frame that is not UTF-8 JSON ignored");
                        continue;
                    }
                }
            }
            Some(Ok(Message::Close(_))) | None => return None,
            Some(Ok(_)) => continue,
            Some(Err(WsError::Capacity(e))) => {
                tracing::debug!(error = %e, "message over the size limit; closing with 1009");
                let reason = match e {
                    CapacityError::MessageTooLong { .. } => "message too big (limit 64 MiB)",
                    CapacityError::TooManyHeaders => "too many headers",
                };
                return Some(CloseFrame {
                    code: CloseCode::Size,
                    reason: reason.into(),
                });
            }
            Some(Err(e)) => {
                tracing::debug!(error = %e, "worker connection error");
                return None;
            }
        };
        match gate {
            None => dispatch(engine, worker, &text).await,
            Some(gate) => {
                if let Some(close) = gate.on_message(engine, worker, &text).await {
                    return Some(close);
                }
            }
        }
    }
}

/// Drains the outbound queue: waits for one frame, feeds every frame already queued, then
/// flushes once. Ends on `stop` (sending its Close frame, if any) or when the socket fails.
async fn write_loop<S>(
    mut sink: SplitSink<WebSocketStream<S>, Message>,
    mut rx: mpsc::Receiver<Outbound>,
    mut stop: oneshot::Receiver<Option<CloseFrame>>,
) where
    S: AsyncRead + AsyncWrite + Unpin,
{
    loop {
        tokio::select! {
            biased;
            close = &mut stop => {
                // Frames already queued (results, errors) still go out before the close.
                while let Ok(msg) = rx.try_recv() {
                    if feed(&mut sink, msg).await.is_err() { return; }
                }
                let _ = sink.send(Message::Close(close.ok().flatten())).await;
                return;
            }
            msg = rx.recv() => {
                let Some(msg) = msg else { return };
                if feed(&mut sink, msg).await.is_err() { return; }
                while let Ok(more) = rx.try_recv() {
                    if feed(&mut sink, more).await.is_err() { return; }
                }
                if sink.flush().await.is_err() { return; }
            }
        }
    }
}

/// Feeds one message, fragmenting it when it is larger than a frame may be.
async fn feed<S>(
    sink: &mut SplitSink<WebSocketStream<S>, Message>,
    item: Outbound,
) -> Result<(), WsError>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    for frame in fragment::frames(item.msg) {
        sink.feed(frame).await?;
    }
    // The frame now sits in the socket's buffers: its byte budget is released.
    drop(item.budget);
    Ok(())
}

async fn dispatch(engine: &Arc<Engine>, worker: &Arc<WorkerHandle>, text: &Utf8Bytes) {
    if let Some(frame) = parse(text) {
        dispatch_frame(engine, worker, &frame, text).await;
    }
}

/// Parses one inbound message; `None` (logged) for whitespace or what does not decode.
pub(crate) fn parse(text: &Utf8Bytes) -> Option<protocol::Frame<'_>> {
    if text.trim().is_empty() {
        return None;
    }
    protocol::parse_frame(text)
        .inspect_err(|e| tracing::debug!(error = %e, "undecodable frame ignored"))
        .ok()
}

/// Applies one parsed frame as the trusted listener does; an RBAC gate hands over the
/// frames it does not rewrite.
pub(crate) async fn dispatch_frame(
    engine: &Arc<Engine>,
    worker: &Arc<WorkerHandle>,
    frame: &protocol::Frame<'_>,
    text: &Utf8Bytes,
) {
    match frame.frame_type() {
        FrameType::InvokeFunction => router::invoke_from_worker(engine, worker, frame).await,
        FrameType::InvocationResult => router::on_result(engine, worker, frame, text).await,
        FrameType::RegisterFunction => register_function(engine, worker, frame),
        FrameType::UnregisterFunction => {
            if let Some(id) = frame.id.as_deref() {
                remove_function(engine, worker, id);
            }
        }
        FrameType::RegisterTriggerType => {
            triggers::register_type_from_worker(engine, worker, frame).await
        }
        FrameType::RegisterTrigger => triggers::register_from_worker(engine, worker, frame).await,
        FrameType::UnregisterTrigger => {
            triggers::unregister_from_worker(engine, worker, frame).await
        }
        FrameType::TriggerRegistrationResult => {
            triggers::on_registration_result(engine, worker, frame).await
        }
        FrameType::Reattach => reattach(engine, worker, frame),
        FrameType::Ping => {
            let _ = worker.send_text(protocol::PONG_FRAME.to_owned()).await;
        }
        FrameType::Pong => {}
        FrameType::Other => {
            tracing::debug!(frame.type = frame.tag.as_deref().unwrap_or_default(), "unknown frame type ignored");
        }
    }
}

fn register_function(engine: &Engine, worker: &Arc<WorkerHandle>, frame: &protocol::Frame<'_>) {
    let Some(id) = frame.id.as_deref().filter(|id| !id.is_empty()) else {
        tracing::debug!("registerfunction without id dropped");
        return;
    };
    let entry = FunctionEntry {
        owner: Owner::Worker(worker.clone()),
        description: frame.description.as_deref().map(str::to_owned),
        request_format: frame.request_format.map(ToOwned::to_owned),
        response_format: frame.response_format.map(ToOwned::to_owned),
        metadata: frame.metadata.map(ToOwned::to_owned),
    };
    // Same id from another worker: the newest registration wins (Node 0.22.1 cannot handle a
    // rejection); the previous owner's cleanup will not remove it.
    add_function(engine, worker, id, entry, Takeover::Allowed);
}

/// Whether a registration may replace a function another live worker serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Takeover {
    /// Trusted workers: the newest registration wins.
    Allowed,
    /// RBAC sessions: another live worker's function is never taken over.
    Refused,
}

/// Registers `id` for `worker`; `false` when refused (a built-in, or another live worker's
/// function under [`Takeover::Refused`]).
pub(crate) fn add_function(
    engine: &Engine,
    worker: &Arc<WorkerHandle>,
    id: &str,
    entry: FunctionEntry,
    takeover: Takeover,
) -> bool {
    if let Some(existing) = engine.functions.get(id) {
        match &existing.owner {
            Owner::Builtin(_) => {
                tracing::warn!(
                    function.id = id,
                    "a worker tried to register over a built-in function; ignored"
                );
                return false;
            }
            Owner::Worker(other)
                if takeover == Takeover::Refused && other.id != worker.id && !other.is_closed() =>
            {
                return false;
            }
            Owner::Worker(_) => {}
        }
    }
    engine.functions.insert(id.to_owned(), entry);
    lock(&worker.owned).functions.insert(id.to_owned());
    engine.functions_changed.notify_one();
    true
}

/// Removes `id` if `worker` serves it.
pub(crate) fn remove_function(engine: &Engine, worker: &WorkerHandle, id: &str) {
    let removed = engine
        .functions
        .remove_if(id, |_, e| e.owner_id() == Some(worker.id))
        .is_some();
    lock(&worker.owned).functions.remove(id);
    if removed {
        engine.functions_changed.notify_one();
    }
}

/// `reattach`: a reconnecting worker retires its previous connection when the token matches.
fn reattach(engine: &Engine, worker: &WorkerHandle, frame: &protocol::Frame<'_>) {
    let (Some(prev), Some(token)) = (frame.previous_worker_id, frame.reattach_token) else {
        return;
    };
    if prev == worker.id {
        return;
    }
    if let Some(old) = engine.workers.get(&prev).map(|w| w.value().clone())
        && old.reattach_token == token
    {
        tracing::debug!(previous.worker.id = %prev, "reattach: closing the previous connection");
        // Frames for it are refused from now on, and its functions may be registered again
        // by this connection before its cleanup has run.
        old.mark_closed();
        old.kick.notify_one();
    }
}

/// Removes what the worker owned and answers its waiting callers.
async fn cleanup(engine: &Arc<Engine>, worker: &Arc<WorkerHandle>) {
    engine.workers.remove(&worker.id);
    let functions = std::mem::take(&mut lock(&worker.owned).functions);
    let mut changed = false;
    for id in functions {
        changed |= engine
            .functions
            .remove_if(&id, |_, e| e.owner_id() == Some(worker.id))
            .is_some();
    }
    if changed {
        engine.functions_changed.notify_one();
    }
    router::fail_inflight(engine, worker).await;
    router::forget_caller(engine, worker);
    triggers::remove_worker(engine, worker).await;
    events::worker_event(engine, WorkerEvent::Disconnected, worker.id);
}

#[cfg(test)]
mod tests {
    use tokio_tungstenite::tungstenite::protocol::Role;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn a_silent_worker_is_pinged_then_closed_and_forgotten() {
        let engine = Engine::new(false);
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let peer = "127.0.0.1:9".parse().unwrap();
        let session = task::spawn(serve(engine.clone(), server, peer, None));
        let first = client.next().await.unwrap().unwrap();
        assert!(first.to_text().unwrap().contains("workerregistered"));
        assert_eq!(engine.workers.len(), 1);
        // The client now reads nothing (so it answers no ping): the paused clock runs on.
        tokio::time::timeout(IDLE_CHECK * (IDLE_CLOSE_PERIODS + 1), session)
            .await
            .expect("a silent worker is closed")
            .unwrap();
        assert_eq!(engine.workers.len(), 0);
        // The socket holds the pings it was sent; reading them makes the client answer pongs,
        // which may fail on the closed pipe before the Close frame is read.
        let mut pings = 0;
        while let Some(Ok(msg)) = client.next().await {
            match msg {
                Message::Ping(_) => pings += 1,
                Message::Close(frame) => assert_eq!(frame.unwrap().code, CloseCode::Away),
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(pings >= 1);
    }

    #[tokio::test(start_paused = true)]
    async fn a_worker_that_talks_is_not_closed() {
        let engine = Engine::new(false);
        let (server_io, client_io) = tokio::io::duplex(1 << 20);
        let server = WebSocketStream::from_raw_socket(server_io, Role::Server, None).await;
        let mut client = WebSocketStream::from_raw_socket(client_io, Role::Client, None).await;
        let session = task::spawn(serve(
            engine.clone(),
            server,
            "127.0.0.1:9".parse().unwrap(),
            None,
        ));
        let _ = client.next().await;
        for _ in 0..(IDLE_CLOSE_PERIODS * 2) {
            tokio::time::sleep(IDLE_CHECK).await;
            client
                .send(Message::text("{\"type\":\"pong\"}"))
                .await
                .unwrap();
        }
        assert_eq!(engine.workers.len(), 1);
        drop(client);
        session.await.unwrap();
        assert_eq!(engine.workers.len(), 0);
    }
}
