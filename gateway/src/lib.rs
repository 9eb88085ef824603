//! iii-gateway: the security edge in front of the iii engine.
//!
//! The RBAC listener, TLS termination and reverse-proxy routes land issue by issue; for now
//! the crate carries the command line.
