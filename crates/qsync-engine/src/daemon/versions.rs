//! Versions as the daemon keeps them: a file that a received change deleted or replaced
//! is recorded once the placement is made (its bytes are on the shelf, `driver/shelf.rs`,
//! or kept for reuse in staging for a minute first), and so is the version before an
//! edit made here when the store kept a copy of it; each task's policy thins them every
//! minute and holds them within its cap; `qsync versions` lists them and `qsync restore`
//! brings one back into the task folder as a new file there, which the watcher then sees
//! and syncs to the other devices like any change of the person's.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use qsync_base::{ContentHasher, RelPath, TaskId};
use qsync_store::{NewVersion, Store, Version};

use crate::control::{Reply, VersionInfo};
use crate::driver::place::{KeptVersion, PART_PREFIX};
use crate::driver::root::TaskRoot;
use crate::driver::staging::{Staging, REUSE_KEEP};
use crate::sync::SyncDriver;
use crate::EngineError;

/// How often every task's versions are thinned...
pub(super) const THIN_EVERY: Duration = Duration::from_secs(60);
/// ...or once received changes kept this many bytes since (a peer deleting or replacing
/// much is held to the cap while it goes on).
const THIN_AFTER_BYTES: u64 = 256 << 20;

/// A file on the shelf that no version refers to is removed once it is this old: a
/// placement links the file it replaces there before its outcome (and the row) comes, a
/// moment later (a batch is made durable within a second or two).
const SHELF_GRACE: Duration = Duration::from_secs(10);

/// Versions kept by placements, waiting to be recorded together, and when they were last
/// thinned.
pub(super) struct Waiting {
    rows: Vec<(TaskId, NewVersion)>,
    since_thin: u64,
    thinned: std::time::Instant,
}

impl Waiting {
    pub(super) fn new() -> Self {
        Self {
            rows: Vec::new(),
            since_thin: 0,
            thinned: std::time::Instant::now(),
        }
    }

    /// A received change of `path` in `task` kept the file it deleted or replaced, made
    /// by `by` (as its record says).
    pub(super) fn push(
        &mut self,
        task: TaskId,
        path: &RelPath,
        by: Option<qsync_base::DeviceId>,
        kept: KeptVersion,
    ) {
        self.since_thin = self.since_thin.saturating_add(kept.size.max(4096));
        self.rows.push((
            task,
            NewVersion {
                path: path.clone(),
                hash: kept.hash,
                size: kept.size,
                mtime_ns: kept.mtime_ns,
                kept_ns: now_ns(),
                by,
                why: kept.why.to_owned(),
            },
        ));
    }

    /// A version kept otherwise (the one before an edit made here).
    fn push_row(&mut self, task: TaskId, version: NewVersion) {
        self.since_thin = self.since_thin.saturating_add(version.size.max(4096));
        self.rows.push((task, version));
    }

    /// Whether the versions are to be thinned now (then counted as thinned).
    pub(super) fn thin_due(&mut self) -> bool {
        let due = self.thinned.elapsed() >= THIN_EVERY || self.since_thin >= THIN_AFTER_BYTES;
        if due {
            self.thinned = std::time::Instant::now();
            self.since_thin = 0;
        }
        due
    }
}

/// Nanoseconds since the Unix epoch, now.
fn now_ns() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    i64::try_from(since.as_nanos()).unwrap_or(i64::MAX)
}

/// The store's versions and the driver's folders and shelf, for one command or one turn.
pub(super) struct Shelving<'a> {
    pub(super) store: &'a Store,
    pub(super) sync: &'a SyncDriver,
}

