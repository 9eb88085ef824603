//! Decisions as typed values: what was allowed and why, or what was denied with the exact iii
//! code and message (spec §4.5, §4.6), plus shadow mode's "allowed, but would be denied".
//!
//! The rules that produce decisions live in `invoke_access.rs`, `registration.rs` and
//! `discovery_filter.rs`; turning a denial into a frame is the caller's job.

use std::borrow::Cow;
use std::fmt;

use crate::wire_error::WireCode;

/// The outcome of one access or registration check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[must_use]
pub enum Decision<'a> {
    /// Go ahead.
    Allow(Grant),
    /// Refuse, answering with the denial's code and message.
    Deny(Denial<'a>),
    /// Shadow mode: the rules would deny, but the call goes ahead. The caller reports it
    /// (an audit line with `shadow=true` and a metric).
    ShadowAllow(Denial<'a>),
}

/// Which rule allowed a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Grant {
    /// The session registered the function itself (settled decision 4).
    Own,
    /// `allowed_functions` from the auth result (exact id).
    Allowed,
    /// A `namespaces.default` grant from the auth result.
    NamespaceGrant,
    /// One of the ten infrastructure ids every session may call.
    Infrastructure,
    /// The listener has no `rbac` block.
    NoRbac,
    /// An `expose_functions` filter matched.
    Exposed,
    /// A registration the session's flags permit.
    Permitted,
}

/// Why something was refused; each reason has one iii code and one message shape.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DenyReason {
    /// Invoke of an id no rule lets through.
    NotExposed,
    /// Invoke of an id in `forbidden_functions`.
    Forbidden,
    /// Trigger whose target no rule lets through.
    TargetNotExposed,
    /// Trigger whose target is in `forbidden_functions`.
    TargetForbidden,
    /// `allow_function_registration: false`.
    FunctionRegistrationNotAllowed,
    /// `allow_trigger_type_registration: false`.
    TriggerTypeRegistrationNotAllowed,
    /// A trigger type outside `allowed_trigger_types`.
    TriggerTypeNotAllowed,
    /// A registration hook refused (the caller runs hooks; the reason is here so every
    /// refusal is built the same way).
    HookDenied,
    /// Unregistering a trigger this session did not register (settled decision 11).
    TriggerNotOwned,
    /// `engine::workers::register` declaring a namespace the session was not given.
    NamespaceNotAllowed,
    /// `engine::workers::info` for a worker with no function the session may see, or none
    /// at all (the two answer alike).
    WorkerNotFound,
    /// `engine::registered-triggers::info` for a trigger bound to a function the session may
    /// not see, or for no trigger at all (the two answer alike; the bound id is not named).
    TriggerHidden,
}

impl DenyReason {
    /// The iii code this reason travels with.
    #[must_use]
    pub const fn code(self) -> WireCode {
        match self {
            Self::NotExposed
            | Self::Forbidden
            | Self::NamespaceNotAllowed
            | Self::TriggerHidden => WireCode::Forbidden,
            Self::TargetNotExposed
            | Self::TargetForbidden
            | Self::FunctionRegistrationNotAllowed
            | Self::TriggerTypeRegistrationNotAllowed
            | Self::TriggerTypeNotAllowed
            | Self::HookDenied
            | Self::TriggerNotOwned => WireCode::RegistrationDenied,
            Self::WorkerNotFound => WireCode::NotFound,
        }
    }
}

/// A refusal: its reason, and the id or name it is about. Formatting it (`Display`) gives the
/// exact iii message; nothing is allocated until then.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial<'a> {
    reason: DenyReason,
    subject: Cow<'a, str>,
    permitted: Option<Box<str>>,
    also: Option<Box<Denial<'static>>>,
}

impl<'a> Denial<'a> {
    pub(crate) fn new(reason: DenyReason, subject: impl Into<Cow<'a, str>>) -> Self {
        Self {
            reason,
            subject: subject.into(),
            permitted: None,
            also: None,
        }
    }

    pub(crate) fn namespace(namespace: &'a str, permitted: String) -> Self {
        Self {
            reason: DenyReason::NamespaceNotAllowed,
            subject: Cow::Borrowed(namespace),
            permitted: Some(permitted.into_boxed_str()),
            also: None,
        }
    }

    /// Why.
    #[must_use]
    pub const fn reason(&self) -> DenyReason {
        self.reason
    }

    /// The iii error code.
    #[must_use]
    pub const fn code(&self) -> WireCode {
        self.reason.code()
    }

    /// The function id, trigger id, type or namespace the denial is about.
    #[must_use]
    pub fn subject(&self) -> &str {
        &self.subject
    }

    /// The exact iii message (the same text as `Display`).
    #[must_use]
    pub fn message(&self) -> String {
        self.to_string()
    }

    /// Detaches the denial from the input it borrowed.
    #[must_use]
    pub fn into_owned(self) -> Denial<'static> {
        Denial {
            reason: self.reason,
            subject: Cow::Owned(self.subject.into_owned()),
            permitted: self.permitted,
            also: self.also,
        }
    }

    /// A later check that would also have denied. Only shadow mode evaluates checks past the
    /// first denial (so its report is complete); an enforced denial stops at the first.
    #[must_use]
    pub fn also(&self) -> Option<&Denial<'static>> {
        self.also.as_deref()
    }

    pub(crate) fn with_also(mut self, also: Denial<'_>) -> Self {
        self.also = Some(Box::new(also.into_owned()));
        self
    }

    pub(crate) fn with_reason(mut self, reason: DenyReason) -> Self {
        self.reason = reason;
        self
    }
}

