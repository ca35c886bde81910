//! A synced folder as the sync driver keeps it: where it is, what its index says it holds
//! (the watcher's entries, which placements keep up to date), the contents it has held
//! (the bases a peer of its task may ask a patch from), whether links out of it are
//! allowed, the received changes it does not take (for `status`), and the rules of its
//! `.qsyncignore` (a received change of a path they exclude is not taken).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;

use qsync_base::{ContentHash, EntryKind, RelPath};
use qsync_core::{Input, PlaceOutcome};
use qsync_watch::{Filter, Index, IGNORE_FILE};

use super::held::Held;
use super::not_synced::NotSynced;

/// What says a file changed: its inode, size, and modification and change times.
type Stamp = (u64, u64, i64, i64, i64, i64);

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
    /// Send-only: the changes of other devices are not applied here (every fetch and
    /// placement is answered as excluded: the core keeps their versions as rivals).
    pub(crate) send_only: bool,
    /// The cap of its versions when files that received changes delete or replace are
    /// kept as versions (`None`: its policy is `off`).
    pub(crate) versions_cap: Option<u64>,
    /// Received changes the folder does not take (links out of it), for `status`.
    pub(crate) not_synced: NotSynced,
    /// The folder's `.qsyncignore` rules, read again when the file changes (its inode,
    /// size and times, as last read).
    rules: Option<(Option<Stamp>, Filter)>,
    /// Whether the file's stamp was looked at in this round of the driver already (see
    /// [`TaskFolder::new_round`]).
    rules_looked: bool,
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
            send_only: false,
            versions_cap: None,
            not_synced: NotSynced::default(),
            rules: None,
            rules_looked: false,
        }
    }

    /// Whether the folder's rules (its `.qsyncignore` now) exclude `path`: a received
    /// change of it is not taken (neither placed nor fetched), as the watcher does not
    /// send its own. Rules that cannot be read exclude nothing.
    pub(crate) fn excludes(&mut self, path: &RelPath, is_folder: bool) -> bool {
        if std::mem::replace(&mut self.rules_looked, true) {
            return self
                .rules
                .as_ref()
                .is_some_and(|(_, filter)| !filter.includes(path, is_folder));
        }
        let stamp = std::fs::symlink_metadata(self.root.join(IGNORE_FILE))
            .ok()
            .map(|m| {
                (
                    m.ino(),
                    m.len(),
                    m.mtime(),
                    m.mtime_nsec(),
                    m.ctime(),
                    m.ctime_nsec(),
                )
            });
        let stale = self.rules.as_ref().is_none_or(|(read, _)| *read != stamp);
        if stale {
            match Filter::for_root(&self.root) {
                Ok(filter) => self.rules = Some((stamp, filter)),
                Err(_) => return false,
            }
        }
        self.rules
            .as_ref()
            .is_some_and(|(_, filter)| !filter.includes(path, is_folder))
    }

    /// A new round of the driver (a batch of inputs and the orders they gave): the rules'
    /// file is looked at again at the next [`TaskFolder::excludes`]. A stat of it for each
    /// order (a fetch and a placement per file received) was a tenth of the receiver's
    /// system calls on a drop of many small files; a round is the time one batch takes.
    pub(crate) fn new_round(&mut self) {
        self.rules_looked = false;
    }

    /// The size of the regular file at `path` if its content is `hash`: the only content
    /// this device serves (not an ignored path, a temporary file, or a guess).
    pub(crate) fn announced(&self, path: &RelPath, hash: &ContentHash) -> Option<u64> {
        self.index
            .get(path)
            .and_then(|e| (e.kind == EntryKind::File && e.hash == Some(*hash)).then_some(e.size))
    }
}

/// The task whose rules an input says changed, if it does: its `.qsyncignore` edited here
/// (observed) or placed from a peer. What they excluded is then decided again
/// (`Input::RulesChanged`).
pub(crate) fn rules_changed(input: &Input) -> Option<Input> {
    let task = match input {
        Input::Observed { task, path, .. } if path.as_str() == IGNORE_FILE => task,
        Input::Placed {
            task,
            path,
            outcome: PlaceOutcome::Done,
        } if path.as_str() == IGNORE_FILE => task,
        _ => return None,
    };
    Some(Input::RulesChanged { task: *task })
}
