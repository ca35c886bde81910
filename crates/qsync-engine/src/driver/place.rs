//! Carrying out the core's placements ([`qsync_core::Placement`]) on a real folder: check
//! that the disk holds what the core believes, change it, make it durable, and tell the
//! watcher's index first so that the change is not taken for the person's.
//!
//! All or nothing, as the core expects: each check happens before anything is changed,
//! and a file's new content goes to a temporary name beside the target, is made durable,
//! then renamed over the old one. Placements are made durable in batches ([`Batch`]): one
//! `syncfs` for the content of many files and one for their names, instead of two fsyncs
//! per file. Nothing is ever written through a symlinked folder.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use qsync_base::{ContentHash, EntryKind, FileEntry, RelPath, TaskId, MODE_BITS};
use qsync_core::{PlaceOutcome, Placement, State};
use qsync_watch::{stat_entry, Index};
use tempfile::TempPath;

use crate::fsops::{incoming_file, safe_target};
use crate::EngineError;

/// Where fetched content waits, named by its hash, until a placement uses it.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// The staging folder `dir` (made if missing).
    pub fn open(dir: PathBuf) -> Result<Self, EngineError> {
        fs::create_dir_all(&dir).map_err(|e| EngineError::io("create", &dir, e))?;
        Ok(Self { dir })
    }

    /// Where the content `hash` is (or goes) once fetched and checked.
    pub fn path_of(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(hash.to_hex())
    }

    /// Whether the content `hash` is here.
    pub fn has(&self, hash: &ContentHash) -> bool {
        self.path_of(hash).is_file()
    }

    /// Forget the content `hash` (once placed, or no longer wanted).
    pub fn remove(&self, hash: &ContentHash) {
        let _ = fs::remove_file(self.path_of(hash));
    }
}

/// What is at `path` now, as the core names it (a file's hash reused from the index when
/// its size and time did not change).
pub fn state_at(root: &Path, path: &RelPath, index: &Index) -> Result<State, EngineError> {
    let entry = stat_entry(root, path, index.get(path))?;
    Ok(match entry {
        None => State::Deleted,
        Some(entry) => state_of(root, &entry)?,
    })
}

/// The core's [`State`] of a watcher's entry (a symlink's target is read from disk).
pub fn state_of(root: &Path, entry: &FileEntry) -> Result<State, EngineError> {
    Ok(match entry.kind {
        EntryKind::Folder => State::Folder { mode: entry.mode },
        EntryKind::File => State::File {
            hash: entry
                .hash
                .ok_or_else(|| EngineError::State(format!("{} has no hash", entry.path)))?,
            size: entry.size,
            mode: entry.mode,
        },
        EntryKind::Symlink => {
            let local = entry.path.to_local(root);
            let target =
                fs::read_link(&local).map_err(|e| EngineError::io("read the link", &local, e))?;
            State::Symlink {
                target: target.to_string_lossy().into_owned(),
            }
        }
    })
}

/// The watcher's entry for what a placement leaves at `path`.
pub fn entry_for(path: &RelPath, state: &State, mtime_ns: i64) -> Option<FileEntry> {
    let (kind, size, hash, mode) = match state {
        State::Deleted => return None,
        State::File { hash, size, mode } => (EntryKind::File, *size, Some(*hash), *mode),
        State::Folder { mode } => (EntryKind::Folder, 0, None, *mode),
        State::Symlink { target } => (
            EntryKind::Symlink,
            target.len() as u64,
            Some(ContentHash::of(target.as_bytes())),
            0,
        ),
    };
    Some(FileEntry {
        path: path.clone(),
        kind,
        size,
        mtime_ns,
        hash,
        mode,
    })
}

/// What identifies one version of a path on disk, to notice a change between the check
/// and the change: device, inode, size, modification and change times.
type Fingerprint = (u64, u64, u64, i64, i64, i64, i64);

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).ok()?;
    Some((
        m.dev(),
        m.ino(),
        m.size(),
        m.mtime(),
        m.mtime_nsec(),
        m.ctime(),
        m.ctime_nsec(),
    ))
}

