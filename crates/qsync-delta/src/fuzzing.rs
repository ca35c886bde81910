//! Entry points shared by the fuzz targets and the corpus tests. Not stable API.

use crate::{apply, encode_blocks, Delta, Options, Signature};

/// The source every fuzzed patch is applied to.
pub const FUZZ_SOURCE: &[u8] =
    b"QSync fuzzing source: the quick brown fox jumps over the lazy dog 0123456789";

/// Apply arbitrary bytes as a patch to [`FUZZ_SOURCE`], whole and in place. Panics only
/// if the edits in place, when they are given, do not make what the whole apply makes.
pub fn delta(data: &[u8]) {
    let whole = crate::apply(data, FUZZ_SOURCE);
    let _ = crate::Patch::from_bytes(data.to_vec());
    if let Ok(Some(edits)) = crate::in_place::edits_in(data, FUZZ_SOURCE, u64::MAX) {
        let mut out = FUZZ_SOURCE.to_vec();
        for (at, bytes) in &edits.edits {
            let at = at.to_owned() as usize;
            out[at..at + bytes.len()].copy_from_slice(bytes);
        }
        #[allow(clippy::panic)]
        if whole.as_ref().ok() != Some(&out) {
            panic!("edits in place and the whole apply disagree: {whole:?}");
        }
    }
}

/// Arbitrary bytes as a signature another device sent: parsed, and if they parse, a patch
/// made from them for [`FUZZ_SOURCE`]. Then the same bytes as two versions of a file (split
/// at the first byte's share of the rest): the patch from the old one's signature must
/// rebuild the new one exactly. Panics only if that round trip fails.
pub fn signature(data: &[u8]) {
    let always = Options {
        max_patch_ratio: f64::INFINITY,
        ..Options::default()
    };
    if let Ok(sig) = Signature::from_bytes(data) {
        let _ = encode_blocks(&sig, FUZZ_SOURCE, &always);
    }
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let (old, new) = rest.split_at(rest.len() * usize::from(cut) / 255);
    let block = 256 + u32::from(cut % 8) * 64;
    let Ok(sig) = Signature::with_block_len(old, old.len() as u64, block) else {
        return;
    };
    if let Ok(Delta::Patch(patch)) = encode_blocks(&sig, new, &always) {
        #[allow(clippy::panic)]
        match apply(patch.as_bytes(), old) {
            Ok(rebuilt) if rebuilt == new => {}
            other => panic!("a patch from a signature did not rebuild the new version: {other:?}"),
        }
    }
}
