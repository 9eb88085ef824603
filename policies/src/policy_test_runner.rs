//! Runs the cases of a [`PolicyTestFile`] against its listener: builds each case's session,
//! performs its action through the same decisions the gateway makes, and compares the outcome
//! with the expectation.
//!
//! Output formatting (text like `opa test -v`, or JSON) is the gateway's.

use std::collections::BTreeSet;
use std::fmt;

use serde::Serialize;
use serde_json::{Map, Value, json};

use crate::auth_result::AuthError;
use crate::decision::{Decision, Grant};
use crate::engine_ids::DiscoveryFunction;
use crate::listener_policy::ListenerPolicy;
use crate::policy_test_file::{
    Action, CatalogFunction, CatalogTrigger, CatalogTriggerType, Expectation, PolicyTestError,
    PolicyTestFile, TestCase,
};
use crate::session::Session;
use crate::wire_error::WireCode;

/// Whether a case passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseOutcome {
    /// The outcome matched the expectation.
    Pass,
    /// It did not.
    Fail,
}

/// One case's result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseResult {
    /// The case's `name`.
    pub name: String,
    /// Pass or fail.
    pub outcome: CaseOutcome,
    /// What happened (and, on failure, what was expected).
    pub reason: String,
}

/// What a case's action produced.
#[derive(Debug, Clone, PartialEq)]
enum Observed {
    Allow {
        grant: Grant,
        id: Option<String>,
    },
    Deny {
        code: WireCode,
        message: String,
        shadow: bool,
    },
    Ids(Vec<String>),
}

impl PolicyTestFile {
    /// Runs every case. `referenced_config` is the text of the gateway config named by
    /// [`PolicyTestFile::config_reference`] (ignored for an inline listener).
    ///
    /// # Errors
    /// When the listener cannot be found or does not validate; then no case runs.
    pub fn run(&self, referenced_config: Option<&str>) -> Result<Vec<CaseResult>, PolicyTestError> {
        let config = self.listener_config(referenced_config)?;
        let policy = ListenerPolicy::new(config).map_err(PolicyTestError::Listener)?;
        Ok(self
            .cases
            .iter()
            .map(|case| {
                let observed = self.perform(&policy, case);
                let passed = matches_expectation(&case.expect, &observed);
                CaseResult {
                    name: case.name.clone(),
                    outcome: if passed {
                        CaseOutcome::Pass
                    } else {
                        CaseOutcome::Fail
                    },
                    reason: if passed {
                        observed.to_string()
                    } else {
                        format!("expected {}, got {observed}", describe(&case.expect))
                    },
                }
            })
            .collect())
    }

    fn perform(&self, policy: &ListenerPolicy, case: &TestCase) -> Observed {
        let mut session = match session_for(policy, case) {
            Ok(session) => session,
            Err(error) => {
                return Observed::Deny {
                    code: error.code(),
                    message: error.to_string(),
                    shadow: false,
                };
            }
        };
        for id in &case.registered_functions {
            let stored = session.stored_id(id).into_owned();
            session.record_function(stored);
        }
        for id in &case.registered_triggers {
            session.record_trigger(id.clone());
        }
        let catalog = &self.catalog;
        match &case.action {
            Action::Invoke { id, request } => {
                let target = policy.resolve_target(&session, id);
                let decision = policy.decide_invoke(&session, &target, catalog.metadata(&target));
                if decision.enforced_denial().is_some() {
                    return observe(decision, Some(target.as_ref()));
                }
                // `engine::register_trigger` / `unregister_trigger` are gated on their payload
                // too (settled decision 11); any other id answers `Permitted` here.
                match policy.decide_trigger_call(&session, &target, request, catalog) {
                    Decision::Allow(_) => observe(decision, Some(target.as_ref())),
                    payload_decision => observe(payload_decision, Some(target.as_ref())),
                }
            }
            Action::RegisterFunction(id) => {
                let stored = session.stored_id(id);
                observe(
                    policy.decide_register_function(&session, id),
                    Some(stored.as_ref()),
                )
            }
            Action::RegisterTriggerType(id) => {
                observe(policy.decide_register_trigger_type(&session, id), Some(id))
            }
            Action::RegisterTrigger {
                trigger_type,
                target,
            } => {
                let target = policy.resolve_trigger_target(&session, target);
                let metadata = catalog.metadata(&target);
                let decision =
                    policy.decide_register_trigger(&session, trigger_type, &target, metadata);
                observe(decision, Some(target.as_ref()))
            }
            Action::UnregisterTrigger(id) => {
                observe(policy.decide_unregister_trigger(&session, id), Some(id))
            }
            Action::Discover { function, request } => {
                self.discover(policy, &session, *function, request)
            }
        }
    }

