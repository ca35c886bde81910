//! [`Core`]: the sync rules of one device as a state machine. Facts go in through
//! [`Core::handle`] and [`Core::handle_timeout`], orders come out of [`Core::poll_effect`];
//! it never touches a disk, a socket, a thread or a clock.
//!
//! The exchange, per task and per linked peer:
//! 1. On connecting, each side sends `Hello { after }`: the last of the other's sequence
//!    numbers it has processed.
//! 2. Each side answers with its records after that number, in sequence order, and from
//!    then on sends every record it stores (its own changes, and what it took from other
//!    peers: that is how a change travels along a line of devices).
//! 3. The receiver decides each record with [`decide`]. A record that needs content asks the
//!    sender for it ([`Message::Request`]), then places it ([`Effect::Place`]); only once the
//!    placement is done is the record stored, and only once every record up to a sequence
//!    number is settled does the receiver store and acknowledge that number.
//!
//! Work is kept per path: one record at a time is carried out for a path, in the order
//! received, so two versions of a path never race on the disk.
//!
//! Where each part lives, each a type owning its fields:
//! - [`Streams`] (`streams.rs`): the streams of records with each peer (steps 1, 2 and the
//!   acknowledgements of 3, windows and folds);
//! - `Work` (`work.rs`): what a received record is decided and carried out as, path by
//!   path, over `Queues` (`queues.rs`: the queue of each path and its waits) and
//!   `Patience` (`patience.rs`); it is called with a `Cx`, what it needs of the rest;
//! - `Book` (`book.rs`): what the rules write into the ledger (this device's versions,
//!   decisions, what placements made, rivals) and which paths' rivals are decided again;
//! - `Tombstones` (`tombstones.rs`): deletions every linked device has, forgotten;
//! - here, [`Core`]: what this device observes, and the dispatch of every fact.

use std::collections::{BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use qsync_base::{mtime_moved, DeviceId, RelPath, TaskId};

use crate::fold::Fold;
use crate::io::{Effect, Input, Message};
use crate::ledger::Ledger;

use crate::state::{Record, State};

mod book;
mod budget;
mod drift;
mod patience;
mod paused;
mod queues;
mod streams;
mod tombstones;
mod work;
use book::Book;
pub use budget::{
    record_cost, Distrust, Report, MAX_COUNTER, MAX_HELLOS, MAX_LINK_TARGET, MAX_NUMBER,
    MAX_VERSION_ENTRIES, WINDOW_BYTES, WINDOW_RECORDS,
};
pub use patience::PATIENCE;
use paused::Paused;
use streams::{FoldIn, Heard, Streams};
use tombstones::Tombstones;
use work::{Cx, Work};

/// A received record not carried out yet (see [`Core::unsettled`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsettled {
    /// Its path.
    pub path: RelPath,
    /// The peer it came from.
    pub from: DeviceId,
    /// When it was taken in (`None` before the core was first given the time).
    pub since: Option<Instant>,
    /// What it waits for.
    pub awaits: Awaits,
    /// How many more records of the path wait behind it.
    pub behind: usize,
}

/// What an [`Unsettled`] record waits for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Awaits {
    /// Its turn to be decided (a record of another path it needs first, a peer's record
    /// ahead of it).
    Turn,
    /// Its content, asked of the peers that hold it.
    Content,
    /// Its placement on disk, under way.
    Placement,
    /// The deletions of what is left in the folder it deletes.
    Children,
    /// A retry at `at`, after `failures` failures in a row (content not had, placement
    /// refused: a full disk, a file changed meanwhile).
    Retry {
        /// When.
        at: Instant,
        /// Failures in a row.
        failures: u8,
    },
}

/// How long a placement that found the disk changed waits before it is decided again (by
/// then the watcher has reported the change, and the decision takes it into account).
pub const RETRY_AFTER: Duration = Duration::from_secs(1);

