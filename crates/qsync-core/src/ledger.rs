//! The core's persistent state, behind a trait: SQLite in the daemon (`qsync-store`), a map
//! in tests and the simulator ([`MemLedger`]).
//!
//! A driver applies all the writes of one [`Core::handle`](crate::Core::handle) call
//! atomically (one transaction) after it returns and before it carries out any effect, so a
//! crash leaves the ledger as it was before the call or after it. When a ledger call fails,
//! the core's call returns that error: the driver then rolls the transaction back and
//! starts a new [`Core`](crate::Core) (the old one's memory may be half-updated), as after
//! a restart.

use std::collections::{BTreeMap, BTreeSet};

use qsync_base::{DeviceId, RelPath, TaskId};

use crate::state::Record;

/// What the core reads and writes.
pub trait Ledger {
    /// Why a read or write failed (a disk or database error).
    type Error;

    /// The tasks this device syncs.
    fn tasks(&self) -> Result<Vec<TaskId>, Self::Error>;
    /// The devices `task` is linked with.
    fn peers(&self, task: &TaskId) -> Result<Vec<DeviceId>, Self::Error>;
    /// Link `task` with `peer` (creating the task if new).
    fn link(&mut self, task: &TaskId, peer: &DeviceId) -> Result<(), Self::Error>;

    /// The record of `path`, if any.
    fn record(&self, task: &TaskId, path: &RelPath) -> Result<Option<Record>, Self::Error>;
    /// Store `record`, replacing the path's previous one. `origin`: the peer it was taken
    /// from as is (that peer has it, so it is never sent back there); `None` for a version
    /// made here.
    fn put(
        &mut self,
        task: &TaskId,
        record: Record,
        origin: Option<DeviceId>,
    ) -> Result<(), Self::Error>;
    /// Up to `limit` records with a sequence number above `after`, in sequence order, each
    /// with its origin.
    fn records_after(
        &self,
        task: &TaskId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Option<DeviceId>)>, Self::Error>;
    /// The records of the paths strictly under `folder`.
    fn records_under(&self, task: &TaskId, folder: &RelPath) -> Result<Vec<Record>, Self::Error>;
    /// Up to `limit` records of paths strictly under `folder` that exist (no tombstone), in
    /// path order from `start` on, `start` included (backwards from it when `descending`),
    /// among the first [`live_scan_bound`]`(limit)` records there (tombstones included):
    /// what a folded run of a peer's records is rebuilt from (`fold.rs`). A read costs a
    /// run's worth, however many paths or tombstones the folder holds; a run with too many
    /// tombstones between its paths is then not rebuilt, and asked for in full.
    fn live_under(
        &self,
        task: &TaskId,
        folder: &RelPath,
        start: &RelPath,
        descending: bool,
        limit: usize,
    ) -> Result<Vec<Record>, Self::Error>;
    /// The highest sequence number used in `task` (0: none), a forgotten tombstone's
    /// included: a number is never used twice.
    fn last_seq(&self, task: &TaskId) -> Result<u64, Self::Error>;

    /// Up to `limit` tombstones (records of deleted paths) numbered in `after + 1 ..= upto`,
    /// in sequence order, each with its origin (as [`Ledger::records_after`]).
    fn tombstones(
        &self,
        task: &TaskId,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Option<DeviceId>)>, Self::Error>;
    /// Forget the tombstone of `path` (every linked device has it). Its sequence number
    /// stays used ([`Ledger::last_seq`]). A path whose record is not a tombstone is left as
    /// it is.
    fn forget_tombstone(&mut self, task: &TaskId, path: &RelPath) -> Result<(), Self::Error>;

    /// Versions of `path` received from peers, concurrent with ours, that ours won: kept so
    /// that they are decided again when ours changes (ours may then lose to them).
    fn rivals(&self, task: &TaskId, path: &RelPath)
        -> Result<Vec<(DeviceId, Record)>, Self::Error>;
    /// The paths that have rivals.
    fn rival_paths(&self, task: &TaskId) -> Result<Vec<RelPath>, Self::Error>;
    /// Keep (`Some`) or forget (`None`) `peer`'s rival version of `path`.
    fn set_rival(
        &mut self,
        task: &TaskId,
        path: &RelPath,
        peer: &DeviceId,
        rival: Option<Record>,
    ) -> Result<(), Self::Error>;

    /// A link made anew (after an unlink: the peer may have removed the task and started
    /// its sequence again): forget how far each side processed the other's sequence and
    /// which records came from `peer`, so the exchange starts from scratch.
    fn forget_peer(&mut self, task: &TaskId, peer: &DeviceId) -> Result<(), Self::Error>;

