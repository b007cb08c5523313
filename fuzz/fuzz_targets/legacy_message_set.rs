//! cargo-fuzz target: see `veritas_reliability::targets::legacy_message_set`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| veritas_reliability::targets::legacy_message_set(data));
