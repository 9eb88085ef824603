//! The edge and admin listener of the real `iii-gateway` binary, over TLS with a test CA, in
//! front of echo upstreams: routing styles, prefix stripping, forwarded headers, WebSocket
//! passthrough, limits, CORS, the trusted-port opt-in, health, shutdown and start-up errors.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::net::SocketAddr;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use support::clients::{self, https_get};
use support::process::{Gateway, run_to_exit};
use support::{Ca, Leaf, upstreams};
use tokio_tungstenite::tungstenite::Message;

struct Setup {
    ca: Ca,
    leaf: Leaf,
    dir: tempfile::TempDir,
    http: SocketAddr,
    ws: SocketAddr,
    ws_paths: std::sync::Arc<std::sync::Mutex<Vec<String>>>,
}

async fn setup() -> Setup {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let leaf = ca.leaf(dir.path(), "site", &["localhost", "api.localhost"]);
    let http = upstreams::http_echo().await;
    let (ws, ws_paths) = upstreams::ws_echo().await;
    Setup {
        ca,
        leaf,
        dir,
        http,
        ws,
        ws_paths,
    }
}

impl Setup {
    /// Writes `yaml` as `file` and runs the gateway on it until it exits (at most 20 s).
    async fn run_to_exit(&self, file: &str, yaml: &str) -> (std::process::ExitStatus, String) {
        let path = self.dir.path().join(file);
        std::fs::write(&path, yaml).unwrap();
        run_to_exit(
            &["run", "--config", path.to_str().unwrap()],
            Duration::from_secs(20),
        )
        .await
    }

    fn config(&self, edge_extra: &str, routes: &str) -> String {
        format!(
            r#"engine:
  url: ws://{ws}
  rest_url: http://{http}
  stream_url: http://{ws}
tls:
  certificates:
    - {{ cert_file: "{cert}", key_file: "{key}", server_names: [localhost, api.localhost] }}
edge:
  host: 127.0.0.1
  port: 0
{edge_extra}  routes:
{routes}admin: {{ host: 127.0.0.1, port: 0 }}
"#,
            ws = self.ws,
            http = self.http,
            cert = self.leaf.cert_file.display(),
            key = self.leaf.key_file.display(),
        )
    }

    fn default_routes() -> &'static str {
        "    - { host: api.localhost, to: rest }\n    - { path_prefix: /api/, to: rest }\n    - { path_prefix: /stream/, to: stream }\n"
    }

    async fn start(self, edge_extra: &str, routes: &str) -> (Gateway, Self) {
        let yaml = self.config(edge_extra, routes);
        let gateway = Gateway::run(&yaml).await;
        (gateway, self)
    }
}

#[tokio::test]
async fn routes_by_host_and_prefix_strip_the_prefix_and_overwrite_forwarded_headers() {
    let (gw, s) = setup().await.start("", Setup::default_routes()).await;
    let edge = gw.addr("edge");
    let tls = s.ca.client_config(&[b"http/1.1"]);
    let spoof =
        "X-Forwarded-For: 6.6.6.6\r\nX-Forwarded-Proto: http\r\nx-iii-edge-secret: guess\r\n";

    let r = https_get(
        edge,
        "localhost",
        "localhost",
        "/api/hello/world?x=1",
        tls.clone(),
        spoof,
    )
    .await;
    assert_eq!(r.status, 200, "{r:?}");
    let v = r.json();
    assert_eq!(v["uri"], "/hello/world?x=1");
    assert_eq!(v["headers"]["x-forwarded-for"], "127.0.0.1");
    assert_eq!(v["headers"]["x-forwarded-proto"], "https");
    assert!(v["headers"].get("x-iii-edge-secret").is_none());

    let r = https_get(edge, "localhost", "localhost", "/api", tls.clone(), "").await;
    assert_eq!(r.json()["uri"], "/");

    // Subdomain style: no prefix, nothing stripped; it is listed first, so it wins.
    let r = https_get(
        edge,
        "api.localhost",
        "api.localhost:443",
        "/api/x",
        tls.clone(),
        "",
    )
    .await;
    assert_eq!(r.json()["uri"], "/api/x");

    for path in ["/nope", "/apix", "/"] {
        let r = https_get(edge, "localhost", "localhost", path, tls.clone(), "").await;
        assert_eq!(r.status, 404, "{path}: {r:?}");
    }
}

