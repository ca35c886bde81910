//! What is on disk at a path of a task folder, as the core names it (a file's hash reused
//! from the index when its size and times did not change), and what identifies one
//! version of it (to notice a change between a placement's check and its change).

use std::path::Path;

use qsync_base::{ContentHash, EntryKind, FileEntry, RelPath, MODE_BITS};
use qsync_core::State;
use qsync_watch::{reusable_hash, Index};
use rustix::fs::FileType;

use super::super::root::{Folder, TaskRoot};
use crate::EngineError;

/// What is at `path` of the task folder `root` now, as the core names it (a file's hash
/// reused from the index when its size and time did not change).
pub fn state_at(root: &Path, path: &RelPath, index: &Index) -> Result<State, EngineError> {
    state_in(&TaskRoot::open(root)?, path, index)
}

/// [`state_at`] in an open task folder, never through a link: a symlink on the way is an
/// error, and something that is neither a file, a folder nor a link (a FIFO, a device)
/// is not synced, so it counts as nothing, as the watcher counts it.
pub fn state_in(root: &TaskRoot, path: &RelPath, index: &Index) -> Result<State, EngineError> {
    state_seen(root, path, index).map(|(state, _)| state)
}

/// [`state_in`], with the fingerprint of what was looked at (from the same `fstatat`): a
/// change after the look, however long the preparation takes, is noticed before the
/// target is replaced.
pub(super) fn state_seen(
    root: &TaskRoot,
    path: &RelPath,
    index: &Index,
) -> Result<(State, Option<Fingerprint>), EngineError> {
    let Some((folder, name)) = root.parent(path)? else {
        return Ok((State::Deleted, None));
    };
    let Some(entry) = folder.stat(name)? else {
        return Ok((State::Deleted, None));
    };
    let seen = Some((
        entry.dev,
        entry.ino,
        entry.size,
        entry.mtime_ns,
        entry.ctime_ns,
    ));
    let state = match entry.kind {
        FileType::Directory => State::Folder {
            mode: entry.mode & MODE_BITS,
        },
        FileType::Symlink => State::Symlink {
            target: folder.read_link(name)?,
        },
        FileType::RegularFile => {
            let cached = reusable_hash(
                index.get(path),
                entry.size,
                entry.mtime_ns.max(0),
                entry.ctime_ns,
            );
            let hash = match cached {
                Some(hash) => hash,
                None => {
                    let file = folder.open_file(name)?;
                    ContentHash::of_reader(file)
                        .map_err(|e| EngineError::io("read", &path.to_local(root.path()), e))?
                }
            };
            State::File {
                hash,
                size: entry.size,
                mode: entry.mode & MODE_BITS,
            }
        }
        _ => State::Deleted,
    };
    Ok((state, seen))
}

/// The core's [`State`] of a watcher's entry (a symlink's target is read from disk).
pub fn state_of(root: &TaskRoot, entry: &FileEntry) -> Result<State, EngineError> {
    Ok(match entry.kind {
        EntryKind::Folder => State::Folder { mode: entry.mode },
        EntryKind::File => State::File {
            hash: entry
                .hash
                .ok_or_else(|| EngineError::State(format!("{} has no hash", entry.path)))?,
            size: entry.size,
            mode: entry.mode,
        },
        EntryKind::Symlink => State::Symlink {
            target: root.read_link(&entry.path)?,
        },
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
pub(super) type Fingerprint = (u64, u64, u64, i64, i64);

pub(super) fn fingerprint(folder: &Folder, name: &str) -> Option<Fingerprint> {
    let e = folder.stat(name).ok()??;
    Some((e.dev, e.ino, e.size, e.mtime_ns, e.ctime_ns))
}
