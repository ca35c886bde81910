//! Arbitrary bytes applied as a patch: no panic, no unbounded allocation.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qsync_delta::fuzzing::delta(data);
});
