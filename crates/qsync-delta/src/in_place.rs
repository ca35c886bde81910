//! Patches that change a file in place: the same length, every unchanged byte where it
//! was. Most edits of large files are such (a database page, a VM image's block, a byte
//! flipped), and a receiver can then write only the changed bytes into its copy instead of
//! a whole new file, which costs writing (and making durable) the whole length.
//!
//! [`in_place_edits`] reads a patch, and says which bytes it changes when it is such a
//! patch, once the old file has been checked against the patch's base and the result those
//! edits give against its promised hash (the old file is read whole for that, once). Writing them, and surviving a crash halfway, is the caller's part.

use std::fs::File;
use std::path::Path;

use qsync_base::ContentHasher;

use crate::format::{Header, Segment};
use crate::source::{FileSource, Source};
use crate::{check_produced, decode_against, DeltaError};

/// The bytes a patch changes, each run at its offset, in order, not overlapping.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InPlace {
    /// The patch's header: from which version to which.
    pub header: Header,
    /// `(offset, new bytes)`: the runs that differ from the old file.
    pub edits: Vec<(u64, Vec<u8>)>,
}

impl InPlace {
    /// How many bytes the edits write.
    pub fn len(&self) -> u64 {
        self.edits.iter().map(|(_, b)| b.len() as u64).sum()
    }

    /// Whether the edits write nothing (the patch changes no byte).
    pub fn is_empty(&self) -> bool {
        self.edits.is_empty()
    }
}

/// How much of the old file is hashed at once while checking the result.
const PIECE: u64 = 4 * 1024 * 1024;

/// The edits `patch` makes to the open file `old` (`old_path` only names it in errors) if
/// it keeps its length and every copied byte at its offset, and writes at most
/// `max_bytes` bytes that differ from `old`; `None` otherwise (an insertion shifts what
/// follows it: that takes a new file). `Some` only once the old file hashes to the patch's
/// base and, with those edits, to its promised target: a file that is not the patch's base
/// fails with [`DeltaError::WrongBase`] (the edits would be the difference from that
/// file, not from the base).
pub fn in_place_edits(
    patch: &[u8],
    old: &File,
    old_path: &Path,
    max_bytes: u64,
) -> Result<Option<InPlace>, DeltaError> {
    edits_in(patch, &FileSource::new(old, old_path)?, max_bytes)
}

/// [`in_place_edits`] on any source (the fuzz target's is in memory).
pub(crate) fn edits_in<S: Source + ?Sized>(
    patch: &[u8],
    source: &S,
    max_bytes: u64,
) -> Result<Option<InPlace>, DeltaError> {
    let mut reader = patch;
    let header = Header::read(&mut reader)?;
    if header.source_len != header.target_len || source.len() != header.source_len {
        return Ok(None);
    }
    let mut edits: Vec<(u64, Vec<u8>)> = Vec::new();
    let mut written = 0u64;
    let mut produced = 0u64;
    let mut scratch = Vec::new();
    loop {
        let piece = match Segment::read(&mut reader, &mut scratch)? {
            Segment::End => break,
            Segment::Copy { offset, len } => {
                header.check_range(offset, len)?;
                if offset != produced {
                    return Ok(None); // moved bytes
                }
                produced = check_produced(&header, produced, len)?;
                continue;
            }
            Segment::Vcdiff {
                source_offset,
                source_len,
                target_len,
                vcdiff,
            } => decode_against(
                &header,
                source,
                (source_offset, source_len),
                target_len,
                vcdiff,
            )?,
            Segment::Literal(data) => data.to_vec(),
        };
        let at = produced;
        produced = check_produced(&header, produced, piece.len() as u64)?;
        // Only what differs from the old bytes there is written.
        let before = source.read_range(at, piece.len() as u64)?;
        let Some(first) = piece.iter().zip(before.iter()).position(|(a, b)| a != b) else {
            continue;
        };
        let last = piece
            .iter()
            .zip(before.iter())
            .rposition(|(a, b)| a != b)
            .unwrap_or(first);
        written += (last + 1 - first) as u64;
        if written > max_bytes {
            return Ok(None);
        }
        edits.push((at + first as u64, piece[first..=last].to_vec()));
    }
    if produced != header.target_len {
        return Err(DeltaError::Malformed(format!(
            "the patch produced {produced} bytes where the header promised {}",
            header.target_len
        )));
    }
    // The old file must be the patch's base (the runs are what differs from it), and the
    // result, its bytes with the runs written over them, what the patch promised: one
    // pass over the old file hashes both.
    let mut base = ContentHasher::new();
    let mut result = ContentHasher::new();
    let mut at = 0u64;
    let both = |base: &mut ContentHasher, result: &mut ContentHasher, from: u64, to: u64| {
        let mut at = from;
        while at < to {
            let n = (to - at).min(PIECE);
            let bytes = source.read_range(at, n)?;
            base.update(&bytes);
            result.update(&bytes);
            at += n;
        }
        Ok::<(), DeltaError>(())
    };
    for (offset, bytes) in &edits {
        both(&mut base, &mut result, at, *offset)?;
        base.update(&source.read_range(*offset, bytes.len() as u64)?);
        result.update(bytes);
        at = offset + bytes.len() as u64;
    }
    both(&mut base, &mut result, at, header.target_len)?;
    let (base, found) = (base.finish(), result.finish());
    if base != header.source_hash {
        return Err(DeltaError::WrongBase {
            expected: header.source_hash,
            expected_len: header.source_len,
            found: base,
            found_len: source.len(),
        });
    }
    if found != header.target_hash {
        return Err(DeltaError::ResultMismatch {
            expected: header.target_hash,
            found,
        });
    }
    Ok(Some(InPlace { header, edits }))
}
