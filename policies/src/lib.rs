//! The RBAC decision core shared by `iii-gateway` and `iii-engine`.
//!
//! Pure functions only: listener config in, compiled policy out; frame fields in, decision
//! out. No I/O, no async and no clock.
//!
//! - [`ListenerConfig`] is a `listeners:` block as written; [`ListenerPolicy::new`] validates
//!   it and compiles `expose_functions` into one matcher.
//! - A [`Session`] holds one connection's boundaries, from an [`AuthResult`] or permissive.
//! - `ListenerPolicy::decide_*` return a [`Decision`]: allowed (and why), denied with the exact
//!   iii code and message, or — in shadow mode — allowed but reported.
//! - [`ListenerPolicy::filter_discovery`] rewrites discovery results for a session.
//! - [`expand_env`] expands `${VAR}` / `${VAR:default}` in config text before parsing.
//! - [`PolicyTestFile`] runs an operator's `*_test.yaml` cases against a listener block.
#![deny(clippy::indexing_slicing)]

#[cfg(test)]
mod access_properties;
mod auth_result;
mod config_error;
mod decision;
mod discovery_filter;
mod engine_ids;
mod env_expand;
mod error;
mod expose_filter;
mod expose_matcher;
mod function_catalog;
mod gateway_listeners;
mod id_matcher;
mod id_set;
mod invoke_access;
mod listener_config;
mod listener_policy;
mod policy_test_file;
mod policy_test_runner;
mod prefix_rewrite;
mod registration;
mod session;
mod wildcard;
mod wire_error;

#[doc(hidden)]
pub mod fuzzing;

pub use auth_result::{AuthError, AuthResult};
pub use config_error::{ConfigError, from_yaml};
pub use decision::{Decision, Denial, DenyReason, Grant};
pub use discovery_filter::DiscoveryReply;
pub use engine_ids::{
    DiscoveryFunction, INFRASTRUCTURE_FUNCTIONS, is_infrastructure_function, is_ownable_function,
};
pub use env_expand::{ENGINE_VERSION_DEFAULT, UnsetVariable, expand_env};
pub use error::{Error, Side};
pub use expose_filter::{DEFAULT_NAMESPACE, FunctionFilter, MetadataCondition, MetadataFilter};
pub use function_catalog::FunctionCatalog;
pub use gateway_listeners::GatewayListeners;
pub use listener_config::{
    BuiltinAuthConfig, ChannelsConfig, DEFAULT_AUTH_TIMEOUT_MS, DEFAULT_HANDSHAKE_TIMEOUT_MS,
    DEFAULT_HOST, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_PORT, LimitsConfig, ListenerConfig,
    RbacConfig,
};
pub use listener_policy::ListenerPolicy;
pub use policy_test_file::{ListenerSource, PolicyTestError, PolicyTestFile};
pub use policy_test_runner::{CaseOutcome, CaseResult};
pub use session::Session;
pub use wire_error::WireCode;
