//! The per-path work of the sync rules ([`Work`]): received records queued per path
//! ([`Queues`]), each decided against the ledger, its content asked for, its placement
//! ordered, and what a done placement made recorded (through the [`Book`]); the checks of
//! heads that may hold another peer's record (`patience.rs`); and the rivals (versions
//! ours won against) decided again when ours changes. What it needs of the rest of the
//! core for a call comes in a [`Cx`].

use std::collections::{BTreeSet, VecDeque};
use std::time::Instant;

use qsync_base::{mtime_moved, Causality, ContentHash, DeviceId, RelPath, TaskId, VersionVector};

use super::book::Book;
use super::patience::Patience;
use super::queues::{Item, Queues, Step};
use super::streams::{Admit, Streams};
use super::{Distrust, CHILDREN_WAITS};
use crate::io::{Effect, PlaceOutcome, Placement};
use crate::ledger::Ledger;
use crate::rules::{claims_above, decide_as, join, loser_copy_nth, Decision};
use crate::state::{Record, State};

/// The received work of the rules, per path (see the [module documentation](self)).
#[derive(Debug, Default)]
pub(super) struct Work {
    /// Received records waiting to be carried out, per path, oldest first, and their waits.
    queues: Queues,
    /// Queues whose first record may be holding another peer's (see `patience.rs`).
    patience: Patience,
}

/// What the per-path work uses of the rest of the core for one call: the time, who is
/// connected, the streams (a head done settles its number), the book (what is written to
/// the ledger), and the orders going out.
pub(super) struct Cx<'a> {
    pub(super) now: Option<Instant>,
    pub(super) connected: &'a BTreeSet<DeviceId>,
    pub(super) streams: &'a mut Streams,
    pub(super) book: &'a mut Book,
    pub(super) effects: &'a mut VecDeque<Effect>,
    /// Receive-only tasks and what differs on their disk (`drift.rs`).
    pub(super) drift: &'a mut super::drift::Drift,
}

impl Work {
    /// Whether received records are still being carried out.
    pub(super) fn is_empty(&self) -> bool {
        self.queues.is_empty()
    }

    /// The record at the head of each path of `task` still to be carried out, and what it
    /// waits for.
    pub(super) fn unsettled(&self, task: &TaskId) -> Vec<super::Unsettled> {
        self.queues.unsettled(task)
    }

