//! The receiving side of the content exchange, as a sans-IO state machine: which device
//! to ask for a content, from which byte, whether a chunk that arrived is taken, when a
//! transfer has stalled, and what the limits allow. No file, socket, thread or clock in
//! here: the driver (`qsync-engine`'s `daemon/sync/fetching.rs`) feeds facts in (the core wants a content, a chunk
//! came, a peer answered that it has not got it, a connection closed, time passed) and
//! carries out the [`Order`]s that come out (send a request, tell the core, close or
//! discard what was received). It writes the bytes a [`Verdict::Write`] lets through, and
//! when a [`Verdict::Finish`] says the content is complete, the bytes the last chunk
//! carries (if any), then checks the hash.
//!
//! The rules:
//! - **One fetch per content.** A fetch is keyed by task, path and hash; a second path
//!   wanting the same content waits for the first (its bytes go to one part file, named by
//!   the hash), and is told `ok` when it is staged.
//! - **Any holder.** The core names the peer whose record announced the content and the
//!   connected peers that hold it (`holders`: that peer first when it is connected, then
//!   those that announced the same content). The first is asked; one that answers it has
//!   not got it, goes away, stalls [`STALL_SWITCH`], or brings less than [`MIN_RATE`]
//!   after [`SLOW_AFTER`], is dropped for that fetch and the next is asked. A request not
//!   answered within [`REQUEST_WAIT`] is asked of the next holder when there is one and
//!   the device asked sends nothing else either (a device streaming other contents to us
//!   is busy, and answers in turn); with no other holder it is given up after
//!   [`TRANSFER_IDLE`] (the core asks again later).
//! - **Wrong bytes.** A whole that does not hash right is discarded. All from one sender:
//!   that sender is asked last for that content from then on. From several (a part kept
//!   from another holder, or read from disk after a crash): the earlier senders are
//!   suspects, and the last one sends it all again, alone (a liar cannot get an honest
//!   holder blamed by planting a prefix).
//! - **Resume.** The bytes of a whole content received so far stay (in a part file kept
//!   across reconnections and restarts); the next request asks for the rest from there,
//!   of whichever holder, with the checks of the bytes kept (the driver computes them:
//!   `qsync_base::PieceHasher::checks`). The holder compares them with its own copy and,
//!   when they differ from a block on, says so first ([`Exchange::resend`]) and sends
//!   from there: the part is dropped from that block (a liar's prefix, a part torn by a
//!   power cut, cost one honest resend of what is wrong, no more, and blame nobody). A
//!   device that has the part dropped and then leaves before bringing as many bytes back
//!   is suspected. The whole result is checked against the hash before it is staged. A
//!   patch (held in memory, at most [`MAX_PATCH`] bytes) starts again.
//! - **Bounds.** A chunk is taken only in order, only from the device asked, only within
//!   the announced size (a patch: [`MAX_PATCH`], all patches together
//!   [`MAX_PATCH_MEMORY`]); at most [`MAX_OPEN_INCOMING`] whole transfers per device are
//!   under way; a begun transfer with no chunk for [`TRANSFER_IDLE`] (or
//!   [`STALL_SWITCH`] when another holder could take over) is given up or moved.
//!
//! ```
//! use std::time::Instant;
//! use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
//! use qsync_exchange::{Chunk, Exchange, Order, Verdict, Want};
//!
//! let (peer, task) = (DeviceId::from_bytes([1; 32]), TaskId::from_bytes([2; 32]));
//! let path = RelPath::new("photo.jpg").unwrap();
//! let hash = ContentHash::of(b"hello");
//! let now = Instant::now();
//! let mut exchange = Exchange::default();
//! exchange.want(now, Want { from: peer, holders: vec![peer], task, path: path.clone(), hash,
//!     size: 5, base: None, kept: 0 });
//! assert!(matches!(exchange.poll_order(), Some(Order::Request { offset: 0, .. })));
//! let key = (task, path, hash);
//! assert_eq!(exchange.chunk(now, peer, &key, Chunk::Whole, 0, 5, false), Verdict::Write);
//! assert_eq!(exchange.chunk(now, peer, &key, Chunk::Whole, 5, 0, true), Verdict::Finish);
//! exchange.finished(&key, true);
//! assert!(matches!(exchange.poll_order(), Some(Order::Fetched { ok: true, .. })));
//! ```

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};