    /// Gates the discovery call, simulates the engine's reply from the catalog, filters it.
    fn discover(
        &self,
        policy: &ListenerPolicy,
        session: &Session,
        function: DiscoveryFunction,
        request: &Value,
    ) -> Observed {
        let catalog = &self.catalog;
        let id = function.id();
        let gate = policy.decide_invoke(session, id, catalog.metadata(id));
        if gate.enforced_denial().is_some() {
            return observe(gate, None);
        }
        let pre = policy.decide_discovery_request(session, function, request, catalog);
        if pre.enforced_denial().is_some() {
            return observe(pre, None);
        }
        let result = match self.engine_reply(function, request) {
            Ok(result) => result,
            Err(message) => {
                let code = WireCode::NotFound;
                return match policy.discovery_error(function, request, code.as_str()) {
                    Some(denial) => observe(Decision::Deny(denial), None),
                    None => Observed::Deny {
                        code,
                        message,
                        shadow: false,
                    },
                };
            }
        };
        let reply = policy.filter_discovery(session, function, result, catalog);
        match reply.result {
            Err(denial) => observe(Decision::Deny(denial), None),
            Ok(result) => Observed::Ids(visible_ids(function, &result)),
        }
    }

    /// The engine's reply to a discovery call, simulated from `functions:`, `trigger_types:`
    /// and `triggers:`, with the engine's not-found errors.
    fn engine_reply(&self, function: DiscoveryFunction, request: &Value) -> Result<Value, String> {
        let field = |key: &str| {
            request
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match function {
            DiscoveryFunction::FunctionsList => Ok(json!({
                "functions": self.functions.iter().map(function_detail).collect::<Vec<_>>()
            })),
            DiscoveryFunction::FunctionsInfo => {
                if let Some(ids) = request.get("function_ids").and_then(Value::as_array) {
                    let entries: Vec<Value> = ids
                        .iter()
                        .filter_map(Value::as_str)
                        .map(|id| {
                            self.function(id).map_or_else(
                                || json!({"function_id": id, "error": "not_found"}),
                                function_detail,
                            )
                        })
                        .collect();
                    Ok(json!({ "functions": entries }))
                } else {
                    let id = field("function_id");
                    self.function(&id)
                        .map(function_detail)
                        .ok_or_else(|| format!("Function '{id}' is not registered."))
                }
            }
            DiscoveryFunction::WorkersList => Ok(json!({
                "workers": self
                    .worker_names()
                    .iter()
                    .map(|name| json!({"name": name}))
                    .collect::<Vec<_>>()
            })),
            DiscoveryFunction::WorkersInfo => {
                let name = field("name");
                if !self.worker_names().contains(name.as_str()) {
                    return Err(format!("Worker '{name}' not found."));
                }
                let mine = |worker: &Option<String>| worker.as_deref() == Some(name.as_str());
                Ok(json!({
                    "worker": {"name": name},
                    "functions": self.functions.iter()
                        .filter(|entry| mine(&entry.worker))
                        .map(function_detail)
                        .collect::<Vec<_>>(),
                    "trigger_types": self.trigger_types.iter()
                        .filter(|entry| mine(&entry.worker))
                        .map(trigger_type_summary)
                        .collect::<Vec<_>>(),
                    "registered_triggers": self.triggers.iter()
                        .filter(|entry| mine(&entry.worker))
                        .map(trigger_summary)
                        .collect::<Vec<_>>(),
                }))
            }
            DiscoveryFunction::TriggersList => Ok(json!({
                "triggers": self.trigger_types.iter().map(trigger_type_summary).collect::<Vec<_>>()
            })),
            DiscoveryFunction::TriggersInfo => {
                let id = field("id");
                self.trigger_type_detail(&id)
                    .ok_or_else(|| format!("Trigger type '{id}' is not registered."))
            }
            DiscoveryFunction::RegisteredTriggersList => Ok(json!({
                "registered_triggers": self.triggers.iter().map(trigger_summary).collect::<Vec<_>>()
            })),
            DiscoveryFunction::RegisteredTriggersInfo => {
                let id = field("id");
                let trigger = self
                    .triggers
                    .iter()
                    .find(|trigger| trigger.id == id)
                    .ok_or_else(|| format!("Trigger '{id}' is not registered."))?;
                let mut detail = trigger_summary(trigger);
                if let Value::Object(object) = &mut detail {
                    object.insert(
                        "trigger".into(),
                        self.trigger_type_detail(&trigger.trigger_type)
                            .unwrap_or(Value::Null),
                    );
                    object.insert(
                        "function".into(),
                        self.function(&trigger.function_id)
                            .map_or(Value::Null, function_detail),
                    );
                }
                Ok(detail)
            }
        }
    }

    fn function(&self, id: &str) -> Option<&CatalogFunction> {
        self.functions.iter().find(|entry| entry.id == id)
    }

    /// Every worker the file names, for `engine::workers::*`.
    fn worker_names(&self) -> BTreeSet<&str> {
        let functions = self.functions.iter().map(|entry| &entry.worker);
        let types = self.trigger_types.iter().map(|entry| &entry.worker);
        let triggers = self.triggers.iter().map(|entry| &entry.worker);
        functions
            .chain(types)
            .chain(triggers)
            .filter_map(Option::as_deref)
            .collect()
    }

    /// `engine::triggers::info`'s detail: the type, with the engine's (unfiltered) count of
    /// triggers bound to it.
    fn trigger_type_detail(&self, id: &str) -> Option<Value> {
        let entry = self.trigger_types.iter().find(|entry| entry.id == id)?;
        let mut detail = trigger_type_summary(entry);
        let count = self
            .triggers
            .iter()
            .filter(|trigger| trigger.trigger_type == id)
            .count();
        if let Value::Object(object) = &mut detail {
            object.insert("instance_count".into(), Value::from(count));
        }
        Some(detail)
    }
}

/// A function as `engine::functions::*` describes it.
fn function_detail(entry: &CatalogFunction) -> Value {
    let mut object = Map::new();
    object.insert("function_id".into(), Value::String(entry.id.clone()));
    if let Some(worker) = &entry.worker {
        object.insert("worker_name".into(), Value::String(worker.clone()));
    }
    if let Some(metadata) = &entry.metadata {
        object.insert("metadata".into(), metadata.clone());
    }
    Value::Object(object)
}

/// A trigger type as `engine::triggers::list` describes it.
fn trigger_type_summary(entry: &CatalogTriggerType) -> Value {
    json!({"id": entry.id, "worker_name": entry.worker})
}

/// A registered trigger as `engine::registered-triggers::list` describes it.
fn trigger_summary(entry: &CatalogTrigger) -> Value {
    json!({
        "id": entry.id,
        "trigger_type": entry.trigger_type,
        "function_id": entry.function_id,
        "worker_name": entry.worker,
    })
}

fn session_for(policy: &ListenerPolicy, case: &TestCase) -> Result<Session, AuthError> {
    match &case.auth {
        Some(auth) => policy.session_from_auth(auth.clone()),
        None if policy.requires_auth() => Err(AuthError::NoResult),
        None => Ok(policy.permissive_session()),
    }
}

fn observe(decision: Decision<'_>, id: Option<&str>) -> Observed {
    match decision {
        Decision::Allow(grant) => Observed::Allow {
            grant,
            id: id.map(str::to_owned),
        },
        Decision::Deny(denial) => Observed::Deny {
            code: denial.code(),
            message: denial.message(),
            shadow: false,
        },
        Decision::ShadowAllow(denial) => {
            let mut message = denial.message();
            let mut also = denial.also();
            while let Some(next) = also {
                message.push_str(&format!("; also {}: {next}", next.code()));
                also = next.also();
            }
            Observed::Deny {
                code: denial.code(),
                message,
                shadow: true,
            }
        }
    }
}

/// The ids a filtered result shows: function ids for `engine::functions::*` and
/// `engine::workers::info`, worker names for `engine::workers::list`, trigger type ids for
/// `engine::triggers::*`, trigger ids for `engine::registered-triggers::*`.
fn visible_ids(function: DiscoveryFunction, result: &Value) -> Vec<String> {
    let listed = |list: &str, key: &str| -> Vec<String> {
        result
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .filter(|entry| entry.get("error").is_none())
            .filter_map(|entry| entry.get(key).and_then(Value::as_str).map(str::to_owned))
            .collect()
    };
    let single = |key: &str| -> Vec<String> {
        result
            .get(key)
            .and_then(Value::as_str)
            .map(str::to_owned)
            .into_iter()
            .collect()
    };
    match function {
        DiscoveryFunction::FunctionsList | DiscoveryFunction::WorkersInfo => {
            listed("functions", "function_id")
        }
        DiscoveryFunction::FunctionsInfo if result.get("functions").is_some() => {
            listed("functions", "function_id")
        }
        DiscoveryFunction::FunctionsInfo => single("function_id"),
        DiscoveryFunction::WorkersList => listed("workers", "name"),
        DiscoveryFunction::TriggersList => listed("triggers", "id"),
        DiscoveryFunction::TriggersInfo | DiscoveryFunction::RegisteredTriggersInfo => single("id"),
        DiscoveryFunction::RegisteredTriggersList => listed("registered_triggers", "id"),
    }
}

fn matches_expectation(expect: &Expectation, observed: &Observed) -> bool {
    match (expect, observed) {
        (Expectation::Allow, Observed::Allow { .. } | Observed::Ids(_)) => true,
        (Expectation::AllowAs(expected), Observed::Allow { id, .. }) => {
            id.as_deref() == Some(expected.as_str())
        }
        (
            Expectation::Deny {
                code,
                message,
                shadow,
            },
            Observed::Deny {
                code: actual_code,
                message: actual_message,
                shadow: actual_shadow,
            },
        ) => {
            shadow == actual_shadow
                && code.is_none_or(|code| code == *actual_code)
                && message
                    .as_deref()
                    .is_none_or(|part| actual_message.contains(part))
        }
        (Expectation::Ids(expected), Observed::Ids(actual)) => {
            let expected: BTreeSet<&String> = expected.iter().collect();
            let actual: BTreeSet<&String> = actual.iter().collect();
            expected == actual
        }
        _ => false,
    }
}

const fn grant_name(grant: Grant) -> &'static str {
    match grant {
        Grant::Own => "registered by this session",
        Grant::Allowed => "allowed_functions",
        Grant::NamespaceGrant => "namespaces.default grant",
        Grant::Infrastructure => "infrastructure carve-out",
        Grant::NoRbac => "no rbac block",
        Grant::Exposed => "expose_functions",
        Grant::Permitted => "permitted",
    }
}

