//! Patches without the old version at hand: the rsync exchange.
//!
//! When the side that has the new version no longer keeps the old one, the side that has
//! the old one describes it instead: a [`Signature`] gives, for each block of the old
//! file, a cheap rolling checksum and a short strong hash. [`encode_blocks`] slides over
//! the new version byte by byte, finds the blocks the old file already has (wherever
//! they moved), and writes an ordinary patch (the format of the crate's documentation):
//! copy segments for the blocks found, literal segments for the rest. The patch is
//! applied with [`apply`](crate::apply) or [`apply_file`](crate::apply_file) like any
//! other, which checks both versions' hashes: a false match of the checksums gives a
//! patch that is refused, never a wrong file.
//!
//! A signature costs 12 bytes per block; blocks are about the square root of the file's
//! length (2 KiB to 128 KiB), so a 100 MiB file is described in 120 KiB and a one-byte
//! edit of it travels as one block of literal bytes.
//!
//! # Format
//!
//! ```text
//! "QSS" 1 | source length u64 | source BLAKE3 (32) | block length u32 | block count u32
//!         | per block: rolling checksum u32 | first 8 bytes of the block's BLAKE3
//! ```
//! (integers little-endian). The count is exactly the source length divided by the block
//! length, rounded up; the last block may be short.
//!
//! # Bounded work for any signature
//!
//! A signature comes from another device and may be hostile: parsing checks every length
//! before allocating, and the encoder checks at most [`MAX_CANDIDATES`] blocks per
//! checksum and gives up ([`Delta::Full`]) once the bytes hashed for strong hashes that
//! failed pass four times the bytes read (plus 64 MiB), so a signature made of colliding
//! checksums costs a bounded amount of hashing.

use std::io::{self, Read};

use qsync_base::{ContentHash, ContentHasher};

use crate::format::{Header, Segment, HEADER_LEN};
use crate::{Delta, DeltaError, FullReason, Options, Patch, SegmentWriter};

const MAGIC: &[u8; 4] = b"QSS\x01";
const SIG_HEADER_LEN: usize = 4 + 8 + 32 + 4 + 4;
/// Bytes of each block's strong hash.
const STRONG_LEN: usize = 8;
const ENTRY_LEN: usize = 4 + STRONG_LEN;

/// The smallest block a signature may use.
pub const MIN_BLOCK_LEN: u32 = 256;
/// The largest block a signature may use.
pub const MAX_BLOCK_LEN: u32 = 64 * 1024 * 1024;
/// The most blocks a signature may describe (12 MiB of signature).
pub const MAX_BLOCKS: u32 = 1 << 20;
/// Blocks with the same rolling checksum checked at one position, at most.
pub const MAX_CANDIDATES: usize = 4;

/// Bytes hashed for blocks whose checksum matched and strong hash did not, beyond four
/// times the bytes read, before the encoder gives up.
const FAILED_BYTES: u64 = 64 * 1024 * 1024;

/// Literal bytes written per segment, at most (the pending ones are held in memory).
const LITERAL_PIECE: usize = 1024 * 1024;
/// The new version is read this much at a time.
const READ_PIECE: usize = 1024 * 1024;

/// What the holder of an old version tells the holder of a new one about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    source_len: u64,
    source_hash: ContentHash,
    block_len: u32,
    weak: Vec<u32>,
    strong: Vec<[u8; STRONG_LEN]>,
}

/// The block length used for a file of `len` bytes: about its square root, a multiple of
/// 64, within 2 KiB ..= 128 KiB, larger only when needed to stay within [`MAX_BLOCKS`].
pub fn block_len_for(len: u64) -> u32 {
    let root = len.isqrt().div_ceil(64) * 64;
    let needed = len.div_ceil(u64::from(MAX_BLOCKS)).div_ceil(64) * 64;
    let chosen = root.clamp(2048, 128 * 1024).max(needed);
    u32::try_from(chosen)
        .unwrap_or(MAX_BLOCK_LEN)
        .min(MAX_BLOCK_LEN)
}

fn strong_of(block: &[u8]) -> [u8; STRONG_LEN] {
    let mut out = [0u8; STRONG_LEN];
    out.copy_from_slice(&ContentHash::of(block).as_bytes()[..STRONG_LEN]);
    out
}

