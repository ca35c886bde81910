//! Arbitrary bytes as an app archive (unpacked into a temporary folder) and as app
//! descriptions: no panic, nothing written outside the folder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qsync_apps::fuzzing::apps(data);
});
