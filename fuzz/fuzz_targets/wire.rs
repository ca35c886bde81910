//! Arbitrary bytes into every parser of untrusted wire bytes: the frame codec, the
//! handshake, pairing frames, session opening and message decoding.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qsync_wire::fuzzing::wire(data);
});
