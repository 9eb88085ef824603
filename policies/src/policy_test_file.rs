//! The `*_test.yaml` format operators use to test their rules (settled decision 14): a
//! listener (inline, or a reference into a gateway config), the function catalog the rules
//! see, and cases with one action and one expectation each.
//!
//! This module parses and checks a file; running the cases is `policy_test_runner.rs`'s job,
//! and finding and reading files is the gateway's.

use serde::Deserialize;
use serde_json::{Map, Value};
use thiserror::Error;

use crate::config_error::{ConfigError, from_value, from_yaml};
use crate::engine_ids::DiscoveryFunction;
use crate::function_catalog::FunctionCatalog;
use crate::listener_config::ListenerConfig;
use crate::wire_error::WireCode;

/// A parsed, checked policy test file.
#[derive(Debug, Clone)]
pub struct PolicyTestFile {
    pub(crate) listener: ListenerSource,
    pub(crate) functions: Vec<CatalogFunction>,
    pub(crate) trigger_types: Vec<CatalogTriggerType>,
    pub(crate) triggers: Vec<CatalogTrigger>,
    pub(crate) catalog: FunctionCatalog,
    pub(crate) cases: Vec<TestCase>,
}

/// Where the listener under test comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum ListenerSource {
    /// A listener block written in the test file.
    Inline(Box<ListenerConfig>),
    /// `{config: <gateway config path, relative to the test file>, name: <listener name>}`.
    Reference {
        /// The gateway config path as written.
        config: String,
        /// The listener's `name` (or index, for an unnamed listener).
        name: String,
    },
}

/// Why a test file cannot run. Each is reported as one failure for the file.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum PolicyTestError {
    /// The file is not valid YAML of the test-file shape.
    #[error("{0}")]
    Parse(ConfigError),
    /// Cases that are malformed (every one found).
    #[error("{}", join(.0))]
    Invalid(Vec<ConfigError>),
    /// The referenced gateway config was not supplied.
    #[error("listener.config: the gateway config '{path}' was not read")]
    MissingConfig {
        /// The path as written.
        path: String,
    },
    /// The referenced gateway config does not parse.
    #[error("{path}: {source}")]
    GatewayConfig {
        /// The path as written.
        path: String,
        /// The first problem in it.
        source: ConfigError,
    },
    /// The referenced gateway config has no such listener.
    #[error("listener.name: no listener named '{name}' in {path}")]
    ListenerNotFound {
        /// The name looked for.
        name: String,
        /// The path as written.
        path: String,
    },
    /// The listener block does not validate.
    #[error("{}", join(.0))]
    Listener(Vec<ConfigError>),
}

fn join(errors: &[ConfigError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// A `functions:` entry: the catalog the rules see.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a function: {id, worker, metadata}")]
pub(crate) struct CatalogFunction {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) worker: Option<String>,
    #[serde(default)]
    pub(crate) metadata: Option<Value>,
}

/// A `trigger_types:` entry: a trigger type the engine knows, and the worker that serves it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a trigger type: {id, worker}")]
pub(crate) struct CatalogTriggerType {
    pub(crate) id: String,
    #[serde(default)]
    pub(crate) worker: Option<String>,
}

/// A `triggers:` entry: a registered trigger binding a type to a function.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a trigger: {id, type, function_id, worker}"
)]
pub(crate) struct CatalogTrigger {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) trigger_type: String,
    pub(crate) function_id: String,
    #[serde(default)]
    pub(crate) worker: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a policy test file: a map with listener, functions and cases"
)]
struct RawTestFile {
    listener: Value,
    #[serde(default)]
    functions: Vec<CatalogFunction>,
    #[serde(default)]
    trigger_types: Vec<CatalogTriggerType>,
    #[serde(default)]
    triggers: Option<Vec<CatalogTrigger>>,
    cases: Vec<RawCase>,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a listener reference: {config, name}"
)]
struct RawReference {
    config: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(
    deny_unknown_fields,
    expecting = "a case: a map with name, one action and expect"
)]
struct RawCase {
    name: String,
    #[serde(default)]
    auth: Option<Value>,
    #[serde(default)]
    unauthenticated: bool,
    #[serde(default)]
    registered_functions: Vec<String>,
    #[serde(default)]
    registered_triggers: Vec<String>,
    #[serde(default)]
    invoke: Option<String>,
    #[serde(default)]
    register_function: Option<String>,
    #[serde(default)]
    register_trigger_type: Option<String>,
    #[serde(default)]
    register_trigger: Option<RawTrigger>,
    #[serde(default)]
    unregister_trigger: Option<String>,
    #[serde(default)]
    discover: Option<String>,
    #[serde(default)]
    request: Option<Value>,
    expect: Value,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, expecting = "a trigger: {type, target}")]