impl fmt::Display for Observed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Allow {
                grant,
                id: Some(id),
            } => {
                write!(f, "allowed '{id}' ({})", grant_name(*grant))
            }
            Self::Allow { grant, id: None } => write!(f, "allowed ({})", grant_name(*grant)),
            Self::Deny {
                code,
                message,
                shadow: false,
            } => write!(f, "denied {code}: {message}"),
            Self::Deny {
                code,
                message,
                shadow: true,
            } => write!(f, "allowed in shadow mode, would deny {code}: {message}"),
            Self::Ids(ids) => write!(f, "ids [{}]", ids.join(", ")),
        }
    }
}

fn describe(expect: &Expectation) -> String {
    match expect {
        Expectation::Allow => "allow".to_owned(),
        Expectation::AllowAs(id) => format!("allow as '{id}'"),
        Expectation::Deny {
            code,
            message,
            shadow,
        } => {
            let mut text = if *shadow { "shadow deny" } else { "deny" }.to_owned();
            if let Some(code) = code {
                text.push(' ');
                text.push_str(code.as_str());
            }
            if let Some(message) = message {
                text.push_str(&format!(" with message containing \"{message}\""));
            }
            text
        }
        Expectation::Ids(ids) => format!("ids [{}]", ids.join(", ")),
    }
}

#[cfg(test)]
mod tests;
