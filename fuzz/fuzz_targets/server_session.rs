//! See `checks::server_session` (fuzz/checks.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|input: (u8, Vec<Vec<u8>>)| checks::server_session(input));