struct RawTrigger {
    #[serde(rename = "type")]
    trigger_type: String,
    target: String,
}

/// One case, checked.
#[derive(Debug, Clone)]
pub(crate) struct TestCase {
    pub(crate) name: String,
    /// `None`: the connection got no auth result (`unauthenticated: true`, or no `auth`).
    pub(crate) auth: Option<Value>,
    pub(crate) registered_functions: Vec<String>,
    pub(crate) registered_triggers: Vec<String>,
    pub(crate) action: Action,
    pub(crate) expect: Expectation,
}

/// What the case does.
#[derive(Debug, Clone)]
pub(crate) enum Action {
    /// `invoke: id`, with the `request:` payload (null when absent).
    Invoke {
        id: String,
        request: Value,
    },
    RegisterFunction(String),
    RegisterTriggerType(String),
    RegisterTrigger {
        trigger_type: String,
        target: String,
    },
    UnregisterTrigger(String),
    Discover {
        function: DiscoveryFunction,
        request: Value,
    },
}

/// What the case expects.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Expectation {
    /// `allow`
    Allow,
    /// `{id: x}`: allowed, and the id as stored or resolved is `x`.
    AllowAs(String),
    /// `deny` or `{deny: CODE, message: "substring", shadow: true}`.
    Deny {
        code: Option<WireCode>,
        message: Option<String>,
        shadow: bool,
    },
    /// `{ids: [...]}`: the ids a discovery result shows (any order).
    Ids(Vec<String>),
}

impl PolicyTestFile {
    /// Parses and checks a test file.
    ///
    /// # Errors
    /// [`PolicyTestError::Parse`] for the first shape problem, [`PolicyTestError::Invalid`]
    /// for every malformed case.
    pub fn parse(text: &str) -> Result<Self, PolicyTestError> {
        let raw: RawTestFile =
            from_yaml(text).map_err(|error| PolicyTestError::Parse(name_case(text, error)))?;
        let listener = listener_source(raw.listener)
            .map_err(|error| PolicyTestError::Parse(error.under("listener")))?;
        let mut errors = Vec::new();
        let mut cases = Vec::with_capacity(raw.cases.len());
        for (index, case) in raw.cases.into_iter().enumerate() {
            let subject = format!("case '{}'", case.name);
            match check_case(case) {
                Ok(case) => cases.push(case),
                Err(problems) => errors.extend(
                    problems
                        .into_iter()
                        .map(|problem| problem.under(&format!("cases[{index}]")).about(&subject)),
                ),
            }
        }
        if !errors.is_empty() {
            return Err(PolicyTestError::Invalid(errors));
        }
        let mut catalog = FunctionCatalog::new();
        for function in &raw.functions {
            catalog.insert_function(
                &function.id,
                function.worker.as_deref(),
                function.metadata.clone().filter(|m| !m.is_null()),
            );
        }
        // The binding index is on only when the file describes triggers, as a catalog built
        // from `engine::registered-triggers::list` would be.
        if let Some(triggers) = &raw.triggers {
            catalog.set_bindings_from_registered_triggers(&Value::Object(Map::new()));
            for trigger in triggers {
                catalog.insert_binding(&trigger.trigger_type, &trigger.function_id);
            }
        }
        Ok(Self {
            listener,
            functions: raw.functions,
            trigger_types: raw.trigger_types,
            triggers: raw.triggers.unwrap_or_default(),
            catalog,
            cases,
        })
    }

