//! Binary deltas between two versions of a file, usable on their own.
//!
//! [`encode`] compares an old and a new version and says whether a delta is worth sending
//! ([`Delta::Patch`]) or the whole new file should go instead ([`Delta::Full`]: there is no
//! old version, or the patch would be bigger than [`Options::max_patch_ratio`] of the file).
//! [`apply`] rebuilds the new version from the old one and the patch.
//!
//! ```
//! use qsync_delta::{apply, encode, Delta, Options};
//!
//! let old = b"the quick brown fox jumps over the lazy dog. ".repeat(100);
//! let mut new = old.clone();
//! new[1000..1005].copy_from_slice(b"CAT!!");
//!
//! let Delta::Patch(patch) = encode(&old, &new, &Options::default())? else { panic!("worth a patch") };
//! assert!(patch.len() < 200);
//! assert_eq!(apply(patch.as_bytes(), &old)?, new);
//!
//! // Applying to the wrong base is an error, never a wrong file.
//! assert!(apply(patch.as_bytes(), b"something else").is_err());
//! # Ok::<(), qsync_delta::DeltaError>(())
//! ```
//!
//! Without the old version at hand, the device that has it describes it in a
//! [`Signature`] and [`encode_blocks`] makes an ordinary patch from that (rsync's exchange:
//! see the `blocks` module).
//!
//! # Format
//!
//! A patch is a small header followed by segments:
//!
//! ```text
//! header : "QSD" 1 | source length u64 | source BLAKE3 (32) | target length u64 | target BLAKE3 (32)
//! segment: 1 | source offset u64 | length u64                         copy unchanged bytes
//!        | 2 | source offset u64 | source length u32 | target length u32 | vcdiff length u32 | VCDIFF
//!        | 3 | length u32 | bytes                                        new bytes as they are
//!        | 0                                                           end
//! ```
//! (integers little-endian). Each VCDIFF segment is a standard VCDIFF stream (RFC 3284) made by
//! xdelta3 against the named source range, so `xdelta3 -d -s <that range>` decodes it; a
//! file smaller than the window gives a patch with exactly one such segment.
//!
//! # Speed and bounded memory
//!
//! The new version is compared with the old one at the same offsets, 64 KiB at a time:
//! unchanged blocks become copy segments without running xdelta3 at all, and only the
//! changed runs are encoded, each against the old file around it (widened by four times the
//! run's length, at least 256 KiB). Files whose two versions together exceed
//! [`Options::window`] are read an eighth of a window at a time and the widening is capped at an
//! eighth of the window, so the file functions [`encode_file`] and [`apply_file`] keep
//! memory near twice the window whatever the file size.

mod blocks;
mod error;
mod format;
mod in_place;
mod source;
mod xd3;

#[doc(hidden)]
pub mod fuzzing;

use std::fs::File;
use std::io::{BufReader, BufWriter, Read, Write};
use std::path::Path;

pub use blocks::{
    block_len_for, encode_blocks, Signature, MAX_BLOCKS, MAX_BLOCK_LEN, MIN_BLOCK_LEN,
};
pub use error::DeltaError;
pub use format::{Header, MAX_SEGMENT_LEN};
pub use in_place::{in_place_edits, InPlace};
pub use qsync_base::ContentHash;

use format::Segment;
use source::Source;

/// Tuning of [`encode`].
#[derive(Debug, Clone)]
pub struct Options {
    /// Memory budget for one step of encoding or applying, in bytes: files whose versions
    /// together are larger are handled in chunks. Clamped to 1 KiB ..= [`MAX_SEGMENT_LEN`].
    pub window: usize,
    /// A patch larger than this fraction of the new file is not worth it: [`Delta::Full`].
    pub max_patch_ratio: f64,
    /// Nor is a patch larger than this many bytes, whatever the file's size (a receiver
    /// holding patches in memory refuses larger ones). [`encode_blocks`] holds its patch
    /// in memory and gives up as soon as it passes this.
    pub max_patch_len: u64,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            window: 64 * 1024 * 1024,
            max_patch_ratio: 0.8,
            max_patch_len: u64::MAX,
        }
    }
}

impl Options {
    fn window(&self) -> usize {
        self.window.clamp(1024, MAX_SEGMENT_LEN)
    }

    fn limit(&self, target_len: u64) -> u64 {
        ((target_len as f64 * self.max_patch_ratio.max(0.0)) as u64).min(self.max_patch_len)
    }
}

