//! End-to-end tests: one binary, real processes on ephemeral loopback ports.
//!
//! Build the binaries first (`cargo build --bins`) and install the SDK drivers
//! (`scripts/setup`); `scripts/test` does both.

// Test code: failing loudly is the point.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod builtins;
mod channels;
mod config_boot;
mod engine_rbac;
mod gateway_auth;
mod gateway_rbac;
mod http_api;
mod large_messages;
mod protocol;
mod proxy_examples;
mod sdk_node;
mod sdk_python;
mod support;
mod triggers;
