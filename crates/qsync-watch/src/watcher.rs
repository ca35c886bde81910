//! Live watching with notify-debouncer-full.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver};
use std::time::Duration;

use notify_debouncer_full::notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify_debouncer_full::notify::{EventKind, RecommendedWatcher, RecursiveMode};
use notify_debouncer_full::{new_debouncer, DebounceEventResult, Debouncer, RecommendedCache};
use qsync_base::{EntryKind, RelPath};

use crate::scan::{stat_entry, walk, Filter, IGNORE_FILE};
use crate::{scan, Index, LocalEvent, WatchError};

/// What the watcher saw during one debounce period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WatchBatch {
    /// These paths were touched; these renames were reported.
    Changes {
        /// Every path an event named.
        touched: BTreeSet<RelPath>,
        /// Renames the system paired up (hints).
        renames: Vec<(RelPath, RelPath)>,
    },
    /// Events were lost (kernel queue overflow, watch error): the whole root must be rescanned.
    Rescan {
        /// Why, for the log.
        reason: String,
    },
}

/// Watches one task's root; dropping it stops the watch.
pub struct TaskWatcher {
    _debouncer: Debouncer<RecommendedWatcher, RecommendedCache>,
}

impl std::fmt::Debug for TaskWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskWatcher")
    }
}

fn batch_from(root: &Path, filter: &Filter, result: DebounceEventResult) -> Option<WatchBatch> {
    let events = match result {
        Ok(events) => events,
        Err(errors) => {
            let reason = errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ");
            return Some(WatchBatch::Rescan { reason });
        }
    };
    let mut touched = BTreeSet::new();
    let mut renames = Vec::new();
    let relative = |p: &PathBuf| match RelPath::from_local(root, p) {
        Ok(path) => Some(path),
        Err(_) => {
            if p.as_path() != root {
                crate::scan::report_unsupported(p);
            }
            None
        }
    };
    for event in events {
        if event.need_rescan() {
            return Some(WatchBatch::Rescan {
                reason: "the system's event queue overflowed".into(),
            });
        }
        // Opening, reading and closing unchanged change nothing (and reading a folder to
        // walk it must not come back as an event about it); closing after writing does.
        if let EventKind::Access(kind) = event.kind {
            if kind != AccessKind::Close(AccessMode::Write) {
                continue;
            }
        }
        let paths: Vec<RelPath> = event.paths.iter().filter_map(relative).collect();
        if let (EventKind::Modify(ModifyKind::Name(RenameMode::Both)), [from, to]) =
            (event.kind, &paths[..])
        {
            renames.push((from.clone(), to.clone()));
        }
        for path in paths {
            // Whether it is a folder is unknown once deleted; checking both ways keeps
            // "dir/" patterns working for folders that still exist.
            let is_dir = path.to_local(root).is_dir();
            if filter.includes(&path, is_dir) {
                touched.insert(path);
            }
        }
    }
    if touched.is_empty() {
        return None;
    }
    Some(WatchBatch::Changes { touched, renames })
}

impl TaskWatcher {
    /// Watch `root` recursively; batches arrive on the returned channel after `debounce` of
    /// quiet for each path.
    pub fn start(
        root: &Path,
        debounce: Duration,
    ) -> Result<(Self, Receiver<WatchBatch>), WatchError> {
        let filter = Filter::for_root(root)?;
        let (tx, rx) = channel();
        let handler_root = root.to_owned();
        let mut debouncer = new_debouncer(debounce, None, move |result: DebounceEventResult| {
            if let Some(batch) = batch_from(&handler_root, &filter, result) {
                if let WatchBatch::Rescan { reason } = &batch {
                    tracing::warn!(root = %handler_root.display(), %reason, "events were lost; rescanning the whole folder");
                }
                let _ = tx.send(batch);
            }
        })
        .map_err(|e| WatchError::Watch {
            path: root.to_owned(),
            message: e.to_string(),
        })?;
        debouncer
            .watch(root, RecursiveMode::Recursive)
            .map_err(|e| WatchError::Watch {
                path: root.to_owned(),
                message: e.to_string(),
            })?;
        Ok((
            Self {
                _debouncer: debouncer,
            },
            rx,
        ))
    }
}

/// Look at the disk for every path of `batch` and fold what is there into `index`;
/// returns the clean events. A new folder is walked, so files created in it before its
/// watch was set up are not missed.
pub fn observe(
    root: &Path,
    index: &mut Index,
    batch: &WatchBatch,
) -> Result<Vec<LocalEvent>, WatchError> {
    let filter = Filter::for_root(root)?;
    let rules_changed = match batch {
        WatchBatch::Rescan { .. } => true,
        WatchBatch::Changes { touched, .. } => touched.iter().any(|p| p.as_str() == IGNORE_FILE),
    };
    if rules_changed {
        // What `.qsyncignore` excludes now stops syncing: forgotten, never taken for deleted.
        index.forget_where(|path, is_folder| !filter.includes(path, is_folder));
    }
    let (touched, renames) = match batch {
        WatchBatch::Rescan { .. } => {
            let entries = scan(root, &index.to_map())?;
            return Ok(index.reconcile(entries));
        }
        WatchBatch::Changes { touched, renames } => (touched, renames),
    };
    let previous = index.to_map();
    let mut observed = Vec::with_capacity(touched.len());
    for path in touched {
        let state = stat_entry(root, path, index.get(path))?;
        let folder = state.as_ref().is_some_and(|s| s.kind == EntryKind::Folder);
        let known_folder = index.get(path).is_some_and(|e| e.kind == EntryKind::Folder);
        observed.push((path.clone(), state));
        if folder {
            // A folder named by an event is walked: a new one may hold files created before
            // its watch was set up, and one removed and made again within a batch may hold
            // other paths than the index knows (their own events can be lost with the old
            // watch).
            let found = walk(root, &path.to_local(root), &filter, &previous)?;
            let present: BTreeSet<RelPath> = found.iter().map(|e| e.path.clone()).collect();
            for entry in found {
                if !touched.contains(&entry.path) {
                    observed.push((entry.path.clone(), Some(entry)));
                }
            }
            if known_folder {
                // Gone, unless now excluded by `.qsyncignore` (the walk skips those): an
                // ignored path stops syncing, it is never taken for deleted.
                for gone in previous
                    .iter()
                    .filter(|(p, e)| {
                        p.starts_with(path)
                            && *p != path
                            && !present.contains(*p)
                            && !touched.contains(*p)
                            && filter.includes(p, e.kind == EntryKind::Folder)
                    })
                    .map(|(p, _)| p)
                {
                    observed.push((gone.clone(), None));
                }
            }
        }
    }
    Ok(index.observe(renames, observed))
}