/// A batch of at most this many files...
pub const BATCH_FILES: usize = 64;
/// ...or this many bytes of new content is made durable at once.
pub const BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// Up to this many files are synced one by one; a larger batch syncs its file system once.
const SYNC_ONE_BY_ONE: usize = 4;

/// Placements begun and not yet durable. Each received file costs an fsync of its content
/// and of its folder when placed alone; a batch costs one `syncfs` for all the content
/// and one for all the names (or an fsync each when there are only a few).
///
/// [`Batch::begin`] checks a placement and prepares it: a file's new content is moved (or
/// copied, from another file system) from staging to a temporary name beside its target,
/// given its mode and time; any other change (a removal, a folder, a link, a mode) is made
/// at once. [`Batch::flush`] makes the content durable, checks each target again (an edit
/// saved meanwhile wins: `Diverged`), moves the loser aside, renames, makes the names
/// durable, and only then reports every outcome. So the order the core relies on holds
/// for each file of the batch: durable content, rename, durable names, then the record.
#[derive(Debug, Default)]
pub struct Batch {
    pending: Vec<Pending>,
    /// Folders this batch made (absolute): later placements of the batch may use them as
    /// parents, although the core, not having heard of them yet, asks for them again.
    made: HashSet<PathBuf>,
    /// The task folders involved, and the folders whose names changed.
    roots: BTreeSet<PathBuf>,
    folders: BTreeSet<PathBuf>,
    files: usize,
    bytes: u64,
}

#[derive(Debug)]
struct Pending {
    placement: Placement,
    /// Announced to the watcher's index so far (taken back if the placement fails).
    announced: Vec<RelPath>,
    /// The file's new content, to rename over its target; `None` when the change is made.
    file: Option<PreparedFile>,
}

#[derive(Debug)]
struct PreparedFile {
    temp: TempPath,
    handle: fs::File,
    target: PathBuf,
    seen: Option<Fingerprint>,
    here: State,
    /// Where what is here goes aside, and whether the same copy is there already.
    aside: Option<(RelPath, PathBuf, bool)>,
}

/// What [`Batch::flush`] reports: each placement of the batch and its outcome (an error
/// means the disk may not be what the core believes: look again).
pub type Placed = Vec<(Placement, Result<PlaceOutcome, EngineError>)>;

impl Batch {
    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Enough to flush without waiting for a quiet moment.
    pub fn is_full(&self) -> bool {
        self.files >= BATCH_FILES || self.bytes >= BATCH_BYTES
    }

    /// Check `p` against `root` and prepare or make it (see [`Batch`]). `Some` outcome:
    /// decided now (nothing was changed unless it is `Done`, which only a placement with no
    /// names to make durable gets); `None`: reported by the next [`Batch::flush`].
    pub fn begin(
        &mut self,
        root: &Path,
        staging: &Staging,
        p: &Placement,
        index: &mut Index,
    ) -> Result<Option<PlaceOutcome>, EngineError> {
        let target = safe_target(root, &p.path)?;
        let mut here = state_at(root, &p.path, index)?;
        if here.is_folder() && p.expect == State::Deleted && self.made.contains(&target) {
            // Made by this batch to hold another placement: new to the core still.
            here = State::Deleted;
        }
        if here != p.expect {
            return Ok(Some(PlaceOutcome::Diverged));
        }
        let seen = fingerprint(&target);
        let mut parents = Vec::new();
        for parent in &p.parents {
            let dir = safe_target(root, parent)?;
            if self.made.contains(&dir) {
                continue;
            }
            if fs::symlink_metadata(&dir).is_ok() {
                return Ok(Some(PlaceOutcome::Diverged));
            }
            parents.push((parent, dir));
        }
        let aside = match &p.aside {
            Some(aside) => {
                let aside_target = safe_target(root, aside)?;
                match state_at(root, aside, index)? {
                    State::Deleted => Some((aside.clone(), aside_target, false)),
                    // The same copy made by another device already: only remove ours.
                    there if there == here => Some((aside.clone(), aside_target, true)),
                    _ => return Ok(Some(PlaceOutcome::Diverged)),
                }
            }
            None => None,
        };
        let content_here = here.hash() == p.target.hash() && p.aside.is_none();
        if let State::File { hash, .. } = &p.target {
            if !content_here && !staging.has(hash) {
                return Ok(Some(PlaceOutcome::NoContent));
            }
        }
        let emptying = here.is_folder() && !p.target.is_folder() && p.aside.is_none();
        if emptying && folder_has_entries(&target)? {
            return Ok(Some(PlaceOutcome::NotEmpty));
        }

        let mut pending = Pending {
            placement: p.clone(),
            announced: Vec::new(),
            file: None,
        };
        let result = self.prepare(root, staging, &mut pending, index, parents, &target);
        match result {
            Ok(file) => {
                let parent_dir = target.parent().unwrap_or(root).to_owned();
                self.folders.insert(parent_dir);
                self.roots.insert(root.to_owned());
                match file {
                    Some(mut file) => {
                        file.seen = seen;
                        file.here = here;
                        file.aside = aside;
                        self.files += 1;
                        self.bytes += p.target.size();
                        pending.file = Some(file);
                    }
                    None => {
                        let made = apply_now(p, &target, &here, aside, index, &mut pending);
                        if !matches!(made, Ok(PlaceOutcome::Done)) {
                            withdraw(index, &pending.announced);
                            return made.map(Some);
                        }
                    }
                }
                self.pending.push(pending);
                Ok(None)
            }
            Err(e) => {
                withdraw(index, &pending.announced);
                Err(e)
            }
        }
    }

