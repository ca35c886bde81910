//! The received records waiting to be carried out, per path, oldest first ([`Queues`]),
//! and what each one is at ([`Item`], [`Step`]); and the one rule that looks across
//! paths: a folder whose deletion waits for the work under it.

use std::collections::{BTreeMap, VecDeque};
use std::ops::{Bound, Deref, DerefMut};
use std::time::Instant;

use qsync_base::{DeviceId, RelPath, TaskId, VersionVector};

use crate::state::Record;

/// A received record on its way to disk.
#[derive(Debug, Clone)]
pub(super) struct Item {
    pub(super) from: DeviceId,
    pub(super) record: Record,
    pub(super) step: Step,
    /// Its content is staged.
    pub(super) fetched: bool,
    /// A record received in the peer's sequence (settled when done), not a rival decided
    /// again.
    pub(super) tracked: bool,
    /// How many times a deletion of a folder found it not empty and waited for the
    /// deletions of what is left in it (at most `CHILDREN_WAITS`).
    pub(super) children_waits: u8,
    /// Failures in a row to fetch its content or to place it (the retry waits double).
    pub(super) failures: u8,
    /// Its claim of this device's changes was found above what this device made, and
    /// reported.
    pub(super) claim_noted: bool,
    /// Moved to the back of its queue for holding another peer's record (`patience.rs`)
    /// and not fetched since: no record gives way to it, however newer it claims to be.
    pub(super) stalled: bool,
    /// Waits for the work under it to be done (the deletion of its folder found it not
    /// empty while paths under it were queued): woken when it is (`wake_parents`).
    pub(super) below: bool,
}

/// Where an item is.
#[derive(Debug, Clone)]
pub(super) enum Step {
    /// To be decided.
    Ready,
    /// Its content was asked for.
    Fetching,
    /// A placement is under way; on success store `version` (and the aside copy, parents).
    Placing {
        version: VersionVector,
        aside: Option<(RelPath, Record)>,
        parents: Vec<RelPath>,
    },
    /// Decide again at this time.
    Waiting(Instant),
}

impl Item {
    /// `record` from `from`, to be decided: in the peer's sequence (`tracked`, settled
    /// when done), or a rival decided again.
    pub(super) fn new(from: DeviceId, record: Record, tracked: bool) -> Self {
        Self {
            from,
            record,
            step: Step::Ready,
            fetched: false,
            tracked,
            children_waits: 0,
            failures: 0,
            claim_noted: false,
            stalled: false,
            below: false,
        }
    }
}

/// The queues of received records, per task and path (a map of them, with the rules
/// below).
#[derive(Debug, Default)]
pub(super) struct Queues(BTreeMap<(TaskId, RelPath), VecDeque<Item>>);

impl Deref for Queues {
    type Target = BTreeMap<(TaskId, RelPath), VecDeque<Item>>;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl DerefMut for Queues {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl Queues {
    /// Queue `item` behind what `key` waits for (most paths have one item at a time:
    /// room for one, not the default four).
    pub(super) fn push(&mut self, key: &(TaskId, RelPath), item: Item) {
        self.0
            .entry(key.clone())
            .or_insert_with(|| VecDeque::with_capacity(1))
            .push_back(item);
    }

    /// The first item of `key`'s queue.
    pub(super) fn head_mut(&mut self, key: &(TaskId, RelPath)) -> Option<&mut Item> {
        self.0.get_mut(key).and_then(|q| q.front_mut())
    }

    /// Whether paths under the folder `key` have work queued. (Keys sort by path: those
    /// under it follow it, after siblings whose next character sorts before `/`.)
    pub(super) fn busy_below(&self, key: &(TaskId, RelPath)) -> bool {
        let folder = key.1.as_str();
        let after = (Bound::Excluded(key.clone()), Bound::Unbounded);
        for ((task, path), _) in self.0.range(after) {
            let Some(rest) = path.as_str().strip_prefix(folder) else {
                return false;
            };
            if *task != key.0 || rest.starts_with('/') {
                return *task == key.0;
            }
            if rest.as_bytes().first().is_some_and(|c| *c > b'/') {
                return false;
            }
        }
        false
    }

    /// The folders above `key` whose deletion waits (past `now`) for the work under them,
    /// and have none left.
    pub(super) fn waiting_above(
        &self,
        key: &(TaskId, RelPath),
        now: Instant,
    ) -> Vec<(TaskId, RelPath)> {
        let mut found = Vec::new();
        let mut parent = key.1.parent();
        while let Some(folder) = parent {
            let above = (key.0, folder);
            let waiting = self
                .0
                .get(&above)
                .and_then(|q| q.front())
                .is_some_and(|head| {
                    head.below && matches!(head.step, Step::Waiting(at) if at > now)
                });
            parent = above.1.parent();
            if waiting && !self.busy_below(&above) {
                found.push(above);
            }
        }
        found
    }
}
