//! TLS of the real `iii-gateway` binary: SNI picks the certificate, ALPN follows the routes,
//! and a reload (new files + SIGHUP, or a file change) keeps open WebSockets while new
//! handshakes see the new certificate.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod support;

use std::time::Duration;

use futures_util::{SinkExt as _, StreamExt as _};
use support::clients;
use support::process::Gateway;
use support::{Ca, Leaf, upstreams};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message;

fn config(
    ws: std::net::SocketAddr,
    http: std::net::SocketAddr,
    certs: &[(&Leaf, &str)],
    extra: &str,
) -> String {
    let mut yaml = format!(
        "engine:\n  url: ws://{ws}\n  rest_url: http://{http}\n  stream_url: http://{ws}\ntls:\n{extra}  certificates:\n"
    );
    for (leaf, names) in certs {
        yaml.push_str(&format!(
            "    - {{ cert_file: \"{}\", key_file: \"{}\", server_names: [{names}] }}\n",
            leaf.cert_file.display(),
            leaf.key_file.display()
        ));
    }
    yaml
}

#[tokio::test]
async fn sni_picks_the_certificate_for_each_name_and_the_first_is_the_default() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let a = ca.leaf(dir.path(), "a", &["a.test"]);
    let b = ca.leaf(dir.path(), "b", &["b.test", "x.wild.test"]);
    let (ws, _) = upstreams::ws_echo().await;
    let http = upstreams::http_echo().await;
    let mut yaml = config(
        ws,
        http,
        &[(&a, "a.test"), (&b, "b.test, \"*.wild.test\"")],
        "",
    );
    yaml.push_str("edge:\n  port: 0\n  routes:\n    - { path_prefix: /api/, to: rest }\n");
    let gw = Gateway::run_in(dir, &yaml).await;
    let edge = gw.addr("edge");
    let tls = ca.client_config(&[]);
    assert_eq!(clients::peer_cert(edge, "a.test", tls.clone()).await, a.der);
    assert_eq!(clients::peer_cert(edge, "b.test", tls.clone()).await, b.der);
    assert_eq!(
        clients::peer_cert(edge, "x.wild.test", tls.clone()).await,
        b.der
    );
    // An unknown name gets the default (first) certificate, which the client then refuses.
    let unknown = clients::tls(edge, "c.test", tls).await;
    assert!(
        unknown.is_err(),
        "a.test's certificate must not validate for c.test"
    );
}

#[tokio::test]
async fn alpn_offers_h2_only_on_http_only_edges() {
    let ca = Ca::new();
    let (ws, _) = upstreams::ws_echo().await;
    let http = upstreams::http_echo().await;
    let offer: &[&[u8]] = &[b"h2", b"http/1.1"];
    for (edge, want) in [
        (
            "edge:\n  port: 0\n  routes:\n    - { path_prefix: /s/, to: stream }\n",
            b"http/1.1".as_slice(),
        ),
        (
            "edge:\n  port: 0\n  h2: true\n  routes:\n    - { path_prefix: /api/, to: rest }\n",
            b"h2".as_slice(),
        ),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let leaf = ca.leaf(dir.path(), "site", &["localhost"]);
        let yaml = config(ws, http, &[(&leaf, "localhost")], "") + edge;
        let gw = Gateway::run_in(dir, &yaml).await;
        let stream = clients::tls(gw.addr("edge"), "localhost", ca.client_config(offer))
            .await
            .unwrap();
        assert_eq!(stream.get_ref().1.alpn_protocol(), Some(want));
    }
}

async fn wait_for_cert(addr: std::net::SocketAddr, ca: &Ca, want: &[u8]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if clients::peer_cert(addr, "localhost", ca.client_config(&[])).await == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was never served"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn echo(ws: &mut clients::Wss, text: &str) {
    ws.send(Message::text(text)).await.unwrap();
    let back = tokio::time::timeout(Duration::from_secs(10), ws.next())
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(back, Message::text(text));
}

#[tokio::test]
async fn sighup_reload_keeps_open_websockets_and_new_handshakes_see_the_new_certificate() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let old = ca.leaf(dir.path(), "site", &["localhost"]);
    let (ws, _) = upstreams::ws_echo().await;
    let http = upstreams::http_echo().await;
    // watch: false, so only SIGHUP can reload here.
    let mut yaml = config(ws, http, &[(&old, "localhost")], "  watch: false\n");
    yaml.push_str("edge:\n  port: 0\n  routes:\n    - { path_prefix: /s/, to: stream }\n");
    let gw = Gateway::run_in(dir, &yaml).await;
    let edge = gw.addr("edge");
    assert_eq!(
        clients::peer_cert(edge, "localhost", ca.client_config(&[])).await,
        old.der
    );
    let mut open = clients::wss(edge, "localhost", "/s/", ca.client_config(&[b"http/1.1"]))
        .await
        .unwrap();
    echo(&mut open, "before").await;

    let new = ca.leaf(gw.path(), "site", &["localhost"]);
    assert_ne!(new.der, old.der);
    assert_eq!(
        clients::peer_cert(edge, "localhost", ca.client_config(&[])).await,
        old.der
    );
    gw.signal("HUP");
    wait_for_cert(edge, &ca, &new.der).await;
    echo(&mut open, "after the reload").await;
    assert!(
        gw.output().contains("SIGHUP: certificates reloaded"),
        "{}",
        gw.output()
    );

    // A broken file on SIGHUP keeps the current certificate and the process.
    std::fs::write(gw.path().join("site-key.pem"), "junk").unwrap();
    gw.signal("HUP");
    let deadline = Instant::now() + Duration::from_secs(10);
    while !gw.output().contains("keeping the previous ones") {
        assert!(Instant::now() < deadline, "{}", gw.output());
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        clients::peer_cert(edge, "localhost", ca.client_config(&[])).await,
        new.der
    );
    echo(&mut open, "still here").await;
}

#[tokio::test]
async fn changed_files_are_reloaded_without_a_signal() {
    let ca = Ca::new();
    let dir = tempfile::tempdir().unwrap();
    let old = ca.leaf(dir.path(), "site", &["localhost"]);
    let (ws, _) = upstreams::ws_echo().await;
    let http = upstreams::http_echo().await;
    let mut yaml = config(ws, http, &[(&old, "localhost")], "");
    yaml.push_str("edge:\n  port: 0\n  routes:\n    - { path_prefix: /s/, to: stream }\n");
    let gw = Gateway::run_in(dir, &yaml).await;
    let edge = gw.addr("edge");
    let mut open = clients::wss(edge, "localhost", "/s/", ca.client_config(&[b"http/1.1"]))
        .await
        .unwrap();
    let new = ca.leaf(gw.path(), "site", &["localhost"]);
    wait_for_cert(edge, &ca, &new.der).await;
    echo(&mut open, "after the file change").await;
}
