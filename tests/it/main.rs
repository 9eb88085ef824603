//! End-to-end tests: one binary, real processes on ephemeral loopback ports.
