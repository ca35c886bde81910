//! The received records waiting to be carried out, per path, oldest first ([`Queues`]),
//! and what each one is at ([`Item`], [`Step`]); and the one rule that looks across
//! paths: a folder whose deletion waits for the work under it.

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::ops::{Bound, Deref, DerefMut};
use std::time::Instant;

use qsync_base::{Causality, ContentHash, DeviceId, RelPath, TaskId, VersionVector};

use super::{MAX_RETRY_AFTER, RETRY_AFTER};

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
    /// When it was taken in (for "why is this not in sync": `Core::unsettled`).
    pub(super) since: Option<Instant>,
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
    /// This device's own recorded version, placed again over drift (a receive-only
    /// task's revert, `drift.rs`): not decided, and not recorded again once placed.
    pub(super) revert: bool,
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
        aside: Option<Box<(RelPath, Record)>>,
        parents: Vec<RelPath>,
    },
    /// Decide again at this time.
    Waiting(Instant),
}

impl Item {
    /// `record` from `from`, to be decided: in the peer's sequence (`tracked`, settled
    /// when done), or a rival decided again.
    pub(super) fn new(
        from: DeviceId,
        record: Record,
        tracked: bool,
        since: Option<Instant>,
    ) -> Self {
        Self {
            from,
            record,
            step: Step::Ready,
            fetched: false,
            tracked,
            children_waits: 0,
            since,
            failures: 0,
            claim_noted: false,
            stalled: false,
            below: false,
            revert: false,
        }
    }
}

/// The queues of received records, per task and path (a map of them, with the rules
/// below), and when their heads waiting for a retry are due.
#[derive(Debug, Default)]
pub(super) struct Queues {
    map: BTreeMap<(TaskId, RelPath), VecDeque<Item>>,
    /// When heads waiting for a retry are due, soonest first (so that the core's
    /// `poll_timeout` need not look at every path). An entry whose path has moved on since
    /// is stale, and dropped once it reaches the front.
    waiting: BTreeSet<(Instant, TaskId, RelPath)>,
}

impl Deref for Queues {
    type Target = BTreeMap<(TaskId, RelPath), VecDeque<Item>>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl DerefMut for Queues {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.map
    }
}

impl Queues {
    /// The record at the head of each path of `task` still to be carried out, and what it
    /// waits for.
    pub(super) fn unsettled(&self, task: &TaskId) -> Vec<super::Unsettled> {
        self.map
            .iter()
            .filter(|((t, _), _)| t == task)
            .filter_map(|((_, path), queue)| {
                let head = queue.front()?;
                let waiting = match &head.step {
                    Step::Ready => super::Awaits::Turn,
                    Step::Fetching => super::Awaits::Content,
                    Step::Placing { .. } => super::Awaits::Placement,
                    Step::Waiting(_) if head.below => super::Awaits::Children,
                    Step::Waiting(at) => super::Awaits::Retry {
                        at: *at,
                        failures: head.failures,
                    },
                };
                Some(super::Unsettled {
                    path: path.clone(),
                    from: head.from,
                    since: head.since,
                    awaits: waiting,
                    behind: queue.len() - 1,
                })
            })
            .collect()
    }

    /// Queue `item` behind what `key` waits for (most paths have one item at a time:
    /// room for one, not the default four).
    pub(super) fn push(&mut self, key: &(TaskId, RelPath), item: Item) {
        self.map
            .entry(key.clone())
            .or_insert_with(|| VecDeque::with_capacity(1))
            .push_back(item);
    }

    /// Set the step of `key`'s head (a wait is indexed by its time).
    pub(super) fn set_step(&mut self, key: &(TaskId, RelPath), step: Step) {
        if let Some(item) = self.map.get_mut(key).and_then(|q| q.front_mut()) {
            if let Step::Waiting(at) = step {
                self.waiting.insert((at, key.0, key.1.clone()));
            }
            item.step = step;
        }
    }

    /// Decide the head of `key` again after [`RETRY_AFTER`] (from `now`, if known).
    pub(super) fn wait(&mut self, key: &(TaskId, RelPath), now: Option<Instant>) {
        if let Some(now) = now {
            self.set_step(key, Step::Waiting(now + RETRY_AFTER));
        }
    }

    /// Decide the head of `key` again later, after a failure: [`RETRY_AFTER`] doubled for
    /// each failure in a row before, at most [`MAX_RETRY_AFTER`].
    pub(super) fn back_off(&mut self, key: &(TaskId, RelPath), now: Option<Instant>) {
        let Some(now) = now else { return };
        let Some(head) = self.head_mut(key) else {
            return;
        };
        let delay = RETRY_AFTER
            .saturating_mul(1 << head.failures.min(8))
            .min(MAX_RETRY_AFTER);
        head.failures = head.failures.saturating_add(1);
        self.set_step(key, Step::Waiting(now + delay));
    }

