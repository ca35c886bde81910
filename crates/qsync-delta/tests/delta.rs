//! apply(encode(old, new), old) == new, interop with the reference decoder, atomic apply.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use proptest::prelude::*;
use qsync_delta::*;

fn small_window() -> Options {
    Options {
        window: 4096,
        max_patch_ratio: f64::INFINITY,
        ..Options::default()
    }
}

fn always_patch() -> Options {
    Options {
        max_patch_ratio: f64::INFINITY,
        ..Options::default()
    }
}

fn round_trip(old: &[u8], new: &[u8], options: &Options) -> Result<(), TestCaseError> {
    match encode(old, new, options).unwrap() {
        Delta::Patch(patch) => {
            prop_assert_eq!(apply(patch.as_bytes(), old).unwrap(), new);
            prop_assert_eq!(patch.header().target_hash, ContentHash::of(new));
        }
        Delta::Full(FullReason::NoBase) => prop_assert!(old.is_empty() && !new.is_empty()),
        Delta::Full(FullReason::PatchTooLarge) => prop_assert!(options.max_patch_ratio.is_finite()),
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, Vec<u8>),
    Delete(usize, usize),
    Overwrite(usize, Vec<u8>),
    Truncate(usize),
    Append(Vec<u8>),
}

fn edit() -> impl Strategy<Value = Edit> {
    let bytes = proptest::collection::vec(any::<u8>(), 0..300);
    prop_oneof![
        (any::<usize>(), bytes.clone()).prop_map(|(at, b)| Edit::Insert(at, b)),
        (any::<usize>(), 0usize..2000).prop_map(|(at, n)| Edit::Delete(at, n)),
        (any::<usize>(), bytes.clone()).prop_map(|(at, b)| Edit::Overwrite(at, b)),
        any::<usize>().prop_map(Edit::Truncate),
        bytes.prop_map(Edit::Append),
    ]
}

fn apply_edit(data: &mut Vec<u8>, edit: &Edit) {
    let at = |i: usize, data: &Vec<u8>| {
        if data.is_empty() {
            0
        } else {
            i % (data.len() + 1)
        }
    };
    match edit {
        Edit::Insert(i, b) => {
            let i = at(*i, data);
            data.splice(i..i, b.iter().copied());
        }
        Edit::Delete(i, n) => {
            let i = at(*i, data);
            let end = (i + n).min(data.len());
            data.drain(i..end);
        }
        Edit::Overwrite(i, b) => {
            let i = at(*i, data);
            for (k, byte) in b.iter().enumerate() {
                match data.get_mut(i + k) {
                    Some(slot) => *slot = *byte,
                    None => data.push(*byte),
                }
            }
        }
        Edit::Truncate(i) => {
            let i = at(*i, data);
            data.truncate(i);
        }
        Edit::Append(b) => data.extend_from_slice(b),
    }
}

/// Text-like content, so edits resemble real files.
fn content() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        proptest::collection::vec(any::<u8>(), 0..20_000),
        (proptest::collection::vec("[a-z ]{1,12}\n", 0..2000))
            .prop_map(|lines| lines.concat().into_bytes()),
        (0usize..50_000).prop_map(|n| vec![0u8; n]),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn random_pairs_round_trip(old in content(), new in content()) {
        round_trip(&old, &new, &always_patch())?;
        round_trip(&old, &new, &small_window())?;
        round_trip(&old, &new, &Options::default())?;
    }

    #[test]
    fn realistic_edits_round_trip(old in content(), edits in proptest::collection::vec(edit(), 0..6)) {
        let mut new = old.clone();
        for e in &edits {
            apply_edit(&mut new, e);
        }
        round_trip(&old, &new, &always_patch())?;
        round_trip(&old, &new, &small_window())?;
    }

    #[test]
    fn garbage_never_panics(data in proptest::collection::vec(any::<u8>(), 0..400)) {
        fuzzing::delta(&data);
    }
}