mod fetch;
mod io;
mod suspects;
#[cfg(test)]
mod tests;

use fetch::{Fetch, Progress};
pub use io::{Chunk, Order, Transfer, Verdict, Want};
use suspects::Suspects;

/// A fetch: the task, the path it is asked for, the content.
pub type FetchKey = (TaskId, RelPath, ContentHash);

/// The most whole transfers under way from one device. An honest peer serves one file at
/// a time; a hostile one could otherwise open a file here for each of thousands of records
/// and never finish them. A transfer beyond it is refused (and asked for again later).
pub const MAX_OPEN_INCOMING: usize = 16;

/// The largest patch accepted (it is held in memory until it is whole). A larger one is
/// refused, and the content asked for whole instead.
pub const MAX_PATCH: u64 = 64 * 1024 * 1024;

/// The most bytes of patches held in memory at once, all devices together; beyond it a
/// patch is refused as for [`MAX_PATCH`].
pub const MAX_PATCH_MEMORY: u64 = 256 * 1024 * 1024;

/// A request not answered for this long is asked of another holder, when there is one (a
/// peer with a long queue of orders answers late but answers: with no other holder, the
/// request waits).
pub const REQUEST_WAIT: Duration = Duration::from_secs(10);

/// A transfer under way that gets no chunk for this long moves to another holder, when
/// there is one...
pub const STALL_SWITCH: Duration = Duration::from_secs(10);

/// ...and is given up after this long when there is none (the core asks again later; the
/// bytes received stay for the next request).
pub const TRANSFER_IDLE: Duration = Duration::from_secs(120);

/// A transfer under way for this long that brings less than [`MIN_RATE`] moves to another
/// holder, when there is one (a peer sending a byte now and then never stalls).
pub const SLOW_AFTER: Duration = Duration::from_secs(30);

/// Bytes per second below which a transfer is slow (see [`SLOW_AFTER`]).
pub const MIN_RATE: u64 = 64 * 1024;

/// Bytes per second a holder is assumed to read and hash the part an asker has before it
/// sends the rest: the waits for an answer grow by the time that takes.
const PREFIX_READ_RATE: u64 = 64 * 1024 * 1024;

/// How often the fetches are looked at for stalls.
const CHECK_EVERY: Duration = Duration::from_secs(1);

/// The most contents remembered as "ask whole": beyond, the memory starts afresh.
const MAX_WHOLE: usize = 4096;

/// The receiving side of the content exchange (see the module's header).
#[derive(Debug, Default)]
pub struct Exchange {
    fetches: HashMap<FetchKey, Fetch>,
    /// Which fetch holds each content (one per content).
    by_hash: HashMap<ContentHash, FetchKey>,
    /// Wants of a content another fetch is getting, in order.
    behind: HashMap<ContentHash, Vec<Want>>,
    /// Whole transfers under way per device.
    open: HashMap<DeviceId, usize>,
    /// Bytes of patches held, all together.
    patch_memory: u64,
    /// Sizes of the fetches whose bytes are coming, summed (what they will still write
    /// counts as taken when a new one checks for free space).
    reserved: u64,
    /// Contents whose patch failed here: asked whole from then on.
    whole: HashSet<FetchKey>,
    /// Devices that sent bytes that were not the content they announced: asked last.
    suspects: Suspects,
    orders: VecDeque<Order>,
    /// When each device last began or finished sending a content asked of it: a device
    /// making progress through its queue is busy, not stalled, and its requests are not
    /// moved for waiting (a trickle of one content is no progress).
    progress: HashMap<DeviceId, Instant>,
    next_check: Option<Instant>,
    /// The time of the last call that said it.
    now: Option<Instant>,
}

impl Exchange {
    /// The next order to carry out.
    pub fn poll_order(&mut self) -> Option<Order> {
        self.orders.pop_front()
    }

