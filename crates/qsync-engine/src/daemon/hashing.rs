//! Hashing the files of the tasks' folders, away from the engine thread. Reading a file to
//! know its hash takes as long as the file is large (a sparse file of 30 GiB reads as
//! 30 GiB of zeros: half a minute), and the engine thread answers the control socket, the
//! network and the placements, so it only stats what the watcher and the walks report:
//! the files `qsync-watch` hands back to hash ([`qsync_watch::ToHash`], from the watcher's
//! batches, the folds of walks, the looks again) are queued here, read by [`HASHERS`]
//! threads shared by every task, and their results come back to the engine
//! ([`Event::Hashed`]) to be folded into the task's index ([`qsync_watch::fold_hashed`]).
//! The fold looks at each file again: one changed while it was hashed is queued again (a
//! few times in a row at most, then left to the watcher's report of its next change).
//!
//! Bounds: [`HASHERS`] threads, of which at most one reads a file of [`LARGE`] bytes or
//! more at a time, so a huge file delays only itself: the other thread hashes the files
//! dropped in meanwhile. A file waits in the queue at most once (asked for again while
//! waiting, it is not queued twice): the queue holds at most one job per file of the
//! tasks, and results wait for the engine only as long as it takes to fold them in.

use std::collections::{HashMap, VecDeque};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::Sender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use qsync_base::{RelPath, TaskId};
use qsync_watch::{Hashed, ToHash};

use super::Event;
use crate::EngineError;

/// Threads that read files to hash them.
pub(super) const HASHERS: usize = 2;

/// A file at least this large is hashed by one thread at a time (the others keep to the
/// smaller ones).
pub(super) const LARGE: u64 = 64 * 1024 * 1024;

/// Results folded in by the engine at one go (the rest at its next turn).
const FOLDED_AT_ONCE: usize = 1024;

/// The engine's handle on the hashing threads; dropping it stops them (each after the
/// file it is reading).
pub(super) struct Hashers {
    shared: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    queue: Mutex<Queue>,
    /// Signalled when a file is queued, a large one is done, or the hashers are dropped.
    changed: Condvar,
    stopped: AtomicBool,
}

/// One file to hash, and the task folder it is in.
struct Job {
    root: PathBuf,
    file: ToHash,
}

#[derive(Default)]
struct Queue {
    /// The files waiting, by task and path (one job each).
    waiting: HashMap<(TaskId, RelPath), Job>,
    /// Their order, small files apart from large ones; a key no longer waiting is skipped.
    small: VecDeque<(TaskId, RelPath)>,
    large: VecDeque<(TaskId, RelPath)>,
    /// Whether a thread is reading a large file.
    reading_large: bool,
    /// Results not yet taken by the engine.
    done: Vec<(TaskId, Hashed)>,
}

impl Queue {
    /// The next job a thread may take: a small file first; a large one if no other
    /// thread is reading one. `true` with a large one.
    fn next(&mut self) -> Option<(TaskId, Job, bool)> {
        while let Some(key) = self.small.pop_front() {
            if let Some(job) = self.waiting.remove(&key) {
                return Some((key.0, job, false));
            }
        }
        if self.reading_large {
            return None;
        }
        while let Some(key) = self.large.pop_front() {
            if let Some(job) = self.waiting.remove(&key) {
                self.reading_large = true;
                return Some((key.0, job, true));
            }
        }
        None
    }
}

impl Hashers {
    /// Start the hashing threads of the daemon of `state_dir`; their results are
    /// announced on `events`.
    pub(super) fn start(
        events: &Sender<Event>,
        state_dir: &std::path::Path,
    ) -> Result<Self, EngineError> {
        let shared = Arc::new(Shared::default());
        for _ in 0..HASHERS {
            let hashing = Arc::clone(&shared);
            let events = events.clone();
            std::thread::Builder::new()
                .name("qsync-hash".into())
                .spawn(move || hashing.run(&events))
                .map_err(|e| EngineError::io("start the hashing threads for", state_dir, e))?;
        }
        Ok(Self { shared })
    }

    /// Queue `files` of the task `task`, whose folder is `root`.
    pub(super) fn queue(&self, task: TaskId, root: &std::path::Path, files: Vec<ToHash>) {
        if files.is_empty() {
            return;
        }
        if let Ok(mut queue) = self.shared.queue.lock() {
            for file in files {
                let key = (task, file.path().clone());
                if let Some(job) = queue.waiting.get_mut(&key) {
                    job.file.merge(file);
                    continue;
                }
                if file.size() >= LARGE {
                    queue.large.push_back(key.clone());
                } else {
                    queue.small.push_back(key.clone());
                }
                let root = root.to_owned();
                queue.waiting.insert(key, Job { root, file });
            }
        }
        self.shared.changed.notify_all();
    }

