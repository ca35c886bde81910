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
//! disk's block, from memory aligned the same way: [`Appender`] copies the bytes of each
//! write into its thread's aligned buffer and writes them from there, the last, partial
//! block padded with zeros and the file then cut to its length (that block is kept, and
//! written again whole with the bytes that follow it). Where `O_DIRECT` is refused (tmpfs,
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

/// The most bytes one direct write carries (a chunk of content: `MAX_CHUNK_LEN`).
const BUFFER: usize = 1024 * 1024;

/// Content smaller than this is written through the page cache: its copy there costs
/// little, and a direct write would cost a padded block and a cut for each small file.
pub const DIRECT_MIN: u64 = 1 << 20;

thread_local! {
    /// Each thread's aligned buffer for direct writes: [`BUFFER`] bytes from the offset
    /// that aligns them. One per writing thread, not one per file being written (a peer
    /// may have many transfers open; each holds only its last partial block).
    static SCRATCH: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Appends to a file from a given length on, directly to the disk when it can (see the
/// [module documentation](self)). Every [`Appender::write`] reaches the file before it
/// returns (a process killed then loses nothing written: a transfer cut short resumes
/// from the part file's length).
pub struct Appender {
    file: File,
    /// The logical end of the file: where the next byte goes.
    end: u64,
    /// The bytes of the last, partial block (from its start, a multiple of [`ALIGN`], to
    /// `end`) when writing directly; `None` through the page cache.
    direct: Option<Vec<u8>>,
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
            out.direct = out.last_block()?;
        }
        Ok(out)
    }

    /// The bytes of the file's last partial block (read back: an aligned read, allowed
    /// directly too), so that it is written whole with what follows; `None`, and
    /// `O_DIRECT` cleared, when that read is refused as unaligned.
    fn last_block(&self) -> io::Result<Option<Vec<u8>>> {
        match self.read_last_block() {
            Ok(block) => Ok(Some(block)),
            Err(e) if e.kind() == io::ErrorKind::InvalidInput => {
                set_direct(&self.file, false)?;
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    fn read_last_block(&self) -> io::Result<Vec<u8>> {
        let before = (self.end % ALIGN as u64) as usize;
        if before == 0 {
            return Ok(Vec::new());
        }
        let at = self.end - before as u64;
        with_scratch(|block| {
            let block = &mut block[..ALIGN];
            let mut read = 0;
            while read < before {
                match self.file.read_at(&mut block[read..], at + read as u64)? {
                    0 => return Err(io::ErrorKind::UnexpectedEof.into()),
                    n => read += n,
                }
            }
            Ok(block[..before].to_vec())
        })
    }

    /// Append `data`; it is in the file when this returns.
    pub fn write(&mut self, data: &[u8]) -> io::Result<()> {
        let start = self.end;
        self.end += data.len() as u64;
        let Some(tail) = self.direct.take() else {
            return self.file.write_all_at(data, start);
        };
        match self.write_direct(tail, data) {
            Ok(tail) => {
                self.direct = Some(tail);
                Ok(())
            }
            // Not aligned as this file system wants: through the page cache from now on
            // (what failed is written again, from the start of its block).
            Err((e, tail)) if e.kind() == io::ErrorKind::InvalidInput => {
                set_direct(&self.file, false)?;
                let block_start = start - tail.len() as u64;
                self.file.write_all_at(&tail, block_start)?;
                self.file.write_all_at(data, start)?;
                self.file.set_len(self.end)
            }
            // Nothing appended (the caller may give up on the file, or try again).
            Err((e, tail)) => {
                self.direct = Some(tail);
                self.end = start;
                Err(e)
            }
        }
    }

    /// Write `tail` (the last partial block's bytes) then `data` directly, in aligned
    /// writes of up to [`BUFFER`] bytes from the tail's block on; the last partial block
    /// is written padded with zeros and the file cut at its end. The new tail.
    fn write_direct(&self, tail: Vec<u8>, data: &[u8]) -> Result<Vec<u8>, (io::Error, Vec<u8>)> {
        let mut at = self.end - (tail.len() + data.len()) as u64;
        let written = with_scratch(|buffer| {
            let mut len = tail.len();
            buffer[..len].copy_from_slice(&tail);
            let mut data = data;
            loop {
                let n = data.len().min(BUFFER - len);
                buffer[len..len + n].copy_from_slice(&data[..n]);
                len += n;
                data = &data[n..];
                if data.is_empty() {
                    break;
                }
                self.file.write_all_at(&buffer[..BUFFER], at)?;
                at += BUFFER as u64;
                len = 0;
            }
            let padded = len.next_multiple_of(ALIGN);
            buffer[len..padded].fill(0);
            self.file.write_all_at(&buffer[..padded], at)?;
            if padded != len {
                self.file.set_len(self.end)?;
            }
            let whole = len - len % ALIGN;
            Ok(buffer[whole..len].to_vec())
        });
        written.map_err(|e| (e, tail))
    }

    /// Cut the file at `to` (at most its end) and append from there.
    pub fn cut(&mut self, to: u64) -> io::Result<()> {
        self.file.set_len(to)?;
        self.end = to;
        if self.direct.is_some() {
            self.direct = self.last_block()?;
        }
        Ok(())
    }

    /// The end: everything appended is in the file already (see [`Appender::write`]);
    /// `O_DIRECT` is cleared (the open file may be shared: `File::try_clone`).
    pub fn finish(self) -> io::Result<()> {
        if self.direct.is_some() {
            set_direct(&self.file, false)?;
        }
        Ok(())
    }
}

/// Run `f` with this thread's aligned buffer of [`BUFFER`] bytes (made at its first use).
fn with_scratch<R>(f: impl FnOnce(&mut [u8]) -> io::Result<R>) -> io::Result<R> {
    SCRATCH.with(|scratch| {
        let mut mem = scratch
            .try_borrow_mut()
            .map_err(|_| io::Error::other("the direct-write buffer is in use"))?;
        if mem.is_empty() {
            *mem = vec![0u8; BUFFER + ALIGN];
        }
        // The offset that aligns the buffer's start (below ALIGN for bytes).
        let start = mem.as_ptr().align_offset(ALIGN).min(ALIGN);
        f(&mut mem[start..start + BUFFER])
    })
}

/// Up to this many files are made durable one after the other; more run
/// [`SYNCS_AT_ONCE`] at a time.
const SYNC_ONE_BY_ONE: usize = 4;

/// How many `fsync`s run at once in [`sync_each`].
const SYNCS_AT_ONCE: usize = 8;

/// Make each of `files` durable with its own `fsync`, several at once when there are
/// many (the file system commits concurrent ones together: one journal commit for many
/// files, where a `syncfs` would also write out every other program's pending pages).
/// The outcome of each, in order.
pub fn sync_each(files: &[&File]) -> Vec<io::Result<()>> {
    if files.len() <= SYNC_ONE_BY_ONE {
        return files.iter().map(|f| f.sync_all()).collect();
    }
    let per_thread = files.len().div_ceil(SYNCS_AT_ONCE);
    std::thread::scope(|scope| {
        let threads: Vec<_> = files
            .chunks(per_thread)
            .map(|chunk| {
                let synced = move || chunk.iter().map(|f| f.sync_all()).collect::<Vec<_>>();
                let thread = std::thread::Builder::new().spawn_scoped(scope, synced);
                (chunk.len(), thread)
            })
            .collect();
        let failed = |len: usize, why: String| -> Vec<io::Result<()>> {
            (0..len)
                .map(|_| Err(io::Error::other(why.clone())))
                .collect()
        };
        threads
            .into_iter()
            .flat_map(|(len, thread)| match thread {
                Ok(thread) => thread
                    .join()
                    .unwrap_or_else(|_| failed(len, "a sync thread failed".into())),
                Err(e) => failed(len, format!("no sync thread: {e}")),
            })
            .collect()
    })
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
        for len in [65_536 + 17, BUFFER, BUFFER * 3 / 2 + 17] {
            let chunks: Vec<Vec<u8>> = data.chunks(len).map(<[u8]>::to_vec).collect();
            appended(true, &[], &chunks, None);
            appended(true, &data[..5000], &chunks, Some(2));
        }
    }

    #[test]
    fn a_part_resumed_at_an_unaligned_length_keeps_its_first_bytes() {
        let start: Vec<u8> = (0..5000).map(|i| (i % 7) as u8).collect();
        appended(true, &start, &[vec![9; 10_000], vec![8; BUFFER]], Some(1));
    }

    #[test]
    fn each_write_is_in_the_file_when_it_returns() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        let file = std::fs::File::create(&path).unwrap();
        let mut out = Appender::new(file, 0, true).unwrap();
        out.write(&[5; 10_000]).unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), vec![5; 10_000]);
        out.write(&[6; 3]).unwrap();
        let mut expected = vec![5; 10_000];
        expected.extend([6; 3]);
        assert_eq!(std::fs::read(&path).unwrap(), expected);
    }

    #[test]
    fn many_files_are_synced_each_with_an_outcome_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let files: Vec<File> = (0..11)
            .map(|i| {
                let path = dir.path().join(format!("f{i}"));
                std::fs::write(&path, [i as u8; 100]).unwrap();
                File::open(&path).unwrap()
            })
            .collect();
        let refs: Vec<&File> = files.iter().collect();
        let synced = sync_each(&refs);
        assert_eq!(synced.len(), 11);
        assert!(synced.iter().all(|s| s.is_ok()));
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
