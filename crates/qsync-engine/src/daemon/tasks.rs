//! The tasks synced here, as the engine keeps them beside their folders (which the sync
//! driver owns, with their indexes): each task's links, watcher and walking thread, the
//! hashing threads they share, and what those find. What the watcher reports, what walks
//! find and what the hashers read is folded into the folder's index, and its changes go
//! to the driver as the core's facts (a copy of each new file version owed to the keeper
//! first). Also when folders are looked at whole: the safety net every `rescan_every`,
//! once the daemon is quiet, and after a failed placement.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::mpsc::Sender;
use std::time::{Duration, Instant};

use qsync_base::{DeviceId, EntryKind, RelPath, TaskId};
use qsync_store::Blobs;
use qsync_watch::{observe_deferred, LocalEvent, Observed, TaskWatcher, WalkPlan, WatchBatch};
use tokio::sync::oneshot;

use super::hashing::Hashers;
use super::keeping::Keeping;
use super::walks::{self, Ended, Scanning, Walker};
use super::Event;
use crate::control::Reply;
use crate::driver::root::{RootError, TaskRoot};
use crate::sync::SyncDriver;
use crate::EngineError;

/// What the engine keeps of a task beside its folder.
pub(super) struct TaskState {
    pub(super) links: HashSet<DeviceId>,
    /// Paths found by the last whole walk whose names QSync cannot carry (logged; counted
    /// in `status`).
    pub(super) unsupported: usize,
    /// A walk of the whole folder under way.
    pub(super) scanning: Option<Scanning>,
    /// `task add` replies waiting for the first walk's end.
    pub(super) added: Vec<(Reply, oneshot::Sender<Reply>)>,
    pub(super) walker: Walker,
    pub(super) _watcher: Option<TaskWatcher>,
}

/// Where what is found goes: the folders' indexes and the core's facts (the driver), and
/// the blobs owed (with the blobs kept already, which are not owed again).
pub(super) struct Found<'a> {
    pub(super) sync: &'a mut SyncDriver,
    pub(super) keeping: &'a mut Keeping,
    pub(super) blobs: &'a Blobs,
    /// The store, read for the makers of the versions edits made here replace.
    pub(super) store: &'a qsync_store::Store,
    /// Where the versions before edits made here wait to be recorded.
    pub(super) versions: &'a mut super::versions::Waiting,
    /// Where front ends hear of changes made here.
    pub(super) feed: &'a crate::control::EventFeed,
}

/// The changes of one batch named one by one to front ends; more are counted.
const CHANGES_NAMED: usize = 64;

/// Tell front ends what changed here: the first [`CHANGES_NAMED`] paths of a batch, then
/// how many more (a folder of a million files found at once is one event, not a million).
fn tell_changes(feed: &crate::control::EventFeed, task: TaskId, events: &[LocalEvent]) {
    use crate::control::DaemonEvent;
    for event in events.iter().take(CHANGES_NAMED) {
        let (path, deleted) = match event {
            LocalEvent::Create(entry) | LocalEvent::Modify { entry, .. } => (&entry.path, false),
            LocalEvent::Delete { path, .. } => (path, true),
            LocalEvent::Rename { to, .. } => (to, false),
        };
        let path = Some(path.clone());
        feed.publish(DaemonEvent::Changed {
            task,
            path,
            deleted,
            more: 0,
        });
    }
    if events.len() > CHANGES_NAMED {
        let more = (events.len() - CHANGES_NAMED) as u64;
        feed.publish(DaemonEvent::Changed {
            task,
            path: None,
            deleted: false,
            more,
        });
    }
}

/// How long the watcher gathers a folder's changes into one batch.
const WATCH_DEBOUNCE: Duration = Duration::from_millis(200);

/// A placement that fails (rather than finding the disk changed) means the watcher missed
/// something (inotify drops events when folders come and go fast): the task's folder is
/// scanned whole and what differs is reported, at most this often.
const RESCAN_EVERY: Duration = Duration::from_secs(5);

/// The whole scan every `rescan_every` waits until content has stopped flowing (and local
/// changes stopped coming) for this long...
const RESCAN_QUIET: Duration = Duration::from_secs(5);
/// ...for at most this many periods.
const RESCAN_POSTPONED: u32 = 10;

