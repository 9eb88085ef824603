//! Unit tests of `api_keys.rs`: hashing, lookup, `keys_file` and config errors.

use serde_json::{Value, json};

use super::{ApiKeys, sha256_hex};
use crate::auth::config_fields::Problems;
use crate::auth::test_files::TempFile;

fn keys(config: &Value) -> ApiKeys {
    let mut problems = Problems::new();
    let keys = ApiKeys::from_config(config, "api_keys", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    keys.unwrap()
}

fn problems(config: &Value) -> Vec<String> {
    let mut problems = Problems::new();
    assert!(ApiKeys::from_config(config, "api_keys", &mut problems).is_none());
    problems.iter().map(ToString::to_string).collect()
}

#[test]
fn sha256_hex_matches_sha256sum() {
    // printf %s abc | sha256sum
    assert_eq!(
        sha256_hex("abc"),
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
}

#[test]
fn a_known_key_maps_to_its_result_and_identity() {
    let keys = keys(&json!({"keys": [
        {"id": "partner-a", "sha256": sha256_hex("key-a"),
         "result": {"allowed_functions": ["api::x"], "context": {"partner": "a"}}},
        {"id": "partner-b", "sha256": sha256_hex("key-b").to_uppercase()},
    ]}));
    let a = keys.verify("key-a").unwrap();
    assert_eq!(
        a.result,
        json!({"allowed_functions": ["api::x"], "context": {"partner": "a"}})
    );
    assert_eq!(
        a.identity,
        json!({"kind": "api_key", "subject": "partner-a", "key_id": "partner-a"})
    );
    let b = keys.verify("key-b").unwrap();
    assert_eq!(b.result, json!({"context": {"key_id": "partner-b"}}));
    assert_eq!(keys.len(), 2);
}

#[test]
fn an_unknown_key_is_refused_without_echo() {
    let keys = keys(&json!({"keys": [{"id": "a", "sha256": sha256_hex("key-a")}]}));
    assert_eq!(keys.verify("key-b").unwrap_err().0, "unknown API key");
    assert_eq!(keys.verify("").unwrap_err().0, "unknown API key");
}

#[test]
fn keys_come_from_a_yaml_or_json_file_as_well() {
    let yaml = TempFile::new(format!(
        "- id: from-yaml\n  sha256: {}\n  result: {{ context: {{ f: 1 }} }}\n",
        sha256_hex("y")
    ));
    let json_file =
        TempFile::new(json!([{"id": "from-json", "sha256": sha256_hex("j")}]).to_string());
    let from_yaml = keys(&json!({
        "keys": [{"id": "inline", "sha256": sha256_hex("i")}],
        "keys_file": yaml.path(),
    }));
    assert_eq!(from_yaml.len(), 2);
    assert_eq!(
        from_yaml.verify("y").unwrap().result,
        json!({"context": {"f": 1}})
    );
    assert!(from_yaml.verify("i").is_ok());
    let from_json = keys(&json!({"keys_file": json_file.path()}));
    assert_eq!(
        from_json.verify("j").unwrap().identity["key_id"],
        "from-json"
    );
}

#[test]
fn problems_in_the_keys_file_name_the_file_and_entry() {
    let file = TempFile::new("- { id: a, sha256: abc }\n- { id: b }\n");
    let name = file.path().to_owned();
    assert_eq!(
        problems(&json!({"keys_file": name})),
        [
            format!(
                "api_keys.keys_file: {name}: [0].sha256: must be 64 hex characters: the SHA-256 of the key (printf %s KEY | sha256sum)"
            ),
            format!("api_keys.keys_file: {name}: [1].sha256: required"),
        ]
    );
    let bad_yaml = TempFile::new("- { id: a\n");
    let text = problems(&json!({"keys_file": bad_yaml.path()})).join("\n");
    assert!(
        text.starts_with(&format!("api_keys.keys_file: {}:", bad_yaml.path())),
        "{text}"
    );
    assert_eq!(
        problems(&json!({"keys_file": "/nonexistent/keys.yaml"})),
        [
            "api_keys.keys_file: cannot read /nonexistent/keys.yaml: No such file or directory (os error 2)"
        ]
    );
}

#[test]
fn config_problems_name_their_paths() {
    let hash = sha256_hex("k");
    assert_eq!(
        problems(&json!({
            "keys": [
                {"id": "a", "sha256": hash},
                {"id": "a", "sha256": sha256_hex("other")},
                {"id": "c", "sha256": hash},
                {"id": "", "sha256": "zz".repeat(32), "bogus": 1},
                {"id": "e", "sha256": sha256_hex("e"), "result": {"allowed_functions": "x", "user": "u"}},
            ],
        })),
        [
            "api_keys.keys[3].bogus: unknown field `bogus`, expected one of `id`, `sha256`, `result`",
            "api_keys.keys[3].id: must not be empty",
            "api_keys.keys[3].sha256: must be 64 hex characters: the SHA-256 of the key (printf %s KEY | sha256sum)",
            "api_keys.keys[4].result.user: unknown field `user`, expected one of `allowed_functions`, `forbidden_functions`, `allowed_trigger_types`, `allow_trigger_type_registration`, `allow_function_registration`, `function_registration_prefix`, `context`, `namespaces`",
            "api_keys.keys[4].result.allowed_functions: expected a list of strings",
            "api_keys: duplicate key id 'a'",
            "api_keys: keys 'a' and 'c' have the same sha256",
        ]
    );
    assert_eq!(
        problems(&json!({})),
        ["api_keys: give keys, keys_file or both"]
    );
    assert_eq!(
        problems(&json!({"keys": []})),
        ["api_keys: no keys: keys and keys_file hold no entry"]
    );
    assert_eq!(
        problems(&json!({"keys": {"id": "a"}})),
        ["api_keys.keys: expected a list of keys, got a map"]
    );
}

#[test]
fn hashes_never_reach_debug() {
    let hash = sha256_hex("k");
    let keys = keys(&json!({"keys": [{"id": "a", "sha256": hash}]}));
    let text = format!("{keys:?}");
    assert!(!text.contains(&hash), "{text}");
    assert!(text.contains("\"a\""), "{text}");
}
