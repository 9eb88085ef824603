//! The AuthResult keys a built-in may produce, and checking that a (mapped or configured) value
//! has the shape `policies::AuthResult` reads. Messages name the field, never its value.

use policies::AuthResult;
use serde_json::{Map, Value};

/// Every key of an AuthResult (spec §3.3).
pub(super) const AUTH_RESULT_FIELDS: &[&str] = &[
    "allowed_functions",
    "forbidden_functions",
    "allowed_trigger_types",
    "allow_trigger_type_registration",
    "allow_function_registration",
    "function_registration_prefix",
    "context",
    "namespaces",
];

/// Whether `value` fits the AuthResult field `field` (which must be one of
/// [`AUTH_RESULT_FIELDS`]).
pub(super) fn field_fits(field: &str, value: &Value) -> bool {
    let mut one = Map::new();
    one.insert(field.to_owned(), value.clone());
    AuthResult::from_json(Value::Object(one)).is_ok()
}

/// The first field of an AuthResult object whose value has the wrong shape.
pub(super) fn misfit_field(result: &Map<String, Value>) -> Option<&str> {
    result
        .iter()
        .find(|(field, value)| !field_fits(field, value))
        .map(|(field, _)| field.as_str())
}

/// What each field expects, for config messages.
pub(super) fn expected(field: &str) -> &'static str {
    match field {
        "allowed_functions" | "forbidden_functions" | "allowed_trigger_types" => {
            "a list of strings"
        }
        "allow_trigger_type_registration" | "allow_function_registration" => "true or false",
        "function_registration_prefix" => "a string",
        "namespaces" => "a map of lists of strings",
        _ => "any value",
    }
}

#[cfg(test)]
mod tests {
    use super::{AUTH_RESULT_FIELDS, field_fits, misfit_field};
    use serde_json::json;

    #[test]
    fn each_field_checks_its_own_shape() {
        assert!(field_fits("allowed_functions", &json!(["a"])));
        assert!(!field_fits("allowed_functions", &json!("a")));
        assert!(field_fits("function_registration_prefix", &json!("t1")));
        assert!(!field_fits("allow_function_registration", &json!("yes")));
        assert!(field_fits("context", &json!({"a": [1]})));
        let result = json!({"context": {}, "namespaces": {"default": "x"}});
        assert_eq!(
            misfit_field(result.as_object().unwrap()),
            Some("namespaces")
        );
        assert_eq!(AUTH_RESULT_FIELDS.len(), 8);
    }
}