/// The longest wait before a record whose content could not be fetched, or whose
/// placement the disk refused, is tried again: the wait starts at [`RETRY_AFTER`] and
/// doubles with each failure in a row up to this (a full disk is retried every 16 s until
/// space is freed, without anybody restarting anything).
pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(16);

/// How many retry periods a folder's deletion that finds the folder not empty waits for
/// the deletions of what is left in it, before the folder stays as a new version.
pub const CHILDREN_WAITS: u8 = 5;

/// At most this many records go in one [`Message::Records`].
pub const RECORDS_PER_MESSAGE: usize = 256;

/// An acknowledgement goes out at once when it covers this many more of the peer's
/// sequence numbers than the last one, or when nothing received from the peer is left to
/// settle; otherwise after [`ACK_DELAY`]. One acknowledgement per settled record made the
/// 100,000-file drop send 100,000 of them, each a message and a ledger write on both sides.
pub const ACK_EVERY: u64 = RECORDS_PER_MESSAGE as u64;

/// The longest an acknowledgement is held back (see [`ACK_EVERY`]).
pub const ACK_DELAY: Duration = Duration::from_millis(20);

/// The permission bits of a folder QSync creates to hold a received path.
const NEW_FOLDER_MODE: u32 = 0o755;

/// One device's sync rules: facts in ([`Core::handle`]), orders out ([`Core::poll_effect`]),
/// the state kept in a [`Ledger`] passed to each call (see the crate documentation).
#[derive(Debug)]
pub struct Core {
    me: DeviceId,
    now: Option<Instant>,
    connected: BTreeSet<DeviceId>,
    /// The streams of records with each peer, per task (`streams.rs`).
    streams: Streams,
    /// The received work, per path (`work.rs`).
    work: Work,
    /// What the rules write into the ledger, and the paths whose rivals are decided again
    /// (`book.rs`).
    book: Book,
    /// Tombstones every linked device has: forgotten.
    tombstones: Tombstones,
    /// Tasks paused here, and what peers sent of them meanwhile (`paused.rs`).
    paused: Paused,
    /// Receive-only tasks, and what their persons changed (`drift.rs`).
    drift: drift::Drift,
    effects: VecDeque<Effect>,
}

impl Core {
    /// The rules of device `me`, its spare counter keys derived from its id (tests; a
    /// daemon uses [`Core::with_key_seed`]). Its persistent state is the ledger passed to
    /// each call.
    pub fn new(me: DeviceId) -> Self {
        Self::with_key_seed(me, *qsync_base::ContentHash::of(me.as_bytes()).as_bytes())
    }

    /// The rules of device `me`, its spare counter keys derived from `seed`: a secret of
    /// the device, the same at every start (see [`counter_keys`](crate::rules::counter_keys)).
    pub fn with_key_seed(me: DeviceId, seed: [u8; 32]) -> Self {
        Self {
            me,
            book: Book::new(crate::rules::counter_keys(&me, &seed)),
            now: None,
            connected: BTreeSet::new(),
            streams: Streams::default(),
            work: Work::default(),
            tombstones: Tombstones::default(),
            paused: Paused::default(),
            drift: drift::Drift::default(),
            effects: VecDeque::new(),
        }
    }

