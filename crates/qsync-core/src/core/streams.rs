//! The streams of records between this device and each linked peer, per task: what each
//! side has sent and the other has processed, and the messages that carry them.
//!
//! Going out ([`Outbound`]), a peer's `Hello { after }` starts the stream at `after`; the
//! records of the ledger follow in sequence order, a window's worth at a time, never back
//! to the peer they came from, foldable runs folded (`fold.rs`). Coming in ([`Inbound`]),
//! each record is admitted within the window, then carried out by the core's work on its
//! path; a sequence number is acknowledged once every record up to it is settled
//! ([`Streams::settle`]). [`Streams`] holds both sides for every peer and task, and the
//! messages they make, taken by the core with [`Streams::poll_send`]. What to do with a
//! record is not its business: the core decides (`work.rs`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Instant;

use qsync_base::{DeviceId, TaskId};

use super::budget::{out_of_bounds, record_cost, Distrust, Inbound, Outbound, MAX_HELLOS};
use super::{ACK_DELAY, MAX_NUMBER, RECORDS_PER_MESSAGE};
use crate::fold::{self, Fold, Piece, Shape};
use crate::io::Message;
use crate::ledger::Ledger;
use crate::state::Record;

/// The record streams with every peer (see the [module documentation](self)).
#[derive(Debug, Default)]
pub(super) struct Streams {
    /// Peers that sent `Hello` for a task, and this device's stream of records to them.
    streaming: BTreeMap<(TaskId, DeviceId), Outbound>,
    /// How many `Hello`s each peer sent per task on this connection (at most [`MAX_HELLOS`]).
    hellos: BTreeMap<(TaskId, DeviceId), u8>,
    /// What has been received from each peer and not yet settled.
    inbound: BTreeMap<(TaskId, DeviceId), Inbound>,
    /// How far each peer's sequence is settled and not yet acknowledged: sent at the end
    /// of the call when worth a message (see [`ACK_EVERY`](super::ACK_EVERY)), else at
    /// [`Streams::ack_due`].
    acks: BTreeMap<(TaskId, DeviceId), u64>,
    /// When the acknowledgements held back in [`Streams::acks`] go out at the latest.
    ack_due: Option<Instant>,
    /// Local changes observed and not yet sent: due at the next call.
    unsent: bool,
    /// Messages to send, oldest first.
    sends: VecDeque<(DeviceId, Message)>,
    /// Tasks paused here: their streams to peers send nothing until resumed (see
    /// `paused.rs`).
    paused: BTreeSet<TaskId>,
}

/// What a peer's `Hello` calls for beyond the stream it starts.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Heard {
    /// Nothing more.
    Nothing,
    /// A greeting beyond [`MAX_HELLOS`]: ignored, and distrusted.
    TooMany,
    /// Answered with where this device stands: the peer sends its records after `again`
    /// again, so the work queued for later ones no longer settles them.
    Answered { again: u64 },
    /// Greet the peer (this device had not yet greeted it for the task).
    Greet,
}

/// Whether a received record is taken in.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Admit {
    /// Already had (or not from a stream this device follows): nothing to do.
    Had,
    /// Refused, and nothing from its number on is taken on this connection.
    Refused(Distrust),
    /// Taken, at this cost in the window (hold it once it is queued).
    Take(usize),
}

/// What a fold from a peer gives.
#[derive(Debug)]
pub(super) enum FoldIn {
    /// Already had, or not from a stream this device follows.
    Had,
    /// Refused (see [`Admit::Refused`]).
    Refused(Distrust),
    /// Its records, rebuilt here, to take in.
    Take(Vec<Record>),
    /// Asked for in full (or refused as beyond the window, with the given reason).
    Asked(Option<Distrust>),
}

impl Streams {
    /// The next message to send.
    pub(super) fn poll_send(&mut self) -> Option<(DeviceId, Message)> {
        self.sends.pop_front()
    }

    /// When the streams want the next call: acknowledgements held back, local changes
    /// not yet sent (at once: `now`, the time of the last call).
    pub(super) fn poll_timeout(&self, now: Option<Instant>) -> Option<Instant> {
        let unsent = now.filter(|_| self.unsent);
        [self.ack_due, unsent].into_iter().flatten().min()
    }

    /// Local changes were stored: they are sent at the next call.
    pub(super) fn changed_here(&mut self) {
        self.unsent = true;
    }

    fn send(&mut self, to: DeviceId, message: Message) {
        self.sends.push_back((to, message));
    }

    /// Start taking `peer`'s stream of `task` afresh after `after`, and say so (`reply`:
    /// and ask it to say the same back).
    pub(super) fn greet(&mut self, task: TaskId, peer: DeviceId, after: u64, reply: bool) {
        self.inbound.insert((task, peer), Inbound::after(after));
        self.send(peer, Message::Hello { task, after, reply });
    }

