//! Live watching: the system's events (notify: inotify on Linux) debounced per path into
//! [`WatchBatch`]es.
//!
//! A path is reported once it has been quiet for the debounce period (200 ms in the
//! daemon), so a file being written in many steps is read once it is done, except after
//! one event: a file closed after writing, then quiet for [`CLOSED_QUIET`], is reported
//! then, its writer being done. That makes a saved file reach the other devices in tens of
//! milliseconds, not hundreds. Any later event on the path (an editor renaming its
//! temporary file into place, say) puts it back on the whole period. A path written again
//! within [`STORM_GAP`] of its last early report must stay quiet twice as long as the time
//! before (20 ms, 40 ms, ... up to the period): a process that writes and closes in a loop
//! is soon debounced as any other writer, while a person's saves, a moment apart, each
//! arrive in tens of milliseconds.
//!
//! A file written to and not closed since is still open in its writer, which may only be
//! held up (the kernel makes writers wait while it writes back dirty pages; a save of
//! 100 MiB stalled right after truncating its file was once reported empty, and the other
//! device placed that empty version, then received the real one whole): it must stay quiet
//! [`UNCLOSED_QUIET`], not only the period. A writer that never closes (a database) is
//! reported all the same, once it has stopped for that long, or after the period's quiet
//! once it has been waiting [`OPEN_AT_MOST`] (one that commits twice a second; a save that
//! takes longer than that, and stalls, may be reported halfway then).
//!
//! Why not `notify-debouncer-full`: it has no such exception (every path waits for the
//! whole period), and its rename tracking keeps the file id of every path of the tree in
//! memory, a second copy of the tree beside the [`Index`]; here renames are only hints,
//! as the index decides them by content.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use notify::event::{AccessKind, AccessMode, ModifyKind, RenameMode};
use notify::{Event, EventKind, EventKindMask, RecommendedWatcher, RecursiveMode, Watcher};
use qsync_base::{EntryKind, RelPath};

use crate::hashing::{carry_renames, hash_now, look, Look, ToHash};
use crate::scan::{Filter, IGNORE_FILE};
use crate::stream::{walk_now, WalkPlan};
use crate::{Index, LocalEvent, WatchError};

/// How long a file closed after writing must stay quiet to be reported before the end of
/// the debounce period.
pub const CLOSED_QUIET: Duration = Duration::from_millis(10);

/// How often the debouncer looks for paths that are due, at most (the wait for events
/// when a closed file is pending is as long: a file is reported at most this much later).
const LOOK_EVERY: Duration = Duration::from_millis(5);

/// A file closed after writing again within this long of its last early report is taken
/// for a loop of writes (its next early report needs twice the quiet); after a longer
/// pause it is a new save, reported after [`CLOSED_QUIET`] again.
pub const STORM_GAP: Duration = Duration::from_millis(50);

/// How long a file written to and not closed since must stay quiet before it is reported
/// (when that is longer than the debounce period).
pub const UNCLOSED_QUIET: Duration = Duration::from_secs(1);

/// How long a file still open for writing waits for [`UNCLOSED_QUIET`] at most; after that
/// the period's quiet is enough.
pub const OPEN_AT_MOST: Duration = Duration::from_secs(30);

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

/// Watches one task's root; dropping it stops the watch (and its debouncing thread).
pub struct TaskWatcher {
    _watcher: RecommendedWatcher,
}

impl std::fmt::Debug for TaskWatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TaskWatcher")
    }
}

/// A touched path not yet reported.
#[derive(Debug, Clone, Copy)]
struct Touch {
    /// Its last event.
    at: Instant,
    /// That event was a close after writing (it may be reported early).
    closed: bool,
    /// It was written to, and not closed since: its writer may only be held up.
    open: bool,
    /// It was written to since it was last reported (a rename of it then waits).
    wrote: bool,
    /// Its last event was a rename (reported early after [`STORM_GAP`], not
    /// [`CLOSED_QUIET`]).
    renamed: bool,
    /// Its first event since it was last reported.
    first: Instant,
}

/// The debouncing state of one root: paths waiting for quiet, and which were reported
/// early lately. Sans-IO apart from the filter's look at whether a path is a folder.
struct Debounce {
    root: PathBuf,
    filter: Filter,
    period: Duration,
    pending: BTreeMap<RelPath, Touch>,
    renames: Vec<(RelPath, RelPath)>,
    /// Paths reported early lately: when last, and how many times in a row (each
    /// doubles the quiet the next early report needs).
    early: HashMap<RelPath, (Instant, u32)>,
}