impl fmt::Display for Denial<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let subject = &self.subject;
        match self.reason {
            DenyReason::NotExposed | DenyReason::TargetNotExposed => write!(
                f,
                "function '{subject}' not allowed (add to rbac.expose_functions)"
            ),
            DenyReason::Forbidden | DenyReason::TargetForbidden => write!(
                f,
                "function '{subject}' not allowed (remove from rbac.forbidden_functions)"
            ),
            DenyReason::FunctionRegistrationNotAllowed => {
                f.write_str("function registration not allowed")
            }
            DenyReason::TriggerTypeRegistrationNotAllowed => {
                f.write_str("trigger type registration not allowed")
            }
            DenyReason::TriggerTypeNotAllowed => f.write_str("trigger type not allowed"),
            DenyReason::HookDenied => f.write_str("denied by hook"),
            DenyReason::TriggerNotOwned => {
                write!(f, "trigger '{subject}' was not registered by this session")
            }
            DenyReason::NamespaceNotAllowed => write!(
                f,
                "namespace '{subject}' not allowed for this session (permitted: {})",
                self.permitted.as_deref().unwrap_or_default()
            ),
            DenyReason::WorkerNotFound => f.write_str("worker not found"),
            DenyReason::TriggerHidden => write!(
                f,
                "trigger '{subject}' not allowed (add its function to rbac.expose_functions)"
            ),
        }
    }
}

impl<'a> Decision<'a> {
    /// Whether the call goes ahead (a shadow denial goes ahead).
    #[must_use]
    pub const fn is_allowed(&self) -> bool {
        matches!(self, Self::Allow(_) | Self::ShadowAllow(_))
    }

    /// The denial to enforce, if any (`None` for a shadow denial).
    #[must_use]
    pub const fn enforced_denial(&self) -> Option<&Denial<'a>> {
        match self {
            Self::Deny(denial) => Some(denial),
            Self::Allow(_) | Self::ShadowAllow(_) => None,
        }
    }

    /// The denial the rules produced, enforced or shadowed.
    #[must_use]
    pub const fn denial(&self) -> Option<&Denial<'a>> {
        match self {
            Self::Deny(denial) | Self::ShadowAllow(denial) => Some(denial),
            Self::Allow(_) => None,
        }
    }

    /// Detaches the decision from the input it borrowed.
    pub fn into_owned(self) -> Decision<'static> {
        match self {
            Self::Allow(grant) => Decision::Allow(grant),
            Self::Deny(denial) => Decision::Deny(denial.into_owned()),
            Self::ShadowAllow(denial) => Decision::ShadowAllow(denial.into_owned()),
        }
    }

    /// Turns an enforced denial into a shadow one when `shadow` is set.
    pub(crate) fn shadowed(self, shadow: bool) -> Self {
        match self {
            Self::Deny(denial) if shadow => Self::ShadowAllow(denial),
            other => other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Decision, Denial, DenyReason};
    use crate::wire_error::WireCode;

    #[test]
    fn messages_are_iiis_exact_strings() {
        let cases = [
            (
                DenyReason::NotExposed,
                "function 'a::b' not allowed (add to rbac.expose_functions)",
                WireCode::Forbidden,
            ),
            (
                DenyReason::Forbidden,
                "function 'a::b' not allowed (remove from rbac.forbidden_functions)",
                WireCode::Forbidden,
            ),
            (
                DenyReason::TargetNotExposed,
                "function 'a::b' not allowed (add to rbac.expose_functions)",
                WireCode::RegistrationDenied,
            ),
            (
                DenyReason::TargetForbidden,
                "function 'a::b' not allowed (remove from rbac.forbidden_functions)",
                WireCode::RegistrationDenied,
            ),
            (
                DenyReason::FunctionRegistrationNotAllowed,
                "function registration not allowed",
                WireCode::RegistrationDenied,
            ),
            (
                DenyReason::TriggerTypeRegistrationNotAllowed,
                "trigger type registration not allowed",
                WireCode::RegistrationDenied,
            ),
            (
                DenyReason::TriggerTypeNotAllowed,
                "trigger type not allowed",
                WireCode::RegistrationDenied,
            ),
            (
                DenyReason::HookDenied,
                "denied by hook",
                WireCode::RegistrationDenied,
            ),
            (
                DenyReason::TriggerNotOwned,
                "trigger 'a::b' was not registered by this session",
                WireCode::RegistrationDenied,
            ),
            (
                DenyReason::WorkerNotFound,
                "worker not found",
                WireCode::NotFound,
            ),
            (
                DenyReason::TriggerHidden,
                "trigger 'a::b' not allowed (add its function to rbac.expose_functions)",
                WireCode::Forbidden,
            ),
        ];
        for (reason, message, code) in cases {
            let denial = Denial::new(reason, "a::b");
            assert_eq!(denial.message(), message);
            assert_eq!(denial.code(), code);
        }
        let namespace = Denial::namespace("orders", "billing, default".into());
        assert_eq!(
            namespace.message(),
            "namespace 'orders' not allowed for this session (permitted: billing, default)"
        );
        assert_eq!(namespace.code(), WireCode::Forbidden);
    }

    #[test]
    fn shadow_mode_turns_denials_into_reported_allows_only() {
        let deny = Decision::Deny(Denial::new(DenyReason::NotExposed, "x"));
        let shadowed = deny.clone().shadowed(true);
        assert!(shadowed.is_allowed());
        assert!(shadowed.enforced_denial().is_none());
        assert_eq!(shadowed.denial(), deny.denial());
        assert_eq!(deny.clone().shadowed(false), deny);
        let allow = Decision::Allow(super::Grant::Exposed);
        assert_eq!(allow.clone().shadowed(true), allow);
    }
}