    /// Make the parents of `pending` and, for new content, its temporary file.
    fn prepare(
        &mut self,
        root: &Path,
        staging: &Staging,
        pending: &mut Pending,
        index: &mut Index,
        parents: Vec<(&RelPath, PathBuf)>,
        target: &Path,
    ) -> Result<Option<PreparedFile>, EngineError> {
        let p = &pending.placement;
        for (parent, dir) in parents {
            let folder = State::Folder { mode: 0o755 };
            index.expect(parent.clone(), entry_for(parent, &folder, p.mtime_ns));
            pending.announced.push(parent.clone());
            fs::create_dir(&dir).map_err(|e| EngineError::io("create the folder", &dir, e))?;
            // create_dir applies the umask: give it exactly the mode announced.
            set_mode(&dir, 0o755)?;
            self.folders.insert(dir.parent().unwrap_or(root).to_owned());
            self.made.insert(dir);
        }
        let State::File { hash, mode, .. } = &p.target else {
            return Ok(None);
        };
        let content_here = p.expect.hash() == Some(*hash) && p.aside.is_none();
        if content_here {
            return Ok(None);
        }
        let (temp, handle) = prepare_file(staging, hash, target, *mode, p.mtime_ns)?;
        Ok(Some(PreparedFile {
            temp,
            handle,
            target: target.to_owned(),
            seen: None,
            here: State::Deleted,
            aside: None,
        }))
    }

    /// Make everything begun durable and report it; see [`Batch`]. `index` finds the
    /// watcher's index of a task in `tasks`.
    pub fn flush<T>(
        &mut self,
        tasks: &mut HashMap<TaskId, T>,
        index: impl Fn(&mut T) -> &mut Index,
    ) -> Placed {
        let batch = std::mem::take(self);
        let mut out: Placed = Vec::with_capacity(batch.pending.len());
        let synced = if batch.files <= SYNC_ONE_BY_ONE {
            batch
                .pending
                .iter()
                .filter_map(|p| p.file.as_ref())
                .try_for_each(|f| {
                    f.handle
                        .sync_all()
                        .map_err(|e| EngineError::io("sync", &f.temp, e))
                })
        } else {
            let roots: Vec<&Path> = batch.roots.iter().map(PathBuf::as_path).collect();
            crate::fsops::sync_file_systems(&roots)
                .map_err(|e| EngineError::io("sync the file system of", roots[0], e))
        };
        let mut folders = batch.folders;
        for mut pending in batch.pending {
            let p = pending.placement.clone();
            let Some(index) = tasks.get_mut(&p.task).map(&index) else {
                continue; // the task is gone: its temporary file goes with `pending`
            };
            let outcome = match (&synced, pending.file.take()) {
                (Err(e), Some(_)) => Err(EngineError::State(e.to_string())),
                (_, Some(file)) => {
                    rename_into_place(&p, file, index, &mut pending.announced, &mut folders)
                }
                (_, None) => Ok(PlaceOutcome::Done),
            };
            if !matches!(outcome, Ok(PlaceOutcome::Done)) {
                withdraw(index, &pending.announced);
            }
            out.push((p, outcome));
        }
        // Names (renames, removals, new entries) are durable before the core records them.
        let names = if folders.len() <= 2 * SYNC_ONE_BY_ONE {
            folders.iter().try_for_each(|folder| {
                match fs::File::open(folder).and_then(|dir| dir.sync_all()) {
                    // Removed by a later placement of the batch: its removal is made
                    // durable with its own parent, which is in the set too.
                    Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                    other => other.map_err(|e| EngineError::io("sync", folder, e)),
                }
            })
        } else {
            let roots: Vec<&Path> = batch.roots.iter().map(PathBuf::as_path).collect();
            crate::fsops::sync_file_systems(&roots)
                .map_err(|e| EngineError::io("sync the file system of", roots[0], e))
        };
        if let Err(e) = names {
            // The changes are made and the index has heard of them: reporting them failed
            // would leave the core expecting what is no longer on disk, for ever. They are
            // reported done; only their durability across a power cut is in doubt.
            tracing::error!(error = %e, "could not make the names of placed changes durable");
        }
        out
    }
}

