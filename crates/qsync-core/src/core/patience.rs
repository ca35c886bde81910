//! How long a path's queue waits on its first record while another peer's record of the
//! same path waits behind it.
//!
//! The records of a path are carried out one at a time, in the order they came. A peer
//! that announces a version and never serves its content (or always answers that it is
//! unavailable) would hold every later record of that path, from every other device, for
//! as long as it stays connected. So when the first record has been waiting for its
//! content or a retry for [`PATIENCE`] while a record of another peer waits behind it, it
//! goes to the back of the queue, and the next one is decided first.
//!
//! Nothing is lost by the new order. A peer's later record replaces its earlier ones in
//! the queue (only a placement under way stays, and it is never moved), so the records of
//! one peer keep their order; records of different peers are decided against what the
//! ledger holds when their turn comes, whatever that order, as they would be had the
//! network brought them the other way round. A moved record is decided again in its turn
//! (it may be old news by then); a transfer of its content under way goes on meanwhile
//! (the driver keeps a fetch under way when the same one is asked again, and finds
//! content that came staged). A record moved back never gets the path back by claiming to be newer than the
//! one that went first (a forged claim would pin it again), until its content is here.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use qsync_base::{DeviceId, RelPath, TaskId};

/// How long the first record of a path may wait for its content (or a retry) while another
/// peer's record of the path waits behind it.
pub const PATIENCE: Duration = Duration::from_secs(10);

/// Which record heads a path's queue: its sender and sequence number.
pub(super) type Head = (DeviceId, u64);

/// The checks to make, soonest first: whether a path's queue still has the same record at
/// its head, not moving.
#[derive(Debug, Default)]
pub(super) struct Patience {
    checks: BTreeSet<(Instant, TaskId, RelPath, Head)>,
    /// The paths with a check pending, and when: one per path, whatever a peer sends.
    pending: BTreeMap<(TaskId, RelPath), Instant>,
}

impl Patience {
    /// Look at `key`'s queue again at `now` + [`PATIENCE`]: if `head` is still first and
    /// waiting, it goes to the back.
    pub(super) fn watch(&mut self, now: Instant, key: &(TaskId, RelPath), head: Head) {
        self.checks
            .insert((now + PATIENCE, key.0, key.1.clone(), head));
    }

    /// When the next check is due, if any.
    pub(super) fn next(&self) -> Option<Instant> {
        self.checks.first().map(|(at, ..)| *at)
    }

    /// The checks due at `now`, taken out.
    pub(super) fn due(&mut self, now: Instant) -> Vec<((TaskId, RelPath), Head)> {
        let mut due = Vec::new();
        while let Some((at, ..)) = self.checks.first() {
            if *at > now {
                break;
            }
            if let Some((_, task, path, head)) = self.checks.pop_first() {
                self.pending.remove(&(task, path.clone()));
                due.push(((task, path), head));
            }
        }
        due
    }
}
