//! Carrying out the core's placements ([`qsync_core::Placement`]) on a real folder: check
//! that the disk holds what the core believes, change it, make it durable, and tell the
//! watcher's index first so that the change is not taken for the person's.
//!
//! All or nothing, as the core expects: each check happens before anything is changed,
//! and a file's new content goes to a temporary name beside the target, is made durable,
//! then renamed over the old one. Placements are made durable in batches ([`Batch`]): the
//! files' fsyncs run several at once (the file system commits them together) and the
//! names are made durable once per folder, instead of two fsyncs per file in a row. Every
//! path is reached through [`super::root`]: never through a symlink. What a peer may make
//! here is bounded by [`super::guard`]: modes are masked by the umask, and a link out of
//! the task folder is not made ([`PlaceOutcome::Failed`]).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::fs;
use std::path::{Path, PathBuf};

use qsync_base::{RelPath, TaskId};
use qsync_core::{PlaceOutcome, Placement, State};
use qsync_delta::InPlace;
use qsync_watch::Index;
use rustix::fs::FileType;

pub use super::staging::Staging;

use super::guard;
use super::in_place::Target;
use super::root::{Folder, TaskRoot, TempEntry};
use super::shelf::Shelf;
use crate::EngineError;

mod apply;
mod state;
use apply::{apply_now, edit_into_place, prepare_content, rename_into_place};
pub use state::{entry_for, state_at, state_in, state_of};
use state::{fingerprint, state_seen, Fingerprint};

/// A batch of at most this many files...
pub const BATCH_FILES: usize = 64;
/// ...or this many bytes of new content is made durable at once.
pub const BATCH_BYTES: u64 = 64 * 1024 * 1024;
/// Up to twice this many folders of a batch are synced one by one (their names made
/// durable); more, and their file systems are synced whole.
const SYNC_ONE_BY_ONE: usize = 4;
/// The temporary names of content on its way into a task folder (the watcher ignores
/// them; a start removes those a crash left).
pub const PART_PREFIX: &str = ".qsync-part-";

/// Placements begun and not yet durable. Each received file costs an fsync of its content
/// and of its folder when placed alone; a batch runs its files' fsyncs eight at a time,
/// then makes the names durable with an fsync per folder (one `syncfs` when they are in
/// many folders).
///
/// [`Batch::begin`] checks a placement and prepares it: a file's new content is moved (or
/// copied, from another file system) from staging to a temporary name beside its target,
/// given its mode and time; any other change (a removal, a folder, a link, a mode) is made
/// at once. [`Batch::flush`] makes the content durable, checks each target again (an edit
/// saved meanwhile wins: `Diverged`), moves the loser aside, renames, makes the names
/// durable, and only then reports every outcome. So the order the core relies on holds
/// for each file of the batch: durable content, rename, durable names, then the record;
/// and nothing at the target moves before the new content is verified and durable.
///
/// Every path is reached through [`TaskRoot`]: never through a symlink.
#[derive(Debug, Default)]
pub struct Batch {
    pending: Vec<Pending>,
    /// Folders this batch made (by their local path): later placements of the batch may
    /// use them as parents, although the core, not having heard of them yet, asks for them
    /// again.
    made: HashSet<PathBuf>,
    /// The task folders involved, and the folders whose names changed (task folder,
    /// folder inside it).
    roots: BTreeSet<PathBuf>,
    folders: BTreeSet<(PathBuf, Option<RelPath>)>,
    files: usize,
    bytes: u64,
}

#[derive(Debug)]
struct Pending {
    placement: Placement,
    root: PathBuf,
    /// Announced to the watcher's index so far (taken back if the placement fails).
    announced: Vec<RelPath>,
    /// The file's new content, to rename over its target; `None` when the change is made.
    file: Option<PreparedFile>,
    /// Or the edits to write into it (see `driver::in_place`).
    edit: Option<PreparedEdit>,
    /// Where the file it removes goes, kept for reuse (see `Staging::reuse_path`).
    reuse: Option<PathBuf>,
    /// The file it deletes or replaces, to keep as a version (its task keeps versions).
    version: Option<VersionKeep>,
}

