//! Entry point shared by the `delta` fuzz target and the corpus test. Not stable API.

/// The source every fuzzed patch is applied to.
pub const FUZZ_SOURCE: &[u8] =
    b"QSync fuzzing source: the quick brown fox jumps over the lazy dog 0123456789";

/// Apply arbitrary bytes as a patch to [`FUZZ_SOURCE`]. Never panics.
pub fn delta(data: &[u8]) {
    let _ = crate::apply(data, FUZZ_SOURCE);
    let _ = crate::Patch::from_bytes(data.to_vec());
}
