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
    /// about to be changed in place), where no link can be made (another file system), or
    /// where the file has other names (a link would let an edit through them change the
    /// version). A copy is made only of files up to `copy_limit` bytes (it is made on the
    /// engine's thread). `Some(true)`: kept now; `Some(false)`: that content was on the
    /// shelf already; `None`: not kept.
    pub fn keep(
        &self,
        (folder, name): (&Folder, &str),
        task: &TaskId,
        hash: &ContentHash,
        (copy, copy_limit): (bool, u64),
    ) -> Option<bool> {
        let to = self.path_of(task, hash);
        if to.is_file() {
            return Some(false);
        }
        let dir = self.task_dir(task);
        if let Err(e) = fs::create_dir_all(&dir) {
            tracing::warn!(error = %e, dir = %dir.display(), "could not make the versions folder; a replaced file is not kept");
            return None;
        }
        if !copy {
            match folder.link_out(name, &to) {
                Ok(linked) => return linked.then_some(true),
                Err(e) if e == rustix::io::Errno::XDEV || e == rustix::io::Errno::MLINK => {}
                Err(e) => {
                    tracing::warn!(error = %e, file = %folder.shown().join(name).display(), "could not keep a replaced file as a version");
                    return None;
                }
            }
        }
        let size = folder
            .stat(name)
            .ok()
            .flatten()
            .map_or(u64::MAX, |e| e.size);
        if size > copy_limit {
            tracing::info!(file = %folder.shown().join(name).display(), size, "a replaced file too large to copy is not kept as a version");
            return None;
        }
        match copy_to(folder, name, &dir, &to) {
            Ok(()) => Some(true),
            Err(e) => {
                tracing::warn!(error = %e, file = %folder.shown().join(name).display(), "could not copy a replaced file to the versions");
                None
            }
        }
    }

    /// Let go of the content `hash` of `task` kept a moment ago by [`Shelf::keep`] for a
    /// change that did not happen after all.
    pub fn unkeep(&self, task: &TaskId, hash: &ContentHash) {
        let _ = fs::remove_file(self.path_of(task, hash));
    }

    /// Put the file at `from` (a removed file kept for reuse in staging, by a rename:
    /// same file system) on the shelf as `task`'s content `hash`, if `task` keeps
    /// versions (its folder on the shelf is there: see [`Shelf::ready`]); never over
    /// the content kept there already. Whether `from` is gone.
    pub fn take_in(&self, from: &Path, task: &TaskId, hash: &ContentHash) -> bool {
        if !self.task_dir(task).is_dir() {
            return false;
        }
        let to = self.path_of(task, hash);
        match rustix::fs::renameat_with(
            rustix::fs::CWD,
            from,
            rustix::fs::CWD,
            &to,
            rustix::fs::RenameFlags::NOREPLACE,
        ) {
            Ok(()) => true,
            Err(_) if to.is_file() => fs::remove_file(from).is_ok(),
            Err(_) => false,
        }
    }

    /// Make `task`'s folder on the shelf (a task that keeps versions: see
    /// [`Shelf::take_in`]).
    pub fn ready(&self, task: &TaskId) {
        if let Err(e) = fs::create_dir_all(self.task_dir(task)) {
            tracing::warn!(%task, error = %e, "could not make the task's versions folder");
        }
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
        let any = u64::MAX;
        assert_eq!(
            shelf.keep((&top, "a"), &task, &hash, (false, any)),
            Some(true)
        );
        fs::write(root.join("b"), b"new").unwrap();
        fs::rename(root.join("b"), root.join("a")).unwrap();
        assert_eq!(fs::read(shelf.path_of(&task, &hash)).unwrap(), b"old");
        // A copy does not share the inode: an edit in place leaves it.
        let edited = ContentHash::of(b"new");
        assert_eq!(
            shelf.keep((&top, "a"), &task, &edited, (true, 2)),
            None,
            "over the limit"
        );
        assert_eq!(
            shelf.keep((&top, "a"), &task, &edited, (true, any)),
            Some(true)
        );
        fs::write(root.join("a"), b"NEW").unwrap();
        assert_eq!(fs::read(shelf.path_of(&task, &edited)).unwrap(), b"new");
        // A symlink is never kept, nor followed.
        std::os::unix::fs::symlink(root.join("a"), root.join("l")).unwrap();
        assert_eq!(
            shelf.keep((&top, "l"), &task, &ContentHash::of(b"l"), (false, any)),
            None
        );
        // A file with another name is copied, not linked: an edit through the other name
        // leaves the version.
        fs::write(root.join("m"), b"mine").unwrap();
        fs::hard_link(root.join("m"), root.join("m2")).unwrap();
        let mine = ContentHash::of(b"mine");
        assert_eq!(
            shelf.keep((&top, "m"), &task, &mine, (false, any)),
            Some(true)
        );
        fs::write(root.join("m2"), b"MINE").unwrap();
        assert_eq!(fs::read(shelf.path_of(&task, &mine)).unwrap(), b"mine");
        shelf.unkeep(&task, &mine);
        // What no row wants goes, once old enough.
        assert_eq!(
            shelf.sweep(&task, &HashSet::from([hash]), Duration::ZERO),
            1
        );
        assert!(shelf.path_of(&task, &hash).is_file() && !shelf.path_of(&task, &edited).exists());
        assert!(shelf.bytes(&task) > 0);
    }
}
