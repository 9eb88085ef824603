//! The discovery functions (`engine::functions::*`, `engine::workers::*`,
//! `engine::triggers::*`, `engine::registered-triggers::*`) with the shapes of spec §6.
//!
//! Every row carries `namespace: "default"`: this engine has no other namespace.

use std::sync::Arc;

use serde_json::{Map, Value, json};

use super::{flag, opt_str, req_str};
use crate::engine::Engine;
use crate::lock::lock;
use crate::protocol::ErrorBody;
use crate::registry::{FunctionEntry, TriggerEntry, TriggerTypeEntry};
use crate::wire_error::WireError;
use crate::worker_handle::WorkerHandle;

const NAMESPACE: &str = "default";
/// Most ids one batch `engine::functions::info` call may ask about.
const MAX_BATCH: usize = 32;

fn raw_json(raw: Option<&serde_json::value::RawValue>) -> Option<Value> {
    raw.and_then(|r| serde_json::from_str(r.get()).ok())
}

fn is_internal(id: &str, entry: &FunctionEntry) -> bool {
    let engine_fn = id.starts_with("engine::") && !id.starts_with("engine::queue::");
    let flagged = raw_json(entry.metadata.as_deref())
        .is_some_and(|m| m.get("internal").and_then(Value::as_bool) == Some(true));
    engine_fn || flagged
}

fn contains_ci(haystack: &str, needle: &str) -> bool {
    haystack.to_lowercase().contains(&needle.to_lowercase())
}

fn function_summary(id: &str, entry: &FunctionEntry) -> Value {
    let mut row = Map::new();
    row.insert("function_id".into(), id.into());
    row.insert("namespace".into(), NAMESPACE.into());
    row.insert("worker_name".into(), entry.worker_name().into());
    if let Some(d) = &entry.description {
        row.insert("description".into(), d.as_str().into());
    }
    if let Some(m) = raw_json(entry.metadata.as_deref()) {
        row.insert("metadata".into(), m);
    }
    Value::Object(row)
}

/// Summaries of every (non-internal unless asked) function, sorted by id.
pub(crate) fn function_summaries(engine: &Engine, include_internal: bool) -> Vec<Value> {
    let mut rows: Vec<(String, Value)> = engine
        .functions
        .iter()
        .filter(|e| include_internal || !is_internal(e.key(), e.value()))
        .map(|e| (e.key().clone(), function_summary(e.key(), e.value())))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    rows.into_iter().map(|(_, v)| v).collect()
}

/// `engine::functions::list`.
pub(crate) fn functions_list(engine: &Engine, input: &Value) -> Result<Value, ErrorBody> {
    let include_internal = flag(input, "include_internal");
    let search = opt_str(input, "search");
    let prefix = opt_str(input, "prefix");
    let mut workers: Vec<&str> = input
        .get("workers")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    workers.extend(opt_str(input, "worker"));
    let functions: Vec<Value> = function_summaries(engine, include_internal)
        .into_iter()
        .filter(|row| {
            let id = row
                .get("function_id")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let desc = row
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default();
            let worker = row
                .get("worker_name")
                .and_then(Value::as_str)
                .unwrap_or_default();
            search.is_none_or(|s| contains_ci(id, s) || contains_ci(desc, s))
                && prefix.is_none_or(|p| id.starts_with(p))
                && (workers.is_empty() || workers.contains(&worker))
        })
        .collect();
    Ok(json!({ "functions": functions }))
}

fn bindings_of(engine: &Engine, function_id: &str) -> Vec<Value> {
    engine
        .triggers
        .iter()
        .filter(|t| t.function_id == function_id)
        .map(|t| json!({ "id": t.id, "trigger_type": t.trigger_type, "config": raw_json(Some(&t.config)) }))
        .collect()
}

fn function_detail(engine: &Engine, id: &str) -> Option<Value> {
    let entry = engine.functions.get(id).map(|e| e.value().clone())?;
    let mut row = function_summary(id, &entry);
    if let Value::Object(map) = &mut row {
        if let Some(s) = raw_json(entry.request_format.as_deref()) {
            map.insert("request_schema".into(), s);
        }
        if let Some(s) = raw_json(entry.response_format.as_deref()) {
            map.insert("response_schema".into(), s);
        }
        map.insert(
            "registered_triggers".into(),
            Value::Array(bindings_of(engine, id)),
        );
    }
    Some(row)
}

