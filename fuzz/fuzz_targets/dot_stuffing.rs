//! See `checks::dot_stuffing` (fuzz/checks.rs).
#![no_main]
use libfuzzer_sys::fuzz_target;

#[path = "../checks.rs"]
mod checks;

fuzz_target!(|input: (Vec<u8>, u16)| checks::dot_stuffing(input));