#[test]
fn edge_cases() {
    let data = b"hello world".repeat(100);
    for (old, new) in [
        (&b""[..], &b""[..]),
        (&data[..], &data[..]),
        (&data[..], &b""[..]),
        (&b"x"[..], &data[..]),
    ] {
        let Delta::Patch(p) = encode(old, new, &always_patch()).unwrap() else {
            panic!()
        };
        assert_eq!(apply(p.as_bytes(), old).unwrap(), new);
    }
    assert_eq!(
        encode(b"", b"new", &Options::default()).unwrap(),
        Delta::Full(FullReason::NoBase)
    );
    // Unrelated random content: a patch is not worth it.
    let (a, b) = (xorshift(10_000, 1), xorshift(10_000, 2));
    assert_eq!(
        encode(&a, &b, &Options::default()).unwrap(),
        Delta::Full(FullReason::PatchTooLarge)
    );
}

fn xorshift(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed as u8
        })
        .collect()
}

#[test]
fn identical_large_file_is_a_few_copy_segments() {
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let Delta::Patch(p) = encode(&data, &data, &small_window()).unwrap() else {
        panic!()
    };
    assert!(p.len() < 200, "{}", p.len());
}

#[test]
fn wrong_base_and_corruption_are_typed_errors() {
    let old = b"abcdefghij".repeat(500);
    let mut new = old.clone();
    new[2000] = b'!';
    let Delta::Patch(p) = encode(&old, &new, &always_patch()).unwrap() else {
        panic!()
    };
    assert!(matches!(
        apply(p.as_bytes(), &new),
        Err(DeltaError::WrongBase { .. })
    ));

    // Any corruption of the patch is refused, never a wrong result.
    for i in 0..p.len() {
        let mut bad = p.as_bytes().to_vec();
        bad[i] ^= 0x40;
        if let Ok(out) = apply(&bad, &old) {
            assert_eq!(out, new, "corruption at {i} gave a wrong file");
        }
    }
}

#[test]
fn apply_file_is_atomic_and_leaves_nothing_on_error() {
    let dir = tempfile::tempdir().unwrap();
    let old_path = dir.path().join("file.bin");
    let new_path = dir.path().join("new.bin");
    let old: Vec<u8> = (0..300_000u32).map(|i| (i * 7 % 253) as u8).collect();
    let mut new = old.clone();
    new.splice(1000..1000, b"inserted".iter().copied());
    new.truncate(250_000);
    std::fs::write(&old_path, &old).unwrap();
    std::fs::write(&new_path, &new).unwrap();

    let options = Options {
        window: 64 * 1024,
        max_patch_ratio: 1.0,
        ..Options::default()
    };
    let mut patch = Vec::new();
    let Encoded::Patch { len } = encode_file(&old_path, &new_path, &mut patch, &options).unwrap()
    else {
        panic!()
    };
    assert_eq!(len as usize, patch.len());

    // Wrong base: the target stays as it was, and no temporary file is left.
    let err = apply_file(&patch[..], &new_path, &old_path).unwrap_err();
    assert!(matches!(err, DeltaError::WrongBase { .. }), "{err}");
    assert_eq!(std::fs::read(&old_path).unwrap(), old);

    // Corrupt VCDIFF payload: refused, old file untouched.
    let mut bad = patch.clone();
    let last = bad.len() - 5;
    bad[last] ^= 0xff;
    assert!(apply_file(&bad[..], &old_path, &old_path).is_err());
    assert_eq!(std::fs::read(&old_path).unwrap(), old);
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        2,
        "no temporary file left"
    );

    // In place (out == old) works.
    apply_file(&patch[..], &old_path, &old_path).unwrap();
    assert_eq!(std::fs::read(&old_path).unwrap(), new);
}

