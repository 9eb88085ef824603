//! The engine's own functions (`engine::*`, spec §6): registered at start, dispatched by id.

pub(crate) mod control;
pub(crate) mod discovery;
mod dispatch;

pub(crate) use dispatch::{BuiltinFn, LogLevel, call, flag, opt_str, register_all, req_str};
