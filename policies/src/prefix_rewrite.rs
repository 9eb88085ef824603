//! `function_registration_prefix` arithmetic (spec §7): adding the prefix to ids a session
//! registers, stripping it from ids sent back to the session, and resolving a bare id to the
//! session's own prefixed function.
//!
//! Which frames get rewritten is the caller's choice; this module only computes ids.

use std::borrow::Cow;

use crate::session::Session;

/// The separator between a prefix and an id.
const SEPARATOR: &str = "::";

impl Session {
    /// The id a registration (or unregistration) is stored under: `P::id` with a prefix,
    /// `id` without one. No check is made that `P` is free of `::`.
    #[must_use]
    pub fn stored_id<'a>(&self, function_id: &'a str) -> Cow<'a, str> {
        match self.prefix() {
            Some(prefix) => Cow::Owned(format!("{prefix}{SEPARATOR}{function_id}")),
            None => Cow::Borrowed(function_id),
        }
    }

    /// The id as the session knows it: `P::` is stripped when present, foreign ids are
    /// returned unchanged (outbound invokes, trigger results, discovery).
    #[must_use]
    pub fn strip_prefix<'a>(&self, function_id: &'a str) -> &'a str {
        self.prefix()
            .and_then(|prefix| function_id.strip_prefix(prefix))
            .and_then(|rest| rest.strip_prefix(SEPARATOR))
            .unwrap_or(function_id)
    }

    /// Resolves an inbound invoke or trigger target: `P::id` when the session registered it,
    /// otherwise the id as sent.
    pub(crate) fn resolve_own<'a>(&self, function_id: &'a str) -> Cow<'a, str> {
        if let Some(prefix) = self.prefix() {
            let candidate = format!("{prefix}{SEPARATOR}{function_id}");
            if self.owns_function(&candidate) {
                return Cow::Owned(candidate);
            }
        }
        Cow::Borrowed(function_id)
    }
}

#[cfg(test)]
mod tests {
    use crate::auth_result::AuthResult;
    use crate::session::Session;
    use proptest::prelude::*;

    fn prefixed(prefix: &str) -> Session {
        Session::from_auth_result(AuthResult {
            function_registration_prefix: Some(prefix.to_owned()),
            ..AuthResult::default()
        })
        .unwrap()
    }

    #[test]
    fn registration_prefixes_and_outbound_ids_are_stripped() {
        let s = prefixed("tenant1");
        assert_eq!(s.stored_id("foo"), "tenant1::foo");
        assert_eq!(s.strip_prefix("tenant1::foo"), "foo");
        assert_eq!(s.strip_prefix("api::users::list"), "api::users::list");
        assert_eq!(s.strip_prefix("tenant10::foo"), "tenant10::foo");
        assert_eq!(Session::permissive().stored_id("foo"), "foo");
    }

    #[test]
    fn a_bare_self_invoke_resolves_to_the_own_prefixed_id() {
        let mut s = prefixed("tenant1");
        s.record_function(s.stored_id("foo").into_owned());
        assert_eq!(s.resolve_own("foo"), "tenant1::foo");
        assert_eq!(s.resolve_own("api::users::list"), "api::users::list");
        assert_eq!(s.resolve_own("bar"), "bar");
    }

    proptest! {
        #[test]
        fn prefix_add_and_strip_round_trip(prefix in "[a-z0-9:]{1,8}", id in "\\PC{0,16}") {
            let s = prefixed(&prefix);
            let stored = s.stored_id(&id);
            prop_assert_eq!(s.strip_prefix(&stored), id.as_str());
        }
    }
}
