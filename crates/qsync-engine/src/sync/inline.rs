//! Patches that travel inside the record of an edit ([`Message::SyncPatched`]).
//!
//! Without them, an edit of a large file costs four messages: the record, the receiver's
//! request (naming the version it has), the patch, and the acknowledgement. The sender
//! of an edit knows the version before it, and keeps a copy of it (the keeper's blob):
//! when it sees the edit, it makes the patch from that copy at once ([`Outgoing`]), and
//! the record goes out carrying it. The receiver keeps what came ([`Received`]) until the
//! core wants that content; if the file there is the patch's base, the patch is applied
//! and checked as one that was asked for, and nothing is requested. If it is not (the
//! receiver had another version, or no record of the path), the patch is dropped and the
//! content is asked for as usual: a patch sent in vain costs at most
//! [`MAX_INLINE_PATCH`] bytes.
//!
//! Both sides are bounded: the sender makes patches for files of at most
//! [`MAX_PATCHED_FILE`], reading at most [`PATCHED_PER_ROUND`] per round of the driver,
//! and keeps those of its last [`OUTGOING_KEPT`] edits; the receiver keeps at most
//! [`RECEIVED_PATCHES`] patches and [`RECEIVED_BYTES`], the oldest forgotten first (a peer
//! sending patches for records that are never decided, or for contents never wanted,
//! pushes out the patches of others: they are then asked for, as without patches).

use std::collections::{HashMap, VecDeque};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use qsync_base::{ContentHash, RelPath, TaskId};
use qsync_core::{Record, State};
use qsync_wire::{Message, MAX_INLINE_PATCH, MAX_INLINE_PATCHES};

use crate::driver::place::Staging;
use crate::driver::root::TaskRoot;
use crate::driver::transfer;
use crate::exchange::{FetchKey, Want};

/// Files smaller than this travel whole (a patch is not worth it): none is made for them.
pub(super) const MIN_PATCHED_FILE: u64 = 64 * 1024;

/// How many edits' patches the sender keeps to send with their records.
pub(super) const OUTGOING_KEPT: usize = 64;

/// The bytes of received patches kept waiting for the core (each counted with its path
/// and [`ENTRY_COST`]).
pub(super) const RECEIVED_BYTES: usize = 1024 * 1024;

/// The most received patches kept waiting for the core.
pub(super) const RECEIVED_PATCHES: usize = 1024;

/// What a kept patch costs beyond its bytes and its path (its key, the map's entry).
const ENTRY_COST: usize = 128;

/// The largest file whose edits get a patch before their record goes out: the patch is
/// made on the engine's thread, reading both versions (a larger one's edits are asked for
/// as before, and served as patches by the serving threads).
pub(super) const MAX_PATCHED_FILE: u64 = 256 * 1024 * 1024;

/// The most file bytes read to make patches in one round of the driver: the rest of the
/// edits of a large batch go without (a rescan after a start may find thousands).
pub(super) const PATCHED_PER_ROUND: u64 = 512 * 1024 * 1024;

/// An edit seen here whose patch is to be made: its task, path, new content and size,
/// and the content before.
#[derive(Debug, Clone)]
struct Edit {
    task: TaskId,
    path: RelPath,
    hash: ContentHash,
    size: u64,
    before: ContentHash,
}

/// The sender's side: edits seen, then their patches, sent with the records of the edits.
#[derive(Debug, Default)]
pub(super) struct Outgoing {
    /// Edits seen and not yet made into patches (made before the next records go out).
    seen: Vec<Edit>,
    /// The patches made, oldest first: by task, path and new content.
    made: VecDeque<(FetchKey, Bytes)>,
}

impl Outgoing {
    /// This device's `path` of `task` now holds `hash` (`size` bytes), edited from
    /// `before`: its patch is made before its record goes out, if worth it.
    pub(super) fn edited(
        &mut self,
        task: TaskId,
        path: RelPath,
        (hash, size): (ContentHash, u64),
        before: ContentHash,
    ) {
        if (MIN_PATCHED_FILE..=MAX_PATCHED_FILE).contains(&size) && hash != before {
            // Only the last edit of a path counts, and only the last ones of a batch.
            self.seen.retain(|e| (e.task, &e.path) != (task, &path));
            if self.seen.len() >= OUTGOING_KEPT {
                self.seen.remove(0);
            }
            self.seen.push(Edit {
                task,
                path,
                hash,
                size,
                before,
            });
        }
    }

