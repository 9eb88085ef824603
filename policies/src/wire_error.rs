//! The iii error codes this crate hands to callers, mapped to their wire spelling in one
//! exhaustive `match`.
//!
//! Building the frames that carry these codes (`invocationresult`, `triggerregistrationresult`,
//! the `error` frame before a close) is the caller's job; this module only owns the strings.

use std::fmt;

/// An iii error code, as it travels in `ErrorBody.code`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WireCode {
    /// `FORBIDDEN`: an invoke (or a discovery lookup) the session may not make.
    Forbidden,
    /// `REGISTRATION_DENIED`: a refused function, trigger or trigger-type registration.
    RegistrationDenied,
    /// `NOT_FOUND`: used by discovery filtering (`worker not found`).
    NotFound,
    /// `AUTH_ERROR`: the auth function failed, returned nothing or returned a bad shape.
    AuthError,
}

impl WireCode {
    /// The code exactly as iii spells it on the wire.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Forbidden => "FORBIDDEN",
            Self::RegistrationDenied => "REGISTRATION_DENIED",
            Self::NotFound => "NOT_FOUND",
            Self::AuthError => "AUTH_ERROR",
        }
    }

    /// The code for a wire spelling, if it is one of ours.
    #[must_use]
    pub fn from_wire(code: &str) -> Option<Self> {
        [
            Self::Forbidden,
            Self::RegistrationDenied,
            Self::NotFound,
            Self::AuthError,
        ]
        .into_iter()
        .find(|candidate| candidate.as_str() == code)
    }
}

impl fmt::Display for WireCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::WireCode;

    #[test]
    fn every_code_round_trips_through_its_wire_spelling() {
        for code in [
            WireCode::Forbidden,
            WireCode::RegistrationDenied,
            WireCode::NotFound,
            WireCode::AuthError,
        ] {
            assert_eq!(WireCode::from_wire(code.as_str()), Some(code));
        }
        assert_eq!(WireCode::from_wire("forbidden"), None);
    }
}
