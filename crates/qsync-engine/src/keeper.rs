//! Blobs of new file versions (received, or changed here), kept off the critical path.
//!
//! The store keeps the newest full content of every file as a blob, to make a delta
//! against when the file changes. Neither a received file's acknowledgement nor a local
//! change's announcement needs that copy, so the daemon owes it instead, and hands what it
//! owes to this thread once it has been quiet for a moment. The keeper reads each file through a hasher into
//! a temporary blob and keeps it only if the hash is still the one received: the file may
//! have changed since, and then there is nothing to keep (its next edit goes whole rather
//! than as a delta, which the sender already does whenever a blob is missing). A blob is
//! named by the hash of what was actually read, so a stored blob is always what its name
//! says. Each blob is written straight to the disk (`qsync_store::direct`) and made
//! durable with its own `fsync`, then named: not one `syncfs` for the batch, which would
//! write out every other program's pending pages too, competing with a transfer.
//!
//! Bases cost disk: kept for every file, they doubled the space a task takes. Where the
//! file systems share extents (btrfs, xfs with reflinks: the state folder and the task
//! folder on one of them), a base is a reflink of the file (`FICLONE`): it costs nothing
//! while the file is unchanged, and only the old version's extents once it is edited (the
//! base of the newest version replaces it: the previous version's is evicted then, as it
//! would cost its whole size). Such bases are kept for every file, outside the budget.
//! Otherwise:
//! - files under [`MIN_BASE`] have none (a patch of them saves little: they go whole);
//! - all bases together stay within a budget the daemon gives with each batch (by default
//!   a fifth of the synced data, and never less than [`BUDGET_FLOOR`], so a small task
//!   keeps every base). A file's first version (created, or received new) is kept only if
//!   it fits; a new version of a file that was there before (a file being edited, likely
//!   to be edited again) makes room by evicting the bases kept longest ago. A file
//!   without a base has its next edit made from the block signature of the receiver's
//!   version (rsync's exchange: `driver/transfer.rs`), or sent whole under 64 KiB.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};

use qsync_base::{ContentHash, RelPath};
use qsync_store::Blobs;

use crate::driver::root::TaskRoot;

/// A file version whose blob is still to be kept.
#[derive(Debug, Clone)]
pub(crate) struct Owed {
    /// The task folder it is in...
    pub(crate) root: PathBuf,
    /// ...and its path there (read through [`TaskRoot`]: never through a link).
    pub(crate) path: RelPath,
    /// What it held when it was received or seen.
    pub(crate) hash: ContentHash,
    /// Its size.
    pub(crate) size: u64,
    /// Whether it is a new version of a path that had one before (see the module's
    /// documentation).
    pub(crate) edited: bool,
    /// The content the path held before, whose base this one replaces.
    pub(crate) replaces: Option<ContentHash>,
}

/// Files smaller than this keep no base: an edit of them is sent whole.
pub(crate) const MIN_BASE: u64 = 16 * 1024;

/// The budget for bases is never smaller than this: a small task keeps every base (a
/// 100 MiB file alone in its task still has one), while a task over 640 MiB keeps at most
/// the share (a fifth by default: 0.26x was measured with a quarter and a 256 MiB floor on
/// 1 GiB, over the quarter asked for, the file system's own blocks counted).
pub(crate) const BUDGET_FLOOR: u64 = 128 * 1024 * 1024;

/// The budget for bases: `share` percent of `synced` bytes, at least [`BUDGET_FLOOR`];
/// none at all for a share of 0 (every edit then travels through rsync's exchange).
pub(crate) fn budget(synced: u64, share: u8) -> u64 {
    if share == 0 {
        return 0;
    }
    let share = u128::from(synced) * u128::from(share) / 100;
    u64::try_from(share).unwrap_or(u64::MAX).max(BUDGET_FLOOR)
}

/// How many blobs are staged (each an open temporary file) before one flush.
const BATCH: usize = 64;

/// The thread that keeps owed blobs.
pub(crate) struct Keeper {
    tx: Sender<(Vec<Owed>, u64)>,
}

impl Keeper {
    /// Start the thread; it ends when the keeper is dropped and its work is done.
    pub(crate) fn start(blobs: Blobs) -> Keeper {
        let (tx, rx) = channel::<(Vec<Owed>, u64)>();
        std::thread::Builder::new()
            .name("qsync-keeper".into())
            .spawn(move || {
                for (owed, budget) in rx {
                    let owed: Vec<Owed> = owed.into_iter().filter(|o| o.size >= MIN_BASE).collect();
                    if owed.is_empty() {
                        continue;
                    }
                    let mut room = match Room::measure(&blobs, budget) {
                        Ok(room) => room,
                        Err(e) => {
                            tracing::warn!(error = %e, "could not measure the blobs; none kept");
                            continue;
                        }
                    };
                    for batch in owed.chunks(BATCH) {
                        keep(&blobs, &mut room, batch);
                    }
                }
            })
            .map_or_else(
                |e| tracing::warn!(error = %e, "could not start the blob keeper; received files will not be kept as blobs"),
                |_| (),
            );
        Keeper { tx }
    }

    /// Keep these blobs, in the background, all bases within `budget` bytes.
    pub(crate) fn keep(&self, owed: Vec<Owed>, budget: u64) {
        if !owed.is_empty() {
            let _ = self.tx.send((owed, budget));
        }
    }
}

/// The room left for bases, and which to evict first.
struct Room {
    budget: u64,
    used: u64,
    /// Stored blobs, kept longest ago first (evicted in that order).
    oldest: std::collections::VecDeque<qsync_store::StoredBlob>,
}

