//! Writing files straight to the disk (`O_DIRECT`), past the page cache: the blobs kept
//! here, and the daemon's received content (`qsync-engine`'s part files).
//!
//! A received file is written once and then made durable with an `fsync`; through the
//! page cache, each byte is first copied into a cache page and
//! then written out by the kernel. Measured here (#36): while other programs have a few
//! GiB waiting to be written out (a person's photos copied from a camera a moment before,
//! say), that copy into the cache costs 2.7-3 CPU-s per GiB instead of 0.2, and the
//! `fsync` waits behind everyone's pages; a direct write costs 0.06 CPU-s per GiB and goes
//! at the disk's speed whatever the cache holds.
//!
//! A direct write must start at an offset, and span a length, that are multiples of the
//! disk's block, from memory aligned the same way: [`Appender`] gathers the bytes in an
//! aligned buffer and writes whole buffers; the last, partial block is written padded
//! with zeros and the file then cut to its length. Where `O_DIRECT` is refused (tmpfs,
//! some network or FUSE file systems) or a direct write fails as unaligned, the file is
//! written through the page cache as before.
//!
//! ```
//! use qsync_store::direct::Appender;
//! let dir = tempfile::tempdir().unwrap();
//! let path = dir.path().join("content");
//! let file = std::fs::File::create(&path).unwrap();
//! let mut out = Appender::new(file, 0, true).unwrap();
//! out.write(&[7u8; 5000]).unwrap();
//! out.finish().unwrap();
//! assert_eq!(std::fs::read(&path).unwrap(), vec![7u8; 5000]);
//! ```

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use rustix::fs::{fcntl_getfl, fcntl_setfl, OFlags};

/// The alignment direct writes get here (offsets, lengths, memory): disks' blocks are
/// 512 or 4096 bytes.
const ALIGN: usize = 4096;

/// The bytes gathered for one direct write (a quarter of a piece: at most
/// `MAX_OPEN_INCOMING` of these are held per linked device).
const BUFFER: usize = 256 * 1024;

/// Content smaller than this is written through the page cache: its copy there costs
/// little, and a direct write would cost a padded block and a cut for each small file.
pub const DIRECT_MIN: u64 = 1 << 20;

/// Appends to a file from a given length on, directly to the disk when it can (see the
/// [module documentation](self)). Dropped before [`Appender::finish`], it writes out what
/// it holds (a transfer cut short resumes from the part file's length).
pub struct Appender {
    file: File,
    /// The logical end of the file: where the next byte goes.
    end: u64,
    /// The gathered bytes when writing directly; `None` through the page cache.
    direct: Option<Gathered>,
}

/// Bytes gathered for a direct write: `len` bytes at `mem[start..]`, which belong at the
/// file's offset `at` (a multiple of [`ALIGN`]).
struct Gathered {
    mem: Vec<u8>,
    start: usize,
    len: usize,
    at: u64,
}

impl Gathered {
    /// An aligned buffer of [`BUFFER`] bytes, for the file's bytes from `at` on.
    fn new(at: u64) -> Self {
        let mem = vec![0u8; BUFFER + ALIGN];
        // Safe to ask: the offset that aligns the buffer's start (at most ALIGN - 1 for
        // bytes).
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
        Self {
            mem,
            start,
            len: 0,
            at,
        }
    }

    fn buffer(&mut self) -> &mut [u8] {
        &mut self.mem[self.start..self.start + BUFFER]
    }
}

impl Appender {
    /// Append to `file`, whose length is `end`; directly if `direct` and the file system
    /// lets it.
    pub fn new(file: File, end: u64, direct: bool) -> io::Result<Self> {
        let mut out = Self {
            file,
            end,
            direct: None,
        };
        if direct && set_direct(&out.file, true).is_ok() {
            out.gather_from(end)?;
        }
        Ok(out)
    }

