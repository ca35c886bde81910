//! Placements carried out: a change with no new content made at once, a prepared file
//! renamed into place, edits written in place through the undo journal, this device's
//! version moved aside, staged content given its temporary name in the folder. Each
//! announces what it leaves to the index and checks the target again just before it
//! changes it.

use std::collections::BTreeSet;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use qsync_base::{ContentHash, RelPath};
use qsync_core::{PlaceOutcome, Placement, State};
use qsync_delta::InPlace;
use qsync_watch::Index;
use rustix::fs::FileType;

use super::super::in_place::{self, Target};
use super::super::root::{Folder, TaskRoot, TempEntry};
use super::{
    entry_for, fingerprint, guard, missing_folder, Aside, Fingerprint, Pending, Prepared,
    PreparedEdit, PreparedFile, Staging, VersionKeep, PART_PREFIX,
};
use crate::EngineError;

/// A change with no new content, made at once in `folder` (the one holding the target):
/// announced, the target checked again, the old one moved aside, then removed, made a
/// folder or a link, or given its mode.
#[allow(clippy::too_many_arguments)]
pub(super) fn apply_now(
    p: &Placement,
    folder: &Folder,
    seen: Option<Fingerprint>,
    here: &State,
    aside: Option<Aside>,
    index: &mut Index,
    pending: &mut Pending,
) -> Result<PlaceOutcome, EngineError> {
    let name = p.path.file_name();
    if let Some(aside) = &aside {
        index.expect(aside.path.clone(), entry_for(&aside.path, here, p.mtime_ns));
        pending.announced.push(aside.path.clone());
    }
    announce(index, p, &mut pending.announced);
    if fingerprint(folder, name) != seen {
        return Ok(PlaceOutcome::Diverged);
    }
    if let Some(aside) = &aside {
        move_aside(folder, name, aside)?;
    }
    match &guard::as_placed(&p.target) {
        State::Deleted => {
            let kept = pending
                .reuse
                .as_ref()
                .is_some_and(|to| folder.give_away(name, to));
            match &mut pending.version {
                Some(version) if kept => version.kept_for_reuse(),
                Some(version) => version.keep(&p.task, (folder, name), "deleted", false),
                None => {}
            }
            if !kept {
                folder.remove(name)?;
            }
        }
        State::File { mode, .. } => {
            // The content is here already: its mode and time are what change.
            folder.set_mode(name, *mode)?;
            if p.mtime_ns > 0 {
                folder.set_modified(name, p.mtime_ns)?;
            }
        }
        State::Folder { mode } => {
            let is_folder = matches!(folder.stat(name)?, Some(e) if e.kind == FileType::Directory);
            if is_folder {
                folder.set_mode(name, *mode)?;
            } else {
                // A file that a folder replaces is kept as a version first.
                if let Some(version) = &mut pending.version {
                    version.keep(&p.task, (folder, name), "replaced", false);
                }
                folder.remove(name)?;
                folder.create_dir(name, *mode)?;
            }
        }
        State::Symlink { target } => {
            if let Some(version) = &mut pending.version {
                version.keep(&p.task, (folder, name), "replaced", false);
            }
            folder.remove(name)?;
            folder.symlink(target, name)?;
        }
    }
    Ok(PlaceOutcome::Done)
}

/// The index hears what `p` leaves at its path (its mode masked, as it is placed).
fn announce(index: &mut Index, p: &Placement, announced: &mut Vec<RelPath>) {
    match entry_for(&p.path, &guard::as_placed(&p.target), p.mtime_ns) {
        Some(entry) => index.expect(p.path.clone(), Some(entry)),
        None => index.expect_removed(p.path.clone()),
    }
    announced.push(p.path.clone());
}

/// The flush of one prepared file (its content durable already): announced, checked
/// again, the old one moved aside, renamed into place.
pub(super) fn rename_into_place(
    p: &Placement,
    root: &Path,
    file: PreparedFile,
    index: &mut Index,
    (announced, version): (&mut Vec<RelPath>, &mut Option<VersionKeep>),
    folders: &mut BTreeSet<(PathBuf, Option<RelPath>)>,
) -> Result<PlaceOutcome, EngineError> {
    if let Some(aside) = &file.aside {
        index.expect(
            aside.path.clone(),
            entry_for(&aside.path, &file.here, p.mtime_ns),
        );
        announced.push(aside.path.clone());
        folders.insert((root.to_owned(), aside.path.parent()));
    }
    announce(index, p, announced);
    let folder = file.temp.folder();
    if fingerprint(folder, &file.name) != file.seen {
        return Ok(PlaceOutcome::Diverged);
    }
    if let Some(aside) = &file.aside {
        move_aside(folder, &file.name, aside)?;
    }
    // An empty folder in the way goes (when something was there and stays in place: when
    // nothing was, the fingerprint just said so).
    let in_place = file.seen.is_some() && file.aside.is_none();
    if in_place && matches!(folder.stat(&file.name)?, Some(e) if e.kind == FileType::Directory) {
        folder.remove(&file.name)?;
    }
    if file.seen.is_none() || file.aside.is_some() {
        // Nothing is to be there (it was moved aside): never over a file saved meanwhile.
        if !file.temp.persist_new(&file.name)? {
            return Ok(PlaceOutcome::Diverged);
        }
    } else {
        // The file replaced is kept as a version first (linked: the rename frees nothing).
        if let Some(version) = version {
            version.keep(&p.task, (folder, &file.name), "replaced", false);
        }
        file.temp.persist(&file.name)?;
    }
    // The file as it is in place (its rename changed its status time): the watcher's look
    // at it takes the announced hash rather than read it again.
    if let Some(meta) = file.handle.metadata().ok().filter(|_| file.made_here) {
        use std::os::unix::fs::MetadataExt;
        let ctime_ns = meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec();
        index.placed(p.path.clone(), (meta.dev(), meta.ino()), ctime_ns);
    }
    Ok(PlaceOutcome::Done)
}

