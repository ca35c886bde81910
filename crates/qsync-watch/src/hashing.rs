//! Hashing away from the index. Reading a file to know its hash takes as long as the file
//! is large (a sparse file of 30 GiB reads as 30 GiB of zeros: half a minute), so whoever
//! holds the [`Index`] only stats. A look at a path
//! ([`observe_deferred`](crate::observe_deferred), [`fold_walked`](crate::fold_walked),
//! [`look_again`](crate::look_again)) folds in what a stat settles (a folder, a link, a
//! file whose recorded hash still stands) and hands back a [`ToHash`] for each file that
//! must be read; until it is folded in, the index keeps what it knew of that path.
//!
//! [`ToHash::hash`] reads the file on any thread, as a walk does, and its [`Hashed`]
//! result goes back to the index's owner, who folds it in with [`fold_hashed`]. The fold
//! looks at the path again, as for a walk's entries: the hash is taken only if the path
//! still is the very file that was hashed (same inode, status-change time, size and
//! mtime). A file written while it was hashed is never recorded with the hash of what it
//! held before: it is handed back to be hashed again ([`HASH_TRIES`] times in a row at
//! most, then left to the watcher's report of its next change).
//!
//! A rename the system reported onto a file to hash travels with it: the old path is
//! folded in together with the new one, so the move is still told as a rename.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::path::Path;

use qsync_base::{FileEntry, RelPath};

use crate::scan::{seen_from, Filter, Seen};
use crate::stream::{real_folder, Parents, Walked};
use crate::{Index, LocalEvent, WatchError};

/// How many times in a row a file is hashed when it is found changed each time.
pub const HASH_TRIES: u32 = 3;

/// A regular file whose content must be read before it can be folded into the index.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToHash {
    path: RelPath,
    size: u64,
    renamed_from: Option<RelPath>,
    /// How many times it was hashed and found changed since.
    tries: u32,
}

/// What hashing a [`ToHash`] found, to fold in with [`fold_hashed`].
#[derive(Debug)]
pub struct Hashed {
    path: RelPath,
    renamed_from: Option<RelPath>,
    tries: u32,
    /// The file hashed, with the stat taken before it was read; `None` if the path no
    /// longer held a regular file of the task.
    found: Result<Option<Walked>, WatchError>,
}

/// What folding observations into an index gave.
#[derive(Debug, Default)]
#[must_use = "its files to hash are folded in only once hashed"]
pub struct Folded {
    /// The clean events (already in the index).
    pub events: Vec<LocalEvent>,
    /// Files to read before they can be folded in: hash them away from the index's
    /// thread ([`ToHash::hash`]), then fold the results in with [`fold_hashed`].
    pub to_hash: Vec<ToHash>,
}

impl ToHash {
    /// The file, relative to the task's root.
    pub fn path(&self) -> &RelPath {
        &self.path
    }

    /// Its size when it was looked at (a huge file may be hashed apart from the others).
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The same file asked for again before it was hashed: one hash does for both (a
    /// rename either names is kept).
    pub fn merge(&mut self, again: ToHash) {
        self.size = again.size;
        self.tries = self.tries.min(again.tries);
        if again.renamed_from.is_some() {
            self.renamed_from = again.renamed_from;
        }
    }

    /// Read the file under the task's `root` and hash it, on a thread that may take its
    /// time. Never fails: what went wrong is in the result, and logged when folded in.
    pub fn hash(self, root: &Path) -> Hashed {
        let local = self.path.to_local(root);
        // Never read through a link: a folder on the way that became a link since would
        // make this a file outside the task.
        let found = match self.path.parent() {
            Some(parent) if !real_folder(root, Some(&parent)) => Ok(None),
            _ => match fs::symlink_metadata(&local) {
                Ok(meta) => Walked::read(root, self.path.clone(), &meta, None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(WatchError::io("inspect", &local, e)),
            },
        };
        Hashed {
            path: self.path,
            renamed_from: self.renamed_from,
            tries: self.tries,
            found,
        }
    }
}

impl Hashed {
    /// The file that was hashed.
    pub fn path(&self) -> &RelPath {
        &self.path
    }
}

/// What a look at one path gives the index's owner: its state now, or a file to hash.
#[derive(Debug)]
pub(crate) enum Look {
    /// What the path holds now (`None`: nothing that is synced).
    Now(Option<FileEntry>),
    /// A regular file whose content must be read first.
    Hash(ToHash),
}

/// Look at `path` on disk now, without reading a file: `walked` (what a walk or a hashing
/// thread found there) if the path still is exactly that, else what a stat settles, else
/// a file to hash. The index's entry's hash is reused if it may be, and the hash of a file
/// the engine placed if it is still that file ([`Index::placed_hash`]).
pub(crate) fn look(
    root: &Path,
    path: &RelPath,
    walked: Option<Walked>,
    index: &Index,
) -> Result<Look, WatchError> {
    let local = path.to_local(root);
    let meta = match fs::symlink_metadata(&local) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Look::Now(None)),
        Err(e) => return Err(WatchError::io("inspect", &local, e)),
    };
    if let Some(walked) = walked.filter(|w| w.still(&meta)) {
        return Ok(Look::Now(Some(walked.entry)));
    }
    let placed = {
        use std::os::unix::fs::MetadataExt;
        let ctime = crate::scan::ctime_ns(&meta);
        let mtime = crate::scan::mtime_ns(&meta);
        index.placed_hash(path, (meta.dev(), meta.ino()), meta.len(), mtime, ctime)
    };
    Ok(
        match seen_from(root, path.clone(), &meta, index.get(path), placed)? {
            Seen::Entry(entry) => Look::Now(entry),
            Seen::Unhashed(entry) => Look::Hash(ToHash {
                path: entry.path,
                size: entry.size,
                renamed_from: None,
                tries: 0,
            }),
        },
    )
}

