//! The `receive` fuzz target (a linked peer's records, content, patches and requests
//! against a real folder beside an "outside" one) replayed as plain tests: its corpus,
//! and random programs from proptest. `qsync_engine::fuzzing::receive` panics if anything
//! outside the task folder changed or the outside secret was served.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use proptest::prelude::*;

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/receive")
}

#[test]
fn fuzz_corpus_replays_and_nothing_outside_changes() {
    let mut count = 0;
    let mut placed = 0;
    for entry in std::fs::read_dir(corpus()).unwrap() {
        let summary =
            qsync_engine::fuzzing::receive(&std::fs::read(entry.unwrap().path()).unwrap());
        placed += summary.placed;
        count += 1;
    }
    assert!(count > 0);
    // The seeds do reach the disk: links, folders and files are placed.
    assert!(placed >= 6, "only {placed} placements");
}

/// A file the peer sends lands; a patch from it (its base in the folder) applies.
#[test]
fn the_harness_places_and_patches_for_real() {
    // `a` = "hi", then a patch on `a` made from bytes of the program (not its base: none
    // applies), then a link `link` -> `a`.
    let summary = qsync_engine::fuzzing::receive(&[0, 0, 2, b'h', b'i', 1, 9, 6]);
    assert_eq!(summary.placed, 2, "{summary:?}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn random_programs_never_reach_outside(data in proptest::collection::vec(any::<u8>(), 0..160)) {
        qsync_engine::fuzzing::receive(&data);
    }
}

/// Writes the seed corpus: `cargo test -p qsync-engine --test receive_fuzz -- --ignored`.
/// Steps: an action byte (0 file, 1 link, 2 folder, 3 deletion, 4 request for the
/// secret, 5 patch, 6 a placement straight to the driver: then 0 file, 1 link (and a
/// target byte), 2 folder, 3 deletion), a path byte (depth 1 + b % 3, first name NAMES[b / 3 % 6], then one
/// byte per further name: a b out link zero .qsyncignore), then the action's bytes.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = corpus();
    std::fs::create_dir_all(&dir).unwrap();
    let seeds: [(&str, &[u8]); 6] = [
        // The driver alone: `link` -> outside, then a file, a folder and a link through it.
        (
            "driver-through-link",
            &[1, 9, 0, 6, 10, 0, 0, 6, 10, 1, 2, 6, 10, 2, 1, 0],
        ),
        // The driver alone: a link `out` -> `../..`, a file `out/a`, a deletion through it.
        ("driver-climb", &[6, 6, 1, 5, 6, 7, 0, 0, 6, 7, 3, 3]),
        // `link` -> the outside folder, then a file through it, then ask for link/secret.
        (
            "write-through-link",
            &[1, 9, 0, 0, 10, 0, 3, 65, 66, 67, 4, 10, 1],
        ),
        // `link` -> the outside secret, a patch on it whose base is the secret.
        ("patch-on-link", &[1, 9, 1, 5, 9, 0, 4, 9]),
        // `zero` -> /dev/zero, a patch on it, a request for it, then a file over it.
        (
            "dev-zero",
            &[
                1, 12, 4, 5, 12, 1, 9, 1, 2, 3, 4, 5, 6, 7, 8, 9, 4, 12, 0, 12, 2, 1, 2,
            ],
        ),
        // A folder `a`, a link `a/b` -> `../..`, a file through it, a deletion of `a`.
        ("climb-out", &[2, 0, 1, 1, 0, 5, 0, 7, 1, 0, 5, 0, 3, 0]),
    ];
    for (name, bytes) in seeds {
        std::fs::write(dir.join(name), bytes).unwrap();
    }
}