/// A file that a placement deletes or replaces, to keep as a version (see `shelf.rs`):
/// what the ledger recorded of it, and why it was kept once it is.
#[derive(Debug)]
pub(super) struct VersionKeep {
    shelf: Shelf,
    version: KeptVersion,
    /// The largest file copied to the shelf (see [`Shelf::keep`]).
    copy_limit: u64,
    kept: bool,
    /// Kept on the shelf by this placement (let go again if the placement fails).
    made: bool,
}

impl VersionKeep {
    /// Keep the file `name` of `folder` on the shelf (a copy when `copy`: it is about to
    /// be changed in place), for the reason `why`.
    pub(super) fn keep(
        &mut self,
        task: &TaskId,
        (folder, name): (&Folder, &str),
        why: &'static str,
        copy: bool,
    ) {
        let kept = self.shelf.keep(
            (folder, name),
            task,
            &self.version.hash,
            (copy, self.copy_limit),
        );
        self.kept = kept.is_some();
        self.made = kept == Some(true);
        self.version.why = why;
    }

    /// A removed file kept for reuse: it goes to the shelf from staging if nobody
    /// reuses it (`Staging::sweep`).
    pub(super) fn kept_for_reuse(&mut self) {
        self.kept = true;
        self.version.why = "deleted";
    }

    /// The version kept, if the placement was made; a failed placement lets go of what it
    /// put on the shelf (the file it would have replaced is still there, and would share
    /// its inode with the shelf's copy).
    fn settled(self, task: &TaskId, done: bool) -> Option<KeptVersion> {
        if !done && self.made {
            self.shelf.unkeep(task, &self.version.hash);
        }
        (done && self.kept).then_some(self.version)
    }
}

/// A version kept by a placement: the content the path held (its bytes on the shelf, or
/// for a deleted file, kept for reuse in staging for a minute first), for the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeptVersion {
    /// The content, as recorded.
    pub hash: qsync_base::ContentHash,
    /// Its size.
    pub size: u64,
    /// Its modification time.
    pub mtime_ns: i64,
    /// `deleted`, `replaced` or `edited`.
    pub why: &'static str,
}

/// Edits to write into a placement's target, opened when the placement was begun.
#[derive(Debug)]
struct PreparedEdit {
    target: Target,
    edits: InPlace,
    folder: Folder,
    name: String,
    seen: Option<Fingerprint>,
    /// The staging folder, which holds the undo journal.
    staging: PathBuf,
}

/// What [`Batch::prepare`] made ready.
enum Prepared {
    /// Nothing more to do at the flush than a change made at once.
    Nothing,
    File(PreparedFile),
    Edit(PreparedEdit),
    /// The content is staged as edits only, and the target cannot take them in place.
    Unusable,
}

#[derive(Debug)]
struct PreparedFile {
    /// The content, under a temporary name in the target's folder.
    temp: TempEntry,
    handle: fs::File,
    /// The target's name in that folder.
    name: String,
    seen: Option<Fingerprint>,
    here: State,
    aside: Option<Aside>,
    /// Whether the engine made the file (fetched or copied content), rather than put back
    /// one of its person's files removed lately (which a program may still write to).
    made_here: bool,
}

/// Where what is at a path goes aside: its folder, its name there, whether the same copy
/// is there already (then ours is only removed).
#[derive(Debug)]
struct Aside {
    path: RelPath,
    folder: Folder,
    already: bool,
}

/// What a placement works from, once checked (see `Batch::check`): what is at its path
/// (and what was seen of it), the parents to make, where this device's version goes
/// aside, the edits staged for it.
struct Checked<'p> {
    here: State,
    seen: Option<Fingerprint>,
    parents: Vec<&'p RelPath>,
    aside: Option<Aside>,
    edits: Option<InPlace>,
}

/// What [`Batch::flush`] reports: each placement of the batch, its outcome (an error
/// means the disk may not be what the core believes: look again), and the version of the
/// file it deleted or replaced, if one was kept.
pub type Placed = Vec<(
    Placement,
    Result<PlaceOutcome, EngineError>,
    Option<KeptVersion>,
)>;

impl Batch {
    /// Nothing waiting.
    pub fn is_empty(&self) -> bool {
        self.pending.is_empty()
    }