    /// The paths whose head's wait is over at `now`, made ready to be decided again.
    pub(super) fn due(&mut self, now: Instant) -> Vec<(TaskId, RelPath)> {
        let mut due = Vec::new();
        while let Some((at, task, path)) = self.waiting.first().cloned() {
            if at > now {
                break;
            }
            self.waiting.pop_first();
            let key = (task, path);
            if let Some(item) = self.head_mut(&key) {
                if matches!(item.step, Step::Waiting(t) if t == at) {
                    item.step = Step::Ready;
                    due.push(key);
                }
            }
        }
        due
    }

    /// When the next wait is over, if one is under way.
    pub(super) fn next_due(&self) -> Option<Instant> {
        self.waiting.first().map(|(at, ..)| *at)
    }

    /// Drop the retry times at the front of the waits that no longer stand (the path was
    /// decided meanwhile), so that the first one is the next real one.
    pub(super) fn forget_stale_waits(&mut self) {
        while let Some((at, task, path)) = self.waiting.first() {
            let key = (*task, path.clone());
            let stands = self
                .map
                .get(&key)
                .and_then(|q| q.front())
                .is_some_and(|item| matches!(item.step, Step::Waiting(t) if t == *at));
            if stands {
                break;
            }
            self.waiting.pop_first();
        }
    }

    /// The work queued for `peer`'s records of `task` numbered above `after` no longer
    /// settles their numbers: the peer sends them again.
    pub(super) fn untrack(&mut self, task: TaskId, peer: DeviceId, after: u64) {
        for (_, queue) in self.map.iter_mut().filter(|((t, _), _)| *t == task) {
            let again = queue
                .iter_mut()
                .filter(|item| item.from == peer && item.record.seq > after);
            for item in again {
                item.tracked = false;
            }
        }
    }

    /// Drop the received work of `peer` (of `task` only, if given) that is not under way
    /// on the disk (what is finishes outside the peer's sequence: untracked); the paths
    /// whose queue changed.
    pub(super) fn drop_from(
        &mut self,
        peer: DeviceId,
        task: Option<TaskId>,
    ) -> Vec<(TaskId, RelPath)> {
        let mut changed = Vec::new();
        let queues = self
            .map
            .iter_mut()
            .filter(|((t, _), _)| task.is_none_or(|task| *t == task));
        for (key, queue) in queues {
            let before = queue.len();
            queue.retain(|item| item.from != peer || matches!(item.step, Step::Placing { .. }));
            for item in queue.iter_mut().filter(|item| item.from == peer) {
                item.tracked = false;
            }
            if queue.len() != before {
                changed.push(key.clone());
            }
        }
        self.map.retain(|_, q| !q.is_empty());
        changed
    }

    /// Take `key`'s head out of its queue; when the queue is left empty, a folder above it
    /// waiting for what is under it to go (its deletion found it not empty) is decided
    /// again now (`now`), rather than at its next retry.
    pub(super) fn pop_head(
        &mut self,
        key: &(TaskId, RelPath),
        now: Option<Instant>,
    ) -> Option<Item> {
        let queue = self.map.get_mut(key)?;
        let item = queue.pop_front()?;
        if queue.is_empty() {
            self.map.remove(key);
            if let Some(now) = now {
                for above in self.waiting_above(key, now) {
                    if let Some(head) = self.head_mut(&above) {
                        head.below = false;
                    }
                    self.set_step(&above, Step::Waiting(now));
                }
            }
        }
        Some(item)
    }

    /// The `connected` peers that hold the content `hash` of `key`: `from` (whose record
    /// announced it) first, then those whose records queued for `key` announce the same
    /// content (a relay of the same version, or the same edit made on two devices).
    pub(super) fn holders(
        &self,
        key: &(TaskId, RelPath),
        from: DeviceId,
        hash: ContentHash,
        connected: &BTreeSet<DeviceId>,
    ) -> Vec<DeviceId> {
        let mut holders = Vec::new();
        if connected.contains(&from) {
            holders.push(from);
        }
        for item in self.map.get(key).into_iter().flatten() {
            let same = item.record.state.hash() == Some(hash);
            if same && !holders.contains(&item.from) && connected.contains(&item.from) {
                holders.push(item.from);
            }
        }
        holders
    }

    /// The first record queued behind `item` (the head of `key`) that makes it pointless:
    /// its place, and whether it replaces the head (a later record of the same peer) rather
    /// than claims to be newer (see `Work::give_way_to_newer`).
    pub(super) fn newer_behind(
        &self,
        key: &(TaskId, RelPath),
        item: &Item,
    ) -> Option<(usize, bool)> {
        self.map.get(key).and_then(|q| {
            q.iter().enumerate().skip(1).find_map(|(at, later)| {
                // A rival decided again is an old record of its peer, not a later one.
                let replaces = later.tracked && later.from == item.from;
                // A record moved back for holding others never gets the path back by
                // claiming to be newer (a forged claim would pin the path again).
                let after = later.record.version.compare(&item.record.version) == Causality::After
                    && (!later.stalled || later.fetched);
                (replaces || after).then_some((at, replaces))
            })
        })
    }