/// The tasks (see the [module documentation](self)).
pub(super) struct Tasks {
    tasks: HashMap<TaskId, TaskState>,
    /// The threads that read and hash the files of the tasks' folders.
    hashers: Hashers,
    /// When each task's folder was last scanned whole because a placement failed.
    rescanned: HashMap<TaskId, Instant>,
    /// When every folder was last scanned whole.
    last_full_scan: Instant,
    /// How often every folder is scanned whole (zero: never; `Command::Configure`
    /// changes it).
    rescan_every: Duration,
    /// Where the watchers and walkers report.
    events: Sender<Event>,
}

impl Tasks {
    /// `Command::Configure`: how often every folder is scanned whole, from now on.
    pub(super) fn configure(&mut self, rescan_every: Option<u64>) -> crate::control::Reply {
        if let Some(every) = rescan_every {
            self.rescan_every = Duration::from_secs(every);
        }
        crate::control::Reply::Configured {
            rescan_every: self.rescan_every.as_secs(),
        }
    }

    pub(super) fn new(hashers: Hashers, rescan_every: Duration, events: Sender<Event>) -> Self {
        Self {
            tasks: HashMap::new(),
            hashers,
            rescanned: HashMap::new(),
            last_full_scan: Instant::now(),
            rescan_every,
            events,
        }
    }

