//! Where fetched content waits, named by its hash, until a placement uses it: whole
//! (`<hash>`), or as edits of the version a file holds (`<hash>.edits`, see
//! [`super::in_place`]). The folder also holds the undo journal of edits in place, and
//! the part files of contents on their way in (`.partial-<hash>`), which survive a
//! reconnection or a restart so that a transfer cut short resumes where it stopped.
//!
//! Content this device has already is staged from here rather than fetched: a file
//! removed by a received delete is moved here (`.reuse-<hash>`, by a rename: free) for
//! [`REUSE_KEEP`], in case it was renamed on the other side and its content is about to
//! be wanted at its new path; a file of the task, or a kept copy, is copied in. Either is
//! checked against its hash first: the bytes may have changed behind the index's back.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, UNIX_EPOCH};

use qsync_base::{ContentHash, ContentHasher, TaskId};
use qsync_delta::InPlace;

use super::in_place;
use super::shelf::Shelf;
use crate::EngineError;

/// The name of a part file starts with this, then the content's hash.
const PARTIAL: &str = ".partial-";

/// The name of a removed file kept for reuse starts with this, then its recorded hash.
const REUSE: &str = ".reuse-";

/// How long a removed file is kept for reuse (its space comes back after at most twice
/// this: staging is swept every [`REUSE_KEEP`]).
pub const REUSE_KEEP: Duration = Duration::from_secs(60);

/// Where fetched content waits, named by its hash, until a placement uses it.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
    /// How many files were put aside for reuse ([`Staging::keep_path`]), counted from 1
    /// (those found at a start), and that count when a sweep last found none left: while
    /// the two are equal nothing is kept, and a fetch does not look for its content there
    /// (a `stat` per file of a drop of new ones).
    kept: Arc<(AtomicU64, AtomicU64)>,
    /// Contents staged from a removed file of the person ([`Staging::take_reuse`]): the
    /// inode is theirs, not one the engine made (see [`Staging::was_reused`]).
    reused: Arc<Mutex<HashSet<ContentHash>>>,
    /// Where a removed file kept for reuse goes once [`REUSE_KEEP`] is over: the versions
    /// beside the staging folder (`shelf.rs`; what no version wants is removed there).
    shelf: Shelf,
}

impl Staging {
    /// The staging folder `dir` (made if missing). An edit in place that a crash cut
    /// short is undone first (see [`super::in_place`]).
    pub fn open(dir: PathBuf) -> Result<Self, EngineError> {
        fs::create_dir_all(&dir).map_err(|e| EngineError::io("create", &dir, e))?;
        in_place::undo_cut_short(&dir)?;
        in_place::prepare_journal(&dir)?;
        Ok(Self {
            shelf: Shelf::new(dir.with_file_name("versions")),
            dir,
            kept: Arc::new((AtomicU64::new(1), AtomicU64::new(0))),
            reused: Arc::default(),
        })
    }

    /// Where kept versions are (see `shelf.rs`).
    pub fn shelf(&self) -> &Shelf {
        &self.shelf
    }

    /// Where the bytes of a version of `task`'s content `hash` are: on the shelf, or kept
    /// for reuse here still (a file deleted less than [`REUSE_KEEP`] ago).
    pub fn version_bytes(&self, task: &TaskId, hash: &ContentHash) -> Option<PathBuf> {
        [self.shelf.path_of(task, hash), self.reuse_path(task, hash)]
            .into_iter()
            .find(|p| p.is_file())
    }

    /// The staging folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the content `hash` is (or goes) once fetched and checked.
    pub fn path_of(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(hash.to_hex())
    }

    /// Where the bytes received of the content `hash` wait while it comes (kept when a
    /// transfer is cut short: the next one resumes from them).
    pub fn partial_path(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(format!("{PARTIAL}{}", hash.to_hex()))
    }

    /// How many bytes of the content `hash` are kept from a transfer cut short (0: none).
    pub fn partial_len(&self, hash: &ContentHash) -> u64 {
        fs::symlink_metadata(self.partial_path(hash))
            .ok()
            .filter(fs::Metadata::is_file)
            .map_or(0, |m| m.len())
    }

    /// Where a file of `task` removed here, whose content was recorded as `hash`, is kept
    /// for reuse (by that task only: what one task held is never used for another).
    pub fn reuse_path(&self, task: &TaskId, hash: &ContentHash) -> PathBuf {
        self.dir.join(format!("{REUSE}{task}-{}", hash.to_hex()))
    }