    /// Make the patches of the edits seen: from the copy kept of the version before
    /// (`kept`), to the file now at the path in its task's folder (`root_of`), if it still
    /// holds the content seen. A patch over [`MAX_INLINE_PATCH`], or one that cannot be
    /// made, is not kept: that record goes without one.
    pub(super) fn make(
        &mut self,
        root_of: impl Fn(&TaskId) -> Option<PathBuf>,
        kept: impl Fn(&ContentHash) -> Option<PathBuf>,
    ) {
        let mut read = 0u64;
        for edit in std::mem::take(&mut self.seen) {
            // Both versions are read: within the round's budget.
            read = read.saturating_add(edit.size.saturating_mul(2));
            if read > PATCHED_PER_ROUND {
                break;
            }
            let (Some(root), Some(base_file)) = (root_of(&edit.task), kept(&edit.before)) else {
                continue;
            };
            let Some(patch) = made_patch(&root, &edit, &base_file) else {
                continue;
            };
            let key = (edit.task, edit.path, edit.hash);
            self.made.retain(|(k, _)| (&k.0, &k.1) != (&key.0, &key.1));
            self.made.push_back((key, Bytes::from(patch)));
            while self.made.len() > OUTGOING_KEPT {
                self.made.pop_front();
            }
        }
    }

    /// Forget the edits seen (nobody to send their patches to).
    pub(super) fn forget_seen(&mut self) {
        self.seen.clear();
    }

    /// Whether edits wait for their patches.
    pub(super) fn has_seen(&self) -> bool {
        !self.seen.is_empty()
    }

    /// The wire message for the core's `body` about `task` holding `records`: with the
    /// patches made for them, if any.
    pub(super) fn message(&self, task: TaskId, records: &[Record], body: Bytes) -> Message {
        let patches: Vec<(u32, Bytes)> = records
            .iter()
            .enumerate()
            .filter_map(|(i, record)| {
                let hash = record.state.hash()?;
                let (_, patch) = self
                    .made
                    .iter()
                    .rev()
                    .find(|(k, _)| k.0 == task && k.1 == record.path && k.2 == hash)?;
                Some((u32::try_from(i).ok()?, patch.clone()))
            })
            .take(MAX_INLINE_PATCHES)
            .collect();
        if patches.is_empty() {
            Message::Sync { body }
        } else {
            Message::SyncPatched { body, patches }
        }
    }
}

/// The patch of `edit` from the kept copy `base_file`, if small enough to go inline.
fn made_patch(root: &Path, edit: &Edit, base_file: &Path) -> Option<Vec<u8>> {
    let file = TaskRoot::open(root)
        .and_then(|r| r.open_file(&edit.path))
        .ok()?;
    let patch =
        transfer::patch_within((edit.before, base_file), &file, edit.hash, MAX_INLINE_PATCH)?;
    tracing::debug!(path = %edit.path, bytes = patch.len(), size = edit.size, "made a patch to send with its record");
    Some(patch)
}

/// The receiver's side: patches that came with records, until the core wants their
/// content (see the [module documentation](self)).
#[derive(Debug, Default)]
pub(super) struct Received {
    /// By task, path and content: the patch, oldest first.
    patches: HashMap<FetchKey, Bytes>,
    order: VecDeque<FetchKey>,
    bytes: usize,
}

impl Received {
    /// Keep the `patches` that came with `records` of `task` (each named by its record's
    /// index; one naming no file record, or too large, is dropped).
    pub(super) fn keep(&mut self, task: TaskId, records: &[Record], patches: Vec<(u32, Bytes)>) {
        for (i, patch) in patches.into_iter().take(MAX_INLINE_PATCHES) {
            if patch.len() < qsync_delta::HEADER_LEN {
                continue; // not even a patch's header
            }
            let record = usize::try_from(i).ok().and_then(|i| records.get(i));
            let Some(Record {
                path,
                state: State::File { hash, .. },
                ..
            }) = record
            else {
                continue;
            };
            if patch.len() > MAX_INLINE_PATCH {
                continue;
            }
            let key = (task, path.clone(), *hash);
            if let Some(old) = self.patches.insert(key.clone(), patch.clone()) {
                self.bytes -= cost(&key, &old);
                self.order.retain(|k| *k != key);
            }
            self.bytes += cost(&key, &patch);
            self.order.push_back(key);
            while self.bytes > RECEIVED_BYTES || self.order.len() > RECEIVED_PATCHES {
                let Some(oldest) = self.order.pop_front() else {
                    break;
                };
                if let Some(old) = self.patches.remove(&oldest) {
                    self.bytes -= cost(&oldest, &old);
                }
            }
        }
    }

