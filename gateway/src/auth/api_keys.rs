//! `auth.api_keys`: API keys stored as SHA-256 hashes (inline and/or in `keys_file`), each
//! mapped to an AuthResult, and the constant-time lookup of a presented key.
//!
//! Where the key is read from (header, bearer, query) is `builtin.rs`'s job.

use std::fmt;

use policies::ConfigError;
use serde_json::{Map, Value, json};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::config_fields::{Fields, Problems, join, type_name};
use super::result_shape::{AUTH_RESULT_FIELDS, expected, field_fits};
use super::{AuthFailure, Verified};

const KEYS: &[&str] = &["keys", "keys_file"];
const ENTRY_KEYS: &[&str] = &["id", "sha256", "result"];
const SHA256_PROBLEM: &str =
    "must be 64 hex characters: the SHA-256 of the key (printf %s KEY | sha256sum)";

/// The hex SHA-256 of a key, as `sha256:` expects it (the same as `printf %s KEY | sha256sum`).
#[must_use]
pub fn sha256_hex(key: &str) -> String {
    Sha256::digest(key.as_bytes())
        .iter()
        .map(|byte| format!("{byte:02x}"))
        .collect()
}

/// A compiled `api_keys:` block.
pub(crate) struct ApiKeys {
    keys: Vec<StoredKey>,
}

struct StoredKey {
    id: String,
    hash: [u8; 32],
    result: Value,
}