    /// The gateway config the file refers to, as written (relative to the test file), if any.
    /// The caller reads it and passes its text to [`PolicyTestFile::run`].
    #[must_use]
    pub fn config_reference(&self) -> Option<&str> {
        match &self.listener {
            ListenerSource::Reference { config, .. } => Some(config),
            ListenerSource::Inline(_) => None,
        }
    }

    /// Where the listener comes from.
    #[must_use]
    pub const fn listener(&self) -> &ListenerSource {
        &self.listener
    }

    /// How many cases the file holds.
    #[must_use]
    pub fn case_count(&self) -> usize {
        self.cases.len()
    }

    /// The listener block under test, from the file or from the referenced config's text.
    pub(crate) fn listener_config(
        &self,
        referenced_config: Option<&str>,
    ) -> Result<ListenerConfig, PolicyTestError> {
        match &self.listener {
            ListenerSource::Inline(config) => Ok(config.as_ref().clone()),
            ListenerSource::Reference { config, name } => {
                let text = referenced_config.ok_or_else(|| PolicyTestError::MissingConfig {
                    path: config.clone(),
                })?;
                let gateway = crate::gateway_listeners::GatewayListeners::from_yaml(text).map_err(
                    |source| PolicyTestError::GatewayConfig {
                        path: config.clone(),
                        source,
                    },
                )?;
                gateway
                    .listener(name)
                    .cloned()
                    .ok_or_else(|| PolicyTestError::ListenerNotFound {
                        name: name.clone(),
                        path: config.clone(),
                    })
            }
        }
    }
}

/// Names the case a parse error is in by its `name`, when the error is inside `cases[i]` and
/// that case's name can be read.
fn name_case(text: &str, error: ConfigError) -> ConfigError {
    let index = error
        .path()
        .strip_prefix("cases[")
        .and_then(|rest| rest.split_once(']'))
        .and_then(|(index, _)| index.parse::<usize>().ok());
    let Some(index) = index else {
        return error;
    };
    let name = yaml_serde::from_str::<Value>(text)
        .ok()
        .and_then(|document| {
            document
                .get("cases")?
                .get(index)?
                .get("name")?
                .as_str()
                .map(str::to_owned)
        });
    match name {
        Some(name) => error.about(&format!("case '{name}'")),
        None => error,
    }
}

fn listener_source(value: Value) -> Result<ListenerSource, ConfigError> {
    if value.get("config").is_some() {
        let reference: RawReference = from_value(value)?;
        Ok(ListenerSource::Reference {
            config: reference.config,
            name: reference.name,
        })
    } else {
        Ok(ListenerSource::Inline(Box::new(from_value(value)?)))
    }
}

