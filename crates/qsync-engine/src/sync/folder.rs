//! A synced folder as the sync driver keeps it: where it is, what its index says it holds
//! (the watcher's entries, which placements keep up to date), the contents it has held
//! (the bases a peer of its task may ask a patch from), whether links out of it are
//! allowed, and the received changes it does not take (for `status`).

use std::path::PathBuf;

use qsync_base::{ContentHash, EntryKind, RelPath};
use qsync_watch::Index;

use super::held::Held;
use super::not_synced::NotSynced;

/// One task's folder (see the [module documentation](self)).
pub(crate) struct TaskFolder {
    /// Where the folder is.
    pub(crate) root: PathBuf,
    /// What the folder holds, as last seen or placed.
    pub(crate) index: Index,
    /// The contents the task has held: the bases a peer of it may ask a patch from.
    pub(crate) held: Held,
    /// Whether received links may point out of the folder (its person's choice).
    pub(crate) links_out: bool,
    /// Received changes the folder does not take (links out of it), for `status`.
    pub(crate) not_synced: NotSynced,
}

impl TaskFolder {
    /// The folder at `root`, whose index is `index`, which has held the contents `held`
    /// (those recorded for it).
    pub(crate) fn new(
        root: PathBuf,
        index: Index,
        held: impl IntoIterator<Item = ContentHash>,
        links_out: bool,
    ) -> Self {
        Self {
            root,
            index,
            held: Held::new(held),
            links_out,
            not_synced: NotSynced::default(),
        }
    }

    /// The size of the regular file at `path` if its content is `hash`: the only content
    /// this device serves (not an ignored path, a temporary file, or a guess).
    pub(crate) fn announced(&self, path: &RelPath, hash: &ContentHash) -> Option<u64> {
        self.index
            .get(path)
            .and_then(|e| (e.kind == EntryKind::File && e.hash == Some(*hash)).then_some(e.size))
    }
}
