//! Receive-only tasks: this device takes its peers' changes and sends none of its own.
//! What its person changes in the folder is not recorded: the ledger keeps the versions
//! received, and the changes stay on this disk only, as *drift* (each path's state on disk
//! where it differs from the version recorded), listed for the person
//! ([`Core::drift`](super::Core::drift)).
//! - A change received for a drifted path wins: it is placed over what is on disk (the
//!   driver keeps the replaced file as a version), and the path is in sync again.
//! - [`Input::Revert`](crate::Input::Revert) puts the received versions back: each
//!   drifted path is placed again from its record (its content fetched from the peers
//!   when this disk no longer has it), a path the person made is removed.
//! - Turned back to send-receive, the drift becomes this device's changes, as if the
//!   person had just made them.
//!
//! Like a pause, the type is not remembered across starts: the driver says so again after
//! each, and its first scan reports the drift again (the watcher sees the disk differ from
//! the ledger).

use std::collections::{BTreeMap, BTreeSet};

use qsync_base::{DeviceId, RelPath, TaskId, VersionVector};

use super::queues::Item;

use crate::ledger::Ledger;
use crate::state::{Record, State};

/// Whether the revert `head` of `key` is still to be placed: the path is still drift and
/// its record is still the one the revert puts back (a change received meanwhile settled
/// it, or the task is no longer receive-only: nothing to put back). Its content comes from
/// a connected linked device, chosen again if the one chosen is away.
pub(super) fn revert_due<L: Ledger>(
    head: &mut Item,
    key: &(TaskId, RelPath),
    drift: &Drift,
    connected: &BTreeSet<DeviceId>,
    ledger: &L,
) -> Result<bool, L::Error> {
    let recorded = ledger.record(&key.0, &key.1)?;
    let same = match &recorded {
        Some(r) => r.version == head.record.version && r.state == head.record.state,
        None => !head.record.state.exists(),
    };
    if !same || drift.on_disk(key).is_none() {
        return Ok(false);
    }
    if !connected.contains(&head.from) {
        let peers = ledger.peers(&key.0)?;
        if let Some(peer) = peers.into_iter().find(|p| connected.contains(p)) {
            head.from = peer;
        }
    }
    Ok(true)
}

/// The record that puts back "nothing here" over a path the person of a receive-only task
/// made (never recorded: the task's versions have none of it).
pub(super) fn absent(path: RelPath) -> Record {
    Record {
        path,
        state: State::Deleted,
        version: VersionVector::new(),
        mtime_ns: 0,
        seq: 0,
        retimed: None,
        by: None,
    }
}

/// The receive-only tasks and their drift.
#[derive(Debug, Default)]
pub(super) struct Drift {
    tasks: BTreeSet<TaskId>,
    /// Each drifted path: what is on disk (`Deleted`: nothing) and its time.
    paths: BTreeMap<(TaskId, RelPath), (State, i64)>,
}

impl Drift {
    /// Whether `task` is receive-only here.
    pub(super) fn covers(&self, task: &TaskId) -> bool {
        self.tasks.contains(task)
    }

    /// `task` is receive-only (`on`) or not any more; turned off, its drift is handed back
    /// (to be recorded as this device's changes).
    pub(super) fn set(&mut self, task: TaskId, on: bool) -> Vec<(RelPath, State, i64)> {
        if on {
            self.tasks.insert(task);
            return Vec::new();
        }
        self.tasks.remove(&task);
        self.take(&task)
    }

    /// What the person made at `key` (`seen`, over the version `current`): drift, or in
    /// sync again; a folder gone takes what was under it.
    pub(super) fn changed<L: Ledger>(
        &mut self,
        key: (TaskId, RelPath),
        seen: (State, i64),
        current: Option<Record>,
        ledger: &L,
    ) -> Result<(), L::Error> {
        let recorded = current.map_or(State::Deleted, |c| c.state);
        if !seen.0.is_folder() {
            // What the person made under it, never recorded, went with it.
            let (task, folder) = (&key.0, &key.1);
            self.paths
                .retain(|(t, p), _| t != task || p == folder || !p.starts_with(folder));
        }
        if !seen.0.exists() || (recorded.is_folder() && !seen.0.is_folder()) {
            for child in ledger.records_under(&key.0, &key.1)? {
                let gone = (State::Deleted, seen.1);
                self.observed((key.0, child.path), gone, &child.state);
            }
        }
        self.observed(key, seen, &recorded);
        Ok(())
    }

    /// The records to put back over the drift of `task` (for a path the person made:
    /// "nothing", [`absent`]).
    pub(super) fn recorded<L: Ledger>(
        &self,
        task: &TaskId,
        ledger: &L,
    ) -> Result<Vec<Record>, L::Error> {
        let mut records = Vec::new();
        for (path, _) in self.of(task) {
            records.push(match ledger.record(task, &path)? {
                Some(record) => record,
                None => absent(path),
            });
        }
        Ok(records)
    }

    /// What is on disk at `path` (`recorded`: the state of its version here, `Deleted` when
    /// none): drift, or in sync again.
    fn observed(
        &mut self,
        key: (TaskId, RelPath),
        (state, mtime_ns): (State, i64),
        recorded: &State,
    ) {
        if state == *recorded {
            self.paths.remove(&key);
        } else {
            self.paths.insert(key, (state, mtime_ns));
        }
    }

    /// `key` holds `on_disk` (and its time), which differs from its recorded version.
    pub(super) fn keep(&mut self, key: (TaskId, RelPath), on_disk: (State, i64)) {
        self.paths.insert(key, on_disk);
    }

    /// What is on disk at a drifted path, if it is one.
    pub(super) fn on_disk(&self, key: &(TaskId, RelPath)) -> Option<&State> {
        self.paths.get(key).map(|(state, _)| state)
    }

    /// `key` holds its recorded version again (a placement made it so).
    pub(super) fn settled(&mut self, key: &(TaskId, RelPath)) {
        self.paths.remove(key);
    }

    /// The drifted paths of `task`, with what is on disk.
    pub(super) fn of(&self, task: &TaskId) -> Vec<(RelPath, State)> {
        self.paths
            .iter()
            .filter(|((t, _), _)| t == task)
            .map(|((_, p), (s, _))| (p.clone(), s.clone()))
            .collect()
    }

    /// The drift of `task`, removed from here.
    fn take(&mut self, task: &TaskId) -> Vec<(RelPath, State, i64)> {
        let (taken, kept) = std::mem::take(&mut self.paths)
            .into_iter()
            .partition::<BTreeMap<_, _>, _>(|((t, _), _)| t == task);
        self.paths = kept;
        taken
            .into_iter()
            .map(|((_, p), (s, m))| (p, s, m))
            .collect()
    }
}
