//! Streamed walks: a folder's entries handed over in bounded chunks while the walk is
//! still going, so the first files of a folder of a million are recorded and sent within
//! the first second, and what the walk holds stays bounded by the chunks in flight, not by
//! the folder's size.
//!
//! A walk ([`WalkPlan::run`]) runs on its own threads while the index lives on another, so
//! what it found may be stale by the time it is folded in. [`fold_walked`] therefore looks
//! at each path again (a stat, no read): an entry whose inode, status-change time, size
//! and mtime are still those the walk saw is taken with the walk's hash; any other is
//! taken as a stat shows it now, or, a file whose content must be read again, handed
//! back to be hashed away from the index (see `hashing.rs`). Paths the index knew under
//! the walk's start that the walk did not find are named at its end ([`WalkEnd::unseen`])
//! and looked at again ([`look_again`]); a walk cut short (an error, or stopped) says
//! nothing of what it did not reach, so nothing is taken for deleted then.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ignore::{WalkBuilder, WalkState};
use qsync_base::{ContentHash, EntryKind, FileEntry, RelPath};

use crate::hashing::{hash_now, look, Folded, Look};
use crate::scan::{ctime_ns, entry_from, report_unsupported, Filter};
use crate::{Index, LocalEvent, WatchError};

/// A chunk is handed over once it holds this many entries...
pub const CHUNK_ENTRIES: usize = 256;
/// ...or once its first entry has waited this long (the first files of a walk of large
/// files go out while the rest are still being hashed).
pub const CHUNK_AGE: Duration = Duration::from_millis(20);

/// One entry a walk found, with what its stat said beyond the entry: enough to tell later
/// whether the path still holds what was hashed.
#[derive(Debug, Clone)]
pub struct Walked {
    /// What the walk found.
    pub entry: FileEntry,
    ino: u64,
    ctime_ns: i64,
}

impl Walked {
    /// The entry of `path`, whose stat is `meta`, its content hashed unless the hash of
    /// `previous` may be reused, with what the stat said beyond it: for a walk's threads
    /// and hashing threads, never for the index's. `None` if it is not synced (a FIFO) or
    /// vanished while it was read.
    pub(crate) fn read(
        root: &Path,
        path: RelPath,
        meta: &Metadata,
        previous: Option<&FileEntry>,
    ) -> Result<Option<Self>, WatchError> {
        Ok(entry_from(root, path, meta, previous)?.map(|entry| Walked {
            entry,
            ino: meta.ino(),
            ctime_ns: ctime_ns(meta),
        }))
    }

    /// Whether `meta` (a fresh stat of the path) shows the very state the walk saw.
    pub(crate) fn still(&self, meta: &Metadata) -> bool {
        let kind_matches = match self.entry.kind {
            EntryKind::File => meta.file_type().is_file(),
            EntryKind::Folder => meta.file_type().is_dir(),
            EntryKind::Symlink => meta.file_type().is_symlink(),
        };
        kind_matches
            && meta.ino() == self.ino
            && ctime_ns(meta) == self.ctime_ns
            && (self.entry.kind == EntryKind::Folder || meta.len() == self.entry.size)
            && crate::scan::mtime_ns(meta) == self.entry.mtime_ns
    }
}

/// What the index knew of one path when the walk was planned; `seen` once the walk finds it.
/// A whole walk holds one per path of the folder, beside the index: only what a file's
/// hash may be reused by is kept (the path is the map's key; a copy of the whole entry
/// made the plan of a rescan of 300,000 files 59 MB).
#[derive(Debug)]
struct Known {
    /// What its entry says of a file (for the hash to reuse); `None` for a folder, a link,
    /// or a write the engine announced only.
    file: Option<KnownFile>,
    is_folder: bool,
    seen: AtomicBool,
}

/// What a file's entry says its content is, as of when.
#[derive(Debug, Clone, Copy)]
struct KnownFile {
    size: u64,
    mtime_ns: i64,
    hash: ContentHash,
}

impl Known {
    fn entry(e: &FileEntry) -> Self {
        let file = match (e.kind, e.hash) {
            (EntryKind::File, Some(hash)) => Some(KnownFile {
                size: e.size,
                mtime_ns: e.mtime_ns,
                hash,
            }),
            _ => None,
        };
        Self {
            is_folder: e.kind == EntryKind::Folder,
            file,
            seen: AtomicBool::new(false),
        }
    }