    /// Whether the patch that came with the record of `want` applies to the version here
    /// (its base, the file at the path in the task's folder `root`) and gave the content,
    /// checked and staged in `staging` as a patch asked for would be. The patch is tried
    /// once.
    pub(super) fn apply(&mut self, want: &Want, root: Option<&Path>, staging: &Staging) -> bool {
        let key = (want.task, want.path.clone(), want.hash);
        let (Some(patch), Some(base), Some(root)) = (self.take(&key), want.base, root) else {
            return false;
        };
        let mut incoming = transfer::IncomingPatch::start(base, want.hash, want.size);
        incoming.accept(&patch);
        match incoming.finish(root, &want.path, staging) {
            Ok(true) => {
                tracing::debug!(path = %want.path, bytes = patch.len(), "the patch that came with a record gave its content");
                true
            }
            Ok(false) => false,
            Err(e) => {
                tracing::debug!(path = %want.path, error = %e, "the patch that came with a record could not be staged");
                false
            }
        }
    }

    /// The patch that came for `key`, if one did (taken: it is tried once).
    pub(super) fn take(&mut self, key: &FetchKey) -> Option<Bytes> {
        let patch = self.patches.remove(key)?;
        self.bytes -= cost(key, &patch);
        self.order.retain(|k| k != key);
        Some(patch)
    }
}

/// What keeping `patch` for `key` counts against [`RECEIVED_BYTES`].
fn cost(key: &FetchKey, patch: &Bytes) -> usize {
    patch.len() + key.1.as_str().len() + ENTRY_COST
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use qsync_base::VersionVector;

    fn record(path: &str, content: &[u8]) -> Record {
        Record {
            path: RelPath::new(path).unwrap(),
            state: State::File {
                hash: ContentHash::of(content),
                size: content.len() as u64,
                mode: 0o644,
            },
            version: VersionVector::default(),
            mtime_ns: 0,
            seq: 1,
            retimed: None,
            by: None,
        }
    }

    #[test]
    fn received_patches_are_bounded_and_taken_once_for_their_record() {
        let task = TaskId::random();
        let records: Vec<Record> = (0..70).map(|i| record(&format!("f{i}"), &[i])).collect();
        let mut received = Received::default();
        let big = Bytes::from(vec![0u8; MAX_INLINE_PATCH]);
        // Patches for records 0..16 taken; more in one message, too large, or naming no
        // record, dropped.
        let patches: Vec<(u32, Bytes)> = (0..20).map(|i| (i, big.clone())).collect();
        received.keep(task, &records, patches);
        received.keep(
            task,
            &records,
            vec![
                (20, Bytes::from(vec![0u8; MAX_INLINE_PATCH + 1])),
                (500, Bytes::from_static(b"x")),
            ],
        );
        let key = |i: usize| {
            (
                task,
                records[i].path.clone(),
                records[i].state.hash().unwrap(),
            )
        };
        assert!(received.bytes <= RECEIVED_BYTES);
        assert!(received.take(&key(20)).is_none(), "too large");
        assert!(
            received.take(&key(16)).is_none(),
            "past the most per message"
        );
        assert!(received.take(&key(15)).is_some());
        assert!(received.take(&key(15)).is_none(), "taken once");
        // Past the bytes kept, the oldest go first.
        for round in 0..5u32 {
            let patches = (0..16)
                .map(|i| (i + 16 * (round % 4) + 1, big.clone()))
                .collect();
            received.keep(task, &records, patches);
        }
        assert!(received.bytes <= RECEIVED_BYTES);
        assert!(received.take(&key(0)).is_none(), "the oldest was forgotten");
    }

    #[test]
    fn only_the_last_edits_of_files_worth_a_patch_wait_for_one() {
        let task = TaskId::random();
        let mut out = Outgoing::default();
        let h = |n: u32| ContentHash::of(&n.to_le_bytes());
        let path = |n: u32| RelPath::new(format!("f{n}")).unwrap();
        // Too small, too large, or no change: none.
        out.edited(task, path(0), (h(1), MIN_PATCHED_FILE - 1), h(0));
        out.edited(task, path(0), (h(1), MAX_PATCHED_FILE + 1), h(0));
        out.edited(task, path(0), (h(1), MIN_PATCHED_FILE), h(1));
        assert!(!out.has_seen());
        // One per path (the last), and the last OUTGOING_KEPT of a batch.
        for n in 0..(OUTGOING_KEPT as u32 + 10) {
            out.edited(task, path(n % 100), (h(n + 1), MIN_PATCHED_FILE), h(n));
            out.edited(task, path(n % 100), (h(n + 2), MIN_PATCHED_FILE), h(n + 1));
        }
        assert_eq!(out.seen.len(), OUTGOING_KEPT);
        let last = out.seen.last().unwrap();
        assert_eq!(last.hash, h(OUTGOING_KEPT as u32 + 11));
    }
}
