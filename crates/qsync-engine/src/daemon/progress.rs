//! What `qsync events` hears of the transfers coming in: once a second, each transfer whose
//! bytes moved since the last look. A stalled transfer is not repeated, so a slow listener
//! is not flooded with the same lines and does not lose the events that matter
//! (questions) to them.

use std::collections::HashMap;

use qsync_base::{DeviceId, RelPath, TaskId};

use crate::control::TransferInfo;

/// The bytes each transfer had at the last look.
#[derive(Default)]
pub(super) struct Progress {
    shown: HashMap<(DeviceId, TaskId, RelPath), u64>,
}

impl Progress {
    /// Of the transfers under way `now`, those new or whose bytes moved since the last call.
    pub(super) fn moved(&mut self, now: Vec<TransferInfo>) -> Vec<TransferInfo> {
        let mut shown = HashMap::with_capacity(now.len());
        let moved = now
            .into_iter()
            .filter(|t| {
                let key = (t.device, t.task, t.path.clone());
                let before = self.shown.get(&key).copied();
                shown.insert(key, t.done);
                before != Some(t.done)
            })
            .collect();
        self.shown = shown;
        moved
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn transfer(path: &str, done: u64) -> TransferInfo {
        TransferInfo {
            device: DeviceId::from_bytes([1; 32]),
            task: TaskId::from_bytes([2; 32]),
            path: RelPath::new(path).unwrap_or_else(|_| unreachable!()),
            done,
            size: 100,
            patch: false,
            rate: 0,
        }
    }

    #[test]
    fn a_transfer_is_told_when_new_and_when_it_moves_never_while_it_stalls() {
        let mut progress = Progress::default();
        let first = progress.moved(vec![transfer("a", 10), transfer("b", 0)]);
        assert_eq!(first.len(), 2, "both new");
        let second = progress.moved(vec![transfer("a", 10), transfer("b", 5)]);
        assert_eq!(second.len(), 1);
        assert_eq!(second[0].path.as_str(), "b", "only the one that moved");
        assert!(
            progress.moved(vec![transfer("a", 10)]).is_empty(),
            "stalled"
        );
        // Gone, then back: told again.
        progress.moved(Vec::new());
        assert_eq!(progress.moved(vec![transfer("a", 10)]).len(), 1);
    }
}