    /// How far this device has processed `peer`'s sequence for `task`.
    fn received_upto(&self, task: &TaskId, peer: &DeviceId) -> Result<u64, Self::Error>;
    /// Set that.
    fn set_received_upto(
        &mut self,
        task: &TaskId,
        peer: &DeviceId,
        seq: u64,
    ) -> Result<(), Self::Error>;
    /// How far `peer` said it has processed this device's sequence for `task`.
    fn acked_upto(&self, task: &TaskId, peer: &DeviceId) -> Result<u64, Self::Error>;
    /// Set that.
    fn set_acked_upto(
        &mut self,
        task: &TaskId,
        peer: &DeviceId,
        seq: u64,
    ) -> Result<(), Self::Error>;
}

/// How many records of a folder [`Ledger::live_under`] looks at to find `limit` that
/// exist.
pub fn live_scan_bound(limit: usize) -> usize {
    limit.saturating_mul(4).saturating_add(64)
}

/// A [`Ledger`] in memory.
#[derive(Debug, Clone, Default)]
pub struct MemLedger {
    links: BTreeMap<TaskId, BTreeSet<DeviceId>>,
    records: BTreeMap<(TaskId, RelPath), Record>,
    origins: BTreeMap<(TaskId, RelPath), DeviceId>,
    by_seq: BTreeMap<(TaskId, u64), RelPath>,
    received: BTreeMap<(TaskId, DeviceId), u64>,
    acked: BTreeMap<(TaskId, DeviceId), u64>,
    rivals: BTreeMap<(TaskId, RelPath, DeviceId), Record>,
    /// Per task: the highest number of a forgotten tombstone.
    forgotten: BTreeMap<TaskId, u64>,
}

impl MemLedger {
    /// An empty ledger.
    pub fn new() -> Self {
        Self::default()
    }

    /// The record of `path` (as [`Ledger::record`], which cannot fail here).
    pub fn get(&self, task: &TaskId, path: &RelPath) -> Option<Record> {
        self.records.get(&(*task, path.clone())).cloned()
    }

    /// Sync `task` here, linked to no device yet (as the store does at `task add`).
    pub fn add_task(&mut self, task: TaskId) {
        self.links.entry(task).or_default();
    }

    /// Unlink `task` from `peer` (as the store does when either side unlinks).
    pub fn unlink(&mut self, task: &TaskId, peer: &DeviceId) {
        if let Some(peers) = self.links.get_mut(task) {
            peers.remove(peer);
        }
    }

    /// Every record of `task`, by path.
    pub fn all(&self, task: &TaskId) -> Vec<Record> {
        self.records
            .iter()
            .filter(|((t, _), _)| t == task)
            .map(|(_, r)| r.clone())
            .collect()
    }
}

impl Ledger for MemLedger {
    type Error = std::convert::Infallible;

    fn tasks(&self) -> Result<Vec<TaskId>, Self::Error> {
        Ok(self.links.keys().copied().collect())
    }

    fn peers(&self, task: &TaskId) -> Result<Vec<DeviceId>, Self::Error> {
        Ok(self
            .links
            .get(task)
            .map(|s| s.iter().copied().collect())
            .unwrap_or_default())
    }

    fn link(&mut self, task: &TaskId, peer: &DeviceId) -> Result<(), Self::Error> {
        self.links.entry(*task).or_default().insert(*peer);
        Ok(())
    }

    fn record(&self, task: &TaskId, path: &RelPath) -> Result<Option<Record>, Self::Error> {
        Ok(self.records.get(&(*task, path.clone())).cloned())
    }

    fn put(
        &mut self,
        task: &TaskId,
        record: Record,
        origin: Option<DeviceId>,
    ) -> Result<(), Self::Error> {
        if let Some(old) = self.records.get(&(*task, record.path.clone())) {
            self.by_seq.remove(&(*task, old.seq));
        }
        match origin {
            Some(peer) => self.origins.insert((*task, record.path.clone()), peer),
            None => self.origins.remove(&(*task, record.path.clone())),
        };
        self.by_seq.insert((*task, record.seq), record.path.clone());
        self.records.insert((*task, record.path.clone()), record);
        Ok(())
    }

    fn records_after(
        &self,
        task: &TaskId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Option<DeviceId>)>, Self::Error> {
        Ok(self
            .by_seq
            .range((*task, after.saturating_add(1))..=(*task, u64::MAX))
            .take(limit)
            .filter_map(|((_, _), path)| {
                let key = (*task, path.clone());
                let record = self.records.get(&key)?.clone();
                Some((record, self.origins.get(&key).copied()))
            })
            .collect())
    }

    fn records_under(&self, task: &TaskId, folder: &RelPath) -> Result<Vec<Record>, Self::Error> {
        Ok(self
            .records
            .range((*task, folder.clone())..)
            .take_while(|((t, p), _)| t == task && p.as_str().starts_with(folder.as_str()))
            .filter(|((_, p), _)| p != folder && p.starts_with(folder))
            .map(|(_, r)| r.clone())
            .collect())
    }

