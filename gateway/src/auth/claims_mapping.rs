//! `jwt.claims:`: how a verified token's claims become an AuthResult.
//!
//! The mapping has the shape of an AuthResult. A string `claims` or `claims.a.b` is a path
//! into the claims (a numeric segment indexes a list: `claims.roles.0`); any other value is a
//! literal; maps and lists are walked, so paths may sit anywhere inside them. A path that is
//! missing or null leaves its key out (of a map) or its element out (of a list), and an
//! omitted AuthResult field takes the AuthResult default. Verifying the token is `jwt.rs`'s
//! job.

use serde_json::{Map, Value};

use super::AuthFailure;
use super::config_fields::{Fields, Problems, join};
use super::result_shape::{AUTH_RESULT_FIELDS, expected, field_fits, misfit_field};
use policies::ConfigError;

/// The prefix that marks a claim path.
const CLAIMS: &str = "claims";

/// A compiled `claims:` mapping.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct ClaimsMapping {
    fields: Vec<(String, Template)>,
}

/// One value of the mapping.
#[derive(Debug, Clone, PartialEq)]
enum Template {
    /// `claims.a.b`: the segments after `claims`.
    Claim(Vec<String>),
    /// Written as is.
    Literal(Value),
    /// A map whose values are templates.
    Map(Vec<(String, Self)>),
    /// A list whose elements are templates.
    List(Vec<Self>),
}

impl Default for ClaimsMapping {
    /// `{context: {sub: claims.sub}}`.
    fn default() -> Self {
        Self {
            fields: vec![(
                "context".to_owned(),
                Template::Map(vec![(
                    "sub".to_owned(),
                    Template::Claim(vec!["sub".to_owned()]),
                )]),
            )],
        }
    }
}

impl ClaimsMapping {
    /// Compiles the `claims:` map found at `path`.
    pub(super) fn from_config(value: &Value, path: &str, problems: &mut Problems) -> Option<Self> {
        let before = problems.len();
        let fields = Fields::new(value, path, AUTH_RESULT_FIELDS, problems)?;
        let mut compiled = Vec::new();
        for field in AUTH_RESULT_FIELDS {
            let Some(value) = fields.get(field) else {
                continue;
            };
            let at = fields.key_path(field);
            let template = compile(value, &at, problems);
            if let Template::Literal(literal) = &template
                && !field_fits(field, literal)
            {
                problems.push(ConfigError::new(
                    at,
                    format!("expected {}", expected(field)),
                ));
            }
            compiled.push(((*field).to_owned(), template));
        }
        (problems.len() == before).then_some(Self { fields: compiled })
    }

    /// The AuthResult for these claims.
    ///
    /// # Errors
    /// A mapped claim does not have the type its AuthResult field needs.
    pub(super) fn apply(&self, claims: &Value) -> Result<Value, AuthFailure> {
        let mut result = Map::new();
        for (field, template) in &self.fields {
            if let Some(value) = evaluate(template, claims) {
                result.insert(field.clone(), value);
            }
        }
        if let Some(field) = misfit_field(&result) {
            return Err(AuthFailure(format!(
                "token claims do not fit the claims mapping ({field} must be {})",
                expected(field)
            )));
        }
        Ok(Value::Object(result))
    }
}