/// The length of a patch's header (its format, the lengths and hashes of the two
/// versions): no patch is shorter.
pub const HEADER_LEN: usize = format::HEADER_LEN;

/// Why the whole file is sent instead of a patch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FullReason {
    /// There is no old version (a new file, or an empty old one).
    NoBase,
    /// The patch would be larger than [`Options::max_patch_ratio`] of the file.
    PatchTooLarge,
}

/// What [`encode`] decided.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delta {
    /// Send the whole new file.
    Full(FullReason),
    /// Send this patch.
    Patch(Patch),
}

/// An encoded patch: the bytes to send, with the hashes it checks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Patch {
    header: Header,
    bytes: Vec<u8>,
}

impl Patch {
    /// Read a patch received from elsewhere; checks the header only.
    pub fn from_bytes(bytes: Vec<u8>) -> Result<Self, DeltaError> {
        let header = Header::read(&mut &bytes[..])?;
        Ok(Self { header, bytes })
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes
    }

    /// The encoded bytes, owned.
    pub fn into_bytes(self) -> Vec<u8> {
        self.bytes
    }

    /// Encoded length in bytes.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Always false: a patch has at least a header.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Lengths and hashes of the versions it goes from and to.
    pub fn header(&self) -> &Header {
        &self.header
    }
}

/// Compare `old` and `new` in memory and decide between a patch and the whole file.
pub fn encode(old: &[u8], new: &[u8], options: &Options) -> Result<Delta, DeltaError> {
    if old.is_empty() && !new.is_empty() {
        return Ok(Delta::Full(FullReason::NoBase));
    }
    let header = Header {
        source_len: old.len() as u64,
        source_hash: ContentHash::of(old),
        target_len: new.len() as u64,
        target_hash: ContentHash::of(new),
    };
    let mut bytes = Vec::new();
    let limit = options
        .limit(header.target_len)
        .max(format::HEADER_LEN as u64 + 64);
    match encode_into(old, new, &header, &mut bytes, options, limit, None)? {
        Some(_) => Ok(Delta::Patch(Patch { header, bytes })),
        None => Ok(Delta::Full(FullReason::PatchTooLarge)),
    }
}

/// Rebuild the new version from `old` and a patch, in memory.
///
/// Fails with [`DeltaError::WrongBase`] if `old` is not the version the patch was made from,
/// and with [`DeltaError::ResultMismatch`] if the result does not have the promised hash.
pub fn apply(patch: &[u8], old: &[u8]) -> Result<Vec<u8>, DeltaError> {
    let mut reader = patch;
    let header = Header::read(&mut reader)?;
    header.check_source(old.len() as u64, ContentHash::of(old))?;
    let mut out = Vec::with_capacity(header.target_len.min(MAX_SEGMENT_LEN as u64) as usize);
    apply_segments(&header, &mut reader, old, &mut out)?;
    Ok(out)
}

/// What [`encode_file`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoded {
    /// A patch of this many bytes was written.
    Patch {
        /// Bytes written.
        len: u64,
    },
    /// A patch is not worth it; what was written so far must be discarded.
    Full(FullReason),
}

/// Encode a patch from the file `old` to the file `new` into `out`, reading one chunk at a
/// time. On [`Encoded::Full`] the writer holds an unfinished patch that must be discarded.
pub fn encode_file(
    old: &Path,
    new: &Path,
    out: &mut impl Write,
    options: &Options,
) -> Result<Encoded, DeltaError> {
    encode_files(old, new, out, options, None)
}

/// [`encode_file`] for two files whose hashes the caller already knows (content-addressed
/// copies, say): no pass over the files just to hash them. The new file is hashed as it
/// is compared, and a new file that does not have the hash given is an error
/// ([`DeltaError::ResultMismatch`]: it changed since, say). A wrong hash of the old file
/// makes a patch that every applier refuses, never a wrong file.
pub fn encode_file_known(
    old: &Path,
    new: &Path,
    out: &mut impl Write,
    options: &Options,
    (old_hash, new_hash): (ContentHash, ContentHash),
) -> Result<Encoded, DeltaError> {
    encode_files(old, new, out, options, Some((old_hash, new_hash)))
}