    fn live_under(
        &self,
        task: &TaskId,
        folder: &RelPath,
        start: &RelPath,
        descending: bool,
        limit: usize,
    ) -> Result<Vec<Record>, Self::Error> {
        let in_task = |((t, _), _): &(&(TaskId, RelPath), &Record)| t == task;
        let under = |r: &&Record| r.path != *folder && r.path.starts_with(folder);
        let key = (*task, start.clone());
        let records = if descending {
            self.records
                .range(..=key)
                .rev()
                .take_while(in_task)
                .map(|(_, r)| r)
                .take_while(|r| r.path > *folder)
                .filter(under)
                .take(live_scan_bound(limit))
                .filter(|r| r.state.exists())
                .take(limit)
                .cloned()
                .collect()
        } else {
            // (From the folder on, if `start` comes before it.)
            let key = (*task, start.max(folder).clone());
            self.records
                .range(key..)
                .take_while(in_task)
                .map(|(_, r)| r)
                .take_while(|r| r.path.as_str().starts_with(folder.as_str()))
                .filter(under)
                .take(live_scan_bound(limit))
                .filter(|r| r.state.exists())
                .take(limit)
                .cloned()
                .collect()
        };
        Ok(records)
    }

    fn last_seq(&self, task: &TaskId) -> Result<u64, Self::Error> {
        let used = self
            .by_seq
            .range((*task, 0)..=(*task, u64::MAX))
            .next_back()
            .map_or(0, |((_, s), _)| *s);
        Ok(used.max(self.forgotten.get(task).copied().unwrap_or(0)))
    }

    fn tombstones(
        &self,
        task: &TaskId,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Option<DeviceId>)>, Self::Error> {
        if upto <= after {
            return Ok(Vec::new());
        }
        Ok(self
            .by_seq
            .range((*task, after + 1)..=(*task, upto))
            .filter_map(|(_, path)| {
                let key = (*task, path.clone());
                let record = self.records.get(&key).filter(|r| !r.state.exists())?;
                Some((record.clone(), self.origins.get(&key).copied()))
            })
            .take(limit)
            .collect())
    }

    fn forget_tombstone(&mut self, task: &TaskId, path: &RelPath) -> Result<(), Self::Error> {
        let key = (*task, path.clone());
        let Some(seq) = self
            .records
            .get(&key)
            .filter(|r| !r.state.exists())
            .map(|r| r.seq)
        else {
            return Ok(());
        };
        self.records.remove(&key);
        self.origins.remove(&key);
        self.by_seq.remove(&(*task, seq));
        let forgotten = self.forgotten.entry(*task).or_default();
        *forgotten = (*forgotten).max(seq);
        Ok(())
    }

    fn rivals(
        &self,
        task: &TaskId,
        path: &RelPath,
    ) -> Result<Vec<(DeviceId, Record)>, Self::Error> {
        Ok(self
            .rivals
            .iter()
            .filter(|((t, p, _), _)| t == task && p == path)
            .map(|((_, _, d), r)| (*d, r.clone()))
            .collect())
    }

    fn rival_paths(&self, task: &TaskId) -> Result<Vec<RelPath>, Self::Error> {
        let paths: BTreeSet<RelPath> = self
            .rivals
            .keys()
            .filter(|(t, _, _)| t == task)
            .map(|(_, p, _)| p.clone())
            .collect();
        Ok(paths.into_iter().collect())
    }

    fn set_rival(
        &mut self,
        task: &TaskId,
        path: &RelPath,
        peer: &DeviceId,
        rival: Option<Record>,
    ) -> Result<(), Self::Error> {
        let key = (*task, path.clone(), *peer);
        match rival {
            Some(record) => self.rivals.insert(key, record),
            None => self.rivals.remove(&key),
        };
        Ok(())
    }

    fn received_upto(&self, task: &TaskId, peer: &DeviceId) -> Result<u64, Self::Error> {
        Ok(self.received.get(&(*task, *peer)).copied().unwrap_or(0))
    }

    fn set_received_upto(
        &mut self,
        task: &TaskId,
        peer: &DeviceId,
        seq: u64,
    ) -> Result<(), Self::Error> {
        self.received.insert((*task, *peer), seq);
        Ok(())
    }

    fn acked_upto(&self, task: &TaskId, peer: &DeviceId) -> Result<u64, Self::Error> {
        Ok(self.acked.get(&(*task, *peer)).copied().unwrap_or(0))
    }

    fn set_acked_upto(
        &mut self,
        task: &TaskId,
        peer: &DeviceId,
        seq: u64,
    ) -> Result<(), Self::Error> {
        self.acked.insert((*task, *peer), seq);
        Ok(())
    }

    fn forget_peer(&mut self, task: &TaskId, peer: &DeviceId) -> Result<(), Self::Error> {
        self.received.remove(&(*task, *peer));
        self.acked.remove(&(*task, *peer));
        self.origins
            .retain(|(t, _), origin| t != task || origin != peer);
        Ok(())
    }
}
