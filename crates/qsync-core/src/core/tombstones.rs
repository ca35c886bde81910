//! Forgetting tombstones every linked device has: the disk a task's deletions cost stays
//! bounded by what is still on its way somewhere, not by every path ever deleted.
//!
//! A tombstone (the record of a deleted path) is kept so that a device that has not heard
//! of the deletion yet does not bring the file back. Once every device the task is linked
//! with has acknowledged this device's sequence past a tombstone's number (the device it
//! came from need not: it has it), each of them holds that deletion or something newer,
//! and the tombstone is forgotten here. Its sequence number stays used (a peer would skip
//! a record numbered again).
//!
//! Only tombstones that hold none of this device's counters are forgotten: this device's
//! own counters for a path are what tells its honest peers' versions from forged claims
//! (`rules::claims_above`), and what its next change of the path counts above. So a device
//! keeps the deletions of paths it changed itself, however many; what its peers deleted,
//! and every tombstone a peer can make it hold, goes once it is everywhere. (A deletion of a
//! path never had here comes without this device's counters: one claimed for it is cut,
//! see `work.rs`.)
//!
//! A tombstone is kept while its path has work queued or rivals (a deletion that may still
//! lose or win). A device that never acknowledges (away for good, or hostile) holds every
//! tombstone of its tasks here until it is unlinked.

use std::collections::BTreeMap;

use qsync_base::{DeviceId, RelPath, TaskId};

use crate::ledger::Ledger;

/// How many tombstones one acknowledgement may forget: a bounded transaction. The rest
/// goes with the next acknowledgement.
pub const FORGET_PER_ACK: usize = 4096;

/// How far each task's tombstones were looked at.
#[derive(Debug, Default)]
pub(super) struct Tombstones {
    /// Per task, the sequence number up to which every tombstone was forgotten or is kept
    /// for good (it holds this device's counters). Starts at 0 each time the core starts.
    looked_upto: BTreeMap<TaskId, u64>,
}

impl Tombstones {
    /// Forget the tombstones of `task` that every linked device has (it acknowledged them,
    /// or it is where they came from), except those of paths `busy` names. `keys`: this
    /// device's counter keys. Returns how many were forgotten.
    pub(super) fn collect<L: Ledger>(
        &mut self,
        task: &TaskId,
        keys: &[DeviceId],
        busy: impl Fn(&RelPath) -> bool,
        ledger: &mut L,
    ) -> Result<usize, L::Error> {
        let last = ledger.last_seq(task)?;
        let mut acked = Vec::new();
        for peer in ledger.peers(task)? {
            acked.push((peer, ledger.acked_upto(task, &peer)?));
        }
        let everywhere = |seq: u64, origin: Option<DeviceId>| {
            acked
                .iter()
                .all(|(peer, upto)| Some(*peer) == origin || *upto >= seq)
        };
        let after = self.looked_upto.get(task).copied().unwrap_or(0);
        let found = ledger.tombstones(task, after, last, FORGET_PER_ACK)?;
        // Looked at for good up to the first tombstone still on its way somewhere.
        let mut looked = if found.len() < FORGET_PER_ACK {
            Some(last)
        } else {
            found.last().map(|(t, _)| t.seq)
        };
        let mut forgotten = 0;
        for (tombstone, origin) in found {
            let path = &tombstone.path;
            if !everywhere(tombstone.seq, origin)
                || busy(path)
                || !ledger.rivals(task, path)?.is_empty()
            {
                // Looked at again next time.
                looked = looked.map(|l| l.min(tombstone.seq - 1));
                continue;
            }
            if keys.iter().any(|k| tombstone.version.get(k) > 0) {
                continue;
            }
            ledger.forget_tombstone(task, path)?;
            forgotten += 1;
        }
        if let Some(looked) = looked {
            self.looked_upto.insert(*task, looked.max(after));
        }
        Ok(forgotten)
    }
}