    /// `peer`'s `Hello` for `task`: this device's stream to it starts after `after`.
    pub(super) fn hello(&mut self, task: TaskId, from: DeviceId, after: u64, reply: bool) -> Heard {
        let count = self.hellos.entry((task, from)).or_insert(0);
        *count = count.saturating_add(1);
        if *count > MAX_HELLOS {
            return Heard::TooMany;
        }
        self.streaming.insert((task, from), Outbound::after(after));
        if !reply {
            return Heard::Nothing;
        }
        // Answer with where this device stands in the peer's sequence (without forgetting
        // what is under way from it).
        let Some(inbound) = self.inbound.get_mut(&(task, from)) else {
            return Heard::Greet;
        };
        let again = inbound.restarted();
        let after = inbound.saved;
        let hello = Message::Hello {
            task,
            after,
            reply: false,
        };
        self.send(from, hello);
        Heard::Answered { again }
    }

    /// `task` is paused (its streams to peers stop where they are), or resumed.
    pub(super) fn pause(&mut self, task: TaskId, paused: bool) {
        match paused {
            true => self.paused.insert(task),
            false => self.paused.remove(&task),
        };
    }

    /// `task` is linked with `peer` again: it may greet as often as at a new connection.
    pub(super) fn forget_hellos(&mut self, task: TaskId, peer: DeviceId) {
        self.hellos.remove(&(task, peer));
    }

    /// `peer` is gone: every stream with it ends.
    pub(super) fn disconnected(&mut self, peer: DeviceId) {
        self.streaming.retain(|(_, p), _| *p != peer);
        self.inbound.retain(|(_, p), _| *p != peer);
        self.hellos.retain(|(_, p), _| *p != peer);
    }

    /// `task` is no longer synced with `peer`: its streams end.
    pub(super) fn unlinked(&mut self, task: TaskId, peer: DeviceId) {
        self.streaming.remove(&(task, peer));
        self.inbound.remove(&(task, peer));
        self.hellos.remove(&(task, peer));
    }

    /// `peer` processed this device's records of `task` up to `upto`.
    pub(super) fn acked<L: Ledger>(
        &mut self,
        task: TaskId,
        peer: DeviceId,
        upto: u64,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        // Never past what was numbered: a tombstone is forgotten on the word of every
        // peer that it has it.
        let upto = upto.min(ledger.last_seq(&task)?);
        ledger.set_acked_upto(&task, &peer, upto)?;
        if let Some(out) = self.streaming.get_mut(&(task, peer)) {
            out.acked(upto);
        }
        Ok(())
    }

    /// Whether `record` from `from`'s stream of `task` is taken in (`refill`: a record of
    /// a fold asked for in full: its number is in a hole, not new, but not had either).
    /// A record the stream may not hold is refused.
    pub(super) fn admit(
        &mut self,
        task: TaskId,
        from: DeviceId,
        record: &Record,
        refill: bool,
    ) -> Admit {
        let Some(inbound) = self.inbound.get_mut(&(task, from)) else {
            return Admit::Had;
        };
        let missing = refill && inbound.in_hole(record.seq) && !inbound.holds(record.seq);
        if record.seq <= inbound.highest && !inbound.is_refused(record.seq) && !missing {
            return Admit::Had;
        }
        let cost = record_cost(record);
        let why = if inbound.is_refused(record.seq) || !inbound.has_room(cost) {
            Some(Distrust::OverWindow)
        } else {
            out_of_bounds(record)
        };
        match why {
            Some(why) => {
                inbound.refuse_from(record.seq.min(MAX_NUMBER));
                Admit::Refused(why)
            }
            None => Admit::Take(cost),
        }
    }

    /// Record number `seq` of `from`'s stream of `task`, admitted at `cost`, is queued.
    pub(super) fn hold(&mut self, task: TaskId, from: DeviceId, seq: u64, cost: usize) {
        if let Some(inbound) = self.inbound.get_mut(&(task, from)) {
            inbound.hold(seq, cost);
        }
    }

    /// Record number `seq` of `from`'s stream of `task` is settled (call
    /// [`Streams::settle`] after).
    pub(super) fn release(&mut self, task: TaskId, from: DeviceId, seq: u64) {
        if let Some(inbound) = self.inbound.get_mut(&(task, from)) {
            inbound.release(seq);
        }
    }

    /// `from`'s stream of `task` is covered up to `upto` (what it left out came from here).
    pub(super) fn covered(&mut self, task: TaskId, from: DeviceId, upto: u64) {
        if let Some(inbound) = self.inbound.get_mut(&(task, from)) {
            inbound.covered(upto);
        }
    }

