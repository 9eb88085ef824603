//! The crate-level error: everything that stops the engine from starting or serving, rolled up
//! from the module errors (config, listener start, the ready file, a worker's queue), each
//! answering which side is at fault.

use std::path::PathBuf;

pub use policies::Side;

use crate::config::ConfigErrors;
use crate::start::StartError;
use crate::worker_handle::SendError;

/// Any error of this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The config file is invalid (every problem is listed).
    #[error("invalid configuration")]
    Config(#[from] ConfigErrors),
    /// A listener could not start.
    #[error(transparent)]
    Start(#[from] StartError),
    /// The ready file could not be written.
    #[error("cannot write the ready file {path}")]
    ReadyFile {
        /// Where it should have gone.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// A frame could not be queued for a worker (it left, or stopped reading).
    #[error(transparent)]
    Send(#[from] SendError),
}

impl Error {
    /// Who is to blame: the operator's config and the host are internal; a worker that left
    /// or stopped reading is downstream.
    #[must_use]
    pub const fn side(&self) -> Side {
        match self {
            Self::Config(_) | Self::Start(_) | Self::ReadyFile { .. } => Side::Internal,
            Self::Send(_) => Side::Downstream,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ConfigError;

    #[test]
    fn operator_problems_are_internal_and_peer_problems_downstream() {
        let config = Error::from(ConfigErrors(vec![ConfigError {
            file: "f".into(),
            position: None,
            path: "workers".into(),
            problem: "bad".into(),
        }]));
        assert_eq!(config.side(), Side::Internal);
        assert_eq!(config.to_string(), "invalid configuration");
        let source = std::error::Error::source(&config).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("f: workers: bad"));
        assert_eq!(Error::from(SendError::Closed).side(), Side::Downstream);
    }
}
