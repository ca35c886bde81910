//! How the engine lends its parts to each other and carries out what the sync driver
//! reports: the driver run with the store and the connections (`sync_with`), changes made
//! across parts (`change`), what the tasks found folded into the driver's folders
//! (`with_found`), the read-only view (`overview`); then the driver's reports (a change
//! applied, paths to look at, a folder to rescan, a ledger to relearn) and the blobs owed.

use qsync_base::{DeviceId, TaskId};
use qsync_watch::Index;

use super::{changes, known, tasks, views, Engine, Surroundings};
use crate::control::DaemonEvent;
use crate::sync::{Applied, Report, SyncDriver};

impl Engine {
    /// Let the sync driver work with the store and the connections, then do what it
    /// reports (which may give it more to run).
    pub(super) fn sync_with<R>(
        &mut self,
        f: impl FnOnce(&mut SyncDriver, &mut Surroundings<'_>) -> R,
    ) -> R {
        let mut around = Surroundings {
            store: &mut self.store,
            peers: &mut self.peers,
        };
        let result = f(&mut self.sync, &mut around);
        self.settle();
        result
    }

    /// Make a change across the parts (see `changes.rs`), the facts it feeds the driver
    /// queued until it is made whole; then do what the sync driver reports, and tell
    /// `qsync events` of the connections it closed.
    /// The store's versions and the driver's shelf, for a command or the thinning.
    pub(super) fn shelving(&self) -> super::versions::Shelving<'_> {
        super::versions::Shelving {
            store: &self.store,
            sync: &self.sync,
        }
    }

    /// Conflicts listed and settled (what a settling removes is kept by the shelving).
    pub(super) fn settling(&self) -> super::conflicts::Settling<'_> {
        super::conflicts::Settling {
            shelving: self.shelving(),
        }
    }

    pub(super) fn change<R>(&mut self, f: impl FnOnce(&mut changes::Changes<'_>) -> R) -> R {
        let deferred = self.sync.is_deferred();
        self.sync.defer(true);
        let mut changes = changes::Changes {
            me: self.me,
            config: &self.config,
            store: &mut self.store,
            tasks: &mut self.tasks,
            sync: &mut self.sync,
            peers: &mut self.peers,
            links: &mut self.links,
            closed: Vec::new(),
        };
        let result = f(&mut changes);
        let closed = changes.closed;
        self.sync.defer(deferred);
        for device in closed {
            self.telling.connection(&self.store, device, false);
        }
        self.settle();
        result
    }

    /// Do what the sync driver reports, running it again while inputs wait.
    pub(super) fn settle(&mut self) {
        loop {
            while let Some(report) = self.sync.poll_report() {
                self.report(report);
            }
            if !self.sync.wants_run() {
                return;
            }
            let mut around = Surroundings {
                store: &mut self.store,
                peers: &mut self.peers,
            };
            self.sync.run(&mut around, None);
        }
    }

    /// Let the tasks fold what was found into the driver's folders.
    pub(super) fn with_found<R>(
        &mut self,
        f: impl FnOnce(&mut tasks::Tasks, &mut tasks::Found<'_>) -> R,
    ) -> R {
        let mut found = tasks::Found {
            sync: &mut self.sync,
            keeping: &mut self.keeping,
            blobs: self.store.blobs(),
            store: &self.store,
            versions: &mut self.versions,
            feed: self.telling.feed(),
        };
        f(&mut self.tasks, &mut found)
    }

    /// Do what the sync driver asks.
    pub(super) fn report(&mut self, report: Report) {
        match report {
            Report::Applied(applied) => self.applied(applied),
            Report::Delivered(device) => self.tell(DaemonEvent::Delivered { device }),
            Report::LookAt(task, paths) => {
                self.with_found(|tasks, found| tasks.look_at(found, task, paths));
            }
            Report::Rescan(task) => {
                self.with_found(|tasks, found| tasks.rescan(found, task, true));
            }
            Report::Relearn => self.relearn(),
        }
    }

    /// Hand the core one fact and carry out everything that follows.
    pub(super) fn feed(&mut self, input: qsync_core::Input) {
        self.sync_with(|sync, around| sync.feed(around, input));
    }

    /// The connection with `device` is gone (or replaced).
    pub(super) fn disconnected(&mut self, device: DeviceId) {
        self.sync_with(|sync, around| sync.disconnected(around, device));
    }

    /// A received change was placed: it is a new version (see [`keeping::Keeping::version`]),
    /// and `qsync events` hears it.
    pub(super) fn applied(&mut self, applied: Applied) {
        if let Some(kept) = applied.kept.clone() {
            self.versions
                .push(applied.task, &applied.path, applied.replaced_by, *kept);
        }
        let folder = self.sync.folder_mut(&applied.task);
        if let (Some(content), Some(folder)) = (applied.content, folder) {
            let edits = (applied.replaces.is_some(), applied.replaces);
            let blobs = self.store.blobs();
            self.keeping
                .version(folder, blobs, &applied.path, content, edits);
        }
        self.telling.applied(&self.store, &applied);
    }

    /// After a ledger failure: every folder's index again from the ledger, then a whole
    /// scan (what is on disk and not recorded becomes the core's facts).
    pub(super) fn relearn(&mut self) {
        let tasks: Vec<TaskId> = self.sync.folders().map(|(task, _)| *task).collect();
        for task in tasks {
            match known(&mut self.store, self.me, task) {
                Ok(known) => {
                    if let Some(folder) = self.sync.folder_mut(&task) {
                        folder.index = Index::new(known);
                    }
                    self.with_found(|tasks, found| tasks.rescan(found, task, false));
                }
                Err(e) => tracing::error!(%task, error = %e, "could not read the ledger"),
            }
        }
    }

    /// The parts, read, for the commands that only read.
    pub(super) fn overview(&self) -> views::Overview<'_> {
        views::Overview {
            me: self.me,
            store: &self.store,
            tasks: &self.tasks,
            sync: &self.sync,
            peers: &self.peers,
        }
    }
}