/// rsync's rolling checksum of a window: `a` is the sum of its bytes, `b` the sum of
/// each byte times its distance from the window's end; both kept modulo 2^16 (the
/// wrapping 32-bit sums carry them, masked when read).
#[derive(Debug, Clone, Copy)]
struct Rolling {
    a: u32,
    b: u32,
    len: u32,
}

impl Rolling {
    fn of(window: &[u8]) -> Self {
        let len = window.len() as u32;
        let (mut a, mut b) = (0u32, 0u32);
        for (i, &x) in window.iter().enumerate() {
            a = a.wrapping_add(u32::from(x));
            b = b.wrapping_add((len - i as u32).wrapping_mul(u32::from(x)));
        }
        Self { a, b, len }
    }

    /// The window moves one byte on: `out` leaves at the front, `into` comes in at the end.
    fn roll(&mut self, out: u8, into: u8) {
        self.a = self
            .a
            .wrapping_sub(u32::from(out))
            .wrapping_add(u32::from(into));
        self.b = self
            .b
            .wrapping_sub(self.len.wrapping_mul(u32::from(out)))
            .wrapping_add(self.a);
    }

    fn value(&self) -> u32 {
        (self.a & 0xffff) | (self.b << 16)
    }
}

fn malformed(what: &str) -> DeltaError {
    DeltaError::Malformed(format!("signature: {what}"))
}

impl Signature {
    /// Describe the `len` bytes `reader` gives (the old version), in blocks of
    /// [`block_len_for`]`(len)`. Fails if the reader gives another number of bytes.
    pub fn of(reader: impl Read, len: u64) -> io::Result<Self> {
        Self::with_block_len(reader, len, block_len_for(len))
    }

    /// [`Signature::of`] with a chosen block length (clamped to the allowed range).
    pub fn with_block_len(mut reader: impl Read, len: u64, block_len: u32) -> io::Result<Self> {
        let block_len = block_len.clamp(MIN_BLOCK_LEN, MAX_BLOCK_LEN);
        let count = len.div_ceil(u64::from(block_len));
        if count > u64::from(MAX_BLOCKS) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{len} bytes need more than {MAX_BLOCKS} blocks of {block_len}"),
            ));
        }
        let mut weak = Vec::with_capacity(count as usize);
        let mut strong = Vec::with_capacity(count as usize);
        let mut hasher = ContentHasher::new();
        let mut block = vec![0u8; block_len as usize];
        let mut read = 0u64;
        loop {
            let mut filled = 0;
            while filled < block.len() {
                match reader.read(&mut block[filled..]) {
                    Ok(0) => break,
                    Ok(n) => filled += n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(e),
                }
            }
            if filled == 0 {
                break;
            }
            let data = &block[..filled];
            read += filled as u64;
            if read > len {
                break;
            }
            hasher.update(data);
            weak.push(Rolling::of(data).value());
            strong.push(strong_of(data));
            if filled < block.len() {
                break;
            }
        }
        if read != len {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("expected {len} bytes, the file gave {read} or more"),
            ));
        }
        Ok(Self {
            source_len: len,
            source_hash: hasher.finish(),
            block_len,
            weak,
            strong,
        })
    }

    /// Length of the version described.
    pub fn source_len(&self) -> u64 {
        self.source_len
    }

    /// Hash of the version described.
    pub fn source_hash(&self) -> ContentHash {
        self.source_hash
    }

    /// Its block length.
    pub fn block_len(&self) -> u32 {
        self.block_len
    }

    /// Length of [`Signature::to_bytes`].
    pub fn encoded_len(&self) -> usize {
        SIG_HEADER_LEN + self.weak.len() * ENTRY_LEN
    }

    /// The encoded signature (see the module's documentation).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.encoded_len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&self.source_len.to_le_bytes());
        out.extend_from_slice(self.source_hash.as_bytes());
        out.extend_from_slice(&self.block_len.to_le_bytes());
        out.extend_from_slice(&(self.weak.len() as u32).to_le_bytes());
        for (weak, strong) in self.weak.iter().zip(&self.strong) {
            out.extend_from_slice(&weak.to_le_bytes());
            out.extend_from_slice(strong);
        }
        out
    }

    /// Read an encoded signature, checking every length against the others: the block
    /// length within its range, the count that of the source length, the bytes exactly
    /// that many entries.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DeltaError> {
        let header = bytes
            .get(..SIG_HEADER_LEN)
            .ok_or_else(|| malformed("it ends inside its header"))?;
        if &header[..4] != MAGIC {
            return Err(malformed("it does not start with the signature magic"));
        }
        let u64_at = |at: usize| {
            let mut b = [0u8; 8];
            b.copy_from_slice(&header[at..at + 8]);
            u64::from_le_bytes(b)
        };
        let u32_at = |at: usize| {
            let mut b = [0u8; 4];
            b.copy_from_slice(&header[at..at + 4]);
            u32::from_le_bytes(b)
        };
        let source_len = u64_at(4);
        let mut hash = [0u8; 32];
        hash.copy_from_slice(&header[12..44]);
        let block_len = u32_at(44);
        let count = u32_at(48);
        if !(MIN_BLOCK_LEN..=MAX_BLOCK_LEN).contains(&block_len) {
            return Err(malformed("its block length is out of range"));
        }
        if count > MAX_BLOCKS || u64::from(count) != source_len.div_ceil(u64::from(block_len)) {
            return Err(malformed("its block count does not match its length"));
        }
        let entries = &bytes[SIG_HEADER_LEN..];
        if entries.len() != count as usize * ENTRY_LEN {
            return Err(malformed("its length does not match its block count"));
        }
        let mut weak = Vec::with_capacity(count as usize);
        let mut strong = Vec::with_capacity(count as usize);
        for entry in entries.chunks_exact(ENTRY_LEN) {
            let mut w = [0u8; 4];
            w.copy_from_slice(&entry[..4]);
            weak.push(u32::from_le_bytes(w));
            let mut s = [0u8; STRONG_LEN];
            s.copy_from_slice(&entry[4..]);
            strong.push(s);
        }
        Ok(Self {
            source_len,
            source_hash: ContentHash::from_bytes(hash),
            block_len,
            weak,
            strong,
        })
    }

    /// Length of block `i` (the last may be short).
    fn len_of(&self, i: usize) -> usize {
        let start = i as u64 * u64::from(self.block_len);
        (self.source_len - start).min(u64::from(self.block_len)) as usize
    }
}

