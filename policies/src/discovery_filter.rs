//! Discovery filtering (spec §8, settled decision 10): the eight `engine::*` discovery
//! functions and the batch form of `engine::functions::info`. A session sees only the
//! functions it may invoke, with its own prefix stripped; a hidden id and a missing id look
//! the same.
//!
//! Order for the caller: gate the discovery id itself with
//! [`ListenerPolicy::decide_invoke`], then [`ListenerPolicy::decide_discovery_request`], then
//! forward, then [`ListenerPolicy::filter_discovery`] on the engine's successful `result`, or
//! [`ListenerPolicy::discovery_error`] on its error (most pass through; a not-found that would
//! tell hidden from missing is replaced). Keeping the catalog fresh is the caller's job.

use serde_json::{Map, Value};

use crate::decision::{Decision, Denial, DenyReason, Grant};
use crate::engine_ids::DiscoveryFunction;
use crate::function_catalog::FunctionCatalog;
use crate::listener_policy::ListenerPolicy;
use crate::session::Session;
use crate::wire_error::WireCode;

/// A filtered discovery result.
#[derive(Debug, Clone, PartialEq)]
pub struct DiscoveryReply {
    /// The rewritten result, or the error to answer with instead.
    pub result: Result<Value, Denial<'static>>,
    /// Function ids (or worker names) hidden from the session; in shadow mode, the ones that
    /// would have been hidden (the result is then left unfiltered).
    pub hidden: Vec<String>,
    /// Whether `hidden` is a shadow report.
    pub shadow: bool,
}

/// Worker fields removed from `engine::workers::list` entries.
const WORKER_LIST_INTERNALS: [&str; 2] = ["ip_address", "isolation"];
/// Worker fields removed from `engine::workers::info`.
const WORKER_INFO_INTERNALS: [&str; 5] = [
    "ip_address",
    "isolation",
    "pid",
    "internal",
    "latest_metrics",
];
/// Id fields that carry the session's prefix.
const PREFIXED_FIELDS: [&str; 2] = ["function_id", "worker_name"];

impl ListenerPolicy {
    /// Before forwarding: a single-id `engine::functions::info` for an id the session may not
    /// see is answered `FORBIDDEN` here, whether or not the id exists.
    pub fn decide_discovery_request<'a>(
        &self,
        session: &Session,
        function: DiscoveryFunction,
        request: &'a Value,
        catalog: &FunctionCatalog,
    ) -> Decision<'a> {
        let requested = request.get("function_id").and_then(Value::as_str);
        match (function, requested) {
            (DiscoveryFunction::FunctionsInfo, Some(function_id)) => self
                .access(session, function_id, catalog.metadata(function_id))
                .shadowed(self.is_shadow()),
            _ => Decision::Allow(Grant::Permitted),
        }
    }

    /// The engine answered a discovery call with an error (`code`, e.g. `NOT_FOUND`): the
    /// denial to answer with instead, or `None` to pass the engine's error through unchanged.
    /// For `engine::workers::info` and `engine::registered-triggers::info` an unknown name or
    /// id gets exactly the denial a hidden one gets from [`ListenerPolicy::filter_discovery`],
    /// so the answer never tells whether it exists. Not shadowed: the engine refused anyway.
    #[must_use]
    pub fn discovery_error(
        &self,
        function: DiscoveryFunction,
        request: &Value,
        code: &str,
    ) -> Option<Denial<'static>> {
        if code != WireCode::NotFound.as_str() {
            return None;
        }
        let requested = |key: &str| {
            request
                .get(key)
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        match function {
            DiscoveryFunction::WorkersInfo => {
                Some(Denial::new(DenyReason::WorkerNotFound, requested("name")))
            }
            DiscoveryFunction::RegisteredTriggersInfo => {
                Some(Denial::new(DenyReason::TriggerHidden, requested("id")))
            }
            DiscoveryFunction::FunctionsList
            | DiscoveryFunction::FunctionsInfo
            | DiscoveryFunction::WorkersList
            | DiscoveryFunction::TriggersList
            | DiscoveryFunction::TriggersInfo
            | DiscoveryFunction::RegisteredTriggersList => None,
        }
    }

    /// Rewrites a successful discovery `result` for this session.
    pub fn filter_discovery(
        &self,
        session: &Session,
        function: DiscoveryFunction,
        mut result: Value,
        catalog: &FunctionCatalog,
    ) -> DiscoveryReply {
        let mut view = View {
            policy: self,
            session,
            catalog,
            hidden: Vec::new(),
        };
        let outcome = match function {
            DiscoveryFunction::FunctionsList => {
                view.filter_function_entries(array_at(&mut result, "functions"));
                Ok(())
            }
            DiscoveryFunction::FunctionsInfo => view.functions_info(&mut result),
            DiscoveryFunction::WorkersList => {
                view.workers_list(&mut result);
                Ok(())
            }
            DiscoveryFunction::WorkersInfo => view.workers_info(&mut result),
            DiscoveryFunction::TriggersList => Ok(()),
            DiscoveryFunction::TriggersInfo => {
                view.triggers_info(&mut result);
                Ok(())
            }
            DiscoveryFunction::RegisteredTriggersList => {
                view.filter_bindings(array_at(&mut result, "registered_triggers"));
                Ok(())
            }
            DiscoveryFunction::RegisteredTriggersInfo => view.registered_trigger_info(&mut result),
        };
        DiscoveryReply {
            result: outcome.map(|()| result),
            hidden: view.hidden,
            shadow: self.is_shadow(),
        }
    }
}

