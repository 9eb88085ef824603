//! Every iii error code and message the engine puts on the wire, mapped in one exhaustive
//! `match`.

use policies::{Denial, WireCode};

use crate::protocol::ErrorBody;

/// An error the engine answers with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum WireError<'a> {
    /// No function with that id.
    FunctionNotFound(&'a str),
    /// The executing worker went away.
    InvocationStopped,
    /// A second call under an id that is still in flight.
    DuplicateInvocationId,
    /// `action: enqueue` with no queue worker (the queue named).
    NoQueueWorker(&'a str),
    /// An engine-started call outlived its deadline.
    Timeout,
    /// `engine::functions::info` for an id that is not registered.
    NotRegistered(&'a str),
    /// No worker with that name.
    WorkerNotFound(&'a str),
    /// No trigger type with that id.
    TriggerTypeNotRegistered(&'a str),
    /// No trigger binding with that id.
    TriggerNotRegistered(&'a str),
    /// A worker's error that is not an error body, passed on as text.
    InvocationFailed(&'a str),
    /// A value could not be serialized.
    Serialization(String),
    /// iii-http: no request slot freed up within the deadline.
    Overloaded,
    /// iii-http: the request body is over the limit.
    PayloadTooLarge,
    /// iii-http: the request's channels could not be set up.
    ChannelUnavailable,
    /// iii-http: no route matches.
    RouteNotFound,
    /// iii-http: the route's condition function returned `false`.
    ConditionNotMet,
    /// iii-http: a middleware outlived the request's deadline.
    MiddlewareTimeout,
    /// A built-in function got input it cannot use.
    InvalidInput(String),
    /// A trigger binding was refused.
    TriggerRegistrationFailed(String),
    /// An RBAC decision refused the frame (code and message from `policies`).
    Denied(&'a Denial<'a>),
    /// An RBAC registration hook refused the registration.
    HookDenied,
    /// An RBAC session tried to take over a trigger type another worker provides.
    TriggerTypeTaken(&'a str),
    /// An RBAC session sent an invoke larger than `limits.max_message_bytes`.
    MessageTooLarge {
        /// The message's size.
        bytes: usize,
        /// The listener's limit.
        limit: u64,
    },
    /// An RBAC listener's auth failed (the reason).
    AuthFailed(&'a str),
}

impl WireError<'_> {
    /// The `{code, message}` body for this error.
    pub(crate) fn body(&self) -> ErrorBody {
        match self {
            Self::FunctionNotFound(id) => {
                ErrorBody::new("function_not_found", format!("Function {id} not found"))
            }
            Self::InvocationStopped => ErrorBody::new("invocation_stopped", "Invocation stopped"),
            Self::DuplicateInvocationId => ErrorBody::new(
                "invocation_error",
                "an invocation with this invocation_id is already in flight",
            ),
            Self::NoQueueWorker(queue) => ErrorBody::new(
                "enqueue_error",
                format!(
                    "cannot enqueue to '{queue}': no queue worker is installed (iii-queue is not available in this engine)"
                ),
            ),
            Self::Timeout => ErrorBody::new("TIMEOUT", "invocation timed out"),
            Self::NotRegistered(id) => {
                ErrorBody::new("NOT_FOUND", format!("Function '{id}' is not registered."))
            }
            Self::WorkerNotFound(name) => {
                ErrorBody::new("NOT_FOUND", format!("Worker '{name}' not found."))
            }
            Self::TriggerTypeNotRegistered(id) => ErrorBody::new(
                "NOT_FOUND",
                format!("Trigger type '{id}' is not registered."),
            ),
            Self::TriggerNotRegistered(id) => {
                ErrorBody::new("NOT_FOUND", format!("Trigger '{id}' is not registered."))
            }
            Self::InvocationFailed(text) => ErrorBody::new("invocation_failed", *text),
            Self::Serialization(msg) => ErrorBody::new("serialization_error", msg.clone()),
            Self::Overloaded => ErrorBody::new("OVERLOADED", "concurrency_request_limit reached"),
            Self::PayloadTooLarge => ErrorBody::new("payload_too_large", "request body too large"),
            Self::ChannelUnavailable => {
                ErrorBody::new("channel_send_failed", "request channels unavailable")
            }
            Self::RouteNotFound => ErrorBody::new("NOT_FOUND", "Not Found"),
            Self::ConditionNotMet => {
                ErrorBody::new("CONDITION_NOT_MET", "the route's condition was not met")
            }
            Self::MiddlewareTimeout => {
                ErrorBody::new("MIDDLEWARE_TIMEOUT", "middleware did not answer in time")
            }
            Self::InvalidInput(msg) => ErrorBody::new("invalid_input", msg.clone()),
            Self::TriggerRegistrationFailed(msg) => {
                ErrorBody::new("trigger_registration_failed", msg.clone())
            }
            Self::Denied(denial) => ErrorBody::new(denial.code().as_str(), denial.message()),
            Self::HookDenied => {
                ErrorBody::new(WireCode::RegistrationDenied.as_str(), "denied by hook")
            }
            Self::TriggerTypeTaken(id) => ErrorBody::new(
                WireCode::RegistrationDenied.as_str(),
                format!("trigger type '{id}' is provided by another worker"),
            ),
            Self::MessageTooLarge { bytes, limit } => ErrorBody::new(
                "payload_too_large",
                format!("message of {bytes} bytes exceeds limits.max_message_bytes ({limit})"),
            ),
            Self::AuthFailed(reason) => ErrorBody::new(WireCode::AuthError.as_str(), *reason),
        }
    }
}
