//! `iii-gateway dev`: the embedded engine and the gateway serve https and wss with the
//! self-signed certificate, and stop cleanly on SIGTERM.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use support::clients;
use support::process::Gateway;
use tokio_tungstenite::tungstenite::Message;

fn trust(pem: &str) -> Arc<rustls::ClientConfig> {
    use rustls::pki_types::CertificateDer;
    use rustls::pki_types::pem::PemObject as _;
    support::crypto();
    let mut roots = rustls::RootCertStore::empty();
    roots
        .add(CertificateDer::from_pem_slice(pem.as_bytes()).unwrap())
        .unwrap();
    let mut config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

#[tokio::test]
async fn dev_serves_https_and_wss_and_stops_on_sigterm() {
    let mut gw = Gateway::dev().await;
    for key in [
        "edge",
        "admin",
        "listener:dev",
        "engine:worker",
        "engine:http",
    ] {
        let _ = gw.addr(key);
    }
    let out = gw.output();
    assert!(out.contains("SELF-SIGNED"), "{out}");
    let cert_path = std::env::temp_dir()
        .join(format!("iii-gateway-dev-{}", gw.pid()))
        .join("cert.pem");
    assert!(out.contains(&cert_path.display().to_string()), "{out}");
    let tls = trust(&std::fs::read_to_string(&cert_path).unwrap());
    let edge = gw.addr("edge");

    // https → the engine's REST API (no trigger registered: its 404, not the edge's).
    let r = clients::https_get(
        edge,
        "localhost",
        "localhost",
        "/api/nothing",
        tls.clone(),
        "",
    )
    .await;
    assert_eq!(r.status, 404, "{r:?}");
    assert_ne!(r.header("server").as_deref(), Some("Pingora"), "{r:?}");
    let r = clients::http_get(gw.addr("admin"), "/readyz").await;
    assert_eq!(r.status, 200, "{r:?}");

    // wss through the edge to the RBAC listener, and directly: both upgrade; an SDK frame
    // the engine understands gets an answer.
    for (addr, path) in [(edge, "/rbac/"), (gw.addr("listener:dev"), "/")] {
        let mut ws = clients::wss(addr, "localhost", path, tls.clone())
            .await
            .unwrap();
        ws.send(Message::text(r#"{"type":"invokefunction","invocation_id":"00000000-0000-4000-8000-000000000001","function_id":"engine::functions::list","data":{}}"#)).await.unwrap();
        let reply = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert!(reply.is_text(), "{reply:?}");
        let _ = ws.close(None).await;
    }

    gw.signal("TERM");
    let status = gw.exited(Duration::from_secs(20)).await;
    assert!(status.success(), "{status}:\n{}", gw.output());
    assert!(
        !cert_path.exists(),
        "the dev certificate directory is removed on exit"
    );
}
