//! `rbac.expose_functions` entries as written (spec §2.1, settled decision 9): parsing with
//! errors that name the entry, and serialization back to iii's `match("…")` spelling.
//!
//! Compiling the entries into one matcher is `expose_matcher.rs`'s job.

use std::collections::BTreeMap;
use std::fmt;

use serde::de::{self, MapAccess, Visitor};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use serde_json::Value;

use crate::wildcard::unwrap_match;

/// The only namespace an expose rule may name: iii-gateway applies the global model.
pub const DEFAULT_NAMESPACE: &str = "default";

/// One `expose_functions` entry.
#[derive(Debug, Clone, PartialEq)]
pub enum FunctionFilter {
    /// `match("pattern")`, `{match: "pattern"}` or `{match: "pattern", namespace: default}`.
    Id(String),
    /// `{metadata: {key: value, …}}`.
    Metadata(MetadataFilter),
}

/// A metadata filter: every key must be present at the top level of the function's metadata
/// object with a matching value (spec §2.3). Keys are kept sorted.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct MetadataFilter {
    /// The conditions, by top-level metadata key.
    pub conditions: BTreeMap<String, MetadataCondition>,
}

/// The value side of one metadata condition.
#[derive(Debug, Clone, PartialEq)]
pub enum MetadataCondition {
    /// A value written as `match("pattern")`: matches string values only.
    Matches(String),
    /// Any other value: deep JSON equality (`1` and `1.0` differ).
    Equals(Value),
}

impl MetadataCondition {
    fn from_value(value: Value) -> Self {
        match value {
            Value::String(text) => match unwrap_match(&text) {
                Some(pattern) => Self::Matches(pattern.to_owned()),
                None => Self::Equals(Value::String(text)),
            },
            other => Self::Equals(other),
        }
    }
}

/// Parses the string spelling; the error text is iii's.
fn parse_match_string(text: &str) -> Result<String, String> {
    unwrap_match(text)
        .map(str::to_owned)
        .ok_or_else(|| format!("expected match(\"pattern\"), got: {text}"))
}

fn wrap_match(pattern: &str) -> String {
    format!("match(\"{pattern}\")")
}

impl Serialize for FunctionFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Id(pattern) => serializer.serialize_str(&wrap_match(pattern)),
            Self::Metadata(filter) => {
                let mut map = serializer.serialize_map(Some(1))?;
                map.serialize_entry("metadata", filter)?;
                map.end()
            }
        }
    }
}

impl Serialize for MetadataFilter {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut map = serializer.serialize_map(Some(self.conditions.len()))?;
        for (key, condition) in &self.conditions {
            match condition {
                MetadataCondition::Matches(pattern) => {
                    map.serialize_entry(key, &wrap_match(pattern))?;
                }
                MetadataCondition::Equals(value) => map.serialize_entry(key, value)?,
            }
        }
        map.end()
    }
}

impl<'de> Deserialize<'de> for FunctionFilter {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FilterVisitor)
    }
}

struct FilterVisitor;

