//! When the blobs of new file versions are kept. Each version placed or seen here is
//! owed a copy in the state folder (the base of the patches that carry its next versions,
//! see `keeper.rs`); the copies are handed to the keeper's thread once the daemon is quiet
//! a moment, so that their reading, writing and `syncfs` do not slow a transfer (the copy
//! of a just-saved 100 MiB file slowed the patch of it by half), or once too many are
//! owed, or once the oldest has waited too long.

use std::time::{Duration, Instant};

use qsync_base::{ContentHash, RelPath};
use qsync_store::Blobs;

use crate::keeper::{Keeper, Owed};
use crate::sync::TaskFolder;

/// Received files' blobs are kept once nothing has been received for this long...
const KEEP_AFTER_QUIET: Duration = Duration::from_millis(500);
/// ...or once this many are owed...
const MAX_OWED: usize = 10_000;
/// ...or once the first of them has been owed this long.
const KEEP_AT_MOST_AFTER: Duration = Duration::from_secs(30);

/// The blobs owed and the keeper's thread (see the [module documentation](self)).
pub(super) struct Keeping {
    owed: Vec<Owed>,
    keeper: Keeper,
    /// When a local change was last seen (content moving is the sync driver's to say).
    changed: Instant,
    /// When the oldest of `owed` was owed.
    owed_since: Option<Instant>,
    /// The share of the synced data (percent) the bases may take; 0 keeps none.
    base_share: u8,
}

impl Keeping {
    pub(super) fn new(keeper: Keeper, base_share: u8) -> Self {
        Self {
            owed: Vec::new(),
            keeper,
            changed: Instant::now(),
            owed_since: None,
            base_share,
        }
    }

    /// A local change was seen: it is likely asked for at once, so the keeper waits.
    pub(super) fn changed(&mut self) {
        self.changed = Instant::now();
    }

    /// When the daemon was last busy: a local change, or content moving (`moved`).
    pub(super) fn last_busy(&self, moved: Instant) -> Instant {
        self.changed.max(moved)
    }

    /// A new version of `path` in `folder` (placed or seen), of content `hash` and `size`:
    /// its task holds the content now (a peer of it may ask a patch from it, see
    /// `held.rs`), and a copy of it is owed. `edited`: the file had a version before,
    /// `replaces` if known.
    pub(super) fn version(
        &mut self,
        folder: &mut TaskFolder,
        blobs: &Blobs,
        path: &RelPath,
        (hash, size): (ContentHash, u64),
        (edited, replaces): (bool, Option<ContentHash>),
    ) {
        // A content too small to keep a copy of is never a base, nor looked for to copy
        // (`reuse.rs` searches only larger ones): held, it only cost a `stat` per file at
        // each trim (a tenth of the engine's time on a `task add` of small files).
        if size >= crate::keeper::MIN_BASE {
            folder.held.insert(hash, |h| blobs.contains(h));
        }
        let owed = Owed {
            root: folder.root.clone(),
            path: path.clone(),
            hash,
            size,
            edited,
            replaces,
        };
        self.owe(owed, blobs);
    }

    /// Owe a copy of `owed`'s content, unless it is too small to be worth a patch, or kept
    /// already.
    fn owe(&mut self, owed: Owed, blobs: &Blobs) {
        if self.base_share > 0
            && owed.size >= crate::keeper::MIN_BASE
            && !blobs.contains(&owed.hash)
        {
            self.owed.push(owed);
            self.owed_since.get_or_insert_with(Instant::now);
        }
    }

    /// Whether so many are owed that they are handed over now, quiet or not.
    pub(super) fn too_many(&self) -> bool {
        self.owed.len() >= MAX_OWED
    }

    /// How long until the blobs owed may be kept, if any are (`moved`: when content last
    /// moved; `serving`: whether content is being served, which is looked at again now
    /// and then).
    pub(super) fn wait(&self, moved: Instant, serving: bool) -> Option<Duration> {
        if self.owed.is_empty() {
            return None;
        }
        let left = KEEP_AFTER_QUIET.saturating_sub(self.last_busy(moved).elapsed());
        Some(if serving {
            left.max(Duration::from_millis(100))
        } else {
            left
        })
    }

    /// Whether the daemon has been quiet for [`KEEP_AFTER_QUIET`] (nothing changed or
    /// moved, nothing served), or blobs have been owed for [`KEEP_AT_MOST_AFTER`] (a long
    /// transfer does not keep every later edit from having a base).
    pub(super) fn quiet(&self, moved: Instant, serving: bool) -> bool {
        let quiet = self.last_busy(moved).elapsed() >= KEEP_AFTER_QUIET && !serving;
        quiet
            || self
                .owed_since
                .is_some_and(|t| t.elapsed() >= KEEP_AT_MOST_AFTER)
    }

    /// Hand what is owed to the keeper, with the budget for bases: a share of the data
    /// synced here, the bytes of the files in `sync`'s folders (see
    /// `DaemonConfig::base_share`).
    pub(super) fn keep_owed(&mut self, sync: &crate::sync::SyncDriver) {
        if self.owed.is_empty() {
            return;
        }
        let synced: u64 = sync
            .folders()
            .flat_map(|(_, f)| f.index.entries())
            .filter(|e| e.kind == qsync_base::EntryKind::File)
            .map(|e| e.size)
            .sum();
        let budget = crate::keeper::budget(synced, self.base_share);
        self.owed_since = None;
        self.keeper.keep(std::mem::take(&mut self.owed), budget);
    }
}
