//! The receiver's side of rsync's exchange: when the device serving a file it asks for
//! keeps no copy of the version here, it asks for that version's block signature
//! ([`sign`]); and the server's intake of the signature it gets, in order and within the
//! limits ([`IncomingSignature`]), before a patch is made from it
//! ([`super::Base::Blocks`]).

use std::path::Path;

use bytes::Bytes;
use qsync_base::{ContentHash, RelPath};
use qsync_delta::Signature;
use qsync_wire::Message;

use super::{send_chunks, Budget, Share};
use crate::driver::root::TaskRoot;
use crate::EngineError;

/// Files smaller than this are sent whole rather than through a signature when the copy
/// of the asker's version is not kept here: the round trip would save little.
pub const MIN_SIGNED_FILE: u64 = 64 * 1024;

/// The largest signature accepted (a signature describes at most
/// [`qsync_delta::MAX_BLOCKS`] blocks, 12 bytes each).
pub const MAX_SIGNATURE: usize = 13 * 1024 * 1024;

/// The most bytes of signatures held in memory at once, all devices together; a request
/// beyond it is served whole.
pub const MAX_SIGNATURE_MEMORY: usize = 64 * 1024 * 1024;

/// Describe the version `base` of `path` in the task folder `root` to the device that
/// asked for it ([`Message::SignatureWanted`]), through `send`: the chunks of its
/// [`Signature`], then the last (empty) message; or only that last message, saying "send it
/// whole", if the file is not there or no longer holds `base`. The file is opened as
/// [`serve`] opens it (beneath the root, never through a link).
pub fn sign(
    root: &Path,
    path: &RelPath,
    hash: ContentHash,
    base: ContentHash,
    mut send: impl FnMut(Message) -> bool,
) {
    let message = |offset, data, last| Message::Signature {
        path: path.clone(),
        hash,
        base,
        offset,
        data,
        last,
    };
    let signature = TaskRoot::open(root)
        .and_then(|r| r.open_file(path))
        .ok()
        .and_then(|file| {
            let len = file.metadata().ok()?.len();
            Signature::of(std::io::BufReader::with_capacity(1 << 20, &file), len).ok()
        })
        .filter(|sig| sig.source_hash() == base);
    match signature {
        Some(sig) => send_chunks(&sig.to_bytes(), &mut send, message),
        None => {
            send(message(0, Bytes::new(), true));
        }
    }
}

/// A signature on its way in, kept in memory up to [`MAX_SIGNATURE`] bytes (and within
/// [`MAX_SIGNATURE_MEMORY`] with every other).
pub struct IncomingSignature {
    bytes: Vec<u8>,
    memory: Share,
}

impl IncomingSignature {
    /// Start receiving a signature, its bytes counted in `memory`.
    pub fn start(memory: &Budget) -> Self {
        Self {
            bytes: Vec::new(),
            memory: Share {
                budget: memory.clone(),
                n: 0,
            },
        }
    }

    /// Take one chunk, in order, within the limits.
    pub fn accept(&mut self, offset: u64, data: &[u8]) -> Result<(), EngineError> {
        if offset != self.bytes.len() as u64 {
            return Err(EngineError::State(
                "a signature arrived out of order".into(),
            ));
        }
        if self.bytes.len() + data.len() > MAX_SIGNATURE
            || !self.memory.grow(data.len(), MAX_SIGNATURE_MEMORY)
        {
            return Err(EngineError::Limit(
                "a signature is larger than the limits; the content is served whole".into(),
            ));
        }
        self.bytes.extend_from_slice(data);
        Ok(())
    }