impl Shelving<'_> {
    fn staging(&self) -> &Staging {
        self.sync.staging()
    }

    /// Record the versions that received changes kept (see [`Waiting`]), in one
    /// transaction.
    pub(super) fn record(&self, waiting: &mut Waiting) {
        if waiting.rows.is_empty() {
            return;
        }
        if let Err(e) = self.store.versions().add_all(&waiting.rows) {
            tracing::warn!(error = %e, count = waiting.rows.len(), "could not record kept versions");
        }
        waiting.rows.clear();
    }

    /// Let go of what each task's policy no longer keeps, rows whose bytes are gone (a
    /// deleted file reused for a rename), and bytes no row wants.
    pub(super) fn thin(&self) {
        let now = now_ns();
        for (task, _) in self.sync.folders() {
            if let Err(e) = self.thin_task(*task, now) {
                tracing::warn!(%task, error = %e, "could not thin the task's versions");
            }
        }
    }

    fn thin_task(&self, task: TaskId, now: i64) -> Result<(), EngineError> {
        let versions = self.store.versions();
        let policy = versions.policy(task)?;
        let all = versions.list(task, None)?;
        let mut drop = policy.to_drop(&all, now);
        // A deleted file may have been taken for a rename on the other side (its bytes
        // are at the new path): its row goes once it is sure to be neither in staging nor
        // on the shelf. Looked for only among those deleted lately.
        let grace = i64::try_from((2 * REUSE_KEEP).as_nanos()).unwrap_or(i64::MAX);
        let lately = grace + i64::try_from((4 * THIN_EVERY).as_nanos()).unwrap_or(i64::MAX);
        for v in &all {
            let age = now - v.kept.kept_ns;
            if v.kept.why != "deleted" || age <= grace || age > lately {
                continue;
            }
            if self.staging().version_bytes(&task, &v.kept.hash).is_none() {
                drop.push(v.id);
            }
        }
        versions.remove(&drop)?;
        let wanted = versions.hashes(task)?;
        self.staging().shelf().sweep(&task, &wanted, SHELF_GRACE);
        Ok(())
    }

    /// The versions kept of `path` (a file or folder of a task, absolute), or of every
    /// task.
    pub(super) fn list(
        &self,
        path: Option<&Path>,
        newest: Option<u32>,
    ) -> Result<Reply, EngineError> {
        let mut all = Vec::new();
        let wanted: Vec<(TaskId, Option<RelPath>)> = match path {
            Some(path) => {
                let (task, _, rel) = locate(self.sync, path)?;
                vec![(task, rel)]
            }
            None => self.sync.folders().map(|(task, _)| (*task, None)).collect(),
        };
        for (task, under) in wanted {
            let listed = self.store.versions().list(task, under.as_ref())?;
            all.extend(listed.into_iter().map(|v| (task, v)));
        }
        let total = all.len() as u64;
        // Oldest first across the tasks; the newest only, when asked (described, with
        // a device name each, only those listed).
        all.sort_by_key(|(_, v)| (v.kept.kept_ns, v.id));
        let keep = newest.map_or(all.len(), |n| all.len().min(n as usize));
        let versions = all
            .drain(all.len() - keep..)
            .map(|(task, v)| self.info(task, v))
            .collect();
        Ok(Reply::Versions { versions, total })
    }

    /// How the device `by` is shown: `this device`, a linked device's name, or the start of
    /// its id as conflict copies' names hold it (`None`: not known).
    pub(super) fn label(&self, by: Option<qsync_base::DeviceId>) -> Option<String> {
        let by = by?;
        if by == self.sync.me() {
            return Some("this device".to_owned());
        }
        let name = self.store.device(by).ok().flatten().map(|d| d.name);
        Some(name.unwrap_or_else(|| qsync_core::rules::device_in_name(&by)))
    }

    fn info(&self, task: TaskId, v: Version) -> VersionInfo {
        let device = self.label(v.kept.by);
        VersionInfo {
            id: v.id,
            task,
            path: v.kept.path,
            size: v.kept.size,
            kept_ns: v.kept.kept_ns,
            mtime_ns: v.kept.mtime_ns,
            device,
            why: v.kept.why,
        }
    }

    /// Bring back the version `id` of `path` (the newest when `None`, or the newest kept
    /// at or before `at`; for a folder, that of each path beneath it) at `path`, or at
    /// `to` (absolute, in the same task).
    pub(super) fn restore(
        &self,
        path: &Path,
        (id, at): (Option<i64>, Option<i64>),
        to: Option<&Path>,
    ) -> Result<Reply, EngineError> {
        let (task, root, rel) = locate(self.sync, path)?;
        let all = self.store.versions().list(task, rel.as_ref())?;
        let chosen: Vec<&Version> = match id {
            Some(id) => all.iter().filter(|v| v.id == id).collect(),
            None => {
                // The newest of each path (the list is oldest first), kept by `at`.
                let mut seen = HashSet::new();
                let by = |v: &&Version| at.is_none_or(|at| v.kept.kept_ns <= at);
                let mut newest: Vec<&Version> = all
                    .iter()
                    .rev()
                    .filter(by)
                    .filter(|v| seen.insert(&v.kept.path))
                    .collect();
                newest.reverse();
                newest
            }
        };
        if chosen.is_empty() {
            return Err(EngineError::State(format!(
                "no version of {} is kept",
                path.display()
            )));
        }
        let target = match to {
            Some(to) => {
                let (to_task, _, to_rel) = locate(self.sync, to)?;
                if to_task != task || to_rel.is_none() {
                    return Err(EngineError::State(
                        "--to must name a path inside the same task's folder".into(),
                    ));
                }
                to_rel
            }
            None => None,
        };
        let mut restored = Vec::new();
        for v in chosen {
            let at = match (&target, &rel) {
                // A folder restored elsewhere: each path keeps its place beneath it.
                (Some(to), Some(from)) if chosen_is_folder(from, &v.kept.path) => {
                    let rest = v.kept.path.as_str()[from.as_str().len() + 1..].to_owned();
                    RelPath::new(format!("{}/{rest}", to.as_str()))
                        .map_err(|e| EngineError::State(e.to_string()))?
                }
                (Some(to), _) => to.clone(),
                (None, _) => v.kept.path.clone(),
            };
            self.put_back(task, &root, v, &at)?;
            restored.push(self.info(task, v.clone()));
        }
        let total = restored.len() as u64;
        Ok(Reply::Versions {
            versions: restored,
            total,
        })
    }

    /// Keep the file `name` of `folder` (at `at` in `task`) as a version, for the reason
    /// `why`, before a command of this device's person replaces or removes it: whatever
    /// the task's policy (its policy thins it later), as a restore or a conflict settled
    /// must lose nothing. The file is read to name it by what it holds (the index may not
    /// know it yet, or know an older content). The version to record once the change is
    /// made ([`Shelving::recorded`]); `None` when there is no file there. An error when
    /// there is one and it could not be kept: nothing is to be changed then.
    pub(super) fn keep_before(
        &self,
        task: TaskId,
        (folder, name): (&crate::driver::root::Folder, &str),
        at: &RelPath,
        why: &str,
    ) -> Result<Option<NewVersion>, EngineError> {
        let Some(entry) = folder.stat(name)? else {
            return Ok(None);
        };
        if entry.kind != rustix::fs::FileType::RegularFile {
            return Ok(None);
        }
        let hash = qsync_base::ContentHash::of_reader(folder.open_file(name)?)
            .map_err(|e| EngineError::io("read", &folder.shown().join(name), e))?;
        let kept = self
            .staging()
            .shelf()
            .keep((folder, name), &task, &hash, (false, u64::MAX));
        if kept.is_none() {
            return Err(EngineError::State(format!(
                "could not keep {at} as a version first; nothing was changed"
            )));
        }
        // Its maker, as recorded, when the file holds what was recorded; otherwise a change
        // of this device's person that the watcher has not reported yet.
        let record = self.store.record_of(&task, at).ok().flatten();
        let by = match record {
            Some(r) if r.state.hash() == Some(hash) => r.by,
            _ => Some(self.sync.me()),
        };
        Ok(Some(NewVersion {
            path: at.clone(),
            hash,
            size: entry.size,
            mtime_ns: entry.mtime_ns,
            kept_ns: now_ns(),
            by,
            why: why.to_owned(),
        }))
    }

    /// Record `kept` (from [`Shelving::keep_before`]) now that the change is made.
    pub(super) fn recorded(
        &self,
        task: TaskId,
        kept: Option<NewVersion>,
    ) -> Result<(), EngineError> {
        if let Some(kept) = kept {
            self.store.versions().add(task, &kept)?;
        }
        Ok(())
    }

    /// Copy the bytes of `v` to `at` in the task folder `root`: to a temporary file, made
    /// durable, renamed over what is there (a file there is kept as a version first).
    fn put_back(
        &self,
        task: TaskId,
        root: &Path,
        v: &Version,
        at: &RelPath,
    ) -> Result<(), EngineError> {
        let bytes = self
            .staging()
            .version_bytes(&task, &v.kept.hash)
            .ok_or_else(|| EngineError::State(format!("the bytes of version {} are gone", v.id)))?;
        let task_root = TaskRoot::open(root)?;
        make_parents(&task_root, at)?;
        let (folder, name) = task_root
            .parent(at)?
            .ok_or_else(|| EngineError::State(format!("no folder to restore {at} into")))?;
        let (temp, mut out) = folder.create_temp(PART_PREFIX)?;
        let mut from =
            std::fs::File::open(&bytes).map_err(|e| EngineError::io("open", &bytes, e))?;
        let mut hasher = ContentHasher::new();
        let mut buffer = vec![0u8; 1 << 16];
        loop {
            let n = from
                .read(&mut buffer)
                .map_err(|e| EngineError::io("read", &bytes, e))?;
            if n == 0 {
                break;
            }
            hasher.update(&buffer[..n]);
            out.write_all(&buffer[..n])
                .map_err(|e| EngineError::io("write", &folder.shown().join(name), e))?;
        }
        if hasher.finish() != v.kept.hash {
            tracing::warn!(%task, path = %at, "a restored version is not the content recorded for it (it was changed before it was kept); restored as it is");
        }
        let when = UNIX_EPOCH + Duration::from_nanos(v.kept.mtime_ns.max(0).unsigned_abs());
        let _ = out.set_modified(when);
        out.sync_all()
            .map_err(|e| EngineError::io("sync", &folder.shown().join(name), e))?;
        // The mode of the file it replaces, if any (versions do not keep theirs).
        let mode = folder
            .stat(name)?
            .filter(|e| e.kind == rustix::fs::FileType::RegularFile)
            .map_or(0o644, |e| e.mode & 0o777);
        temp.set_mode(mode)?;
        // What is there now is kept too: a restore loses nothing.
        let kept = self.keep_before(task, (&folder, name), at, "restored-over")?;
        temp.persist(name)?;
        self.recorded(task, kept)?;
        folder.sync()?;
        tracing::info!(%task, path = %at, version = v.id, "restored a version");
        Ok(())
    }
}

