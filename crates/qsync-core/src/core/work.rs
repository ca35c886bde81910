//! The per-path work of [`Core`]: deciding a received record against the ledger, asking
//! for its content, ordering its placement, and storing what a done placement made; plus
//! the rivals (versions ours won against) decided again when ours changes.

use qsync_base::{mtime_moved, Causality, DeviceId, RelPath, TaskId, VersionVector};

use super::{Core, Distrust, Item, Step, CHILDREN_WAITS};
use crate::io::{Effect, PlaceOutcome, Placement};
use crate::ledger::Ledger;
use crate::rules::{claims_above, decide_as, join, loser_copy_nth, Decision};
use crate::state::{Record, State};

impl Core {
    /// Carry out the work of one path as far as it goes without an answer from outside.
    pub(super) fn advance<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        loop {
            let Some(item) = self.work.get(key).and_then(|q| q.front()).cloned() else {
                return Ok(());
            };
            match item.step {
                Step::Ready => {}
                Step::Waiting(at) if self.now.is_some_and(|now| now >= at) => {}
                _ => return Ok(()),
            }
            // A placement that was under way when its peer went away, and has to be decided
            // again: the peer sends the record again when it is back (it was never
            // acknowledged). Waiting here for a peer that never comes back would hold the
            // path for ever.
            if !item.tracked && !self.connected.contains(&item.from) {
                self.finish_head(key, ledger)?;
                continue;
            }
            if self.give_way_to_newer(key, &item, ledger)? {
                continue;
            }
            let (task, path) = (&key.0, &key.1);
            let local = ledger.record(task, path)?;
            let remote = &item.record;
            if !item.claim_noted
                && item.tracked
                && local
                    .as_ref()
                    .is_some_and(|l| claims_above(self.book.keys(), l, remote))
            {
                self.note_claim(key, item.from, remote.path.clone());
            }
            let (version, aside) = {
                match decide_as(self.book.keys(), local.as_ref(), remote) {
                    Decision::Take => (remote.version.clone(), None),
                    Decision::TakeOver { aside } => {
                        let merged = local
                            .as_ref()
                            .map(|l| join(&l.version, &remote.version))
                            .unwrap_or_else(|| remote.version.clone());
                        let aside = match (aside, &local) {
                            (Some(_), Some(l)) => match free_copy_name(task, l, ledger)? {
                                Some(name) => Some((name, l.clone())),
                                None => {
                                    // Every name for the copy is taken: never overwrite
                                    // without one; try again later.
                                    self.work.wait(key, self.now);
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
                        let merged = local
                            .as_ref()
                            .map(|l| join(&l.version, &remote.version))
                            .unwrap_or_else(|| remote.version.clone());
                        (merged, None)
                    }
                    decision => {
                        let decided = (local, decision);
                        let effects = &mut self.effects;
                        self.book
                            .settle_in_ledger(key, &item, decided, effects, ledger)?;
                        self.finish_head(key, ledger)?;
                        continue;
                    }
                }
            };
            if !self.order_placement(key, item, local, (version, aside), ledger)? {
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
        ledger: &mut L,
    ) -> Result<bool, L::Error> {
        let (task, path) = (&key.0, &key.1);
        let remote = &item.record;
        let expect = local
            .as_ref()
            .map(|l| l.state.clone())
            .unwrap_or(State::Deleted);
        // A file's time placed too when it moved (a `touch -d` there).
        let time_moved = remote.state.hash().is_some()
            && local
                .as_ref()
                .is_some_and(|l| mtime_moved(l.mtime_ns, remote.mtime_ns));
        if aside.is_none() && expect == remote.state && !time_moved {
            // Nothing to change on disk: only the version is new.
            self.book
                .record_placed(key, item, version, None, Vec::new(), ledger)?;
            self.finish_head(key, ledger)?;
            return Ok(true);
        }
        let needs_content = match &remote.state {
            State::File { hash, .. } => aside.is_some() || expect.hash() != Some(*hash),
            _ => false,
        };
        if needs_content && !item.fetched {
            let holders = match &remote.state {
                State::File { hash, .. } => {
                    self.work.holders(key, item.from, *hash, &self.connected)
                }
                _ => Vec::new(),
            };
            if holders.is_empty() {
                // Nobody connected has it: decided again later (its sender, or
                // another device announcing the same content, may come back).
                self.work.wait(key, self.now);
                return Ok(false);
            }
            if let State::File { hash, .. } = &remote.state {
                self.effects.push_back(Effect::Fetch {
                    from: item.from,
                    holders,
                    task: *task,
                    path: path.clone(),
                    hash: *hash,
                    size: remote.state.size(),
                    base: expect.hash(),
                });
                self.work.set_step(key, Step::Fetching);
                return Ok(false);
            }
        }
        let parents = if remote.state.exists() {
            self.missing_parents(task, path, ledger)?
        } else {
            Some(Vec::new())
        };
        let Some(parents) = parents else {
            // A parent here is a file or a link: wait for the rules to settle it.
            self.work.wait(key, self.now);
            return Ok(false);
        };
        self.effects.push_back(Effect::Place(Placement {
            task: *task,
            path: path.clone(),
            expect,
            target: remote.state.clone(),
            mtime_ns: remote.mtime_ns,
            aside: aside.as_ref().map(|(p, _)| p.clone()),
            parents: parents.clone(),
            from: item.from,
        }));
        self.work.set_step(
            key,
            Step::Placing {
                version,
                aside,
                parents,
            },
        );
        Ok(false)
    }

    /// Report once that the head of `key` claims more of this device's changes than it made.
    fn note_claim(&mut self, key: &(TaskId, RelPath), from: DeviceId, path: RelPath) {
        if let Some(head) = self.work.get_mut(key).and_then(|q| q.front_mut()) {
            head.claim_noted = true;
        }
        self.distrust(from, key.0, Distrust::ClaimAboveIssued, Some(path));
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
        ledger: &mut L,
    ) -> Result<bool, L::Error> {
        let newer = self.work.get(key).and_then(|q| {
            q.iter().enumerate().skip(1).find_map(|(at, later)| {
                // A rival decided again is an old record of its peer, not a later one.
                let replaces = later.tracked && later.from == item.from;
                // A record moved back for holding others never gets the path back by
                // claiming to be newer (a forged claim would pin the path again).
                let after = later.record.version.compare(&item.record.version) == Causality::After
                    && (!later.stalled || later.fetched);
                (replaces || after).then_some((at, replaces))
            })
        });
        let Some((at, replaces)) = newer else {
            return Ok(false);
        };
        if replaces {
            self.finish_head(key, ledger)?;
        } else if let Some(queue) = self.work.get_mut(key) {
            if let Some(mut head) = queue.pop_front() {
                head.step = Step::Ready;
                queue.insert(at, head);
            }
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
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let Some(queue) = self.work.get_mut(key) else {
            return Ok(());
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
        if stuck && queue.iter().any(other) {
            if let Some(mut first) = queue.pop_front() {
                // Decided again in its turn (it may be old news by then); a fetch of it
                // under way goes on meanwhile (the driver keeps it when asked again, and
                // content that came is found staged).
                first.stalled = true;
                first.step = Step::Ready;
                queue.push_back(first);
            }
            self.advance(key, ledger)?;
        }
        let next = self.work.get(key).and_then(|queue| {
            let first = queue.front()?;
            let hash = first.record.state.hash();
            let mixed = queue
                .iter()
                .any(|item| item.from != first.from && item.record.state.hash() != hash);
            mixed.then_some((first.from, first.record.seq))
        });
        if let (Some(next), Some(now)) = (next, self.now) {
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
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let Some(queue) = self.work.get(key) else {
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
        let (from, size) = (head.from, head.record.state.size());
        // As when it was first ordered: the content here, which a patch may start from.
        let base = ledger
            .record(&key.0, &key.1)?
            .and_then(|local| local.state.hash());
        let holders = self.work.holders(key, from, hash, &self.connected);
        self.effects.push_back(Effect::Fetch {
            from,
            holders,
            task: key.0,
            path: key.1.clone(),
            hash,
            size,
            base,
        });
        Ok(())
    }

    /// The folders to create before `path` can be placed, outermost first; `None` if one
    /// of its parents is a file or a link here.
    pub(super) fn missing_parents<L: Ledger>(
        &self,
        task: &TaskId,
        path: &RelPath,
        ledger: &L,
    ) -> Result<Option<Vec<RelPath>>, L::Error> {
        let mut missing = Vec::new();
        let mut parent = path.parent();
        while let Some(p) = parent {
            match ledger.record(task, &p)?.map(|r| r.state) {
                Some(State::Folder { .. }) => break,
                Some(State::File { .. } | State::Symlink { .. }) => return Ok(None),
                Some(State::Deleted) | None => missing.push(p.clone()),
            }
            parent = p.parent();
        }
        missing.reverse();
        Ok(Some(missing))
    }

    pub(super) fn placed<L: Ledger>(
        &mut self,
        key: (TaskId, RelPath),
        outcome: PlaceOutcome,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let Some(item) = self.work.get(&key).and_then(|q| q.front()).cloned() else {
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
                self.book
                    .record_placed(&key, item, version, aside, parents, ledger)?;
                self.finish_head(&key, ledger)?;
                self.advance(&key, ledger)?;
            }
            PlaceOutcome::Diverged => self.work.wait(&key, self.now),
            PlaceOutcome::Failed => self.work.back_off(&key, self.now),
            PlaceOutcome::NoContent => {
                if let Some(head) = self.work.get_mut(&key).and_then(|q| q.front_mut()) {
                    head.fetched = false;
                    head.step = Step::Ready;
                }
                self.advance(&key, ledger)?;
            }
            PlaceOutcome::NotEmpty => {
                let (task, path) = (&key.0, &key.1);
                // Paths under it still have received work to do (their deletions, most
                // likely): try again once that is done.
                if self.work.busy_below(&key) {
                    if let Some(head) = self.work.head_mut(&key) {
                        head.below = true;
                    }
                    self.work.wait(&key, self.now);
                    return Ok(());
                }
                // What is left may be on its way out too: the deletions of its children are
                // records of their own and can come a moment later (from another device than
                // the folder's deletion, say). Keeping the folder at once would make a new
                // version of it that beats, as a conflict, a file a person then saved at its
                // name, and leave an empty folder there. Wait for them a few retry periods
                // (a loaded machine may take more than one to deliver and place them).
                if item.children_waits < CHILDREN_WAITS {
                    if let Some(head) = self.work.get_mut(&key).and_then(|q| q.front_mut()) {
                        head.children_waits += 1;
                    }
                    self.work.wait(&key, self.now);
                    return Ok(());
                }
                // The folder still holds paths this device changed (or never announced): it
                // stays, as a new version of ours that has not seen theirs. The two are then
                // concurrent and the conflict rule settles them the same way everywhere: the
                // folder wins, and the device that holds the other content saves it aside.
                if let Some(local) = ledger.record(task, path)? {
                    let kept = (path.clone(), local.state);
                    let time = (local.mtime_ns, None);
                    self.book
                        .store_local(task, kept, &local.version, time, ledger)?;
                }
                self.finish_head(&key, ledger)?;
                self.advance(&key, ledger)?;
            }
        }
        Ok(())
    }

    /// Decide again the rivals of every path whose record changed: one that ours has now
    /// seen is forgotten; the others are queued like received records (ours may now lose),
    /// and stay in the ledger until ours has seen them, so a crash or a lost connection
    /// cannot drop them. (A path with no record here has rivals only when its rules
    /// excluded it: `Input::Excluded`; they are queued as well.)
    pub(super) fn recheck_rivals<L: Ledger>(&mut self, ledger: &mut L) -> Result<(), L::Error> {
        while let Some(key) = self.book.pop_changed() {
            let (task, path) = (&key.0, &key.1);
            let ours = ledger.record(task, path)?;
            let rivals = ledger.rivals(task, path)?;
            // Read only for a path with rivals (this runs for every record that changes).
            let linked = match rivals.is_empty() {
                true => Vec::new(),
                false => ledger.peers(task)?,
            };
            for (peer, rival) in rivals {
                // Seen by ours, or from a device no longer linked with the task (whatever
                // it sent is not to be taken any more).
                let seen = ours
                    .as_ref()
                    .is_some_and(|o| o.version.dominates(&rival.version));
                if seen || !linked.contains(&peer) {
                    ledger.set_rival(task, path, &peer, None)?;
                    continue;
                }
                let queued = self
                    .work
                    .get(&key)
                    .is_some_and(|q| q.iter().any(|i| i.record.version == rival.version));
                // A rival from a peer that is away would block the path until it is back;
                // it is decided again when that peer connects.
                if !queued && self.connected.contains(&peer) {
                    let head = self.work.get(&key).and_then(|q| q.front());
                    if let (Some(head), Some(now)) = (head, self.now) {
                        if head.from != peer {
                            self.patience.watch(now, &key, (head.from, head.record.seq));
                        }
                    }
                    self.work.push(&key, Item::new(peer, rival, false));
                    self.offer_holder(&key, ledger)?;
                }
            }
            self.advance(&key, ledger)?;
        }
        Ok(())
    }
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
