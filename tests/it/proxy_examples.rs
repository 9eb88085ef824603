//! `examples/nginx` and `examples/caddy` proven: the shipped files run in Debian's nginx and
//! Caddy (installed by scripts/setup) on ephemeral loopback ports, with a test certificate, in
//! front of a real engine and gateway. Through each: an http trigger over `/api/…` (or
//! `api.`), a worker WebSocket over `/rbac/` (or `workers.`) that is the RBAC listener's
//! (auth headers reach the auth function, hidden functions are refused), the Node SDK with a
//! channel round trip over `wss://…/rbac/`, and no path or name that reaches a worker port
//! otherwise.

use std::sync::Arc;

use serde_json::{Value, json};

use crate::support::proxy::{self, Kind, Proxy, Style, Upstreams};
use crate::support::tls::{TestCert, TlsWorker, http_get_host, https_request, wss_connect};
use crate::support::ws::{Incoming, next_within};
use crate::support::{Driver, Engine, Gateway, STEP};

/// The RBAC listener behind the proxy: plain on loopback, the proxy trusted for
/// X-Forwarded-For, an auth function, `api::*` exposed.
const LISTENER: &str = r#"
listeners:
  - name: pub
    host: 127.0.0.1
    port: 0
    trusted_proxies: ["127.0.0.1"]
    rbac:
      auth_function_id: test::auth
      expose_functions: [ 'match("api::*")' ]
"#;

/// The engine, the gateway, and the trusted Node worker serving the functions and the http
/// trigger `GET /hello/:name`.
struct Backend {
    engine: Engine,
    gateway: Gateway,
    trusted: Driver,
}

impl Backend {
    async fn start() -> Self {
        let engine = Engine::start().await;
        let mut trusted = Driver::node(&engine, "trusted").await;
        trusted
            .ok(
                "register",
                json!({"functions": [
                    {"id": "test::auth", "kind": "auth_table",
                     "table": {"user": {"context": {"user": "u1"}}}},
                    {"id": "api::echo", "kind": "echo"},
                    {"id": "api::read", "kind": "channel_read"},
                    {"id": "secret::run", "kind": "echo"},
                ]}),
            )
            .await;
        trusted.serve_hello().await;
        let gateway = Gateway::start(&engine, LISTENER).await;
        Self {
            engine,
            gateway,
            trusted,
        }
    }

    fn upstreams(&self) -> Upstreams {
        Upstreams {
            rest: self.engine.http(),
            // Nothing listens there: the Stream API is not built yet.
            stream: ([127, 0, 0, 1], proxy::free_port()).into(),
            rbac: self.gateway.addr("listener:pub"),
        }
    }
}

/// The names a client uses for each surface in `style` (the Caddy files take the domain from
/// `III_DOMAIN`, set by the support code to match).
struct Names {
    api: &'static str,
    workers: &'static str,
    /// Prefixes of the REST API and the RBAC listener.
    api_prefix: &'static str,
    rbac_prefix: &'static str,
}

fn names(style: Style) -> Names {
    match style {
        Style::PathPrefix => Names {
            api: "localhost",
            workers: "localhost",
            api_prefix: "/api",
            rbac_prefix: "/rbac",
        },
        Style::Subdomain => Names {
            api: "api.example.com",
            workers: "workers.example.com",
            api_prefix: "",
            rbac_prefix: "",
        },
    }
}

fn header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