fn encode_files(
    old: &Path,
    new: &Path,
    out: &mut impl Write,
    options: &Options,
    known: Option<(ContentHash, ContentHash)>,
) -> Result<Encoded, DeltaError> {
    let old_file = File::open(old).map_err(|e| DeltaError::io("open", old, e))?;
    let new_file = File::open(new).map_err(|e| DeltaError::io("open", new, e))?;
    let old_src = source::FileSource::new(&old_file, old)?;
    let new_src = source::FileSource::new(&new_file, new)?;
    if old_src.len() == 0 && new_src.len() > 0 {
        return Ok(Encoded::Full(FullReason::NoBase));
    }
    let (source_hash, target_hash) = match known {
        Some(hashes) => hashes,
        None => (hash_file(&old_file, old)?, hash_file(&new_file, new)?),
    };
    let header = Header {
        source_len: old_src.len(),
        source_hash,
        target_len: new_src.len(),
        target_hash,
    };
    let limit = options
        .limit(header.target_len)
        .max(format::HEADER_LEN as u64 + 64);
    let mut counting = CountingWriter {
        inner: out,
        written: 0,
    };
    let mut hasher = qsync_base::ContentHasher::new();
    let check = known.is_some().then_some(&mut hasher);
    match encode_into(
        &old_src,
        &new_src,
        &header,
        &mut counting,
        options,
        limit,
        check,
    )? {
        Some(len) => {
            if known.is_some() && hasher.finish() != target_hash {
                return Err(DeltaError::ResultMismatch {
                    expected: target_hash,
                    found: hasher.finish(),
                });
            }
            Ok(Encoded::Patch { len })
        }
        None => Ok(Encoded::Full(FullReason::PatchTooLarge)),
    }
}

/// Apply a patch read from `patch` to the file `old`, writing the result to `out`
/// atomically: into a temporary file in the same folder, checked against the promised
/// hash, synced, then renamed over `out`. On any error `out` is untouched and no temporary
/// file is left. `out` may be the same path as `old`.
pub fn apply_file(patch: impl Read, old: &Path, out: &Path) -> Result<Header, DeltaError> {
    let old_file = File::open(old).map_err(|e| DeltaError::io("open", old, e))?;
    apply_open(patch, &old_file, old, out)
}

/// [`apply_file`] with the old file already open (`old_path` only names it in errors):
/// for a caller that opened it carefully (without following a link, say) and must not
/// have it opened again by name.
pub fn apply_open(
    patch: impl Read,
    old_file: &File,
    old_path: &Path,
    out: &Path,
) -> Result<Header, DeltaError> {
    apply_opened(patch, old_file, old_path, out, true)
}

/// [`apply_open`] without hashing the old file first (one whole read of it fewer): only
/// its length is checked before, and the result's hash after. A file that is not the
/// patch's base gives a result without the promised hash, so it fails with
/// [`DeltaError::ResultMismatch`] rather than [`DeltaError::WrongBase`]; either way
/// nothing is written at `out`.
pub fn apply_open_checking_result(
    patch: impl Read,
    old_file: &File,
    old_path: &Path,
    out: &Path,
) -> Result<Header, DeltaError> {
    apply_opened(patch, old_file, old_path, out, false)
}

fn apply_opened(
    patch: impl Read,
    old_file: &File,
    old_path: &Path,
    out: &Path,
    hash_base: bool,
) -> Result<Header, DeltaError> {
    let mut patch = BufReader::new(patch);
    let header = Header::read(&mut patch)?;
    let old_src = source::FileSource::new(old_file, old_path)?;
    let found = if hash_base {
        hash_file(old_file, old_path)?
    } else {
        header.source_hash
    };
    header.check_source(old_src.len(), found)?;

    let dir = out
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let temp = tempfile::Builder::new()
        .prefix(".qsync-tmp-")
        .tempfile_in(dir)
        .map_err(|e| DeltaError::io("create a temporary file in", dir, e))?;
    let mut writer = BufWriter::with_capacity(1 << 20, temp.as_file());
    apply_segments(&header, &mut patch, &old_src, &mut writer)?;
    writer
        .flush()
        .map_err(|e| DeltaError::io("write", temp.path(), e))?;
    drop(writer);
    temp.as_file()
        .sync_all()
        .map_err(|e| DeltaError::io("sync", temp.path(), e))?;
    temp.persist(out)
        .map_err(|e| DeltaError::io("rename over", out, e.error))?;
    Ok(header)
}

fn hash_file(file: &File, path: &Path) -> Result<ContentHash, DeltaError> {
    use std::io::{Seek, SeekFrom};
    let mut file = file;
    file.seek(SeekFrom::Start(0))
        .map_err(|e| DeltaError::io("read", path, e))?;
    ContentHash::of_reader(file).map_err(|e| DeltaError::io("read", path, e))
}

struct CountingWriter<'w, W> {
    inner: &'w mut W,
    written: u64,
}