    /// Move `key`'s head to place `at` in its queue, to be decided again in its turn.
    pub(super) fn move_head_to(&mut self, key: &(TaskId, RelPath), at: usize) {
        if let Some(queue) = self.map.get_mut(key) {
            if let Some(mut head) = queue.pop_front() {
                head.step = Step::Ready;
                queue.insert(at, head);
            }
        }
    }

    /// If `head` still heads `key`'s queue, waiting for its content or a retry, while
    /// another peer's record of other content waits behind it: it goes to the back (see
    /// `patience.rs`). Whether it went.
    pub(super) fn rotate_stuck(&mut self, key: &(TaskId, RelPath), head: (DeviceId, u64)) -> bool {
        let Some(queue) = self.map.get_mut(key) else {
            return false;
        };
        let stuck = queue.front().is_some_and(|first| {
            (first.from, first.record.seq) == head
                && matches!(first.step, Step::Fetching | Step::Waiting(_))
        });
        // A record of another peer announcing the same content is no reason to move: that
        // peer is one of the fetch's holders, and the driver asks it when the first does
        // not serve (moving would fetch the same bytes twice).
        let head_hash = queue.front().and_then(|first| first.record.state.hash());
        let other = |item: &Item| item.from != head.0 && item.record.state.hash() != head_hash;
        if !stuck || !queue.iter().any(other) {
            return false;
        }
        if let Some(mut first) = queue.pop_front() {
            // Decided again in its turn (it may be old news by then); a fetch of it
            // under way goes on meanwhile (the driver keeps it when asked again, and
            // content that came is found staged).
            first.stalled = true;
            first.step = Step::Ready;
            queue.push_back(first);
        }
        true
    }

    /// `key`'s head (its sender and number) if records of another peer, of other content,
    /// wait behind it: it is to be watched (`patience.rs`).
    pub(super) fn mixed_head(&self, key: &(TaskId, RelPath)) -> Option<(DeviceId, u64)> {
        let queue = self.map.get(key)?;
        let first = queue.front()?;
        let hash = first.record.state.hash();
        let mixed = queue
            .iter()
            .any(|item| item.from != first.from && item.record.state.hash() != hash);
        mixed.then_some((first.from, first.record.seq))
    }

    /// Whether a later record of `from` (numbered above `seq`) is queued for `key`.
    pub(super) fn overtaken(&self, key: &(TaskId, RelPath), from: DeviceId, seq: u64) -> bool {
        self.map.get(key).is_some_and(|queue| {
            queue
                .iter()
                .any(|item| item.from == from && item.tracked && item.record.seq > seq)
        })
    }

    /// Take `from`'s records queued for `key` out, but for a placement under way: a later
    /// record of the same peer replaces them (see `Work::take_in`). The records taken.
    pub(super) fn supersede(&mut self, key: &(TaskId, RelPath), from: DeviceId) -> Vec<Item> {
        let queue = self.map.entry(key.clone()).or_default();
        let mut superseded = Vec::new();
        queue.retain(|item| {
            let stale = !matches!(item.step, Step::Placing { .. }) && item.from == from;
            if stale {
                superseded.push(item.clone());
            }
            !stale
        });
        superseded
    }

    /// Whether work is queued at `path` of `task` or under it.
    pub(super) fn busy_at_or_under(&self, task: TaskId, path: &RelPath) -> bool {
        self.map
            .range((task, path.clone())..)
            .take_while(|((t, p), _)| *t == task && p.as_str().starts_with(path.as_str()))
            .any(|((_, p), _)| p == path || p.starts_with(path))
    }

    /// The first item of `key`'s queue.
    pub(super) fn head_mut(&mut self, key: &(TaskId, RelPath)) -> Option<&mut Item> {
        self.map.get_mut(key).and_then(|q| q.front_mut())
    }

    /// A folder at the head of `key` was found not empty where it was to go: whether it
    /// waits (a retry period) before it stays. Paths under it still have received work
    /// to do (their deletions, most likely): it waits until that is done. What is left
    /// may be on its way out too: the deletions of its children are records of their own
    /// and can come a moment later (from another device than the folder's deletion, say);
    /// keeping the folder at once would make a new version of it that beats, as a
    /// conflict, a file a person then saved at its name, and leave an empty folder there.
    /// So it waits for them `waits` retry periods (a loaded machine may take more than one
    /// to deliver and place them).
    pub(super) fn wait_for_children(
        &mut self,
        key: &(TaskId, RelPath),
        now: Option<Instant>,
        waits: u8,
    ) -> bool {
        let below = self.busy_below(key);
        let Some(head) = self.head_mut(key) else {
            return false;
        };
        if below {
            head.below = true;
        } else if head.children_waits < waits {
            head.children_waits += 1;
        } else {
            return false;
        }
        self.wait(key, now);
        true
    }

    /// Whether paths under the folder `key` have work queued. (Keys sort by path: those
    /// under it follow it, after siblings whose next character sorts before `/`.)
    pub(super) fn busy_below(&self, key: &(TaskId, RelPath)) -> bool {
        let folder = key.1.as_str();
        let after = (Bound::Excluded(key.clone()), Bound::Unbounded);
        for ((task, path), _) in self.map.range(after) {
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
                .map
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