/// Carry out `p` in the task folder `root` alone, durable when it returns (a batch of one).
pub fn place(
    root: &Path,
    staging: &Staging,
    p: &Placement,
    index: &mut Index,
) -> Result<PlaceOutcome, EngineError> {
    let mut batch = Batch::default();
    if let Some(outcome) = batch.begin(root, staging, p, index)? {
        return Ok(outcome);
    }
    let mut tasks = HashMap::from([(p.task, index)]);
    let mut placed = batch.flush(&mut tasks, |index| &mut **index);
    match placed.pop() {
        Some((_, outcome)) => outcome,
        None => Ok(PlaceOutcome::Diverged),
    }
}

fn withdraw(index: &mut Index, announced: &[RelPath]) {
    for path in announced {
        index.withdraw(path);
    }
}

/// A change with no new content, made at once: announced, the target checked again, the
/// old one moved aside, then removed, made a folder or a link, or given its mode.
fn apply_now(
    p: &Placement,
    target: &Path,
    here: &State,
    aside: Option<(RelPath, PathBuf, bool)>,
    index: &mut Index,
    pending: &mut Pending,
) -> Result<PlaceOutcome, EngineError> {
    let seen = fingerprint(target);
    if let Some((aside, _, _)) = &aside {
        index.expect(aside.clone(), entry_for(aside, here, p.mtime_ns));
        pending.announced.push(aside.clone());
    }
    announce(index, p, &mut pending.announced);
    if fingerprint(target) != seen {
        return Ok(PlaceOutcome::Diverged);
    }
    if let Some((_, aside_target, already)) = &aside {
        move_aside(target, aside_target, *already)?;
    }
    match &p.target {
        State::Deleted => remove_one(target)?,
        State::File { mode, .. } => set_mode(target, *mode)?,
        State::Folder { mode } => {
            if !matches!(fs::symlink_metadata(target), Ok(m) if m.is_dir()) {
                remove_one(target)?;
                fs::create_dir(target)
                    .map_err(|e| EngineError::io("create the folder", target, e))?;
            }
            set_mode(target, *mode)?;
        }
        State::Symlink { target: to } => {
            remove_one(target)?;
            std::os::unix::fs::symlink(to, target)
                .map_err(|e| EngineError::io("create the link", target, e))?;
        }
    }
    Ok(PlaceOutcome::Done)
}

/// The index hears what `p` leaves at its path.
fn announce(index: &mut Index, p: &Placement, announced: &mut Vec<RelPath>) {
    match entry_for(&p.path, &p.target, p.mtime_ns) {
        Some(entry) => index.expect(p.path.clone(), Some(entry)),
        None => index.expect_removed(p.path.clone()),
    }
    announced.push(p.path.clone());
}

