//! Patches applied in place: a patch that keeps the length and every unchanged byte where
//! it was gives the few runs it changes, checked against the promised hash; any other
//! patch gives none, and a file that is not the base is refused.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::Write;

use proptest::prelude::*;
use qsync_delta::*;

fn always() -> Options {
    Options {
        max_patch_ratio: f64::INFINITY,
        ..Options::default()
    }
}

fn noise(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

fn file_of(bytes: &[u8]) -> tempfile::NamedTempFile {
    let mut f = tempfile::NamedTempFile::new().unwrap();
    f.write_all(bytes).unwrap();
    f.flush().unwrap();
    f
}

fn patch(old: &[u8], new: &[u8]) -> Vec<u8> {
    match encode(old, new, &always()).unwrap() {
        Delta::Patch(p) => p.into_bytes(),
        Delta::Full(why) => panic!("no patch: {why:?}"),
    }
}

/// `old` with `edits` written over it.
fn applied(old: &[u8], edits: &InPlace) -> Vec<u8> {
    let mut out = old.to_vec();
    for (at, bytes) in &edits.edits {
        out[*at as usize..*at as usize + bytes.len()].copy_from_slice(bytes);
    }
    out
}

fn edits_of(patch: &[u8], old: &[u8], max: u64) -> Result<Option<InPlace>, DeltaError> {
    let f = file_of(old);
    in_place_edits(patch, f.as_file(), f.path(), max)
}

#[test]
fn a_flipped_byte_is_one_byte_written() {
    let old = noise(3 << 20, 1);
    let mut new = old.clone();
    new[1_500_000] ^= 0xff;
    let edits = edits_of(&patch(&old, &new), &old, 1 << 20)
        .unwrap()
        .unwrap();
    assert!(edits.edits == vec![(1_500_000, vec![new[1_500_000]])]);
    assert!(applied(&old, &edits) == new);
}

#[test]
fn a_patch_made_from_a_signature_applies_in_place_too() {
    let old = noise(2 << 20, 2);
    let mut new = old.clone();
    new[700_000] ^= 1;
    let sig = Signature::of(&old[..], old.len() as u64).unwrap();
    let Delta::Patch(p) = encode_blocks(&sig, &new[..], &always()).unwrap() else {
        panic!("no patch")
    };
    let edits = edits_of(p.as_bytes(), &old, 1 << 20).unwrap().unwrap();
    assert_eq!(edits.len(), 1);
    assert!(applied(&old, &edits) == new);
}

#[test]
fn an_insertion_is_not_in_place_and_a_shift_costs_what_it_moves() {
    let old = noise(1 << 20, 3);
    let mut inserted = old.clone();
    inserted.splice(400_000..400_000, *b"four");
    let none = edits_of(&patch(&old, &inserted), &old, 1 << 20).unwrap();
    assert!(none.is_none(), "a new length takes a new file");
    // Same length, but bytes moved: four inserted, four removed further on. Every byte in
    // between changed place, so in place it writes all of them (the caller's limit then
    // makes it a new file).
    inserted.drain(800_000..800_004);
    let p = patch(&old, &inserted);
    let edits = edits_of(&p, &old, 1 << 20)
        .unwrap()
        .expect("within the limit");
    assert!(edits.len() > 390_000, "{}", edits.len());
    assert!(applied(&old, &edits) == inserted);
    assert!(edits_of(&p, &old, 64 * 1024).unwrap().is_none());
}

#[test]
fn more_changed_bytes_than_allowed_is_not_in_place() {
    let old = noise(1 << 20, 4);
    let mut new = old.clone();
    for b in &mut new[100_000..110_000] {
        *b ^= 0x55;
    }
    let p = patch(&old, &new);
    assert!(edits_of(&p, &old, 9_999).unwrap().is_none());
    assert_eq!(edits_of(&p, &old, 10_000).unwrap().unwrap().len(), 10_000);
}

#[test]
fn a_file_that_is_not_the_base_is_refused() {
    let old = noise(1 << 20, 5);
    let mut new = old.clone();
    new[10] ^= 1;
    let mut other = old.clone();
    other[900_000] ^= 1; // not where the patch writes: only the hash can tell
    let refused = edits_of(&patch(&old, &new), &other, 1 << 20);
    assert!(matches!(refused, Err(DeltaError::WrongBase { .. })));
    // Not the base only where the patch writes (so with the patch's runs it would give
    // the promised result): the edits would be the difference from this file, not from
    // the base, and are refused for it.
    let mut near = old.clone();
    near[10] ^= 2;
    let refused = edits_of(&patch(&old, &new), &near, 1 << 20);
    assert!(matches!(refused, Err(DeltaError::WrongBase { .. })));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Same-length edits anywhere (single bytes, runs, at the ends): the edits give the new
    /// version, and write no more than the bytes that changed span.
    #[test]
    fn same_length_edits_give_the_new_version(
        seed in any::<u64>(),
        len in 1usize..400_000,
        changes in prop::collection::vec((any::<prop::sample::Index>(), 1usize..3000, any::<u8>()), 1..6),
    ) {
        let old = noise(len, seed);
        let mut new = old.clone();
        for (at, run, x) in &changes {
            let at = at.index(len);
            let end = (at + run).min(len);
            for b in &mut new[at..end] {
                *b ^= x | 1;
            }
        }
        let p = patch(&old, &new);
        let edits = edits_of(&p, &old, u64::MAX).unwrap().expect("in place");
        prop_assert!(applied(&old, &edits) == new, "the edits give the new version");
        let differing = old.iter().zip(&new).filter(|(a, b)| a != b).count() as u64;
        prop_assert!(edits.len() >= differing);
        let mut last_end = 0;
        for (at, bytes) in &edits.edits {
            prop_assert!(*at >= last_end, "in order, not overlapping");
            last_end = at + bytes.len() as u64;
        }
    }
}