    /// When the next wait is over or the next patience check is due.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        [self.queues.next_due(), self.patience.next()]
            .into_iter()
            .flatten()
            .min()
    }

    /// Drop the waits that no longer stand (see [`Queues::forget_stale_waits`]).
    pub(super) fn forget_stale_waits(&mut self) {
        self.queues.forget_stale_waits();
    }

    /// `peer`'s queued records of `task` numbered above `after` no longer settle their
    /// numbers (see [`Queues::untrack`]).
    pub(super) fn untrack(&mut self, task: TaskId, peer: DeviceId, after: u64) {
        self.queues.untrack(task, peer, after);
    }

    /// Whether work is queued at `path` of `task` or under it.
    pub(super) fn busy_at_or_under(&self, task: TaskId, path: &RelPath) -> bool {
        self.queues.busy_at_or_under(task, path)
    }

    /// Let time pass to `now`: heads whose wait is over are decided again, and heads that
    /// may hold another peer's record are checked.
    pub(super) fn timeout<L: Ledger>(
        &mut self,
        now: Instant,
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        for key in self.queues.due(now) {
            self.advance(&key, cx, ledger)?;
        }
        for (key, head) in self.patience.due(now) {
            self.lose_patience(&key, head, cx, ledger)?;
        }
        Ok(())
    }

    /// Place `records` (this device's versions of receive-only `task`, or "nothing") again
    /// over what its person changed, with content from `from` (see `Input::Revert`).
    pub(super) fn revert<L: Ledger>(
        &mut self,
        task: TaskId,
        from: DeviceId,
        records: Vec<Record>,
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        for record in records {
            let key = (task, record.path.clone());
            let mut item = Item::new(from, record, false, cx.now);
            item.revert = true;
            self.queues.push(&key, item);
            self.advance(&key, cx, ledger)?;
        }
        Ok(())
    }

    /// The path of `key` changed here: a placement waiting on it is decided again now,
    /// against the new version.
    pub(super) fn decide_again<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        if let Some(item) = self.queues.head_mut(key) {
            if matches!(item.step, Step::Waiting(_)) {
                item.step = Step::Ready;
                self.advance(key, cx, ledger)?;
            }
        }
        Ok(())
    }

    /// The path of `key` is not synced here (`.qsyncignore`): the head's version is
    /// acknowledged (its sender settles) and kept as a rival, not recorded nor placed:
    /// decided again when the rules change.
    pub(super) fn excluded<L: Ledger>(
        &mut self,
        key: (TaskId, RelPath),
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let Some(item) = self.queues.get(&key).and_then(|q| q.front()).cloned() else {
            return Ok(());
        };
        let kept = ledger
            .rivals(&key.0, &key.1)?
            .into_iter()
            .any(|(d, r)| d == item.from && r.version == item.record.version);
        if !kept {
            Book::keep_rival(&key.0, &key.1, item.from, &item.record, ledger)?;
        }
        self.finish_head(&key, cx, ledger)?;
        self.advance(&key, cx, ledger)
    }

    /// The content `hash` the head of `key` wants from `from` is staged (`ok`) or could
    /// not be had.
    pub(super) fn fetched<L: Ledger>(
        &mut self,
        key: (TaskId, RelPath),
        (from, hash): (DeviceId, ContentHash),
        ok: bool,
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let Some(item) = self.queues.get_mut(&key).and_then(|q| q.front_mut()) else {
            return Ok(());
        };
        let matches = item.from == from
            && matches!(item.step, Step::Fetching)
            && item.record.state.hash() == Some(hash);
        if !matches {
            // Not this record's (a record moved back in its queue finds the content
            // staged when its turn comes).
        } else if ok {
            item.fetched = true;
            item.stalled = false;
            item.step = Step::Ready;
            self.advance(&key, cx, ledger)?;
        } else {
            // The peer does not have that content now (usually it changed there and a
            // newer record follows, and replaces this one in the queue), or it could not
            // be received here (no space, a limit): ask again later, waiting longer each
            // time, rather than drop a version.
            self.queues.back_off(&key, cx.now);
        }
        Ok(())
    }

    /// Drop the received work of `peer` (of `task` only, if given) that is not under way
    /// on the disk; what is under way finishes outside the peer's sequence.
    pub(super) fn drop_work_from<L: Ledger>(
        &mut self,
        peer: DeviceId,
        task: Option<TaskId>,
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let changed = self.queues.drop_from(peer, task);
        for key in changed {
            self.advance(&key, cx, ledger)?;
        }
        Ok(())
    }

    /// Queue one received record behind the work on its path. A record the peer's stream
    /// may not hold is refused: returned with why, and nothing from its number on is taken
    /// or acknowledged on this connection. `refill`: a record of a fold asked for in full
    /// (its number is in a hole: not new, but not had either).
    pub(super) fn take_in<L: Ledger>(
        &mut self,
        task: TaskId,
        from: DeviceId,
        mut record: Record,
        refill: bool,
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<Option<(Distrust, RelPath)>, L::Error> {
        let cost = match cx.streams.admit(task, from, &record, refill) {
            Admit::Had => return Ok(None),
            Admit::Refused(why) => return Ok(Some((why, record.path))),
            Admit::Take(cost) => cost,
        };
        drop_stray_retimed(&mut record);
        let key = (task, record.path.clone());
        // The records of a fold asked for in full come after the peer's later ones: one
        // that a later record of the peer for the same path overtook is settled as it is.
        if refill && self.queues.overtaken(&key, from, record.seq) {
            return Ok(None);
        }
        cx.streams.hold(task, from, record.seq, cost);
        // A later record of the same peer for the same path replaces its earlier ones
        // there (a device keeps one record per path): waiting on them is pointless (their
        // content may be gone by now), so they are settled. A placement under way
        // finishes. Another peer's record stays, even if this one claims to have seen it:
        // that is the word of this record's sender, which may have forged it (see
        // `advance`).
        for item in self.queues.supersede(&key, from) {
            // (The same number taken again, after the peer's stream restarted: it is
            // held for the new record now.)
            if item.tracked && item.record.seq != record.seq {
                cx.streams.release(task, item.from, item.record.seq);
                cx.streams.settle(task, item.from, ledger)?;
            }
        }
        // Another peer's record first: this one may have to wait for it (`patience.rs`).
        if let (Some(head), Some(now)) = (self.queues.get(&key).and_then(|q| q.front()), cx.now) {
            if head.from != from {
                self.patience.watch(now, &key, (head.from, head.record.seq));
            }
        }
        self.queues
            .push(&key, Item::new(from, record, true, cx.now));
        self.offer_holder(&key, cx, ledger)?;
        self.advance(&key, cx, ledger)?;
        Ok(None)
    }

    /// Drop the first item of a path's queue and settle its sequence number.
    pub(super) fn finish_head<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let Some(item) = self.queues.pop_head(key, cx.now) else {
            return Ok(());
        };
        if item.tracked {
            cx.streams.release(key.0, item.from, item.record.seq);
            cx.streams.settle(key.0, item.from, ledger)?;
        }
        Ok(())
    }

    /// Carry out the work of one path as far as it goes without an answer from outside.
    pub(super) fn advance<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        loop {
            let Some(mut item) = self.queues.get(key).and_then(|q| q.front()).cloned() else {
                return Ok(());
            };
            match item.step {
                Step::Ready => {}
                Step::Waiting(at) if cx.now.is_some_and(|now| now >= at) => {}
                _ => return Ok(()),
            }
            // A placement that was under way when its peer went away, and has to be decided
            // again: the peer sends the record again when it is back (it was never
            // acknowledged). Waiting here for a peer that never comes back would hold the
            // path for ever.
            let due = match self.queues.head_mut(key) {
                Some(head) if item.revert => {
                    let due = super::drift::revert_due(head, key, cx.drift, cx.connected, ledger)?;
                    item.from = head.from; // (chosen again if it was away)
                    due
                }
                _ => true,
            };
            if !due {
                self.finish_head(key, cx, ledger)?;
                continue;
            }
            if !item.tracked && !item.revert && !cx.connected.contains(&item.from) {
                self.finish_head(key, cx, ledger)?;
                continue;
            }
            if self.give_way_to_newer(key, &item, cx, ledger)? {
                continue;
            }
            let (task, path) = (&key.0, &key.1);
            let local = ledger.record(task, path)?;
            let remote = &item.record;
            self.note_claim(key, &item, local.as_ref(), cx);
            let (version, aside) = if item.revert {
                (remote.version.clone(), None)
            } else {
                match decide_as(cx.book.keys(), local.as_ref(), remote) {
                    Decision::Take => (remote.version.clone(), None),
                    Decision::TakeOver { aside } => {
                        let merged = joined(local.as_ref(), remote);
                        let aside = match (aside, &local) {
                            (Some(_), Some(l)) => match free_copy_name(task, l, ledger)? {
                                Some(name) => Some((name, l.clone())),
                                None => {
                                    // Every name for the copy is taken: never overwrite
                                    // without one; try again later.
                                    self.queues.wait(key, cx.now);
                                    return Ok(());
                                }
                            },
                            _ => None,
                        };
                        (merged, aside)
                    }
                    // The same content, concurrent, with a later time there (both
                    // touched it apart): the versions merge and the later time is placed,
                    // so that every device ends with it.
                    Decision::Merge if later_time(local.as_ref(), remote) => {
                        (joined(local.as_ref(), remote), None)
                    }
                    decision => {
                        let decided = (local, decision);
                        cx.book
                            .settle_in_ledger(key, &item, decided, cx.effects, ledger)?;
                        self.finish_head(key, cx, ledger)?;
                        continue;
                    }
                }
            };
            if !self.order_placement(key, item, local, (version, aside), cx, ledger)? {
                return Ok(());
            }
        }
    }

    /// Order what the head of `key` needs to be placed (its content, then the placement),
    /// or settle it at once when only its version is new: whether the work of the path
    /// goes on now (`false`: it waits for an answer from outside).
    fn order_placement<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        item: Item,
        local: Option<Record>,
        (version, aside): (VersionVector, Option<(RelPath, Record)>),
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<bool, L::Error> {
        let (task, path) = (&key.0, &key.1);
        let remote = &item.record;
        // A receive-only task's path holds what its person made (drift), not the version
        // recorded: that is what is replaced (kept by the driver as a version, no copy:
        // the recorded loser is not on this disk).
        let drift = cx.drift.on_disk(key).cloned();
        let aside = if drift.is_some() { None } else { aside };
        let expect = drift.unwrap_or_else(|| {
            local
                .as_ref()
                .map(|l| l.state.clone())
                .unwrap_or(State::Deleted)
        });
        // A file's time placed too when it moved (a `touch -d` there).
        let time_moved = remote.state.hash().is_some()
            && local
                .as_ref()
                .is_some_and(|l| mtime_moved(l.mtime_ns, remote.mtime_ns));
        if aside.is_none() && expect == remote.state && !time_moved {
            // Nothing to change on disk: only the version is new.
            cx.drift.settled(key);
            if !item.revert {
                cx.book
                    .record_placed(key, item, version, None, Vec::new(), ledger)?;
            }
            self.finish_head(key, cx, ledger)?;
            return Ok(true);
        }
        let needs_content = match &remote.state {
            State::File { hash, .. } => aside.is_some() || expect.hash() != Some(*hash),
            _ => false,
        };
        if needs_content && !item.fetched {
            self.order_fetch(key, &item, expect.hash(), cx);
            return Ok(false);
        }
        let Some(parents) = parents_to_make(key, remote, cx.drift, ledger)? else {
            // A parent here is a file or a link: wait for the rules to settle it.
            self.queues.wait(key, cx.now);
            return Ok(false);
        };
        cx.effects.push_back(Effect::Place(Placement {
            task: *task,
            path: path.clone(),
            expect,
            target: remote.state.clone(),
            mtime_ns: remote.mtime_ns,
            aside: aside.as_ref().map(|(p, _)| p.clone()),
            parents: parents.clone(),
            from: item.from,
            // (What the person of a receive-only task made is theirs.)
            makers: match cx.drift.on_disk(key) {
                Some(_) => (remote.by, cx.book.keys().first().copied()),
                None => (remote.by, local.as_ref().and_then(|l| l.by)),
            },
        }));
        self.queues.set_step(
            key,
            Step::Placing {
                version,
                aside: aside.map(Box::new),
                parents,
            },
        );
        Ok(false)
    }

    /// Order the content of the head `item` of `key` (a file) from the connected peers that
    /// hold it, `base` being the content here (a patch may start from it); with none
    /// connected, decided again later (its sender, or another device announcing the same
    /// content, may come back).
    fn order_fetch(
        &mut self,
        key: &(TaskId, RelPath),
        item: &Item,
        base: Option<ContentHash>,
        cx: &mut Cx<'_>,
    ) {
        let Some(hash) = item.record.state.hash() else {
            return;
        };
        let holders = self.queues.holders(key, item.from, hash, cx.connected);
        if holders.is_empty() {
            self.queues.wait(key, cx.now);
            return;
        }
        cx.effects
            .push_back(fetch_order(key, (item, hash), holders, base));
        self.queues.set_step(key, Step::Fetching);
    }

    /// Report once that the head of `key` claims more of this device's changes than it made.
    /// (Checked for the head `item` of `key`, in its peer's sequence, against `local`.)
    fn note_claim(
        &mut self,
        key: &(TaskId, RelPath),
        item: &Item,
        local: Option<&Record>,
        cx: &mut Cx<'_>,
    ) {
        let remote = &item.record;
        let above = local.is_some_and(|l| claims_above(cx.book.keys(), l, remote));
        if item.claim_noted || !item.tracked || !above {
            return;
        }
        if let Some(head) = self.queues.head_mut(key) {
            head.claim_noted = true;
        }
        let path = Some(remote.path.clone());
        super::distrust(
            cx.effects,
            item.from,
            key.0,
            Distrust::ClaimAboveIssued,
            path,
        );
    }

    /// A newer version queued behind the head (one that came while the head was being
    /// placed, and could not supersede it then) makes the head pointless: were it to wait
    /// for ever (its folder became a link here, say), the newer one would never be
    /// decided. A later record from the same peer (not a rival of that peer decided again)
    /// settles the head. From another peer, "newer" is
    /// that peer's word, possibly forged: the head goes behind the newer one instead, and
    /// is decided after it (then found old news, or, if the newer one lost to ours, decided
    /// against ours). Strictly newer from another peer: two equal versions would swap for
    /// ever. Whether the head gave way.
    fn give_way_to_newer<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        item: &Item,
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<bool, L::Error> {
        let Some((at, replaces)) = self.queues.newer_behind(key, item) else {
            return Ok(false);
        };
        if replaces {
            self.finish_head(key, cx, ledger)?;
        } else {
            self.queues.move_head_to(key, at);
        }
        Ok(true)
    }

    /// A check of `patience.rs` is due: if `head` still heads `key`'s queue, waiting for
    /// its content or a retry, while another peer's record waits behind it, it goes to the
    /// back and the next record is decided. While the queue holds records of more than one
    /// peer, its head is watched again.
    pub(super) fn lose_patience<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        head: super::patience::Head,
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        if self.queues.rotate_stuck(key, head) {
            self.advance(key, cx, ledger)?;
        }
        if let (Some(next), Some(now)) = (self.queues.mixed_head(key), cx.now) {
            self.patience.watch(now, key, next);
        }
        Ok(())
    }

    /// A record was queued behind `key`'s first: if the first's content is being fetched
    /// and the new record's sender announced the same content, the fetch is ordered again
    /// naming it among the holders (the driver adds it to the fetch under way), so that a
    /// sender that never serves does not hold the path while another device has the bytes.
    pub(super) fn offer_holder<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let Some(queue) = self.queues.get(key) else {
            return Ok(());
        };
        let (Some(head), Some(last)) = (queue.front(), queue.back()) else {
            return Ok(());
        };
        let Some(hash) = head.record.state.hash() else {
            return Ok(());
        };
        let same = last.from != head.from && last.record.state.hash() == Some(hash);
        if !same || !matches!(head.step, Step::Fetching) {
            return Ok(());
        }
        // As when it was first ordered: the content here, which a patch may start from.
        let base = ledger
            .record(&key.0, &key.1)?
            .and_then(|local| local.state.hash());
        let holders = self.queues.holders(key, head.from, hash, cx.connected);
        cx.effects
            .push_back(fetch_order(key, (head, hash), holders, base));
        Ok(())
    }

    pub(super) fn placed<L: Ledger>(
        &mut self,
        key: (TaskId, RelPath),
        outcome: PlaceOutcome,
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let Some(item) = self.queues.get(&key).and_then(|q| q.front()).cloned() else {
            return Ok(());
        };
        let Step::Placing {
            version,
            aside,
            parents,
        } = item.step.clone()
        else {
            return Ok(());
        };
        match outcome {
            PlaceOutcome::Done => {
                cx.drift.settled(&key);
                if cx.drift.covers(&key.0) {
                    for parent in &parents {
                        cx.drift.settled(&(key.0, parent.clone()));
                    }
                }
                if !item.revert {
                    let aside = aside.map(|a| *a);
                    cx.book
                        .record_placed(&key, item, version, aside, parents, ledger)?;
                }
                self.finish_head(&key, cx, ledger)?;
                self.advance(&key, cx, ledger)?;
            }
            PlaceOutcome::Diverged => self.queues.wait(&key, cx.now),
            PlaceOutcome::Failed => self.queues.back_off(&key, cx.now),
            PlaceOutcome::NoContent => {
                if let Some(head) = self.queues.get_mut(&key).and_then(|q| q.front_mut()) {
                    head.fetched = false;
                    head.step = Step::Ready;
                }
                self.advance(&key, cx, ledger)?;
            }
            PlaceOutcome::NotEmpty => self.not_empty(key, item, version, cx, ledger)?,
        }
        Ok(())
    }

    /// A placement found a folder not empty where it was to remove it or put something
    /// else: wait for the work under it, then for its children's deletions; at last the
    /// folder stays (see below).
    fn not_empty<L: Ledger>(
        &mut self,
        key: (TaskId, RelPath),
        item: Item,
        version: VersionVector,
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        if self.queues.wait_for_children(&key, cx.now, CHILDREN_WAITS) {
            return Ok(());
        }
        // What the person put in the folder is a revert's drift still: nothing to record.
        if !item.revert {
            cx.book.keep_folder(&key, item, version, cx.drift, ledger)?;
        }
        self.finish_head(&key, cx, ledger)?;
        self.advance(&key, cx, ledger)
    }

    /// Decide again the rivals of every path whose record changed: one that ours has now
    /// seen is forgotten; the others are queued like received records (ours may now lose),
    /// and stay in the ledger until ours has seen them, so a crash or a lost connection
    /// cannot drop them. (A path with no record here has rivals only when its rules
    /// excluded it: `Input::Excluded`; they are queued as well.)
    pub(super) fn recheck_rivals<L: Ledger>(
        &mut self,
        cx: &mut Cx<'_>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        while let Some(key) = cx.book.pop_changed() {
            for (peer, rival) in Book::rivals_to_decide(&key, ledger)? {
                let queued = self
                    .queues
                    .get(&key)
                    .is_some_and(|q| q.iter().any(|i| i.record.version == rival.version));
                // A rival from a peer that is away would block the path until it is back;
                // it is decided again when that peer connects.
                if !queued && cx.connected.contains(&peer) {
                    let head = self.queues.get(&key).and_then(|q| q.front());
                    if let (Some(head), Some(now)) = (head, cx.now) {
                        if head.from != peer {
                            self.patience.watch(now, &key, (head.from, head.record.seq));
                        }
                    }
                    self.queues
                        .push(&key, Item::new(peer, rival, false, cx.now));
                    self.offer_holder(&key, cx, ledger)?;
                }
            }
            self.advance(&key, cx, ledger)?;
        }
        Ok(())
    }
}