impl fmt::Debug for ApiKeys {
    /// Prints the key ids only, never the hashes.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ApiKeys")
            .field("ids", &self.keys.iter().map(|k| &k.id).collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

impl ApiKeys {
    /// Compiles the `api_keys:` block found at `path`, reading `keys_file` now.
    pub(super) fn from_config(value: &Value, path: &str, problems: &mut Problems) -> Option<Self> {
        let before = problems.len();
        let fields = Fields::new(value, path, KEYS, problems)?;
        let mut keys = Vec::new();
        if let Some(inline) = fields.get("keys") {
            read_entries(inline, &fields.key_path("keys"), &mut keys, problems);
        }
        if fields.has("keys_file") {
            read_keys_file(&fields, &mut keys, problems);
        }
        if !fields.has("keys") && !fields.has("keys_file") {
            problems.push(ConfigError::new(path, "give keys, keys_file or both"));
        }
        check_duplicates(&keys, &fields, problems);
        if keys.is_empty() && problems.len() == before {
            problems.push(ConfigError::new(
                path,
                "no keys: keys and keys_file hold no entry",
            ));
        }
        (problems.len() == before).then_some(Self { keys })
    }

    /// Looks a presented key up.
    ///
    /// # Errors
    /// `unknown API key`.
    pub(super) fn verify(&self, presented: &str) -> Result<Verified, AuthFailure> {
        let digest: [u8; 32] = Sha256::digest(presented.as_bytes()).into();
        // Every stored hash is compared, in constant time, with no early exit: how long this
        // takes depends on the number of keys only. (A HashMap keyed by the digest would leak
        // nothing either, since nobody can choose a key by its digest; the scan just needs no
        // such argument, and key lists are short.) Remembering the match is the one branch,
        // and it reveals only what the answer reveals anyway.
        let mut matched = None;
        for stored in &self.keys {
            if bool::from(stored.hash.as_slice().ct_eq(digest.as_slice())) {
                matched = Some(stored);
            }
        }
        let stored = matched.ok_or_else(|| AuthFailure("unknown API key".to_owned()))?;
        Ok(Verified {
            identity: json!({ "kind": "api_key", "subject": stored.id, "key_id": stored.id }),
            result: stored.result.clone(),
        })
    }

    /// How many keys are loaded.
    pub(super) fn len(&self) -> usize {
        self.keys.len()
    }
}

/// `keys_file`: a YAML (or JSON) list of entries. Problems inside it are reported at the
/// `keys_file` key, naming the file and the entry.
fn read_keys_file(fields: &Fields<'_>, keys: &mut Vec<StoredKey>, problems: &mut Problems) {
    let at = fields.key_path("keys_file");
    let Some((name, bytes)) = fields.file("keys_file", problems) else {
        return;
    };
    let Ok(text) = String::from_utf8(bytes) else {
        problems.push(ConfigError::new(at, format!("{name} is not UTF-8 text")));
        return;
    };
    let value = match policies::from_yaml::<Value>(&text) {
        Ok(value) => value,
        Err(error) => {
            problems.push(ConfigError::new(at, format!("{name}:{error}")));
            return;
        }
    };
    let mut inner = Problems::new();
    read_entries(&value, "", keys, &mut inner);
    problems.extend(
        inner
            .into_iter()
            .map(|problem| ConfigError::new(&at, format!("{name}: {problem}"))),
    );
}

fn read_entries(value: &Value, path: &str, keys: &mut Vec<StoredKey>, problems: &mut Problems) {
    let Value::Array(entries) = value else {
        problems.push(ConfigError::new(
            path,
            format!("expected a list of keys, got {}", type_name(value)),
        ));
        return;
    };
    for (i, entry) in entries.iter().enumerate() {
        if let Some(key) = read_entry(entry, &format!("{path}[{i}]"), problems) {
            keys.push(key);
        }
    }
}

fn read_entry(entry: &Value, path: &str, problems: &mut Problems) -> Option<StoredKey> {
    let before = problems.len();
    let fields = Fields::new(entry, path, ENTRY_KEYS, problems)?;
    for required in ["id", "sha256"] {
        if !fields.has(required) {
            problems.push(ConfigError::new(fields.key_path(required), "required"));
        }
    }
    let id = fields.non_empty_string("id", problems);
    let hash = fields.string("sha256", problems).and_then(|hex| {
        let hash = decode_sha256(hex);
        if hash.is_none() {
            problems.push(ConfigError::new(fields.key_path("sha256"), SHA256_PROBLEM));
        }
        hash
    });
    let result = match fields.get("result") {
        Some(result) => read_result(result, &fields.key_path("result"), problems),
        None => id.map(|id| json!({ "context": { "key_id": id } })),
    };
    let (Some(id), Some(hash), Some(result)) = (id, hash, result) else {
        return None;
    };
    (problems.len() == before).then(|| StoredKey {
        id: id.to_owned(),
        hash,
        result,
    })
}

/// An entry's `result:`: an AuthResult map whose fields have the right shapes.
fn read_result(value: &Value, path: &str, problems: &mut Problems) -> Option<Value> {
    let before = problems.len();
    let fields = Fields::new(value, path, AUTH_RESULT_FIELDS, problems)?;
    let mut result = Map::new();
    for field in AUTH_RESULT_FIELDS {
        if let Some(value) = fields.get(field) {
            if !field_fits(field, value) {
                problems.push(ConfigError::new(
                    join(path, field),
                    format!("expected {}", expected(field)),
                ));
            }
            result.insert((*field).to_owned(), value.clone());
        }
    }
    (problems.len() == before).then_some(Value::Object(result))
}

fn decode_sha256(hex: &str) -> Option<[u8; 32]> {
    let mut hash = [0u8; 32];
    if hex.len() != 64 {
        return None;
    }
    for (byte, pair) in hash.iter_mut().zip(hex.as_bytes().chunks_exact(2)) {
        let mut value = 0u8;
        for digit in pair {
            value = value << 4 | u8::try_from(char::from(*digit).to_digit(16)?).ok()?;
        }
        *byte = value;
    }
    Some(hash)
}

fn check_duplicates(keys: &[StoredKey], fields: &Fields<'_>, problems: &mut Problems) {
    for (i, key) in keys.iter().enumerate() {
        let mut earlier = keys.iter().take(i);
        if let Some(first) = keys.iter().take(i).find(|k| k.id == key.id) {
            problems.push(ConfigError::new(
                fields.path(),
                format!("duplicate key id '{}'", first.id),
            ));
        } else if let Some(first) = earlier.find(|k| k.hash == key.hash) {
            problems.push(ConfigError::new(
                fields.path(),
                format!("keys '{}' and '{}' have the same sha256", first.id, key.id),
            ));
        }
    }
}

#[cfg(test)]
#[path = "api_keys_tests.rs"]
mod tests;