/// The full blocks of a signature, found by rolling checksum: a bit filter answers most
/// positions without a lookup, then the sorted entries are searched.
struct Table {
    filter: Vec<u64>,
    mask: u32,
    /// (checksum, block), sorted; a block equal to an earlier one (same checksum and
    /// strong hash) is left out: copying either gives the same bytes.
    entries: Vec<(u32, u32)>,
}

impl Table {
    fn new(sig: &Signature) -> Self {
        let full = (sig.source_len / u64::from(sig.block_len)) as usize;
        let bits = (full * 16).next_power_of_two().max(1 << 16);
        let mut filter = vec![0u64; bits / 64];
        let mask = (bits - 1) as u32;
        let mut entries: Vec<(u32, u32)> = (0..full).map(|i| (sig.weak[i], i as u32)).collect();
        entries.sort_unstable();
        entries.dedup_by(|later, earlier| {
            later.0 == earlier.0 && sig.strong[later.1 as usize] == sig.strong[earlier.1 as usize]
        });
        for &(weak, _) in &entries {
            let bit = Self::bit(weak, mask);
            filter[bit / 64] |= 1 << (bit % 64);
        }
        Self {
            filter,
            mask,
            entries,
        }
    }

    fn bit(weak: u32, mask: u32) -> usize {
        (weak.wrapping_mul(0x9E37_79B1).rotate_right(7) & mask) as usize
    }

    fn may_have(&self, weak: u32) -> bool {
        let bit = Self::bit(weak, self.mask);
        self.filter[bit / 64] & (1 << (bit % 64)) != 0
    }

    /// The blocks with this checksum, at most [`MAX_CANDIDATES`].
    fn candidates(&self, weak: u32) -> impl Iterator<Item = usize> + '_ {
        let start = self.entries.partition_point(|e| e.0 < weak);
        self.entries[start..]
            .iter()
            .take_while(move |e| e.0 == weak)
            .take(MAX_CANDIDATES)
            .map(|e| e.1 as usize)
    }
}

