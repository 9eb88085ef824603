//! Streaming channels (spec §4): `engine::channels::create` makes a bounded queue with a
//! reader end and a writer end; each end is taken once, over `/ws/channels/{id}` or by the
//! engine itself (iii-http request and response bodies). Frames keep their type; a full queue
//! stops reading the writer (backpressure); the writer's close reaches the reader.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use dashmap::DashMap;
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use uuid::Uuid;

use crate::lock::lock;
use crate::task::{self, AbortOnDrop};

/// Messages a channel buffers when `buffer_size` is not given.
pub(crate) const DEFAULT_BUFFER: usize = 64;
/// Largest `buffer_size` accepted.
const MAX_BUFFER: usize = 1024;
/// A channel whose ends have not both been taken within this time is removed.
const UNCLAIMED_TTL: Duration = Duration::from_secs(300);
/// How often unclaimed channels are looked for.
const SWEEP_EVERY: Duration = Duration::from_secs(60);
/// Messages at least this large also count against the channel's byte budget (smaller ones
/// are bounded by `buffer_size`; the SDK writers send 64 KiB frames).
const LARGE_MESSAGE_BYTES: usize = 64 << 10;
/// Bytes of large messages one channel may buffer before its writer waits.
const LARGE_BYTES_BUDGET: usize = 64 << 20;

/// One buffered message; a large one carries its share of the byte budget until it is read.
#[derive(Debug)]
pub(crate) struct Item {
    pub(crate) msg: Message,
    _budget: Option<OwnedSemaphorePermit>,
}

/// The writing side of a channel's queue.
#[derive(Debug, Clone)]
pub(crate) struct ChannelTx {
    tx: mpsc::Sender<Item>,
    budget: Arc<Semaphore>,
}

/// The reader is gone: nothing more can be delivered.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ReaderGone;

impl ChannelTx {
    /// Queues a message, waiting while the queue (or its byte budget) is full: backpressure on
    /// the writer.
    ///
    /// # Cancel safety
    /// Not cancel-safe: a cancelled call may or may not have queued the message.
    pub(crate) async fn send(&self, msg: Message) -> Result<(), ReaderGone> {
        let budget = if msg.len() >= LARGE_MESSAGE_BYTES {
            let n = u32::try_from(msg.len().min(LARGE_BYTES_BUDGET)).unwrap_or(u32::MAX);
            Some(
                self.budget
                    .clone()
                    .acquire_many_owned(n)
                    .await
                    .map_err(|_| ReaderGone)?,
            )
        } else {
            None
        };
        self.tx
            .send(Item {
                msg,
                _budget: budget,
            })
            .await
            .map_err(|_| ReaderGone)
    }
}

/// Which end of a channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Direction {
    Read,
    Write,
}

impl Direction {
    pub(crate) fn parse(s: &str) -> Option<Self> {
        match s {
            "read" => Some(Self::Read),
            "write" => Some(Self::Write),
            _ => None,
        }
    }
}

/// One taken end.
#[derive(Debug)]
pub(crate) enum End {
    Writer(ChannelTx),
    Reader(mpsc::Receiver<Item>),
}

#[derive(Debug)]
struct Channel {
    key: Uuid,
    created: Instant,
    writer: Mutex<Option<ChannelTx>>,
    reader: Mutex<Option<mpsc::Receiver<Item>>>,
}

impl Channel {}

/// Every live channel.
#[derive(Debug, Default)]
pub(crate) struct Channels {
    map: DashMap<Uuid, Arc<Channel>>,
}

impl Channels {
    /// Creates a channel; returns `(channel_id, access_key)`.
    pub(crate) fn create(&self, buffer_size: Option<usize>) -> (Uuid, Uuid) {
        let size = buffer_size.unwrap_or(DEFAULT_BUFFER).clamp(1, MAX_BUFFER);
        let (tx, rx) = mpsc::channel(size);
        let tx = ChannelTx {
            tx,
            budget: Arc::new(Semaphore::new(LARGE_BYTES_BUDGET)),
        };
        let id = Uuid::new_v4();
        let key = Uuid::new_v4();
        let channel = Channel {
            key,
            created: Instant::now(),
            writer: Mutex::new(Some(tx)),
            reader: Mutex::new(Some(rx)),
        };
        self.map.insert(id, Arc::new(channel));
        (id, key)
    }

    fn find(&self, id: &str, key: &str) -> Option<Arc<Channel>> {
        let id = Uuid::parse_str(id).ok()?;
        let key = Uuid::parse_str(key).ok()?;
        self.map
            .get(&id)
            .filter(|c| c.key == key)
            .map(|c| c.value().clone())
    }

    /// Whether `id` exists and `key` opens it (checked before the upgrade: 404 otherwise).
    pub(crate) fn exists(&self, id: &str, key: &str) -> bool {
        self.find(id, key).is_some()
    }

