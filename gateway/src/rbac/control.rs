//! The control connection: one trusted worker connection from the gateway to the engine,
//! used to call auth functions, registration hooks, middleware and the discovery functions the
//! catalog is built from. It registers `iii-gateway::status`, reconnects with backoff after
//! an engine restart, and fails every call in flight (and every new one) while it is down, so
//! callers fail closed.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use arc_swap::ArcSwapOption;
use dashmap::DashMap;
use futures_util::{SinkExt as _, StreamExt as _};
use policies::FunctionCatalog;
use serde_json::{Map, Value, json};
use tokio::sync::{Mutex, mpsc, oneshot, watch};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

use super::frames::{self, Head};
use crate::status::Status;
use crate::task::{self, AbortOnDrop};

/// The function the gateway serves on its control connection.
pub(crate) const STATUS_FUNCTION: &str = "iii-gateway::status";
/// First reconnect delay; doubles up to [`MAX_BACKOFF`].
const MIN_BACKOFF: Duration = Duration::from_millis(100);
const MAX_BACKOFF: Duration = Duration::from_secs(5);
/// Frames queued for the control socket before callers wait.
const QUEUE: usize = 1024;
/// Discovery calls the catalog is built from.
const CATALOG_TIMEOUT: Duration = Duration::from_secs(5);
/// Largest message read on the control connection (discovery lists can be large).
const MAX_MESSAGE_BYTES: usize = 64 << 20;

/// Why a call on the control connection failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum CallError {
    /// The control connection is down (or went down during the call).
    #[error("iii is not connected")]
    Unavailable,
    /// No answer within the deadline.
    #[error("invocation timed out")]
    Timeout,
    /// The function answered with an error.
    #[error("{message}")]
    Remote {
        /// iii error code.
        code: String,
        /// Its message.
        message: String,
    },
}

type Reply = Result<Value, CallError>;

/// A handle on the control connection; cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Control {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    url: String,
    tls: super::EngineTls,
    sender: ArcSwapOption<mpsc::Sender<Message>>,
    pending: DashMap<String, oneshot::Sender<Reply>>,
    status: Arc<Status>,
    connected: watch::Sender<bool>,
    catalog: Mutex<CatalogCache>,
}

#[derive(Debug, Default)]
struct CatalogCache {
    catalog: Arc<FunctionCatalog>,
    fetched: Option<Instant>,
    with_bindings: bool,
}

/// Removes a pending entry when the call ends, however it ends.
struct PendingGuard<'a> {
    pending: &'a DashMap<String, oneshot::Sender<Reply>>,
    id: String,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.pending.remove(&self.id);
    }
}

impl Control {
    /// Starts the connection loop; it runs until the returned handle is dropped.
    pub(crate) fn start(
        url: String,
        tls: super::EngineTls,
        status: Arc<Status>,
    ) -> (Self, AbortOnDrop<()>) {
        let (connected, _) = watch::channel(false);
        let control = Self {
            inner: Arc::new(Inner {
                url,
                tls,
                sender: ArcSwapOption::empty(),
                pending: DashMap::new(),
                status,
                connected,
                catalog: Mutex::new(CatalogCache::default()),
            }),
        };
        let looping = control.clone();
        let handle = task::spawn(async move { looping.run().await });
        (control, AbortOnDrop(handle))
    }

    /// Whether the connection is up now.
    pub(crate) fn is_connected(&self) -> bool {
        *self.inner.connected.borrow()
    }

