//! Arbitrary bytes as a signed store index (signature file, then the index): no panic, and
//! nothing passes that no key signed.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qsync_magasin::fuzzing::signed_index(data);
});