impl Debounce {
    /// Take one event; a batch to deliver at once (a rescan), if any.
    fn event(&mut self, result: notify::Result<Event>, now: Instant) -> Option<WatchBatch> {
        let event = match result {
            Ok(event) => event,
            // A folder that could not be watched or walked (its permissions, say: a peer
            // may send a folder of mode 0o100) is looked at again, not the whole root.
            // Only lost events (no path: the system's queue, or its limit on watches)
            // call for a rescan.
            Err(e)
                if !e.paths.is_empty() && !matches!(e.kind, notify::ErrorKind::MaxFilesWatch) =>
            {
                tracing::warn!(root = %self.root.display(), error = %e, "a folder could not be watched");
                let touched = e
                    .paths
                    .into_iter()
                    .fold(Event::new(EventKind::Any), Event::add_path);
                return self.event(Ok(touched), now);
            }
            Err(e) => {
                return Some(WatchBatch::Rescan {
                    reason: e.to_string(),
                })
            }
        };
        if event.need_rescan() {
            return Some(WatchBatch::Rescan {
                reason: "the system's event queue overflowed".into(),
            });
        }
        // Opening, reading and closing unchanged change nothing (and reading a folder to
        // walk it must not come back as an event about it); closing after writing does.
        let closed_write = event.kind == EventKind::Access(AccessKind::Close(AccessMode::Write));
        if matches!(event.kind, EventKind::Access(_)) && !closed_write {
            return None;
        }
        let written = matches!(event.kind, EventKind::Modify(ModifyKind::Data(_)));
        let root = &self.root;
        let paths: Vec<RelPath> = event
            .paths
            .iter()
            .filter_map(|p| match RelPath::from_local(root, p) {
                Ok(path) => Some(path),
                Err(_) => {
                    if p.as_path() != root {
                        crate::scan::report_unsupported(p);
                    }
                    None
                }
            })
            .collect();
        // A rename of something settled (a person's `mv`) is whole when it is seen: it is
        // reported early, once quiet for [`STORM_GAP`] (an editor that renames the
        // original away before it writes the new one writes within that). One of what was
        // just written (a file, or anything in a folder: an editor's save through a
        // temporary file, a folder still being filled) waits the period, as any path
        // touched again after its close. (A temporary file the rules exclude, or one
        // reported already, is not seen written: such a save is reported early, whole.)
        let renamed = match (event.kind, &paths[..]) {
            (EventKind::Modify(ModifyKind::Name(RenameMode::Both)), [from, _]) => !self
                .pending
                .iter()
                .any(|(p, t)| t.wrote && p.starts_with(from)),
            _ => false,
        };
        let closed = closed_write || renamed;
        if let (EventKind::Modify(ModifyKind::Name(RenameMode::Both)), [from, to]) =
            (event.kind, &paths[..])
        {
            self.renames.push((from.clone(), to.clone()));
        }
        if paths.iter().any(|p| p.as_str() == IGNORE_FILE) {
            // The rules changed: read again (a file being written is read again at its
            // next event; the batch's own look reads them once it is quiet).
            match Filter::for_root(root) {
                Ok(filter) => self.filter = filter,
                Err(e) => {
                    tracing::warn!(error = %e, "could not read the new .qsyncignore; the old rules stay")
                }
            }
        }
        for path in paths {
            // Whether it is a folder is unknown once deleted; looking (only when a "dir/"
            // pattern names it) keeps those patterns working for folders that still exist.
            if self
                .filter
                .includes_lazy(&path, || path.to_local(root).is_dir())
            {
                // Other events (its mode, say) leave it open or closed as it was.
                let before = self.pending.get(&path);
                let was_open = before.is_some_and(|t| t.open);
                let first = before.map_or(now, |t| t.first);
                let open = written || (was_open && !closed);
                let wrote = written || closed_write || before.is_some_and(|t| t.wrote);
                let touch = Touch {
                    at: now,
                    closed,
                    open,
                    wrote,
                    renamed,
                    first,
                };
                self.pending.insert(path, touch);
            }
        }
        None
    }

    /// The paths due now, as one batch: quiet for the whole period, or closed after
    /// writing and quiet since (with their folders, if new too: a file is never reported
    /// before the folder holding it), and the renames among them.
    fn due(&mut self, now: Instant) -> Option<WatchBatch> {
        let period = self.period;
        self.early
            .retain(|_, (at, _)| now.duration_since(*at) < period);
        let mut touched = BTreeSet::new();
        for (path, touch) in &self.pending {
            let quiet = now.duration_since(touch.at);
            // Written again soon after its last early report: a loop, each time asked to
            // stay quiet twice as long. Written after a pause: a fresh save.
            let times = match self.early.get(path) {
                Some((last, n)) if touch.at.saturating_duration_since(*last) < STORM_GAP => *n,
                _ => 0,
            };
            let quiet_early = if touch.renamed {
                STORM_GAP
            } else {
                CLOSED_QUIET
            };
            let needed = quiet_early.saturating_mul(1 << times.min(16)).min(period);
            let held_long = now.duration_since(touch.first) >= OPEN_AT_MOST;
            if quiet >= period && (!touch.open || quiet >= UNCLOSED_QUIET || held_long) {
                touched.insert(path.clone());
            } else if touch.closed && quiet >= needed {
                self.early.insert(path.clone(), (now, times + 1));
                let mut at = Some(path.clone());
                while let Some(p) = at {
                    at = p.parent();
                    touched.insert(p);
                }
            }
        }
        touched.retain(|p| self.pending.remove(p).is_some());
        if touched.is_empty() {
            return None;
        }
        let (renames, later): (Vec<_>, Vec<_>) = std::mem::take(&mut self.renames)
            .into_iter()
            .partition(|(from, to)| touched.contains(from) || touched.contains(to));
        self.renames = later;
        Some(WatchBatch::Changes { touched, renames })
    }

