//! Hashing content by pieces of its BLAKE3 tree, so that the part of a content a device
//! keeps from a transfer cut short can be checked block by block against another
//! device's copy before the rest is asked for.
//!
//! BLAKE3 is a Merkle tree over 1 KiB chunks: the hash of a content is the root of the
//! chaining values of its aligned subtrees. [`PieceHasher`] hashes a stream as subtrees
//! of [`PIECE_LEN`] bytes (with `blake3::hazmat`) and merges them into the very same
//! [`ContentHash`] at the end: one pass gives both the content's hash and, at any moment,
//! [`PieceHasher::checks`] — one hash per block of the bytes so far, a block being
//! [`check_block_len`] bytes (whole pieces, so that the list stays short). Two devices
//! holding the same first bytes compute the same checks; the first block whose checks
//! differ is where their copies part.
//!
//! ```
//! use qsync_base::{ContentHash, PieceHasher};
//!
//! let data = vec![7u8; 3 << 20];
//! let mut hasher = PieceHasher::new();
//! hasher.update(&data[..1 << 20]);
//! let checks = hasher.checks(); // of the first MiB: one block
//! assert_eq!(checks.len(), 1);
//! hasher.update(&data[1 << 20..]);
//! assert_eq!(hasher.finish(), ContentHash::of(&data));
//! ```

use blake3::hazmat::{
    left_subtree_len, merge_subtrees_non_root, merge_subtrees_root, ChainingValue, HasherExt, Mode,
};

use crate::ContentHash;

/// Bytes per piece of the tree (a power of two, a whole number of BLAKE3 chunks).
pub const PIECE_LEN: u64 = 1 << 20;

/// The most checks that describe a prefix: beyond, blocks grow (by powers of two).
pub const MAX_CHECKS: u64 = 1024;

/// The bytes per checked block for a prefix of `len` bytes: [`PIECE_LEN`], doubled until
/// at most [`MAX_CHECKS`] blocks cover it. A block boundary is always a piece boundary.
pub fn check_block_len(len: u64) -> u64 {
    block_len_for(PIECE_LEN, len)
}

/// How many checks describe a prefix of `len` bytes.
pub fn check_count(len: u64) -> u64 {
    len.div_ceil(check_block_len(len))
}

fn block_len_for(piece: u64, len: u64) -> u64 {
    let mut block = piece;
    while len.div_ceil(block) > MAX_CHECKS {
        block = block.saturating_mul(2);
    }
    block
}

/// A content's hash, computed piece by piece (see the module's header).
#[derive(Clone)]
pub struct PieceHasher {
    piece: u64,
    /// The chaining values of the pieces that are whole.
    pieces: Vec<ChainingValue>,
    /// The piece being hashed (its first byte at `pieces.len() * piece`).
    current: blake3::Hasher,
    /// The first piece's hasher, kept once it is whole: a rewind to the end of it makes
    /// it the current one again (a content of one piece ends as a root, which its
    /// chaining value cannot give).
    first: Option<blake3::Hasher>,
    /// Bytes added in all.
    len: u64,
}

impl Default for PieceHasher {
    fn default() -> Self {
        Self::new()
    }
}

impl PieceHasher {
    /// A hasher with nothing in it yet.
    pub fn new() -> Self {
        Self::with_piece(PIECE_LEN)
    }

    /// With pieces of `piece` bytes (a power of two, at least 1 KiB): tests use small
    /// ones.
    fn with_piece(piece: u64) -> Self {
        Self {
            piece,
            pieces: Vec::new(),
            current: blake3::Hasher::new(),
            first: None,
            len: 0,
        }
    }

    /// Bytes added so far.
    pub fn len(&self) -> u64 {
        self.len
    }

    /// Whether nothing was added.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Bytes of the piece being hashed.
    fn in_current(&self) -> u64 {
        self.len - self.pieces.len() as u64 * self.piece
    }

    /// Add `data`.
    pub fn update(&mut self, mut data: &[u8]) -> &mut Self {
        while !data.is_empty() {
            if self.in_current() == self.piece {
                // The piece is whole and more comes: it is closed (only now, so that a
                // content of exactly one piece ends as a plain root).
                self.pieces.push(self.current.finalize_non_root());
                let mut next = blake3::Hasher::new();
                next.set_input_offset(self.len);
                let closed = std::mem::replace(&mut self.current, next);
                if self.pieces.len() == 1 {
                    self.first = Some(closed);
                }
            }
            let room = (self.piece - self.in_current()).min(data.len() as u64) as usize;
            self.current.update(&data[..room]);
            self.len += room as u64;
            data = &data[room..];
        }
        self
    }

    /// Forget everything from byte `to` on: the hasher is as if only the first `to`
    /// bytes had been added. `to` is rounded down to a piece boundary (the bytes of a
    /// piece cut in two are not kept): the new length is returned.
    pub fn rewind(&mut self, to: u64) -> u64 {
        if to >= self.len {
            return self.len;
        }
        let whole = to / self.piece;
        self.len = whole * self.piece;
        match (whole, &self.first) {
            (1, Some(first)) => {
                // The first piece, whole, is the current one again.
                self.pieces.clear();
                self.current = first.clone();
            }
            _ => {
                self.pieces.truncate(whole as usize);
                self.current = blake3::Hasher::new();
                if self.len > 0 {
                    self.current.set_input_offset(self.len);
                }
            }
        }
        self.len
    }

    /// The chaining values of the pieces so far, the last one possibly partial (none for
    /// an empty content).
    fn chaining_values(&self) -> Vec<ChainingValue> {
        let mut cvs = self.pieces.clone();
        if self.in_current() > 0 {
            cvs.push(self.current.finalize_non_root());
        }
        cvs
    }

