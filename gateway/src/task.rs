//! The one place tasks are spawned, so every task has a named owner: the engine's, shared.

pub(crate) use iii_engine::task::{AbortOnDrop, spawn};