    /// How long to wait for the next event before looking for due paths.
    fn wait(&self) -> Option<Duration> {
        if self.pending.is_empty() {
            None
        } else if self.pending.values().any(|t| t.closed) {
            Some(LOOK_EVERY)
        } else {
            Some((self.period / 4).max(CLOSED_QUIET))
        }
    }

    /// Run until the watcher is dropped or nobody listens.
    ///
    /// Due paths are looked for at most every [`LOOK_EVERY`]: a look goes over every
    /// pending path, and looking after each event made a folder of 100,000 files placed by
    /// the engine cost this thread a sixth of a core.
    fn run(mut self, events: Receiver<notify::Result<Event>>, out: Sender<WatchBatch>) {
        let mut looked: Option<Instant> = None;
        loop {
            let received = match self.wait() {
                None => events.recv().map_err(|_| RecvTimeoutError::Disconnected),
                Some(wait) => events.recv_timeout(wait),
            };
            let now = Instant::now();
            let mut batches = Vec::new();
            match received {
                Ok(result) => batches.extend(self.event(result, now)),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if looked.is_none_or(|at| now.duration_since(at) >= LOOK_EVERY) {
                looked = Some(now);
                batches.extend(self.due(now));
            }
            for batch in batches {
                if let WatchBatch::Rescan { reason } = &batch {
                    tracing::warn!(root = %self.root.display(), %reason, "events were lost; rescanning the whole folder");
                }
                if out.send(batch).is_err() {
                    return;
                }
            }
        }
    }
}

impl TaskWatcher {
    /// Watch `root` recursively; batches arrive on the returned channel once each path has
    /// been quiet for `debounce` (a file closed after writing: sooner; see the module's
    /// documentation).
    pub fn start(
        root: &Path,
        debounce: Duration,
    ) -> Result<(Self, Receiver<WatchBatch>), WatchError> {
        let failed = |e: &dyn std::fmt::Display| WatchError::Watch {
            path: root.to_owned(),
            message: e.to_string(),
        };
        let filter = Filter::for_root(root)?;
        let (raw_tx, raw_rx) = channel();
        let (tx, rx) = channel();
        // Links in the folder are synced as links and never followed: without this, notify
        // would watch what a link points to (a link to `/` from a peer would make the
        // watch fail, and one to another folder would report its files as the task's).
        //
        // Opens are not asked for: every file QSync hashes or serves is opened, and each
        // open would come back as an event to drop (a million of them on a first scan).
        // Closing after writing is asked for: it says a write is whole.
        let config = notify::Config::default()
            .with_follow_symlinks(false)
            .with_event_kinds(EventKindMask::CORE | EventKindMask::ACCESS_CLOSE);
        let mut watcher = RecommendedWatcher::new(
            move |result| {
                let _ = raw_tx.send(result);
            },
            config,
        )
        .map_err(|e| failed(&e))?;
        watcher
            .watch(root, RecursiveMode::Recursive)
            .map_err(|e| failed(&e))?;
        let debounce = Debounce {
            root: root.to_owned(),
            filter,
            period: debounce,
            pending: BTreeMap::new(),
            renames: Vec::new(),
            early: HashMap::new(),
        };
        std::thread::Builder::new()
            .name("qsync-watch".into())
            .spawn(move || debounce.run(raw_rx, tx))
            .map_err(|e| failed(&e))?;
        Ok((Self { _watcher: watcher }, rx))
    }
}

/// What a watcher batch showed: the events of the paths it named, the files among them
/// to hash, and the walks still to make (a new folder may hold files made before its
/// watch was set up; a rescan walks the whole root).
#[derive(Debug)]
pub struct Observed {
    /// The clean events of the paths the batch named (already in the index).
    pub events: Vec<LocalEvent>,
    /// Files the batch named whose content must be read: hashed on another thread
    /// ([`ToHash::hash`]) and folded in with [`fold_hashed`](crate::fold_hashed). The
    /// index keeps what it knew of them until then.
    pub to_hash: Vec<ToHash>,
    /// Walks to make, on another thread if need be, folded in with
    /// [`fold_walked`](crate::fold_walked) and [`look_again`](crate::look_again).
    pub walks: Vec<WalkPlan>,
}

/// Look at the disk for every path of `batch` and fold what is there into `index`,
/// without reading a file: returns the clean events, the files to hash, and the folders
/// to walk rather than walking them (a folder of a hundred thousand files is then
/// recorded and sent as it is walked, a file of 30 GiB hashed while the rest goes on).
pub fn observe_deferred(
    root: &Path,
    index: &mut Index,
    batch: &WatchBatch,
) -> Result<Observed, WatchError> {
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
            return Ok(Observed {
                events: Vec::new(),
                to_hash: Vec::new(),
                walks: vec![WalkPlan::new(index, None, filter)],
            })
        }
        WatchBatch::Changes { touched, renames } => (touched, renames),
    };
    let mut observed = Vec::with_capacity(touched.len());
    // A folder named by an event is walked: a new one may hold files created before its
    // watch was set up, and one removed and made again within a batch may hold other paths
    // than the index knows (their own events can be lost with the old watch). Folders
    // inside another one walked are left to that walk (`touched` is sorted: a folder comes
    // before what it holds).
    let mut folders: Vec<RelPath> = Vec::new();
    let mut to_hash = Vec::new();
    for path in touched {
        let state = match look(root, path, None, index)? {
            Look::Now(state) => state,
            Look::Hash(file) => {
                // (Checked against the rules of the moment when its hash is folded in.)
                to_hash.push(file);
                continue;
            }
        };
        // What `.qsyncignore` excludes now is not synced, whatever the debouncer's filter
        // (read before the latest change of the rules) let through.
        if state
            .as_ref()
            .is_some_and(|s| !filter.includes(path, s.kind == EntryKind::Folder))
        {
            continue;
        }
        if state.as_ref().is_some_and(|s| s.kind == EntryKind::Folder)
            && !folders.iter().any(|f| path.starts_with(f))
        {
            folders.push(path.clone());
        }
        observed.push((path.clone(), state));
    }
    carry_renames(renames, &mut observed, &mut to_hash);
    let events = index.observe(renames, observed);
    // Planned once the batch is in the index: after a rename, what moved with the folder.
    // After a change of the rules, the whole root: what they no longer exclude is new
    // (the debouncer dropped its events while it was excluded).
    let walks = if rules_changed {
        vec![WalkPlan::new(index, None, filter)]
    } else {
        folders
            .iter()
            .map(|folder| WalkPlan::new(index, Some(folder), filter.clone()))
            .collect()
    };
    Ok(Observed {
        events,
        to_hash,
        walks,
    })
}