    /// Run `f` on the per-path work with what it needs of the rest of the core.
    fn with_work<R>(&mut self, f: impl FnOnce(&mut Work, &mut Cx<'_>) -> R) -> R {
        let mut cx = Cx {
            now: self.now,
            connected: &self.connected,
            streams: &mut self.streams,
            book: &mut self.book,
            effects: &mut self.effects,
            drift: &mut self.drift,
        };
        f(&mut self.work, &mut cx)
    }

    /// This device.
    pub fn me(&self) -> DeviceId {
        self.me
    }

    /// The keys this device counts its changes under.
    pub fn counter_keys(&self) -> &[DeviceId] {
        self.book.keys()
    }

    /// Take in one fact.
    ///
    /// An error is the ledger's: the call stopped half-way, so the driver rolls back the
    /// ledger's writes of this call and replaces this core with a new one (as at a restart:
    /// what it held in memory is rebuilt from the ledger and from the peers).
    pub fn handle<L: Ledger>(
        &mut self,
        now: Instant,
        input: Input,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        self.now = Some(now);
        // What the watcher saw goes out together: a folder's thousand new paths as a few
        // messages (and folded: `fold.rs`), not a message each. It is sent at the next
        // call, which `poll_timeout` says is due at once.
        let observed = matches!(input, Input::Observed { .. });
        match input {
            Input::Link { task, peer } => self.link(task, peer, ledger)?,
            Input::Connected { peer } => self.connected(peer, ledger)?,
            Input::Disconnected { peer } => self.disconnected(peer, ledger)?,
            Input::Unlink { task, peer } => self.unlinked(task, peer, ledger)?,
            Input::Pause { task, paused } => self.pause(task, paused, ledger)?,
            Input::Override { task, paths } => self.override_rivals(task, paths, ledger)?,
            Input::ReceiveOnly { task, on } => self.receive_only(task, on, ledger)?,
            Input::Revert { task } => self.revert(task, ledger)?,
            Input::Received { from, message } => match self.paused.sort(from, message) {
                paused::Sorted::Now(message) => self.received(from, message, ledger)?,
                paused::Sorted::Held => {}
                paused::Sorted::Refuse(effect) => self.effects.push_back(effect),
            },
            Input::Observed {
                task,
                path,
                state,
                mtime_ns,
            } => self.observed(task, path, state.normalized(), mtime_ns, ledger)?,
            Input::Excluded { task, path } => {
                self.with_work(|work, cx| work.excluded((task, path), cx, ledger))?
            }
            Input::RulesChanged { task } => {
                // What was excluded is decided again: the rules may include it now.
                let paths = ledger.rival_paths(&task)?;
                self.book.mark_all(task, paths);
            }
            Input::Fetched {
                task,
                path,
                hash,
                from,
                ok,
            } => {
                self.with_work(|work, cx| work.fetched((task, path), (from, hash), ok, cx, ledger))?
            }
            Input::Placed {
                task,
                path,
                outcome,
            } => self.with_work(|work, cx| work.placed((task, path), outcome, cx, ledger))?,
        }
        self.recheck_rivals(ledger)?;
        match observed {
            true => self.streams.changed_here(),
            false => self.streams.flush(self.now, ledger)?,
        }
        self.work.forget_stale_waits();
        Ok(())
    }

    /// `task` is linked with `peer` (again, maybe).
    fn link<L: Ledger>(
        &mut self,
        task: TaskId,
        peer: DeviceId,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        if !ledger.peers(&task)?.contains(&peer) {
            // Linked anew: whatever was known of the peer's progress may be of a task it
            // has since removed and made again.
            ledger.forget_peer(&task, &peer)?;
        }
        ledger.link(&task, &peer)?;
        self.streams.forget_hellos(task, peer);
        if self.connected.contains(&peer) {
            self.greet(task, peer, true, ledger)?;
        }
        Ok(())
    }

    /// `peer` is connected: the exchange of every task linked with it starts.
    fn connected<L: Ledger>(&mut self, peer: DeviceId, ledger: &mut L) -> Result<(), L::Error> {
        self.connected.insert(peer);
        for task in ledger.tasks()? {
            if ledger.peers(&task)?.contains(&peer) {
                // Both sides greet on connecting: no answer needed. (A greeting on linking
                // asks for one: the peer may have greeted before this device knew of the
                // link, and that greeting was dropped.)
                self.greet(task, peer, false, ledger)?;
                let paths = ledger.rival_paths(&task)?;
                self.book.mark_all(task, paths);
            }
        }
        Ok(())
    }

    /// Let time pass: placements waiting for a retry are decided again. Errors as for
    /// [`handle`](Self::handle).
    pub fn handle_timeout<L: Ledger>(
        &mut self,
        now: Instant,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        self.now = Some(now);
        self.with_work(|work, cx| work.timeout(now, cx, ledger))?;
        self.recheck_rivals(ledger)?;
        self.streams.flush(self.now, ledger)?;
        self.work.forget_stale_waits();
        Ok(())
    }

    /// The next order, if any.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        self.effects.pop_front().or_else(|| {
            let (to, message) = self.streams.poll_send()?;
            Some(Effect::Send { to, message })
        })
    }

    /// When [`handle_timeout`](Self::handle_timeout) should next be called, if ever.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let streams = self.streams.poll_timeout(self.now);
        [self.work.next_timeout(), streams]
            .into_iter()
            .flatten()
            .min()
    }

    /// Whether received records are still being carried out.
    pub fn is_busy(&self) -> bool {
        !self.work.is_empty()
    }

    /// Start the exchange of `task` with `peer`: say where this device stands in its
    /// sequence (`reply`: and ask it to say the same back).
    fn greet<L: Ledger>(
        &mut self,
        task: TaskId,
        peer: DeviceId,
        reply: bool,
        ledger: &L,
    ) -> Result<(), L::Error> {
        let after = ledger.received_upto(&task, &peer)?;
        // The peer's sequence is tracked afresh from `after` (a new link, say, while it is
        // connected): what it sent before and is still queued leaves it, or settling it
        // would settle the copy it sends again under the same number (see `disconnected`).
        self.work.untrack(task, peer, 0);
        self.streams.greet(task, peer, after, reply);
        Ok(())
    }

    fn disconnected<L: Ledger>(&mut self, peer: DeviceId, ledger: &mut L) -> Result<(), L::Error> {
        self.connected.remove(&peer);
        self.streams.disconnected(peer);
        self.paused.disconnected(peer);
        // What that peer sent comes again after reconnecting; placements under way finish.
        // Those are no longer part of the peer's sequence as this device will track it: the
        // peer sends the same records again, under the same numbers, and settling one of
        // those numbers because the old placement finished (or was superseded by the new
        // copy of its own record) would acknowledge the new copy before it is carried out;
        // a second disconnection would then drop it for good.
        self.with_work(|work, cx| work.drop_work_from(peer, None, cx, ledger))
    }

    fn linked<L: Ledger>(
        &self,
        task: &TaskId,
        peer: &DeviceId,
        ledger: &L,
    ) -> Result<bool, L::Error> {
        Ok(self.connected.contains(peer) && ledger.peers(task)?.contains(peer))
    }

    fn received<L: Ledger>(
        &mut self,
        from: DeviceId,
        message: Message,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        match message {
            Message::Hello { task, after, reply } => {
                if after <= MAX_NUMBER && self.linked(&task, &from, ledger)? {
                    match self.streams.hello(task, from, after, reply) {
                        Heard::Nothing => {}
                        Heard::TooMany => self.distrust(from, task, Distrust::RepeatedHello, None),
                        Heard::Answered { again } => self.work.untrack(task, from, again),
                        Heard::Greet => self.greet(task, from, false, ledger)?,
                    }
                }
            }
            Message::Records {
                task,
                records,
                upto,
            } => {
                if !self.linked(&task, &from, ledger)? {
                    return Ok(());
                }
                self.take_records(task, from, records, false, ledger)?;
                // The sender left out what came from here: its sequence is covered up to
                // `upto` all the same (unless something before it was refused).
                self.streams.covered(task, from, upto);
                self.streams.settle(task, from, ledger)?;
            }
            Message::Fold { task, fold, upto } => {
                if self.linked(&task, &from, ledger)? {
                    self.unfold(task, from, fold, upto, ledger)?;
                }
            }
            Message::Unfold { task, first, last } => {
                if self.linked(&task, &from, ledger)? {
                    self.streams
                        .send_unfolded(task, from, (first, last), ledger)?;
                }
            }
            Message::Unfolded {
                task,
                first,
                last,
                records,
            } => {
                if self.linked(&task, &from, ledger)? {
                    self.refilled(task, from, (first, last), records, ledger)?;
                }
            }
            Message::Ack { task, upto } => {
                if upto <= MAX_NUMBER && self.linked(&task, &from, ledger)? {
                    self.streams.acked(task, from, upto, ledger)?;
                    self.collect_tombstones(task, ledger)?;
                }
            }
            request @ Message::Request { .. } => self.asked(from, request, ledger)?,
        }
        Ok(())
    }

    /// Take a peer's `records` in (see [`Core::take_in`]; `refill`: the records of a
    /// fold asked for in full), and report what was refused.
    fn take_records<L: Ledger>(
        &mut self,
        task: TaskId,
        from: DeviceId,
        records: Vec<Record>,
        refill: bool,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let mut refused: Option<Report> = None;
        for record in records {
            if let Some((why, path)) =
                self.with_work(|work, cx| work.take_in(task, from, record, refill, cx, ledger))?
            {
                match refused.as_mut() {
                    Some(report) => report.count += 1,
                    None => {
                        refused = Some(Report {
                            why,
                            path: Some(path),
                            count: 1,
                        })
                    }
                }
            }
        }
        if let Some(report) = refused {
            self.effects
                .push_back(Effect::Distrust { from, task, report });
        }
        Ok(())
    }

    fn observed<L: Ledger>(
        &mut self,
        task: TaskId,
        path: RelPath,
        state: State,
        mtime_ns: i64,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        if !ledger.tasks()?.contains(&task) {
            return Ok(());
        }
        let current = ledger.record(&task, &path)?;
        if self.drift.covers(&task) {
            return self.drifted((task, path), (state, mtime_ns), current, ledger);
        }
        // A file's new modification time alone is a change (`touch -d`), carried as a
        // record; within what file systems round, it is the same time.
        let unchanged = match &current {
            Some(record) => {
                record.state == state
                    && !(state.hash().is_some() && mtime_moved(record.mtime_ns, mtime_ns))
            }
            None => !state.exists(),
        };
        if unchanged {
            return Ok(());
        }
        if !state.exists()
            || current
                .as_ref()
                .is_some_and(|c| c.state.is_folder() && !state.is_folder())
        {
            // Whatever was under a folder that is gone went with it: deepest first, so a
            // peer empties a folder before it removes it.
            let mut under = ledger.records_under(&task, &path)?;
            under.sort_by(|a, b| b.path.cmp(&a.path));
            for child in under.into_iter().filter(|c| c.state.exists()) {
                let deleted = (child.path, State::Deleted);
                self.book
                    .store_local(&task, deleted, &child.version, (mtime_ns, None), ledger)?;
            }
        }
        // A file's time moved, nothing else: the version keeps the content of the one it
        // was made on (or of the one that one kept), which a concurrent change of the
        // content made after it beats without a conflict (`rules::decide`).
        let retimed = current
            .as_ref()
            .filter(|c| c.state == state && state.hash().is_some())
            .map(|c| c.retimed.clone().unwrap_or_else(|| c.version.clone()));
        let base = current.map(|c| c.version).unwrap_or_default();
        let new = (path.clone(), state);
        self.book
            .store_local(&task, new, &base, (mtime_ns, retimed), ledger)?;
        // A placement waiting on this path is decided again now, against the new version.
        let key = (task, path);
        self.with_work(|work, cx| work.decide_again(&key, cx, ledger))
    }

    /// `from` asks for a content: served if it is linked to the task.
    fn asked<L: Ledger>(
        &mut self,
        from: DeviceId,
        request: Message,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let Message::Request {
            task,
            path,
            hash,
            base,
            offset,
            mut checks,
            ..
        } = request
        else {
            return Ok(());
        };
        // Never more checks than the bytes the asker says it has (a peer's list is held
        // until it is served).
        checks.truncate(qsync_base::check_count(offset) as usize);
        checks.shrink_to_fit();
        if self.linked(&task, &from, ledger)? {
            self.effects.push_back(Effect::Serve {
                to: from,
                task,
                path,
                hash,
                base: base.filter(|_| offset == 0),
                offset,
                checks,
            });
        }
        Ok(())
    }

    /// The answer to an `Unfold` of this device's: the records of the hole `first..=last`
    /// taken in, and the hole closed.
    fn refilled<L: Ledger>(
        &mut self,
        task: TaskId,
        from: DeviceId,
        (first, last): (u64, u64),
        records: Vec<Record>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        if let Some(records) = self.streams.refill(task, from, first, last, records) {
            self.take_records(task, from, records, true, ledger)?;
            self.streams.close_hole(task, from, first);
            self.streams.settle(task, from, ledger)?;
        }
        Ok(())
    }

    /// A fold from `from`: its records taken in as rebuilt here, or, if they cannot be,
    /// asked for in full (and nothing from its first number on acknowledged until then).
    fn unfold<L: Ledger>(
        &mut self,
        task: TaskId,
        from: DeviceId,
        fold: Fold,
        upto: u64,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        match self.streams.fold_in(task, from, &fold, ledger)? {
            FoldIn::Had => return Ok(()),
            FoldIn::Refused(why) => {
                self.distrust(from, task, why, None);
                return Ok(());
            }
            FoldIn::Take(records) => self.take_records(task, from, records, false, ledger)?,
            FoldIn::Asked(None) => {}
            FoldIn::Asked(Some(why)) => self.distrust(from, task, why, None),
        }
        self.streams.covered(task, from, upto);
        self.streams.settle(task, from, ledger)
    }

    /// Stop syncing `task` with `peer` at once: no more records either way, and its work
    /// not yet under way on the disk is dropped (the ledger's link is the driver's to
    /// remove).
    fn unlinked<L: Ledger>(
        &mut self,
        task: TaskId,
        peer: DeviceId,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        self.streams.unlinked(task, peer);
        self.paused.unlinked(&task, peer);
        self.with_work(|work, cx| work.drop_work_from(peer, Some(task), cx, ledger))
    }

    /// Pause `task`, or resume it: what peers sent meanwhile is taken as if it arrived
    /// now, a peer that sent too much is greeted afresh, and this device's streams go on
    /// from where they stopped (see `paused.rs`).
    fn pause<L: Ledger>(
        &mut self,
        task: TaskId,
        paused: bool,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        self.streams.pause(task, paused);
        if paused {
            self.paused.pause(task);
            return Ok(());
        }
        let Some(held) = self.paused.resume(&task) else {
            return Ok(());
        };
        for (from, message) in held.messages {
            self.received(from, message, ledger)?;
        }
        for peer in held.overflowed {
            // Sent past its window: nothing more of it is taken on this connection (its
            // stream here ends; it sends again after reconnecting).
            self.streams.unlinked(task, peer);
            self.with_work(|work, cx| work.drop_work_from(peer, Some(task), cx, ledger))?;
            self.distrust(peer, task, Distrust::OverWindow, None);
        }
        self.book.mark_all(task, held.marks);
        Ok(())
    }

    /// `task` is receive-only here, or not any more: its drift is then recorded as this
    /// device's changes (see `drift.rs`).
    fn receive_only<L: Ledger>(
        &mut self,
        task: TaskId,
        on: bool,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        for (path, state, mtime_ns) in self.drift.set(task, on) {
            self.observed(task, path, state, mtime_ns, ledger)?;
        }
        Ok(())
    }

    /// What the person of receive-only `key.0` made at `key.1` (`seen`, over the version
    /// `current`): drift, not recorded; a folder gone takes what was under it. A placement
    /// waiting on the path is decided again, against what is on disk now.
    fn drifted<L: Ledger>(
        &mut self,
        key: (TaskId, RelPath),
        seen: (State, i64),
        current: Option<Record>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        self.drift.changed(key.clone(), seen, current, ledger)?;
        self.with_work(|work, cx| work.decide_again(&key, cx, ledger))
    }

    /// Put the recorded versions of receive-only `task` back over its drift (see
    /// [`Input::Revert`]).
    fn revert<L: Ledger>(&mut self, task: TaskId, ledger: &mut L) -> Result<(), L::Error> {
        // Content not on this disk comes from a connected linked device, chosen when each
        // revert's turn comes (`drift::revert_due`; this device stands for none yet).
        let (from, records) = (self.me, self.drift.recorded(&task, ledger)?);
        self.with_work(|work, cx| work.revert(task, from, records, cx, ledger))
    }

    /// Make this device's versions of `paths` win over the rivals kept (see
    /// [`Input::Override`]).
    fn override_rivals<L: Ledger>(
        &mut self,
        task: TaskId,
        paths: Vec<RelPath>,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        self.book.override_rivals(task, paths, ledger)?;
        self.streams.changed_here();
        Ok(())
    }

    /// Decide again the rivals of the paths whose records changed, but for paused tasks'
    /// (decided once resumed: see `paused.rs`).
    fn recheck_rivals<L: Ledger>(&mut self, ledger: &mut L) -> Result<(), L::Error> {
        let paused: Vec<TaskId> = self.paused.tasks().copied().collect();
        for task in paused {
            let marks = self.book.take_marks_of(&task);
            self.paused.defer_marks(&task, marks);
        }
        self.with_work(|work, cx| work.recheck_rivals(cx, ledger))
    }

    /// Tell the driver that `from` sent something refused or distrusted.
    fn distrust(&mut self, from: DeviceId, task: TaskId, why: Distrust, path: Option<RelPath>) {
        distrust(&mut self.effects, from, task, why, path);
    }

    /// Forget the tombstones of `task` every linked device has (see `tombstones.rs`).
    fn collect_tombstones<L: Ledger>(
        &mut self,
        task: TaskId,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        // Work queued on the path or under it: a placement there may make the folder
        // again as a parent, and must find its deletion here (seed 22,734 of the honest
        // schedules, with acknowledgements sent more often: a folder made as the parent of
        // a file after its tombstone was forgotten stayed on one device only).
        let work = &self.work;
        let busy = |path: &RelPath| work.busy_at_or_under(task, path);
        self.tombstones
            .collect(&task, self.book.keys(), busy, ledger)?;
        Ok(())
    }

    /// The received records of `task` not carried out yet, one per path (the first of
    /// its queue), and what each waits for: the answer to "why is this not in sync".
    pub fn unsettled(&self, task: &TaskId) -> Vec<Unsettled> {
        self.work.unsettled(task)
    }

    /// What the person of receive-only `task` changed here and did not send (see
    /// `drift.rs`): each path with what is on disk (`Deleted`: nothing).
    pub fn drift(&self, task: &TaskId) -> Vec<(RelPath, State)> {
        self.drift.of(task)
    }

    /// Whether `task` is paused here (see `paused.rs`).
    pub fn is_paused(&self, task: &TaskId) -> bool {
        self.paused.is_paused(task)
    }

    /// Bytes held for records received from `peer` for `task` and not yet settled (what
    /// the window bounds).
    pub fn held_from(&self, task: &TaskId, peer: &DeviceId) -> usize {
        self.streams.held_from(task, peer)
    }
}

/// Order the report that `from` sent something about `task` the rules refuse or doubt.
fn distrust(
    effects: &mut VecDeque<Effect>,
    from: DeviceId,
    task: TaskId,
    why: Distrust,
    path: Option<RelPath>,
) {
    let report = Report {
        why,
        path,
        count: 1,
    };
    effects.push_back(Effect::Distrust { from, task, report });
}