    /// Where a file of `task` whose content was recorded as `hash` is put aside for reuse
    /// ([`Staging::reuse_path`]), counted as kept there from now on.
    pub fn keep_path(&self, task: &TaskId, hash: &ContentHash) -> PathBuf {
        self.kept.0.fetch_add(1, Ordering::SeqCst);
        self.reuse_path(task, hash)
    }

    /// Whether files may be kept for reuse now (none since a sweep found none).
    pub fn may_keep(&self) -> bool {
        self.kept.0.load(Ordering::SeqCst) != self.kept.1.load(Ordering::SeqCst)
    }

    /// Stage the content `hash` of `size` bytes from a file of `task` removed here and
    /// kept for reuse, if there is one and it still holds exactly that (it is renamed,
    /// not copied): whether it is staged now. One that does not is removed.
    pub fn take_reuse(&self, task: &TaskId, hash: &ContentHash, size: u64) -> bool {
        let kept = self.reuse_path(task, hash);
        // Never through a link, never blocking on a FIFO: a regular file only.
        let opened = fs::OpenOptions::new()
            .read(true)
            .custom_flags(nofollow_nonblock())
            .open(&kept);
        let Ok(file) = opened else {
            return false;
        };
        let right = file
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() == size)
            && ContentHash::of_reader(&file).is_ok_and(|h| h == *hash);
        // Staged now: its time says so (the sweep removes staged content by age).
        let staged = right
            && file.set_modified(std::time::SystemTime::now()).is_ok()
            && fs::rename(&kept, self.path_of(hash)).is_ok();
        if !staged {
            let _ = fs::remove_file(&kept);
        } else if let Ok(mut reused) = self.reused.lock() {
            reused.insert(*hash);
        }
        staged
    }

    /// Whether the content `hash` staged here is a removed file of the person put back
    /// (see [`Staging::take_reuse`]); yes when it cannot be told.
    pub fn was_reused(&self, hash: &ContentHash) -> bool {
        self.reused.lock().map_or(true, |r| r.contains(hash))
    }

    /// Stage the content `hash` of `size` bytes by copying `from` (a file of a task, a
    /// kept copy), if it holds exactly that: whether it is staged now. The copy is hashed
    /// as it is made, and named only if right.
    pub fn copy_in(
        &self,
        from: fs::File,
        hash: &ContentHash,
        size: u64,
    ) -> Result<bool, EngineError> {
        if !from
            .metadata()
            .is_ok_and(|m| m.is_file() && m.len() == size)
        {
            return Ok(false);
        }
        let mut temp = tempfile::Builder::new()
            .prefix(REUSE)
            .suffix(".tmp")
            .tempfile_in(&self.dir)
            .map_err(|e| EngineError::io("create a file in", &self.dir, e))?;
        // A reflink where the file system shares extents (nothing written: the clone
        // itself is read to be checked), a copy otherwise.
        let cloned = rustix::fs::ioctl_ficlone(temp.as_file(), &from).is_ok();
        let source = match cloned {
            true => temp
                .reopen()
                .map_err(|e| EngineError::io("open", temp.path(), e))?,
            false => from,
        };
        let mut hasher = ContentHasher::new();
        let mut reader = std::io::Read::take(source, size.saturating_add(1));
        let mut buffer = vec![0u8; 1 << 20];
        let mut copied = 0u64;
        loop {
            let n = match std::io::Read::read(&mut reader, &mut buffer) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(_) => return Ok(false),
            };
            hasher.update(&buffer[..n]);
            if !cloned {
                std::io::Write::write_all(&mut temp, &buffer[..n])
                    .map_err(|e| EngineError::io("write", temp.path(), e))?;
            }
            copied += n as u64;
        }
        if copied != size || hasher.finish() != *hash {
            return Ok(false);
        }
        let target = self.path_of(hash);
        temp.persist(&target)
            .map_err(|e| EngineError::io("stage", &target, e.error))?;
        Ok(true)
    }

    /// Remove what was received of the content `hash` so far.
    pub fn remove_partial(&self, hash: &ContentHash) {
        let _ = fs::remove_file(self.partial_path(hash));
    }

    /// Remove the parts kept from transfers cut short, oldest first, but for those of the
    /// contents `in_use`, until at most `keep` are left. Returns how many were removed.
    pub fn trim_parts(&self, keep: usize, in_use: &[ContentHash]) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let used: std::collections::HashSet<String> = in_use
            .iter()
            .map(|h| format!("{PARTIAL}{}", h.to_hex()))
            .collect();
        let mut parts: Vec<_> = entries
            .flatten()
            .filter(|e| {
                let name = e.file_name().to_string_lossy().into_owned();
                name.starts_with(PARTIAL) && !used.contains(&name)
            })
            .filter_map(|e| {
                let modified = e.metadata().and_then(|m| m.modified()).ok()?;
                Some((modified, e.path()))
            })
            .collect();
        parts.sort();
        let extra = parts.len().saturating_sub(keep);
        parts
            .into_iter()
            .take(extra)
            .filter(|(_, path)| fs::remove_file(path).is_ok())
            .count()
    }

    /// Empty the folder at a start, but for the parts of transfers cut short (resumed
    /// from) and the journal of edits in place; files deleted lately go to the shelf.
    pub fn empty_but_parts(&self) -> Result<(), EngineError> {
        let entries = fs::read_dir(&self.dir).map_err(|e| EngineError::io("list", &self.dir, e))?;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            let file = entry.file_type().is_ok_and(|t| t.is_file());
            // The journal of edits in place was prepared by `open` (after any undo).
            let kept = name.starts_with(PARTIAL) || name == in_place::UNDO_JOURNAL;
            if kept && file {
                continue;
            }
            let path = entry.path();
            // A file deleted lately is a version's bytes: to the shelf.
            if file && name.starts_with(REUSE) && self.to_shelf(&name, &path) {
                continue;
            }
            let removed = if entry.file_type().is_ok_and(|t| t.is_dir()) {
                fs::remove_dir_all(&path)
            } else {
                fs::remove_file(&path)
            };
            removed.map_err(|e| EngineError::io("remove", &path, e))?;
        }
        Ok(())
    }

    /// Whether the content `hash` is here.
    pub fn has(&self, hash: &ContentHash) -> bool {
        self.path_of(hash).is_file()
    }

    /// Where the edits in place that make `hash` wait (see [`super::in_place`]).
    fn edits_path(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(format!("{}.edits", hash.to_hex()))
    }

    /// Stage the edits that make `edits.header.target_hash` from its base in place.
    pub fn put_edits(&self, edits: &InPlace) -> Result<(), EngineError> {
        in_place::put_edits(&self.edits_path(&edits.header.target_hash), edits)
    }

    /// The edits staged that make `hash` from `base`, if any.
    pub fn edits_for(&self, hash: &ContentHash, base: Option<ContentHash>) -> Option<InPlace> {
        in_place::edits_at(&self.edits_path(hash), hash, base)
    }

    /// Whether the content `hash` can be placed over `base`: staged whole, or as edits of
    /// `base`.
    pub fn has_for(&self, hash: &ContentHash, base: Option<ContentHash>) -> bool {
        self.has(hash) || self.edits_for(hash, base).is_some()
    }

    /// Remove staged content older than `age` (fetched for records that were replaced or
    /// whose placement waits), and parts older than that of transfers given up, but for
    /// the parts of the contents `in_use`: a placement that still wanted it finds it gone
    /// and has it fetched again. Returns how many.
    pub fn sweep(&self, age: Duration, in_use: &[ContentHash]) -> usize {
        let used: std::collections::HashSet<String> = in_use
            .iter()
            .map(|h| format!("{PARTIAL}{}", h.to_hex()))
            .collect();
        // Counted before looking: a file kept while the folder is read counts as kept.
        let kept_before = self.kept.0.load(Ordering::SeqCst);
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        let mut still_kept = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            let name = name.to_string_lossy();
            if name.starts_with(REUSE) {
                // Kept for reuse since it was removed (a rename sets the change time).
                let old = entry.metadata().is_ok_and(|m| {
                    let changed = UNIX_EPOCH + Duration::from_secs(m.ctime().max(0) as u64);
                    changed.elapsed().is_ok_and(|e| e > REUSE_KEEP)
                });
                // Nobody reused it: it goes to the versions (or, unnamed, away).
                let shelved = old && self.to_shelf(&name, &entry.path());
                if old && (shelved || fs::remove_file(entry.path()).is_ok()) {
                    removed += 1;
                } else {
                    still_kept += 1;
                }
                continue;
            }
            if name.starts_with('.') && !name.starts_with(PARTIAL) {
                continue; // the journal of edits in place
            }
            if used.contains(name.as_ref()) {
                continue; // a part being received or resumed from
            }
            // A part is written to as it comes: one this old is of a transfer given up.
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > age));
            if old && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        if still_kept == 0 {
            self.kept.1.store(kept_before, Ordering::SeqCst);
        }
        removed
    }

    /// Move the removed file kept for reuse as `name` (at `path`) to the shelf; whether
    /// it went.
    fn to_shelf(&self, name: &str, path: &Path) -> bool {
        let parsed = name.strip_prefix(REUSE).and_then(|rest| {
            let (task, hash) = rest.rsplit_once('-')?;
            Some((task.parse::<TaskId>().ok()?, ContentHash::from_hex(hash)?))
        });
        parsed.is_some_and(|(task, hash)| self.shelf.take_in(path, &task, &hash))
    }

    /// Forget the content `hash` (once placed, or no longer wanted), whole or as edits.
    pub fn remove(&self, hash: &ContentHash) {
        if let Ok(mut reused) = self.reused.lock() {
            reused.remove(hash);
        }
        let _ = fs::remove_file(self.path_of(hash));
        let _ = fs::remove_file(self.edits_path(hash));
    }
}

