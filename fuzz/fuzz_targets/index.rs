//! Arbitrary bytes as a Magasin store index: no panic.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qsync_magasin::fuzzing::index(data);
});