    /// Drop what waits for `task` (it is no longer synced here).
    pub(super) fn forget(&self, task: TaskId) {
        if let Ok(mut queue) = self.shared.queue.lock() {
            queue.waiting.retain(|(t, _), _| *t != task);
            queue.done.retain(|(t, _)| *t != task);
        }
    }

    /// The results waiting for the engine (at most [`FOLDED_AT_ONCE`]), and whether more
    /// are left.
    pub(super) fn take_done(&self) -> (Vec<(TaskId, Hashed)>, bool) {
        let Ok(mut queue) = self.shared.queue.lock() else {
            return (Vec::new(), false);
        };
        let take = queue.done.len().min(FOLDED_AT_ONCE);
        let taken = queue.done.drain(..take).collect();
        (taken, !queue.done.is_empty())
    }
}

impl Drop for Hashers {
    fn drop(&mut self) {
        // Under the lock: a thread checks `stopped` under it before it waits, so the
        // wakeup below cannot fall between its check and its wait.
        let _queue = self.shared.queue.lock();
        self.shared.stopped.store(true, Ordering::Relaxed);
        self.shared.changed.notify_all();
    }
}

impl Shared {
    /// One hashing thread: take a job, read the file, hand the result over; until the
    /// hashers are dropped or the engine is gone.
    fn run(&self, events: &Sender<Event>) {
        loop {
            let Some((task, job, large)) = self.wait_for_job() else {
                return;
            };
            let (path, size, started) = (job.file.path().clone(), job.file.size(), Instant::now());
            let hashed = job.file.hash(&job.root);
            if started.elapsed() >= std::time::Duration::from_secs(1) {
                tracing::info!(%task, %path, size, seconds = started.elapsed().as_secs_f64(), "hashed a large file");
            }
            let Ok(mut queue) = self.queue.lock() else {
                return;
            };
            if large {
                queue.reading_large = false;
                self.changed.notify_all();
            }
            // One announcement for results piling up: the engine takes them together.
            let first = queue.done.is_empty();
            queue.done.push((task, hashed));
            drop(queue);
            if first && events.send(Event::Hashed).is_err() {
                return;
            }
        }
    }

    /// The next job, once there is one this thread may take; `None` once stopped.
    fn wait_for_job(&self) -> Option<(TaskId, Job, bool)> {
        let mut queue = self.queue.lock().ok()?;
        loop {
            if self.stopped.load(Ordering::Relaxed) {
                return None;
            }
            if let Some(next) = queue.next() {
                return Some(next);
            }
            queue = self.changed.wait(queue).ok()?;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(task: TaskId, name: &str) -> (TaskId, RelPath) {
        (task, RelPath::new(name).unwrap())
    }

    /// A queue holding `files` (name, size) of one task, queued as `Hashers::queue` does.
    fn queue_of(task: TaskId, files: &[(&str, u64)]) -> Queue {
        let dir = tempfile::tempdir().unwrap();
        let mut queue = Queue::default();
        for (name, size) in files {
            let path = dir.path().join(name);
            std::fs::File::create(&path)
                .unwrap()
                .set_len(*size)
                .unwrap();
            let file = qsync_watch::observe_deferred(
                dir.path(),
                &mut qsync_watch::Index::default(),
                &qsync_watch::WatchBatch::Changes {
                    touched: [RelPath::new(*name).unwrap()].into(),
                    renames: Vec::new(),
                },
            )
            .unwrap()
            .to_hash
            .remove(0);
            let k = key(task, name);
            if *size >= LARGE {
                queue.large.push_back(k.clone());
            } else {
                queue.small.push_back(k.clone());
            }
            let root = dir.path().to_owned();
            queue.waiting.insert(k, Job { root, file });
        }
        queue
    }

    /// Two huge files and a small one queued behind them: one thread reads a huge file,
    /// the other gets the small one, and the second huge file waits for the first.
    #[test]
    fn one_large_file_at_a_time_and_small_files_beside_it() {
        let task = TaskId::random();
        let mut queue = queue_of(
            task,
            &[("huge1", 1 << 40), ("huge2", 1 << 40), ("small", 10)],
        );
        let name = |next: Option<(TaskId, Job, bool)>| {
            next.map(|(_, job, large)| (job.file.path().to_string(), large))
        };
        assert_eq!(name(queue.next()), Some(("small".into(), false)));
        assert_eq!(name(queue.next()), Some(("huge1".into(), true)));
        assert_eq!(name(queue.next()), None, "a second huge file at once");
        queue.reading_large = false;
        assert_eq!(name(queue.next()), Some(("huge2".into(), true)));
    }
}