impl<W: Write> Write for CountingWriter<'_, W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.written += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// Granularity of the in-place comparison that finds unchanged regions.
const BLOCK: usize = 64 * 1024;
/// Changed runs closer than this are encoded together.
const MERGE_GAP: usize = 2 * BLOCK;
/// How much of a copy segment is read at once when applying.
const COPY_PIECE: u64 = 4 * 1024 * 1024;
/// Smallest source margin around a changed run.
const MIN_MARGIN: u64 = 256 * 1024;

/// The encoder core: writes header and segments, gives up (None) once more than `limit`
/// bytes are written. Returns the bytes written. Every byte of the new version passes
/// through `hasher` (if given) when it returns a patch.
///
/// The target is read a chunk at a time (the whole file when both versions fit in the
/// window). Blocks equal to the old file at the same offset become copy segments with a
/// plain comparison; only the changed runs go through xdelta3, each against the old file
/// around it, widened by four times the run's length (at least 256 KiB, at most an eighth
/// of the window, or the whole old file when it fits).
fn encode_into<S: Source + ?Sized, T: Source + ?Sized>(
    old: &S,
    new: &T,
    header: &Header,
    out: &mut impl Write,
    options: &Options,
    limit: u64,
    mut hasher: Option<&mut qsync_base::ContentHasher>,
) -> Result<Option<u64>, DeltaError> {
    let window = options.window() as u64;
    let written = header.write(out)?;
    let mut out = SegmentWriter {
        out,
        written,
        pending_copy: None,
    };
    let single = header.source_len + header.target_len <= window;
    let (chunk, max_margin) = if single {
        (header.target_len.max(1), header.source_len)
    } else {
        (window / 8, window / 8)
    };
    let mut offset = 0u64;
    while offset < header.target_len {
        let len = chunk.min(header.target_len - offset);
        let target = new.read_range(offset, len)?;
        // The chunk is hashed on another core while it is compared and encoded.
        let gave_up = std::thread::scope(|scope| {
            if let Some(hasher) = hasher.as_deref_mut() {
                let target = &target[..];
                scope.spawn(move || hasher.update(target));
            }
            let aligned_len = header.source_len.saturating_sub(offset).min(len);
            let runs = changed_runs(&target, &old.read_range(offset, aligned_len)?);
            let mut done = 0usize;
            for (start, end) in runs {
                out.copy(offset + done as u64, (start - done) as u64)?;
                let run_start = offset + start as u64;
                let run_len = (end - start) as u64;
                let margin = (run_len * 4).clamp(MIN_MARGIN, max_margin.max(MIN_MARGIN));
                let src_start = run_start.saturating_sub(margin).min(header.source_len);
                let src_end = (run_start + run_len + margin).min(header.source_len);
                let source = old.read_range(src_start, src_end - src_start)?;
                let piece = &target[start..end];
                // A VCDIFF no smaller than the bytes themselves helps nobody (xd3::encode
                // gives none then, nor for inputs too short for a VCDIFF header): the
                // bytes go as they are.
                match xd3::encode(piece, &source) {
                    Some(vcdiff) => out.segment(Segment::Vcdiff {
                        source_offset: src_start,
                        source_len: source.len() as u32,
                        target_len: piece.len() as u32,
                        vcdiff: &vcdiff,
                    })?,
                    None => out.segment(Segment::Literal(piece))?,
                }
                done = end;
                if out.written > limit {
                    return Ok::<bool, DeltaError>(true);
                }
            }
            out.copy(offset + done as u64, len - done as u64)?;
            Ok(false)
        })?;
        if gave_up {
            return Ok(None);
        }
        offset += len;
    }
    out.segment(Segment::End)?;
    if out.written > limit {
        return Ok(None);
    }
    Ok(Some(out.written))
}

/// The `[start, end)` ranges of `target` that differ from `aligned` (the old file at the
/// same offsets), at [`BLOCK`] granularity, with close runs merged.
fn changed_runs(target: &[u8], aligned: &[u8]) -> Vec<(usize, usize)> {
    let mut runs: Vec<(usize, usize)> = Vec::new();
    let mut at = 0;
    while at < target.len() {
        let end = (at + BLOCK).min(target.len());
        if aligned.get(at..end) != Some(&target[at..end]) {
            match runs.last_mut() {
                Some(last) if at - last.1 <= MERGE_GAP => last.1 = end,
                _ => runs.push((at, end)),
            }
        }
        at = end;
    }
    runs
}