/// The new version as it is read: the bytes from the first not yet written out to the
/// last read.
struct Window<R> {
    reader: R,
    buf: Vec<u8>,
    /// Offset in the new version of `buf[0]`.
    start: u64,
    eof: bool,
    hasher: ContentHasher,
    read: u64,
}

impl<R: Read> Window<R> {
    /// Make sure `buf` holds the bytes up to `end` (or up to the end of the input);
    /// bytes before `keep` may be dropped first.
    fn fill(&mut self, keep: u64, end: u64) -> Result<(), DeltaError> {
        while !self.eof && self.start + (self.buf.len() as u64) < end {
            let drop = (keep - self.start) as usize;
            if drop >= READ_PIECE {
                self.buf.drain(..drop);
                self.start = keep;
            }
            let at = self.buf.len();
            self.buf.resize(at + READ_PIECE, 0);
            let n = loop {
                match self.reader.read(&mut self.buf[at..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(DeltaError::Read(e)),
                }
            };
            self.buf.truncate(at + n);
            self.hasher.update(&self.buf[at..]);
            self.read += n as u64;
            self.eof = n == 0;
        }
        Ok(())
    }

    fn end(&self) -> u64 {
        self.start + self.buf.len() as u64
    }

    fn slice(&self, from: u64, to: u64) -> &[u8] {
        &self.buf[(from - self.start) as usize..(to - self.start) as usize]
    }
}

/// Make a patch from the version `sig` describes to the new version `new` reads, without
/// the old version: copy segments for its blocks found in `new`, literal bytes for the
/// rest. The new version is read once, a piece at a time (memory stays near
/// [`Options::max_patch_len`] plus a few pieces), and hashed as it is read: the patch's
/// header carries that hash, for the caller to compare with the one it expects.
///
/// [`Delta::Full`] when the patch would be larger than [`Options`] allows, or when too
/// many blocks whose checksums matched turn out to differ (a hostile signature).
///
/// ```
/// use qsync_delta::{apply, encode_blocks, Delta, Options, Signature};
///
/// let old: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
/// let mut new = old.clone();
/// new.splice(50_000..50_000, *b"inserted");
///
/// // On the device that has `old`:
/// let sig = Signature::of(&old[..], old.len() as u64)?.to_bytes();
/// // On the device that has `new`:
/// let sig = Signature::from_bytes(&sig)?;
/// let Delta::Patch(patch) = encode_blocks(&sig, &new[..], &Options::default())? else { panic!() };
/// assert!(patch.len() < 3000);
/// assert_eq!(apply(patch.as_bytes(), &old)?, new);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
pub fn encode_blocks(
    sig: &Signature,
    new: impl Read,
    options: &Options,
) -> Result<Delta, DeltaError> {
    let table = Table::new(sig);
    let block = sig.block_len as u64;
    let mut win = Window {
        reader: new,
        buf: Vec::new(),
        start: 0,
        eof: false,
        hasher: ContentHasher::new(),
        read: 0,
    };
    let mut patch = vec![0u8; HEADER_LEN];
    let mut out = SegmentWriter {
        out: &mut patch,
        written: HEADER_LEN as u64,
        pending_copy: None,
    };
    // The share of the new version a patch may be is known once its length is: checked at
    // the end. Meanwhile the patch (held in memory) stays within the absolute limit.
    let limit_for = |len: u64| options.limit(len).max(HEADER_LEN as u64 + 64);
    let mut failed = 0u64;
    // Bytes before `literal` are written out; the window starts at `pos`.
    let (mut literal, mut pos) = (0u64, 0u64);
    let mut rolling: Option<Rolling> = None;
    // The block just matched: the next is looked for first at the next position.
    let mut next_expected: Option<usize> = None;
    loop {
        win.fill(literal, pos + block)?;
        if pos + block > win.end() {
            break; // less than a block left
        }
        let weak = match &mut rolling {
            Some(r) => r.value(),
            None => {
                let r = Rolling::of(win.slice(pos, pos + block));
                rolling = Some(r);
                r.value()
            }
        };
        let mut found = None;
        if let Some(j) =
            next_expected.filter(|&j| j < sig.weak.len() && sig.len_of(j) as u64 == block)
        {
            if sig.weak[j] == weak && sig.strong[j] == strong_of(win.slice(pos, pos + block)) {
                found = Some(j);
            }
        }
        if found.is_none() && table.may_have(weak) {
            let mut candidates = table.candidates(weak).peekable();
            if candidates.peek().is_some() {
                let strong = strong_of(win.slice(pos, pos + block));
                found = candidates.find(|&j| sig.strong[j] == strong);
                if found.is_none() {
                    // Counted in bytes hashed for nothing: a signature of huge blocks
                    // costs as much per failure.
                    failed += block;
                    if failed > FAILED_BYTES + 4 * win.read {
                        return Ok(Delta::Full(FullReason::PatchTooLarge));
                    }
                }
            }
        }
        match found {
            Some(j) => {
                if literal < pos {
                    out.segment(Segment::Literal(win.slice(literal, pos)))?;
                }
                out.copy(j as u64 * block, block)?;
                pos += block;
                literal = pos;
                rolling = None;
                next_expected = Some(j + 1);
            }
            None => {
                next_expected = None;
                if pos - literal >= LITERAL_PIECE as u64 {
                    out.segment(Segment::Literal(win.slice(literal, pos)))?;
                    literal = pos;
                }
                win.fill(literal, pos + block + 1)?;
                if pos + block < win.end() {
                    let (leaving, coming) = (
                        win.slice(pos, pos + 1)[0],
                        win.slice(pos + block, pos + block + 1)[0],
                    );
                    if let Some(r) = &mut rolling {
                        r.roll(leaving, coming);
                    }
                }
                pos += 1;
            }
        }
        if out.written > options.max_patch_len {
            return Ok(Delta::Full(FullReason::PatchTooLarge));
        }
    }
    // What is left is shorter than a block: the old version's short last block, or new bytes.
    win.fill(literal, u64::MAX)?;
    let end = win.end();
    let last = sig.weak.len().checked_sub(1);
    let tail = last.filter(|&j| {
        let len = sig.len_of(j) as u64;
        len < block
            && end - pos == len
            && sig.strong[j] == strong_of(win.slice(pos, end))
            && sig.weak[j] == Rolling::of(win.slice(pos, end)).value()
    });
    match tail {
        Some(j) => {
            if literal < pos {
                out.segment(Segment::Literal(win.slice(literal, pos)))?;
            }
            out.copy(j as u64 * block, end - pos)?;
        }
        None => {
            let mut at = literal;
            while at < end {
                let to = (at + LITERAL_PIECE as u64).min(end);
                out.segment(Segment::Literal(win.slice(at, to)))?;
                at = to;
            }
        }
    }
    out.segment(Segment::End)?;
    if out.written > limit_for(win.read) {
        return Ok(Delta::Full(FullReason::PatchTooLarge));
    }
    let header = Header {
        source_len: sig.source_len,
        source_hash: sig.source_hash,
        target_len: win.read,
        target_hash: win.hasher.finish(),
    };
    let mut head = Vec::with_capacity(HEADER_LEN);
    header.write(&mut head)?;
    patch[..HEADER_LEN].copy_from_slice(&head);
    Ok(Delta::Patch(Patch {
        header,
        bytes: patch,
    }))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn the_rolling_checksum_rolls_to_what_it_would_be_computed_afresh() {
        let data: Vec<u8> = (0..5000u32).map(|i| (i * 31 % 251) as u8 ^ 0x5a).collect();
        let len = 700;
        let mut r = Rolling::of(&data[..len]);
        for at in 1..data.len() - len {
            r.roll(data[at - 1], data[at + len - 1]);
            assert_eq!(
                r.value(),
                Rolling::of(&data[at..at + len]).value(),
                "at {at}"
            );
        }
    }

    #[test]
    fn block_lengths_grow_with_the_file_and_stay_in_range() {
        assert_eq!(block_len_for(0), 2048);
        assert_eq!(block_len_for(100 * 1024 * 1024), 10240);
        assert_eq!(block_len_for(1 << 40), 1 << 20);
        for len in [1u64, 1 << 20, 1 << 34, 1 << 50, u64::MAX] {
            let b = block_len_for(len);
            assert!((MIN_BLOCK_LEN..=MAX_BLOCK_LEN).contains(&b), "{len}: {b}");
            assert_eq!(b % 64, 0);
        }
    }
}
