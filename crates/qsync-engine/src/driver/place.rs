//! Carrying out the core's placements ([`qsync_core::Placement`]) on a real folder: check
//! that the disk holds what the core believes, change it, make it durable, and tell the
//! watcher's index first so that the change is not taken for the person's.
//!
//! All or nothing, as the core expects: each check happens before anything is changed,
//! and a file's new content is written to a temporary file beside it, synced, then renamed
//! over the old one. Nothing is ever written through a symlinked folder.

use std::fs;
use std::io;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use qsync_base::{ContentHash, EntryKind, FileEntry, RelPath, MODE_BITS};
use qsync_core::{PlaceOutcome, Placement, State};
use qsync_watch::{stat_entry, Index};

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
fn fingerprint(path: &Path) -> Option<(u64, u64, u64, i64, i64, i64, i64)> {
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

/// Carry out `p` in the task folder `root`; see the [module documentation](self).
///
/// Order: every check; the new content prepared beside the target (copied, given its mode
/// and time, synced); the paths announced to the index; the target checked again (an edit
/// saved meanwhile wins: `Diverged`); then parents, the conflict copy, the rename, and one
/// sync of the names. On an error, what was announced is taken back.
pub fn place(
    root: &Path,
    staging: &Staging,
    p: &Placement,
    index: &mut Index,
) -> Result<PlaceOutcome, EngineError> {
    let target = safe_target(root, &p.path)?;
    let here = state_at(root, &p.path, index)?;
    if here != p.expect {
        return Ok(PlaceOutcome::Diverged);
    }
    let seen = fingerprint(&target);
    for parent in &p.parents {
        if fs::symlink_metadata(safe_target(root, parent)?).is_ok() {
            return Ok(PlaceOutcome::Diverged);
        }
    }
    let aside_target = match &p.aside {
        Some(aside) => {
            let aside_target = safe_target(root, aside)?;
            match state_at(root, aside, index)? {
                State::Deleted => Some((aside.clone(), aside_target, false)),
                // The same copy made by another device already: only remove ours.
                there if there == here => Some((aside.clone(), aside_target, true)),
                _ => return Ok(PlaceOutcome::Diverged),
            }
        }
        None => None,
    };
    let content_here = here.hash() == p.target.hash() && p.aside.is_none();
    if let State::File { hash, .. } = &p.target {
        if !content_here && !staging.has(hash) {
            return Ok(PlaceOutcome::NoContent);
        }
    }
    let emptying = here.is_folder() && !p.target.is_folder() && p.aside.is_none();
    if emptying && folder_has_entries(&target)? {
        return Ok(PlaceOutcome::NotEmpty);
    }

    let mut announced: Vec<RelPath> = Vec::new();
    let result = apply(
        root,
        staging,
        p,
        index,
        &target,
        seen,
        &here,
        content_here,
        aside_target,
        &mut announced,
    );
    if !matches!(result, Ok(PlaceOutcome::Done)) {
        for path in &announced {
            index.withdraw(path);
        }
    }
    result
}

#[allow(clippy::too_many_arguments)]
fn apply(
    root: &Path,
    staging: &Staging,
    p: &Placement,
    index: &mut Index,
    target: &Path,
    seen: Option<(u64, u64, u64, i64, i64, i64, i64)>,
    here: &State,
    content_here: bool,
    aside_target: Option<(RelPath, PathBuf, bool)>,
    announced: &mut Vec<RelPath>,
) -> Result<PlaceOutcome, EngineError> {
    // Folders first (the new content is prepared inside the target's folder).
    for parent in &p.parents {
        let folder = State::Folder { mode: 0o755 };
        index.expect(parent.clone(), entry_for(parent, &folder, p.mtime_ns));
        announced.push(parent.clone());
        let dir = safe_target(root, parent)?;
        fs::create_dir(&dir).map_err(|e| EngineError::io("create the folder", &dir, e))?;
        // create_dir applies the umask: give it exactly the mode announced.
        set_mode(&dir, 0o755)?;
    }
    let prepared = match &p.target {
        State::File { hash, mode, .. } if !content_here => Some(prepare_file(
            &staging.path_of(hash),
            target,
            *mode,
            p.mtime_ns,
        )?),
        _ => None,
    };
    if let Some((aside, _, _)) = &aside_target {
        index.expect(aside.clone(), entry_for(aside, here, p.mtime_ns));
        announced.push(aside.clone());
    }
    match entry_for(&p.path, &p.target, p.mtime_ns) {
        Some(entry) => index.expect(p.path.clone(), Some(entry)),
        None => index.expect_removed(p.path.clone()),
    }
    announced.push(p.path.clone());
    if fingerprint(target) != seen {
        return Ok(PlaceOutcome::Diverged);
    }
    if let Some((_, aside_target, already)) = &aside_target {
        if *already {
            remove_one(target)?;
        } else {
            fs::rename(target, aside_target)
                .map_err(|e| EngineError::io("move aside", target, e))?;
        }
    }
    let parent_dir = target.parent().unwrap_or(root).to_owned();
    match &p.target {
        State::Deleted => remove_one(target)?,
        State::File { mode, .. } => match prepared {
            Some(temp) => {
                if matches!(fs::symlink_metadata(target), Ok(m) if m.is_dir()) {
                    remove_one(target)?;
                }
                temp.persist(target)
                    .map_err(|e| EngineError::io("rename into place", target, e.error))?;
            }
            None => set_mode(target, *mode)?,
        },
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
    // Names (renames, removals, new entries) are durable before the core records them: the
    // folder holding the path (and the aside copy), and the folder holding each folder
    // made. An fsync of each folder, not a `syncfs`, which would also flush whatever else
    // is being written on that file system.
    let mut folders = vec![parent_dir];
    for parent in &p.parents {
        let made = safe_target(root, parent)?;
        folders.push(made.parent().unwrap_or(root).to_owned());
    }
    folders.sort();
    folders.dedup();
    for folder in &folders {
        fs::File::open(folder)
            .and_then(|dir| dir.sync_all())
            .map_err(|e| EngineError::io("sync", folder, e))?;
    }
    Ok(PlaceOutcome::Done)
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

/// The staged `source` copied to a temporary file beside `target`, with its mode and time,
/// made durable: ready to be renamed into place.
fn prepare_file(
    source: &Path,
    target: &Path,
    mode: u32,
    mtime_ns: i64,
) -> Result<tempfile::NamedTempFile, EngineError> {
    let temp =
        incoming_file(target).map_err(|e| EngineError::io("create a file beside", target, e))?;
    fs::copy(source, temp.path())
        .map_err(|e| EngineError::io("copy the received content to", temp.path(), e))?;
    set_mode(temp.path(), if mode == 0 { 0o644 } else { mode })?;
    let file = temp.as_file();
    let when = UNIX_EPOCH + Duration::from_nanos(mtime_ns.max(0).unsigned_abs());
    file.set_modified(when)
        .map_err(|e| EngineError::io("set the time of", temp.path(), e))?;
    file.sync_all()
        .map_err(|e| EngineError::io("sync", temp.path(), e))?;
    Ok(temp)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use qsync_base::TaskId;

    struct Folder {
        _dir: tempfile::TempDir,
        root: PathBuf,
        staging: Staging,
        index: Index,
    }

    fn folder() -> Folder {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("task");
        fs::create_dir(&root).unwrap();
        let staging = Staging::open(dir.path().join("staging")).unwrap();
        Folder {
            _dir: dir,
            root,
            staging,
            index: Index::default(),
        }
    }

    fn stage(f: &Folder, content: &[u8]) -> State {
        let hash = ContentHash::of(content);
        fs::write(f.staging.path_of(&hash), content).unwrap();
        State::File {
            hash,
            size: content.len() as u64,
            mode: 0o640,
        }
    }

    fn placement(path: &str, expect: State, target: State) -> Placement {
        Placement {
            task: TaskId::from_bytes([1; 32]),
            path: RelPath::new(path).unwrap(),
            expect,
            target,
            mtime_ns: 1_700_000_000_000_000_000,
            aside: None,
            parents: vec![],
            from: qsync_base::DeviceId::from_bytes([2; 32]),
        }
    }

    #[test]
    fn a_new_file_lands_with_its_mode_and_time_in_new_folders() {
        let mut f = folder();
        let file = stage(&f, b"hello");
        let mut p = placement("a/b/f.txt", State::Deleted, file.clone());
        p.parents = vec![RelPath::new("a").unwrap(), RelPath::new("a/b").unwrap()];
        assert_eq!(
            place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
            PlaceOutcome::Done
        );
        let local = f.root.join("a/b/f.txt");
        assert_eq!(fs::read(&local).unwrap(), b"hello");
        let meta = fs::metadata(&local).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(
            meta.modified().unwrap(),
            UNIX_EPOCH + Duration::from_secs(1_700_000_000)
        );
        assert_eq!(state_at(&f.root, &p.path, &f.index).unwrap(), file);
    }

    #[test]
    fn a_changed_disk_is_left_alone() {
        let mut f = folder();
        fs::write(f.root.join("x"), b"the person's edit").unwrap();
        let old = State::File {
            hash: ContentHash::of(b"before"),
            size: 6,
            mode: 0o644,
        };
        let new = stage(&f, b"theirs");
        let p = placement("x", old, new);
        assert_eq!(
            place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
            PlaceOutcome::Diverged
        );
        assert_eq!(fs::read(f.root.join("x")).unwrap(), b"the person's edit");
    }

    #[test]
    fn the_loser_goes_aside_and_a_mode_change_needs_no_content() {
        let mut f = folder();
        fs::write(f.root.join("x"), b"ours").unwrap();
        fs::set_permissions(f.root.join("x"), fs::Permissions::from_mode(0o644)).unwrap();
        let ours = state_at(&f.root, &RelPath::new("x").unwrap(), &f.index).unwrap();
        let theirs = stage(&f, b"theirs");
        let mut p = placement("x", ours.clone(), theirs);
        p.aside = Some(RelPath::new("x.sync-conflict").unwrap());
        assert_eq!(
            place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
            PlaceOutcome::Done
        );
        assert_eq!(fs::read(f.root.join("x")).unwrap(), b"theirs");
        assert_eq!(fs::read(f.root.join("x.sync-conflict")).unwrap(), b"ours");

        let now = state_at(&f.root, &RelPath::new("x").unwrap(), &f.index).unwrap();
        let State::File { hash, size, .. } = now.clone() else {
            panic!()
        };
        let p = placement(
            "x",
            now,
            State::File {
                hash,
                size,
                mode: 0o755,
            },
        );
        f.staging.remove(&hash);
        assert_eq!(
            place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
            PlaceOutcome::Done
        );
        assert_eq!(
            fs::metadata(f.root.join("x")).unwrap().permissions().mode() & 0o777,
            0o755
        );
    }

    #[test]
    fn a_folder_goes_only_when_empty_and_links_are_made_not_followed() {
        let mut f = folder();
        fs::create_dir(f.root.join("d")).unwrap();
        fs::write(f.root.join("d/kept"), b"changed here").unwrap();
        let d = state_at(&f.root, &RelPath::new("d").unwrap(), &f.index).unwrap();
        let p = placement("d", d, State::Deleted);
        assert_eq!(
            place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
            PlaceOutcome::NotEmpty
        );
        assert!(f.root.join("d/kept").exists());

        let link = State::Symlink {
            target: "/etc".into(),
        };
        let p = placement("l", State::Deleted, link.clone());
        assert_eq!(
            place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
            PlaceOutcome::Done
        );
        assert_eq!(
            state_at(&f.root, &RelPath::new("l").unwrap(), &f.index).unwrap(),
            link
        );
        // Nothing is written through it.
        let file = stage(&f, b"x");
        let p = placement("l/passwd", State::Deleted, file);
        assert!(place(&f.root, &f.staging, &p, &mut f.index).is_err());
    }

    #[test]
    fn missing_content_is_said() {
        let mut f = folder();
        let p = placement(
            "x",
            State::Deleted,
            State::File {
                hash: ContentHash::of(b"never fetched"),
                size: 13,
                mode: 0o644,
            },
        );
        assert_eq!(
            place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
            PlaceOutcome::NoContent
        );
    }

    #[test]
    fn what_was_placed_is_not_reported_as_a_change() {
        let mut f = folder();
        let file = stage(&f, b"hello");
        let p = placement("f", State::Deleted, file);
        place(&f.root, &f.staging, &p, &mut f.index).unwrap();
        let scan = qsync_watch::scan(&f.root, &f.index.to_map()).unwrap();
        let events = f.index.reconcile(scan);
        assert!(events.is_empty(), "{events:?}");
    }
}