/// Writes segments, merging adjacent copies and counting bytes.
struct SegmentWriter<'w, W: Write> {
    out: &'w mut W,
    written: u64,
    pending_copy: Option<(u64, u64)>,
}

impl<W: Write> SegmentWriter<'_, W> {
    fn copy(&mut self, offset: u64, len: u64) -> Result<(), DeltaError> {
        if len == 0 {
            return Ok(());
        }
        match &mut self.pending_copy {
            Some((start, n)) if *start + *n == offset => *n += len,
            _ => {
                self.flush_copy()?;
                self.pending_copy = Some((offset, len));
            }
        }
        Ok(())
    }

    fn flush_copy(&mut self) -> Result<(), DeltaError> {
        if let Some((offset, len)) = self.pending_copy.take() {
            self.written += Segment::Copy { offset, len }.write(self.out)?;
        }
        Ok(())
    }

    fn segment(&mut self, segment: Segment<'_>) -> Result<(), DeltaError> {
        self.flush_copy()?;
        self.written += segment.write(self.out)?;
        Ok(())
    }
}

/// The applier core: reads segments, writes the result, checks length and hash.
fn apply_segments<S: Source + ?Sized>(
    header: &Header,
    patch: &mut impl Read,
    old: &S,
    out: &mut impl Write,
) -> Result<(), DeltaError> {
    let mut hasher = qsync_base::ContentHasher::new();
    let mut produced = 0u64;
    let mut scratch = Vec::new();
    loop {
        let segment = Segment::read(patch, &mut scratch)?;
        let piece = match segment {
            Segment::End => break,
            Segment::Copy { offset, len } => {
                header.check_range(offset, len)?;
                // Large copies go in small pieces: memory stays bounded whatever their size.
                let mut at = offset;
                while at < offset + len {
                    let n = (offset + len - at).min(COPY_PIECE);
                    let data = old.read_range(at, n)?;
                    produced = check_produced(header, produced, n)?;
                    // Hashed on another core while it is written.
                    std::thread::scope(|scope| {
                        let hasher = &mut hasher;
                        let data = &data[..];
                        scope.spawn(move || hasher.update(data));
                        out.write_all(data).map_err(DeltaError::write)
                    })?;
                    at += n;
                }
                continue;
            }
            Segment::Vcdiff {
                source_offset,
                source_len,
                target_len,
                vcdiff,
            } => decode_against(header, old, (source_offset, source_len), target_len, vcdiff)?,
            Segment::Literal(data) => data.to_vec(),
        };
        produced = check_produced(header, produced, piece.len() as u64)?;
        hasher.update(&piece);
        out.write_all(&piece).map_err(DeltaError::write)?;
    }
    if produced != header.target_len {
        return Err(DeltaError::Malformed(format!(
            "the patch produced {produced} bytes where the header promised {}",
            header.target_len
        )));
    }
    let found = hasher.finish();
    if found != header.target_hash {
        return Err(DeltaError::ResultMismatch {
            expected: header.target_hash,
            found,
        });
    }
    Ok(())
}

pub(crate) fn check_produced(header: &Header, produced: u64, more: u64) -> Result<u64, DeltaError> {
    let total = produced.saturating_add(more);
    if total > header.target_len {
        return Err(DeltaError::Malformed(format!(
            "the patch produces more than the {} bytes its header promised",
            header.target_len
        )));
    }
    Ok(total)
}

/// Decode a VCDIFF segment against its range `(offset, len)` of the old version `old`.
pub(crate) fn decode_against<S: Source + ?Sized>(
    header: &Header,
    old: &S,
    (offset, len): (u64, u32),
    target_len: u32,
    vcdiff: &[u8],
) -> Result<Vec<u8>, DeltaError> {
    header.check_range(offset, u64::from(len))?;
    let source = old.read_range(offset, u64::from(len))?;
    decode_segment(vcdiff, &source, target_len as usize)
}

/// Decode one VCDIFF segment into exactly `target_len` bytes.
pub(crate) fn decode_segment(
    vcdiff: &[u8],
    source: &[u8],
    target_len: usize,
) -> Result<Vec<u8>, DeltaError> {
    let decoded = xd3::decode(vcdiff, source, target_len);
    let decoded =
        decoded.ok_or_else(|| DeltaError::Malformed("a VCDIFF segment does not decode".into()))?;
    if decoded.len() != target_len {
        return Err(DeltaError::Malformed(format!(
            "a VCDIFF segment decoded to {} bytes, its header says {target_len}",
            decoded.len()
        )));
    }
    Ok(decoded)
}
