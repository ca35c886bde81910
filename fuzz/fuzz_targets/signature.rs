//! Arbitrary bytes as a peer's block signature, and as two versions sent through one:
//! no panic, no unbounded work, and every patch rebuilds its version exactly.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qsync_delta::fuzzing::signature(data);
});