/// `engine::functions::info`: `{function_id}` or `{function_ids: [...]}` (at most 32).
pub(crate) fn functions_info(engine: &Engine, input: &Value) -> Result<Value, ErrorBody> {
    if let Some(ids) = input.get("function_ids").and_then(Value::as_array) {
        if ids.len() > MAX_BATCH {
            return Err(WireError::InvalidInput(format!(
                "at most {MAX_BATCH} function_ids per call"
            ))
            .body());
        }
        let functions: Vec<Value> = ids
            .iter()
            .map(|id| {
                let id = id.as_str().unwrap_or_default();
                function_detail(engine, id)
                    .unwrap_or_else(|| json!({ "function_id": id, "error": "not_found" }))
            })
            .collect();
        return Ok(json!({ "functions": functions }));
    }
    let id = req_str(input, "function_id")?;
    function_detail(engine, id).ok_or_else(|| WireError::NotRegistered(id).body())
}

fn worker_summary(w: &WorkerHandle) -> Value {
    let meta = lock(&w.meta).clone();
    let function_count = lock(&w.owned).functions.len();
    json!({
        "name": meta.name.clone().unwrap_or_else(|| w.id.to_string()),
        "description": meta.description,
        "version": meta.version,
        "id": w.id,
        "namespace": NAMESPACE,
        "runtime": meta.runtime,
        "os": meta.os,
        "status": "connected",
        "function_count": function_count,
        "connected_at_ms": w.connected_at_ms,
        "active_invocations": w.active_invocations(),
        "isolation": meta.isolation,
        "ip_address": w.ip_address,
    })
}

fn sorted_workers(engine: &Engine) -> Vec<Arc<WorkerHandle>> {
    let mut workers: Vec<Arc<WorkerHandle>> =
        engine.workers.iter().map(|w| w.value().clone()).collect();
    workers.sort_by_key(|w| (w.connected_at_ms, w.id));
    workers
}

/// `engine::workers::list`.
pub(crate) fn workers_list(engine: &Engine, input: &Value) -> Result<Value, ErrorBody> {
    let search = opt_str(input, "search");
    let runtime = opt_str(input, "runtime");
    let status = opt_str(input, "status");
    let workers: Vec<Value> = sorted_workers(engine)
        .iter()
        .map(|w| worker_summary(w))
        .filter(|row| {
            let field = |k: &str| {
                row.get(k)
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned()
            };
            search.is_none_or(|s| contains_ci(&field("name"), s) || contains_ci(&field("id"), s))
                && runtime.is_none_or(|r| field("runtime") == r)
                && status.is_none_or(|s| field("status") == s)
        })
        .collect();
    Ok(json!({ "workers": workers }))
}

/// `engine::workers::info` by worker name (or id).
pub(crate) fn workers_info(engine: &Engine, input: &Value) -> Result<Value, ErrorBody> {
    let name = req_str(input, "name")?;
    let worker = sorted_workers(engine)
        .into_iter()
        .find(|w| w.name() == name || w.id.to_string() == name)
        .ok_or_else(|| WireError::WorkerNotFound(name).body())?;
    let mut summary = worker_summary(&worker);
    if let Value::Object(map) = &mut summary {
        map.insert("pid".into(), json!(lock(&worker.meta).pid));
        map.insert("internal".into(), false.into());
    }
    let (mut functions, mut types): (Vec<String>, Vec<String>) = {
        let owned = lock(&worker.owned);
        (
            owned.functions.iter().cloned().collect(),
            owned.trigger_types.iter().cloned().collect(),
        )
    };
    functions.sort();
    types.sort();
    let functions: Vec<Value> = functions
        .iter()
        .filter_map(|id| {
            engine
                .functions
                .get(id)
                .map(|e| function_summary(id, e.value()))
        })
        .collect();
    let trigger_types: Vec<Value> = types
        .iter()
        .filter_map(|id| {
            engine
                .trigger_types
                .get(id)
                .map(|t| trigger_type_summary(id, t.value()))
        })
        .collect();
    let registered_triggers: Vec<Value> = engine
        .triggers
        .iter()
        .filter(|t| t.owned_by(worker.id))
        .map(|t| binding_summary(t.value()))
        .collect();
    Ok(json!({
        "worker": summary,
        "functions": functions,
        "trigger_types": trigger_types,
        "registered_triggers": registered_triggers,
    }))
}

fn trigger_type_summary(id: &str, t: &TriggerTypeEntry) -> Value {
    json!({ "id": id, "namespace": NAMESPACE, "worker_name": t.worker_name(), "description": t.description })
}

fn trigger_type_detail(engine: &Engine, id: &str, t: &TriggerTypeEntry) -> Value {
    let mut row = trigger_type_summary(id, t);
    if let Value::Object(map) = &mut row {
        if let Some(s) = raw_json(t.trigger_request_format.as_deref()) {
            map.insert("configuration_schema".into(), s);
        }
        if let Some(s) = raw_json(t.call_request_format.as_deref()) {
            map.insert("request_schema".into(), s);
        }
        let count = engine
            .triggers
            .iter()
            .filter(|b| b.trigger_type == id)
            .count();
        map.insert("instance_count".into(), count.into());
    }
    row
}