/// Our VCDIFF is the standard one: the reference `xdelta3 -d` program (built from the same
/// vendored source by xdelta3-sys's `reference-cli` feature, not our wrapper) decodes every
/// VCDIFF segment of our patches against the source range the segment names, and with the
/// copy segments that rebuilds the new file.
#[test]
fn reference_xdelta3_decodes_our_vcdiff() {
    let dir = tempfile::tempdir().unwrap();
    let old: Vec<u8> = b"line of a config file\n".repeat(50_000);
    let mut new = old.clone();
    new.splice(5000..5000, b"a new line near the start\n".iter().copied());
    new[600_000..600_010].copy_from_slice(b"0123456789");
    let Delta::Patch(p) = encode(&old, &new, &always_patch()).unwrap() else {
        panic!()
    };

    let mut rebuilt = Vec::new();
    let mut vcdiff_segments = 0;
    let bytes = p.as_bytes();
    let mut at = 84;
    let u64_at = |i: usize| u64::from_le_bytes(bytes[i..i + 8].try_into().unwrap()) as usize;
    let u32_at = |i: usize| u32::from_le_bytes(bytes[i..i + 4].try_into().unwrap()) as usize;
    loop {
        match bytes[at] {
            0 => break,
            1 => {
                let (offset, len) = (u64_at(at + 1), u64_at(at + 9));
                rebuilt.extend_from_slice(&old[offset..offset + len]);
                at += 17;
            }
            2 => {
                let (src, src_len, vlen) = (u64_at(at + 1), u32_at(at + 9), u32_at(at + 17));
                let vcdiff = &bytes[at + 21..at + 21 + vlen];
                std::fs::write(dir.path().join("src"), &old[src..src + src_len]).unwrap();
                std::fs::write(dir.path().join("seg.vcdiff"), vcdiff).unwrap();
                let status = Command::new(xdelta3_sys::REFERENCE_CLI)
                    .args(["-d", "-f", "-s", "src", "seg.vcdiff", "out"])
                    .current_dir(dir.path())
                    .status()
                    .unwrap();
                assert!(status.success(), "xdelta3 -d refused our VCDIFF");
                rebuilt.extend_from_slice(&std::fs::read(dir.path().join("out")).unwrap());
                vcdiff_segments += 1;
                at += 21 + vlen;
            }
            3 => {
                let len = u32_at(at + 1);
                rebuilt.extend_from_slice(&bytes[at + 5..at + 5 + len]);
                at += 5 + len;
            }
            other => panic!("unknown segment {other}"),
        }
    }
    assert!(vcdiff_segments >= 1);
    assert_eq!(rebuilt, new);
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/delta");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        fuzzing::delta(&std::fs::read(entry.unwrap().path()).unwrap());
        count += 1;
    }
    assert!(count > 0);
}

/// Writes the seed corpus: `cargo test -p qsync-delta -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/delta");
    std::fs::create_dir_all(&dir).unwrap();
    let old = fuzzing::FUZZ_SOURCE;
    let mut new = old.to_vec();
    new.extend_from_slice(b" and then some more text");
    for (name, opts) in [
        ("one", always_patch()),
        (
            "small",
            Options {
                window: 1024,
                max_patch_ratio: f64::INFINITY,
                ..Options::default()
            },
        ),
    ] {
        let Delta::Patch(p) = encode(old, &new, &opts).unwrap() else {
            panic!()
        };
        std::fs::write(dir.join(name), p.as_bytes()).unwrap();
    }
    let Delta::Patch(p) = encode(old, old, &always_patch()).unwrap() else {
        panic!()
    };
    std::fs::write(dir.join("copy"), p.as_bytes()).unwrap();
}