/// The flush of one placement made by edits in place: announced, checked again (the same
/// file, unchanged, one name), then written through the undo journal ([`in_place::write`]).
pub(super) fn edit_into_place(
    p: &Placement,
    root: &Path,
    edit: PreparedEdit,
    index: &mut Index,
    (announced, version): (&mut Vec<RelPath>, &mut Option<VersionKeep>),
) -> Result<PlaceOutcome, EngineError> {
    announce(index, p, announced);
    let now = fingerprint(&edit.folder, &edit.name);
    let same_file = now.is_some_and(|(dev, ino, ..)| (dev, ino) == edit.target.id);
    if now != edit.seen || !same_file {
        return Ok(PlaceOutcome::Diverged);
    }
    let mode = match &p.target {
        State::File { mode, .. } => guard::masked(*mode),
        _ => 0,
    };
    // The file is about to change in place: its version is a copy (a reflink where the
    // file systems share extents).
    if let Some(version) = version {
        version.keep(&p.task, (&edit.folder, &edit.name), "edited", true);
    }
    in_place::write(
        &edit.staging,
        root,
        &p.path,
        &edit.target,
        &edit.edits,
        p.mtime_ns,
        mode,
    )?;
    Ok(PlaceOutcome::Done)
}

/// What is at `name` in `folder` goes aside (never over something there: a copy made
/// meanwhile stays), or is removed when the same copy is there already.
fn move_aside(folder: &Folder, name: &str, aside: &Aside) -> Result<(), EngineError> {
    if aside.already {
        return Ok(folder.remove(name)?);
    }
    Ok(folder.rename_noreplace(name, &aside.folder, aside.path.file_name())?)
}

/// The staged content `hash` at a temporary name in `folder`, with its mode and time, not
/// yet durable: moved out of staging when both are on one file system (written once),
/// copied otherwise. Returned with an open handle, to sync it. A copy cut short (a full
/// disk) leaves nothing behind.
pub(super) fn prepare_file(
    staging: &Staging,
    hash: &ContentHash,
    folder: &Folder,
    mode: u32,
    mtime_ns: i64,
) -> Result<(TempEntry, fs::File), EngineError> {
    let staged = staging.path_of(hash);
    let temp = match folder.adopt(&staged, PART_PREFIX) {
        Some(temp) => temp,
        None => {
            // Another file system (or one without the flag): a copy.
            let (temp, mut out) = folder.create_temp(PART_PREFIX)?;
            let mut from = fs::File::open(&staged)
                .map_err(|e| EngineError::io("open the received content", &staged, e))?;
            io::copy(&mut from, &mut out).map_err(|e| {
                EngineError::io(
                    "copy the received content to",
                    &folder.shown().join(temp.name()),
                    e,
                )
            })?;
            temp
        }
    };
    temp.set_mode(guard::masked(if mode == 0 { 0o644 } else { mode }))?;
    let handle = temp.open()?;
    let when = UNIX_EPOCH + Duration::from_nanos(mtime_ns.max(0).unsigned_abs());
    handle
        .set_modified(when)
        .map_err(|e| EngineError::io("set the time of", &folder.shown().join(temp.name()), e))?;
    Ok((temp, handle))
}

/// The folder holding `p`'s target, and what its new content needs: nothing (no content,
/// or the content is there already), the `edits` staged for what is there (the target
/// opened to write them in place), or a temporary file of the staged content.
pub(super) fn prepare_content(
    root: &TaskRoot,
    staging: &Staging,
    p: &Placement,
    edits: Option<InPlace>,
) -> Result<(Folder, Prepared), EngineError> {
    let (folder, name) = root
        .parent(&p.path)?
        .ok_or_else(|| missing_folder(root, &p.path))?;
    let State::File { hash, mode, .. } = &p.target else {
        return Ok((folder, Prepared::Nothing));
    };
    let content_here = p.expect.hash() == Some(*hash) && p.aside.is_none();
    if content_here {
        return Ok((folder, Prepared::Nothing));
    }
    if !staging.has(hash) {
        // Staged as edits of what is there (`Batch::check` read them, for it).
        let target = Target::open(&folder, name);
        let (Some(edits), Some(target)) = (edits, target) else {
            return Ok((folder, Prepared::Unusable));
        };
        let edit = PreparedEdit {
            target,
            edits,
            folder: folder.try_clone()?,
            name: name.to_owned(),
            seen: None,
            staging: staging.dir().to_owned(),
        };
        return Ok((folder, Prepared::Edit(edit)));
    }
    // A file of this device's person put back (a removed file reused) may still be open
    // in a program that writes to it: only a file the engine made is stamped.
    let made_here = !staging.was_reused(hash);
    let (temp, handle) = prepare_file(staging, hash, &folder, *mode, p.mtime_ns)?;
    let file = PreparedFile {
        temp,
        handle,
        name: name.to_owned(),
        seen: None,
        here: State::Deleted,
        aside: None,
        made_here,
    };
    Ok((folder, Prepared::File(file)))
}
