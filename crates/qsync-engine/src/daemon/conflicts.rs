//! Conflicts as a person settles them: `qsync conflicts` lists the conflict copies in the
//! tasks' folders (`name.sync-conflict-<time>-<id>-<device>.ext`, made when two devices
//! changed a file concurrently: the losing version, kept beside the winner, named after
//! the device that made it) with both versions and their makers, and
//! `qsync resolve` settles one by changing the folder as the person would by hand, which
//! the watcher then sees and syncs everywhere:
//! - `this`: the file at the original path stays, the copy goes;
//! - `other`: the copy's content takes the original path (the other copies of it, when
//!   three or more devices changed it, go);
//! - `both`: the copy stays under a plain name (`name.kept-<time>-<id>.ext`).
//!
//! Whatever a resolution removes or replaces is kept as a version first (`versions.rs`).

use std::path::Path;

use qsync_base::{RelPath, TaskId};
use qsync_core::rules::{conflict_original, is_conflict_copy};

use super::versions::{locate, Shelving};
use crate::control::{ConflictInfo, KeepSide, Reply};
use crate::driver::root::TaskRoot;
use crate::EngineError;

/// Lists and settles conflicts, keeping what it removes through `shelving`.
pub(super) struct Settling<'a> {
    pub(super) shelving: Shelving<'a>,
}

impl Settling<'_> {
    /// The conflict copies under `path` (absolute: a file, a copy or a folder of a task),
    /// or in every task.
    pub(super) fn list(&self, path: Option<&Path>) -> Result<Reply, EngineError> {
        let sync = self.shelving.sync;
        let wanted: Vec<(TaskId, Option<RelPath>)> = match path {
            Some(path) => {
                let (task, _, rel) = locate(sync, path)?;
                vec![(task, rel)]
            }
            None => sync.folders().map(|(task, _)| (*task, None)).collect(),
        };
        let mut out = Vec::new();
        for (task, under) in wanted {
            out.extend(self.copies(task, under.as_ref()));
        }
        Ok(Reply::Conflicts { conflicts: out })
    }

    /// The conflict copies of `task` at or under `under`, or of `under` itself when it
    /// names an original.
    fn copies(&self, task: TaskId, under: Option<&RelPath>) -> Vec<ConflictInfo> {
        let Some(folder) = self.shelving.sync.folder(&task) else {
            return Vec::new();
        };
        let index = &folder.index;
        let Ok(root) = TaskRoot::open(&folder.root) else {
            return Vec::new();
        };
        // The index may lag the disk by a watcher's batch (a copy placed or removed a
        // moment ago): the paths announced count too, and each copy is looked at.
        let mut candidates: Vec<&RelPath> = index
            .entries()
            .map(|e| &e.path)
            .chain(index.announced())
            .filter(|p| is_conflict_copy(p))
            .collect();
        candidates.sort();
        candidates.dedup();
        let file = |path: &RelPath| {
            root.stat(path)
                .ok()
                .flatten()
                .filter(|e| e.kind == rustix::fs::FileType::RegularFile)
        };
        let mut out = Vec::new();
        for path in candidates {
            let Some(copy) = file(path) else {
                continue;
            };
            let original = conflict_original(path);
            let wanted = under
                .is_none_or(|u| path.starts_with(u) || original.as_ref().is_some_and(|o| o == u));
            if !wanted {
                continue;
            }
            let there = original.as_ref().and_then(&file);
            let maker = |path: &RelPath| {
                let record = self.shelving.store.record_of(&task, path).ok().flatten();
                self.shelving.label(record.and_then(|r| r.by))
            };
            out.push(ConflictInfo {
                copy_device: maker(path),
                original_device: original.as_ref().and_then(maker),
                task,
                copy: path.clone(),
                copy_size: copy.size,
                copy_mtime_ns: copy.mtime_ns,
                original_size: there.map(|e| e.size),
                original_mtime_ns: there.map(|e| e.mtime_ns),
                original,
            });
        }
        out
    }

    /// Settle the conflicts of `path` (absolute: a copy, or an original with copies) by
    /// keeping `keep`; the copies settled.
    pub(super) fn resolve(&self, path: &Path, keep: KeepSide) -> Result<Reply, EngineError> {
        let (task, root, rel) = locate(self.shelving.sync, path)?;
        let rel =
            rel.ok_or_else(|| EngineError::State("name a file, not a task's folder".into()))?;
        let copies: Vec<ConflictInfo> = self
            .copies(task, Some(&rel))
            .into_iter()
            .filter(|c| c.copy == rel || c.original.as_ref() == Some(&rel))
            .collect();
        if copies.is_empty() {
            return Err(EngineError::State(format!(
                "{} has no conflict copy",
                path.display()
            )));
        }
        if copies.len() > 1 && keep == KeepSide::Other {
            return Err(EngineError::State(format!(
                "{} has {} conflict copies: name the one to keep (qsync conflicts lists them)",
                path.display(),
                copies.len()
            )));
        }
        let task_root = TaskRoot::open(&root)?;
        if keep == KeepSide::Other {
            // One copy's version wins: the other copies of the same original go too (kept
            // as versions), so that one file is left, as after a conflict of two.
            let chosen = &copies[0];
            let siblings: Vec<ConflictInfo> = match &chosen.original {
                Some(original) => self
                    .copies(task, Some(original))
                    .into_iter()
                    .filter(|c| c.original.as_ref() == Some(original) && c.copy != chosen.copy)
                    .collect(),
                None => Vec::new(),
            };
            self.settle(task, &task_root, chosen, KeepSide::Other)?;
            for sibling in &siblings {
                self.settle(task, &task_root, sibling, KeepSide::This)?;
            }
            return Ok(Reply::Conflicts {
                conflicts: copies.into_iter().chain(siblings).collect(),
            });
        }
        for copy in &copies {
            self.settle(task, &task_root, copy, keep)?;
        }
        Ok(Reply::Conflicts { conflicts: copies })
    }

    /// Settle one copy (see the [module documentation](self)).
    fn settle(
        &self,
        task: TaskId,
        root: &TaskRoot,
        copy: &ConflictInfo,
        keep: KeepSide,
    ) -> Result<(), EngineError> {
        let (folder, name) = root
            .parent(&copy.copy)?
            .ok_or_else(|| EngineError::State(format!("{} is not there any more", copy.copy)))?;
        match keep {
            KeepSide::This => {
                let kept =
                    self.shelving
                        .keep_before(task, (&folder, name), &copy.copy, "resolved")?;
                folder.remove(name)?;
                self.shelving.recorded(task, kept)?;
            }
            KeepSide::Other => {
                let original = copy.original.as_ref().ok_or_else(|| {
                    EngineError::State(format!("the original of {} is not known", copy.copy))
                })?;
                let target = original.file_name();
                let kept = self.shelving.keep_before(
                    task,
                    (&folder, target),
                    original,
                    "resolved-over",
                )?;
                folder.rename_within(name, target)?;
                self.shelving.recorded(task, kept)?;
            }
            KeepSide::Both => {
                let plain = name.replacen(".sync-conflict-", ".kept-", 1);
                folder.rename_noreplace(name, &folder, &plain)?;
            }
        }
        tracing::info!(%task, copy = %copy.copy, ?keep, "settled a conflict");
        Ok(())
    }
}