fn compile(value: &Value, path: &str, problems: &mut Problems) -> Template {
    match value {
        Value::String(text) => match claim_path(text) {
            Some(segments) if segments.iter().any(String::is_empty) => {
                problems.push(ConfigError::new(
                    path,
                    format!("claim path '{text}' has an empty segment"),
                ));
                Template::Literal(Value::Null)
            }
            Some(segments) => Template::Claim(segments),
            None => Template::Literal(value.clone()),
        },
        Value::Object(map) => {
            let entries: Vec<(String, Template)> = map
                .iter()
                .map(|(key, value)| (key.clone(), compile(value, &join(path, key), problems)))
                .collect();
            literal_or(Template::Map(entries))
        }
        Value::Array(items) => {
            let elements: Vec<Template> = items
                .iter()
                .enumerate()
                .map(|(i, item)| compile(item, &format!("{path}[{i}]"), problems))
                .collect();
            literal_or(Template::List(elements))
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Template::Literal(value.clone()),
    }
}

/// `claims` → `[]`, `claims.a.b` → `[a, b]`, anything else → `None`.
fn claim_path(text: &str) -> Option<Vec<String>> {
    if text == CLAIMS {
        return Some(Vec::new());
    }
    let rest = text.strip_prefix(CLAIMS)?.strip_prefix('.')?;
    Some(rest.split('.').map(str::to_owned).collect())
}

/// Folds a map or list that holds no claim path into one literal.
fn literal_or(template: Template) -> Template {
    evaluate_literal(&template).map_or(template, Template::Literal)
}

/// The value of a template that holds no claim path.
fn evaluate_literal(template: &Template) -> Option<Value> {
    match template {
        Template::Claim(_) => None,
        Template::Literal(value) => Some(value.clone()),
        Template::Map(entries) => entries
            .iter()
            .map(|(key, t)| evaluate_literal(t).map(|v| (key.clone(), v)))
            .collect::<Option<Map<String, Value>>>()
            .map(Value::Object),
        Template::List(items) => items
            .iter()
            .map(evaluate_literal)
            .collect::<Option<Vec<Value>>>()
            .map(Value::Array),
    }
}

fn evaluate(template: &Template, claims: &Value) -> Option<Value> {
    match template {
        Template::Claim(segments) => lookup(claims, segments).cloned(),
        Template::Literal(value) => Some(value.clone()),
        Template::Map(entries) => Some(Value::Object(
            entries
                .iter()
                .filter_map(|(key, t)| evaluate(t, claims).map(|v| (key.clone(), v)))
                .collect(),
        )),
        Template::List(items) => Some(Value::Array(
            items.iter().filter_map(|t| evaluate(t, claims)).collect(),
        )),
    }
}

/// The claim at `segments`; `None` when missing or null.
fn lookup<'a>(claims: &'a Value, segments: &[String]) -> Option<&'a Value> {
    let mut current = claims;
    for segment in segments {
        current = match current {
            Value::Object(map) => map.get(segment)?,
            Value::Array(items) => items.get(segment.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    (!current.is_null()).then_some(current)
}

#[cfg(test)]
mod tests {
    use super::ClaimsMapping;
    use crate::auth::config_fields::Problems;
    use serde_json::{Value, json};

    fn mapping(value: &Value) -> ClaimsMapping {
        let mut problems = Problems::new();
        let mapping = ClaimsMapping::from_config(value, "jwt.claims", &mut problems);
        assert!(problems.is_empty(), "{problems:?}");
        mapping.unwrap()
    }

    fn problems(value: &Value) -> Vec<String> {
        let mut problems = Problems::new();
        assert!(ClaimsMapping::from_config(value, "jwt.claims", &mut problems).is_none());
        problems.iter().map(ToString::to_string).collect()
    }

    #[test]
    fn paths_literals_and_nested_context_are_mapped() {
        let mapping = mapping(&json!({
            "allowed_functions": "claims.fns",
            "forbidden_functions": ["admin::wipe", "claims.deny.0"],
            "function_registration_prefix": "claims.tenant",
            "allow_function_registration": false,
            "context": {"sub": "claims.sub", "org": {"tenant": "claims.tenant", "plan": "gold"}},
        }));
        let claims = json!({"sub": "u1", "tenant": "t1", "fns": ["a::b"], "deny": ["x::y"]});
        assert_eq!(
            mapping.apply(&claims).unwrap(),
            json!({
                "allowed_functions": ["a::b"],
                "forbidden_functions": ["admin::wipe", "x::y"],
                "allow_function_registration": false,
                "function_registration_prefix": "t1",
                "context": {"sub": "u1", "org": {"tenant": "t1", "plan": "gold"}},
            })
        );
    }

    #[test]
    fn missing_and_null_paths_leave_their_key_out() {
        let mapping = mapping(&json!({
            "allowed_functions": "claims.fns",
            "function_registration_prefix": "claims.tenant",
            "forbidden_functions": ["claims.nope", "x::y"],
            "context": {"sub": "claims.sub", "deep": "claims.a.b.c", "all": "claims"},
        }));
        let claims = json!({"sub": "u1", "tenant": null, "a": {"b": 1}});
        assert_eq!(
            mapping.apply(&claims).unwrap(),
            json!({
                "forbidden_functions": ["x::y"],
                "context": {"sub": "u1", "all": claims},
            })
        );
    }

    #[test]
    fn the_default_maps_sub_into_context() {
        let mapping = ClaimsMapping::default();
        assert_eq!(
            mapping.apply(&json!({"sub": "u1", "x": 1})).unwrap(),
            json!({"context": {"sub": "u1"}})
        );
        assert_eq!(mapping.apply(&json!({})).unwrap(), json!({"context": {}}));
    }

    #[test]
    fn a_claim_of_the_wrong_type_fails_without_echoing_it() {
        let mapping = mapping(&json!({"allowed_functions": "claims.fns"}));
        let failure = mapping.apply(&json!({"fns": "secret-ish"})).unwrap_err();
        assert_eq!(
            failure.0,
            "token claims do not fit the claims mapping (allowed_functions must be a list of strings)"
        );
    }

    #[test]
    fn config_problems_name_their_path() {
        assert_eq!(
            problems(&json!({
                "allowed_functions": "api::x",
                "bogus": 1,
                "context": {"a": "claims..b"},
            })),
            [
                "jwt.claims.bogus: unknown field `bogus`, expected one of `allowed_functions`, `forbidden_functions`, `allowed_trigger_types`, `allow_trigger_type_registration`, `allow_function_registration`, `function_registration_prefix`, `context`, `namespaces`",
                "jwt.claims.allowed_functions: expected a list of strings",
                "jwt.claims.context.a: claim path 'claims..b' has an empty segment",
            ]
        );
        assert_eq!(
            problems(&json!("claims.x")),
            ["jwt.claims: expected a map, got a string"]
        );
    }
}
