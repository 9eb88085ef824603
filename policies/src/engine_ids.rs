//! The ids the engine owns and what they mean for a session: the infrastructure carve-out
//! every session may call (spec §4.2 rule 4), the eight discovery functions whose results are
//! filtered (spec §8), and which ids a session may ever hold as its own (settled decision 4).
//!
//! Plain data with no dependency on sessions or policies, so every rule module can use it.

/// The ten ids every session may call (spec §4.2 rule 4), additive-only within a major version.
pub const INFRASTRUCTURE_FUNCTIONS: [&str; 10] = [
    "engine::channels::create",
    "engine::workers::register",
    "engine::log::info",
    "engine::log::warn",
    "engine::log::error",
    "engine::log::debug",
    "engine::log::trace",
    "engine::baggage::get",
    "engine::baggage::set",
    "engine::baggage::get_all",
];

/// The namespace of engine-owned ids (built-ins, the carve-out, the discovery functions).
const ENGINE_PREFIX: &str = "engine::";

/// Whether the id is one of the infrastructure carve-out ids.
#[must_use]
pub fn is_infrastructure_function(function_id: &str) -> bool {
    INFRASTRUCTURE_FUNCTIONS.contains(&function_id)
}

/// Whether a session may ever hold this id as its own (settled decision 4): never an
/// `engine::*` id, a carve-out id or a discovery id, whatever the session recorded. Such ids
/// are reached through the other rules only, so registering one never bypasses
/// `expose_functions`.
#[must_use]
pub fn is_ownable_function(function_id: &str) -> bool {
    !function_id.starts_with(ENGINE_PREFIX)
        && !is_infrastructure_function(function_id)
        && DiscoveryFunction::from_id(function_id).is_none()
}

/// The discovery functions whose results are filtered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DiscoveryFunction {
    /// `engine::functions::list`
    FunctionsList,
    /// `engine::functions::info` (one id or the batch `function_ids` form)
    FunctionsInfo,
    /// `engine::workers::list`
    WorkersList,
    /// `engine::workers::info`
    WorkersInfo,
    /// `engine::triggers::list`
    TriggersList,
    /// `engine::triggers::info`
    TriggersInfo,
    /// `engine::registered-triggers::list`
    RegisteredTriggersList,
    /// `engine::registered-triggers::info`
    RegisteredTriggersInfo,
}

impl DiscoveryFunction {
    /// All eight, in spec order.
    pub const ALL: [Self; 8] = [
        Self::FunctionsList,
        Self::FunctionsInfo,
        Self::WorkersList,
        Self::WorkersInfo,
        Self::TriggersList,
        Self::TriggersInfo,
        Self::RegisteredTriggersList,
        Self::RegisteredTriggersInfo,
    ];

    /// The function id.
    #[must_use]
    pub const fn id(self) -> &'static str {
        match self {
            Self::FunctionsList => "engine::functions::list",
            Self::FunctionsInfo => "engine::functions::info",
            Self::WorkersList => "engine::workers::list",
            Self::WorkersInfo => "engine::workers::info",
            Self::TriggersList => "engine::triggers::list",
            Self::TriggersInfo => "engine::triggers::info",
            Self::RegisteredTriggersList => "engine::registered-triggers::list",
            Self::RegisteredTriggersInfo => "engine::registered-triggers::info",
        }
    }

    /// The discovery function with this id, if it is one.
    #[must_use]
    pub fn from_id(function_id: &str) -> Option<Self> {
        Self::ALL
            .into_iter()
            .find(|function| function.id() == function_id)
    }
}