    /// The checks of the bytes added so far: for each block of [`check_block_len`] of
    /// them (in pieces of this hasher), the hash of its pieces' chaining values.
    pub fn checks(&self) -> Vec<ContentHash> {
        let per_block = (block_len_for(self.piece, self.len) / self.piece) as usize;
        self.chaining_values()
            .chunks(per_block.max(1))
            .map(|cvs| {
                let mut hasher = blake3::Hasher::new();
                for cv in cvs {
                    hasher.update(cv);
                }
                ContentHash::from_bytes(*hasher.finalize().as_bytes())
            })
            .collect()
    }

    /// The hash of all that was added: the same as [`ContentHash::of`] all of it.
    pub fn finish(&self) -> ContentHash {
        if self.pieces.is_empty() {
            // One piece at most: the tree's root is its own.
            return ContentHash::from_bytes(*self.current.finalize().as_bytes());
        }
        let cvs = self.chaining_values();
        let (left, right) = self.halves(&cvs, self.len);
        ContentHash::from_bytes(*merge_subtrees_root(&left, &right, Mode::Hash).as_bytes())
    }

    /// The chaining values of the two halves of the subtree of `len` bytes whose pieces'
    /// chaining values are `cvs` (more than one piece): BLAKE3's tree puts the largest
    /// power of two of chunks on the left.
    fn halves(&self, cvs: &[ChainingValue], len: u64) -> (ChainingValue, ChainingValue) {
        let left_len = left_subtree_len(len);
        let split = (left_len / self.piece) as usize;
        (
            self.subtree(&cvs[..split], left_len),
            self.subtree(&cvs[split..], len - left_len),
        )
    }

    /// The chaining value of a subtree that is not the root.
    fn subtree(&self, cvs: &[ChainingValue], len: u64) -> ChainingValue {
        if let [one] = cvs {
            return *one;
        }
        let (left, right) = self.halves(cvs, len);
        merge_subtrees_non_root(&left, &right, Mode::Hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn data(len: usize, seed: u8) -> Vec<u8> {
        (0..len)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn the_hash_is_blake3_at_piece_edges() {
        for piece in [1024u64, 2048, 8192] {
            for len in [0, 1, 1023, 1024, 1025, 2048, 3072, 8191, 8192, 8193, 40_000] {
                let bytes = data(len, 3);
                let mut h = PieceHasher::with_piece(piece);
                h.update(&bytes);
                assert_eq!(
                    h.finish(),
                    ContentHash::of(&bytes),
                    "piece {piece}, len {len}"
                );
            }
        }
    }

    #[test]
    fn blocks_stay_few() {
        assert_eq!(check_block_len(0), PIECE_LEN);
        assert_eq!(check_block_len(MAX_CHECKS * PIECE_LEN), PIECE_LEN);
        assert_eq!(check_block_len(MAX_CHECKS * PIECE_LEN + 1), 2 * PIECE_LEN);
        assert_eq!(check_count(20 << 30), 640);
        assert_eq!(check_count(0), 0);
    }

    proptest! {
        #[test]
        fn any_split_hashes_like_the_whole(
            len in 0usize..20_000,
            cuts in proptest::collection::vec(0usize..20_000, 0..6),
            piece_log in 10u32..13,
        ) {
            let bytes = data(len, 9);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c.min(len)).collect();
            cuts.sort();
            let mut h = PieceHasher::with_piece(1 << piece_log);
            let mut at = 0;
            for cut in cuts.into_iter().chain([len]) {
                h.update(&bytes[at..cut]);
                at = cut;
            }
            prop_assert_eq!(h.len(), len as u64);
            prop_assert_eq!(h.finish(), ContentHash::of(&bytes));
        }

        #[test]
        fn a_rewound_hasher_goes_on_as_a_fresh_one(
            len in 0usize..20_000,
            to in 0usize..20_000,
            piece_log in 10u32..13,
        ) {
            let bytes = data(len, 5);
            let mut h = PieceHasher::with_piece(1 << piece_log);
            h.update(&bytes);
            let kept = h.rewind(to as u64) as usize;
            let piece = 1usize << piece_log;
            prop_assert_eq!(kept, if to >= len { len } else { to / piece * piece });
            prop_assert_eq!(h.len(), kept as u64);
            prop_assert_eq!(h.finish(), ContentHash::of(&bytes[..kept]));
            let mut fresh = PieceHasher::with_piece(1 << piece_log);
            fresh.update(&bytes[..kept]);
            prop_assert_eq!(h.checks(), fresh.checks());
            h.update(&bytes[kept..]);
            prop_assert_eq!(h.finish(), ContentHash::of(&bytes));
        }

        #[test]
        fn checks_part_where_the_bytes_do(
            len in 1usize..20_000,
            flip in 0usize..20_000,
            piece_log in 10u32..12,
        ) {
            let piece = 1usize << piece_log;
            let honest = data(len, 1);
            let mut other = honest.clone();
            let flip = flip % len;
            other[flip] ^= 0xff;
            let checks = |bytes: &[u8]| {
                let mut h = PieceHasher::with_piece(piece as u64);
                h.update(bytes);
                h.checks()
            };
            let (a, b) = (checks(&honest), checks(&other));
            prop_assert_eq!(a.len(), b.len());
            let block = block_len_for(piece as u64, len as u64) as usize;
            let first = a.iter().zip(&b).position(|(x, y)| x != y);
            prop_assert_eq!(first, Some(flip / block));
        }
    }
}
