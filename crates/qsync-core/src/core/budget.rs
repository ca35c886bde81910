//! What one linked peer may claim and cost this device: the bounds a record must fit, the
//! per peer and task window of records in flight each way, and how many greetings a
//! connection may make. Every honest device keeps inside them; what does not is refused,
//! reported as a [`Distrust`] effect and never acknowledged.
//!
//! The two windows are one rule seen from each side. A sender keeps at most
//! [`WINDOW_RECORDS`] records of [`WINDOW_BYTES`] (by [`record_cost`]) sent and not yet
//! acknowledged ([`Outbound`]); a receiver holds at most as much received and not yet
//! settled ([`Inbound`]). A receiver settles a record before the sender hears of it, so an
//! honest sender never goes over what the receiver accepts, and a peer that ignores its
//! window costs at most the window: the records beyond it are dropped, and so is the rest
//! of the connection's stream (the sender sends them again after reconnecting).

use std::collections::{BTreeMap, VecDeque};

use qsync_base::RelPath;

use super::{ACK_EVERY, RECORDS_PER_MESSAGE};
use crate::fold::{Preimages, Tail};
use crate::state::{Record, State};

/// The largest counter a version may name. Far below what the wire and the database hold,
/// so that a device that took a forged claim near it still has room for its own changes;
/// a record above it is refused. (At one change a millisecond, a path reaches it after
/// nine thousand years.)
pub const MAX_COUNTER: u64 = 1 << 48;

/// The largest sequence number or size a peer may name: what a signed 64-bit database
/// column holds. A record beyond it is refused (no honest device gets there).
pub const MAX_NUMBER: u64 = i64::MAX as u64;

/// The most devices a version vector may name: a record naming more is refused (a task is
/// one person's devices), so one peer cannot make every device store and pass on huge
/// versions: a tombstone costs at most a few kilobytes.
pub const MAX_VERSION_ENTRIES: usize = 64;

/// The longest symlink target a record may carry (Linux's `PATH_MAX`): a record with a
/// longer one is refused, as no honest device can have such a link.
pub const MAX_LINK_TARGET: usize = 4096;

/// The most records in flight from one peer for one task (see the module documentation).
pub const WINDOW_RECORDS: usize = 8_192;

/// The most bytes ([`record_cost`]) in flight from one peer for one task: with
/// [`WINDOW_RECORDS`], what a peer's records can make a device hold in memory.
pub const WINDOW_BYTES: usize = 32 << 20;

/// How many `Hello`s of one task a peer may send on one connection (its greeting, a
/// greeting on linking and the answer to one), each of which makes this device send its
/// records again from where the peer says it stands. Linking again allows as many more.
pub const MAX_HELLOS: u8 = 4;

/// What holding `record` costs a receiving daemon, in bytes, as measured: the core's
/// queue entry and the driver's transfer order take about two kilobytes for a short path
/// (`tests/attacks_counters.rs`), then its path (held twice), link target and version.
/// Sender and receiver count the same way.
pub fn record_cost(record: &Record) -> usize {
    MIN_RECORD_COST + record_extra_cost(record)
}

/// The least a record costs ([`record_cost`]): what a run of records not yet received is
/// held at per record (a fold that could not be rebuilt, until it comes in full).
pub(super) const MIN_RECORD_COST: usize = 2048;

fn record_extra_cost(record: &Record) -> usize {
    let target = match &record.state {
        State::Symlink { target } => target.len(),
        _ => 0,
    };
    let retimed = record.retimed.as_ref().map_or(0, |v| v.iter().count());
    2 * record.path.as_str().len() + target + 64 * (record.version.iter().count() + retimed)
}

/// Why something a peer sent was refused, or not trusted as it stood.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Distrust {
    /// A version counter above [`MAX_COUNTER`], or a sequence number or size above
    /// [`MAX_NUMBER`]: refused.
    NumberTooLarge,
    /// A version naming more than [`MAX_VERSION_ENTRIES`] devices: refused.
    TooManyDevices,
    /// A link target over [`MAX_LINK_TARGET`] bytes: refused.
    LinkTooLong,
    /// Records beyond the window ([`WINDOW_RECORDS`], [`WINDOW_BYTES`]), or after a refused
    /// one: dropped until the peer reconnects.
    OverWindow,
    /// A `Hello` beyond [`MAX_HELLOS`] on one connection: ignored.
    RepeatedHello,
    /// A version claiming more of this device's changes than it made to the path: taken as
    /// concurrent with ours, never as newer (see [`rules`](crate::rules)).
    ClaimAboveIssued,
}

