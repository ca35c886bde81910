//! The patch container: header and segments.

use std::io::{self, Read, Write};

use qsync_base::ContentHash;

use crate::DeltaError;

const MAGIC: &[u8; 4] = b"QSD\x01";
pub(crate) const HEADER_LEN: usize = 4 + 8 + 32 + 8 + 32;

/// The largest target a VCDIFF segment may produce, and the largest window; a patch
/// announcing more is refused before anything is allocated for it.
pub const MAX_SEGMENT_LEN: usize = 128 * 1024 * 1024;

/// Lengths and hashes of the versions a patch goes from and to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Length of the old version.
    pub source_len: u64,
    /// Hash of the old version.
    pub source_hash: ContentHash,
    /// Length of the new version.
    pub target_len: u64,
    /// Hash of the new version.
    pub target_hash: ContentHash,
}

fn malformed(what: &str) -> DeltaError {
    DeltaError::Malformed(what.to_owned())
}

fn read_exact(r: &mut impl Read, buf: &mut [u8]) -> Result<(), DeltaError> {
    r.read_exact(buf).map_err(|e| match e.kind() {
        io::ErrorKind::UnexpectedEof => malformed("it ends early"),
        _ => DeltaError::Malformed(format!("it could not be read: {e}")),
    })
}

fn read_u64(r: &mut impl Read) -> Result<u64, DeltaError> {
    let mut b = [0u8; 8];
    read_exact(r, &mut b)?;
    Ok(u64::from_le_bytes(b))
}

fn read_u32(r: &mut impl Read) -> Result<u32, DeltaError> {
    let mut b = [0u8; 4];
    read_exact(r, &mut b)?;
    Ok(u32::from_le_bytes(b))
}

/// Read exactly `len` bytes into `scratch`, growing it only as bytes arrive (a lying length
/// cannot make it allocate more than the input holds).
fn read_bytes(
    r: &mut impl Read,
    len: u32,
    scratch: &mut Vec<u8>,
    what: &str,
) -> Result<(), DeltaError> {
    scratch.clear();
    let got = r
        .take(u64::from(len))
        .read_to_end(scratch)
        .map_err(|e| DeltaError::Malformed(format!("it could not be read: {e}")))?;
    if got != len as usize {
        return Err(DeltaError::Malformed(format!(
            "it ends inside a {what} segment"
        )));
    }
    Ok(())
}

fn read_hash(r: &mut impl Read) -> Result<ContentHash, DeltaError> {
    let mut b = [0u8; 32];
    read_exact(r, &mut b)?;
    Ok(ContentHash::from_bytes(b))
}

impl Header {
    pub(crate) fn write(&self, out: &mut (impl Write + ?Sized)) -> Result<u64, DeltaError> {
        let mut buf = Vec::with_capacity(HEADER_LEN);
        buf.extend_from_slice(MAGIC);
        buf.extend_from_slice(&self.source_len.to_le_bytes());
        buf.extend_from_slice(self.source_hash.as_bytes());
        buf.extend_from_slice(&self.target_len.to_le_bytes());
        buf.extend_from_slice(self.target_hash.as_bytes());
        out.write_all(&buf).map_err(DeltaError::write)?;
        Ok(buf.len() as u64)
    }

    /// Read a header from the start of a patch.
    pub fn read(r: &mut impl Read) -> Result<Self, DeltaError> {
        let mut magic = [0u8; 4];
        read_exact(r, &mut magic)?;
        if &magic != MAGIC {
            return Err(malformed("it does not start with the QSync patch magic"));
        }
        Ok(Self {
            source_len: read_u64(r)?,
            source_hash: read_hash(r)?,
            target_len: read_u64(r)?,
            target_hash: read_hash(r)?,
        })
    }

    pub(crate) fn check_source(&self, len: u64, hash: ContentHash) -> Result<(), DeltaError> {
        if len != self.source_len || hash != self.source_hash {
            return Err(DeltaError::WrongBase {
                expected: self.source_hash,
                expected_len: self.source_len,
                found: hash,
                found_len: len,
            });
        }
        Ok(())
    }

