//! What the engine knows: functions, trigger types and trigger bindings, each in a concurrent
//! map so lookups on the invocation path never wait on one global lock.

use std::sync::Arc;

use serde_json::value::RawValue;
use uuid::Uuid;

use crate::builtins::BuiltinFn;
use crate::worker_handle::WorkerHandle;

/// Name shown as `worker_name` for the engine's own functions and trigger types.
pub(crate) const ENGINE_WORKER_NAME: &str = "iii-engine";

/// Who runs a function.
#[derive(Debug, Clone)]
pub(crate) enum Owner {
    /// A connected worker.
    Worker(Arc<WorkerHandle>),
    /// The engine itself.
    Builtin(BuiltinFn),
}

/// A registered function.
#[derive(Debug, Clone)]
pub(crate) struct FunctionEntry {
    pub(crate) owner: Owner,
    pub(crate) description: Option<String>,
    pub(crate) request_format: Option<Box<RawValue>>,
    pub(crate) response_format: Option<Box<RawValue>>,
    pub(crate) metadata: Option<Box<RawValue>>,
}

impl FunctionEntry {
    pub(crate) fn builtin(f: BuiltinFn, description: &str) -> Self {
        Self {
            owner: Owner::Builtin(f),
            description: Some(description.to_owned()),
            request_format: None,
            response_format: None,
            metadata: None,
        }
    }

    /// The owning worker's id, or `None` for the engine's own functions.
    pub(crate) fn owner_id(&self) -> Option<Uuid> {
        match &self.owner {
            Owner::Worker(w) => Some(w.id),
            Owner::Builtin(_) => None,
        }
    }

    pub(crate) fn worker_name(&self) -> String {
        match &self.owner {
            Owner::Worker(w) => w.name(),
            Owner::Builtin(_) => ENGINE_WORKER_NAME.to_owned(),
        }
    }
}

/// Trigger types the engine provides itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BuiltinTrigger {
    /// `http` (iii-http routes).
    Http,
    /// `engine::workers-available`.
    WorkersAvailable,
    /// `engine::functions-available`.
    FunctionsAvailable,
}

/// Who handles bindings of a trigger type.
#[derive(Debug, Clone)]
pub(crate) enum Provider {
    Worker(Arc<WorkerHandle>),
    Builtin(BuiltinTrigger),
}

/// A registered trigger type.
#[derive(Debug, Clone)]
pub(crate) struct TriggerTypeEntry {
    pub(crate) description: String,
    pub(crate) provider: Provider,
    pub(crate) trigger_request_format: Option<Box<RawValue>>,
    pub(crate) call_request_format: Option<Box<RawValue>>,
}

impl TriggerTypeEntry {
    pub(crate) fn builtin(kind: BuiltinTrigger, description: &str) -> Self {
        Self {
            description: description.to_owned(),
            provider: Provider::Builtin(kind),
            trigger_request_format: None,
            call_request_format: None,
        }
    }

    pub(crate) fn worker_name(&self) -> String {
        match &self.provider {
            Provider::Worker(w) => w.name(),
            Provider::Builtin(_) => ENGINE_WORKER_NAME.to_owned(),
        }
    }
}

/// A binding of a function to a trigger type.
#[derive(Debug, Clone)]
pub(crate) struct TriggerEntry {
    pub(crate) id: String,
    pub(crate) trigger_type: String,
    pub(crate) function_id: String,
    pub(crate) config: Box<RawValue>,
    pub(crate) metadata: Option<Box<RawValue>>,
    /// The connection that made it (removed with it); `None` for durable bindings made with
    /// `engine::register_trigger`.
    pub(crate) owner: Option<Arc<WorkerHandle>>,
}

impl TriggerEntry {
    /// Whether the connection `worker` made this binding.
    pub(crate) fn owned_by(&self, worker: Uuid) -> bool {
        self.owner.as_ref().is_some_and(|o| o.id == worker)
    }

    pub(crate) fn worker_name(&self) -> String {
        self.owner
            .as_ref()
            .map_or_else(|| ENGINE_WORKER_NAME.to_owned(), |w| w.name())
    }
}

/// JSON `null` as a raw value.
pub(crate) fn raw_null() -> Box<RawValue> {
    RawValue::NULL.to_owned()
}