/// Inputs too small for a VCDIFF header travel as literal bytes (found by the engine's
/// latency bench: 8 bytes from a 1-byte base made the binding fail).
#[test]
fn tiny_versions_round_trip_as_literals() {
    for (old, new) in [
        (&b"0"[..], &b"change 1"[..]),
        (b"a", b"b"),
        (b"ab", b"abc"),
        (b"x", b""),
    ] {
        let Delta::Patch(p) = encode(old, new, &always_patch()).unwrap() else {
            panic!()
        };
        assert_eq!(apply(p.as_bytes(), old).unwrap(), new);
        let dir = tempfile::tempdir().unwrap();
        let (o, n) = (dir.path().join("old"), dir.path().join("new"));
        std::fs::write(&o, old).unwrap();
        std::fs::write(&n, new).unwrap();
        let mut out = Vec::new();
        encode_file(&o, &n, &mut out, &always_patch()).unwrap();
        apply_file(&out[..], &o, &o).unwrap();
        assert_eq!(std::fs::read(&o).unwrap(), new);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn small_pairs_round_trip(old in proptest::collection::vec(any::<u8>(), 1..64), new in proptest::collection::vec(any::<u8>(), 0..64)) {
        round_trip(&old, &new, &always_patch())?;
    }
}

#[test]
fn known_hashes_give_the_same_patch_and_a_wrong_one_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (o, n) = (dir.path().join("old"), dir.path().join("new"));
    let old = xorshift(300_000, 7);
    let mut new = old.clone();
    new[150_000] ^= 1;
    std::fs::write(&o, &old).unwrap();
    std::fs::write(&n, &new).unwrap();
    let (mut plain, mut known) = (Vec::new(), Vec::new());
    encode_file(&o, &n, &mut plain, &always_patch()).unwrap();
    let hashes = (
        qsync_base::ContentHash::of(&old),
        qsync_base::ContentHash::of(&new),
    );
    encode_file_known(&o, &n, &mut known, &always_patch(), hashes).unwrap();
    assert_eq!(plain, known);

    let mut wrong = Vec::new();
    let liar = (qsync_base::ContentHash::of(b"not the old file"), hashes.1);
    encode_file_known(&o, &n, &mut wrong, &always_patch(), liar).unwrap();
    assert!(
        apply(&wrong, &old).is_err(),
        "a patch with a wrong base hash must be refused"
    );

    // A new file that is not the one the hash names (changed since) is no patch at all.
    let changed = (
        hashes.0,
        qsync_base::ContentHash::of(b"what it held before"),
    );
    assert!(matches!(
        encode_file_known(&o, &n, &mut Vec::new(), &always_patch(), changed),
        Err(DeltaError::ResultMismatch { .. })
    ));
}

#[test]
fn a_patch_applied_to_another_base_without_hashing_it_first_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let old = xorshift(200_000, 3);
    let mut new = old.clone();
    new[100_000] ^= 1;
    let Delta::Patch(patch) = encode(&old, &new, &always_patch()).unwrap() else {
        panic!()
    };
    let (base, out) = (dir.path().join("base"), dir.path().join("out"));
    let mut other = old.clone();
    other[5] ^= 1;
    std::fs::write(&base, &other).unwrap();
    let file = std::fs::File::open(&base).unwrap();
    assert!(matches!(
        apply_open_checking_result(patch.as_bytes(), &file, &base, &out),
        Err(DeltaError::ResultMismatch { .. })
    ));
    assert!(!out.exists());
    std::fs::write(&base, &old).unwrap();
    let file = std::fs::File::open(&base).unwrap();
    apply_open_checking_result(patch.as_bytes(), &file, &base, &out).unwrap();
    assert_eq!(std::fs::read(&out).unwrap(), new);
}

/// A copy bomb: a few bytes of patch that copy the same source range a million times.
/// What a patch produces is bounded by the size its header declares (which the receiver
/// checks against the size the record announced, and that against its free space): it is
/// refused as soon as it passes it, having written no more than that.
#[test]
fn a_copy_bomb_stops_at_the_size_its_header_declares() {
    let old = b"0123456789abcdef".repeat(4096); // 64 KiB
    let target_len = 1_000_000u64;
    let mut patch = b"QSD\x01".to_vec();
    patch.extend_from_slice(&(old.len() as u64).to_le_bytes());
    patch.extend_from_slice(qsync_base::ContentHash::of(&old).as_bytes());
    patch.extend_from_slice(&target_len.to_le_bytes());
    patch.extend_from_slice(qsync_base::ContentHash::of(b"whatever").as_bytes());
    for _ in 0..1_000_000 {
        patch.push(1);
        patch.extend_from_slice(&0u64.to_le_bytes());
        patch.extend_from_slice(&(old.len() as u64).to_le_bytes());
    }
    patch.push(0);
    let err = apply(&patch, &old).unwrap_err();
    assert!(
        err.to_string().contains("more than the 1000000 bytes"),
        "{err}"
    );
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("old"), &old).unwrap();
    let out = dir.path().join("out");
    assert!(apply_file(&patch[..], &dir.path().join("old"), &out).is_err());
    assert!(!out.exists());
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "nothing left behind"
    );
}