    /// Enough to flush without waiting for a quiet moment.
    pub fn is_full(&self) -> bool {
        self.files >= BATCH_FILES || self.bytes >= BATCH_BYTES
    }

    /// Check `p` against the task folder `root` and prepare or make it (see [`Batch`]).
    /// `links_out`: the task allows symlinks out of its folder (see `guard`). `Some`
    /// outcome: decided now (nothing was changed unless it is `Done`, which only a
    /// placement with no names to make durable gets); `None`: reported by the next
    /// [`Batch::flush`]. `shelf`: where a file the placement deletes or replaces is kept
    /// as a version, and the largest file copied there (`None`: the task keeps none).
    pub fn begin(
        &mut self,
        root: &Path,
        staging: &Staging,
        p: &Placement,
        index: &mut Index,
        (links_out, shelf): (bool, Option<(&Shelf, u64)>),
    ) -> Result<Option<PlaceOutcome>, EngineError> {
        if guard::refusal(p, links_out).is_some() {
            return Ok(Some(PlaceOutcome::Failed));
        }
        let task_root = TaskRoot::open(root)?;
        let checked = match self.check(&task_root, root, staging, p, index)? {
            Ok(checked) => checked,
            Err(outcome) => return Ok(Some(outcome)),
        };
        let mut pending = Pending {
            placement: p.clone(),
            root: root.to_owned(),
            announced: Vec::new(),
            file: None,
            edit: None,
            reuse: None,
            version: None,
        };
        if let (Some((shelf, copy_limit)), State::File { hash, size, .. }) = (shelf, &checked.here)
        {
            if *size > 0 && p.aside.is_none() {
                let mtime_ns = index.get(&p.path).map_or(0, |e| e.mtime_ns);
                let version = KeptVersion {
                    hash: *hash,
                    size: *size,
                    mtime_ns,
                    why: "replaced",
                };
                pending.version = Some(VersionKeep {
                    shelf: shelf.clone(),
                    version,
                    copy_limit,
                    kept: false,
                    made: false,
                });
            }
        }
        if let (State::Deleted, State::File { hash, size, .. }) = (&p.target, &checked.here) {
            // A file removed here may have been renamed there: its content is wanted at
            // its new path soon (kept for `staging::REUSE_KEEP`).
            if *size > 0 {
                pending.reuse = Some(staging.keep_path(&p.task, hash));
            }
        }
        let (parents, edits) = (checked.parents, checked.edits);
        let prepared = self.prepare(&task_root, staging, &mut pending, index, parents, edits);
        let found = (checked.here, checked.seen, checked.aside);
        self.admit(root, p, prepared, pending, index, found)
    }

