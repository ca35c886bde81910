//! What the engine tells front ends (`qsync events`, the HTTP API's event stream), owned by
//! [`Telling`]: the feed events are published on, the linked devices' names they carry,
//! the received changes named one by one or counted, and the transfers' progress.

use std::time::{Duration, Instant};

use qsync_base::{DeviceId, TaskId};
use qsync_store::Store;

use super::progress::Progress;
use crate::control::{DaemonEvent, EventFeed, TransferInfo};
use crate::sync::Applied;

/// What is told to front ends (see the [module documentation](self)).
pub(super) struct Telling {
    feed: EventFeed,
    /// The linked devices' names, for events.
    names: Names,
    /// How many received changes were told one by one this second.
    told: Told,
    /// What was last told of the transfers coming in.
    progress: Progress,
}

impl Telling {
    /// Publish on `feed`.
    pub(super) fn new(feed: EventFeed) -> Self {
        Self {
            feed,
            names: Names::default(),
            told: Told::default(),
            progress: Progress::default(),
        }
    }

    /// The feed events are published on.
    pub(super) fn feed(&self) -> &EventFeed {
        &self.feed
    }

    /// Publish `event` (numbered and kept for the front ends that follow, see
    /// `qsync_control::EventFeed`).
    pub(super) fn tell(&self, event: DaemonEvent) {
        self.feed.publish(event);
    }

    /// `device` connected, or disconnected: told with its name (read from `store`).
    pub(super) fn connection(&mut self, store: &Store, device: DeviceId, connected: bool) {
        let name = self.names.of(store, device);
        self.tell(match connected {
            true => DaemonEvent::Connected { device, name },
            false => DaemonEvent::Disconnected { device, name },
        });
    }

    /// A received change was placed: told by name (the first of each second) or counted,
    /// and the conflict it made, if it did.
    pub(super) fn applied(&mut self, store: &Store, applied: &Applied) {
        if self.told.name_next(applied.task) {
            let name = self.names.of(store, applied.from);
            self.tell(DaemonEvent::Applied {
                task: applied.task,
                from: applied.from,
                name,
                path: Some(applied.path.clone()),
                deleted: applied.deleted,
            });
        }
        if let Some(kept_as) = applied.aside.clone() {
            self.tell(DaemonEvent::Conflict {
                task: applied.task,
                kept_as,
            });
        }
    }

    /// Once a second: the received changes counted, and each transfer coming in whose
    /// bytes moved (when someone listens; `transfers` lists them).
    pub(super) fn second(&mut self, transfers: impl FnOnce() -> Vec<TransferInfo>) {
        for (task, count) in self.told.take_counted() {
            self.tell(DaemonEvent::AppliedMore { task, count });
        }
        if self.feed.listening() {
            for transfer in self.progress.moved(transfers()) {
                self.feed.publish_transient(DaemonEvent::Transfer(transfer));
            }
        }
    }
}

/// Received changes told to front ends: the first [`APPLIED_NAMED`] of each second one
/// by one, the others counted per task and told once a second (a drop of 100,000 files
/// does not flush the event history, nor make every follower lag).
#[derive(Debug, Default)]
struct Told {
    second: Option<Instant>,
    named: u32,
    counted: std::collections::BTreeMap<TaskId, u64>,
}

/// Received changes named one by one each second.
const APPLIED_NAMED: u32 = 64;

impl Told {
    /// Whether the next received change of `task` is named; if not, it is counted.
    fn name_next(&mut self, task: TaskId) -> bool {
        if self
            .second
            .is_none_or(|at| at.elapsed() >= Duration::from_secs(1))
        {
            self.second = Some(Instant::now());
            self.named = 0;
        }
        if self.named < APPLIED_NAMED {
            self.named += 1;
            return true;
        }
        *self.counted.entry(task).or_default() += 1;
        false
    }

    /// The changes counted since the last call, per task.
    fn take_counted(&mut self) -> std::collections::BTreeMap<TaskId, u64> {
        std::mem::take(&mut self.counted)
    }
}

/// The linked devices' names for events, read from the store at most every few seconds:
/// an event per received file would otherwise read every device's record each time.
#[derive(Debug, Default)]
struct Names {
    read: Option<Instant>,
    names: std::collections::HashMap<DeviceId, String>,
}

impl Names {
    fn of(&mut self, store: &Store, device: DeviceId) -> Option<String> {
        // Read again when old, or for a device not known at the last read (just linked)
        // unless that read was a moment ago.
        let age = self.read.map(|at| at.elapsed());
        let stale = age.is_none_or(|age| age > Duration::from_secs(5));
        let missing = !self.names.contains_key(&device)
            && age.is_some_and(|age| age > Duration::from_millis(500));
        if stale || missing {
            let devices = store.devices().unwrap_or_default();
            self.names = devices.into_iter().map(|d| (d.id, d.name)).collect();
            self.read = Some(Instant::now());
        }
        self.names.get(&device).cloned()
    }
}
