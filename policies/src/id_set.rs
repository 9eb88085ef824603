//! Hash sets of exact ids (a session's allowed, forbidden and own ids; the literals of a
//! compiled wildcard set), hashed with foldhash instead of std's SipHash.
//!
//! foldhash is not a cryptographic hash, so a party choosing many keys could aim for
//! collisions (HashDoS). These sets hold ids chosen by operators (config) and by the auth
//! function, not ids a peer inserts in bulk, and `fast::RandomState` seeds every set randomly,
//! so colliding keys cannot be precomputed. Lookups with peer-chosen ids only read the table.

use std::collections::HashSet;

/// The hasher of every id set: foldhash, randomly seeded per set.
pub(crate) type IdHasher = foldhash::fast::RandomState;

/// A set of owned ids.
pub(crate) type IdSet = HashSet<String, IdHasher>;

/// A set of byte strings, for literals probed with slices of an id.
pub(crate) type ByteSet = HashSet<Box<[u8]>, IdHasher>;