/// A file of `task` edited here (the person's edit, seen by the watcher), whose version
/// before was `old`: kept as a version when the store holds a copy of it (the base of
/// patches, `keeper.rs`: files of 16 KiB or more, within the budget), by a hard link to
/// that copy (both are never written again). An edit of a file without one is not kept:
/// its bytes were gone when the edit was seen.
pub(super) fn keep_local_edit(
    (waiting, blobs): (&mut Waiting, &qsync_store::Blobs),
    shelf: &crate::driver::shelf::Shelf,
    task: TaskId,
    (path, old, by): (
        &RelPath,
        qsync_base::ContentHash,
        Option<qsync_base::DeviceId>,
    ),
) {
    let blob = blobs.path(&old);
    let Ok(meta) = std::fs::metadata(&blob) else {
        return;
    };
    let to = shelf.path_of(&task, &old);
    let linked = to.is_file()
        || (std::fs::create_dir_all(shelf.task_dir(&task)).is_ok()
            && std::fs::hard_link(&blob, &to).is_ok());
    if !linked {
        return;
    }
    let mtime_ns = meta
        .modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX));
    let version = NewVersion {
        path: path.clone(),
        hash: old,
        size: meta.len(),
        mtime_ns,
        kept_ns: now_ns(),
        by,
        why: "edited-here".into(),
    };
    waiting.push_row(task, version);
}

