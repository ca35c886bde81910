//! The shelf: the bytes of kept versions (see `qsync_store::Versions` for their rows and
//! policies), one file per content in the state folder's `versions/<task>/<hash>`, never
//! inside a synced folder. A file that a received change replaces is linked here before
//! the new one is renamed over it (free: the old inode lives on under its new name); one
//! that a received edit changes in place is copied first (its inode is about to change);
//! one that a received delete removes comes here from staging once nobody reused it for a
//! rename (`Staging::sweep`). Rows of one content share its file; a file no row refers to
//! is removed by [`Shelf::sweep`] once it is a few minutes old.
//!
//! A kept file is named by the hash its task's ledger recorded, which the file may no
//! longer hold (changed behind the watcher's back): a restore hashes what it copies back
//! and says so.

use std::collections::HashSet;
use std::fs;
use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use qsync_base::{ContentHash, TaskId};

use super::root::Folder;

/// The temporary names of copies on their way to the shelf.
const TEMP_PREFIX: &str = ".incoming-";

/// Where kept versions' bytes are. See the [module documentation](self).
#[derive(Debug, Clone)]
pub struct Shelf {
    dir: PathBuf,
}

impl Shelf {
    /// The shelf in `dir` (made when a first version is kept).
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// The folder of `task`'s versions.
    pub fn task_dir(&self, task: &TaskId) -> PathBuf {
        self.dir.join(task.to_string())
    }

    /// Where the bytes of `task`'s versions of content `hash` are.
    pub fn path_of(&self, task: &TaskId, hash: &ContentHash) -> PathBuf {
        self.task_dir(task).join(hash.to_hex())
    }

    /// Keep the regular file `name` of `folder` (recorded as content `hash`) before a
    /// change of `task` replaces it: by a hard link, or by a copy when `copy` (the file is
    /// about to be changed in place) or where no link can be made (another file system).
    /// Whether its content is on the shelf now (it may have been already).
    pub fn keep(
        &self,
        folder: &Folder,
        name: &str,
        task: &TaskId,
        hash: &ContentHash,
        copy: bool,
    ) -> bool {
        let to = self.path_of(task, hash);
        if to.is_file() {
            return true;
        }
        let dir = self.task_dir(task);
        if let Err(e) = fs::create_dir_all(&dir) {
            tracing::warn!(error = %e, dir = %dir.display(), "could not make the versions folder; a replaced file is not kept");
            return false;
        }
        if !copy {
            match folder.link_out(name, &to) {
                Ok(linked) => return linked,
                Err(e) if e == rustix::io::Errno::XDEV => {}
                Err(e) => {
                    tracing::warn!(error = %e, file = %folder.shown().join(name).display(), "could not keep a replaced file as a version");
                    return false;
                }
            }
        }
        match copy_to(folder, name, &dir, &to) {
            Ok(()) => true,
            Err(e) => {
                tracing::warn!(error = %e, file = %folder.shown().join(name).display(), "could not copy a replaced file to the versions");
                false
            }
        }
    }

    /// Put the file at `from` (a removed file kept for reuse in staging, by a rename:
    /// same file system) on the shelf as `task`'s content `hash`; whether it is.
    pub fn take_in(&self, from: &Path, task: &TaskId, hash: &ContentHash) -> bool {
        let dir = self.task_dir(task);
        fs::create_dir_all(&dir).is_ok() && fs::rename(from, self.path_of(task, hash)).is_ok()
    }

    /// Remove `task`'s kept contents that are not `wanted` (no row refers to them) and
    /// were put here more than `age` ago (a row is written just after its file). Returns
    /// how many.
    pub fn sweep(&self, task: &TaskId, wanted: &HashSet<ContentHash>, age: Duration) -> usize {
        let Ok(entries) = fs::read_dir(self.task_dir(task)) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let wanted = ContentHash::from_hex(&name).is_some_and(|h| wanted.contains(&h));
            // A rename or a link sets the change time.
            let old = entry.metadata().is_ok_and(|m| {
                let changed = UNIX_EPOCH + Duration::from_secs(m.ctime().max(0).unsigned_abs());
                changed.elapsed().is_ok_and(|e| e > age)
            });
            if !wanted && old && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Bytes `task`'s versions take on disk (their blocks).
    pub fn bytes(&self, task: &TaskId) -> u64 {
        let Ok(entries) = fs::read_dir(self.task_dir(task)) else {
            return 0;
        };
        entries
            .flatten()
            .filter_map(|e| e.metadata().ok())
            .map(|m| m.blocks() * 512)
            .sum()
    }

    /// Remove every version of `task` (the task is removed).
    pub fn forget(&self, task: &TaskId) {
        let _ = fs::remove_dir_all(self.task_dir(task));
    }
}

/// Copy the regular file `name` of `folder` to `to` in `dir` through a temporary file,
/// made durable before it is named (a reflink where the file systems share extents).
fn copy_to(folder: &Folder, name: &str, dir: &Path, to: &Path) -> io::Result<()> {
    let mut from = folder.open_file(name).map_err(io::Error::other)?;
    let mut temp = tempfile::Builder::new()
        .prefix(TEMP_PREFIX)
        .tempfile_in(dir)?;
    if rustix::fs::ioctl_ficlone(temp.as_file(), &from).is_err() {
        io::copy(&mut from, temp.as_file_mut())?;
    }
    temp.as_file().sync_all()?;
    temp.persist(to).map_err(|e| e.error)?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::driver::root::TaskRoot;

    #[test]
    fn a_linked_version_outlives_the_file_replaced_and_a_copy_its_edit() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        fs::create_dir(&root).unwrap();
        fs::write(root.join("a"), b"old").unwrap();
        let shelf = Shelf::new(dir.path().join("versions"));
        let (task, hash) = (TaskId::random(), ContentHash::of(b"old"));
        let top = TaskRoot::open(&root).unwrap().top().unwrap();
        assert!(shelf.keep(&top, "a", &task, &hash, false));
        fs::write(root.join("b"), b"new").unwrap();
        fs::rename(root.join("b"), root.join("a")).unwrap();
        assert_eq!(fs::read(shelf.path_of(&task, &hash)).unwrap(), b"old");
        // A copy does not share the inode: an edit in place leaves it.
        let edited = ContentHash::of(b"new");
        assert!(shelf.keep(&top, "a", &task, &edited, true));
        fs::write(root.join("a"), b"NEW").unwrap();
        assert_eq!(fs::read(shelf.path_of(&task, &edited)).unwrap(), b"new");
        // A symlink is never kept, nor followed.
        std::os::unix::fs::symlink(root.join("a"), root.join("l")).unwrap();
        assert!(!shelf.keep(&top, "l", &task, &ContentHash::of(b"l"), false));
        // What no row wants goes, once old enough.
        assert_eq!(
            shelf.sweep(&task, &HashSet::from([hash]), Duration::ZERO),
            1
        );
        assert!(shelf.path_of(&task, &hash).is_file() && !shelf.path_of(&task, &edited).exists());
        assert!(shelf.bytes(&task) > 0);
    }
}
