//! Reading one map of the `auth:` block by hand, so that every problem is reported with its
//! key path (and all of them at once): unknown keys, wrong types, unreadable `*_file`s.
//!
//! What the keys mean is left to `jwt.rs`, `api_keys.rs` and `claims_mapping.rs`.

use policies::ConfigError;
use serde_json::{Map, Value};

/// The problems found so far; every reader appends to it.
pub(super) type Problems = Vec<ConfigError>;

/// `parent.key`, or `key` at the root.
pub(super) fn join(parent: &str, key: &str) -> String {
    if parent.is_empty() {
        key.to_owned()
    } else {
        format!("{parent}.{key}")
    }
}

/// The YAML/JSON type of a value, for messages.
pub(super) const fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a map",
    }
}

/// One map whose keys are known in advance.
#[derive(Debug)]
pub(super) struct Fields<'a> {
    map: &'a Map<String, Value>,
    path: String,
}

impl<'a> Fields<'a> {
    /// Reads `value` as a map at `path`, reporting every key not in `known`.
    pub(super) fn new(
        value: &'a Value,
        path: &str,
        known: &[&str],
        problems: &mut Problems,
    ) -> Option<Self> {
        let Value::Object(map) = value else {
            problems.push(ConfigError::new(
                path,
                format!("expected a map, got {}", type_name(value)),
            ));
            return None;
        };
        for key in map.keys() {
            if !known.contains(&key.as_str()) {
                let expected = known
                    .iter()
                    .map(|k| format!("`{k}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                problems.push(ConfigError::new(
                    join(path, key),
                    format!("unknown field `{key}`, expected one of {expected}"),
                ));
            }
        }
        Some(Self {
            map,
            path: path.to_owned(),
        })
    }

    /// The path of this map.
    pub(super) fn path(&self) -> &str {
        &self.path
    }

    /// The path of one of its keys.
    pub(super) fn key_path(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// A key's value, when written.
    pub(super) fn get(&self, key: &str) -> Option<&'a Value> {
        self.map.get(key)
    }

    /// Whether a key is written.
    pub(super) fn has(&self, key: &str) -> bool {
        self.map.contains_key(key)
    }

    /// A string key.
    pub(super) fn string(&self, key: &str, problems: &mut Problems) -> Option<&'a str> {
        match self.get(key)? {
            Value::String(s) => Some(s),
            other => {
                problems.push(self.wrong_type(key, "a string", other));
                None
            }
        }
    }

    /// A non-empty string key.
    pub(super) fn non_empty_string(&self, key: &str, problems: &mut Problems) -> Option<&'a str> {
        let value = self.string(key, problems)?;
        if value.is_empty() {
            problems.push(ConfigError::new(self.key_path(key), "must not be empty"));
            return None;
        }
        Some(value)
    }

    /// A boolean key.
    pub(super) fn bool(&self, key: &str, problems: &mut Problems) -> Option<bool> {
        match self.get(key)? {
            Value::Bool(b) => Some(*b),
            other => {
                problems.push(self.wrong_type(key, "true or false", other));
                None
            }
        }
    }

    /// A non-negative integer key.
    pub(super) fn u64(&self, key: &str, problems: &mut Problems) -> Option<u64> {
        let value = self.get(key)?;
        match value.as_u64() {
            Some(n) => Some(n),
            None => {
                problems.push(self.wrong_type(key, "a non-negative integer", value));
                None
            }
        }
    }

    /// A key written as one string or a list of strings; `Some(empty)` is never returned.
    pub(super) fn strings(&self, key: &str, problems: &mut Problems) -> Option<Vec<String>> {
        let value = self.get(key)?;
        let list = match value {
            Value::String(s) => vec![s.clone()],
            Value::Array(items) => {
                let mut list = Vec::with_capacity(items.len());
                for (i, item) in items.iter().enumerate() {
                    match item {
                        Value::String(s) => list.push(s.clone()),
                        other => problems.push(ConfigError::new(
                            format!("{}[{i}]", self.key_path(key)),
                            format!("expected a string, got {}", type_name(other)),
                        )),
                    }
                }
                if list.len() != items.len() {
                    return None;
                }
                list
            }
            other => {
                problems.push(self.wrong_type(key, "a string or a list of strings", other));
                return None;
            }
        };
        if list.is_empty() || list.iter().any(String::is_empty) {
            problems.push(ConfigError::new(
                self.key_path(key),
                "must hold at least one value, none of them empty",
            ));
            return None;
        }
        Some(list)
    }

    /// The contents of the file named by a string key (read once, at load time).
    pub(super) fn file(&self, key: &str, problems: &mut Problems) -> Option<(String, Vec<u8>)> {
        let name = self.non_empty_string(key, problems)?;
        match std::fs::read(name) {
            Ok(bytes) => Some((name.to_owned(), bytes)),
            Err(error) => {
                problems.push(ConfigError::new(
                    self.key_path(key),
                    format!("cannot read {name}: {error}"),
                ));
                None
            }
        }
    }

    fn wrong_type(&self, key: &str, expected: &str, got: &Value) -> ConfigError {
        ConfigError::new(
            self.key_path(key),
            format!("expected {expected}, got {}", type_name(got)),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::{Fields, Problems};
    use serde_json::json;

    #[test]
    fn unknown_keys_and_wrong_types_are_all_reported_with_paths() {
        let value = json!({"a": 1, "b": "x", "c": [1, "y"], "bogus": true});
        let mut problems = Problems::new();
        let fields = Fields::new(&value, "jwt", &["a", "b", "c"], &mut problems).unwrap();
        assert_eq!(fields.string("a", &mut problems), None);
        assert_eq!(fields.u64("b", &mut problems), None);
        assert_eq!(fields.strings("c", &mut problems), None);
        let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(
            text,
            [
                "jwt.bogus: unknown field `bogus`, expected one of `a`, `b`, `c`",
                "jwt.a: expected a string, got a number",
                "jwt.b: expected a non-negative integer, got a string",
                "jwt.c[0]: expected a string, got a number",
            ]
        );
    }

    #[test]
    fn a_missing_file_names_its_path() {
        let value = json!({"f": "/nonexistent/iii-gateway-test"});
        let mut problems = Problems::new();
        let fields = Fields::new(&value, "", &["f"], &mut problems).unwrap();
        assert!(fields.file("f", &mut problems).is_none());
        assert_eq!(problems[0].path(), "f");
        assert!(
            problems[0]
                .problem()
                .starts_with("cannot read /nonexistent/iii-gateway-test: "),
            "{}",
            problems[0]
        );
    }

    #[test]
    fn a_non_map_is_reported() {
        let mut problems = Problems::new();
        assert!(Fields::new(&json!([1]), "api_keys", &[], &mut problems).is_none());
        assert_eq!(
            problems[0].to_string(),
            "api_keys: expected a map, got a list"
        );
    }
}
