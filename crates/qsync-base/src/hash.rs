//! Content hashes: the one hashing helper of QSync.

use std::fmt;
use std::io::{self, Read};

use serde::{Deserialize, Serialize};

/// The BLAKE3 hash of a file's content.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct ContentHash([u8; 32]);

impl ContentHash {
    /// The hash of `data`.
    pub fn of(data: &[u8]) -> Self {
        Self(*blake3::hash(data).as_bytes())
    }

    /// The hash of everything `reader` yields, read in bounded chunks.
    pub fn of_reader(reader: impl Read) -> io::Result<Self> {
        let mut hasher = ContentHasher::new();
        hasher.update_reader(reader)?;
        Ok(hasher.finish())
    }

    /// The hash with these exact bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The hash's bytes.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The hash as lowercase hex, as used for content-addressed file names.
    pub fn to_hex(&self) -> String {
        data_encoding::HEXLOWER.encode(&self.0)
    }

    /// The hash written by [`ContentHash::to_hex`]; `None` for anything else.
    pub fn from_hex(text: &str) -> Option<Self> {
        let bytes = data_encoding::HEXLOWER.decode(text.as_bytes()).ok()?;
        bytes.try_into().ok().map(Self)
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "ContentHash({})", &self.to_hex()[..16])
    }
}

/// Hash content that arrives in pieces (a streamed file, a window of a large file).
#[derive(Default, Clone)]
pub struct ContentHasher(blake3::Hasher);

impl ContentHasher {
    /// A hasher with nothing in it yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Add `data`.
    pub fn update(&mut self, data: &[u8]) -> &mut Self {
        self.0.update(data);
        self
    }

    /// Add everything `reader` yields.
    pub fn update_reader(&mut self, mut reader: impl Read) -> io::Result<&mut Self> {
        // Most files are small: a first read into a small buffer on the stack, and a large
        // one (zeroed once, which costs as much as hashing a small file) only when the
        // small one came back full.
        let mut small = [0u8; 8 * 1024];
        loop {
            match reader.read(&mut small) {
                Ok(0) => return Ok(self),
                Ok(n) => {
                    self.0.update(&small[..n]);
                    if n == small.len() {
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            match reader.read(&mut buf) {
                Ok(0) => return Ok(self),
                Ok(n) => {
                    self.0.update(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// The hash of all that was added.
    pub fn finish(&self) -> ContentHash {
        ContentHash(*self.0.finalize().as_bytes())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A reader that gives at most `step` bytes a read.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Around the size of the first, small read (8 KiB) and well past it, in whole reads
    /// or short ones, a reader's content hashes like the bytes.
    #[test]
    fn a_reader_hashes_like_its_bytes_around_the_first_read() {
        let data: Vec<u8> = (0..300_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
        for len in [8191, 8192, 8193, 16_384, 300_000] {
            let bytes = &data[..len];
            for step in [1000, 8192, usize::MAX] {
                let reader = Trickle { data: bytes, step };
                assert_eq!(
                    ContentHash::of_reader(reader).unwrap(),
                    ContentHash::of(bytes),
                    "{len} bytes, reads of {step}"
                );
            }
        }
    }

    proptest! {
        #[test]
        fn pieces_hash_like_the_whole(data in proptest::collection::vec(any::<u8>(), 0..4096), cut in 0usize..4096) {
            let cut = cut.min(data.len());
            let mut h = ContentHasher::new();
            h.update(&data[..cut]).update(&data[cut..]);
            prop_assert_eq!(h.finish(), ContentHash::of(&data));
            prop_assert_eq!(ContentHash::of_reader(&data[..]).unwrap(), ContentHash::of(&data));
        }
    }
}