impl<'de> Visitor<'de> for FilterVisitor {
    type Value = FunctionFilter;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("match(\"pattern\"), {match: \"pattern\"} or {metadata: {…}}")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Self::Value, E> {
        parse_match_string(text)
            .map(FunctionFilter::Id)
            .map_err(E::custom)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut pattern: Option<String> = None;
        let mut metadata: Option<serde_json::Map<String, Value>> = None;
        while let Some(key) = map.next_key::<String>()? {
            match key.as_str() {
                "match" => pattern = Some(map.next_value()?),
                "metadata" => metadata = Some(map.next_value()?),
                "namespace" => {
                    let namespace: String = map.next_value()?;
                    if namespace != DEFAULT_NAMESPACE {
                        return Err(de::Error::custom(format!(
                            "namespace '{namespace}' is not supported in expose_functions: \
                             iii-gateway applies rules in namespace '{DEFAULT_NAMESPACE}' only"
                        )));
                    }
                }
                other => {
                    return Err(de::Error::custom(format!(
                        "unknown key '{other}' in expose_functions filter; expected 'match', \
                         'metadata', or 'namespace'"
                    )));
                }
            }
        }
        match (pattern, metadata) {
            (Some(pattern), None) => Ok(FunctionFilter::Id(pattern)),
            (None, Some(metadata)) if metadata.is_empty() => Err(de::Error::custom(
                "expected a 'metadata' key with filter conditions",
            )),
            (None, Some(metadata)) => Ok(FunctionFilter::Metadata(MetadataFilter {
                conditions: metadata
                    .into_iter()
                    .map(|(key, value)| (key, MetadataCondition::from_value(value)))
                    .collect(),
            })),
            (Some(_), Some(_)) => Err(de::Error::custom(
                "an expose_functions filter takes 'match' or 'metadata', not both",
            )),
            (None, None) => Err(de::Error::custom(
                "an expose_functions filter needs 'match' or 'metadata'",
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{FunctionFilter, MetadataCondition};
    use serde_json::json;

    fn parse(yaml: &str) -> Result<Vec<FunctionFilter>, String> {
        yaml_serde::from_str(yaml).map_err(|e| e.to_string())
    }

    #[test]
    fn every_accepted_spelling_parses() {
        let filters = parse(
            r#"
- match("api::*")
- "match('*::public')"
- { match: "orders::*" }
- { match: "billing::*", namespace: default }
- metadata: { public: true, tier: free, name: match("*public*") }
"#,
        )
        .unwrap();
        assert_eq!(filters[0], FunctionFilter::Id("api::*".into()));
        assert_eq!(filters[1], FunctionFilter::Id("*::public".into()));
        assert_eq!(filters[2], FunctionFilter::Id("orders::*".into()));
        assert_eq!(filters[3], FunctionFilter::Id("billing::*".into()));
        let FunctionFilter::Metadata(metadata) = &filters[4] else {
            panic!("expected a metadata filter");
        };
        assert_eq!(
            metadata.conditions["public"],
            MetadataCondition::Equals(json!(true))
        );
        assert_eq!(
            metadata.conditions["tier"],
            MetadataCondition::Equals(json!("free"))
        );
        assert_eq!(
            metadata.conditions["name"],
            MetadataCondition::Matches("*public*".into())
        );
    }

    #[test]
    fn a_bare_pattern_string_is_rejected_with_iiis_message() {
        let error = parse("- api::*").unwrap_err();
        assert!(
            error.contains("expected match(\"pattern\"), got: api::*"),
            "{error}"
        );
    }

    #[test]
    fn malformed_maps_are_rejected_naming_the_problem() {
        let cases = [
            (
                "- { matches: \"a\" }",
                "unknown key 'matches' in expose_functions filter",
            ),
            ("- { match: a, metadata: { x: 1 } }", "not both"),
            ("- { namespace: default }", "needs 'match' or 'metadata'"),
            (
                "- { match: a, namespace: orders }",
                "namespace 'orders' is not supported",
            ),
            (
                "- { metadata: {} }",
                "expected a 'metadata' key with filter conditions",
            ),
            ("- 42", "invalid type"),
        ];
        for (yaml, expected) in cases {
            let error = parse(yaml).unwrap_err();
            assert!(error.contains(expected), "{yaml}: {error}");
        }
    }

    #[test]
    fn filters_round_trip_through_yaml_and_json_as_match_strings() {
        let filters = parse(
            "- match(\"api::*\")\n- { match: \"x::*\" }\n- metadata: { public: true, name: match(\"*p*\") }\n",
        )
        .unwrap();
        let json = serde_json::to_value(&filters).unwrap();
        assert_eq!(
            json,
            json!(["match(\"api::*\")", "match(\"x::*\")", { "metadata": { "name": "match(\"*p*\")", "public": true } }])
        );
        let back: Vec<FunctionFilter> = serde_json::from_value(json).unwrap();
        assert_eq!(back, filters);
        let yaml = yaml_serde::to_string(&filters).unwrap();
        assert_eq!(parse(&yaml).unwrap(), filters);
    }
}