impl Room {
    fn measure(blobs: &Blobs, budget: u64) -> Result<Self, qsync_store::StoreError> {
        let mut stored = blobs.stored()?;
        stored.sort_by_key(|b| b.kept);
        Ok(Self {
            budget,
            used: stored.iter().map(|b| b.size).sum(),
            oldest: stored.into(),
        })
    }

    /// Whether `o`'s base may be kept, evicting older ones for an edited file.
    fn make(&mut self, blobs: &Blobs, o: &Owed) -> bool {
        if o.size > self.budget {
            return false;
        }
        while self.used + o.size > self.budget {
            if !o.edited {
                return false;
            }
            let Some(old) = self.oldest.pop_front() else {
                return false;
            };
            match blobs.evict(&old.hash) {
                Ok(()) => self.used = self.used.saturating_sub(old.size),
                Err(e) => {
                    tracing::debug!(error = %e, "could not evict a blob");
                    return false;
                }
            }
        }
        self.used += o.size;
        true
    }
}

/// Stage the blobs of `owed` whose files still hold what was received, make them durable
/// together, then name them. A blob is a reflink of the file where the file systems allow
/// it (see [`Blobs::stage_clone`]): it costs no space then, so it takes nothing from the
/// budget; otherwise a copy, within the budget.
fn keep(blobs: &Blobs, room: &mut Room, owed: &[Owed]) {
    // Each staged blob with the base it replaces, if that goes once it is kept.
    let mut staged = Vec::with_capacity(owed.len());
    for o in owed {
        if blobs.contains(&o.hash) {
            continue;
        }
        let Ok(file) = TaskRoot::open(&o.root).and_then(|r| r.open_file(&o.path)) else {
            continue;
        };
        let (kept, cloned) = match blobs.stage_clone(&file) {
            Ok(Some(clone)) => (Ok(clone), true),
            Ok(None) if room.make(blobs, o) => (blobs.stage(&file), false),
            Ok(None) => continue,
            Err(e) => (Err(e), false),
        };
        match kept {
            Ok((hash, Some(blob))) if hash == o.hash => {
                // A reflinked base is outside the budget: the one it replaces goes once
                // it is kept (no longer shared with the file, it would cost its whole size).
                let replaced = o.replaces.filter(|old| cloned && *old != hash);
                staged.push((blob, replaced));
            }
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, path = %o.path, "could not keep a blob")
            }
        }
    }
    if staged.is_empty() {
        return;
    }
    let files: Vec<&std::fs::File> = staged.iter().map(|(b, _)| b.file()).collect();
    let synced = qsync_store::direct::sync_each(&files);
    for ((blob, replaced), synced) in staged.into_iter().zip(synced) {
        // A blob not durable is not named (its temporary file goes with it).
        let kept = match synced {
            Ok(()) => blob.publish().map_err(|e| e.to_string()),
            Err(e) => Err(format!("could not make it durable: {e}")),
        };
        if let Err(e) = kept {
            tracing::warn!(error = %e, "could not keep a blob");
            continue;
        }
        if let Some(old) = replaced {
            if let Err(e) = blobs.evict(&old) {
                tracing::debug!(error = %e, "could not evict a replaced blob");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn owed(size: u64, edited: bool) -> Owed {
        Owed {
            root: PathBuf::new(),
            path: RelPath::new("f").unwrap(),
            hash: ContentHash::of(b"unused"),
            size,
            edited,
            replaces: None,
        }
    }

    #[test]
    fn first_versions_only_fit_and_edited_files_evict_the_oldest_bases() {
        let dir = tempfile::tempdir().unwrap();
        let store = qsync_store::Store::open(dir.path()).unwrap();
        let blobs = store.blobs();
        let kept: Vec<ContentHash> = (0..3u8)
            .map(|i| {
                let hash = blobs.put(&[i; 20 * 1024][..]).unwrap();
                // Kept a second apart, the first longest ago.
                let at = std::time::SystemTime::UNIX_EPOCH
                    + std::time::Duration::from_secs(1_000 + u64::from(i));
                let file = std::fs::File::options()
                    .write(true)
                    .open(blobs.path(&hash))
                    .unwrap();
                file.set_modified(at).unwrap();
                hash
            })
            .collect();
        let mut room = Room::measure(blobs, 70 * 1024).unwrap();
        assert_eq!(room.used, 60 * 1024);
        // A new file's base does not fit: nothing is evicted for it.
        assert!(!room.make(blobs, &owed(20 * 1024, false)));
        assert!(kept.iter().all(|h| blobs.contains(h)));
        // An edited file's does, in place of the base kept longest ago.
        assert!(room.make(blobs, &owed(20 * 1024, true)));
        assert!(!blobs.contains(&kept[0]));
        assert!(blobs.contains(&kept[1]) && blobs.contains(&kept[2]));
        // Larger than the whole budget: never, and nothing is evicted for it.
        assert!(!room.make(blobs, &owed(71 * 1024, true)));
        assert!(blobs.contains(&kept[1]));
    }

    #[test]
    fn the_budget_is_a_share_of_the_synced_data_with_a_floor() {
        assert_eq!(budget(0, 20), BUDGET_FLOOR);
        assert_eq!(budget(5 * BUDGET_FLOOR, 20), BUDGET_FLOOR);
        assert_eq!(budget(40 << 30, 20), 8 << 30);
        assert_eq!(budget(40 << 30, 0), 0, "a share of 0 keeps no base");
    }
}