    /// Store and acknowledge how far `peer`'s sequence is settled.
    pub(super) fn settle<L: Ledger>(
        &mut self,
        task: TaskId,
        peer: DeviceId,
        ledger: &mut L,
    ) -> Result<(), L::Error> {
        let Some(inbound) = self.inbound.get_mut(&(task, peer)) else {
            return Ok(());
        };
        let upto = inbound.settled_upto();
        if upto > inbound.saved {
            inbound.saved = upto;
            ledger.set_received_upto(&task, &peer, upto)?;
            // Sent at the end of the call (one call settles many records), or held back
            // a little (see `ACK_EVERY`).
            self.acks.insert((task, peer), upto);
        }
        Ok(())
    }

    /// A fold from `from`'s stream of `task`: its records rebuilt here, or asked for in
    /// full (and nothing from its first number on acknowledged until they come).
    pub(super) fn fold_in<L: Ledger>(
        &mut self,
        task: TaskId,
        from: DeviceId,
        fold: &Fold,
        ledger: &L,
    ) -> Result<FoldIn, L::Error> {
        let Some(inbound) = self.inbound.get_mut(&(task, from)) else {
            return Ok(FoldIn::Had);
        };
        let first = fold.first_seq;
        let last = match fold.last_seq() {
            Some(last) if fold.count as usize <= RECORDS_PER_MESSAGE && last <= MAX_NUMBER => last,
            _ => {
                inbound.refuse_from(first.min(MAX_NUMBER));
                return Ok(FoldIn::Refused(Distrust::NumberTooLarge));
            }
        };
        if first <= inbound.highest || inbound.is_refused(first) {
            return Ok(FoldIn::Had); // (an honest peer's folds never overlap)
        }
        match fold.unfold(&task, from, ledger, &inbound.preimages)? {
            Some(unfolded) => {
                match fold.shape {
                    Shape::Deleted { .. } => inbound.preimages.remember(unfolded.before),
                    Shape::Moved { .. } => inbound.preimages.forget(&unfolded.before),
                }
                Ok(FoldIn::Take(unfolded.records))
            }
            None if inbound.open_hole(first, last) => {
                self.send(from, Message::Unfold { task, first, last });
                Ok(FoldIn::Asked(None))
            }
            None => {
                inbound.refuse_from(first);
                Ok(FoldIn::Asked(Some(Distrust::OverWindow)))
            }
        }
    }

    /// The answer to this device's `Unfold`: the records of the hole `first..=last` to
    /// take in, each number at most once and in order (`None`: no such hole waits). Close
    /// the hole once they are ([`Streams::close_hole`]).
    pub(super) fn refill(
        &mut self,
        task: TaskId,
        from: DeviceId,
        first: u64,
        last: u64,
        records: Vec<Record>,
    ) -> Option<Vec<Record>> {
        let inbound = self.inbound.get_mut(&(task, from))?;
        if !inbound.fill_hole(first, last) {
            return None;
        }
        let mut next = first;
        let records = records
            .into_iter()
            .filter(|r| {
                let fits = r.seq >= next && r.seq <= last;
                if fits {
                    next = r.seq.saturating_add(1);
                }
                fits
            })
            .collect();
        Some(records)
    }

    /// The records of the hole from `first` are taken in.
    pub(super) fn close_hole(&mut self, task: TaskId, from: DeviceId, first: u64) {
        if let Some(inbound) = self.inbound.get_mut(&(task, from)) {
            inbound.close_hole(first);
        }
    }

    /// The records of a fold this device sent `peer`, in full, as it asked (once per
    /// fold, and only for a fold sent on this stream).
    pub(super) fn send_unfolded<L: Ledger>(
        &mut self,
        task: TaskId,
        peer: DeviceId,
        (first, last): (u64, u64),
        ledger: &L,
    ) -> Result<(), L::Error> {
        let Some(out) = self.streaming.get_mut(&(task, peer)) else {
            return Ok(());
        };
        if first == 0 || !out.unfold(first, last) {
            return Ok(());
        }
        let count = (last - first + 1) as usize;
        let records = ledger
            .records_after(&task, first - 1, count)?
            .into_iter()
            .filter(|(r, origin)| r.seq <= last && *origin != Some(peer))
            .map(|(r, _)| r)
            .collect();
        let message = Message::Unfolded {
            task,
            first,
            last,
            records,
        };
        self.send(peer, message);
        Ok(())
    }

    /// Send the acknowledgements due and every streaming peer the records it has not
    /// been sent yet, as far as its window allows (the rest goes as its acknowledgements
    /// come). `now`: the time of this call.
    pub(super) fn flush<L: Ledger>(
        &mut self,
        now: Option<Instant>,
        ledger: &L,
    ) -> Result<(), L::Error> {
        self.unsent = false;
        self.send_acks(now);
        let keys: Vec<(TaskId, DeviceId)> = self.streaming.keys().copied().collect();
        for (task, peer) in keys {
            if self.paused.contains(&task) {
                continue;
            }
            let Some(mut out) = self.streaming.remove(&(task, peer)) else {
                continue;
            };
            let result = self.flush_one(task, peer, &mut out, ledger);
            self.streaming.insert((task, peer), out);
            result?;
        }
        Ok(())
    }

