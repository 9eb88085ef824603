//! Test upstreams: an HTTP echo (hyper) that answers with what it received as JSON, and a
//! WebSocket echo (tokio-tungstenite) that records request paths and echoes every frame.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use futures_util::{SinkExt as _, StreamExt as _};
use http_body_util::{BodyExt as _, Full};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;

/// Starts the HTTP echo; `/health` answers 200 `ok`, `/sick` 500.
pub async fn http_echo() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let service = service_fn(|req: hyper::Request<hyper::body::Incoming>| async move {
                    let (parts, body) = req.into_parts();
                    let body_len = body
                        .collect()
                        .await
                        .map(|b| b.to_bytes().len())
                        .unwrap_or(0);
                    let (status, text) = match parts.uri.path() {
                        "/health" => (200, "ok".to_owned()),
                        "/sick" => (500, "sick".to_owned()),
                        _ => {
                            let headers: serde_json::Map<String, serde_json::Value> = parts
                                .headers
                                .iter()
                                .map(|(k, v)| {
                                    (k.to_string(), v.to_str().unwrap_or("").to_owned().into())
                                })
                                .collect();
                            let v = serde_json::json!({
                                "method": parts.method.as_str(),
                                "uri": parts.uri.to_string(),
                                "headers": headers,
                                "body_len": body_len,
                            });
                            (200, v.to_string())
                        }
                    };
                    let mut resp = hyper::Response::new(Full::new(Bytes::from(text)));
                    *resp.status_mut() = hyper::StatusCode::from_u16(status).unwrap();
                    resp.headers_mut().insert(
                        "access-control-allow-origin",
                        hyper::header::HeaderValue::from_static("*"),
                    );
                    Ok::<_, Infallible>(resp)
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(tcp), service)
                    .await;
            });
        }
    });
    addr
}

/// Starts the WebSocket echo; returns its address and the paths it was asked for.
pub async fn ws_echo() -> (SocketAddr, Arc<Mutex<Vec<String>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let paths = Arc::new(Mutex::new(Vec::new()));
    let seen = paths.clone();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let seen = seen.clone();
            tokio::spawn(async move {
                #[allow(clippy::result_large_err)]
                let callback =
                    |req: &tokio_tungstenite::tungstenite::handshake::server::Request, resp| {
                        seen.lock().unwrap().push(req.uri().to_string());
                        Ok(resp)
                    };
                let Ok(mut ws) = tokio_tungstenite::accept_hdr_async(tcp, callback).await else {
                    return;
                };
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_text() || msg.is_binary() {
                        if ws.send(msg).await.is_err() {
                            return;
                        }
                    } else if msg.is_close() {
                        let _ = ws.close(None).await;
                        return;
                    }
                }
            });
        }
    });
    (addr, paths)
}
