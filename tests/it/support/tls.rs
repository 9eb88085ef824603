//! TLS clients for the proxy example tests: a throwaway self-signed certificate, HTTPS requests
//! and worker WebSockets over TLS trusting only that certificate. Every wait is bounded.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use futures_util::SinkExt;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;

use super::http::{Response, parse};
use super::ws::{Incoming, Socket, next_within};
use super::{STEP, within};

/// Every name the tests reach a proxy under (SNI and `Host`).
const NAMES: &[&str] = &[
    "localhost",
    "127.0.0.1",
    "example.com",
    "api.example.com",
    "stream.example.com",
    "workers.example.com",
];

/// A self-signed certificate for [`NAMES`], as PEM files in a temp dir.
#[derive(Debug)]
pub(crate) struct TestCert {
    dir: TempDir,
    der: CertificateDer<'static>,
}

impl TestCert {
    /// Generates the certificate and writes `cert.pem` / `key.pem`.
    pub(crate) fn new() -> Self {
        let names: Vec<String> = NAMES.iter().map(|n| (*n).to_owned()).collect();
        let certified = rcgen::generate_simple_self_signed(names).expect("generate test cert");
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::write(dir.path().join("cert.pem"), certified.cert.pem()).expect("write cert");
        std::fs::write(
            dir.path().join("key.pem"),
            certified.signing_key.serialize_pem(),
        )
        .expect("write key");
        Self {
            dir,
            der: certified.cert.der().clone(),
        }
    }

    /// The certificate (PEM).
    pub(crate) fn cert_path(&self) -> PathBuf {
        self.dir.path().join("cert.pem")
    }

    /// Its private key (PEM, PKCS#8).
    pub(crate) fn key_path(&self) -> PathBuf {
        self.dir.path().join("key.pem")
    }

    /// A client config trusting this certificate only, HTTP/1.1.
    pub(crate) fn client_config(&self) -> Arc<rustls::ClientConfig> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(self.der.clone()).expect("trust the test cert");
        // ring is the only provider compiled in, so the builder picks it.
        let mut config = rustls::ClientConfig::builder()
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Arc::new(config)
    }
}

/// Opens TLS to `addr` presenting `server_name` (SNI; none for an IP address).
pub(crate) async fn tls_connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    server_name: &str,
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(server_name.to_owned())
        .map_err(|e| std::io::Error::other(format!("server name {server_name}: {e}")))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await
}

/// One HTTPS request to `addr` for `host` (SNI and `Host`), `Connection: close`, bounded.
pub(crate) async fn https_request(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    host: &str,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> Response {
    let run = async {
        let mut stream = tls_connect(config, addr, host)
            .await
            .unwrap_or_else(|e| panic!("TLS to {addr} as {host}: {e}"));
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\nuser-agent: iii-tests\r\n"
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        stream.write_all(head.as_bytes()).await.expect("write head");
        let mut raw = Vec::new();
        // A peer that closes without close_notify still gave us the whole response.
        if let Err(e) = stream.read_to_end(&mut raw).await {
            assert!(!raw.is_empty(), "reading the response from {addr}: {e}");
        }
        parse(&raw)
    };
    within(STEP * 3, &format!("https {method} {host}{path}"), run).await
}

/// One plain HTTP/1.1 `GET` to `addr` with `Host: host`, `Connection: close`, bounded.
pub(crate) async fn http_get_host(addr: SocketAddr, host: &str, path: &str) -> Response {
    let run = async {
        let mut stream = TcpStream::connect(addr)
            .await
            .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
        let head = format!(
            "GET {path} HTTP/1.1\r\nhost: {host}\r\nconnection: close\r\nuser-agent: iii-tests\r\n\r\n"
        );
        stream.write_all(head.as_bytes()).await.expect("write head");
        let mut raw = Vec::new();
        stream
            .read_to_end(&mut raw)
            .await
            .unwrap_or_else(|e| panic!("reading the response from {addr}: {e}"));
        parse(&raw)
    };
    within(STEP * 3, &format!("http GET {host}{path}"), run).await
}

/// Opens a WebSocket to `url` over TLS to `addr` (the URL's host is the SNI and `Host`),
/// sending `headers` with the upgrade; the handshake error when it is refused.
pub(crate) async fn wss_connect(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    url: &str,
    headers: &[(&str, &str)],
) -> Result<Socket, tokio_tungstenite::tungstenite::Error> {
    let mut request = url.into_client_request().expect("a wss:// URL");
    for (k, v) in headers {
        request
            .headers_mut()
            .insert(http_name(k), v.parse().expect("header value"));
    }
    let tcp = within(STEP, "tcp connect", TcpStream::connect(addr))
        .await
        .unwrap_or_else(|e| panic!("connecting to {addr}: {e}"));
    let connector = tokio_tungstenite::Connector::Rustls(config);
    let handshake =
        tokio_tungstenite::client_async_tls_with_config(request, tcp, None, Some(connector));
    within(
        STEP,
        &format!("websocket handshake {url}"),
        Box::pin(handshake),
    )
    .await
    .map(|(ws, _)| ws)
}

fn http_name(name: &str) -> tokio_tungstenite::tungstenite::http::HeaderName {
    name.parse().expect("header name")
}

/// A worker session through a proxy, speaking raw frames.
#[derive(Debug)]
pub(crate) struct TlsWorker {
    ws: Socket,
    /// The `workerregistered` frame.
    pub(crate) registered: Value,
}

impl TlsWorker {
    /// Connects (see [`wss_connect`]) and reads `workerregistered`; panics otherwise.
    pub(crate) async fn connect(
        config: Arc<rustls::ClientConfig>,
        addr: SocketAddr,
        url: &str,
        headers: &[(&str, &str)],
    ) -> Self {
        let mut ws = wss_connect(config, addr, url, headers)
            .await
            .unwrap_or_else(|e| panic!("worker WebSocket {url} through {addr}: {e}"));
        let registered = match next_within(&mut ws, STEP).await {
            Some(Incoming::Json(v)) if v["type"] == "workerregistered" => v,
            other => panic!("{url}: expected workerregistered first, got {other:?}"),
        };
        Self { ws, registered }
    }

    /// Invokes `function_id` and returns its `invocationresult` frame (other frames skipped).
    pub(crate) async fn call(&mut self, function_id: &str, data: Value) -> Value {
        let invocation_id = uuid::Uuid::new_v4().to_string();
        let frame = json!({"type": "invokefunction", "invocation_id": invocation_id,
                           "function_id": function_id, "data": data});
        within(
            STEP,
            "send invokefunction",
            self.ws.send(Message::text(frame.to_string())),
        )
        .await
        .expect("send invokefunction");
        let deadline = tokio::time::Instant::now() + STEP;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match next_within(&mut self.ws, left).await {
                Some(Incoming::Json(v))
                    if v["type"] == "invocationresult" && v["invocation_id"] == invocation_id =>
                {
                    return v;
                }
                Some(Incoming::Json(_)) => {}
                other => panic!("waiting for the result of {function_id}: {other:?}"),
            }
        }
    }

    /// Closes politely and waits (bounded) for the close to come back.
    pub(crate) async fn close(mut self) {
        let _ = within(STEP, "close", self.ws.close(None)).await;
        let _ = next_within(&mut self.ws, Duration::from_secs(2)).await;
    }
}