/// One filtering pass: the rules, the session, and what was hidden.
struct View<'p> {
    policy: &'p ListenerPolicy,
    session: &'p Session,
    catalog: &'p FunctionCatalog,
    hidden: Vec<String>,
}

fn id_of(entry: &Value) -> &str {
    entry
        .as_str()
        .or_else(|| entry.get("function_id").and_then(Value::as_str))
        .unwrap_or_default()
}

/// The array under `key`, if the result has one.
fn array_at<'v>(result: &'v mut Value, key: &str) -> Option<&'v mut Vec<Value>> {
    result.get_mut(key).and_then(Value::as_array_mut)
}

fn remove_fields(object: &mut Value, fields: &[&str]) {
    if let Value::Object(object) = object {
        for field in fields {
            object.remove(*field);
        }
    }
}

impl View<'_> {
    fn enforcing(&self) -> bool {
        !self.policy.is_shadow()
    }

    fn allows(&self, function_id: &str, metadata: Option<&Value>) -> bool {
        self.policy
            .access(self.session, function_id, metadata)
            .is_allowed()
    }

    /// Whether an entry stays: allowed, or shadow mode (then it is reported).
    fn keep(&mut self, function_id: &str, metadata: Option<&Value>) -> bool {
        if self.allows(function_id, metadata) {
            return true;
        }
        self.hidden.push(function_id.to_owned());
        !self.enforcing()
    }

    /// The metadata an entry carries itself, or else the catalog's.
    fn metadata_of<'v>(&'v self, entry: &'v Value) -> Option<&'v Value> {
        entry
            .get("metadata")
            .filter(|metadata| !metadata.is_null())
            .or_else(|| self.catalog.metadata(id_of(entry)))
    }

    /// Strips the session's prefix from an entry's id fields, or from a bare id.
    fn strip(&self, entry: &mut Value) {
        match entry {
            Value::String(id) => self.strip_id(id),
            Value::Object(object) => {
                for field in PREFIXED_FIELDS {
                    if let Some(Value::String(id)) = object.get_mut(field) {
                        self.strip_id(id);
                    }
                }
            }
            _ => {}
        }
    }

    fn strip_id(&self, id: &mut String) {
        let stripped = self.session.strip_prefix(id);
        if stripped.len() != id.len() {
            *id = stripped.to_owned();
        }
    }

    /// Keeps the function entries (details or bare ids) the session may see, stripped.
    /// An entry's own metadata is used when it carries some, else the catalog's.
    fn filter_function_entries(&mut self, entries: Option<&mut Vec<Value>>) -> usize {
        let Some(entries) = entries else {
            return 0;
        };
        let mut kept = Vec::with_capacity(entries.len());
        for entry in entries.drain(..) {
            let metadata = self.metadata_of(&entry).cloned();
            if self.keep(id_of(&entry), metadata.as_ref()) {
                kept.push(entry);
            }
        }
        for entry in &mut kept {
            self.strip(entry);
        }
        *entries = kept;
        entries.len()
    }

    fn filter_bindings(&mut self, entries: Option<&mut Vec<Value>>) {
        let Some(entries) = entries else {
            return;
        };
        let catalog = self.catalog;
        entries.retain(|entry| {
            let function_id = id_of(entry);
            self.keep(function_id, catalog.metadata(function_id))
        });
        for entry in entries.iter_mut() {
            self.strip(entry);
        }
    }

    fn functions_info(&mut self, result: &mut Value) -> Result<(), Denial<'static>> {
        if let Some(Value::Array(entries)) = result.get_mut("functions") {
            for entry in entries.iter_mut() {
                self.batch_entry(entry);
            }
            return Ok(());
        }
        let function_id = id_of(result).to_owned();
        let metadata = self.metadata_of(result).cloned();
        if !self.keep(&function_id, metadata.as_ref()) && self.enforcing() {
            return Err(Denial::new(DenyReason::NotExposed, function_id));
        }
        self.strip(result);
        Ok(())
    }

    /// A batch entry is a detail or `{function_id, error}`; a hidden id reads `forbidden`
    /// whether it exists (`not_found` would tell) or not.
    fn batch_entry(&mut self, entry: &mut Value) {
        let function_id = id_of(entry).to_owned();
        let metadata = self.metadata_of(entry).cloned();
        if !self.keep(&function_id, metadata.as_ref()) && self.enforcing() {
            let mut forbidden = Map::new();
            forbidden.insert("function_id".into(), Value::String(function_id));
            forbidden.insert("error".into(), Value::String("forbidden".into()));
            *entry = Value::Object(forbidden);
        }
        self.strip(entry);
    }

    fn workers_list(&mut self, result: &mut Value) {
        let Some(Value::Array(workers)) = result.get_mut("workers") else {
            return;
        };
        workers.retain_mut(|worker| {
            let name = worker
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            let functions = self.catalog.worker_functions(&name);
            let visible = functions
                .iter()
                .filter(|id| self.allows(id, self.catalog.metadata(id)))
                .count();
            remove_fields(worker, &WORKER_LIST_INTERNALS);
            if visible == 0 {
                self.hidden.push(name);
                return !self.enforcing();
            }
            if self.enforcing()
                && let Value::Object(object) = worker
            {
                object.insert("function_count".into(), Value::from(visible));
            }
            true
        });
    }

    fn workers_info(&mut self, result: &mut Value) -> Result<(), Denial<'static>> {
        let visible = self.filter_function_entries(array_at(result, "functions"));
        self.filter_bindings(array_at(result, "registered_triggers"));
        if let Some(worker) = result.get_mut("worker") {
            remove_fields(worker, &WORKER_INFO_INTERNALS);
        }
        if visible == 0 && self.enforcing() {
            let name = result
                .get("worker")
                .and_then(|worker| worker.get("name"))
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned();
            return Err(Denial::new(DenyReason::WorkerNotFound, name));
        }
        if self.enforcing()
            && let Some(Value::Object(worker)) = result.get_mut("worker")
        {
            worker.insert("function_count".into(), Value::from(visible));
        }
        Ok(())
    }

    fn triggers_info(&mut self, result: &mut Value) {
        let trigger_type = result.get("id").and_then(Value::as_str).unwrap_or_default();
        let Some(bindings) = self.catalog.bindings(trigger_type) else {
            return;
        };
        let mut visible = 0_usize;
        for function_id in bindings {
            if self.allows(function_id, self.catalog.metadata(function_id)) {
                visible += 1;
            } else {
                self.hidden.push(function_id.clone());
            }
        }
        if self.enforcing()
            && let Value::Object(object) = result
        {
            object.insert("instance_count".into(), Value::from(visible));
        }
    }

    fn registered_trigger_info(&mut self, result: &mut Value) -> Result<(), Denial<'static>> {
        let function_id = id_of(result).to_owned();
        let catalog = self.catalog;
        if !self.keep(&function_id, catalog.metadata(&function_id)) && self.enforcing() {
            // Named by the trigger id, never the bound function's, and worded as for an
            // unknown trigger (`discovery_error`).
            let trigger_id = result.get("id").and_then(Value::as_str).unwrap_or_default();
            return Err(Denial::new(
                DenyReason::TriggerHidden,
                trigger_id.to_owned(),
            ));
        }
        self.strip(result);
        if let Some(function) = result.get_mut("function").filter(|f| f.is_object()) {
            let nested_id = id_of(function).to_owned();
            let metadata = self.metadata_of(function).cloned();
            if self.keep(&nested_id, metadata.as_ref()) {
                self.strip(function);
            } else {
                *function = Value::Null;
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