    /// When [`Exchange::handle_timeout`] is next due.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.next_check.filter(|_| !self.fetches.is_empty())
    }

    /// Bytes the fetches under way will write (counted as taken by the free-space check).
    pub fn reserved(&self) -> u64 {
        self.reserved
    }

    /// Bytes of patches held now.
    pub fn patch_memory(&self) -> u64 {
        self.patch_memory
    }

    /// Whole transfers under way from `device`.
    pub fn open_from(&self, device: &DeviceId) -> usize {
        self.open.get(device).copied().unwrap_or(0)
    }

    /// The announced size of the content `key` fetches.
    pub fn size_of(&self, key: &FetchKey) -> Option<u64> {
        self.fetches.get(key).map(|f| f.size)
    }

    /// The contents being fetched.
    pub fn fetching_hashes(&self) -> impl Iterator<Item = ContentHash> + '_ {
        self.by_hash.keys().copied()
    }

    /// Whether a fetch of `key` is under way.
    pub fn is_fetching(&self, key: &FetchKey) -> bool {
        self.fetches.contains_key(key)
    }

    /// The core wants a content. A fetch of it under way goes on (its holders and askers
    /// grow); a fetch of the same content for another path is waited for; otherwise the
    /// first holder is asked.
    pub fn want(&mut self, now: Instant, want: Want) {
        let key = (want.task, want.path.clone(), want.hash);
        self.now = Some(now);
        self.next_check.get_or_insert(now + CHECK_EVERY);
        if let Some(fetch) = self.fetches.get_mut(&key) {
            // A fetch resuming from kept bytes asks for the rest whole, whatever the base.
            let base = want
                .base
                .filter(|_| !self.whole.contains(&key) && fetch.kept == 0);
            if fetch.base == base || fetch.progress == Progress::Whole {
                if !fetch.askers.contains(&want.from) {
                    fetch.askers.push(want.from);
                }
                let asked_holds = want.holders.contains(&fetch.asked);
                for holder in want.holders {
                    if holder != fetch.asked && !fetch.holders.contains(&holder) {
                        fetch.holders.push_back(holder);
                    }
                }
                if fetch.progress == Progress::Asked && !asked_holds {
                    // The device asked is no longer among the holders (it went away and
                    // the request may never have left): the next one is asked.
                    self.move_on(now, &key, false);
                }
                return;
            }
            // Asked with another base (the file here changed): asked again.
            self.end(&key, None);
        }
        if let Some(leader) = self.by_hash.get(&want.hash) {
            if *leader != key {
                // Waits for the fetch of the same content; one want per path and sender
                // (a repeated one brings its holders, not a second entry; each sender the
                // core named hears how it ended).
                let behind = self.behind.entry(want.hash).or_default();
                match behind
                    .iter_mut()
                    .find(|w| (w.task, &w.path, w.from) == (want.task, &want.path, want.from))
                {
                    Some(waiting) => {
                        for holder in want.holders {
                            if !waiting.holders.contains(&holder) {
                                waiting.holders.push(holder);
                            }
                        }
                    }
                    None => behind.push(want),
                }
                return;
            }
        }
        let mut holders: VecDeque<DeviceId> = VecDeque::new();
        for holder in want.holders.iter().copied() {
            if !holders.contains(&holder) {
                holders.push_back(holder);
            }
        }
        // Those that sent wrong bytes of it before go after the others, the most
        // suspected last (the order is kept among equals).
        self.suspects.rank(want.hash, holders.make_contiguous());
        let Some(first) = holders.pop_front() else {
            // Nobody to ask: not had, for now.
            self.tell(&key, want.from, false);
            return;
        };
        let base = if want.kept > 0 || self.whole.contains(&key) {
            None
        } else {
            want.base
        };
        let fetch = Fetch {
            size: want.size,
            base,
            askers: vec![want.from],
            holders,
            asked: first,
            progress: Progress::Asked,
            kept: want.kept.min(want.size),
            since: now,
            began: None,
            began_kept: 0,
            contributors: Vec::new(),
            from_disk: want.kept > 0,
            rewound: None,
        };
        self.by_hash.insert(want.hash, key.clone());
        self.orders.push_back(fetch.request(&key));
        self.fetches.insert(key, fetch);
    }

    /// A chunk from `from` for `key`: `len` bytes at `offset` (`last`: the sender says
    /// that was all).
    #[allow(clippy::too_many_arguments)]
    pub fn chunk(
        &mut self,
        now: Instant,
        from: DeviceId,
        key: &FetchKey,
        chunk: Chunk,
        offset: u64,
        len: u64,
        last: bool,
    ) -> Verdict {
        self.now = Some(now);
        let Some(fetch) = self.fetches.get_mut(key) else {
            return Verdict::Ignore;
        };
        if fetch.asked != from {
            return Verdict::Ignore; // a device asked earlier, answering late
        }
        let begun = matches!(fetch.progress, Progress::Whole | Progress::Patch(_));
        let refused = match chunk {
            Chunk::Whole => fetch.whole_chunk(&mut self.open, from, offset, len, last),
            Chunk::Patch { base } => {
                fetch.patch_chunk(&mut self.patch_memory, base, offset, len, last)
            }
        };
        if !begun && matches!(fetch.progress, Progress::Whole | Progress::Patch(_)) {
            // What it will write counts as taken from now on (not while it is only asked
            // for: a peer announcing a huge file it never sends would hold the free space
            // of every other transfer).
            self.reserved = self.reserved.saturating_add(fetch.size);
        }
        match refused {
            Ok(verdict) => {
                if verdict != Verdict::Ignore {
                    fetch.since = now;
                    if fetch.began.is_none() || verdict == Verdict::Finish {
                        self.progress.insert(from, now);
                    }
                    if fetch.began.is_none() {
                        fetch.began = Some(now);
                        fetch.began_kept = offset;
                    }
                    let wrote =
                        verdict == Verdict::Write || (verdict == Verdict::Finish && len > 0);
                    if wrote && fetch.contributors.last() != Some(&from) {
                        fetch.contributors.push(from);
                    }
                }
                verdict
            }
            Err((why, false)) => {
                if matches!(chunk, Chunk::Patch { .. }) {
                    // Too large, or out of order: asked again later, whole.
                    self.ask_whole(key.clone());
                    self.end(key, Some((false, false)));
                } else {
                    // Too many transfers from this device: another holder, or later.
                    self.move_on(now, key, false);
                }
                Verdict::Refuse(why)
            }
            Err((why, true)) => {
                // A sender that breaks the rules: its bytes go, the next holder is asked.
                self.suspects.add(key.2, from);
                self.move_on(now, key, true);
                Verdict::Refuse(why)
            }
        }
    }

    /// `from`, asked for the rest of `key` from `asked`, says its copy differs from the
    /// bytes kept here from the block at `at` on, and sends from there (the checks sent
    /// with the request told it): true if taken, and the driver drops the part's bytes
    /// from `at` (it opens the part there at the next chunk).
    pub fn resend(
        &mut self,
        now: Instant,
        from: DeviceId,
        key: &FetchKey,
        asked: u64,
        at: u64,
    ) -> bool {
        self.now = Some(now);
        let Some(fetch) = self.fetches.get_mut(key) else {
            return false;
        };
        if fetch.asked != from || !fetch.resend(asked, at) {
            return false;
        }
        fetch.since = now;
        true
    }

    /// The driver checked a content a [`Verdict::Finish`] ended: staged (`ok`) or not (the
    /// hash is wrong, a patch did not apply: its bytes are discarded, and a patch's
    /// content is asked whole next time).
    pub fn finished(&mut self, key: &FetchKey, ok: bool) {
        let Some(fetch) = self.fetches.get(key) else {
            return;
        };
        let patch = matches!(fetch.progress, Progress::Patch(_) | Progress::Asked);
        let (asked, since) = (fetch.asked, fetch.since);
        let mixed = fetch.from_disk || fetch.contributors.iter().any(|d| *d != asked);
        let earlier: Vec<DeviceId> = fetch
            .contributors
            .iter()
            .copied()
            .filter(|d| *d != asked)
            .collect();
        if ok {
            self.end(key, Some((true, false)));
        } else if patch {
            // Usually the file here is no longer the base the patch was made from.
            self.ask_whole(key.clone());
            self.end(key, Some((false, true)));
        } else if mixed {
            // Bytes of several senders (or of a part read from disk) that are not the
            // content together: the last sender may be honest, and the wrong bytes an
            // earlier one's. The earlier ones are tried last from now on; the last one
            // sends it all again, alone.
            for device in earlier {
                self.suspects.add(key.2, device);
            }
            if let Some(fetch) = self.fetches.get_mut(key) {
                fetch.holders.push_front(asked);
            }
            let now = self.now.unwrap_or(since);
            self.move_on(now, key, true);
        } else {
            // Bytes that are not the content, all from one sender: it is tried last from
            // now on, and the next one sends it all again.
            self.suspects.add(key.2, asked);
            let now = self.now.unwrap_or(since);
            self.move_on(now, key, true);
        }
    }

    /// Writing or reading what was received failed here: the fetch ends, its bytes
    /// discarded.
    pub fn failed(&mut self, key: &FetchKey) {
        self.end(key, Some((false, true)));
    }

    /// `from` answered that it has not got the content (or no longer: its file changed
    /// while it was sent, so the bytes it sent are discarded). The next holder is asked.
    pub fn unavailable(&mut self, now: Instant, from: DeviceId, key: &FetchKey) {
        self.now = Some(now);
        let Some(fetch) = self.fetches.get(key) else {
            return;
        };
        if fetch.asked != from {
            return;
        }
        let discard = fetch.progress == Progress::Whole;
        self.move_on(now, key, discard);
    }

    /// `from`, asked for `key` with `base`, wants this device's signature of `base` to
    /// make a patch: true if it is to be sent (once, and not once content is coming).
    pub fn signature_wanted(
        &mut self,
        now: Instant,
        from: DeviceId,
        key: &FetchKey,
        base: ContentHash,
    ) -> bool {
        let Some(fetch) = self.fetches.get_mut(key) else {
            return false;
        };
        if fetch.asked != from || fetch.base != Some(base) || fetch.progress != Progress::Asked {
            return false;
        }
        fetch.progress = Progress::Signing;
        fetch.since = now;
        true
    }

    /// The connection with `peer` closed: its transfers move to another holder (from the
    /// bytes kept), or end; it is no longer a holder of anything.
    pub fn disconnected(&mut self, now: Instant, peer: DeviceId) {
        self.now = Some(now);
        let asked: Vec<FetchKey> = self
            .fetches
            .iter()
            .filter(|(_, f)| f.asked == peer)
            .map(|(key, _)| key.clone())
            .collect();
        let mut asked = asked;
        asked.sort();
        for fetch in self.fetches.values_mut() {
            fetch.holders.retain(|h| *h != peer);
        }
        for want in self.behind.values_mut().flatten() {
            want.holders.retain(|h| *h != peer);
        }
        self.progress.remove(&peer);
        for key in asked {
            self.move_on(now, &key, false);
        }
    }

    /// Let time pass: requests unanswered and transfers stalled move to another holder,
    /// or end.
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.next_check.is_some_and(|at| at > now) {
            return;
        }
        self.now = Some(now);
        self.next_check = Some(now + CHECK_EVERY);
        let late: Vec<FetchKey> = self
            .fetches
            .iter()
            .filter(|(key, f)| self.is_late(now, key, f))
            .map(|(key, _)| key.clone())
            .collect();
        // In a fixed order, whatever the map's: a simulator replays the same schedule.
        let mut late = late;
        late.sort();
        for key in late {
            self.move_on(now, &key, false);
        }
    }

    /// Whether `f` is to move to another holder (or end, when there is none) at `now`.
    fn is_late(&self, now: Instant, key: &FetchKey, f: &Fetch) -> bool {
        let waited = now.saturating_duration_since(f.since);
        let others = !f.holders.is_empty();
        match f.progress {
            // Unanswered: moved when another holder could answer and the device asked
            // makes no progress on anything else either (a device that began or finished
            // sending another content lately is busy: its queue answers in turn); given
            // up after a long while (the core asks again). A device resuming from an
            // offset reads and hashes what the asker has first: the waits grow with it.
            Progress::Asked => {
                let idle = self
                    .progress
                    .get(&f.asked)
                    .is_none_or(|t| now.saturating_duration_since(*t) >= REQUEST_WAIT);
                let prefix = Duration::from_secs(f.kept / PREFIX_READ_RATE);
                idle && ((others && waited >= REQUEST_WAIT + prefix)
                    || waited >= TRANSFER_IDLE + prefix)
            }
            // Slowness moves a transfer only to a holder not suspected of wrong bytes (a
            // liar must not be able to take over from a slow honest holder).
            _ if others => waited >= STALL_SWITCH || (f.is_slow(now) && self.trusted_other(key, f)),
            _ => waited >= TRANSFER_IDLE,
        }
    }

    /// Whether one of `f`'s next holders never sent wrong bytes of it.
    fn trusted_other(&self, key: &FetchKey, f: &Fetch) -> bool {
        f.holders.iter().any(|h| !self.suspects.of(key.2, h))
    }

    /// The transfers coming in now, for `status` (the first `max` by task and path).
    pub fn transfers(&self, now: Instant, max: usize) -> Vec<Transfer> {
        let mut transfers: Vec<Transfer> = self
            .fetches
            .iter()
            .filter_map(|(key, f)| f.transfer(key, now))
            .collect();
        transfers.sort_by(|a, b| (&a.task, &a.path).cmp(&(&b.task, &b.path)));
        transfers.truncate(max);
        transfers
    }

    /// The device asked for `key` gave nothing usable: ask the next holder (from the bytes
    /// kept, unless `discard`), or end the fetch when there is none.
    fn move_on(&mut self, now: Instant, key: &FetchKey, discard: bool) {
        let Some(fetch) = self.fetches.get_mut(key) else {
            return;
        };
        if fetch
            .rewound
            .take()
            .is_some_and(|before| fetch.kept < before)
        {
            // It had the bytes kept dropped, and left before bringing as many back.
            self.suspects.add(key.2, fetch.asked);
        }
        let Some(next) = fetch.holders.pop_front() else {
            self.end(key, Some((false, discard)));
            return;
        };
        self.release(key);
        let Some(fetch) = self.fetches.get_mut(key) else {
            return;
        };
        self.orders.push_back(Order::Close {
            key: key.clone(),
            discard,
        });
        if discard {
            fetch.kept = 0;
            fetch.contributors.clear();
            fetch.from_disk = false;
        }
        if fetch.kept > 0 {
            fetch.base = None; // the rest goes whole
        }
        fetch.asked = next;
        fetch.progress = Progress::Asked;
        fetch.since = now;
        fetch.began = None;
        let request = fetch.request(key);
        self.orders.push_back(request);
    }

    /// Give back what the fetch at `key` holds of the limits (its slot, its patch bytes).
    fn release(&mut self, key: &FetchKey) {
        let Some(fetch) = self.fetches.get(key) else {
            return;
        };
        if matches!(fetch.progress, Progress::Whole | Progress::Patch(_)) {
            self.reserved = self.reserved.saturating_sub(fetch.size);
        }
        match fetch.progress {
            Progress::Whole => {
                if let Some(slots) = self.open.get_mut(&fetch.asked) {
                    *slots = slots.saturating_sub(1);
                    if *slots == 0 {
                        self.open.remove(&fetch.asked);
                    }
                }
            }
            Progress::Patch(received) => {
                self.patch_memory = self.patch_memory.saturating_sub(received);
            }
            Progress::Asked | Progress::Signing => {}
        }
    }

    /// End the fetch at `key`: `Some((ok, discard))` tells its askers (and closes what was
    /// received, discarding it if set); `None` ends it silently (it is asked again at
    /// once). Wants waiting behind it are told `ok`, or the first of them goes ahead.
    fn end(&mut self, key: &FetchKey, told: Option<(bool, bool)>) {
        self.release(key);
        let Some(fetch) = self.fetches.remove(key) else {
            return;
        };
        self.by_hash.remove(&key.2);
        let (ok, discard) = told.unwrap_or((false, false));
        if !ok {
            self.orders.push_back(Order::Close {
                key: key.clone(),
                discard,
            });
        }
        if told.is_some() {
            for from in fetch.askers {
                self.tell(key, from, ok);
            }
        }
        let behind = self.behind.remove(&key.2).unwrap_or_default();
        let now = self.now.unwrap_or(fetch.since);
        for want in behind {
            if ok {
                let key = (want.task, want.path.clone(), want.hash);
                self.tell(&key, want.from, true);
            } else {
                // The first goes ahead (from no bytes if they were discarded); the others
                // wait behind it again.
                let kept = if discard { 0 } else { fetch.kept };
                self.want(now, Want { kept, ..want });
            }
        }
    }

    fn tell(&mut self, key: &FetchKey, from: DeviceId, ok: bool) {
        self.orders.push_back(Order::Fetched {
            task: key.0,
            path: key.1.clone(),
            hash: key.2,
            from,
            ok,
        });
    }

    /// A patch of `key` failed (here, or its edits could not be placed): its content is
    /// asked whole from then on.
    pub fn ask_whole(&mut self, key: FetchKey) {
        if self.whole.len() >= MAX_WHOLE {
            self.whole.clear();
        }
        self.whole.insert(key);
    }
}
