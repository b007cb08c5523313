//! cargo-fuzz target: see `veritas_reliability::targets::detector_state`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| veritas_reliability::targets::detector_state(data));