fn check_case(raw: RawCase) -> Result<TestCase, Vec<ConfigError>> {
    let mut errors = Vec::new();
    if raw.unauthenticated && raw.auth.is_some() {
        errors.push(ConfigError::new(
            "auth",
            "a case is either unauthenticated or has an auth result, not both",
        ));
    }
    let mut actions = Vec::new();
    let invoking = raw.invoke.is_some();
    if let Some(id) = raw.invoke {
        actions.push(Action::Invoke {
            id,
            request: raw.request.clone().unwrap_or(Value::Null),
        });
    }
    if let Some(id) = raw.register_function {
        actions.push(Action::RegisterFunction(id));
    }
    if let Some(id) = raw.register_trigger_type {
        actions.push(Action::RegisterTriggerType(id));
    }
    if let Some(trigger) = raw.register_trigger {
        actions.push(Action::RegisterTrigger {
            trigger_type: trigger.trigger_type,
            target: trigger.target,
        });
    }
    if let Some(id) = raw.unregister_trigger {
        actions.push(Action::UnregisterTrigger(id));
    }
    let discovering = raw.discover.is_some();
    if let Some(id) = raw.discover {
        match DiscoveryFunction::from_id(&id) {
            Some(function) => actions.push(Action::Discover {
                function,
                request: raw.request.unwrap_or(Value::Null),
            }),
            None => errors.push(ConfigError::new(
                "discover",
                format!("'{id}' is not one of the eight engine::* discovery functions"),
            )),
        }
    } else if raw.request.is_some() && !invoking {
        errors.push(ConfigError::new(
            "request",
            "only an invoke or discover case takes a request",
        ));
    }
    let expect =
        parse_expectation(&raw.expect).map_err(|problem| ConfigError::new("expect", problem));
    if let Ok(Expectation::Ids(_)) = &expect
        && !discovering
    {
        errors.push(ConfigError::new(
            "expect",
            "only a discover case can expect ids",
        ));
    }
    let action = match actions.len() {
        1 => actions.pop(),
        0 if errors.is_empty() => {
            errors.push(ConfigError::new(
                "",
                "a case needs one action: invoke, register_function, register_trigger, \
                 register_trigger_type, unregister_trigger or discover",
            ));
            None
        }
        0 => None,
        _ => {
            errors.push(ConfigError::new("", "a case takes exactly one action"));
            None
        }
    };
    match (action, expect) {
        (Some(action), Ok(expect)) if errors.is_empty() => Ok(TestCase {
            name: raw.name,
            auth: raw.auth.filter(|auth| !auth.is_null()),
            registered_functions: raw.registered_functions,
            registered_triggers: raw.registered_triggers,
            action,
            expect,
        }),
        (_, expect) => {
            if let Err(error) = expect {
                errors.push(error);
            }
            Err(errors)
        }
    }
}

fn parse_expectation(value: &Value) -> Result<Expectation, String> {
    const SHAPES: &str = "expected allow, deny, {deny: CODE, message: \"…\", shadow: bool}, \
                          {id: \"…\"} or {ids: [...]}";
    match value {
        Value::String(word) if word == "allow" => Ok(Expectation::Allow),
        Value::String(word) if word == "deny" => Ok(Expectation::Deny {
            code: None,
            message: None,
            shadow: false,
        }),
        Value::Object(map) => {
            let mut code = None;
            let mut message = None;
            let mut shadow = false;
            let mut id = None;
            let mut ids = None;
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("deny", Value::String(text)) => {
                        code = Some(
                            WireCode::from_wire(text)
                                .ok_or_else(|| format!("unknown deny code '{text}'"))?,
                        );
                    }
                    ("message", Value::String(text)) => message = Some(text.clone()),
                    ("shadow", Value::Bool(flag)) => shadow = *flag,
                    ("id", Value::String(text)) => id = Some(text.clone()),
                    ("ids", Value::Array(items)) => {
                        let items: Option<Vec<String>> = items
                            .iter()
                            .map(|item| item.as_str().map(str::to_owned))
                            .collect();
                        ids = Some(items.ok_or("ids must be strings")?);
                    }
                    (other, _) => return Err(format!("unexpected '{other}': {SHAPES}")),
                }
            }
            let denying = code.is_some() || message.is_some() || shadow;
            match (denying, id, ids) {
                (true, None, None) => Ok(Expectation::Deny {
                    code,
                    message,
                    shadow,
                }),
                (false, Some(id), None) => Ok(Expectation::AllowAs(id)),
                (false, None, Some(ids)) => Ok(Expectation::Ids(ids)),
                _ => Err(SHAPES.to_owned()),
            }
        }
        _ => Err(SHAPES.to_owned()),
    }
}

#[cfg(test)]
mod tests {
    use super::{Expectation, ListenerSource, PolicyTestError, PolicyTestFile};
    use crate::wire_error::WireCode;

