//! A linked peer's records, content, patches and requests against a real folder beside an
//! "outside" one: nothing outside the task folder changes, the outside secret is never
//! served, a patch only ever applies to a regular file in the folder.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    qsync_engine::fuzzing::receive(data);
});