    pub(crate) fn check_range(&self, offset: u64, len: u64) -> Result<(), DeltaError> {
        match offset.checked_add(len) {
            Some(end) if end <= self.source_len => Ok(()),
            _ => Err(DeltaError::Malformed(format!(
                "a segment reads {len} bytes at {offset}, past the {}-byte source",
                self.source_len
            ))),
        }
    }
}

/// One piece of the target.
#[derive(Debug)]
pub(crate) enum Segment<'a> {
    End,
    Copy {
        offset: u64,
        len: u64,
    },
    Vcdiff {
        source_offset: u64,
        source_len: u32,
        target_len: u32,
        vcdiff: &'a [u8],
    },
    /// New bytes, sent as they are (too small or too new for VCDIFF to help).
    Literal(&'a [u8]),
}

impl<'a> Segment<'a> {
    pub(crate) fn write(&self, out: &mut (impl Write + ?Sized)) -> Result<u64, DeltaError> {
        let mut buf = Vec::with_capacity(32);
        match self {
            Segment::End => buf.push(0),
            Segment::Copy { offset, len } => {
                buf.push(1);
                buf.extend_from_slice(&offset.to_le_bytes());
                buf.extend_from_slice(&len.to_le_bytes());
            }
            Segment::Vcdiff {
                source_offset,
                source_len,
                target_len,
                vcdiff,
            } => {
                buf.push(2);
                buf.extend_from_slice(&source_offset.to_le_bytes());
                buf.extend_from_slice(&source_len.to_le_bytes());
                buf.extend_from_slice(&target_len.to_le_bytes());
                let vlen = u32::try_from(vcdiff.len())
                    .map_err(|_| malformed("a VCDIFF segment is over 4 GiB"))?;
                buf.extend_from_slice(&vlen.to_le_bytes());
            }
            Segment::Literal(data) => {
                buf.push(3);
                let len = u32::try_from(data.len())
                    .map_err(|_| malformed("a literal segment is over 4 GiB"))?;
                buf.extend_from_slice(&len.to_le_bytes());
            }
        }
        out.write_all(&buf).map_err(DeltaError::write)?;
        let mut written = buf.len() as u64;
        if let Segment::Vcdiff { vcdiff: data, .. } | Segment::Literal(data) = self {
            out.write_all(data).map_err(DeltaError::write)?;
            written += data.len() as u64;
        }
        Ok(written)
    }

    /// Read the next segment; VCDIFF bytes land in `scratch`, grown only as bytes arrive.
    pub(crate) fn read(r: &mut impl Read, scratch: &'a mut Vec<u8>) -> Result<Self, DeltaError> {
        let mut tag = [0u8; 1];
        read_exact(r, &mut tag)?;
        match tag[0] {
            0 => Ok(Segment::End),
            1 => Ok(Segment::Copy {
                offset: read_u64(r)?,
                len: read_u64(r)?,
            }),
            2 => {
                let source_offset = read_u64(r)?;
                let source_len = read_u32(r)?;
                let target_len = read_u32(r)?;
                let vcdiff_len = read_u32(r)?;
                for (what, n) in [
                    ("source", source_len),
                    ("target", target_len),
                    ("VCDIFF", vcdiff_len),
                ] {
                    if n as usize > MAX_SEGMENT_LEN {
                        return Err(DeltaError::Malformed(format!(
                            "a segment's {what} length {n} is over the {MAX_SEGMENT_LEN}-byte limit"
                        )));
                    }
                }
                read_bytes(r, vcdiff_len, scratch, "VCDIFF")?;
                Ok(Segment::Vcdiff {
                    source_offset,
                    source_len,
                    target_len,
                    vcdiff: scratch,
                })
            }
            3 => {
                let len = read_u32(r)?;
                if len as usize > MAX_SEGMENT_LEN {
                    return Err(DeltaError::Malformed(format!(
                        "a literal of {len} bytes is over the {MAX_SEGMENT_LEN}-byte limit"
                    )));
                }
                read_bytes(r, len, scratch, "literal")?;
                Ok(Segment::Literal(scratch))
            }
            other => Err(DeltaError::Malformed(format!(
                "unknown segment tag {other}"
            ))),
        }
    }
}