/// The order to fetch content `hash` of `item` (at the head of `key`) from `holders`,
/// `base` being what is here (a patch may start from it).
fn fetch_order(
    key: &(TaskId, RelPath),
    (item, hash): (&Item, ContentHash),
    holders: Vec<DeviceId>,
    base: Option<ContentHash>,
) -> Effect {
    Effect::Fetch {
        from: item.from,
        holders,
        task: key.0,
        path: key.1.clone(),
        hash,
        size: item.record.state.size(),
        base,
    }
}

/// The folders to make before `remote` can be placed at `key`, outermost first (`None`: a
/// parent here is a file or a link): those the ledger does not hold, and those the person
/// of a receive-only task removed (drift: the change received wins, and they hold it).
fn parents_to_make<L: Ledger>(
    key: &(TaskId, RelPath),
    remote: &Record,
    drift: &super::drift::Drift,
    ledger: &L,
) -> Result<Option<Vec<RelPath>>, L::Error> {
    if !remote.state.exists() {
        return Ok(Some(Vec::new()));
    }
    let Some(mut parents) = Book::missing_parents(&key.0, &key.1, ledger)? else {
        return Ok(None);
    };
    if !drift.covers(&key.0) {
        return Ok(Some(parents));
    }
    let removed = std::iter::successors(key.1.parent(), RelPath::parent)
        .filter(|p| drift.on_disk(&(key.0, p.clone())) == Some(&State::Deleted));
    for parent in removed.collect::<Vec<_>>() {
        if !parents.contains(&parent) {
            parents.push(parent);
        }
    }
    // All hold the path: in path order, each comes after the folders it is in.
    parents.sort();
    Ok(Some(parents))
}

