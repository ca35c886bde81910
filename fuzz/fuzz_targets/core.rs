//! Arbitrary bytes as a peer's sync messages to a core: no panic, no endless loop.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qsync_core::fuzzing::messages(std::time::Instant::now(), data);
});