    /// The entry a hash may be reused from (see [`crate::reusable_hash`]), at `path`.
    fn previous(&self, path: &RelPath) -> Option<FileEntry> {
        self.file.map(|f| FileEntry {
            path: path.clone(),
            kind: EntryKind::File,
            size: f.size,
            mtime_ns: f.mtime_ns,
            hash: Some(f.hash),
            mode: 0,
        })
    }
}

/// A walk to make: where it starts, which paths it syncs, and what the index held there.
#[derive(Debug)]
pub struct WalkPlan {
    start: Option<RelPath>,
    filter: Filter,
    known: HashMap<RelPath, Known>,
}

/// How a complete walk ended.
#[derive(Debug, Clone, Default)]
pub struct WalkEnd {
    /// Paths the index held under the start (or the engine said it would write there) that
    /// the walk did not find: gone, most likely; [`look_again`] says.
    pub unseen: Vec<RelPath>,
    /// Paths left out because QSync cannot carry their names (each logged).
    pub unsupported: Vec<PathBuf>,
    /// How many entries the walk found.
    pub found: u64,
}

impl WalkPlan {
    /// A walk of `start` (`None`: the whole root) as `index` knows it now.
    pub fn new(index: &Index, start: Option<&RelPath>, filter: Filter) -> Self {
        let mut known: HashMap<RelPath, Known> = index
            .entries_under(start)
            .map(|e| (e.path.clone(), Known::entry(e)))
            .collect();
        for (path, state) in index.expected_under(start) {
            known.entry(path.clone()).or_insert_with(|| Known {
                file: None,
                is_folder: state.is_some_and(|e| e.kind == EntryKind::Folder),
                seen: AtomicBool::new(false),
            });
        }
        Self {
            start: start.cloned(),
            filter,
            known,
        }
    }

    /// A walk of the whole root with `previous` entries' hashes to reuse.
    pub(crate) fn of_root(previous: &HashMap<RelPath, FileEntry>, filter: Filter) -> Self {
        let known = previous
            .iter()
            .map(|(path, e)| (path.clone(), Known::entry(e)))
            .collect();
        Self {
            start: None,
            filter,
            known,
        }
    }

    /// Where the walk starts (`None`: the root).
    pub fn start(&self) -> Option<&RelPath> {
        self.start.as_ref()
    }

    /// Whether this walk also covers everything `other` would walk.
    pub fn covers(&self, other: &WalkPlan) -> bool {
        match (&self.start, &other.start) {
            (None, _) => true,
            (Some(_), None) => false,
            (Some(mine), Some(theirs)) => theirs.starts_with(mine),
        }
    }

