//! What the sync rules write into the ledger ([`Book`]): this device's own versions, the
//! decisions that change only the ledger (a version kept, merged, reclaimed, or said
//! again), what a done placement made (its record, the folders made to hold it, the copy
//! of ours moved aside), and the rivals kept; and which paths' records changed since, whose
//! rivals are then decided again (`Core::recheck_rivals`). It never touches the queues of
//! received work nor the streams: the core settles a head after the book recorded it.

use std::collections::{BTreeSet, VecDeque};

use qsync_base::{Causality, DeviceId, RelPath, TaskId, VersionVector};

use super::queues::Item;
use super::{Distrust, NEW_FOLDER_MODE};
use crate::io::Effect;
use crate::ledger::Ledger;
use crate::rules::{
    is_conflict_copy, join, merged_retimed, reclaimed, retimed_after_takeover, Decision,
};
use crate::state::{Record, State};

/// The ledger as the rules write it (see the [module documentation](self)).
#[derive(Debug)]
pub(super) struct Book {
    /// The keys this device counts its changes under (see
    /// [`counter_keys`](crate::rules::counter_keys)).
    keys: Vec<DeviceId>,
    /// Paths whose record changed: their rivals are decided again.
    changed: BTreeSet<(TaskId, RelPath)>,
}

impl Book {
    /// The book of a device counting its changes under `keys`.
    pub(super) fn new(keys: Vec<DeviceId>) -> Self {
        Self {
            keys,
            changed: BTreeSet::new(),
        }
    }

    /// The keys this device counts its changes under.
    pub(super) fn keys(&self) -> &[DeviceId] {
        &self.keys
    }

    /// The rivals of `paths` of `task` are to be decided again.
    pub(super) fn mark_all(&mut self, task: TaskId, paths: impl IntoIterator<Item = RelPath>) {
        self.changed.extend(paths.into_iter().map(|p| (task, p)));
    }

    /// Take the paths of `task` whose rivals are to be decided again (kept for later).
    pub(super) fn take_marks_of(&mut self, task: &TaskId) -> Vec<RelPath> {
        let mine: Vec<(TaskId, RelPath)> = self
            .changed
            .iter()
            .filter(|(t, _)| t == task)
            .cloned()
            .collect();
        mine.into_iter()
            .map(|key| {
                self.changed.remove(&key);
                key.1
            })
            .collect()
    }

    /// The next path whose rivals are to be decided again.
    pub(super) fn pop_changed(&mut self) -> Option<(TaskId, RelPath)> {
        self.changed.pop_first()
    }

    /// The version of a change this device makes on top of `base` (see
    /// [`next_version`](crate::rules::next_version)).
    pub(super) fn bump(&self, base: &VersionVector) -> VersionVector {
        crate::rules::next_version(&self.keys, base)
    }

    pub(super) fn next_seq<L: Ledger>(ledger: &L, task: &TaskId) -> Result<u64, L::Error> {
        Ok(ledger.last_seq(task)? + 1)
    }

    /// Store a new version of `path` made on this device (on top of `base`).
    pub(super) fn store_local<L: Ledger>(
        &mut self,
        task: &TaskId,
        (path, state): (RelPath, State),
        base: &VersionVector,
        (mtime_ns, retimed): (i64, Option<VersionVector>),
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let seq = Self::next_seq(ledger, task)?;
        let version = self.bump(base);
        ledger.put(
            task,
            Record {
                path: path.clone(),
                state,
                version,
                mtime_ns,
                seq,
                retimed,
                by: self.keys.first().copied(),
            },
            None,
        )?;
        self.changed.insert((*task, path));
        Ok(())
    }

