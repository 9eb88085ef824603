//! `iii-engine` command line.

fn main() {}
