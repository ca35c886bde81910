//! The rsync exchange: a signature of the old version, a patch made from it without the
//! old version, applied to the old version like any patch.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use qsync_delta::*;

/// The patch from `old` (through its signature only) to `new`, applied to `old`.
fn through_signature(old: &[u8], new: &[u8], block_len: u32, options: &Options) -> Option<Patch> {
    let sig = Signature::with_block_len(old, old.len() as u64, block_len).unwrap();
    let sig = Signature::from_bytes(&sig.to_bytes()).unwrap();
    match encode_blocks(&sig, new, options).unwrap() {
        Delta::Patch(patch) => {
            assert_eq!(apply(patch.as_bytes(), old).unwrap(), new);
            assert_eq!(patch.header().target_hash, ContentHash::of(new));
            Some(patch)
        }
        Delta::Full(_) => None,
    }
}

fn always() -> Options {
    Options {
        max_patch_ratio: f64::INFINITY,
        ..Options::default()
    }
}

fn text(len: usize, seed: u64) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

#[test]
fn a_one_byte_edit_of_a_large_file_costs_one_block() {
    let old = text(8 << 20, 7);
    let mut new = old.clone();
    new[5_000_000] ^= 0xff;
    let block = block_len_for(old.len() as u64);
    let patch = through_signature(&old, &new, block, &Options::default()).unwrap();
    assert!(
        patch.len() < block as usize + 200,
        "{} bytes for a one-byte edit with {block}-byte blocks",
        patch.len()
    );
}

#[test]
fn moved_inserted_and_deleted_runs_are_found_wherever_they_are() {
    let old = text(1 << 20, 3);
    let mut new = Vec::new();
    new.extend_from_slice(b"a header that was not there before");
    new.extend_from_slice(&old[600_000..]);
    new.extend_from_slice(&old[..300_000]);
    let patch = through_signature(&old, &new, 4096, &Options::default()).unwrap();
    assert!(patch.len() < 3 * 4096 + 500, "{} bytes", patch.len());
}

#[test]
fn an_unchanged_file_is_all_copies_and_a_new_one_is_no_patch() {
    let old = text(300_001, 9);
    let same = through_signature(&old, &old, 1024, &Options::default()).unwrap();
    assert!(same.len() < 200, "{} bytes", same.len());
    assert!(through_signature(&old, &text(300_001, 10), 1024, &Options::default()).is_none());
    // Nothing in common, but a patch all the same when asked: the bytes as they are.
    through_signature(&old, &text(300_001, 10), 1024, &always()).unwrap();
    through_signature(b"", b"new", 1024, &always()).unwrap();
    through_signature(b"old", b"", 1024, &always()).unwrap();
}

#[test]
fn a_patch_past_the_absolute_limit_is_given_up() {
    let old = text(1 << 20, 1);
    let options = Options {
        max_patch_len: 100_000,
        ..always()
    };
    assert!(through_signature(&old, &text(1 << 20, 2), 2048, &options).is_none());
}

#[test]
fn a_signature_of_colliding_checksums_costs_a_bounded_number_of_hashes() {
    // Every block claims the checksum of the zero block, each with another strong hash:
    // at every position of a zero file the encoder finds candidates that all fail.
    let zeros = vec![0u8; 4 << 20];
    let real = Signature::with_block_len(&zeros[..1 << 20], 1 << 20, 256).unwrap();
    let mut bytes = real.to_bytes();
    for (i, entry) in bytes[52..].chunks_exact_mut(12).enumerate() {
        entry[4..].copy_from_slice(&(i as u64 + 1).to_le_bytes());
    }
    let hostile = Signature::from_bytes(&bytes).unwrap();
    let started = std::time::Instant::now();
    let delta = encode_blocks(&hostile, &zeros[..], &always()).unwrap();
    assert!(
        matches!(delta, Delta::Full(FullReason::PatchTooLarge)),
        "{delta:?}"
    );
    assert!(started.elapsed().as_secs() < 20, "{:?}", started.elapsed());
}

#[test]
fn a_signature_that_does_not_add_up_is_refused() {
    let sig = Signature::with_block_len(&text(10_000, 4)[..], 10_000, 1000).unwrap();
    let bytes = sig.to_bytes();
    for cut in [0, 3, 51, 52, bytes.len() - 1] {
        assert!(
            Signature::from_bytes(&bytes[..cut]).is_err(),
            "cut at {cut}"
        );
    }
    let mut longer = bytes.clone();
    longer.push(0);
    assert!(Signature::from_bytes(&longer).is_err());
    let mut lying = bytes.clone();
    lying[4..12].copy_from_slice(&20_000u64.to_le_bytes());
    assert!(
        Signature::from_bytes(&lying).is_err(),
        "a length its count does not match"
    );
    let mut tiny = bytes;
    tiny[44..48].copy_from_slice(&16u32.to_le_bytes());
    assert!(
        Signature::from_bytes(&tiny).is_err(),
        "blocks below the minimum"
    );
    assert!(
        Signature::with_block_len(&b"short"[..], 10, 256).is_err(),
        "a reader that gives less than it said"
    );
}

#[test]
fn a_patch_from_a_signature_of_another_version_is_refused_when_applied() {
    let old = text(100_000, 5);
    let sig = Signature::with_block_len(&old[..], old.len() as u64, 1024).unwrap();
    let Delta::Patch(patch) = encode_blocks(&sig, &old[..50_000], &always()).unwrap() else {
        panic!()
    };
    let mut other = old.clone();
    other[10] ^= 1;
    assert!(matches!(
        apply(patch.as_bytes(), &other),
        Err(DeltaError::WrongBase { .. })
    ));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_edit_round_trips_through_a_signature(
        seed in any::<u64>(),
        len in 0usize..40_000,
        block in 256u32..3000,
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0usize..600, prop::collection::vec(any::<u8>(), 0..300)), 0..6),
    ) {
        let old = text(len, seed);
        let mut new = old.clone();
        for (at, remove, insert) in edits {
            let at = at.index(new.len() + 1);
            let end = (at + remove).min(new.len());
            new.splice(at..end, insert);
        }
        through_signature(&old, &new, block, &always()).unwrap();
    }

    #[test]
    fn any_bytes_as_a_signature_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        if let Ok(sig) = Signature::from_bytes(&bytes) {
            let _ = encode_blocks(&sig, &b"some new version of the file"[..], &always());
        }
    }
}

#[test]
fn signature_fuzz_corpus_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/signature");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        fuzzing::signature(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count > 0);
}

/// Writes the seed corpus: `cargo test -p qsync-delta --test blocks -- --ignored write_signature_fuzz_seeds`.
#[test]
#[ignore]
fn write_signature_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/signature");
    std::fs::create_dir_all(&dir).unwrap();
    let source = fuzzing::FUZZ_SOURCE.repeat(20);
    let sig = Signature::with_block_len(&source[..], source.len() as u64, 256).unwrap();
    std::fs::write(dir.join("valid"), sig.to_bytes()).unwrap();
    let mut halves = vec![128u8];
    halves.extend_from_slice(&source);
    let mut edited = source.clone();
    edited[700] ^= 1;
    halves.extend_from_slice(&edited);
    std::fs::write(dir.join("halves"), halves).unwrap();
}

#[test]
fn signature_fuzzing_round_trips_its_halves() {
    let mut data = vec![128u8];
    data.extend_from_slice(&text(3000, 1));
    data.extend_from_slice(&text(3000, 1));
    fuzzing::signature(&data);
}