/// The task synced at `path` (absolute), its folder, and `path` inside it (`None`: the
/// folder itself).
pub(super) fn locate(
    sync: &SyncDriver,
    path: &Path,
) -> Result<(TaskId, PathBuf, Option<RelPath>), EngineError> {
    for (task, folder) in sync.folders() {
        if let Ok(rest) = path.strip_prefix(&folder.root) {
            if rest.as_os_str().is_empty() {
                return Ok((*task, folder.root.clone(), None));
            }
            let rel = rest
                .to_str()
                .and_then(|r| RelPath::new(r).ok())
                .ok_or_else(|| {
                    EngineError::State(format!("{} cannot be synced (its name)", path.display()))
                })?;
            return Ok((*task, folder.root.clone(), Some(rel)));
        }
    }
    Err(EngineError::State(format!(
        "{} is in no task synced here",
        path.display()
    )))
}

/// Whether `path` lies beneath the folder `from` (a folder restored whole).
fn chosen_is_folder(from: &RelPath, path: &RelPath) -> bool {
    path != from && path.starts_with(from)
}

/// Make the folders holding `path` that are missing.
fn make_parents(root: &TaskRoot, path: &RelPath) -> Result<(), EngineError> {
    let mut parents = Vec::new();
    let mut at = path.parent();
    while let Some(parent) = at {
        at = parent.parent();
        parents.push(parent);
    }
    for parent in parents.into_iter().rev() {
        if root.stat(&parent)?.is_none() {
            let (holder, name) = root
                .parent(&parent)?
                .ok_or_else(|| EngineError::State(format!("no folder to make {parent} in")))?;
            holder.create_dir(name, 0o755)?;
        }
    }
    Ok(())
}
