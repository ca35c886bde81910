//! Received versions of paths this device does not sync (its rules exclude them: the
//! driver answered their fetch or placement with `Input::Excluded`). They are
//! acknowledged, so that their senders settle, and parked here rather than recorded: when
//! the rules change (`Input::RulesChanged`, a new `.qsyncignore` placed or edited), they
//! are decided again, and those the rules now include are taken. The rules of two devices
//! change one after the other: a sender that stops excluding a path sends its new rules
//! and the files they now include together, and the receiver may look at a file before
//! its new rules are in place.
//!
//! Parked versions live in memory only (bounded by [`MAX_PARKED`]): after a restart, a
//! path excluded then included again here waits for its next change elsewhere.

use std::collections::BTreeMap;

use qsync_base::{DeviceId, RelPath, TaskId};

use crate::state::Record;

/// The most versions parked (beyond, the oldest paths are forgotten).
pub const MAX_PARKED: usize = 4096;

/// The versions parked, by task and path, with the peers that sent them (see the
/// module's header).
#[derive(Debug, Default)]
pub(crate) struct Excluded {
    parked: BTreeMap<(TaskId, RelPath), Vec<(DeviceId, Record)>>,
    /// The order paths were first parked in, to forget the oldest.
    order: std::collections::VecDeque<(TaskId, RelPath)>,
}

impl Excluded {
    /// Park `record` of `key`, sent by `from` (once per version and sender).
    pub(crate) fn park(&mut self, key: &(TaskId, RelPath), from: DeviceId, record: Record) {
        let versions = self.parked.entry(key.clone()).or_insert_with(|| {
            self.order.push_back(key.clone());
            Vec::new()
        });
        let known = versions
            .iter()
            .any(|(d, r)| *d == from && r.version == record.version);
        if !known {
            versions.push((from, record));
        }
        while self.parked.len() > MAX_PARKED {
            match self.order.pop_front() {
                Some(oldest) => {
                    self.parked.remove(&oldest);
                }
                None => break,
            }
        }
    }

    /// Take every version parked for `task`, to be decided again.
    pub(crate) fn take(&mut self, task: &TaskId) -> Vec<((TaskId, RelPath), DeviceId, Record)> {
        let keys: Vec<(TaskId, RelPath)> = self
            .parked
            .keys()
            .filter(|(t, _)| t == task)
            .cloned()
            .collect();
        self.order.retain(|(t, _)| t != task);
        let mut out = Vec::new();
        for key in keys {
            for (from, record) in self.parked.remove(&key).unwrap_or_default() {
                out.push((key.clone(), from, record));
            }
        }
        out
    }

    /// Forget what `peer` sent (no longer linked with `task`).
    pub(crate) fn forget(&mut self, task: &TaskId, peer: &DeviceId) {
        for ((t, _), versions) in self.parked.iter_mut() {
            if t == task {
                versions.retain(|(d, _)| d != peer);
            }
        }
        self.parked.retain(|_, versions| !versions.is_empty());
        let parked = &self.parked;
        self.order.retain(|k| parked.contains_key(k));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::state::State;
    use qsync_base::VersionVector;

    fn record(path: &str, n: u64) -> Record {
        Record {
            path: RelPath::new(path).unwrap(),
            state: State::Deleted,
            version: VersionVector::new().bumped(DeviceId::from_bytes([n as u8; 32])),
            mtime_ns: 0,
            seq: n,
        }
    }

    #[test]
    fn parked_versions_are_bounded_and_taken_per_task() {
        let mut x = Excluded::default();
        let (t1, t2) = (TaskId::from_bytes([1; 32]), TaskId::from_bytes([2; 32]));
        let peer = DeviceId::from_bytes([9; 32]);
        for i in 0..(MAX_PARKED as u64 + 10) {
            let key = (t1, RelPath::new(format!("f{i}")).unwrap());
            x.park(&key, peer, record("f", i));
            x.park(&key, peer, record("f", i)); // once
        }
        let key2 = (t2, RelPath::new("g").unwrap());
        x.park(&key2, peer, record("g", 1));
        assert_eq!(x.parked.len(), MAX_PARKED);
        assert_eq!(x.take(&t2).len(), 1);
        let taken = x.take(&t1);
        assert_eq!(taken.len(), MAX_PARKED - 1);
        assert!(taken.iter().all(|((t, _), ..)| *t == t1));
        assert!(x.take(&t1).is_empty());
        x.park(&key2, peer, record("g", 2));
        x.forget(&t2, &peer);
        assert!(x.take(&t2).is_empty());
    }
}