    /// Start gathering at `end`: the bytes of its block before it are read back into the
    /// buffer (an aligned read, allowed directly too), so the block is written whole.
    fn gather_from(&mut self, end: u64) -> io::Result<()> {
        let at = end - end % ALIGN as u64;
        let mut gathered = Gathered::new(at);
        let before = (end - at) as usize;
        if before > 0 {
            let block = &mut gathered.buffer()[..ALIGN];
            let mut read = 0;
            while read < before {
                match self.file.read_at(&mut block[read..], at + read as u64)? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    n => read += n,
                }
            }
        }
        gathered.len = before;
        self.direct = Some(gathered);
        Ok(())
    }

    /// Append `data`.
    pub fn write(&mut self, mut data: &[u8]) -> io::Result<()> {
        self.end += data.len() as u64;
        while !data.is_empty() {
            let Some(gathered) = &mut self.direct else {
                // Through the page cache (from the start, or since a direct write failed).
                return self.file.write_all_at(data, self.end - data.len() as u64);
            };
            let len = gathered.len;
            let n = data.len().min(BUFFER - len);
            gathered.buffer()[len..len + n].copy_from_slice(&data[..n]);
            gathered.len += n;
            data = &data[n..];
            if gathered.len == BUFFER {
                self.write_gathered()?;
            }
        }
        Ok(())
    }

    /// Write what is gathered: the whole blocks, and the last partial one padded with
    /// zeros (the file is then cut to its end). The partial block stays gathered, so that
    /// appends go on from it.
    fn write_gathered(&mut self) -> io::Result<()> {
        let Some(gathered) = &mut self.direct else {
            return Ok(());
        };
        if gathered.len == 0 {
            return Ok(());
        }
        let (len, at) = (gathered.len, gathered.at);
        let padded = len.next_multiple_of(ALIGN);
        gathered.buffer()[len..padded].fill(0);
        let start = gathered.start;
        let written = self
            .file
            .write_all_at(&gathered.mem[start..start + padded], at);
        match written {
            Ok(()) => {}
            // Not aligned as this file system wants: through the page cache from now on.
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                set_direct(&self.file, false)?;
                self.file
                    .write_all_at(&gathered.mem[start..start + len], at)?;
                self.direct = None;
                return self.file.set_len(self.end);
            }
            Err(e) => return Err(e),
        }
        if padded != len {
            self.file.set_len(self.end)?;
        }
        let whole = len - len % ALIGN;
        gathered.mem.copy_within(start + whole..start + len, start);
        gathered.len = len - whole;
        gathered.at = at + whole as u64;
        Ok(())
    }

    /// Cut the file at `to` (at most its end) and append from there.
    pub fn cut(&mut self, to: u64) -> io::Result<()> {
        self.write_gathered()?;
        self.file.set_len(to)?;
        self.end = to;
        if self.direct.is_some() {
            self.gather_from(to)?;
        }
        Ok(())
    }

    /// Write out everything appended; the file, at its end.
    pub fn finish(mut self) -> io::Result<()> {
        self.write_gathered()?;
        self.direct = None;
        Ok(())
    }
}

impl Drop for Appender {
    fn drop(&mut self) {
        if let Err(e) = self.write_gathered() {
            tracing::debug!(error = %e, "could not write out the end of a part file");
        }
    }
}

/// Set or clear `O_DIRECT` on `file`.
fn set_direct(file: &File, on: bool) -> io::Result<()> {
    let flags = fcntl_getfl(file)?;
    let flags = match on {
        true => flags | OFlags::DIRECT,
        false => flags - OFlags::DIRECT,
    };
    fcntl_setfl(file, flags)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn appended(direct: bool, start: &[u8], writes: &[Vec<u8>], cut: Option<usize>) -> Vec<u8> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, start).unwrap();
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .unwrap();
        let mut out = Appender::new(file, start.len() as u64, direct).unwrap();
        let mut expected = start.to_vec();
        for (i, w) in writes.iter().enumerate() {
            if cut == Some(i) {
                let to = expected.len() / 2;
                out.cut(to as u64).unwrap();
                expected.truncate(to);
            }
            out.write(w).unwrap();
            expected.extend_from_slice(w);
        }
        out.finish().unwrap();
        let got = std::fs::read(&path).unwrap();
        assert_eq!(got.len(), expected.len());
        assert!(got == expected, "the file holds what was appended");
        got
    }

    #[test]
    fn a_large_file_written_directly_holds_every_byte_and_its_exact_length() {
        let data: Vec<u8> = (0..3 * BUFFER + 1234).map(|i| (i % 251) as u8).collect();
        let chunks: Vec<Vec<u8>> = data.chunks(65_536 + 17).map(<[u8]>::to_vec).collect();
        appended(true, &[], &chunks, None);
    }

    #[test]
    fn a_part_resumed_at_an_unaligned_length_keeps_its_first_bytes() {
        let start: Vec<u8> = (0..5000).map(|i| (i % 7) as u8).collect();
        appended(true, &start, &[vec![9; 10_000], vec![8; BUFFER]], Some(1));
    }

    #[test]
    fn dropped_before_its_end_it_writes_out_what_it_gathered() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::File::create(&path).unwrap();
        let mut out = Appender::new(file, 0, true).unwrap();
        out.write(&[5; 10_000]).unwrap();
        drop(out);
        assert_eq!(std::fs::read(&path).unwrap(), vec![5; 10_000]);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]
        #[test]
        fn appends_and_cuts_give_the_same_file_directly_or_not(
            start in proptest::collection::vec(any::<u8>(), 0..9000),
            writes in proptest::collection::vec(
                proptest::collection::vec(any::<u8>(), 0..70_000), 0..8),
            cut in proptest::option::of(0usize..8),
        ) {
            let direct = appended(true, &start, &writes, cut);
            let cached = appended(false, &start, &writes, cut);
            prop_assert!(direct == cached);
        }
    }
}
