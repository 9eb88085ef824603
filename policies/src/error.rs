//! The crate-level error: every failure `policies` reports, and which side it blames.
//!
//! Module errors are defined next to their code (`config_error.rs`, `auth_result.rs`,
//! `policy_test_file.rs`); this only rolls them up.

use thiserror::Error;

use crate::auth_result::AuthError;
use crate::config_error::ConfigError;
use crate::policy_test_file::PolicyTestError;

/// Which side of the gateway a failure comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// The client (worker or browser) sent something wrong.
    Downstream,
    /// The engine side (the auth function, a hook) answered something wrong.
    Upstream,
    /// Our own configuration or a bug.
    Internal,
}

/// Any error of this crate.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// A listener config problem.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// An auth result that cannot become a session.
    #[error(transparent)]
    Auth(#[from] AuthError),
    /// A policy test file that cannot run.
    #[error(transparent)]
    PolicyTest(#[from] PolicyTestError),
}

impl Error {
    /// Who is to blame.
    #[must_use]
    pub const fn side(&self) -> Side {
        match self {
            Self::Config(_) | Self::PolicyTest(_) => Side::Internal,
            Self::Auth(_) => Side::Upstream,
        }
    }
}