/// `engine::triggers::list` (trigger types).
pub(crate) fn triggers_list(engine: &Engine, input: &Value) -> Result<Value, ErrorBody> {
    let include_internal = flag(input, "include_internal");
    let search = opt_str(input, "search");
    let prefix = opt_str(input, "prefix");
    let worker = opt_str(input, "worker");
    let mut rows: Vec<(String, Value)> = engine
        .trigger_types
        .iter()
        .filter(|t| include_internal || !t.key().starts_with("engine::"))
        .filter(|t| {
            search.is_none_or(|s| contains_ci(t.key(), s) || contains_ci(&t.description, s))
        })
        .filter(|t| prefix.is_none_or(|p| t.key().starts_with(p)))
        .filter(|t| worker.is_none_or(|w| t.worker_name() == w))
        .map(|t| (t.key().clone(), trigger_type_summary(t.key(), t.value())))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(json!({ "triggers": rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>() }))
}

/// `engine::triggers::info`.
pub(crate) fn triggers_info(engine: &Engine, input: &Value) -> Result<Value, ErrorBody> {
    let id = req_str(input, "id")?;
    let t = engine
        .trigger_types
        .get(id)
        .map(|t| t.value().clone())
        .ok_or_else(|| WireError::TriggerTypeNotRegistered(id).body())?;
    Ok(trigger_type_detail(engine, id, &t))
}

fn config_summary(t: &TriggerEntry) -> String {
    let config = raw_json(Some(&t.config)).unwrap_or(Value::Null);
    match t.trigger_type.as_str() {
        "http" => format!(
            "{} {}",
            config
                .get("http_method")
                .and_then(Value::as_str)
                .unwrap_or("GET")
                .to_uppercase(),
            config
                .get("api_path")
                .and_then(Value::as_str)
                .unwrap_or_default()
        ),
        "cron" => config
            .get("expression")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned(),
        _ => {
            let mut s = config.to_string();
            if s.len() > 80 {
                let cut = (0..=80).rev().find(|i| s.is_char_boundary(*i)).unwrap_or(0);
                s.truncate(cut);
                s.push('…');
            }
            s
        }
    }
}

fn binding_summary(t: &TriggerEntry) -> Value {
    json!({
        "id": t.id,
        "trigger_type": t.trigger_type,
        "function_id": t.function_id,
        "worker_name": t.worker_name(),
        "config": raw_json(Some(&t.config)),
        "config_summary": config_summary(t),
    })
}

/// `engine::registered-triggers::list`.
pub(crate) fn registered_triggers_list(engine: &Engine, input: &Value) -> Result<Value, ErrorBody> {
    let include_internal = flag(input, "include_internal");
    let search = opt_str(input, "search");
    let trigger_type = opt_str(input, "trigger_type");
    let function_id = opt_str(input, "function_id");
    let worker = opt_str(input, "worker");
    let mut rows: Vec<(String, Value)> = engine
        .triggers
        .iter()
        .filter(|t| include_internal || !t.function_id.starts_with("engine::"))
        .filter(|t| {
            search.is_none_or(|s| {
                contains_ci(&t.id, s)
                    || contains_ci(&t.function_id, s)
                    || contains_ci(&t.trigger_type, s)
            })
        })
        .filter(|t| trigger_type.is_none_or(|x| t.trigger_type == x))
        .filter(|t| function_id.is_none_or(|x| t.function_id == x))
        .filter(|t| worker.is_none_or(|w| t.worker_name() == w))
        .map(|t| (t.id.clone(), binding_summary(t.value())))
        .collect();
    rows.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(json!({ "registered_triggers": rows.into_iter().map(|(_, v)| v).collect::<Vec<_>>() }))
}

/// `engine::registered-triggers::info`.
pub(crate) fn registered_triggers_info(engine: &Engine, input: &Value) -> Result<Value, ErrorBody> {
    let id = req_str(input, "id")?;
    let t = engine
        .triggers
        .get(id)
        .map(|t| t.value().clone())
        .ok_or_else(|| WireError::TriggerNotRegistered(id).body())?;
    let trigger = engine
        .trigger_types
        .get(&t.trigger_type)
        .map(|tt| trigger_type_detail(engine, &t.trigger_type, tt.value()));
    let function = function_detail(engine, &t.function_id);
    let mut row = binding_summary(&t);
    if let Value::Object(map) = &mut row {
        map.remove("config_summary");
        if let Some(m) = raw_json(t.metadata.as_deref()) {
            map.insert("metadata".into(), m);
        }
        map.insert("trigger".into(), trigger.unwrap_or(Value::Null));
        map.insert("function".into(), function.unwrap_or(Value::Null));
    }
    Ok(row)
}