    /// Start watching `task`'s folder at `root` (linked with `links`), and walking it as
    /// `walk` says (what changed while the daemon was not running).
    pub(super) fn start(
        &mut self,
        task: TaskId,
        root: &Path,
        links: HashSet<DeviceId>,
        walk: WalkPlan,
    ) -> Result<(), EngineError> {
        let (watcher, batches) = TaskWatcher::start(root, WATCH_DEBOUNCE)?;
        let forward = self.events.clone();
        std::thread::Builder::new()
            .name("qsync-watch-events".into())
            .spawn(move || {
                for batch in batches {
                    if forward.send(Event::Watch(task, batch)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| EngineError::io("start the watcher's thread for", root, e))?;
        // Walked on the task's own thread, its entries recorded as they come (`walks.rs`).
        let walker = Walker::start(task, root.to_owned(), self.events.clone())?;
        walker.queue(walk);
        let state = TaskState {
            links,
            unsupported: 0,
            scanning: Some(Scanning::new()),
            added: Vec::new(),
            walker,
            _watcher: Some(watcher),
        };
        self.tasks.insert(task, state);
        Ok(())
    }

    /// Stop syncing `task`: its watcher and walker stop, its files wait no more.
    pub(super) fn remove(&mut self, task: &TaskId) {
        self.tasks.remove(task);
        self.hashers.forget(*task);
    }

    pub(super) fn get(&self, task: &TaskId) -> Option<&TaskState> {
        self.tasks.get(task)
    }

    pub(super) fn get_mut(&mut self, task: &TaskId) -> Option<&mut TaskState> {
        self.tasks.get_mut(task)
    }

    pub(super) fn contains(&self, task: &TaskId) -> bool {
        self.tasks.contains_key(task)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&TaskId, &TaskState)> {
        self.tasks.iter()
    }

    pub(super) fn len(&self) -> usize {
        self.tasks.len()
    }

    /// Whether `device` is linked to `task` here.
    pub(super) fn linked(&self, task: &TaskId, device: &DeviceId) -> bool {
        self.tasks
            .get(task)
            .is_some_and(|t| t.links.contains(device))
    }

    /// Fold a watcher batch (a real one or one made up to look again) into `task`'s index
    /// and queue the changes it shows as the core's facts; the folders it names (the whole
    /// folder, for a rescan) are walked on the task's thread, their changes queued as they
    /// come (see `walks.rs`), and the files whose content must be read are hashed on the
    /// hashing threads (see `hashing.rs`). Returns how many changes were queued now.
    pub(super) fn observe(&mut self, to: &mut Found, task: TaskId, batch: &WatchBatch) -> usize {
        let (Some(state), Some(folder)) = (self.tasks.get_mut(&task), to.sync.folder_mut(&task))
        else {
            return 0;
        };
        match observe_deferred(&folder.root, &mut folder.index, batch) {
            Ok(Observed {
                events,
                to_hash,
                walks,
            }) => {
                self.hashers.queue(task, &folder.root, to_hash);
                for plan in walks {
                    if plan.start().is_none() {
                        state.scanning.get_or_insert_with(Scanning::new);
                    }
                    state.walker.queue(plan);
                }
                let count = events.len();
                hand_over(to, task, events);
                count
            }
            Err(e) => {
                tracing::warn!(%task, error = %e, "could not look at the folder");
                0
            }
        }
    }

    /// Look at `paths` of `task` on disk now, as if the watcher had named them, and queue
    /// what differs from the index.
    pub(super) fn look_at(&mut self, to: &mut Found, task: TaskId, paths: Vec<RelPath>) {
        // Only paths whose folders are real folders of the task: the watcher's look at a
        // path goes by name, and one under a link would be a file outside (its hash and
        // size would become a record sent to every peer).
        let root = to
            .sync
            .folder(&task)
            .and_then(|f| TaskRoot::open(&f.root).ok());
        let Some(root) = root else {
            return;
        };
        let inside = |path: &RelPath| match path.parent() {
            None => true,
            Some(parent) => !matches!(root.folder(Some(&parent)), Err(RootError::Escapes { .. })),
        };
        let batch = WatchBatch::Changes {
            touched: paths.into_iter().filter(inside).collect(),
            renames: Vec::new(),
        };
        let found = self.observe(to, task, &batch);
        if found > 0 {
            tracing::info!(%task, changes = found, "a placement found changes the watcher had not reported");
        }
    }

    /// Scan `task`'s folder whole and queue what differs from the index (unless it was
    /// scanned so within [`RESCAN_EVERY`] and `throttled`).
    pub(super) fn rescan(&mut self, to: &mut Found, task: TaskId, throttled: bool) {
        let recent = self
            .rescanned
            .get(&task)
            .is_some_and(|t| t.elapsed() < RESCAN_EVERY);
        if throttled && recent {
            return;
        }
        self.rescanned.insert(task, Instant::now());
        // Through the watcher's own rescan: `.qsyncignore` is read again first, so a path it
        // excludes now stops syncing rather than looking deleted. What it finds is logged
        // at its end (`walk_ended`).
        let rescan = WatchBatch::Rescan {
            reason: "a look at the whole folder".into(),
        };
        self.observe(to, task, &rescan);
    }

    /// Scan every task's folder whole when it is time to (every `rescan_every`), a safety
    /// net for what the watcher missed. It waits while content flows (`busy`: when the
    /// daemon last was) or a walk goes on: a whole walk then competes with them for the
    /// disk (with 100,000 files moved in, one began a minute after the start and walked
    /// for 64 s beside the placements), and what arrives meanwhile is told to the index as
    /// it is placed. It waits at most [`RESCAN_POSTPONED`] periods. Whether it scanned.
    pub(super) fn scan_when_due(&mut self, to: &mut Found, busy: Instant) -> bool {
        let (every, since) = (self.rescan_every, self.last_full_scan.elapsed());
        if every.is_zero() || since < every {
            return false;
        }
        let busy =
            busy.elapsed() < RESCAN_QUIET || self.tasks.values().any(|t| t.scanning.is_some());
        if busy && since < every.saturating_mul(RESCAN_POSTPONED) {
            return false;
        }
        self.last_full_scan = Instant::now();
        // A task whose folder is being walked whole already is left to that walk.
        let tasks: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.scanning.is_none())
            .map(|(task, _)| *task)
            .collect();
        for task in tasks {
            self.rescan(to, task, false);
        }
        true
    }

    /// A chunk of a walk of `task`'s folder: folded into the index, its changes queued as
    /// the core's facts.
    pub(super) fn walked(&mut self, to: &mut Found, task: TaskId, chunk: Vec<qsync_watch::Walked>) {
        let (Some(state), Some(folder)) = (self.tasks.get_mut(&task), to.sync.folder_mut(&task))
        else {
            return;
        };
        state.walker.folded();
        let found = chunk.len() as u64;
        // The filter now: `.qsyncignore` may have changed since the walk was planned.
        let Ok(filter) = qsync_watch::Filter::for_root(&folder.root) else {
            return;
        };
        let folded = qsync_watch::fold_walked(&folder.root, &mut folder.index, &filter, chunk);
        if let Some(scanning) = &mut state.scanning {
            scanning.entries += found;
            scanning.changes += folded.events.len() as u64;
        }
        // Changed since the walk hashed them: hashed again on the hashing threads.
        self.hashers.queue(task, &folder.root, folded.to_hash);
        hand_over(to, task, folded.events);
    }

    /// A walk of `task`'s folder ended: what it did not find is looked at again (gone,
    /// most likely), and once the whole folder was walked, `task add` is answered.
    pub(super) fn walk_ended(&mut self, to: &mut Found, task: TaskId, ended: Ended) {
        let (Some(state), Some(folder)) = (self.tasks.get_mut(&task), to.sync.folder_mut(&task))
        else {
            return;
        };
        let whole = ended.start.is_none();
        let failure = match ended.result {
            Ok(end) => {
                let events = match qsync_watch::Filter::for_root(&folder.root) {
                    Ok(filter) => {
                        let (root, index) = (&folder.root, &mut folder.index);
                        let folded = qsync_watch::look_again(root, index, &filter, end.unseen);
                        self.hashers.queue(task, root, folded.to_hash);
                        folded.events
                    }
                    Err(_) => Vec::new(),
                };
                if whole {
                    state.unsupported = end.unsupported.len();
                }
                if let Some(scanning) = state.scanning.as_mut().filter(|_| whole) {
                    scanning.changes += events.len() as u64;
                    tracing::info!(
                        %task,
                        entries = end.found,
                        changes = scanning.changes,
                        seconds = scanning.since.elapsed().as_secs_f64(),
                        "walked the whole folder"
                    );
                }
                hand_over(to, task, events);
                None
            }
            // Stopped: the task is going away.
            Err(qsync_watch::WatchError::Stopped) => return,
            Err(e) => {
                tracing::warn!(%task, start = ?ended.start, error = %e, "a walk of the folder failed; what it did not reach is looked at again at the next rescan");
                Some(e.to_string())
            }
        };
        if whole && !ended.more {
            state.scanning = None;
        }
        if whole {
            walks::answer_added(std::mem::take(&mut state.added), failure);
        }
    }

    /// Hashing threads have results: each folded into its task's index (the file looked at
    /// again first), its changes queued as the core's facts, and the files changed since
    /// they were hashed queued again. Whether more results wait.
    pub(super) fn hashed(&mut self, to: &mut Found) -> bool {
        let (done, more) = self.hashers.take_done();
        let mut by_task: Vec<(TaskId, Vec<qsync_watch::Hashed>)> = Vec::new();
        for (task, hashed) in done {
            match by_task.iter_mut().find(|(t, _)| *t == task) {
                Some((_, results)) => results.push(hashed),
                None => by_task.push((task, vec![hashed])),
            }
        }
        for (task, hashed) in by_task {
            let Some(folder) = to.sync.folder_mut(&task) else {
                continue;
            };
            // The filter now: `.qsyncignore` may have changed since the file was queued.
            let Ok(filter) = qsync_watch::Filter::for_root(&folder.root) else {
                continue;
            };
            let folded = qsync_watch::fold_hashed(&folder.root, &mut folder.index, &filter, hashed);
            self.hashers.queue(task, &folder.root, folded.to_hash);
            hand_over(to, task, folded.events);
        }
        more
    }
}

/// The watcher's `events` for `task` (already in its index), queued as the core's facts.
/// A copy of each new file version is kept: the base of the patches that carry its next
/// versions to devices that have this one. Owed to the keeper thread, off the path that
/// announces the change (copying each file first made a folder of new files wait for all
/// of them to be copied before the first record left).
fn hand_over(to: &mut Found, task: TaskId, events: Vec<LocalEvent>) {
    if events.is_empty() {
        return;
    }
    tell_changes(to.feed, task, &events);
    // Likely asked for at once: the keeper waits.
    to.keeping.changed();
    let shelf = to.sync.staging().shelf().clone();
    if let Some(folder) = to.sync.folder_mut(&task) {
        for event in &events {
            let (entry, previous) = match event {
                LocalEvent::Create(entry) => (entry, None),
                LocalEvent::Modify { entry, previous } => (entry, Some(*previous)),
                _ => continue,
            };
            if let (EntryKind::File, Some(hash)) = (entry.kind, entry.hash) {
                let edits = (previous.is_some(), previous.flatten());
                if let Some(old) = previous
                    .flatten()
                    .filter(|old| *old != hash && folder.versions_cap.is_some())
                {
                    let by = to.store.record_of(&task, &entry.path).ok().flatten();
                    let by = by
                        .filter(|r| r.state.hash() == Some(old))
                        .and_then(|r| r.by);
                    let store = (&mut *to.versions, to.blobs);
                    let was = (&entry.path, old, by);
                    super::versions::keep_local_edit(store, &shelf, task, was);
                }
                let content = (hash, entry.size);
                to.keeping
                    .version(folder, to.blobs, &entry.path, content, edits);
            }
        }
    }
    to.sync.local(task, events);
}