#[tokio::test]
async fn websocket_passthrough_carries_text_and_binary_frames() {
    let (gw, s) = setup().await.start("", Setup::default_routes()).await;
    let tls = s.ca.client_config(&[b"http/1.1"]);
    let mut ws = clients::wss(gw.addr("edge"), "localhost", "/stream/echo?room=1", tls)
        .await
        .unwrap();
    for msg in [
        Message::text("hello"),
        Message::binary(vec![0_u8, 1, 2, 255]),
        Message::text("x".repeat(100_000)),
    ] {
        ws.send(msg.clone()).await.unwrap();
        let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(back, msg);
    }
    ws.close(None).await.unwrap();
    while let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        if m.is_close() {
            break;
        }
    }
    assert_eq!(s.ws_paths.lock().unwrap().as_slice(), ["/echo?room=1"]);
}

#[tokio::test]
async fn oversized_bodies_get_413_and_cors_echoes_only_listed_origins() {
    let extra = "  limits: { max_body_bytes: 1024 }\n  cors: { allowed_origins: [\"https://app.example.com\"], allowed_methods: [GET, POST] }\n";
    let (gw, s) = setup().await.start(extra, Setup::default_routes()).await;
    let edge = gw.addr("edge");
    let tls = s.ca.client_config(&[b"http/1.1"]);

    let post = |len: usize| {
        format!(
            "POST /api/upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n{}",
            "a".repeat(len)
        )
    };
    let small = clients::exchange(
        clients::tls(edge, "localhost", tls.clone()).await.unwrap(),
        &post(1000),
    )
    .await;
    assert_eq!(small.status, 200);
    assert_eq!(small.json()["body_len"], 1000);
    let big = clients::exchange(
        clients::tls(edge, "localhost", tls.clone()).await.unwrap(),
        &post(2000),
    )
    .await;
    assert_eq!(big.status, 413, "{big:?}");
    let chunked = "POST /api/upload HTTP/1.1\r\nHost: localhost\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n400\r\n".to_owned()
        + &"b".repeat(1024)
        + "\r\n400\r\n"
        + &"b".repeat(1024)
        + "\r\n0\r\n\r\n";
    let r = clients::exchange(
        clients::tls(edge, "localhost", tls.clone()).await.unwrap(),
        &chunked,
    )
    .await;
    assert_eq!(r.status, 413, "{r:?}");

    let preflight = "OPTIONS /api/x HTTP/1.1\r\nHost: localhost\r\nOrigin: https://app.example.com\r\nAccess-Control-Request-Method: POST\r\nConnection: close\r\n\r\n";
    let r = clients::exchange(
        clients::tls(edge, "localhost", tls.clone()).await.unwrap(),
        preflight,
    )
    .await;
    assert_eq!(r.status, 204, "{r:?}");
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    assert_eq!(
        r.header("access-control-allow-methods").as_deref(),
        Some("GET, POST")
    );
    let evil = preflight.replace("https://app.example.com", "https://evil.example");
    let r = clients::exchange(
        clients::tls(edge, "localhost", tls.clone()).await.unwrap(),
        &evil,
    )
    .await;
    assert_eq!(r.status, 403);

    let r = https_get(
        edge,
        "localhost",
        "localhost",
        "/api/y",
        tls.clone(),
        "Origin: https://app.example.com\r\n",
    )
    .await;
    assert_eq!(
        r.header("access-control-allow-origin").as_deref(),
        Some("https://app.example.com")
    );
    // The upstream's own `*` is replaced: an unlisted origin gets no CORS header at all.
    let r = https_get(
        edge,
        "localhost",
        "localhost",
        "/api/y",
        tls,
        "Origin: https://evil.example\r\n",
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn the_trusted_worker_port_is_routed_only_when_allowed() {
    let s = setup().await;
    let routes = "    - { path_prefix: /ws/, to: engine }\n";
    let refused = s.config("", routes);
    let (status, output) = s.run_to_exit("refused.yaml", &refused).await;
    assert!(!status.success());
    assert!(output.contains("edge.allow_trusted"), "{output}");

    let (gw, s) = s.start("  allow_trusted: true\n", routes).await;
    assert!(
        gw.output().contains("TRUSTED worker port"),
        "{}",
        gw.output()
    );
    let tls = s.ca.client_config(&[b"http/1.1"]);
    let mut ws = clients::wss(gw.addr("edge"), "localhost", "/ws/", tls.clone())
        .await
        .unwrap();
    ws.send(Message::text("trusted")).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back, Message::text("trusted"));
    // Only /ws/ is routed; nothing else reaches the trusted port.
    let r = https_get(gw.addr("edge"), "localhost", "localhost", "/api/x", tls, "").await;
    assert_eq!(r.status, 404);
}

#[tokio::test]
async fn admin_reports_health_readiness_status_and_metrics() {
    let extra = "  readiness_path: /health\n";
    let (gw, _s) = setup().await.start(extra, Setup::default_routes()).await;
    let admin = gw.addr("admin");
    let r = clients::http_get(admin, "/healthz").await;
    assert_eq!((r.status, r.body.as_str()), (200, "ok\n"));
    let r = clients::http_get(admin, "/readyz").await;
    assert_eq!(r.status, 200, "{r:?}");
    assert_eq!(r.json()["ready"], true);
    let r = clients::http_get(admin, "/status").await;
    assert_eq!(r.json()["service"], "iii-gateway");
    let r = clients::http_get(admin, "/metrics").await;
    assert!(
        r.body.contains("# TYPE iii_gateway_sessions_total counter"),
        "{}",
        r.body
    );
    assert_eq!(clients::http_get(admin, "/nope").await.status, 404);
}

#[tokio::test]
async fn readyz_names_each_probe_that_failed() {
    let s = setup().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let yaml = s
        .config("  readiness_path: /sick\n", Setup::default_routes())
        .replace(
            &format!("url: ws://{}", s.ws),
            &format!("url: ws://{closed}"),
        );
    let gw = Gateway::run(&yaml).await;
    let r = clients::http_get(gw.addr("admin"), "/readyz").await;
    assert_eq!(r.status, 503, "{r:?}");
    let v = r.json();
    assert_eq!(v["ready"], false);
    let failed: Vec<&str> = v["failed"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert_eq!(failed, ["engine.worker", "engine.readiness"], "{v}");
    assert!(
        v["checks"]["engine.readiness"]["error"]
            .as_str()
            .unwrap()
            .contains("500")
    );
}

#[tokio::test]
async fn sigterm_exits_zero_and_releases_every_port() {
    let (mut gw, s) = setup().await.start("", Setup::default_routes()).await;
    let tls = s.ca.client_config(&[b"http/1.1"]);
    let mut ws = clients::wss(gw.addr("edge"), "localhost", "/stream/", tls)
        .await
        .unwrap();
    ws.send(Message::text("before")).await.unwrap();
    let _ = ws.next().await;
    gw.signal("TERM");
    let status = gw.exited(Duration::from_secs(15)).await;
    assert!(status.success(), "{status}:\n{}", gw.output());
    for key in ["edge", "admin"] {
        std::net::TcpListener::bind(gw.addr(key))
            .unwrap_or_else(|e| panic!("{key} still bound: {e}"));
    }
}

#[tokio::test]
async fn a_port_in_use_is_a_clear_error_before_pingora_starts() {
    let s = setup().await;
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let yaml =
        s.config("", Setup::default_routes())
            .replacen("port: 0", &format!("port: {port}"), 1);
    let (status, output) = s.run_to_exit("taken.yaml", &yaml).await;
    assert!(!status.success());
    assert!(
        output.contains(&format!("cannot listen on 127.0.0.1:{port} for the edge")),
        "{output}"
    );
    assert!(!output.contains("panicked"), "{output}");
}

#[tokio::test]
async fn a_missing_or_bad_certificate_is_a_clear_error() {
    let s = setup().await;
    let missing = s
        .config("", Setup::default_routes())
        .replace("site-key.pem", "gone-key.pem");
    let (status, output) = s.run_to_exit("missing.yaml", &missing).await;
    assert!(!status.success());
    assert!(
        output.contains("cannot read key file") && output.contains("gone-key.pem"),
        "{output}"
    );

    std::fs::write(s.dir.path().join("junk.pem"), "junk").unwrap();
    let junk = s
        .config("", Setup::default_routes())
        .replace("site.pem", "junk.pem");
    let (status, output) = s.run_to_exit("missing.yaml", &junk).await;
    assert!(!status.success());
    assert!(output.contains("no valid PEM certificate"), "{output}");
    assert!(!output.contains("panicked"), "{output}");
}
