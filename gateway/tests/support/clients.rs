//! Clients trusting only the test CA: raw HTTP/1.1 over TLS, plain HTTP for admin, and
//! WebSocket over TLS (tokio-tungstenite with rustls). Every call is bounded.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use rustls::pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub const IO_TIMEOUT: Duration = Duration::from_secs(10);

pub async fn tls(
    addr: SocketAddr,
    sni: &str,
    config: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).unwrap();
    tokio::time::timeout(IO_TIMEOUT, TlsConnector::from(config).connect(name, tcp))
        .await
        .map_err(|_| std::io::Error::other("TLS handshake timed out"))?
}

/// The leaf certificate the server presents for `sni`.
pub async fn peer_cert(addr: SocketAddr, sni: &str, config: Arc<rustls::ClientConfig>) -> Vec<u8> {
    let stream = tls(addr, sni, config).await.unwrap();
    let (_, conn) = stream.get_ref();
    conn.peer_certificates().unwrap()[0].to_vec()
}

/// A parsed response.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Response {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<String> {
        self.head.lines().find_map(|line| {
            let (k, v) = line.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case(name)
                .then(|| v.trim().to_owned())
        })
    }
}

/// Sends `request` (a full HTTP/1.1 request; `Connection: close` is expected) and reads
/// the whole response.
pub async fn exchange<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, request: &str) -> Response {
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    let _ = tokio::time::timeout(IO_TIMEOUT, stream.read_to_end(&mut raw))
        .await
        .expect("response timed out");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Response {
        status,
        head: head.to_owned(),
        body,
    }
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// `GET path` over TLS with `Host: host`.
pub async fn https_get(
    addr: SocketAddr,
    sni: &str,
    host: &str,
    path: &str,
    config: Arc<rustls::ClientConfig>,
    extra_headers: &str,
) -> Response {
    let stream = tls(addr, sni, config).await.unwrap();
    let request =
        format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n{extra_headers}Connection: close\r\n\r\n");
    exchange(stream, &request).await
}

/// Plain `GET path` (admin).
pub async fn http_get(addr: SocketAddr, path: &str) -> Response {
    let stream = TcpStream::connect(addr).await.unwrap();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    exchange(stream, &request).await
}

pub type Wss = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// A WebSocket over TLS to `addr`, SNI and Host `sni`.
pub async fn wss(
    addr: SocketAddr,
    sni: &str,
    path: &str,
    config: Arc<rustls::ClientConfig>,
) -> Result<Wss, tokio_tungstenite::tungstenite::Error> {
    let tcp = TcpStream::connect(addr).await.unwrap();
    let url = format!("wss://{sni}:{}{path}", addr.port());
    let (ws, _) = tokio::time::timeout(
        IO_TIMEOUT,
        tokio_tungstenite::client_async_tls_with_config(
            url,
            tcp,
            None,
            Some(Connector::Rustls(config)),
        ),
    )
    .await
    .expect("WebSocket handshake timed out")?;
    Ok(ws)
}