    #[test]
    fn the_issue_example_parses() {
        let file = PolicyTestFile::parse(
            r#"
listener: { config: ../gateway.yaml, name: public-workers }
functions:
  - { id: api::orders::list }
  - { id: pub::status, metadata: { public: true } }
cases:
  - name: browser can list orders
    auth: { context: { tenant: t1 } }
    invoke: api::orders::list
    expect: allow
  - name: admin functions stay hidden
    auth: { forbidden_functions: [api::admin::wipe] }
    invoke: api::admin::wipe
    expect: { deny: FORBIDDEN, message: "remove from rbac.forbidden_functions" }
  - name: anonymous sees only public ids
    unauthenticated: true
    discover: engine::functions::list
    expect: { ids: [pub::status] }
"#,
        )
        .unwrap();
        assert_eq!(file.config_reference(), Some("../gateway.yaml"));
        assert_eq!(file.case_count(), 3);
        assert_eq!(
            file.cases[1].expect,
            Expectation::Deny {
                code: Some(WireCode::Forbidden),
                message: Some("remove from rbac.forbidden_functions".into()),
                shadow: false
            }
        );
        assert_eq!(
            file.cases[2].expect,
            Expectation::Ids(vec!["pub::status".into()])
        );
    }

    #[test]
    fn parse_errors_name_the_case_once_and_no_internal_type() {
        let error = PolicyTestFile::parse(
            "listener: {}\ncases:\n  - { name: ok, invoke: a, expect: allow }\n  - { name: typo, invoke: a, expect: allow, bogus: 1 }\n",
        )
        .unwrap_err();
        let text = error.to_string();
        assert!(text.starts_with("4:"), "{text}");
        assert_eq!(text.matches("cases[1]").count(), 1, "{text}");
        assert!(
            text.contains("case 'typo': unknown field `bogus`"),
            "{text}"
        );
        let text = PolicyTestFile::parse("- 1\n").unwrap_err().to_string();
        assert!(!text.contains("RawTestFile"), "{text}");
        assert!(text.contains("a policy test file"), "{text}");
        let text = PolicyTestFile::parse("listener: 5\ncases: []\n")
            .unwrap_err()
            .to_string();
        assert!(!text.contains("ListenerConfig"), "{text}");
    }

    #[test]
    fn an_inline_listener_is_a_listener_block() {
        let file = PolicyTestFile::parse(
            "listener: { rbac: { expose_functions: ['match(\"api::*\")'] } }\ncases: []\n",
        )
        .unwrap();
        assert!(matches!(file.listener(), ListenerSource::Inline(_)));
        let error = PolicyTestFile::parse("listener: { bogus: 1 }\ncases: []\n").unwrap_err();
        assert!(error.to_string().contains("listener"), "{error}");
    }

    #[test]
    fn every_malformed_case_is_reported() {
        let error = PolicyTestFile::parse(
            r#"
listener: {}
cases:
  - { name: none, expect: allow }
  - { name: two, invoke: a, register_function: b, expect: allow }
  - { name: bad expect, invoke: a, expect: maybe }
  - { name: bad code, invoke: a, expect: { deny: NOPE } }
  - { name: bad discover, discover: engine::nope, expect: allow }
  - { name: ids on invoke, invoke: a, expect: { ids: [] } }
"#,
        )
        .unwrap_err();
        let PolicyTestError::Invalid(errors) = error else {
            panic!("expected Invalid, got {error:?}");
        };
        let paths: Vec<&str> = errors.iter().map(|e| e.path()).collect();
        assert!(
            errors[2].problem().starts_with("case 'bad expect': "),
            "{}",
            errors[2]
        );
        assert_eq!(
            paths,
            [
                "cases[0]",
                "cases[1]",
                "cases[2].expect",
                "cases[3].expect",
                "cases[4].discover",
                "cases[5].expect"
            ]
        );
    }
}
