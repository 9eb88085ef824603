//! iii-engine: an engine that speaks the iii worker protocol so the official SDKs work unchanged.