    /// Walk the task's `root` (in parallel), handing entries to `sink` in chunks (see
    /// [`CHUNK_ENTRIES`], [`CHUNK_AGE`]); `sink` may block (to bound what is in flight) and
    /// returns `false` to stop the walk ([`WatchError::Stopped`]). Hashes of known entries
    /// are reused when size and mtime are unchanged and the file has settled.
    pub fn run(
        self,
        root: &Path,
        sink: &(dyn Fn(Vec<Walked>) -> bool + Sync),
    ) -> Result<WalkEnd, WatchError> {
        let start = self
            .start
            .as_ref()
            .map_or_else(|| root.to_owned(), |p| p.to_local(root));
        // A folder that became a link (or sits under one) since the plan was made is not
        // walked: the walk would list what the link points to as the task's. Nothing found
        // then, so what the index knew there is looked at again.
        if let Some(folder) = &self.start {
            if !real_folder(root, Some(folder)) {
                return Ok(self.end(Vec::new(), 0));
            }
        }
        let skipped: Arc<Mutex<Vec<PathBuf>>> = Arc::new(Mutex::new(Vec::new()));
        let chunk: Mutex<(Vec<Walked>, Option<Instant>)> = Mutex::new((Vec::new(), None));
        let first_error: Mutex<Option<WatchError>> = Mutex::new(None);
        let stopped = AtomicBool::new(false);
        let found = std::sync::atomic::AtomicU64::new(0);
        let walk_filter = self.filter.clone();
        let walk_root = root.to_owned();
        let walk_skipped = Arc::clone(&skipped);
        let known = &self.known;
        // Hand the chunk over if it is due (or `all`). Under the chunk's lock, so chunks
        // arrive in the order their entries were found (a folder before what it holds);
        // `sink` waiting makes the walk's threads wait too.
        let hand_over = |slot: &mut (Vec<Walked>, Option<Instant>), all: bool| -> bool {
            let due =
                slot.0.len() >= CHUNK_ENTRIES || slot.1.is_some_and(|t| t.elapsed() >= CHUNK_AGE);
            if (all || due) && !slot.0.is_empty() {
                slot.1 = None;
                if !sink(std::mem::take(&mut slot.0)) {
                    stopped.store(true, Ordering::Relaxed);
                    return false;
                }
            }
            true
        };
        WalkBuilder::new(&start)
            .standard_filters(false)
            .follow_links(false)
            .threads(std::thread::available_parallelism().map_or(2, |n| n.get()))
            .filter_entry(move |entry| {
                let is_dir = entry.file_type().is_some_and(|t| t.is_dir());
                match RelPath::from_local(&walk_root, entry.path()) {
                    Ok(path) => walk_filter.includes(&path, is_dir),
                    Err(_) if entry.path() == walk_root => true,
                    // A name QSync cannot carry: reported, and skipped with what is under it.
                    Err(_) => {
                        report_unsupported(entry.path());
                        if let Ok(mut v) = walk_skipped.lock() {
                            v.push(entry.path().to_owned());
                        }
                        false
                    }
                }
            })
            .build_parallel()
            .run(|| {
                Box::new(|result| {
                    if stopped.load(Ordering::Relaxed) {
                        return WalkState::Quit;
                    }
                    let outcome = match result {
                        Ok(entry) => match RelPath::from_local(root, entry.path()) {
                            // The root itself (names QSync cannot carry were filtered out).
                            Err(_) => Ok(None),
                            Ok(path) => match entry.metadata() {
                                Ok(meta) => {
                                    let prev = known.get(&path);
                                    let previous = prev.and_then(|k| k.previous(&path));
                                    let found = Walked::read(root, path, &meta, previous.as_ref());
                                    // Seen only if there is an entry: a path that turned
                                    // into a FIFO, or vanished while hashed, is looked at
                                    // again at the end (gone, for the index).
                                    if let (Some(k), Ok(Some(_))) = (prev, &found) {
                                        k.seen.store(true, Ordering::Relaxed);
                                    }
                                    found
                                }
                                Err(e) if vanished(&e) => Ok(None),
                                Err(e) => Err(WatchError::io(
                                    "inspect",
                                    entry.path(),
                                    std::io::Error::other(e.to_string()),
                                )),
                            },
                        },
                        Err(e) if vanished(&e) => Ok(None),
                        Err(e) => Err(WatchError::io(
                            "walk",
                            &start,
                            std::io::Error::other(e.to_string()),
                        )),
                    };
                    match outcome {
                        Ok(Some(walked)) => {
                            found.fetch_add(1, Ordering::Relaxed);
                            let going = match chunk.lock() {
                                Ok(mut slot) => {
                                    slot.0.push(walked);
                                    slot.1.get_or_insert_with(Instant::now);
                                    hand_over(&mut slot, false)
                                }
                                Err(_) => false,
                            };
                            if going {
                                WalkState::Continue
                            } else {
                                WalkState::Quit
                            }
                        }
                        Ok(None) => WalkState::Continue,
                        Err(e) => {
                            if let Ok(mut slot) = first_error.lock() {
                                slot.get_or_insert(e);
                            }
                            WalkState::Quit
                        }
                    }
                })
            });
        // What was found before an error still holds: handed over, then the error.
        let handed = !stopped.load(Ordering::Relaxed)
            && chunk
                .lock()
                .map(|mut slot| hand_over(&mut slot, true))
                .unwrap_or(false);
        if let Some(e) = first_error.into_inner().ok().flatten() {
            return Err(e);
        }
        if !handed {
            return Err(WatchError::Stopped);
        }
        let mut unsupported = skipped
            .lock()
            .map(|mut v| std::mem::take(&mut *v))
            .unwrap_or_default();
        unsupported.sort();
        Ok(self.end(unsupported, found.into_inner()))
    }

    /// The end of a whole walk: what it did not find, among what was known.
    fn end(self, unsupported: Vec<PathBuf>, found: u64) -> WalkEnd {
        // Paths excluded by `.qsyncignore` are skipped by the walk: an ignored path stops
        // syncing, it is never taken for deleted.
        let filter = &self.filter;
        let mut unseen: Vec<RelPath> = self
            .known
            .into_iter()
            .filter(|(path, k)| {
                !k.seen.load(Ordering::Relaxed) && filter.includes(path, k.is_folder)
            })
            .map(|(path, _)| path)
            .collect();
        unseen.sort();
        WalkEnd {
            unseen,
            unsupported,
            found,
        }
    }
}