impl Distrust {
    /// Whether the record was refused (not stored, never acknowledged), rather than taken
    /// with less trust.
    pub fn refused(self) -> bool {
        !matches!(self, Distrust::ClaimAboveIssued)
    }
}

impl std::fmt::Display for Distrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Distrust::NumberTooLarge => "a counter or number above the bound",
            Distrust::TooManyDevices => "a version naming too many devices",
            Distrust::LinkTooLong => "a link target too long",
            Distrust::OverWindow => "records beyond its window",
            Distrust::RepeatedHello => "greetings beyond the bound",
            Distrust::ClaimAboveIssued => "a claim of more of this device's changes than it made",
        })
    }
}

/// Why `record` cannot be taken from a peer at all, if it cannot.
pub(super) fn out_of_bounds(record: &Record) -> Option<Distrust> {
    let size = record.state.size();
    let kept = record.retimed.iter().flat_map(|v| v.iter());
    if record.seq > MAX_NUMBER
        || size > MAX_NUMBER
        || record
            .version
            .iter()
            .chain(kept)
            .any(|(_, c)| c > MAX_COUNTER)
    {
        return Some(Distrust::NumberTooLarge);
    }
    let kept = record.retimed.as_ref().map_or(0, |v| v.iter().count());
    if record.version.iter().count() > MAX_VERSION_ENTRIES || kept > MAX_VERSION_ENTRIES {
        return Some(Distrust::TooManyDevices);
    }
    match &record.state {
        State::Symlink { target } if target.len() > MAX_LINK_TARGET => Some(Distrust::LinkTooLong),
        _ => None,
    }
}

/// Received sequence numbers of one peer for one task, and what they hold here.
#[derive(Debug, Default)]
pub(super) struct Inbound {
    /// The highest sequence number received.
    pub(super) highest: u64,
    /// Received and not yet settled, each with its [`record_cost`].
    unsettled: BTreeMap<u64, usize>,
    /// The sum of those costs.
    held: usize,
    /// The first record refused on this connection: nothing from there on is taken or
    /// acknowledged until the peer greets again.
    refused_from: Option<u64>,
    /// The last number stored as processed.
    pub(super) saved: u64,
    /// The last number acknowledged to the peer.
    pub(super) acked: u64,
    /// Folds of the peer's that could not be rebuilt here, asked for in full.
    holes: Holes,
    /// Paths a fold of the peer's deleted, as they were just before (see `fold.rs`).
    pub(super) preimages: Preimages,
}

impl Inbound {
    /// A stream that starts after `after`.
    pub(super) fn after(after: u64) -> Self {
        Self {
            highest: after,
            saved: after,
            acked: after,
            ..Self::default()
        }
    }

    /// Whether a record of `cost` fits in the window.
    pub(super) fn has_room(&self, cost: usize) -> bool {
        self.fits(1, cost)
    }

    /// Whether `records` more records of `cost` in all fit in the window.
    fn fits(&self, records: usize, cost: usize) -> bool {
        self.unsettled.len() + self.holes.records + records <= WINDOW_RECORDS
            && self.held + self.holes.bytes + cost <= WINDOW_BYTES
    }

    /// Whether record number `seq` is held, unsettled.
    pub(super) fn holds(&self, seq: u64) -> bool {
        self.unsettled.contains_key(&seq)
    }

    /// Hold `first..=last` (a fold that could not be rebuilt) until it comes in full:
    /// nothing from `first` on is acknowledged meanwhile, and it is held in the window at
    /// the least its records can cost. `false` if it does not fit.
    pub(super) fn open_hole(&mut self, first: u64, last: u64) -> bool {
        let count = (last - first + 1) as usize;
        let cost = count.saturating_mul(MIN_RECORD_COST);
        if first <= self.highest || !self.fits(count, cost) {
            return false;
        }
        self.holes.runs.insert(first, (last, false));
        self.holes.records += count;
        self.holes.bytes += cost;
        self.highest = last;
        true
    }

    /// Whether `seq` is in a hole (a record of it that comes in full is taken although
    /// its number is not new).
    pub(super) fn in_hole(&self, seq: u64) -> bool {
        self.holes
            .runs
            .range(..=seq)
            .next_back()
            .is_some_and(|(_, (last, _))| seq <= *last)
    }