/// Everything one proxy/style pair must do.
async fn proves(kind: Kind, style: Style) {
    let mut backend = Backend::start().await;
    let cert = TestCert::new();
    let proxy = Proxy::start(kind, style, &backend.upstreams(), &cert).await;
    let tls = cert.client_config();
    let n = names(style);
    let addr = proxy.https;
    let port = addr.port();

    // An http trigger through the REST route: the prefix is gone when the engine matches the
    // route, and the proxy says the client came over https.
    let path = format!("{}/hello/world?x=1", n.api_prefix);
    let resp = https_request(Arc::clone(&tls), addr, n.api, "GET", &path, &[]).await;
    assert_eq!(resp.status, 200, "{kind:?} GET {path}: {}", resp.text());
    let body = resp.json();
    assert_eq!(body["path_params"]["name"], "world", "{body}");
    assert_eq!(body["query_params"]["x"], "1", "{body}");
    assert_eq!(
        header(&body["headers"], "x-forwarded-proto"),
        Some("https"),
        "{body}"
    );

    // A worker WebSocket through the RBAC route: authenticated with the forwarded headers, and
    // gated (the trusted port would let it call anything).
    let url = format!("wss://{}:{port}{}/", n.workers, n.rbac_prefix);
    let mut worker = TlsWorker::connect(
        Arc::clone(&tls),
        addr,
        &url,
        &[("authorization", "Bearer user")],
    )
    .await;
    let auth = backend.trusted.event_within("auth", STEP).await;
    assert_eq!(
        header(&auth["input"]["headers"], "x-forwarded-proto"),
        Some("https"),
        "{auth}"
    );
    assert_eq!(auth["input"]["ip_address"], "127.0.0.1", "{auth}");
    let echoed = worker.call("api::echo", json!({"via": "proxy"})).await;
    assert_eq!(echoed["result"]["via"], "proxy", "{echoed}");
    let denied = worker.call("secret::run", json!({})).await;
    assert_eq!(denied["error"]["code"], "FORBIDDEN", "{denied}");
    worker.close().await;

    // Without credentials the RBAC listener refuses: the auth function runs behind the proxy.
    let refused = wss_connect(Arc::clone(&tls), addr, &url, &[]).await;
    let mut ws = refused.unwrap_or_else(|e| panic!("{url} without a token: {e}"));
    match next_within(&mut ws, STEP).await {
        Some(Incoming::Json(v)) => assert_eq!(v["error"]["code"], "AUTH_ERROR", "{v}"),
        other => panic!("expected AUTH_ERROR without a token, got {other:?}"),
    }

    // No other way in: the trusted port is not behind any path or name.
    let mut elsewhere = vec![
        format!("wss://{}:{port}/", n.api),
        format!("wss://{}:{port}/ws/", n.api),
        format!("wss://{}:{port}{}/", n.api, n.api_prefix),
    ];
    match style {
        Style::PathPrefix => {
            elsewhere.push(format!("wss://{}:{port}/stream/", n.api));
            elsewhere.push(format!("wss://{}:{port}/rbac", n.api));
            for path in ["/ws/", "/", "/hello/world"] {
                let resp = https_request(Arc::clone(&tls), addr, n.api, "GET", path, &[]).await;
                assert_eq!(resp.status, 404, "{kind:?} GET {path}: {}", resp.text());
            }
        }
        Style::Subdomain => {
            elsewhere.push(format!("wss://stream.example.com:{port}/"));
            elsewhere.push(format!("wss://example.com:{port}/"));
            elsewhere.push(format!("wss://localhost:{port}/"));
        }
    }
    for url in &elsewhere {
        assert_no_worker_session(&tls, addr, url, &[("authorization", "Bearer user")]).await;
    }

    // Plain HTTP only redirects to https.
    let redirect = http_get_host(proxy.http, n.api, &format!("{}/hello/world", n.api_prefix)).await;
    assert!(
        matches!(redirect.status, 301 | 308),
        "{kind:?} plain http: {} {:?}",
        redirect.status,
        redirect.headers
    );
    assert!(
        redirect
            .header("location")
            .is_some_and(|l| l.starts_with("https://")),
        "{:?}",
        redirect.headers
    );

    // The official Node SDK through the prefix, with a channel: the SDK derives
    // `…/rbac/ws/channels/{id}` from the URL it connected to.
    if style == Style::PathPrefix {
        let url = format!("wss://localhost:{port}/rbac/");
        let mut node = Driver::node_at_trusting(
            &url,
            "node-via-proxy",
            &json!({"authorization": "Bearer user"}),
            &cert.cert_path(),
        )
        .await;
        let answer = node
            .ok(
                "trigger",
                json!({"function_id": "api::echo", "payload": {"sdk": "node"}, "timeoutMs": 10_000}),
            )
            .await;
        assert_eq!(answer["sdk"], "node", "{answer}");
        let sent = node
            .ok(
                "channel_send",
                json!({"function_id": "api::read", "messages": ["hi"], "data": "through the proxy"}),
            )
            .await;
        assert_eq!(sent["answer"]["text"], "through the proxy", "{sent}");
        assert_eq!(sent["answer"]["messages"], json!(["hi"]), "{sent}");
    }
    drop(proxy);
}

/// `url` through the proxy gives no worker session: the TLS or HTTP handshake is refused, or
/// whatever answers is not a worker listener.
async fn assert_no_worker_session(
    tls: &Arc<rustls::ClientConfig>,
    addr: std::net::SocketAddr,
    url: &str,
    headers: &[(&str, &str)],
) {
    match wss_connect(Arc::clone(tls), addr, url, headers).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_ne!(resp.status().as_u16(), 101, "{url}");
        }
        Err(_) => {}
        Ok(mut ws) => {
            if let Some(Incoming::Json(v)) = next_within(&mut ws, STEP / 5).await {
                assert_ne!(
                    v["type"], "workerregistered",
                    "{url} reached a worker port: {v}"
                );
            }
        }
    }
}

#[test]
fn no_example_routes_to_the_trusted_port() {
    for kind in [Kind::Nginx, Kind::Caddy] {
        for style in [Style::PathPrefix, Style::Subdomain] {
            let file = proxy::example_path(kind, style);
            let text = std::fs::read_to_string(&file).unwrap();
            for (i, line) in text.lines().enumerate() {
                let code = line.split('#').next().unwrap_or_default();
                assert!(
                    !code.contains("49134"),
                    "{}:{}: {line}",
                    file.display(),
                    i + 1
                );
            }
            assert!(
                text.contains("49135"),
                "{} has no RBAC listener route",
                file.display()
            );
        }
    }
}

#[tokio::test]
async fn nginx_path_prefix_example_serves_rest_and_rbac_workers_only() {
    proves(Kind::Nginx, Style::PathPrefix).await;
}

#[tokio::test]
async fn nginx_subdomain_example_serves_rest_and_rbac_workers_only() {
    proves(Kind::Nginx, Style::Subdomain).await;
}

#[tokio::test]
async fn caddy_path_prefix_example_serves_rest_and_rbac_workers_only() {
    proves(Kind::Caddy, Style::PathPrefix).await;
}

#[tokio::test]
async fn caddy_subdomain_example_serves_rest_and_rbac_workers_only() {
    proves(Kind::Caddy, Style::Subdomain).await;
}
