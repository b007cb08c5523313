//! cargo-fuzz target: see `veritas_reliability::targets::request_frame`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| veritas_reliability::targets::request_frame(data));
