//! `/readyz` probes, each bounded by a timeout: TCP to the engine's worker port and REST port
//! (from `engine.url` / `engine.rest_url`), and, when `edge.readiness_path` is set, a plain
//! `GET rest_url + path` that must answer 2xx.

use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::edge::host_port;

/// Every probe gives up after this long.
pub(crate) const PROBE_TIMEOUT: Duration = Duration::from_secs(2);
/// Enough of a response to read its status line.
const STATUS_LINE_BYTES: usize = 64;

/// What `/readyz` checks.
#[derive(Debug, Clone)]
pub(crate) struct Probes {
    pub(crate) worker_url: String,
    pub(crate) rest_url: String,
    pub(crate) readiness_path: Option<String>,
}

/// One probe's outcome.
#[derive(Debug)]
struct Outcome {
    name: &'static str,
    target: String,
    error: Option<String>,
}

impl Probes {
    /// Runs every probe at once; returns whether all passed and the JSON report.
    pub(crate) async fn run(&self) -> (bool, Value) {
        let readiness = async {
            match &self.readiness_path {
                Some(path) => Some(http_get("engine.readiness", &self.rest_url, path).await),
                None => None,
            }
        };
        let (worker, rest, readiness) = tokio::join!(
            tcp("engine.worker", &self.worker_url),
            tcp("engine.rest", &self.rest_url),
            readiness
        );
        let outcomes: Vec<Outcome> = [Some(worker), Some(rest), readiness]
            .into_iter()
            .flatten()
            .collect();
        let failed: Vec<&str> = outcomes
            .iter()
            .filter(|o| o.error.is_some())
            .map(|o| o.name)
            .collect();
        let checks: serde_json::Map<String, Value> = outcomes
            .iter()
            .map(|o| {
                let mut v = json!({ "target": o.target, "ok": o.error.is_none() });
                if let Some(error) = &o.error {
                    v["error"] = Value::String(error.clone());
                }
                (o.name.to_owned(), v)
            })
            .collect();
        let ready = failed.is_empty();
        (
            ready,
            json!({ "ready": ready, "failed": failed, "checks": checks }),
        )
    }
}

async fn tcp(name: &'static str, url: &str) -> Outcome {
    let Some((host, port, _)) = host_port(url) else {
        return Outcome {
            name,
            target: url.to_owned(),
            error: Some("not a URL with a host".to_owned()),
        };
    };
    let target = format!("{host}:{port}");
    let error = match tokio::time::timeout(PROBE_TIMEOUT, TcpStream::connect((host.as_str(), port)))
        .await
    {
        Ok(Ok(_)) => None,
        Ok(Err(e)) => Some(format!("connect: {e}")),
        Err(_) => Some(format!("connect: no answer within {PROBE_TIMEOUT:?}")),
    };
    Outcome {
        name,
        target,
        error,
    }
}

async fn http_get(name: &'static str, base: &str, path: &str) -> Outcome {
    let target = format!("{}{path}", base.trim_end_matches('/'));
    let error = match tokio::time::timeout(PROBE_TIMEOUT, get_status(base, path)).await {
        Ok(Ok(status)) if (200..300).contains(&status) => None,
        Ok(Ok(status)) => Some(format!("answered {status}")),
        Ok(Err(e)) => Some(e),
        Err(_) => Some(format!("no answer within {PROBE_TIMEOUT:?}")),
    };
    Outcome {
        name,
        target,
        error,
    }
}

async fn get_status(base: &str, path: &str) -> Result<u16, String> {
    let (host, port, tls) = host_port(base).ok_or("not a URL with a host")?;
    if tls {
        return Err("readiness_path over https is not probed (TCP probe only)".to_owned());
    }
    let mut stream = TcpStream::connect((host.as_str(), port))
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let request = format!(
        "GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUser-Agent: iii-gateway-readyz\r\nConnection: close\r\n\r\n"
    );
    stream
        .write_all(request.as_bytes())
        .await
        .map_err(|e| format!("write: {e}"))?;
    let mut buf = [0_u8; STATUS_LINE_BYTES];
    let mut filled = 0;
    while filled < buf.len() {
        let n = stream
            .read(buf.get_mut(filled..).unwrap_or_default())
            .await
            .map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            break;
        }
        filled += n;
        if buf.get(..filled).is_some_and(|b| b.contains(&b'\n')) {
            break;
        }
    }
    let head = String::from_utf8_lossy(buf.get(..filled).unwrap_or_default());
    let mut parts = head.split_whitespace();
    match (
        parts.next(),
        parts.next().and_then(|s| s.parse::<u16>().ok()),
    ) {
        (Some(version), Some(status)) if version.starts_with("HTTP/1.") => Ok(status),
        _ => Err("not an HTTP response".to_owned()),
    }
}
