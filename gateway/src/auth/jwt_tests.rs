//! Unit tests of `jwt.rs`: time, issuer, audience, signature and algorithm checks, key loading
//! (HS secrets, EC and Ed25519 PEM keys) and config errors.

use jsonwebtoken::{Algorithm, EncodingKey, Header, encode, get_current_timestamp};
use serde_json::{Value, json};

use super::JwtVerifier;
use crate::auth::config_fields::Problems;
use crate::auth::test_files::TempFile;

const SECRET: &str = "0123456789abcdef0123456789abcdef";

fn compile(config: &Value) -> JwtVerifier {
    let mut problems = Problems::new();
    let verifier = JwtVerifier::from_config(config, "jwt", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    verifier.unwrap()
}

fn problems(config: &Value) -> Vec<String> {
    let mut problems = Problems::new();
    assert!(JwtVerifier::from_config(config, "jwt", &mut problems).is_none());
    problems.iter().map(ToString::to_string).collect()
}

fn hs256() -> JwtVerifier {
    compile(&json!({"algorithms": ["HS256"], "secret": SECRET}))
}

fn sign(alg: Algorithm, secret: &str, claims: &Value) -> String {
    let key = EncodingKey::from_secret(secret.as_bytes()).unwrap();
    encode(&Header::new(alg), claims, &key).unwrap()
}

fn now() -> u64 {
    get_current_timestamp()
}

fn failure(verifier: &JwtVerifier, token: &str) -> String {
    let message = verifier.verify(token).unwrap_err().0;
    assert!(!message.contains(token), "{message}");
    message
}

#[test]
fn a_valid_hs256_token_maps_to_the_default_result() {
    let claims = json!({"sub": "u1", "exp": now() + 60, "tenant": "t1"});
    let verified = hs256()
        .verify(&sign(Algorithm::HS256, SECRET, &claims))
        .unwrap();
    assert_eq!(verified.result, json!({"context": {"sub": "u1"}}));
    assert_eq!(
        verified.identity,
        json!({"kind": "jwt", "subject": "u1", "claims": claims})
    );
}

#[test]
fn a_token_without_sub_has_a_null_subject() {
    let token = sign(Algorithm::HS256, SECRET, &json!({"exp": now() + 60}));
    let verified = hs256().verify(&token).unwrap();
    assert_eq!(verified.identity["subject"], Value::Null);
    assert_eq!(verified.result, json!({"context": {}}));
}

#[test]
fn an_expired_token_is_refused_beyond_the_leeway() {
    let verifier = hs256();
    let expired = sign(Algorithm::HS256, SECRET, &json!({"exp": now() - 100}));
    assert_eq!(failure(&verifier, &expired), "token expired");
    let within_leeway = sign(Algorithm::HS256, SECRET, &json!({"exp": now() - 5}));
    assert!(verifier.verify(&within_leeway).is_ok());
    let strict = compile(&json!({"algorithms": ["HS256"], "secret": SECRET, "leeway_secs": 0}));
    assert_eq!(failure(&strict, &within_leeway), "token expired");
}

#[test]
fn a_token_not_yet_valid_is_refused() {
    let claims = json!({"exp": now() + 600, "nbf": now() + 300});
    let token = sign(Algorithm::HS256, SECRET, &claims);
    assert_eq!(failure(&hs256(), &token), "token not yet valid (nbf)");
    let soon = json!({"exp": now() + 600, "nbf": now() + 5});
    assert!(
        hs256()
            .verify(&sign(Algorithm::HS256, SECRET, &soon))
            .is_ok()
    );
}

#[test]
fn the_issuer_must_match_and_be_present_when_configured() {
    let verifier = compile(&json!({
        "algorithms": "HS256", "secret": SECRET, "issuer": ["https://a", "https://b"],
    }));
    let exp = now() + 60;
    let good = sign(
        Algorithm::HS256,
        SECRET,
        &json!({"exp": exp, "iss": "https://b"}),
    );
    assert!(verifier.verify(&good).is_ok());
    let wrong = sign(
        Algorithm::HS256,
        SECRET,
        &json!({"exp": exp, "iss": "https://c"}),
    );
    assert_eq!(failure(&verifier, &wrong), "token issuer not accepted");
    let none = sign(Algorithm::HS256, SECRET, &json!({"exp": exp}));
    assert_eq!(failure(&verifier, &none), "token has no iss claim");
}

#[test]
fn the_audience_is_checked_only_when_configured() {
    let exp = now() + 60;
    let for_app = sign(
        Algorithm::HS256,
        SECRET,
        &json!({"exp": exp, "aud": ["my-app"]}),
    );
    let for_other = sign(
        Algorithm::HS256,
        SECRET,
        &json!({"exp": exp, "aud": "other"}),
    );
    let without = sign(Algorithm::HS256, SECRET, &json!({"exp": exp}));
    let verifier =
        compile(&json!({"algorithms": ["HS256"], "secret": SECRET, "audience": "my-app"}));
    assert!(verifier.verify(&for_app).is_ok());
    assert_eq!(
        failure(&verifier, &for_other),
        "token audience not accepted"
    );
    assert_eq!(failure(&verifier, &without), "token has no aud claim");
    assert!(hs256().verify(&for_other).is_ok());
}

#[test]
fn a_bad_signature_is_refused() {
    let token = sign(
        Algorithm::HS256,
        "another secret, just as long....",
        &json!({"exp": now() + 60}),
    );
    assert_eq!(failure(&hs256(), &token), "invalid token signature");
}

#[test]
fn an_algorithm_not_listed_is_refused() {
    let token = sign(Algorithm::HS384, SECRET, &json!({"exp": now() + 60}));
    assert_eq!(failure(&hs256(), &token), "token algorithm not allowed");
    let both = compile(&json!({"algorithms": ["HS256", "HS384"], "secret": SECRET}));
    assert!(both.verify(&token).is_ok());
}

#[test]
fn exp_is_required_unless_turned_off() {
    let token = sign(Algorithm::HS256, SECRET, &json!({"sub": "u1"}));
    assert_eq!(failure(&hs256(), &token), "token has no exp claim");
    let lenient =
        compile(&json!({"algorithms": ["HS256"], "secret": SECRET, "require_exp": false}));
    assert!(lenient.verify(&token).is_ok());
    let expired = sign(Algorithm::HS256, SECRET, &json!({"exp": now() - 100}));
    assert_eq!(failure(&lenient, &expired), "token expired");
}

#[test]
fn malformed_tokens_are_refused_without_echo() {
    let verifier = hs256();
    for token in ["a.b.c", "not-a-token", "eyJhbGciOiJub25lIn0.e30.", ""] {
        assert_eq!(
            verifier.verify(token).unwrap_err().0,
            "malformed token",
            "{token}"
        );
    }
}

#[test]
fn claims_are_mapped_through_the_declared_mapping() {
    let verifier = compile(&json!({
        "algorithms": ["HS512"], "secret": SECRET,
        "claims": {
            "allowed_functions": "claims.fns",
            "function_registration_prefix": "claims.tenant",
            "context": {"sub": "claims.sub", "tenant": "claims.tenant"},
        },
    }));
    let claims = json!({"sub": "u1", "tenant": "t1", "fns": ["api::a"], "exp": now() + 60});
    let verified = verifier
        .verify(&sign(Algorithm::HS512, SECRET, &claims))
        .unwrap();
    assert_eq!(
        verified.result,
        json!({
            "allowed_functions": ["api::a"],
            "function_registration_prefix": "t1",
            "context": {"sub": "u1", "tenant": "t1"},
        })
    );
}

#[test]
fn secrets_come_from_files_and_base64() {
    let file = TempFile::new(format!("{SECRET}\n"));
    let from_file = compile(&json!({"algorithms": ["HS256"], "secret_file": file.path()}));
    let token = sign(Algorithm::HS256, SECRET, &json!({"exp": now() + 60}));
    assert!(from_file.verify(&token).is_ok());
    // "0123456789abcdef0123456789abcdef" in standard base64.
    let encoded = "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=";
    let from_base64 = compile(&json!({
        "algorithms": ["HS256"], "secret": encoded, "secret_base64": true,
    }));
    assert!(from_base64.verify(&token).is_ok());
}

#[test]
fn an_es256_key_from_a_pem_file_verifies_tokens() {
    let pair = rcgen::KeyPair::generate().unwrap();
    let file = TempFile::new(pair.public_key_pem());
    let verifier = compile(&json!({"algorithms": ["ES256"], "public_key_file": file.path()}));
    let signing = EncodingKey::from_ec_pem(pair.serialize_pem().as_bytes()).unwrap();
    let claims = json!({"sub": "svc", "exp": now() + 60});
    let token = encode(&Header::new(Algorithm::ES256), &claims, &signing).unwrap();
    assert_eq!(verifier.verify(&token).unwrap().identity["subject"], "svc");
    let forged = sign(Algorithm::HS256, &pair.public_key_pem(), &claims);
    assert_eq!(failure(&verifier, &forged), "token algorithm not allowed");

    let errors = problems(&json!({"algorithms": ["ES384"], "public_key_file": file.path()}));
    assert_eq!(
        errors,
        ["jwt.public_key_file: the key cannot verify ES384 tokens"]
    );
}

#[test]
fn an_ed25519_key_given_inline_verifies_tokens() {
    let pair = rcgen::KeyPair::generate_for(&rcgen::PKCS_ED25519).unwrap();
    let verifier = compile(&json!({"algorithms": ["EdDSA"], "public_key": pair.public_key_pem()}));
    let signing = EncodingKey::from_ed_pem(pair.serialize_pem().as_bytes()).unwrap();
    let token = encode(
        &Header::new(Algorithm::EdDSA),
        &json!({"exp": now() + 60}),
        &signing,
    )
    .unwrap();
    assert!(verifier.verify(&token).is_ok());
}

#[test]
fn the_key_never_reaches_debug() {
    let text = format!("{:?}", hs256());
    assert!(!text.contains(SECRET), "{text}");
    assert!(text.contains("<redacted>"), "{text}");
}

#[test]
fn config_problems_name_their_paths() {
    let private_pem = rcgen::KeyPair::generate().unwrap().serialize_pem();
    for (config, expected) in [
        (
            json!({"secret": SECRET}),
            vec![
                "jwt.algorithms: required: list the accepted algorithms (HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA)",
            ],
        ),
        (
            json!({"algorithms": [], "secret": SECRET}),
            vec!["jwt.algorithms: must hold at least one value, none of them empty"],
        ),
        (
            json!({"algorithms": ["HS256", "none"], "secret": SECRET}),
            vec![
                "jwt.algorithms[1]: unknown algorithm 'none': expected one of HS256, HS384, HS512, RS256, RS384, RS512, PS256, PS384, PS512, ES256, ES384, EdDSA",
            ],
        ),
        (
            json!({"algorithms": ["HS256", "RS256"], "secret": SECRET}),
            vec![
                "jwt.algorithms: all algorithms must be of one family (HS*, RS*/PS*, ES* or EdDSA): one key verifies them all",
            ],
        ),
        (
            json!({"algorithms": ["HS256"]}),
            vec!["jwt: HS* algorithms need secret or secret_file"],
        ),
        (
            json!({"algorithms": ["HS256"], "secret": "", "leeway_secs": -1}),
            vec![
                "jwt.secret: must not be empty",
                "jwt.leeway_secs: expected a non-negative integer, got a number",
            ],
        ),
        (
            json!({"algorithms": ["HS256"], "secret": SECRET, "leeway_secs": u64::MAX}),
            vec!["jwt.leeway_secs: at most 3600"],
        ),
        (
            json!({"algorithms": ["HS256"], "secret": SECRET, "secret_file": "/x", "public_key": "k"}),
            vec![
                "jwt.public_key: not used with HS* algorithms: give secret or secret_file",
                "jwt: give secret or secret_file, not both",
            ],
        ),
        (
            json!({"algorithms": ["HS256"], "secret": "%%%", "secret_base64": true}),
            vec!["jwt.secret: is not valid base64 (secret_base64: true)"],
        ),
        (
            json!({"algorithms": ["HS256"], "secret_file": "/nonexistent/jwt-secret"}),
            vec![
                "jwt.secret_file: cannot read /nonexistent/jwt-secret: No such file or directory (os error 2)",
            ],
        ),
        (
            json!({"algorithms": ["RS256"], "secret": SECRET}),
            vec![
                "jwt.secret: not used with RS*/PS* algorithms: give public_key or public_key_file",
                "jwt: RS*/PS* algorithms need public_key or public_key_file",
            ],
        ),
        (
            json!({"algorithms": ["ES256"], "public_key": private_pem}),
            vec!["jwt.public_key: not an EC public key in PEM"],
        ),
        (
            json!({"algorithms": ["RS256"], "public_key": "nope"}),
            vec!["jwt.public_key: not an RSA public key in PEM"],
        ),
        (
            json!({"algorithms": ["HS256"], "secret": SECRET, "issuer": [1], "claims": {"context": "claims."}}),
            vec![
                "jwt.issuer[0]: expected a string, got a number",
                "jwt.claims.context: claim path 'claims.' has an empty segment",
            ],
        ),
        (
            json!({"algorithms": ["HS256"], "secret": SECRET, "secrets": 1}),
            vec![
                "jwt.secrets: unknown field `secrets`, expected one of `algorithms`, `secret`, `secret_file`, `secret_base64`, `public_key`, `public_key_file`, `issuer`, `audience`, `leeway_secs`, `require_exp`, `claims`",
            ],
        ),
    ] {
        assert_eq!(problems(&config), expected, "{config}");
    }
}
