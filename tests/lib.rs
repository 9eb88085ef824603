//! Empty library target: the end-to-end tests live in `it/` and build into one binary.