/// The first conflict-copy name for `loser` that is free in the ledger or already holds
/// the same content (another device made the same copy).
fn free_copy_name<L: Ledger>(
    task: &TaskId,
    loser: &Record,
    ledger: &L,
) -> Result<Option<RelPath>, L::Error> {
    for n in 0..64 {
        let Some(name) = loser_copy_nth(loser, n) else {
            return Ok(None);
        };
        match ledger.record(task, &name)? {
            Some(r) if r.state.exists() && r.state != loser.state => continue,
            _ => return Ok(Some(name)),
        }
    }
    Ok(None)
}

/// What a version keeps (`Record::retimed`, within the bounds checked on admission) stands
/// only below the version itself: any other claim is dropped.
fn drop_stray_retimed(record: &mut Record) {
    if record
        .retimed
        .as_ref()
        .is_some_and(|kept| record.version.compare(kept) != Causality::After)
    {
        record.retimed = None;
    }
}

/// The version that has seen both `local` (if any) and `remote`.
fn joined(local: Option<&Record>, remote: &Record) -> VersionVector {
    local
        .map(|l| join(&l.version, &remote.version))
        .unwrap_or_else(|| remote.version.clone())
}

/// Whether `remote` is the file `local` is, with a modification time later by more than
/// file systems round.
fn later_time(local: Option<&Record>, remote: &Record) -> bool {
    local.is_some_and(|l| {
        l.state == remote.state
            && remote.state.hash().is_some()
            && remote.mtime_ns > l.mtime_ns
            && mtime_moved(l.mtime_ns, remote.mtime_ns)
    })
}