impl Folded {
    /// Fold `observed` (and the system's `renames`) into `index`, keeping the files to hash.
    pub(crate) fn observe(
        index: &mut Index,
        renames: &[(RelPath, RelPath)],
        observed: Vec<(RelPath, Option<FileEntry>)>,
        to_hash: Vec<ToHash>,
    ) -> Self {
        Self {
            events: index.observe(renames, observed),
            to_hash,
        }
    }
}

/// Fold what hashing threads found into `index` (see the module's documentation). Each
/// path is looked at again first: one that changed since it was hashed comes back in
/// [`Folded::to_hash`], [`HASH_TRIES`] times at most in a row (a file written all the time
/// is not read over and over: its next change is reported, and it is hashed then). A
/// path whose hashing failed, or that cannot be looked at, is left as the index knows it
/// (logged); so is one `filter` (the task's filter now) excludes. A path whose folder is
/// now a link is taken as gone: what is there is not the task's.
pub fn fold_hashed(root: &Path, index: &mut Index, filter: &Filter, hashed: Vec<Hashed>) -> Folded {
    let mut parents = Parents::default();
    let mut fold = Gathered::default();
    for Hashed {
        path,
        renamed_from,
        tries,
        found,
    } in hashed
    {
        let included = filter.includes(&path, false);
        let now = match found {
            Ok(found) if included && parents.real(root, &path) => look(root, &path, found, index),
            Ok(_) => Ok(Look::Now(None)),
            Err(e) => Err(e),
        };
        match now {
            Ok(Look::Now(_)) if !included => {}
            Ok(Look::Now(state)) => {
                let moved = state.is_some();
                fold.observed.push((path.clone(), state));
                if let (Some(from), true) = (&renamed_from, moved) {
                    fold.renames.push((from.clone(), path));
                }
            }
            Ok(Look::Hash(mut again)) if tries + 1 < HASH_TRIES => {
                again.tries = tries + 1;
                again.renamed_from = renamed_from;
                fold.to_hash.push(again);
                continue;
            }
            Ok(Look::Hash(_)) => {
                tracing::debug!(%path, "a file changed each time it was hashed; it is hashed again at its next change");
            }
            Err(e) => {
                tracing::warn!(%path, error = %e, "could not hash a file; it is looked at again at its next change");
            }
        }
        // The old path of a rename, as it is now (gone, for a rename the index follows).
        if let Some(from) = renamed_from {
            fold.look_at(root, index, from);
        }
    }
    Folded::observe(index, &fold.renames, fold.observed, fold.to_hash)
}

/// What one fold of hashed files gathers.
#[derive(Default)]
struct Gathered {
    observed: Vec<(RelPath, Option<FileEntry>)>,
    renames: Vec<(RelPath, RelPath)>,
    to_hash: Vec<ToHash>,
}

impl Gathered {
    /// Look at `path` as it is now: observed, or a file to hash (left out of this fold).
    fn look_at(&mut self, root: &Path, index: &Index, path: RelPath) {
        match look(root, &path, None, index) {
            Ok(Look::Now(state)) => self.observed.push((path, state)),
            Ok(Look::Hash(file)) => self.to_hash.push(file),
            Err(e) => tracing::warn!(%path, error = %e, "could not look at a renamed path again"),
        }
    }
}

/// Hash `to_hash` here and now and fold the results into `index`, for callers with no
/// thread to hash on (and tests). A file that keeps changing while it is hashed is given
/// [`HASH_TRIES`], then left to its next event. Returns every event.
pub fn hash_now(
    root: &Path,
    index: &mut Index,
    filter: &Filter,
    mut to_hash: Vec<ToHash>,
) -> Vec<LocalEvent> {
    let mut events = Vec::new();
    while !to_hash.is_empty() {
        let hashed = to_hash.into_iter().map(|f| f.hash(root)).collect();
        let folded = fold_hashed(root, index, filter, hashed);
        events.extend(folded.events);
        to_hash = folded.to_hash;
    }
    events
}

/// Each file of `to_hash` the system named as renamed from a path now gone takes that
/// path with it (see the module's documentation): `observed` leaves it out, so that it is
/// folded in with the file once hashed, as a rename.
pub(crate) fn carry_renames(
    renames: &[(RelPath, RelPath)],
    observed: &mut Vec<(RelPath, Option<FileEntry>)>,
    to_hash: &mut [ToHash],
) {
    if renames.is_empty() || to_hash.is_empty() {
        return;
    }
    let mut files: HashMap<RelPath, &mut ToHash> =
        to_hash.iter_mut().map(|f| (f.path.clone(), f)).collect();
    let present: HashSet<&RelPath> = observed
        .iter()
        .filter(|(_, state)| state.is_some())
        .map(|(path, _)| path)
        .collect();
    let mut carried = HashSet::new();
    for (from, to) in renames {
        let Some(file) = files.get_mut(to) else {
            continue;
        };
        if file.renamed_from.is_none() && !present.contains(from) && !carried.contains(from) {
            file.renamed_from = Some(from.clone());
            carried.insert(from.clone());
        }
    }
    observed.retain(|(path, _)| !carried.contains(path));
}
