//! The compiled form of `rbac.expose_functions`: every id pattern in one matcher, plus the
//! metadata filters with their wildcards compiled (spec §2.2–2.3).
//!
//! Parsing the entries is `expose_filter.rs`'s job; the order of the access rules is
//! `invoke_access.rs`'s.

use serde_json::Value;

use crate::expose_filter::{FunctionFilter, MetadataCondition, MetadataFilter};
use crate::id_matcher::IdMatcher;
use crate::wildcard::Wildcard;

/// `expose_functions`, compiled once when the listener config is validated.
#[derive(Debug, Clone)]
pub(crate) struct ExposeMatcher {
    ids: IdMatcher,
    metadata: Vec<CompiledMetadataFilter>,
}

#[derive(Debug, Clone)]
struct CompiledMetadataFilter {
    conditions: Vec<(String, CompiledCondition)>,
}

#[derive(Debug, Clone)]
enum CompiledCondition {
    Matches(Wildcard),
    Equals(Value),
}

impl ExposeMatcher {
    /// Compiles the filters; an error names the entry's index in `expose_functions` (`None`
    /// when the id patterns fail only as a set) and the problem.
    pub(crate) fn new(filters: &[FunctionFilter]) -> Result<Self, (Option<usize>, String)> {
        let ids =
            IdMatcher::new(id_patterns(filters).map(|(_, pattern)| pattern)).map_err(|error| {
                let entry = error
                    .pattern_index()
                    .and_then(|index| id_patterns(filters).nth(index))
                    .map(|(entry, _)| entry);
                (entry, error.to_string())
            })?;
        let mut metadata = Vec::new();
        for (index, filter) in filters.iter().enumerate() {
            if let FunctionFilter::Metadata(filter) = filter {
                metadata.push(compile_metadata(filter).map_err(|error| (Some(index), error))?);
            }
        }
        Ok(Self { ids, metadata })
    }

    /// Whether some metadata filter exists, i.e. whether a decision may need the function's
    /// registered metadata.
    pub(crate) fn uses_metadata(&self) -> bool {
        !self.metadata.is_empty()
    }

    /// Whether any filter matches the id, or the function's registered metadata.
    pub(crate) fn is_match(&self, function_id: &str, metadata: Option<&Value>) -> bool {
        if self.ids.is_match(function_id) {
            return true;
        }
        let Some(Value::Object(metadata)) = metadata else {
            return false;
        };
        self.metadata.iter().any(|filter| {
            filter.conditions.iter().all(|(key, condition)| {
                metadata
                    .get(key)
                    .is_some_and(|value| condition.is_match(value))
            })
        })
    }
}

/// The id patterns of `expose_functions`, each with its entry's index in the list.
fn id_patterns(filters: &[FunctionFilter]) -> impl Iterator<Item = (usize, &str)> {
    filters
        .iter()
        .enumerate()
        .filter_map(|(index, filter)| match filter {
            FunctionFilter::Id(pattern) => Some((index, pattern.as_str())),
            FunctionFilter::Metadata(_) => None,
        })
}

impl CompiledCondition {
    fn is_match(&self, value: &Value) -> bool {
        match self {
            Self::Matches(wildcard) => value.as_str().is_some_and(|text| wildcard.is_match(text)),
            Self::Equals(expected) => expected == value,
        }
    }
}

fn compile_metadata(filter: &MetadataFilter) -> Result<CompiledMetadataFilter, String> {
    let mut conditions = Vec::with_capacity(filter.conditions.len());
    for (key, condition) in &filter.conditions {
        let compiled = match condition {
            MetadataCondition::Matches(pattern) => CompiledCondition::Matches(
                Wildcard::new(pattern).map_err(|error| format!("metadata.{key}: {error}"))?,
            ),
            MetadataCondition::Equals(value) => CompiledCondition::Equals(value.clone()),
        };
        conditions.push((key.clone(), compiled));
    }
    Ok(CompiledMetadataFilter { conditions })
}

#[cfg(test)]
mod tests {
    use super::ExposeMatcher;
    use crate::expose_filter::FunctionFilter;
    use serde_json::{Value, json};

    fn matcher(yaml: &str) -> ExposeMatcher {
        let filters: Vec<FunctionFilter> = yaml_serde::from_str(yaml).unwrap();
        ExposeMatcher::new(&filters).unwrap()
    }

    #[test]
    fn id_patterns_keep_their_own_entry_index() {
        let filters: Vec<FunctionFilter> =
            yaml_serde::from_str("- metadata: { a: 1 }\n- match(\"x\")\n- match(\"y*z*w\")")
                .unwrap();
        let patterns: Vec<(usize, &str)> = super::id_patterns(&filters).collect();
        assert_eq!(patterns, [(1, "x"), (2, "y*z*w")]);
    }

    #[test]
    fn metadata_filters_follow_the_spec_examples() {
        let m = matcher("- metadata: { public: true }");
        let yes = [json!({"public": true}), json!({"public": true, "x": 1})];
        let no = [
            json!({"public": "true"}),
            json!({"public": false}),
            json!({}),
            json!(null),
            json!([{"public": true}]),
            json!({"nested": {"public": true}}),
        ];
        for metadata in &yes {
            assert!(m.is_match("any::id", Some(metadata)), "{metadata}");
        }
        for metadata in &no {
            assert!(!m.is_match("any::id", Some(metadata)), "{metadata}");
        }
        assert!(!m.is_match("any::id", None));
    }

    #[test]
    fn every_metadata_key_must_match_and_filters_are_ored() {
        let m = matcher(
            "- metadata: { tier: free, name: match(\"*public*\") }\n- metadata: { admin: false }",
        );
        assert!(m.is_match("f", Some(&json!({"tier": "free", "name": "my-public-fn"}))));
        assert!(!m.is_match("f", Some(&json!({"tier": "free", "name": "private"}))));
        assert!(!m.is_match("f", Some(&json!({"tier": "free"}))));
        assert!(m.is_match("f", Some(&json!({"admin": false}))));
    }

    #[test]
    fn metadata_values_compare_deeply_and_numbers_as_written() {
        let m = matcher("- metadata: { version: 1, tags: [a, b], owner: { team: x } }");
        let exact = json!({"version": 1, "tags": ["a", "b"], "owner": {"team": "x"}});
        assert!(m.is_match("f", Some(&exact)));
        let float: Value =
            serde_json::from_str(r#"{"version": 1.0, "tags": ["a", "b"], "owner": {"team": "x"}}"#)
                .unwrap();
        assert!(!m.is_match("f", Some(&float)));
        let superset = json!({"version": 1, "tags": ["a", "b"], "owner": {"team": "x", "y": 1}});
        assert!(!m.is_match("f", Some(&superset)));
    }

    #[test]
    fn a_metadata_wildcard_matches_strings_only() {
        let m = matcher("- metadata: { n: match(\"*\") }");
        assert!(m.is_match("f", Some(&json!({"n": ""}))));
        assert!(!m.is_match("f", Some(&json!({"n": 42}))));
        assert!(!m.is_match("f", Some(&json!({"n": null}))));
    }

    #[test]
    fn id_patterns_and_metadata_filters_are_ored() {
        let m = matcher("- match(\"api::*\")\n- metadata: { public: true }");
        assert!(m.is_match("api::x", None));
        assert!(m.is_match("pub::x", Some(&json!({"public": true}))));
        assert!(!m.is_match("pub::x", Some(&json!({"public": false}))));
        assert!(m.uses_metadata());
        assert!(!matcher("- match(\"api::*\")").uses_metadata());
    }
}
