//! Channel sockets (`/ws/channels/{id}`) bridged 1:1 to the engine's channel route (settled
//! decision 7): the upstream is dialled before the client is upgraded, so an unknown channel
//! or a wrong key is a 404 as on the engine; then text, binary, ping, pong and close frames
//! are relayed as they are, close codes and reasons included.

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_tungstenite::tungstenite::protocol::CloseFrame;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::{ListenerState, ws_config};

/// Dialling the engine's channel route.
const DIAL_TIMEOUT: Duration = Duration::from_secs(10);
/// After one direction closes, the other gets this long to close too.
const CLOSE_WAIT: Duration = Duration::from_secs(5);

/// The engine side of a channel.
pub(crate) type Upstream = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// Why a channel could not be dialled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DialError {
    /// The engine refused: unknown channel or wrong key.
    NotFound,
    /// The engine could not be reached.
    Unreachable,
}

/// Dials `{engine}/ws/channels/{id}?{query}`.
pub(crate) async fn dial(
    state: &ListenerState,
    id: &str,
    query: Option<&str>,
) -> Result<Upstream, DialError> {
    let mut url = format!("{}/ws/channels/{id}", state.engine_base);
    if let Some(query) = query {
        url.push('?');
        url.push_str(query);
    }
    let config = ws_config(state.read_ceiling());
    match tokio::time::timeout(DIAL_TIMEOUT, state.engine_tls.connect(&url, config)).await {
        Ok(Ok((socket, _))) => Ok(socket),
        Ok(Err(WsError::Http(response))) if response.status().is_client_error() => {
            Err(DialError::NotFound)
        }
        Ok(Err(_)) | Err(_) => Err(DialError::Unreachable),
    }
}

/// Relays frames both ways until both sides have closed (or the gateway stops).
pub(crate) async fn run<S>(
    client: WebSocketStream<S>,
    upstream: Upstream,
    mut shutdown: watch::Receiver<bool>,
) where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let (mut client_sink, mut client_stream) = client.split();
    let (mut engine_sink, mut engine_stream) = upstream.split();
    let up = async {
        while let Some(Ok(message)) = client_stream.next().await {
            let closing = message.is_close();
            if engine_sink.send(message).await.is_err() || closing {
                break;
            }
        }
        let _ = engine_sink.close().await;
    };
    let down = async {
        while let Some(Ok(message)) = engine_stream.next().await {
            let closing = message.is_close();
            if client_sink.send(message).await.is_err() || closing {
                return;
            }
        }
        // The engine went away without a close: tell the client.
        let frame = CloseFrame {
            code: CloseCode::Error,
            reason: "engine connection lost".into(),
        };
        let _ = client_sink.send(Message::Close(Some(frame))).await;
    };
    tokio::pin!(up, down);
    tokio::select! {
        () = &mut up => { let _ = tokio::time::timeout(CLOSE_WAIT, down).await; }
        () = &mut down => { let _ = tokio::time::timeout(CLOSE_WAIT, up).await; }
        () = super::stopped(&mut shutdown) => {}
    }
}