/// `O_NOFOLLOW | O_NONBLOCK`: a file opened with them is never reached through a link, and
/// opening a FIFO does not wait for a writer.
fn nofollow_nonblock() -> i32 {
    (rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_content_put_back_from_a_removed_file_is_known_as_such_until_removed() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::open(dir.path().join("staging")).unwrap();
        let task = TaskId::random();
        let (kept, fetched) = (b"the person's file".as_slice(), b"fetched".as_slice());
        let (kept_hash, fetched_hash) = (ContentHash::of(kept), ContentHash::of(fetched));
        fs::write(staging.keep_path(&task, &kept_hash), kept).unwrap();
        assert!(staging.take_reuse(&task, &kept_hash, kept.len() as u64));
        fs::write(staging.path_of(&fetched_hash), fetched).unwrap();
        // Its inode is the person's: not one the engine made.
        assert!(staging.was_reused(&kept_hash));
        assert!(!staging.was_reused(&fetched_hash));
        staging.remove(&kept_hash);
        assert!(!staging.was_reused(&kept_hash));
    }

    #[test]
    fn a_removed_file_nobody_reused_goes_to_the_shelf() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::open(dir.path().join("staging")).unwrap();
        let task = TaskId::random();
        let hash = ContentHash::of(b"x");
        fs::write(staging.keep_path(&task, &hash), b"x").unwrap();
        assert_eq!(
            staging.version_bytes(&task, &hash),
            Some(staging.reuse_path(&task, &hash))
        );
        // At a start (nothing waits a minute then), for a task that keeps versions (its
        // folder on the shelf is ready); another's is removed.
        staging.shelf().ready(&task);
        let other = TaskId::random();
        fs::write(staging.keep_path(&other, &hash), b"x").unwrap();
        staging.empty_but_parts().unwrap();
        assert_eq!(staging.version_bytes(&other, &hash), None);
        let shelved = staging.shelf().path_of(&task, &hash);
        assert_eq!(staging.version_bytes(&task, &hash), Some(shelved.clone()));
        assert_eq!(fs::read(&shelved).unwrap(), b"x");
    }

    #[test]
    fn nothing_is_looked_for_among_removed_files_once_a_sweep_found_none() {
        let dir = tempfile::tempdir().unwrap();
        let staging = Staging::open(dir.path().join("staging")).unwrap();
        assert!(staging.may_keep(), "what a start found is not known");
        staging.sweep(Duration::from_secs(3600), &[]);
        assert!(!staging.may_keep());
        let task = TaskId::random();
        let hash = ContentHash::of(b"x");
        fs::write(staging.keep_path(&task, &hash), b"x").unwrap();
        assert!(staging.may_keep());
        // One still kept keeps it so.
        staging.sweep(Duration::from_secs(3600), &[]);
        assert!(staging.may_keep());
    }
}