    /// Send the acknowledgements worth a message now (see [`ACK_EVERY`](super::ACK_EVERY)),
    /// or all of them once [`Streams::ack_due`] has come; the others wait for it.
    fn send_acks(&mut self, now: Option<Instant>) {
        let due = match (now, self.ack_due) {
            (Some(now), Some(at)) => now >= at,
            (None, _) => true,
            (Some(_), None) => false,
        };
        for ((task, peer), upto) in std::mem::take(&mut self.acks) {
            let inbound = self.inbound.get_mut(&(task, peer));
            let worth = due || inbound.as_ref().is_none_or(|i| i.worth_acking(upto));
            if worth {
                if let Some(inbound) = inbound {
                    inbound.acked = upto;
                }
                self.send(peer, Message::Ack { task, upto });
            } else {
                self.acks.insert((task, peer), upto);
            }
        }
        self.ack_due = match self.acks.is_empty() {
            true => None,
            false => self.ack_due.or(now.map(|now| now + ACK_DELAY)),
        };
    }

    fn flush_one<L: Ledger>(
        &mut self,
        task: TaskId,
        peer: DeviceId,
        out: &mut Outbound,
        ledger: &L,
    ) -> Result<(), L::Error> {
        while out.may_begin_message() {
            let batch = ledger.records_after(&task, out.sent, RECORDS_PER_MESSAGE)?;
            if batch.is_empty() {
                return Ok(());
            }
            let mut records = Vec::new();
            let mut full = false;
            for (record, origin) in batch {
                // Never back to where it came from: the peer has it (no echo). A batch of
                // nothing but such records is not sent at all; the next record that is
                // says how far it goes.
                if origin != Some(peer) {
                    let cost = record_cost(&record);
                    if !out.has_room(cost) {
                        full = true;
                        break;
                    }
                    out.sent(record.seq, cost);
                    out.sent = record.seq;
                    records.push((record, origin.is_none()));
                } else {
                    out.sent = record.seq;
                }
            }
            if !records.is_empty() {
                self.send_folded(task, peer, records, out);
            }
            if full {
                return Ok(());
            }
        }
        Ok(())
    }

    /// Send `records` (one message's worth of `out`'s stream, which has gone up to
    /// `out.sent`) with their foldable runs folded (see `fold.rs`).
    ///
    /// Only runs of this device's own records are folded (each marked `true`): the
    /// receiver rebuilds a fold's versions as one change of the sender's up. Records taken
    /// from another peer go as they are (the receiver may have them from their maker
    /// already, and a fold of what it no longer holds could not be rebuilt).
    fn send_folded(
        &mut self,
        task: TaskId,
        peer: DeviceId,
        records: Vec<(Record, bool)>,
        out: &mut Outbound,
    ) {
        // Runs of own records and of others', moved (not copied) out of `records`.
        let mut runs: Vec<(bool, Vec<Record>)> = Vec::new();
        for (record, own) in records {
            match runs.last_mut() {
                Some((mine, run)) if *mine == own => run.push(record),
                _ => runs.push((own, vec![record])),
            }
        }
        let mut pieces = Vec::new();
        for (own, run) in runs {
            match own {
                true => pieces.extend(fold::fold(run, &mut out.tail)),
                false => {
                    out.tail = None;
                    pieces.push(Piece::Records(run));
                }
            }
        }
        let count = pieces.len();
        for (i, piece) in pieces.into_iter().enumerate() {
            // Each piece covers the sequence up to its last record, the last one up to
            // where the stream went (records passed over included).
            let message = match piece {
                Piece::Records(records) => {
                    let last = records.last().map_or(out.sent, |r| r.seq);
                    let upto = if i + 1 == count { out.sent } else { last };
                    Message::Records {
                        task,
                        records,
                        upto,
                    }
                }
                Piece::Fold(fold) => {
                    let (first, last) = (fold.first_seq, fold.last_seq().unwrap_or(out.sent));
                    out.folded(first, last);
                    let upto = if i + 1 == count { out.sent } else { last };
                    Message::Fold { task, fold, upto }
                }
            };
            self.send(peer, message);
        }
    }

    /// Bytes held for records received from `peer` for `task` and not yet settled (what
    /// the window bounds).
    pub(super) fn held_from(&self, task: &TaskId, peer: &DeviceId) -> usize {
        self.inbound.get(&(*task, *peer)).map_or(0, Inbound::held)
    }
}