    /// Carry out a decision about the head `item` of `key` that changes nothing on disk
    /// (only the ledger, if anything); a sender to distrust is told through `effects`. The
    /// caller then settles the head.
    pub(super) fn settle_in_ledger<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        item: &Item,
        (local, decision): (Option<Record>, Decision),
        effects: &mut VecDeque<Effect>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let (task, path) = (&key.0, &key.1);
        let remote = &item.record;
        match (decision, local) {
            (Decision::Keep, Some(ours)) => {
                // Older news than ours, of other content: said again, so that the sender
                // hears of ours. It may hold that old version for good otherwise: when it
                // had forgotten the deletion ours is (see `tombstones.rs`), and took an
                // older record from a device that never acknowledged it.
                let older = ours.state != remote.state
                    && remote.version.compare(&ours.version) == Causality::Before;
                if older && item.tracked {
                    Self::say_again(task, ours, ledger)?;
                }
            }
            (Decision::Reannounce, Some(ours)) => {
                // Ours wins over an equal version: said again, so that the device
                // holding theirs hears of ours and takes it over.
                Self::say_again(task, ours, ledger)?;
            }
            (Decision::Reclaim, Some(ours)) => {
                let version = reclaimed(&self.keys, &ours.version, &remote.version);
                let seq = Self::next_seq(ledger, task)?;
                // A change of this device's own: it keeps no earlier content.
                let record = Record {
                    version,
                    seq,
                    retimed: None,
                    ..ours
                };
                ledger.put(task, record, None)?;
                self.changed.insert(key.clone());
                Self::keep_rival(task, path, item.from, remote, ledger)?;
            }
            (Decision::Reassert, Some(ours)) => {
                // A deletion built on a forged claim of our changes: ours stays,
                // as a change of ours over both versions.
                let merged = join(&ours.version, &remote.version);
                let (state, mtime_ns) = (ours.state, ours.mtime_ns);
                let ours = (path.clone(), state);
                self.store_local(task, ours, &merged, (mtime_ns, None), ledger)?;
            }
            (Decision::KeepOurs, local) => {
                Self::keep_rival(task, path, item.from, remote, ledger)?;
                // Said again, so that the sender decides the two as well: it may
                // have had ours before it made its own, which a version cut to
                // the bound (`rules::join`) then no longer shows.
                if let (Some(ours), true) = (local, item.tracked) {
                    Self::say_again(task, ours, ledger)?;
                }
            }
            (Decision::Merge, local) => self.merge(key, item, local, effects, ledger)?,
            _ => {}
        }
        Ok(())
    }

    /// Store `ours` again under a new number, so that it is sent to every peer again.
    pub(super) fn say_again<L: Ledger>(
        task: &TaskId,
        ours: Record,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let seq = Self::next_seq(ledger, task)?;
        ledger.put(task, Record { seq, ..ours }, None)
    }

    /// Store the join of `local` and the head's record, concurrent with it and of the same
    /// content (or a deletion of a path never seen here).
    pub(super) fn merge<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        item: &Item,
        local: Option<Record>,
        effects: &mut VecDeque<Effect>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let task = &key.0;
        let remote = &item.record;
        let local_none = local.is_none();
        let merged = match local {
            // Theirs adds nothing to ours once cut to the bound: nothing to store, but
            // ours is said again if it differs from theirs, so that the sender joins the
            // two as well (it would not hear of ours again).
            Some(ours) if join(&ours.version, &remote.version) == ours.version => {
                let kept = merged_retimed(&ours, remote);
                if ours.version == remote.version && kept != ours.retimed {
                    // The same version, keeping other versions' contents (each device
                    // settled a time change its own way): both settle on what the two
                    // keep merged, and say so.
                    let seq = Self::next_seq(ledger, task)?;
                    let settled = Record {
                        seq,
                        retimed: kept,
                        ..ours
                    };
                    ledger.put(task, settled, None)?;
                    self.changed.insert(key.clone());
                } else if ours.version != remote.version && item.tracked {
                    Self::say_again(task, ours, ledger)?;
                }
                return Ok(());
            }
            Some(l) => Record {
                version: join(&l.version, &remote.version),
                mtime_ns: l.mtime_ns.max(remote.mtime_ns),
                seq: Self::next_seq(ledger, task)?,
                retimed: merged_retimed(&l, remote),
                // The maker goes with the time, so that every device names the same one.
                by: if (remote.mtime_ns, remote.by) > (l.mtime_ns, l.by) {
                    remote.by
                } else {
                    l.by
                },
                ..l
            },
            // A deletion of a path never had here. This device made no change to it: a
            // counter of its own in that version was claimed for it (it is cut, so that the
            // tombstone can be forgotten, see `tombstones.rs`).
            None => {
                let own = |d: &DeviceId| self.keys.contains(d);
                let counters: Vec<(DeviceId, u64)> = remote.version.clone().into();
                let cut = VersionVector::from(
                    counters
                        .into_iter()
                        .filter(|(d, _)| !own(d))
                        .collect::<Vec<_>>(),
                );
                // (A conflict copy carries the version of what it copies, ours maybe: an
                // honest peer's deletion of a copy never had here names our counters.)
                if cut != remote.version && !is_conflict_copy(&remote.path) {
                    let path = Some(remote.path.clone());
                    super::distrust(effects, item.from, *task, Distrust::ClaimAboveIssued, path);
                }
                Record {
                    version: cut,
                    seq: Self::next_seq(ledger, task)?,
                    ..remote.clone()
                }
            }
        };
        // Taken as is (a cut deletion too: its sender holds all of it): never sent back.
        let origin = (local_none || merged.version == remote.version).then_some(item.from);
        ledger.put(task, merged, origin)?;
        self.changed.insert(key.clone());
        Ok(())
    }

    /// A placement of the head `item` of `key` is done (or needed no disk change): store
    /// what it made (the folders made to hold it, the copy moved aside, the record). The
    /// caller then settles the head.
    pub(super) fn record_placed<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        item: Item,
        version: VersionVector,
        aside: Option<(RelPath, Record)>,
        parents: Vec<RelPath>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let task = &key.0;
        self.record_parents(task, parents, &item, ledger)?;
        if let Some(aside) = aside {
            self.record_copy(task, aside, ledger)?;
        }
        // The person may have changed the path after the placement was ordered, and the
        // watcher's report of it stored (a file written, say), then changed it back before
        // the placement looked (the file deleted again: the driver found what it expected).
        // That version is gone from the disk by the person's hand, but peers may have its
        // record: the stored version must have seen it, or they would wait for ever for
        // content nobody has.
        // It is a change of this device's (bumped): another device may have settled the
        // same two versions the other way, and equal versions must not name two contents.
        let current = ledger.record(task, &key.1)?;
        // Two concurrent versions of the same state merged (their times apart): what they
        // keep is merged the same way as where no placement was needed (`merge`).
        let retimed = match &current {
            Some(c) if version != item.record.version && c.state == item.record.state => {
                merged_retimed(c, &item.record)
            }
            Some(c) if version != item.record.version => retimed_after_takeover(c, &item.record),
            _ => item.record.retimed.clone(),
        };
        let version = match current {
            Some(current) if !version.dominates(&current.version) => {
                self.bump(&join(&version, &current.version))
            }
            _ => version,
        };
        let seq = Self::next_seq(ledger, task)?;
        let origin = (version == item.record.version).then_some(item.from);
        ledger.put(
            task,
            Record {
                path: key.1.clone(),
                version,
                seq,
                retimed,
                ..item.record
            },
            origin,
        )?;
        self.changed.insert(key.clone());
        Ok(())
    }

    /// Store this device's versions of `paths` of `task` again, each as a change that has
    /// seen every rival kept of it (a path this device does not have, as a deletion), so
    /// that every device takes it (see [`Input::Override`](crate::Input::Override)): the
    /// paths kept outermost first, the deletions innermost first. A path is left as it is
    /// when the new version would not be above every rival (counters at the bound).
    pub(super) fn override_rivals<L: Ledger>(
        &mut self,
        task: TaskId,
        mut paths: Vec<RelPath>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        paths.sort();
        paths.dedup();
        let mut kept = Vec::new();
        let mut deleted = Vec::new();
        for path in paths {
            let rivals = ledger.rivals(&task, &path)?;
            if rivals.is_empty() {
                continue;
            }
            let ours = ledger.record(&task, &path)?;
            let (state, mtime_ns, mut base) = match ours {
                Some(o) => (o.state, o.mtime_ns, o.version),
                None => (State::Deleted, 0, Default::default()),
            };
            if !state.exists() && rivals.iter().all(|(_, r)| !r.state.exists()) {
                continue; // deleted everywhere already
            }
            for (_, rival) in &rivals {
                base = crate::rules::join(&base, &rival.version);
            }
            let above = self.bump(&base);
            let wins = rivals
                .iter()
                .all(|(_, r)| above.compare(&r.version) == qsync_base::Causality::After);
            if !wins {
                continue;
            }
            let change = (path, state, mtime_ns, base);
            match change.1.exists() {
                true => kept.push(change),
                false => deleted.push(change),
            }
        }
        deleted.reverse();
        for (path, state, mtime_ns, base) in kept.into_iter().chain(deleted) {
            self.store_local(
                &task,
                (path.clone(), state),
                &base,
                (mtime_ns, None),
                ledger,
            )?;
            self.mark_all(task, [path]);
        }
        Ok(())
    }

    /// A folder that the head `item` of `key` (`version` once placed) was to remove or
    /// replace still holds paths this device changed (or never announced), and stays.
    /// Here it is a new version of ours that has not seen theirs: the two are concurrent,
    /// and the conflict rule settles them the same way everywhere (the folder wins, and the
    /// device that holds the other content saves it aside). A receive-only task's folder,
    /// kept by what its person put in it, is drift instead: the received version is
    /// recorded (nothing of this device's is made, or sent).
    pub(super) fn keep_folder<L: Ledger>(
        &mut self,
        key: &(TaskId, RelPath),
        item: Item,
        version: VersionVector,
        drift: &mut super::drift::Drift,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let (task, path) = (&key.0, &key.1);
        let recorded = ledger.record(task, path)?;
        if drift.covers(task) {
            let on_disk = drift
                .on_disk(key)
                .cloned()
                .map(|s| (s, item.record.mtime_ns));
            let recorded = recorded.map(|r| (r.state, r.mtime_ns));
            self.record_placed(key, item, version, None, Vec::new(), ledger)?;
            if let Some(folder) = on_disk.or(recorded) {
                drift.keep(key.clone(), folder);
            }
        } else if let Some(local) = recorded {
            let kept = (path.clone(), local.state);
            let time = (local.mtime_ns, None);
            self.store_local(task, kept, &local.version, time, ledger)?;
        }
        Ok(())
    }

    /// The folders a placement made to hold its path (`parents`), recorded.
    fn record_parents<L: Ledger>(
        &mut self,
        task: &TaskId,
        parents: Vec<RelPath>,
        item: &Item,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        for parent in parents {
            let folder = State::Folder {
                mode: NEW_FOLDER_MODE,
            };
            match ledger.record(task, &parent)? {
                // Recorded as a folder since the placement was ordered (the folder's own
                // record, placed first): nothing to add.
                Some(known) if known.state.is_folder() => {}
                // Brought back over a deletion: a change of ours that has seen it, so the
                // device that deleted it learns it is back.
                Some(deleted) => self.store_local(
                    task,
                    (parent, folder),
                    &deleted.version,
                    (item.record.mtime_ns, None),
                    ledger,
                )?,
                // Never known here: only made to hold the path. Adopted with no version of
                // ours, so the folder's own record (on its way) takes it over, and nobody's
                // later deletion of it is made concurrent by it. It counts as taken from
                // the device the path came from: that device has the folder (its own
                // record of it is on the way or placed a moment later, the two placements
                // can finish in either order), so sending it back would be an echo.
                None => {
                    let seq = Self::next_seq(ledger, task)?;
                    ledger.put(
                        task,
                        Record {
                            path: parent.clone(),
                            state: folder,
                            version: VersionVector::new(),
                            mtime_ns: item.record.mtime_ns,
                            seq,
                            retimed: None,
                            by: None,
                        },
                        Some(item.from),
                    )?;
                    self.changed.insert((*task, parent));
                }
            }
        }
        Ok(())
    }

    /// This device's version that a placement moved aside (a conflict copy), recorded.
    fn record_copy<L: Ledger>(
        &mut self,
        task: &TaskId,
        (aside_path, ours): (RelPath, Record),
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        // Another device may have made the same copy already (its name follows from its
        // content): then there is nothing new to record.
        let existing = ledger.record(task, &aside_path)?;
        if existing.as_ref().is_none_or(|r| r.state != ours.state) {
            // The copy carries the version of what it copies: two devices that copy
            // versions of one history aside under one name (same bytes, say, another
            // mode) then agree that the later one stands. Only a copy over something
            // it has not seen is a change of this device's.
            let version = match &existing {
                Some(e) if ours.version.compare(&e.version) != Causality::After => {
                    self.bump(&join(&ours.version, &e.version))
                }
                _ => ours.version.clone(),
            };
            let seq = Self::next_seq(ledger, task)?;
            let copy = Record {
                path: aside_path.clone(),
                state: ours.state,
                version,
                mtime_ns: ours.mtime_ns,
                seq,
                retimed: None,
                by: ours.by,
            };
            ledger.put(task, copy, None)?;
            self.changed.insert((*task, aside_path));
        }
        Ok(())
    }

    /// Keep `rival` (from `peer`) for `path`, in place of the one kept from that peer. A
    /// rival is forgotten only once this device's own version has seen it (see
    /// `Core::recheck_rivals`), never because another peer's version claims to have: that
    /// claim may be forged, and the rival the only copy of a peer's edit here.
    pub(super) fn keep_rival<L: Ledger>(
        task: &TaskId,
        path: &RelPath,
        peer: DeviceId,
        rival: &Record,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        ledger.set_rival(task, path, &peer, Some(rival.clone()))
    }

    /// The folders to create before `path` can be placed, outermost first; `None` if one
    /// of its parents is a file or a link here.
    pub(super) fn missing_parents<L: Ledger>(
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

    /// The rivals of `key` still to decide: those our version has seen, or from a device no
    /// longer linked with the task (whatever it sent is not to be taken any more), are
    /// forgotten here; the others are returned (and stay in the ledger until ours has seen
    /// them).
    pub(super) fn rivals_to_decide<L: Ledger>(
        (task, path): &(TaskId, RelPath),
        ledger: &mut L,
    ) -> Result<Vec<(DeviceId, Record)>, L::Error> {
        let rivals = ledger.rivals(task, path)?;
        if rivals.is_empty() {
            return Ok(rivals); // (this runs for every record that changes)
        }
        let ours = ledger.record(task, path)?;
        let linked = ledger.peers(task)?;
        let mut left = Vec::new();
        for (peer, rival) in rivals {
            let seen = ours
                .as_ref()
                .is_some_and(|o| o.version.dominates(&rival.version));
            if seen || !linked.contains(&peer) {
                ledger.set_rival(task, path, &peer, None)?;
            } else {
                left.push((peer, rival));
            }
        }
        Ok(left)
    }
}