    /// The records of the hole `first..=last` have come: it no longer takes room in the
    /// window (they are held by their own costs as they are taken in) but still holds
    /// the acknowledgements until [`Inbound::close_hole`]. `false` if there is no such
    /// hole waiting.
    pub(super) fn fill_hole(&mut self, first: u64, last: u64) -> bool {
        match self.holes.runs.get_mut(&first) {
            Some(hole) if *hole == (last, false) => {
                hole.1 = true;
                self.holes.records -= (last - first + 1) as usize;
                self.holes.bytes -= ((last - first + 1) as usize).saturating_mul(MIN_RECORD_COST);
                true
            }
            _ => false,
        }
    }

    /// The hole from `first` is filled.
    pub(super) fn close_hole(&mut self, first: u64) {
        if let Some((last, filled)) = self.holes.runs.remove(&first) {
            if !filled {
                let count = (last - first + 1) as usize;
                self.holes.records -= count;
                self.holes.bytes -= count.saturating_mul(MIN_RECORD_COST);
            }
        }
    }

    /// The peer is asked to send its records again from [`Inbound::saved`] (the answer to
    /// its `Hello`): whatever is in a hole will come again that way, not as asked (the
    /// peer's stream starts afresh and forgets its folds), so the holes go and the
    /// numbers from the first one on are taken again.
    /// Returns the number the stream is taken up again after: what was held above it is
    /// no longer (the work queued for it must no longer settle it: see `Core::greet`).
    pub(super) fn restarted(&mut self) -> u64 {
        if let Some(first) = self.holes.runs.keys().next() {
            self.highest = self.highest.min(first - 1);
            let highest = self.highest;
            for (_, cost) in self.unsettled.split_off(&(highest + 1)) {
                self.held -= cost;
            }
        }
        self.holes = Holes::default();
        self.highest
    }

    /// Whether records from `seq` on are dropped.
    pub(super) fn is_refused(&self, seq: u64) -> bool {
        self.refused_from.is_some_and(|from| seq >= from)
    }

    /// Drop everything from `seq` on, for this connection.
    pub(super) fn refuse_from(&mut self, seq: u64) {
        self.refused_from = Some(self.refused_from.map_or(seq, |from| from.min(seq)));
    }

    /// Take record number `seq` in, unsettled.
    pub(super) fn hold(&mut self, seq: u64, cost: usize) {
        self.highest = self.highest.max(seq);
        if let Some(old) = self.unsettled.insert(seq, cost) {
            self.held -= old;
        }
        self.held += cost;
    }

    /// Record number `seq` is settled.
    pub(super) fn release(&mut self, seq: u64) {
        if let Some(cost) = self.unsettled.remove(&seq) {
            self.held -= cost;
        }
    }

    /// The sender covered its sequence up to `upto` (what it left out came from here).
    pub(super) fn covered(&mut self, upto: u64) {
        if upto > self.highest && upto <= MAX_NUMBER && !self.is_refused(upto) {
            self.highest = upto;
        }
    }

    /// How far the sequence is settled: up to the first unsettled or refused number.
    pub(super) fn settled_upto(&self) -> u64 {
        let mut upto = match self.unsettled.keys().next() {
            Some(first) => first - 1,
            None => self.highest,
        };
        if let Some(from) = self.refused_from {
            upto = upto.min(from.saturating_sub(1));
        }
        if let Some(first) = self.holes.runs.keys().next() {
            upto = upto.min(first.saturating_sub(1));
        }
        upto
    }

    /// Whether an acknowledgement up to `upto` is worth a message of its own now: it
    /// covers [`ACK_EVERY`] more numbers, or nothing received is left to settle.
    pub(super) fn worth_acking(&self, upto: u64) -> bool {
        upto >= self.acked.saturating_add(ACK_EVERY) || self.unsettled.is_empty()
    }

    /// Bytes held (for the bound's tests).
    pub(super) fn held(&self) -> usize {
        self.held
    }
}

/// Folds of a peer's that could not be rebuilt here, asked for in full (see `fold.rs`).
#[derive(Debug, Default)]
struct Holes {
    /// First number of each: its last, and whether its records came (it then holds only
    /// the acknowledgements, until they are all taken in).
    runs: BTreeMap<u64, (u64, bool)>,
    /// The records and bytes the holes waiting for their records take in the window.
    records: usize,
    bytes: usize,
}

/// This device's stream of one task's records to one peer: how far it went, and what is
/// sent and not yet acknowledged.
#[derive(Debug, Default)]
pub(super) struct Outbound {
    /// The last of this device's sequence numbers sent (or passed over).
    pub(super) sent: u64,
    unacked: VecDeque<(u64, usize)>,
    bytes: usize,
    /// Where the last fold sent left off (see `fold.rs`).
    pub(super) tail: Option<Tail>,
    /// Folds sent and not yet acknowledged (first and last sequence numbers): the peer
    /// may ask for each once in full.
    folded: VecDeque<(u64, u64)>,
}

