//! Listener config parsing, policy test files and every decision on arbitrary input; the
//! compiled wildcard matcher is checked against the spec's reference algorithm.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    policies::fuzzing::config_and_decisions(data);
});
