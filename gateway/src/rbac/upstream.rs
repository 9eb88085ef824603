//! Dialling a session's own connection to the engine's trusted port. A plain `ws://` engine
//! URL is upgraded with hyper's HTTP/1.1 client, so the socket starts with the small read
//! buffer the gateway configures (an idle session costs little); `wss://` goes through
//! tokio-tungstenite's rustls connector (trusting `engine.ca_file` when set).

use bytes::Bytes;
use http::{Request, StatusCode, header};
use http_body_util::Empty;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Error as WsError;
use tokio_tungstenite::tungstenite::handshake::client::generate_key;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

use super::ListenerState;

/// A session's upstream socket.
#[expect(
    clippy::large_enum_variant,
    reason = "the plain socket is the common case and moves straight into its session"
)]
pub(crate) enum Upstream {
    /// `ws://`: upgraded by hyper.
    Plain(WebSocketStream<TokioIo<hyper::upgrade::Upgraded>>),
    /// `wss://` (boxed: the TLS state is large and the plain case is the common one).
    Tls(Box<WebSocketStream<MaybeTlsStream<TcpStream>>>),
}

/// Why the engine could not be dialled.
#[derive(Debug, thiserror::Error)]
pub(crate) enum DialError {
    /// The TCP connection failed.
    #[error("connect: {0}")]
    Connect(#[from] std::io::Error),
    /// The HTTP upgrade failed.
    #[error("upgrade: {0}")]
    Http(#[from] hyper::Error),
    /// The engine answered, but not with a WebSocket upgrade.
    #[error("upgrade refused: {0}")]
    Refused(String),
    /// The `wss://` handshake failed.
    #[error(transparent)]
    WebSocket(#[from] WsError),
}

/// Opens a worker connection to the engine (`engine.url` + `/`).
pub(crate) async fn dial(state: &ListenerState) -> Result<Upstream, DialError> {
    let url = format!("{}/", state.engine_base);
    let config = super::ws_config(state.read_ceiling());
    let Some(rest) = url.strip_prefix("ws://") else {
        let (socket, _) = state.engine_tls.connect(&url, config).await?;
        return Ok(Upstream::Tls(Box::new(socket)));
    };
    let authority = rest.split('/').next().unwrap_or_default();
    let uri: http::Uri = url
        .parse()
        .map_err(|e: http::uri::InvalidUri| DialError::Refused(e.to_string()))?;
    let host = uri.host().unwrap_or_default().trim_matches(['[', ']']);
    let port = uri.port_u16().unwrap_or(80);
    let path = uri.path_and_query().map_or("/", |p| p.as_str());
    let stream = TcpStream::connect((host, port)).await?;
    let _ = stream.set_nodelay(true);
    let (mut sender, connection) =
        hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
    let key = generate_key();
    let request = Request::get(path)
        .header(header::HOST, authority)
        .header(header::CONNECTION, "upgrade")
        .header(header::UPGRADE, "websocket")
        .header(header::SEC_WEBSOCKET_VERSION, "13")
        .header(header::SEC_WEBSOCKET_KEY, &key)
        .body(Empty::<Bytes>::new())
        .map_err(|e| DialError::Refused(e.to_string()))?;
    let (response, ()) =
        tokio::try_join!(sender.send_request(request), connection.with_upgrades())?;
    if response.status() != StatusCode::SWITCHING_PROTOCOLS {
        return Err(DialError::Refused(format!("HTTP {}", response.status())));
    }
    let accepted = response
        .headers()
        .get(header::SEC_WEBSOCKET_ACCEPT)
        .is_some_and(|v| v.as_bytes() == derive_accept_key(key.as_bytes()).as_bytes());
    if !accepted {
        return Err(DialError::Refused("bad Sec-WebSocket-Accept".to_owned()));
    }
    let upgraded = hyper::upgrade::on(response).await?;
    let socket =
        WebSocketStream::from_raw_socket(TokioIo::new(upgraded), Role::Client, Some(config)).await;
    Ok(Upstream::Plain(socket))
}
