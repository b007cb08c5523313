//! cargo-fuzz target: see `veritas_reliability::targets::log_recover`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| veritas_reliability::targets::log_recover(data));
