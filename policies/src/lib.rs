//! The RBAC decision core shared by `iii-gateway` and `iii-engine`.
//!
//! Pure functions only: listener config in, compiled policy out; frame in, decision out.
//! No I/O, no async and no clock (callers pass `now` where time matters).
#![deny(clippy::indexing_slicing)]
