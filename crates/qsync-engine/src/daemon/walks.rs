//! Walks of a task's folder, on the task's own thread: the first scan of a task, the
//! rescans, the folders the watcher names. Their entries come back to the engine thread in
//! chunks ([`Event::Walked`]) while the walk goes on, so the engine keeps answering
//! commands and serving peers during a scan of a million files, and the first files of a
//! folder moved in are recorded and sent while the rest are still being hashed.
//!
//! At most [`MAX_CHUNKS_IN_FLIGHT`] chunks of one task wait for the engine: the walk waits
//! for the engine, so what a walk holds is bounded whatever the folder's size. A walk
//! queued while one covering it is still queued is dropped (that one will see it); one
//! covering walks already queued replaces them.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};

use qsync_base::{RelPath, TaskId};
use qsync_watch::{WalkEnd, WalkPlan};

use tokio::sync::oneshot;

use super::{Event, Reply};
use crate::EngineError;

/// Chunks of one task's walks handed to the engine and not yet folded in, at most.
pub(super) const MAX_CHUNKS_IN_FLIGHT: usize = 8;

/// The engine's handle on a task's walking thread; dropping it stops the thread (a walk
/// under way stops at its next chunk).
pub(super) struct Walker {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    /// Signalled when a walk is queued, a chunk folded in, or the walker dropped.
    changed: Condvar,
    stopped: AtomicBool,
}

#[derive(Default)]
struct State {
    queue: VecDeque<WalkPlan>,
    in_flight: usize,
}

/// How a walk ended, for the engine.
#[derive(Debug)]
pub struct Ended {
    /// Where it started (`None`: the whole folder).
    pub start: Option<RelPath>,
    /// Its end, or why it has none.
    pub result: Result<WalkEnd, qsync_watch::WatchError>,
    /// Whether another walk of the whole folder is queued.
    pub more: bool,
}

impl Walker {
    /// Start the walking thread of `task`, whose folder is `root`.
    pub(super) fn start(
        task: TaskId,
        root: PathBuf,
        events: Sender<Event>,
    ) -> Result<Self, EngineError> {
        let shared = Arc::new(Shared::default());
        let walking = Arc::clone(&shared);
        let walked = root.clone();
        std::thread::Builder::new()
            .name("qsync-walk".into())
            .spawn(move || walking.run(task, &walked, &events))
            .map_err(|e| EngineError::io("start the walking thread for", &root, e))?;
        Ok(Self { shared })
    }

    /// Queue a walk (see the module's documentation for which are dropped).
    pub(super) fn queue(&self, plan: WalkPlan) {
        if let Ok(mut state) = self.shared.state.lock() {
            if state.queue.iter().any(|queued| queued.covers(&plan)) {
                return;
            }
            state.queue.retain(|queued| !plan.covers(queued));
            state.queue.push_back(plan);
        }
        self.shared.changed.notify_all();
    }

    /// A chunk of this task's walks was folded in: room for another.
    pub(super) fn folded(&self) {
        if let Ok(mut state) = self.shared.state.lock() {
            state.in_flight = state.in_flight.saturating_sub(1);
        }
        self.shared.changed.notify_all();
    }
}

impl Drop for Walker {
    fn drop(&mut self) {
        // Under the lock: the thread checks `stopped` under it before it waits, so the
        // wakeup below cannot fall between its check and its wait.
        let _state = self.shared.state.lock();
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
    }
}

impl Shared {
    fn run(&self, task: TaskId, root: &std::path::Path, events: &Sender<Event>) {
        loop {
            let plan = {
                let Ok(mut state) = self.state.lock() else {
                    return;
                };
                loop {
                    if self.stopped.load(Ordering::Relaxed) {
                        return;
                    }
                    if let Some(plan) = state.queue.pop_front() {
                        break plan;
                    }
                    state = match self.changed.wait(state) {
                        Ok(state) => state,
                        Err(_) => return,
                    };
                }
            };
            let start = plan.start().cloned();
            let sink = |chunk| self.hand_over(task, chunk, events);
            let result = plan.run(root, &sink);
            let more = self
                .state
                .lock()
                .is_ok_and(|s| s.queue.iter().any(|p| p.start().is_none()));
            let ended = Ended {
                start,
                result,
                more,
            };
            if events.send(Event::WalkEnded(task, ended)).is_err() {
                return;
            }
        }
    }

    /// Send a chunk to the engine once there is room; `false` if the walk must stop.
    fn hand_over(
        &self,
        task: TaskId,
        chunk: Vec<qsync_watch::Walked>,
        events: &Sender<Event>,
    ) -> bool {
        let Ok(mut state) = self.state.lock() else {
            return false;
        };
        while state.in_flight >= MAX_CHUNKS_IN_FLIGHT {
            if self.stopped.load(Ordering::Relaxed) {
                return false;
            }
            state = match self.changed.wait(state) {
                Ok(state) => state,
                Err(_) => return false,
            };
        }
        if self.stopped.load(Ordering::Relaxed) {
            return false;
        }
        state.in_flight += 1;
        drop(state);
        events.send(Event::Walked(task, chunk)).is_ok()
    }
}

/// A walk of a whole task folder under way, for `status` and the log.
#[derive(Debug)]
pub(super) struct Scanning {
    pub since: std::time::Instant,
    /// Entries found so far.
    pub entries: u64,
    /// Changes they showed.
    pub changes: u64,
}

impl Scanning {
    pub(super) fn new() -> Self {
        Self {
            since: std::time::Instant::now(),
            entries: 0,
            changes: 0,
        }
    }
}

/// Answer the `task add` replies that waited for the first walk of the folder, with
/// `failure` if the walk failed.
pub(super) fn answer_added(added: Vec<(Reply, oneshot::Sender<Reply>)>, failure: Option<String>) {
    for (reply, to) in added {
        let reply = match &failure {
            None => reply,
            Some(e) => Reply::error(format!(
                "the task was added, but its folder could not be walked whole ({e}); what was found is synced, and the rest is looked at again at the next rescan"
            )),
        };
        let _ = to.send(reply);
    }
}