    /// Waits until the connection is up, at most `within`.
    pub(crate) async fn wait_connected(&self, within: Duration) -> bool {
        let mut rx = self.inner.connected.subscribe();
        tokio::time::timeout(within, rx.wait_for(|up| *up))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Calls `function_id` with `data` and waits for its result, at most `timeout` when given.
    pub(crate) async fn invoke(
        &self,
        function_id: &str,
        data: Value,
        timeout: Option<Duration>,
    ) -> Reply {
        let Some(sender) = self.inner.sender.load_full() else {
            return Err(CallError::Unavailable);
        };
        let id = uuid::Uuid::new_v4().to_string();
        let (tx, rx) = oneshot::channel();
        self.inner.pending.insert(id.clone(), tx);
        let _guard = PendingGuard {
            pending: &self.inner.pending,
            id: id.clone(),
        };
        // The loop swaps the sender out *before* failing pending calls: if it is still ours
        // now, a disconnect from here on finds our entry and fails it.
        let still_current = self
            .inner
            .sender
            .load()
            .as_ref()
            .is_some_and(|current| Arc::ptr_eq(current, &sender));
        if !still_current {
            return Err(CallError::Unavailable);
        }
        let frame = json!({
            "type": "invokefunction",
            "invocation_id": id,
            "function_id": function_id,
            "data": data,
        });
        // The deadline covers the send too: a full control queue must not hold a caller
        // past its timeout.
        let call = async {
            if sender.send(Message::text(frame.to_string())).await.is_err() {
                return Err(CallError::Unavailable);
            }
            rx.await.unwrap_or(Err(CallError::Unavailable))
        };
        match timeout {
            Some(limit) => tokio::time::timeout(limit, call)
                .await
                .unwrap_or(Err(CallError::Timeout)),
            None => call.await,
        }
    }

    /// The engine's function catalog no older than `max_age`, or the error that kept it
    /// from being fetched: for checks that must fail closed.
    pub(crate) async fn fresh_catalog(
        &self,
        max_age: Duration,
    ) -> Result<Arc<FunctionCatalog>, CallError> {
        {
            let cache = self.inner.catalog.lock().await;
            if cache.fetched.is_some_and(|at| at.elapsed() <= max_age) {
                return Ok(Arc::clone(&cache.catalog));
            }
        }
        let result = self
            .invoke(
                "engine::functions::list",
                json!({ "include_internal": true }),
                Some(CATALOG_TIMEOUT),
            )
            .await?;
        Ok(Arc::new(FunctionCatalog::from_functions_list(&result)))
    }

    /// The engine's function catalog, at most `max_age` old; with `bindings`, also the
    /// trigger bindings. A failed refresh keeps serving the last catalog.
    pub(crate) async fn catalog(&self, max_age: Duration, bindings: bool) -> Arc<FunctionCatalog> {
        let mut cache = self.inner.catalog.lock().await;
        let fresh = cache
            .fetched
            .is_some_and(|at| at.elapsed() <= max_age && (cache.with_bindings || !bindings));
        if fresh {
            return Arc::clone(&cache.catalog);
        }
        let list = self
            .invoke(
                "engine::functions::list",
                json!({ "include_internal": true }),
                Some(CATALOG_TIMEOUT),
            )
            .await;
        match list {
            Ok(result) => {
                let mut catalog = FunctionCatalog::from_functions_list(&result);
                let mut with_bindings = false;
                if bindings
                    && let Ok(triggers) = self
                        .invoke(
                            "engine::registered-triggers::list",
                            json!({ "include_internal": true }),
                            Some(CATALOG_TIMEOUT),
                        )
                        .await
                {
                    catalog.set_bindings_from_registered_triggers(&triggers);
                    with_bindings = true;
                }
                cache.catalog = Arc::new(catalog);
                cache.fetched = Some(Instant::now());
                cache.with_bindings = with_bindings;
            }
            Err(error) => {
                tracing::warn!(%error, "cannot refresh the function catalog; serving the last one");
            }
        }
        Arc::clone(&cache.catalog)
    }

    async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            let started = Instant::now();
            match self.connect_once().await {
                Ok(()) => {
                    tracing::warn!(url = %self.inner.url, "control connection closed; reconnecting")
                }
                Err(error) => {
                    tracing::warn!(url = %self.inner.url, %error, "control connection failed; retrying")
                }
            }
            if started.elapsed() > MAX_BACKOFF {
                backoff = MIN_BACKOFF;
            }
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(MAX_BACKOFF);
        }
    }

    async fn connect_once(&self) -> Result<(), tokio_tungstenite::tungstenite::Error> {
        let config = super::ws_config(MAX_MESSAGE_BYTES);
        let (socket, _) = self.inner.tls.connect(&self.inner.url, config).await?;
        let (mut sink, mut stream) = socket.split();
        let (tx, mut rx) = mpsc::channel::<Message>(QUEUE);
        let writer = task::spawn(async move {
            while let Some(message) = rx.recv().await {
                if sink.send(message).await.is_err() {
                    break;
                }
            }
            let _ = sink.close().await;
        });
        let _writer = AbortOnDrop(writer);
        let register = json!({
            "type": "registerfunction",
            "id": STATUS_FUNCTION,
            "description": "iii-gateway status: sessions, counters, control connection",
        });
        let hello = json!({
            "type": "invokefunction",
            "function_id": "engine::workers::register",
            "data": { "runtime": "rust", "version": env!("CARGO_PKG_VERSION"), "name": "iii-gateway",
                      "os": std::env::consts::OS, "pid": std::process::id() },
            "action": { "type": "void" },
        });
        for frame in [register, hello] {
            if tx.send(Message::text(frame.to_string())).await.is_err() {
                return Ok(());
            }
        }
        self.inner.sender.store(Some(Arc::new(tx.clone())));
        self.inner
            .status
            .control_connected
            .store(true, Ordering::Relaxed);
        self.inner.connected.send_replace(true);
        tracing::info!(url = %self.inner.url, "control connection up");

        while let Some(message) = stream.next().await {
            match message {
                Ok(Message::Text(text)) => self.on_frame(text.as_str(), &tx).await,
                Ok(
                    Message::Binary(_) | Message::Ping(_) | Message::Pong(_) | Message::Frame(_),
                ) => {}
                Ok(Message::Close(_)) | Err(_) => break,
            }
        }
        self.inner.sender.store(None);
        self.inner
            .status
            .control_connected
            .store(false, Ordering::Relaxed);
        self.inner.connected.send_replace(false);
        let ids: Vec<String> = self.inner.pending.iter().map(|e| e.key().clone()).collect();
        for id in ids {
            if let Some((_, waiter)) = self.inner.pending.remove(&id) {
                let _ = waiter.send(Err(CallError::Unavailable));
            }
        }
        Ok(())
    }

    async fn on_frame(&self, text: &str, tx: &mpsc::Sender<Message>) {
        let Some(head) = Head::parse(text) else {
            return;
        };
        match head.kind.as_ref() {
            "invocationresult" => {
                let Some(id) = head.invocation_id.as_deref() else {
                    return;
                };
                let Some((_, waiter)) = self.inner.pending.remove(id) else {
                    return;
                };
                let reply = match frames::parse_object(text) {
                    Some(mut frame) => outcome(&mut frame),
                    None => Err(CallError::Unavailable),
                };
                let _ = waiter.send(reply);
            }
            "invokefunction" => {
                let (Some(id), Some(function_id)) =
                    (head.invocation_id.as_deref(), head.function_id.as_deref())
                else {
                    return;
                };
                let outcome = if function_id == STATUS_FUNCTION {
                    Ok(self.inner.status.snapshot())
                } else {
                    Err((
                        "function_not_found".to_owned(),
                        format!("Function {function_id} not found"),
                    ))
                };
                let reply = frames::invocation_result(id, function_id, outcome, None);
                let _ = tx.send(Message::text(reply)).await;
            }
            "ping" => {
                let _ = tx.send(Message::text(r#"{"type":"pong"}"#)).await;
            }
            _ => {}
        }
    }
}

/// `result` or `error` of an `invocationresult`.
fn outcome(frame: &mut Map<String, Value>) -> Reply {
    if let Some(error) = frame.remove("error").filter(|e| !e.is_null()) {
        let field = |key: &str| {
            error
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        return Err(CallError::Remote {
            code: field("code"),
            message: field("message"),
        });
    }
    Ok(frame.remove("result").unwrap_or(Value::Null))
}
