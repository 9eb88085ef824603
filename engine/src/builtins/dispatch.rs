//! The table of built-in functions (id, handler, description), their registration, and the
//! dispatch of a call to its handler with the input helpers they share.

use std::sync::Arc;

use serde_json::Value;

use super::{control, discovery};
use crate::engine::Engine;
use crate::protocol::ErrorBody;
use crate::registry::FunctionEntry;
use crate::wire_error::WireError;
use crate::worker_handle::WorkerHandle;

/// A built-in function.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuiltinFn {
    FunctionsList,
    FunctionsInfo,
    WorkersList,
    WorkersInfo,
    WorkersRegister,
    TriggersList,
    TriggersInfo,
    RegisteredTriggersList,
    RegisteredTriggersInfo,
    RegisterTrigger,
    UnregisterTrigger,
    ChannelsCreate,
    Log(LogLevel),
}

/// `engine::log::<level>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogLevel {
    Trace,
    Debug,
    Info,
    Warn,
    Error,
}

const BUILTINS: &[(&str, BuiltinFn, &str)] = &[
    (
        "engine::functions::list",
        BuiltinFn::FunctionsList,
        "List registered functions",
    ),
    (
        "engine::functions::info",
        BuiltinFn::FunctionsInfo,
        "Describe one or several functions",
    ),
    (
        "engine::workers::list",
        BuiltinFn::WorkersList,
        "List connected workers",
    ),
    (
        "engine::workers::info",
        BuiltinFn::WorkersInfo,
        "Describe a worker by name",
    ),
    (
        "engine::workers::register",
        BuiltinFn::WorkersRegister,
        "Record a worker's metadata",
    ),
    (
        "engine::triggers::list",
        BuiltinFn::TriggersList,
        "List trigger types",
    ),
    (
        "engine::triggers::info",
        BuiltinFn::TriggersInfo,
        "Describe a trigger type",
    ),
    (
        "engine::registered-triggers::list",
        BuiltinFn::RegisteredTriggersList,
        "List trigger bindings",
    ),
    (
        "engine::registered-triggers::info",
        BuiltinFn::RegisteredTriggersInfo,
        "Describe a trigger binding",
    ),
    (
        "engine::register_trigger",
        BuiltinFn::RegisterTrigger,
        "Bind a function to a trigger (durable)",
    ),
    (
        "engine::unregister_trigger",
        BuiltinFn::UnregisterTrigger,
        "Remove a trigger binding",
    ),
    (
        "engine::channels::create",
        BuiltinFn::ChannelsCreate,
        "Create a streaming channel",
    ),
    (
        "engine::log::trace",
        BuiltinFn::Log(LogLevel::Trace),
        "Log at trace level",
    ),
    (
        "engine::log::debug",
        BuiltinFn::Log(LogLevel::Debug),
        "Log at debug level",
    ),
    (
        "engine::log::info",
        BuiltinFn::Log(LogLevel::Info),
        "Log at info level",
    ),
    (
        "engine::log::warn",
        BuiltinFn::Log(LogLevel::Warn),
        "Log at warn level",
    ),
    (
        "engine::log::error",
        BuiltinFn::Log(LogLevel::Error),
        "Log at error level",
    ),
];

/// Registers every built-in function.
pub(crate) fn register_all(engine: &Engine) {
    for (id, f, description) in BUILTINS {
        engine
            .functions
            .insert((*id).to_owned(), FunctionEntry::builtin(*f, description));
    }
}

/// Runs a built-in with `data` (JSON text); returns the result as JSON text.
pub(crate) async fn call(
    engine: &Arc<Engine>,
    f: BuiltinFn,
    caller: Option<&Arc<WorkerHandle>>,
    data: &str,
) -> Result<String, ErrorBody> {
    let input: Value = serde_json::from_str(data)
        .map_err(|e| WireError::InvalidInput(format!("data is not JSON: {e}")).body())?;
    let output = match f {
        BuiltinFn::FunctionsList => discovery::functions_list(engine, &input),
        BuiltinFn::FunctionsInfo => discovery::functions_info(engine, &input),
        BuiltinFn::WorkersList => discovery::workers_list(engine, &input),
        BuiltinFn::WorkersInfo => discovery::workers_info(engine, &input),
        BuiltinFn::TriggersList => discovery::triggers_list(engine, &input),
        BuiltinFn::TriggersInfo => discovery::triggers_info(engine, &input),
        BuiltinFn::RegisteredTriggersList => discovery::registered_triggers_list(engine, &input),
        BuiltinFn::RegisteredTriggersInfo => discovery::registered_triggers_info(engine, &input),
        BuiltinFn::WorkersRegister => control::workers_register(engine, caller, &input),
        BuiltinFn::RegisterTrigger => control::register_trigger(engine, input).await,
        BuiltinFn::UnregisterTrigger => control::unregister_trigger(engine, &input).await,
        BuiltinFn::ChannelsCreate => control::channels_create(engine, &input),
        BuiltinFn::Log(level) => Ok(control::log(level, caller, &input)),
    }?;
    serde_json::to_string(&output).map_err(|e| WireError::Serialization(e.to_string()).body())
}

/// Reads an optional string field.
pub(crate) fn opt_str<'a>(input: &'a Value, key: &str) -> Option<&'a str> {
    input.get(key).and_then(Value::as_str)
}

/// Reads an optional boolean flag (absent = false).
pub(crate) fn flag(input: &Value, key: &str) -> bool {
    input.get(key).and_then(Value::as_bool).unwrap_or(false)
}

/// Reads a required string field.
pub(crate) fn req_str<'a>(input: &'a Value, key: &str) -> Result<&'a str, ErrorBody> {
    opt_str(input, key)
        .ok_or_else(|| WireError::InvalidInput(format!("`{key}` (string) is required")).body())
}