impl Outbound {
    /// A stream that starts after `after`: the peer has processed everything up to there.
    pub(super) fn after(after: u64) -> Self {
        Self {
            sent: after,
            ..Self::default()
        }
    }

    /// Whether a record of `cost` may be sent now.
    pub(super) fn has_room(&self, cost: usize) -> bool {
        self.unacked.len() < WINDOW_RECORDS && self.bytes + cost <= WINDOW_BYTES
    }

    /// Whether a message of records may begin now: only once the window has room for a
    /// full one ([`RECORDS_PER_MESSAGE`] records, an eighth of [`WINDOW_BYTES`]). A window
    /// that opens one record at a time would otherwise go out one record a message, each
    /// read from the ledger on its own (the 100,000-file drop took 94 s instead of 28).
    pub(super) fn may_begin_message(&self) -> bool {
        self.unacked.len() + RECORDS_PER_MESSAGE <= WINDOW_RECORDS
            && self.bytes + WINDOW_BYTES / 8 <= WINDOW_BYTES
    }

    /// Record `seq` of `cost` is sent.
    pub(super) fn sent(&mut self, seq: u64, cost: usize) {
        self.unacked.push_back((seq, cost));
        self.bytes += cost;
    }

    /// A fold of `first..=last` is sent.
    pub(super) fn folded(&mut self, first: u64, last: u64) {
        self.folded.push_back((first, last));
    }

    /// Whether the peer may have the fold `first..=last` in full now (once).
    pub(super) fn unfold(&mut self, first: u64, last: u64) -> bool {
        let before = self.folded.len();
        self.folded.retain(|f| *f != (first, last));
        self.folded.len() < before
    }

    /// The peer processed everything up to `upto`.
    pub(super) fn acked(&mut self, upto: u64) {
        self.folded.retain(|(_, last)| *last > upto);
        while let Some(&(seq, cost)) = self.unacked.front() {
            if seq > upto {
                break;
            }
            self.unacked.pop_front();
            self.bytes -= cost;
        }
    }
}

/// One batch of things refused or distrusted from one peer, for the driver to log and count.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// Why.
    pub why: Distrust,
    /// The first path concerned, if any.
    pub path: Option<RelPath>,
    /// How many records (or messages) in the batch.
    pub count: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_hole_holds_the_acknowledgements_and_its_room_until_its_records_come() {
        let mut inbound = Inbound::after(3);
        assert!(inbound.open_hole(4, 6));
        assert!(
            !inbound.open_hole(5, 9),
            "within what was had: not a new run"
        );
        inbound.hold(7, MIN_RECORD_COST);
        inbound.release(7);
        assert_eq!(inbound.settled_upto(), 3, "nothing from the hole on");
        assert!(inbound.in_hole(5) && !inbound.in_hole(7));
        // A window full but for the hole's room: its records fit once it is filled, each
        // counted once.
        for seq in 100..100 + (WINDOW_RECORDS - 3) as u64 {
            inbound.hold(seq, MIN_RECORD_COST);
        }
        assert!(!inbound.has_room(MIN_RECORD_COST));
        assert!(inbound.fill_hole(4, 6));
        assert!(!inbound.fill_hole(4, 6), "once");
        for seq in 4..=6 {
            assert!(inbound.has_room(MIN_RECORD_COST), "record {seq}");
            inbound.hold(seq, MIN_RECORD_COST);
        }
        assert!(!inbound.has_room(MIN_RECORD_COST));
        for seq in 4..=6 {
            inbound.release(seq);
        }
        assert_eq!(inbound.settled_upto(), 3, "until the hole is closed");
        inbound.close_hole(4);
        assert_eq!(inbound.settled_upto(), 99);
    }

    #[test]
    fn a_restarted_stream_takes_the_numbers_of_its_holes_again() {
        let mut inbound = Inbound::after(3);
        assert!(inbound.open_hole(4, 6));
        inbound.hold(7, MIN_RECORD_COST);
        assert_eq!(inbound.restarted(), 3);
        assert_eq!(
            inbound.held(),
            0,
            "what was held after the hole comes again"
        );
        assert!(!inbound.in_hole(5));
        assert!(inbound.open_hole(4, 9));
    }
}