    /// Takes one end; `None` when the channel is unknown or that end was already taken.
    pub(crate) fn take(&self, id: &str, key: &str, direction: Direction) -> Option<End> {
        let channel = self.find(id, key)?;
        match direction {
            Direction::Write => lock(&channel.writer).take().map(End::Writer),
            Direction::Read => lock(&channel.reader).take().map(End::Reader),
        }
    }

    /// Removes a channel (its unclaimed ends are dropped, which closes the claimed ones).
    /// Until then a second socket for a taken end is upgraded and closed (spec §4).
    pub(crate) fn remove(&self, id: &Uuid) {
        self.map.remove(id);
    }

    /// [`Channels::remove`] by the id as it appears in a URL.
    pub(crate) fn remove_str(&self, id: &str) {
        if let Ok(id) = Uuid::parse_str(id) {
            self.remove(&id);
        }
    }

    fn sweep(&self, now: Instant) {
        self.map
            .retain(|_, c| now.saturating_duration_since(c.created) < UNCLAIMED_TTL);
    }

    /// Starts the periodic sweep of unclaimed channels.
    pub(crate) fn start_sweeper(self: &Arc<Self>) -> AbortOnDrop<()> {
        let channels = self.clone();
        AbortOnDrop(task::spawn(async move {
            let mut tick = tokio::time::interval(SWEEP_EVERY);
            loop {
                tick.tick().await;
                channels.sweep(Instant::now());
            }
        }))
    }
}

fn normal_close() -> Message {
    Message::Close(Some(CloseFrame {
        code: CloseCode::Normal,
        reason: "".into(),
    }))
}

/// Serves the writer end: copies data frames into the queue, waiting while it is full.
pub(crate) async fn serve_writer<S>(mut ws: WebSocketStream<S>, tx: ChannelTx)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    while let Some(msg) = ws.next().await {
        match msg {
            Ok(m @ (Message::Text(_) | Message::Binary(_))) => {
                if tx.send(m).await.is_err() {
                    // The reader is gone: nothing more can be delivered.
                    break;
                }
            }
            Ok(Message::Close(_)) | Err(_) => break,
            Ok(_) => {}
        }
    }
    drop(tx);
    let _ = ws.close(None).await;
}

/// Serves the reader end: sends queued frames, then Close once the writer is done. A reader
/// that leaves drops the queue, which stops the writer.
pub(crate) async fn serve_reader<S>(ws: WebSocketStream<S>, mut rx: mpsc::Receiver<Item>)
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let (mut sink, mut stream) = ws.split();
    loop {
        tokio::select! {
            item = rx.recv() => match item {
                Some(item) => {
                    if sink.send(item.msg).await.is_err() {
                        return;
                    }
                }
                None => {
                    let _ = sink.send(normal_close()).await;
                    // Wait (briefly) for the peer's Close so the handshake completes.
                    let _ = tokio::time::timeout(Duration::from_secs(5), async {
                        while let Some(Ok(m)) = stream.next().await {
                            if m.is_close() {
                                break;
                            }
                        }
                    })
                    .await;
                    return;
                }
            },
            inbound = stream.next() => match inbound {
                None | Some(Err(_)) | Some(Ok(Message::Close(_))) => {
                    let _ = sink.close().await;
                    return;
                }
                Some(Ok(_)) => {}
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_end_is_taken_once_and_bad_keys_open_nothing() {
        let channels = Channels::default();
        let (id, key) = channels.create(None);
        let (id, key) = (id.to_string(), key.to_string());
        assert!(channels.exists(&id, &key));
        assert!(!channels.exists(&id, &Uuid::new_v4().to_string()));
        assert!(!channels.exists("not-a-uuid", &key));
        assert!(matches!(
            channels.take(&id, &key, Direction::Write),
            Some(End::Writer(_))
        ));
        assert!(channels.take(&id, &key, Direction::Write).is_none());
        assert!(matches!(
            channels.take(&id, &key, Direction::Read),
            Some(End::Reader(_))
        ));
        // Both ends taken: another socket is upgraded and closed, until the channel is removed.
        assert!(channels.exists(&id, &key));
        assert!(channels.take(&id, &key, Direction::Read).is_none());
        channels.remove_str(&id);
        assert!(!channels.exists(&id, &key));
    }

    #[tokio::test(start_paused = true)]
    async fn unclaimed_channels_are_swept() {
        let channels = Channels::default();
        let (id, key) = channels.create(Some(4));
        channels.sweep(Instant::now());
        assert!(channels.exists(&id.to_string(), &key.to_string()));
        tokio::time::advance(UNCLAIMED_TTL).await;
        channels.sweep(Instant::now());
        assert!(!channels.exists(&id.to_string(), &key.to_string()));
    }
}