    /// What is at `p`'s path, its parents and its aside path now, checked against what
    /// the core expects: what the placement works from, or the outcome decided now
    /// (the disk diverged, the content is not staged, a folder to replace is not empty).
    fn check<'p>(
        &self,
        task_root: &TaskRoot,
        root: &Path,
        staging: &Staging,
        p: &'p Placement,
        index: &Index,
    ) -> Result<Result<Checked<'p>, PlaceOutcome>, EngineError> {
        let key = p.path.to_local(root);
        let (mut here, seen) = state_seen(task_root, &p.path, index)?;
        if here.is_folder() && p.expect == State::Deleted && self.made.contains(&key) {
            // Made by this batch to hold another placement: new to the core still.
            here = State::Deleted;
        }
        // A mode placed masked by the umask is what the core expects (see `guard`).
        if guard::as_recorded(here.clone(), &p.expect) != p.expect {
            return Ok(Err(PlaceOutcome::Diverged));
        }
        let Some(parents) = parents_to_make(&self.made, task_root, root, p)? else {
            return Ok(Err(PlaceOutcome::Diverged));
        };
        let aside = match &p.aside {
            Some(aside) => {
                let Some((folder, _)) = task_root.parent(aside)? else {
                    return Ok(Err(PlaceOutcome::Diverged));
                };
                let already = match state_in(task_root, aside, index)? {
                    State::Deleted => false,
                    // The same copy made by another device already: only remove ours.
                    there if there == here => true,
                    _ => return Ok(Err(PlaceOutcome::Diverged)),
                };
                Some(Aside {
                    path: aside.clone(),
                    folder,
                    already,
                })
            }
            None => None,
        };
        let content_here = here.hash() == p.target.hash() && p.aside.is_none();
        // Content staged as edits of what is here (read once, used by `prepare`).
        let mut edits = None;
        if let State::File { hash, .. } = &p.target {
            if !content_here && !staging.has(hash) {
                if p.aside.is_none() {
                    edits = staging.edits_for(hash, here.hash());
                }
                if edits.is_none() {
                    return Ok(Err(PlaceOutcome::NoContent));
                }
            }
        }
        let emptying = here.is_folder() && !p.target.is_folder() && p.aside.is_none();
        if emptying {
            let has_entries = match task_root.parent(&p.path)? {
                Some((folder, name)) => folder.has_entries(name)?,
                None => false,
            };
            if has_entries {
                return Ok(Err(PlaceOutcome::NotEmpty));
            }
        }
        Ok(Ok(Checked {
            here,
            seen,
            parents,
            aside,
            edits,
        }))
    }

    /// A placement prepared (or not): added to the batch (an edit in place, a new file to
    /// make durable, or a change with no content made now), or its outcome now.
    fn admit(
        &mut self,
        root: &Path,
        p: &Placement,
        prepared: Result<(Folder, Prepared), EngineError>,
        mut pending: Pending,
        index: &mut Index,
        (here, seen, aside): (State, Option<Fingerprint>, Option<Aside>),
    ) -> Result<Option<PlaceOutcome>, EngineError> {
        match prepared {
            Ok((_, Prepared::Edit(mut edit))) => {
                edit.seen = seen;
                self.roots.insert(root.to_owned());
                self.files += 1;
                self.bytes += edit.edits.len();
                pending.edit = Some(edit);
                self.pending.push(pending);
                Ok(None)
            }
            Ok((_, Prepared::Unusable)) => {
                // Edits staged for a target they cannot be written into (the file has
                // another name now, say): the daemon has the content fetched again, whole.
                withdraw(index, &pending.announced);
                Ok(Some(PlaceOutcome::NoContent))
            }
            Ok((folder, file)) => {
                let file = match file {
                    Prepared::File(file) => Some(file),
                    _ => None,
                };
                self.folders.insert((root.to_owned(), p.path.parent()));
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
                        let made = apply_now(p, &folder, seen, &here, aside, index, &mut pending);
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

    /// Make the parents of `pending` and, for new content, its temporary file (or open its
    /// target for the staged `edits`); returns the folder that holds the target.
    fn prepare(
        &mut self,
        root: &TaskRoot,
        staging: &Staging,
        pending: &mut Pending,
        index: &mut Index,
        parents: Vec<&RelPath>,
        edits: Option<InPlace>,
    ) -> Result<(Folder, Prepared), EngineError> {
        let p = &pending.placement;
        for parent in parents {
            let mode = guard::masked(0o755);
            let folder = State::Folder { mode };
            index.expect(parent.clone(), entry_for(parent, &folder, p.mtime_ns));
            pending.announced.push(parent.clone());
            let (holder, name) = root
                .parent(parent)?
                .ok_or_else(|| missing_folder(root, parent))?;
            holder.create_dir(name, mode)?;
            self.folders
                .insert((root.path().to_owned(), parent.parent()));
            self.made.insert(parent.to_local(root.path()));
        }
        prepare_content(root, staging, p, edits)
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
        let files: Vec<&PreparedFile> = batch
            .pending
            .iter()
            .filter_map(|p| p.file.as_ref())
            .collect();
        let synced = sync_files(&files);
        let mut folders = batch.folders;
        for mut pending in batch.pending {
            let p = pending.placement.clone();
            let Some(index) = tasks.get_mut(&p.task).map(&index) else {
                continue; // the task is gone: its temporary file goes with `pending`
            };
            let outcome = match (&synced, pending.file.take()) {
                (_, None) if pending.edit.is_some() => match pending.edit.take() {
                    Some(edit) => edit_into_place(
                        &p,
                        &pending.root,
                        edit,
                        index,
                        (&mut pending.announced, &mut pending.version),
                    ),
                    None => Ok(PlaceOutcome::Done),
                },
                (Err(e), Some(_)) => Err(EngineError::State(e.to_string())),
                (_, Some(file)) => rename_into_place(
                    &p,
                    &pending.root,
                    file,
                    index,
                    (&mut pending.announced, &mut pending.version),
                    &mut folders,
                ),
                (_, None) => Ok(PlaceOutcome::Done),
            };
            if !matches!(outcome, Ok(PlaceOutcome::Done)) {
                withdraw(index, &pending.announced);
            }
            let done = matches!(outcome, Ok(PlaceOutcome::Done));
            let kept = pending.version.and_then(|v| v.settled(&p.task, done));
            out.push((p, outcome, kept));
        }
        // Names (renames, removals, new entries) are durable before the core records them.
        let names = if folders.len() <= 2 * SYNC_ONE_BY_ONE {
            folders.iter().try_for_each(|(root, folder)| {
                let opened = TaskRoot::open(root).and_then(|r| r.folder(folder.as_ref()));
                match opened {
                    // Removed by a later placement of the batch: its removal is made
                    // durable with its own parent, which is in the set too.
                    Ok(None) => Ok(()),
                    Ok(Some(folder)) => folder.sync().map_err(EngineError::from),
                    Err(e) => Err(EngineError::from(e)),
                }
            })
        } else {
            sync_roots(&batch.roots)
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

/// Make a batch's new files durable, each with its own `fsync`, several at once (see
/// `qsync_store::direct::sync_each`). Not `syncfs`: that waits for every dirty page of
/// the file system, other programs' too, and made the first batch of a folder moved in
/// wait for the writing of all of its files on the sending side (the same disk, in the
/// bench: one file arrived in the first second of 100,000).
fn sync_files(files: &[&PreparedFile]) -> Result<(), EngineError> {
    let handles: Vec<&fs::File> = files.iter().map(|f| &f.handle).collect();
    let synced = qsync_store::direct::sync_each(&handles);
    for (f, synced) in files.iter().zip(synced) {
        let shown = || f.temp.folder().shown().join(&f.name);
        synced.map_err(|e| EngineError::io("sync", &shown(), e))?;
    }
    Ok(())
}

fn sync_roots(roots: &BTreeSet<PathBuf>) -> Result<(), EngineError> {
    for root in roots {
        TaskRoot::open(root)?.sync_file_system()?;
    }
    Ok(())
}

fn missing_folder(root: &TaskRoot, path: &RelPath) -> EngineError {
    EngineError::State(format!(
        "the folder holding {} is missing",
        path.to_local(root.path()).display()
    ))
}

/// The parents of `p` to make: those the batch has not `made`, and that are not folders
/// already; `None` when one is something else than the core expects.
fn parents_to_make<'p>(
    made: &HashSet<PathBuf>,
    task_root: &TaskRoot,
    root: &Path,
    p: &'p Placement,
) -> Result<Option<Vec<&'p RelPath>>, EngineError> {
    let mut parents = Vec::new();
    for parent in &p.parents {
        if made.contains(&parent.to_local(root)) {
            continue;
        }
        match task_root.stat(parent)? {
            None => parents.push(parent),
            // A folder there already (the placement of that folder, made a moment ago and
            // not yet recorded, or one the watcher has not reported yet): the content goes
            // into it. Anything else is not what the core expects.
            Some(e) if e.kind == FileType::Directory => {}
            Some(_) => return Ok(None),
        }
    }
    Ok(Some(parents))
}

/// Carry out `p` in the task folder `root` alone, durable when it returns (a batch of one;
/// links out of the folder refused).
pub fn place(
    root: &Path,
    staging: &Staging,
    p: &Placement,
    index: &mut Index,
) -> Result<PlaceOutcome, EngineError> {
    let mut batch = Batch::default();
    if let Some(outcome) = batch.begin(root, staging, p, index, (false, None))? {
        return Ok(outcome);
    }
    let mut tasks = HashMap::from([(p.task, index)]);
    let mut placed = batch.flush(&mut tasks, |index| &mut **index);
    match placed.pop() {
        Some((_, outcome, _)) => outcome,
        None => Ok(PlaceOutcome::Diverged),
    }
}

fn withdraw(index: &mut Index, announced: &[RelPath]) {
    for path in announced {
        index.withdraw(path);
    }
}

#[cfg(test)]
mod tests;
