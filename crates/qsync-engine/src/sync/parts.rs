//! Part files of contents on their way in, kept open between holders: a transfer that
//! moves to another holder (or asks the same one again) continues its part without
//! reading it again, and the checks a resumed request carries (`PieceHasher::checks`) come
//! from the part as it is. A part not kept open is read (and hashed) again from disk.

use std::collections::HashMap;

use qsync_base::ContentHash;

use crate::driver::place::Staging;
use crate::driver::transfer::Incoming;
use crate::EngineError;

/// Part files kept open for the next holder, at most (more are closed; they resume from
/// the file, read again).
const MAX_PARKED: usize = 16;

/// The part files kept open, by content (see the module's header).
#[derive(Default)]
pub(super) struct Parts {
    parked: HashMap<ContentHash, Incoming>,
}

impl Parts {
    /// Keep `incoming` open for the next holder of `hash`.
    pub(super) fn park(&mut self, hash: ContentHash, incoming: Incoming) {
        if self.parked.len() >= MAX_PARKED {
            self.parked.clear();
        }
        self.parked.insert(hash, incoming);
    }

    /// Close the part of `hash`, if it is open.
    pub(super) fn remove(&mut self, hash: &ContentHash) {
        self.parked.remove(hash);
    }

    /// The contents whose parts are open.
    pub(super) fn hashes(&self) -> impl Iterator<Item = ContentHash> + '_ {
        self.parked.keys().copied()
    }

    /// The checks of the first `offset` bytes of the part of `hash` (of `size` bytes in
    /// all) in `staging`, for a request of the rest: from the part kept open, or read now
    /// (and kept open, so that the first chunk of the answer does not read it again).
    /// None when the part cannot be read: the holder then sends it all, and the answer
    /// starts the part again.
    pub(super) fn checks_of(
        &mut self,
        staging: &Staging,
        (hash, size): (ContentHash, u64),
        offset: u64,
    ) -> Vec<ContentHash> {
        if offset == 0 {
            return Vec::new();
        }
        if let Some(parked) = self.parked.get(&hash) {
            if parked.received() == offset {
                return parked.checks();
            }
        }
        match Incoming::open(staging, hash, size, offset) {
            Ok(incoming) => {
                let checks = incoming.checks();
                self.park(hash, incoming);
                checks
            }
            Err(e) => {
                tracing::warn!(%hash, error = %e, "the part kept of a content cannot be read; it is asked for whole");
                Vec::new()
            }
        }
    }

    /// The part of `hash` (of `size` bytes in all) to go on from `offset`: the one kept
    /// open, cut back to `offset` when the holder's copy parts from it there, or opened
    /// (its first `offset` bytes read and hashed again).
    pub(super) fn take(
        &mut self,
        staging: &Staging,
        (hash, size): (ContentHash, u64),
        offset: u64,
    ) -> Result<Incoming, EngineError> {
        if let Some(mut parked) = self.parked.remove(&hash) {
            if parked.rewind(offset)? {
                return Ok(parked);
            }
        }
        Incoming::open(staging, hash, size, offset)
    }
}