    /// The signature, if what came is one (and not the empty "send it whole") made with
    /// the block length an honest signer uses ([`qsync_delta::block_len_for`]: a peer's
    /// choice of huge blocks would make each failed match cost that much hashing), with
    /// its share of the memory budget, to hold until the patch is made.
    pub fn finish(self) -> Option<(Signature, Share)> {
        let sig = Signature::from_bytes(&self.bytes).ok()?;
        (sig.block_len() == qsync_delta::block_len_for(sig.source_len()))
            .then_some((sig, self.memory))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::super::{serve, Base, IncomingPatch};
    use super::*;
    use crate::driver::place::Staging;
    use qsync_wire::MAX_CHUNK_LEN;
    use std::fs;

    /// rsync's exchange end to end: the asker describes its version, the server makes a
    /// patch from that description alone, the asker applies it to its file.
    #[test]
    fn an_edit_travels_as_a_patch_from_the_askers_signature() {
        let (asker, server) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let staging = Staging::open(asker.path().join(".staging")).unwrap();
        let old: Vec<u8> = (0..600_000u32)
            .map(|i| (i.wrapping_mul(2654435761) >> 11) as u8)
            .collect();
        let mut new = old.clone();
        new.splice(300_000..300_010, *b"an edit in the middle");
        fs::write(asker.path().join("f"), &old).unwrap();
        fs::write(server.path().join("f"), &new).unwrap();
        let path = RelPath::new("f").unwrap();
        let (base, hash) = (ContentHash::of(&old), ContentHash::of(&new));

        let mut described = Vec::new();
        sign(asker.path(), &path, hash, base, |m| {
            described.push(m);
            true
        });
        let mut incoming = IncomingSignature::start(&Budget::default());
        for m in &described {
            match m {
                Message::Signature {
                    offset,
                    data,
                    last: false,
                    ..
                } => incoming.accept(*offset, data).unwrap(),
                Message::Signature { last: true, .. } => {}
                other => panic!("{other:?}"),
            }
        }
        let (sig, _memory) = incoming.finish().unwrap();
        assert_eq!(sig.source_hash(), base);

        let mut served = Vec::new();
        serve(
            server.path(),
            &path,
            hash,
            Some((base, Base::Blocks(&sig))),
            (0, &[]),
            |m| {
                served.push(m);
                true
            },
        );
        let mut patch = IncomingPatch::start(base, hash, new.len() as u64);
        let mut sent = 0;
        for m in &served {
            match m {
                Message::Delta { offset, data, .. } => {
                    assert_eq!(*offset as usize, sent);
                    sent += data.len();
                    patch.accept(data)
                }
                other => panic!("a patch was expected: {other:?}"),
            }
        }
        assert!(sent < 8 * 1024, "{sent} bytes of patch for a small edit");
        assert!(patch.finish(asker.path(), &path, &staging).unwrap());
        assert_eq!(fs::read(staging.path_of(&hash)).unwrap(), new);
    }

    #[test]
    fn no_signature_of_a_version_the_asker_no_longer_has() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("f"), b"changed since").unwrap();
        let (base, hash) = (ContentHash::of(b"before"), ContentHash::of(b"after"));
        for name in ["f", "missing"] {
            let mut out = Vec::new();
            sign(dir.path(), &RelPath::new(name).unwrap(), hash, base, |m| {
                out.push(m);
                true
            });
            assert!(
                matches!(&out[..], [Message::Signature { offset: 0, last: true, data, .. }] if data.is_empty()),
                "{name}: {out:?}"
            );
        }
        // A signature that does not parse (or the empty "send it whole") serves the content whole.
        let nothing = IncomingSignature::start(&Budget::default());
        assert!(nothing.finish().is_none());
    }

    #[test]
    fn signatures_in_memory_are_capped_and_in_order() {
        let memory = Budget::default();
        let mut one = IncomingSignature::start(&memory);
        assert!(one.accept(5, b"late").is_err());
        let chunk = vec![0u8; MAX_CHUNK_LEN];
        let mut offset = 0;
        while offset + chunk.len() <= MAX_SIGNATURE {
            one.accept(offset as u64, &chunk).unwrap();
            offset += chunk.len();
        }
        assert!(matches!(
            one.accept(offset as u64, &chunk),
            Err(EngineError::Limit(_))
        ));
        assert!(memory.used() <= MAX_SIGNATURE);
        drop(one);
        assert_eq!(memory.used(), 0);
    }
}
