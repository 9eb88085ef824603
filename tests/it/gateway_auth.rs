//! Built-in authentication on a gateway listener: JWT (HS256) with a claims mapping, API keys
//! from any of their three places, and the layering with an auth function that receives the
//! verified identity.

use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use sha2::Digest as _;

use crate::support::ws::{Incoming, connect, connect_with_token, next_within};
use crate::support::{Driver, Engine, Gateway, RawWorker, STEP};

const SECRET: &str = "test-secret-of-some-length-0123456789";
const API_KEY: &str = "pk_live_partner_a";

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn jwt(claims: &Value) -> String {
    let key = jsonwebtoken::EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        claims,
        &key,
    )
    .unwrap()
}

fn sha256_hex(text: &str) -> String {
    sha2::Sha256::digest(text.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

async fn backend() -> (Engine, Driver) {
    let engine = Engine::start().await;
    let mut trusted = Driver::node(&engine, "trusted").await;
    trusted
        .ok(
            "register",
            json!({"functions": [
                {"id": "api::echo", "kind": "echo"},
                {"id": "orders::list", "kind": "echo"},
                {"id": "test::auth", "kind": "hook", "value": {"allowed_functions": ["orders::list"], "context": {"by": "auth fn"}}},
            ]}),
        )
        .await;
    (engine, trusted)
}

fn listener(extra_rbac: &str) -> String {
    format!(
        r#"
listeners:
  - name: pub
    port: 0
    rbac:
      expose_functions: [ 'match("api::*")' ]
{extra_rbac}
    auth:
      jwt:
        algorithms: [HS256]
        secret: {SECRET}
        issuer: https://issuer.test
        audience: [iii]
        claims:
          allowed_functions: claims.fns
          context: {{ sub: claims.sub, tenant: claims.tenant }}
      api_keys:
        keys:
          - {{ id: partner-a, sha256: "{hash}", result: {{ allowed_functions: [orders::list], context: {{ partner: a }} }} }}
"#,
        hash = sha256_hex(API_KEY)
    )
}

async fn refused(url: &str, token: Option<&str>) -> Value {
    let mut ws = connect_with_token(url, token).await;
    match next_within(&mut ws, STEP).await {
        Some(Incoming::Json(frame)) => {
            assert_eq!(frame["error"]["code"], "AUTH_ERROR", "{frame}");
            match next_within(&mut ws, STEP).await {
                Some(Incoming::Close(Some(close))) => assert_eq!(u16::from(close.code), 1008),
                other => panic!("expected Close 1008, got {other:?}"),
            }
            frame
        }
        other => panic!("expected AUTH_ERROR, got {other:?}"),
    }
}

#[tokio::test]
async fn a_valid_jwt_maps_its_claims_to_the_session() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, &listener("")).await;
    let url = format!("{}/", gateway.ws_url("listener:pub"));
    let token = jwt(
        &json!({"sub": "alice", "tenant": "acme", "fns": ["orders::list"],
                            "iss": "https://issuer.test", "aud": "iii", "exp": now() + 600}),
    );
    let mut alice = RawWorker::connect_url_with_token(&url, Some(&token)).await;
    assert_eq!(alice.call_ok("orders::list", json!({"n": 1})).await["n"], 1);
    assert_eq!(alice.call_ok("api::echo", json!({"n": 2})).await["n"], 2);

    // Expired, wrong audience, wrong signature, missing: refused before any session.
    let expired =
        jwt(&json!({"sub": "a", "iss": "https://issuer.test", "aud": "iii", "exp": now() - 3600}));
    let frame = refused(&url, Some(&expired)).await;
    assert!(
        !frame.to_string().contains(&expired),
        "the token must not be echoed: {frame}"
    );
    let wrong_aud =
        jwt(&json!({"sub": "a", "iss": "https://issuer.test", "aud": "other", "exp": now() + 600}));
    refused(&url, Some(&wrong_aud)).await;
    let mut forged = token.clone();
    forged.push('x');
    refused(&url, Some(&forged)).await;
    let mut ws = connect(&url).await;
    match next_within(&mut ws, STEP).await {
        Some(Incoming::Json(frame)) => assert_eq!(frame["error"]["code"], "AUTH_ERROR", "{frame}"),
        other => panic!("expected AUTH_ERROR, got {other:?}"),
    }
    let log = gateway.output();
    assert!(
        !log.contains(&token) && !log.contains(SECRET),
        "a credential reached the log:\n{log}"
    );
}

#[tokio::test]
async fn api_keys_work_from_the_header_the_query_and_bearer() {
    let (engine, _trusted) = backend().await;
    let gateway = Gateway::start(&engine, &listener("")).await;
    let base = gateway.ws_url("listener:pub");
    // Bearer.
    let mut partner = RawWorker::connect_url_with_token(&format!("{base}/"), Some(API_KEY)).await;
    assert_eq!(
        partner.call_ok("orders::list", json!({"k": 1})).await["k"],
        1
    );
    // The api_key query parameter.
    let mut by_query = RawWorker::connect_url(&format!("{base}/?api_key={API_KEY}")).await;
    assert_eq!(
        by_query.call_ok("orders::list", json!({"k": 2})).await["k"],
        2
    );
    // The x-api-key header, through the Node SDK.
    let mut node = Driver::node_at(&base, "node-partner", &json!({"x-api-key": API_KEY})).await;
    let reply = node.trigger("orders::list", json!({"k": 3})).await;
    assert_eq!(reply["result"]["k"], 3, "{reply}");
    // An unknown key.
    let frame = refused(&format!("{base}/"), Some("pk_live_nobody")).await;
    assert_eq!(frame["error"]["message"], "unknown API key", "{frame}");
}

#[tokio::test]
async fn with_an_auth_function_the_built_in_identity_is_passed_on_and_its_result_wins() {
    let (engine, mut trusted) = backend().await;
    let gateway = Gateway::start(&engine, &listener("      auth_function_id: test::auth")).await;
    let url = format!("{}/", gateway.ws_url("listener:pub"));
    let mut partner = RawWorker::connect_url_with_token(&url, Some(API_KEY)).await;
    let seen = trusted.event_within("hook", STEP).await;
    assert_eq!(
        seen["input"]["identity"],
        json!({"kind": "api_key", "subject": "partner-a", "key_id": "partner-a"}),
        "{seen}"
    );
    assert!(seen["input"]["headers"].is_object(), "{seen}");
    assert_eq!(
        partner.call_ok("orders::list", json!({"via": "fn"})).await["via"],
        "fn"
    );
    // The built-in still verifies first: a bad key never reaches the auth function.
    refused(&url, Some("pk_live_nobody")).await;
}
