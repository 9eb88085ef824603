//! What discovery filtering needs to know about the engine (spec §8.3): each function's worker
//! and registered metadata, and which functions each trigger type is bound to.
//!
//! Keeping it fresh (TTL, refresh on `engine::functions-available`) is the caller's job; this
//! is plain data built from engine replies.

use std::collections::HashMap;

use serde_json::Value;

/// A snapshot of the engine's functions and trigger bindings.
#[derive(Debug, Clone, Default)]
pub struct FunctionCatalog {
    functions: HashMap<String, CatalogEntry>,
    by_worker: HashMap<String, Vec<String>>,
    bindings: Option<HashMap<String, Vec<String>>>,
}

#[derive(Debug, Clone, Default)]
struct CatalogEntry {
    worker: Option<String>,
    metadata: Option<Value>,
}

impl FunctionCatalog {
    /// An empty catalog with no binding data.
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Builds the function part from an `engine::functions::list` result
    /// (`{functions: [{function_id, worker_name, metadata?}]}`). Malformed entries are skipped.
    #[must_use]
    pub fn from_functions_list(result: &Value) -> Self {
        let mut catalog = Self::new();
        let entries = result.get("functions").and_then(Value::as_array);
        for entry in entries.into_iter().flatten() {
            let Some(function_id) = entry.get("function_id").and_then(Value::as_str) else {
                continue;
            };
            catalog.insert_function(
                function_id,
                entry.get("worker_name").and_then(Value::as_str),
                entry.get("metadata").filter(|m| !m.is_null()).cloned(),
            );
        }
        catalog
    }

    /// Adds (or replaces) one function.
    pub fn insert_function(
        &mut self,
        function_id: &str,
        worker_name: Option<&str>,
        metadata: Option<Value>,
    ) {
        let entry = CatalogEntry {
            worker: worker_name.map(str::to_owned),
            metadata,
        };
        if let Some(previous) = self.functions.insert(function_id.to_owned(), entry)
            && let Some(old_worker) = previous.worker
            && let Some(ids) = self.by_worker.get_mut(&old_worker)
        {
            ids.retain(|id| id != function_id);
        }
        if let Some(worker) = worker_name {
            self.by_worker
                .entry(worker.to_owned())
                .or_default()
                .push(function_id.to_owned());
        }
    }

    /// Replaces the binding index from an `engine::registered-triggers::list` result
    /// (`{registered_triggers: [{trigger_type, function_id}]}`).
    pub fn set_bindings_from_registered_triggers(&mut self, result: &Value) {
        let mut bindings: HashMap<String, Vec<String>> = HashMap::new();
        let entries = result.get("registered_triggers").and_then(Value::as_array);
        for entry in entries.into_iter().flatten() {
            let trigger_type = entry.get("trigger_type").and_then(Value::as_str);
            let function_id = entry.get("function_id").and_then(Value::as_str);
            if let (Some(trigger_type), Some(function_id)) = (trigger_type, function_id) {
                bindings
                    .entry(trigger_type.to_owned())
                    .or_default()
                    .push(function_id.to_owned());
            }
        }
        self.bindings = Some(bindings);
    }

    /// Adds one trigger binding (and turns the binding index on).
    pub fn insert_binding(&mut self, trigger_type: &str, function_id: &str) {
        self.bindings
            .get_or_insert_with(HashMap::new)
            .entry(trigger_type.to_owned())
            .or_default()
            .push(function_id.to_owned());
    }

    /// The registered metadata of a function; `None` when unknown or absent.
    #[must_use]
    pub fn metadata(&self, function_id: &str) -> Option<&Value> {
        self.functions
            .get(function_id)
            .and_then(|entry| entry.metadata.as_ref())
    }

    /// The worker that serves a function (`worker_name`), when the catalog knows it.
    #[must_use]
    pub fn owner(&self, function_id: &str) -> Option<&str> {
        self.functions
            .get(function_id)
            .and_then(|entry| entry.worker.as_deref())
    }

    /// Whether the function is known.
    #[must_use]
    pub fn contains(&self, function_id: &str) -> bool {
        self.functions.contains_key(function_id)
    }

    /// Every known function id, in no particular order.
    pub fn function_ids(&self) -> impl Iterator<Item = &str> {
        self.functions.keys().map(String::as_str)
    }

    /// The ids a worker registered.
    pub(crate) fn worker_functions(&self, worker_name: &str) -> &[String] {
        self.by_worker.get(worker_name).map_or(&[], Vec::as_slice)
    }

    /// The functions bound to a trigger type; `None` when there is no binding data at all.
    pub(crate) fn bindings(&self, trigger_type: &str) -> Option<&[String]> {
        self.bindings
            .as_ref()
            .map(|bindings| bindings.get(trigger_type).map_or(&[][..], Vec::as_slice))
    }
}

#[cfg(test)]
mod tests {
    use super::FunctionCatalog;
    use serde_json::json;

    #[test]
    fn a_catalog_is_built_from_engine_replies() {
        let mut catalog = FunctionCatalog::from_functions_list(&json!({"functions": [
            {"function_id": "a::one", "worker_name": "w1", "metadata": {"public": true}},
            {"function_id": "a::two", "worker_name": "w1", "metadata": null},
            {"worker_name": "broken"},
        ]}));
        assert_eq!(catalog.metadata("a::one"), Some(&json!({"public": true})));
        assert_eq!(catalog.metadata("a::two"), None);
        assert!(catalog.contains("a::two"));
        assert_eq!(catalog.worker_functions("w1").len(), 2);
        assert_eq!(catalog.owner("a::one"), Some("w1"));
        assert_eq!(catalog.owner("nope"), None);
        assert_eq!(catalog.bindings("http"), None);
        catalog.set_bindings_from_registered_triggers(&json!({"registered_triggers": [
            {"trigger_type": "http", "function_id": "a::one"},
        ]}));
        assert_eq!(catalog.bindings("http").map(<[String]>::len), Some(1));
        assert_eq!(catalog.bindings("cron").map(<[String]>::len), Some(0));
    }
}
