//! Unit tests of `builtin.rs`: where credentials are read, in which order, the failure
//! messages, and `auth:` config errors as the gateway config reports them.

use std::collections::HashMap;

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};

use super::{BuiltinAuth, Credentials, Verified};
use crate::auth::sha256_hex;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn both() -> BuiltinAuth {
    BuiltinAuth::from_config(&json!({
        "jwt": {"algorithms": ["HS256"], "secret": SECRET},
        "api_keys": {"keys": [{"id": "partner", "sha256": sha256_hex("the-key")}]},
    }))
    .unwrap()
}

fn only(block: &str) -> BuiltinAuth {
    let config = match block {
        "jwt" => json!({"jwt": {"algorithms": ["HS256"], "secret": SECRET}}),
        _ => json!({"api_keys": {"keys": [{"id": "partner", "sha256": sha256_hex("the-key")}]}}),
    };
    BuiltinAuth::from_config(&config).unwrap()
}

fn token(sub: &str) -> String {
    let claims = json!({"sub": sub, "exp": get_current_timestamp() + 60});
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

fn verify(
    auth: &BuiltinAuth,
    headers: &[(&str, &str)],
    query: &[(&str, &str)],
) -> Result<Verified, String> {
    let headers: HashMap<String, String> = headers
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let mut query_params: HashMap<String, Vec<String>> = HashMap::new();
    for (k, v) in query {
        query_params
            .entry((*k).to_owned())
            .or_default()
            .push((*v).to_owned());
    }
    auth.verify(Credentials {
        headers: &headers,
        query_params: &query_params,
    })
    .map_err(|failure| failure.to_string())
}

fn kind(result: &Result<Verified, String>) -> &str {
    result.as_ref().unwrap().identity["kind"].as_str().unwrap()
}

#[test]
fn an_api_key_is_read_from_each_of_the_three_places() {
    let auth = only("api_keys");
    for (headers, query) in [
        (vec![("x-api-key", "the-key")], vec![]),
        (vec![("authorization", "Bearer the-key")], vec![]),
        (vec![("authorization", "bearer  the-key ")], vec![]),
        (vec![], vec![("api_key", "the-key")]),
    ] {
        let verified = verify(&auth, &headers, &query).unwrap();
        assert_eq!(
            verified.identity["key_id"], "partner",
            "{headers:?} {query:?}"
        );
    }
}

#[test]
fn a_jwt_shaped_bearer_is_a_jwt_and_anything_else_an_api_key() {
    let auth = both();
    let jwt = format!("Bearer {}", token("u1"));
    assert_eq!(kind(&verify(&auth, &[("authorization", &jwt)], &[])), "jwt");
    let key = verify(&auth, &[("authorization", "Bearer the-key")], &[]);
    assert_eq!(kind(&key), "api_key");
    // A JWT-shaped bearer that fails is not retried as an API key.
    let bad = verify(&auth, &[("authorization", "Bearer a.b.c")], &[]);
    assert_eq!(bad.unwrap_err(), "malformed token");
}

#[test]
fn an_api_key_header_or_param_comes_before_the_bearer() {
    let auth = both();
    let jwt = format!("Bearer {}", token("u1"));
    let headers = [("authorization", jwt.as_str()), ("x-api-key", "the-key")];
    assert_eq!(kind(&verify(&auth, &headers, &[])), "api_key");
    let param = verify(&auth, &[("authorization", &jwt)], &[("api_key", "the-key")]);
    assert_eq!(kind(&param), "api_key");
    let wrong = verify(&auth, &[("x-api-key", "nope")], &[]);
    assert_eq!(wrong.unwrap_err(), "unknown API key");
}

#[test]
fn with_jwt_only_every_bearer_is_a_jwt_and_api_key_places_are_ignored() {
    let auth = only("jwt");
    let not_jwt = verify(&auth, &[("authorization", "Bearer the-key")], &[]);
    assert_eq!(not_jwt.unwrap_err(), "malformed token");
    let ignored = verify(
        &auth,
        &[("x-api-key", "the-key")],
        &[("api_key", "the-key")],
    );
    assert_eq!(
        ignored.unwrap_err(),
        "missing credentials (Authorization: Bearer)"
    );
}

#[test]
fn missing_and_unusable_credentials_have_short_messages() {
    assert_eq!(
        verify(&both(), &[], &[]).unwrap_err(),
        "missing credentials (Authorization: Bearer or x-api-key)"
    );
    assert_eq!(
        verify(&only("api_keys"), &[("x-api-key", " ")], &[]).unwrap_err(),
        "missing credentials (x-api-key, Authorization: Bearer or api_key)"
    );
    assert_eq!(
        verify(&both(), &[("authorization", "Basic dXNlcjpwYXNz")], &[]).unwrap_err(),
        "unsupported Authorization scheme (expected Bearer)"
    );
    assert_eq!(
        verify(&both(), &[("authorization", "Bearer ")], &[]).unwrap_err(),
        "missing credentials (Authorization: Bearer or x-api-key)"
    );
    assert_eq!(
        verify(&both(), &[], &[("api_key", "a"), ("api_key", "the-key")]).unwrap_err(),
        "the api_key query parameter is given more than once"
    );
}

#[test]
fn credentials_debug_shows_names_only() {
    let headers = HashMap::from([("authorization".to_owned(), "Bearer s3cr3t".to_owned())]);
    let query = HashMap::from([("api_key".to_owned(), vec!["k3y".to_owned()])]);
    let text = format!(
        "{:?}",
        Credentials {
            headers: &headers,
            query_params: &query
        }
    );
    assert!(!text.contains("s3cr3t") && !text.contains("k3y"), "{text}");
    assert!(text.contains("authorization"), "{text}");
    let debug = format!("{:?}", both());
    assert!(
        !debug.contains(SECRET) && !debug.contains(&sha256_hex("the-key")),
        "{debug}"
    );
}

#[test]
fn the_block_must_be_a_map_with_jwt_or_api_keys() {
    let errors = |config: Value| -> Vec<String> {
        BuiltinAuth::from_config(&config)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    };
    assert_eq!(errors(json!({})), ["give jwt, api_keys or both"]);
    assert_eq!(errors(json!("jwt")), ["expected a map, got a string"]);
    assert_eq!(
        errors(json!({"oauth": {}, "jwt": {"algorithms": ["HS256"]}})),
        [
            "oauth: unknown field `oauth`, expected one of `jwt`, `api_keys`",
            "jwt: HS* algorithms need secret or secret_file",
        ]
    );
    assert!(both().has_jwt());
    assert_eq!(both().api_key_count(), 1);
}

#[test]
fn the_gateway_config_reports_auth_problems_under_the_listener() {
    let text = "listeners:\n  - port: 0\n    auth:\n      jwt: { algorithms: [HS256], secret: ${JWT_SECRET} }\n      api_keys: { keys: [{ id: a, sha256: nope }] }\n";
    let error = crate::config::load_str("gw.yaml", text, |name| {
        (name == "JWT_SECRET").then(|| SECRET.to_owned())
    })
    .unwrap_err()
    .to_string();
    assert!(
        error.contains("gw.yaml:listeners[0].auth.api_keys.keys[0].sha256: must be 64 hex"),
        "{error}"
    );
    assert!(!error.contains("jwt"), "{error}");
    let good = text.replace("nope", &sha256_hex("k"));
    let config = crate::config::load_str("gw.yaml", &good, |name| {
        (name == "JWT_SECRET").then(|| SECRET.to_owned())
    })
    .unwrap();
    let auth = config.listeners[0].config().auth.as_ref().unwrap();
    assert!(BuiltinAuth::from_config(&auth.0).is_ok());
}