/// [`observe_deferred`], with its files hashed and its walks made at once: every event
/// of the batch.
pub fn observe(
    root: &Path,
    index: &mut Index,
    batch: &WatchBatch,
) -> Result<Vec<LocalEvent>, WatchError> {
    let Observed {
        mut events,
        to_hash,
        walks,
    } = observe_deferred(root, index, batch)?;
    if !to_hash.is_empty() {
        let filter = Filter::for_root(root)?;
        events.extend(hash_now(root, index, &filter, to_hash));
    }
    for plan in walks {
        events.extend(walk_now(root, index, plan)?.0);
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn debounce(root: &Path) -> Debounce {
        Debounce {
            root: root.to_owned(),
            filter: Filter::for_root(root).unwrap(),
            period: Duration::from_millis(200),
            pending: BTreeMap::new(),
            renames: Vec::new(),
            early: HashMap::new(),
        }
    }

    /// A folder that could not be watched is looked at again once quiet; only events lost
    /// for good (no path named) make the whole root walked again.
    #[test]
    fn a_folder_not_watched_is_looked_at_and_lost_events_rescan() {
        let dir = tempfile::tempdir().unwrap();
        let mut d = debounce(dir.path());
        let now = Instant::now();
        let refused = notify::Error::io(std::io::Error::from(std::io::ErrorKind::PermissionDenied))
            .add_path(dir.path().join("locked"));
        assert!(d.event(Err(refused), now).is_none(), "no rescan");
        let later = now + Duration::from_secs(1);
        match d.due(later) {
            Some(WatchBatch::Changes { touched, .. }) => {
                assert!(touched.contains(&RelPath::new("locked").unwrap()))
            }
            other => panic!("expected the folder looked at, got {other:?}"),
        }
        let lost = notify::Error::new(notify::ErrorKind::MaxFilesWatch);
        assert!(matches!(
            d.event(Err(lost), later),
            Some(WatchBatch::Rescan { .. })
        ));
        let generic = notify::Error::generic("the queue overflowed");
        assert!(matches!(
            d.event(Err(generic), later),
            Some(WatchBatch::Rescan { .. })
        ));
    }
}