/// Whether `folder` (`None`: the root) is a folder of the task reached through folders
/// only: no component of it is a link.
pub(crate) fn real_folder(root: &Path, folder: Option<&RelPath>) -> bool {
    let Some(folder) = folder else {
        return true;
    };
    let mut at = root.to_owned();
    folder.as_str().split('/').all(|name| {
        at.push(name);
        fs::symlink_metadata(&at).is_ok_and(|m| m.is_dir())
    })
}

fn vanished(e: &ignore::Error) -> bool {
    e.io_error()
        .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
}

/// Fold a chunk of a walk into `index`. Each path is looked at again first (see the
/// module's documentation), without reading a file: one that changed since the walk saw
/// it and must be hashed again comes back in [`Folded::to_hash`]. One that cannot be
/// looked at is left out (logged), not the chunk. `filter` is the task's filter now: a
/// path `.qsyncignore` came to exclude while the walk went on is left out too.
pub fn fold_walked(root: &Path, index: &mut Index, filter: &Filter, chunk: Vec<Walked>) -> Folded {
    let mut parents = Parents::default();
    let mut observed = Vec::with_capacity(chunk.len());
    let mut to_hash = Vec::new();
    for walked in chunk {
        let path = walked.entry.path.clone();
        let is_folder = walked.entry.kind == EntryKind::Folder;
        if !filter.includes(&path, is_folder) || !parents.real(root, &path) {
            continue;
        }
        match look(root, &path, Some(walked), index) {
            Ok(Look::Now(state)) => observed.push((path, state)),
            Ok(Look::Hash(file)) => to_hash.push(file),
            Err(e) => tracing::warn!(%path, error = %e, "could not look at a path found by a walk"),
        }
    }
    Folded::observe(index, &[], observed, to_hash)
}

/// Look at `paths` on disk now and fold what is there into `index` (for a walk's
/// [`WalkEnd::unseen`]); a file to read comes back in [`Folded::to_hash`]. A path that
/// cannot be looked at is left out (logged), and so is one `filter` (the task's filter
/// now) excludes: never taken for deleted. A path whose folder is now a link is taken as
/// gone: what is there is not the task's.
pub fn look_again(root: &Path, index: &mut Index, filter: &Filter, paths: Vec<RelPath>) -> Folded {
    let mut parents = Parents::default();
    let mut observed = Vec::with_capacity(paths.len());
    let mut to_hash = Vec::new();
    for path in paths {
        let known_folder = index
            .get(&path)
            .is_some_and(|e| e.kind == EntryKind::Folder);
        if !filter.includes(&path, known_folder) {
            continue;
        }
        if !parents.real(root, &path) {
            observed.push((path, None));
            continue;
        }
        match look(root, &path, None, index) {
            Ok(Look::Now(state)) => observed.push((path, state)),
            Ok(Look::Hash(file)) => to_hash.push(file),
            Err(e) => tracing::warn!(%path, error = %e, "could not look at a path again"),
        }
    }
    Folded::observe(index, &[], observed, to_hash)
}

/// Which folders were found real (see [`real_folder`]), remembered for one chunk.
#[derive(Default)]
pub(crate) struct Parents(HashMap<RelPath, bool>);

impl Parents {
    /// Whether the folder holding `path` is a real folder of the task.
    pub(crate) fn real(&mut self, root: &Path, path: &RelPath) -> bool {
        let Some(parent) = path.parent() else {
            return true;
        };
        if let Some(real) = self.0.get(&parent) {
            return *real;
        }
        let real = real_folder(root, Some(&parent));
        self.0.insert(parent, real);
        real
    }
}

/// Make the walk of `plan` here and now, folding everything into `index`: for callers
/// with no thread of their own to walk on (and tests). Returns the events and the end.
pub fn walk_now(
    root: &Path,
    index: &mut Index,
    plan: WalkPlan,
) -> Result<(Vec<LocalEvent>, WalkEnd), WatchError> {
    let chunks = Mutex::new(Vec::new());
    let end = plan.run(root, &|chunk| {
        if let Ok(mut chunks) = chunks.lock() {
            chunks.push(chunk);
        }
        true
    })?;
    let filter = Filter::for_root(root)?;
    let mut events = Vec::new();
    let mut to_hash = Vec::new();
    for chunk in chunks.into_inner().unwrap_or_default() {
        let folded = fold_walked(root, index, &filter, chunk);
        events.extend(folded.events);
        to_hash.extend(folded.to_hash);
    }
    let folded = look_again(root, index, &filter, end.unseen.clone());
    events.extend(folded.events);
    to_hash.extend(folded.to_hash);
    events.extend(hash_now(root, index, &filter, to_hash));
    Ok((events, end))
}