/// The flush of one prepared file (its content durable already): announced, checked
/// again, the old one moved aside, renamed into place.
fn rename_into_place(
    p: &Placement,
    file: PreparedFile,
    index: &mut Index,
    announced: &mut Vec<RelPath>,
    folders: &mut BTreeSet<PathBuf>,
) -> Result<PlaceOutcome, EngineError> {
    let target = &file.target;
    if let Some((aside, aside_target, _)) = &file.aside {
        index.expect(aside.clone(), entry_for(aside, &file.here, p.mtime_ns));
        announced.push(aside.clone());
        folders.insert(aside_target.parent().unwrap_or(target).to_owned());
    }
    announce(index, p, announced);
    if fingerprint(target) != file.seen {
        return Ok(PlaceOutcome::Diverged);
    }
    if let Some((_, aside_target, already)) = &file.aside {
        move_aside(target, aside_target, *already)?;
    }
    if matches!(fs::symlink_metadata(target), Ok(m) if m.is_dir()) {
        remove_one(target)?;
    }
    file.temp
        .persist(target)
        .map_err(|e| EngineError::io("rename into place", target, e.error))?;
    Ok(PlaceOutcome::Done)
}

/// What is at `target` goes to `aside` (never over something there: a copy made meanwhile
/// stays), or is removed when the same copy is there already.
fn move_aside(target: &Path, aside: &Path, already: bool) -> Result<(), EngineError> {
    if already {
        return remove_one(target);
    }
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    match renameat_with(CWD, target, CWD, aside, RenameFlags::NOREPLACE) {
        // A file system without the flag: checked just before, as well as it can be.
        Err(rustix::io::Errno::INVAL) if fs::symlink_metadata(aside).is_err() => {
            fs::rename(target, aside)
        }
        other => other.map_err(io::Error::from),
    }
    .map_err(|e| EngineError::io("move aside", target, e))
}

fn folder_has_entries(dir: &Path) -> Result<bool, EngineError> {
    let mut entries = fs::read_dir(dir).map_err(|e| EngineError::io("read the folder", dir, e))?;
    Ok(entries.next().is_some())
}

/// Remove a file, a symlink or an empty folder; nothing there is fine.
fn remove_one(target: &Path) -> Result<(), EngineError> {
    let result = match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => fs::remove_dir(target),
        Ok(_) => fs::remove_file(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    };
    result.map_err(|e| EngineError::io("remove", target, e))
}

fn set_mode(target: &Path, mode: u32) -> Result<(), EngineError> {
    if mode == 0 {
        return Ok(()); // unknown: leave it
    }
    fs::set_permissions(target, fs::Permissions::from_mode(mode & MODE_BITS))
        .map_err(|e| EngineError::io("set the permissions of", target, e))
}

/// The staged content `hash` at a temporary name beside `target`, with its mode and time,
/// not yet durable: moved out of staging when both are on one file system (written once),
/// copied otherwise. Returned with an open handle, to sync it.
fn prepare_file(
    staging: &Staging,
    hash: &ContentHash,
    target: &Path,
    mode: u32,
    mtime_ns: i64,
) -> Result<(TempPath, fs::File), EngineError> {
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let staged = staging.path_of(hash);
    let dir = target.parent().unwrap_or(Path::new("."));
    let moved = tempfile::Builder::new()
        .prefix(".qsync-part-")
        .make_in(dir, |name| {
            renameat_with(CWD, &staged, CWD, name, RenameFlags::NOREPLACE).map_err(io::Error::from)
        });
    let temp = match moved {
        Ok(temp) => temp.into_temp_path(),
        Err(_) => {
            // Another file system (or one without the flag): a copy.
            let temp = incoming_file(target)
                .map_err(|e| EngineError::io("create a file beside", target, e))?;
            fs::copy(&staged, temp.path())
                .map_err(|e| EngineError::io("copy the received content to", temp.path(), e))?;
            temp.into_temp_path()
        }
    };
    set_mode(&temp, if mode == 0 { 0o644 } else { mode })?;
    let handle = fs::OpenOptions::new()
        .read(true)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&temp)
        .map_err(|e| EngineError::io("open", &temp, e))?;
    let when = UNIX_EPOCH + Duration::from_nanos(mtime_ns.max(0).unsigned_abs());
    handle
        .set_modified(when)
        .map_err(|e| EngineError::io("set the time of", &temp, e))?;
    Ok((temp, handle))
}

#[cfg(test)]
mod tests;
