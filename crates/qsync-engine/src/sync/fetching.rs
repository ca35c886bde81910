//! Receiving content for the core's fetches: the content exchange's machine
//! ([`crate::exchange`], which decides who is asked for what, from which byte, and which
//! chunks are taken) and what carries out its decisions on disk: part files written and
//! kept for a resume, patches held in memory, content checked and staged under its hash.
//!
//! The daemon hands it the core's `Fetch` orders and the chunks that arrive, and takes
//! back what to send (requests) and what to tell the core (`Fetched`), in
//! [`Fetching::orders`].

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::Instant;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
use qsync_core::Input;

use super::parts::Parts;
use super::reuse::{self, Reuser, Source};
use crate::control::TransferInfo;
use crate::driver::place::Staging;
use crate::driver::transfer::{Incoming, IncomingPatch};
use crate::exchange::{Chunk, Exchange, FetchKey, Order, Verdict, Want};
use crate::EngineError;

/// The most transfers `status` lists (the first by task and path).
const MAX_TRANSFERS_SHOWN: usize = 100;

/// Part files kept from transfers cut short, at most (beyond, the oldest are removed).
const MAX_KEPT_PARTS: usize = 64;

/// What is being received for one fetch.
enum Receiving {
    /// The content itself, into its part file.
    Whole(Box<Incoming>),
    /// A patch, in memory.
    Patch(Box<IncomingPatch>),
}

impl Receiving {
    /// Take a chunk at `offset` (the exchange let it through).
    fn accept(&mut self, offset: u64, data: &[u8]) -> Result<(), EngineError> {
        match self {
            Receiving::Whole(incoming) => incoming.accept(offset, data),
            Receiving::Patch(patch) => {
                patch.accept(data);
                Ok(())
            }
        }
    }

    /// Check the content received (or made by applying the patch to the file at `path`
    /// of the task folder `root`) against its hash, and stage it: whether it was.
    fn finish(
        self,
        staging: &Staging,
        root: Option<&Path>,
        path: &RelPath,
    ) -> Result<bool, EngineError> {
        match self {
            Receiving::Whole(incoming) => incoming.finish(staging),
            Receiving::Patch(patch) => match root {
                Some(root) => patch.finish(root, path, staging),
                None => Ok(false),
            },
        }
    }
}

/// A transfer under way, as `status` shows it.
fn transfer_info(t: crate::exchange::Transfer) -> TransferInfo {
    TransferInfo {
        device: t.device,
        task: t.task,
        path: t.path,
        done: t.done,
        size: t.size,
        patch: t.patch,
        rate: t.rate,
    }
}

/// A request for the daemon to send: to whom, and the core's message.
pub(super) type Send = (DeviceId, qsync_core::Message);

/// The receiving side of the content exchange, with its files.
pub(super) struct Fetching {
    /// Where fetched content waits, checked, until a placement uses it.
    pub(super) staging: Staging,
    exchange: Exchange,
    /// What is being received for the exchange's fetches: part files open, patches held.
    receiving: HashMap<FetchKey, Receiving>,
    /// Part files kept open between holders (`parts.rs`).
    parts: Parts,
    /// Requests to send and facts for the core, from the exchange's orders.
    sends: Vec<Send>,
    told: VecDeque<Input>,
    /// Large contents being staged from what this device holds (`reuse.rs`).
    reuser: Reuser,
    /// The last time a content did not fit on disk, for which task, and why (for
    /// `status --task`).
    no_room: Option<(Instant, TaskId, String)>,
}

impl Fetching {
    /// Receive into `staging`.
    pub(super) fn new(staging: Staging) -> Self {
        Self {
            staging,
            exchange: Exchange::default(),
            receiving: HashMap::new(),
            parts: Parts::default(),
            sends: Vec::new(),
            told: VecDeque::new(),
            reuser: Reuser::default(),
            no_room: None,
        }
    }

    /// Why a content of `task` did not fit on disk, if one did not in the last minute.
    pub(super) fn no_room_lately(&self, task: &TaskId) -> Option<&str> {
        self.no_room
            .as_ref()
            .filter(|(at, t, _)| t == task && at.elapsed() < std::time::Duration::from_secs(60))
            .map(|(_, _, why)| why.as_str())
    }

    /// Forget every fetch (the core was started afresh); the parts stay on disk, and the
    /// new fetches resume from them.
    pub(super) fn reset(&mut self) {
        // Contents being staged from what this device holds go on: the new fetches of
        // them wait for those answers.
        let reuser = std::mem::take(&mut self.reuser);
        *self = Self::new(self.staging.clone());
        self.reuser = reuser;
    }

    /// Call `wake` when a content staged from what this device holds is ready.
    pub(super) fn set_wake(&mut self, wake: reuse::Wake) {
        self.reuser.set_wake(wake);
    }

    /// Sweep staging of content and parts older than `age` (but for the parts in use).
    pub(super) fn sweep(&self, age: std::time::Duration) -> usize {
        self.staging.sweep(age, &self.parts_in_use())
    }

    /// When the exchange next wants time to pass.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.exchange.poll_timeout()
    }

    /// The transfers coming in now, for `status`.
    pub(super) fn transfers(&self) -> Vec<TransferInfo> {
        self.exchange
            .transfers(Instant::now(), MAX_TRANSFERS_SHOWN)
            .into_iter()
            .map(transfer_info)
            .collect()
    }

    /// The core's order to fetch `want`: answered at once when the content is staged
    /// already, or staged from what this device holds (`local` says where that may be:
    /// `reuse.rs`) at once (`Some(true)`), or later on the reuse thread (`None`: the
    /// answer comes with the exchange's facts); or when `room` (the free-space check,
    /// given the bytes to write: what is not kept of it yet, and what the transfers under
    /// way will still write) says it does not fit now (`Some(false)`, asked again later);
    /// otherwise handed to the exchange.
    pub(super) fn want(
        &mut self,
        want: Want,
        room: impl Fn(u64) -> Result<(), String>,
        local: impl FnOnce(&Staging, &Want) -> Vec<Source>,
    ) -> Option<bool> {
        let key = (want.task, want.path.clone(), want.hash);
        if self.staging.has_for(&want.hash, want.base) {
            // Fetched already (the same content at another path, or edits of this one's
            // version, whose placement was put off): nothing travels.
            return Some(true);
        }
        if self.reuser.is_pending(&key) {
            return None; // being staged from what this device holds: its answer comes
        }
        // Looked for here once, not again while it is fetched, nor when a copy would not
        // fit.
        if !self.exchange.is_fetching(&key) && room(want.size).is_ok() {
            let sources = local(&self.staging, &want);
            if !sources.is_empty() {
                if want.size <= reuse::STAGED_AT_ONCE {
                    if reuse::stage(&self.staging, sources, &want) {
                        return Some(true); // held here: nothing travels
                    }
                } else if self
                    .reuser
                    .start(self.staging.clone(), want.clone(), sources)
                {
                    return None;
                }
            }
        }
        self.fetch(want, room)
    }

    /// Hand `want` to the exchange (once it fits on disk), after nothing held here had
    /// its content.
    fn fetch(&mut self, want: Want, room: impl Fn(u64) -> Result<(), String>) -> Option<bool> {
        let key = (want.task, want.path.clone(), want.hash);
        // What is kept of it already needs no more room.
        let kept = self.staging.partial_len(&want.hash).min(want.size);
        if !self.exchange.is_fetching(&key) {
            let size = want.size;
            let needed = |reserved: u64| (size - kept).saturating_add(reserved);
            let mut fits = room(needed(self.exchange.reserved()));
            if fits.is_err() {
                // The parts kept from transfers cut short go first (they are fetched
                // again from the start if wanted), but for this one's.
                let mut in_use = self.parts_in_use();
                in_use.push(want.hash);
                if self.staging.trim_parts(0, &in_use) > 0 {
                    fits = room(needed(self.exchange.reserved()));
                }
            }
            if let Err(why) = fits {
                // Asked again later (the core waits longer each time): once space is
                // freed, the transfer goes ahead without a restart.
                tracing::warn!(task = %want.task, path = %want.path, size = want.size, "not receiving a file for now: {why}");
                self.no_room = Some((Instant::now(), want.task, why));
                return Some(false);
            }
        }
        // (Parts trimmed for room above are not this one's: what is kept stays.)
        self.exchange.want(Instant::now(), Want { kept, ..want });
        self.carry_out();
        None
    }

    /// A chunk from `device`: written, or checked and staged at the end, as the exchange
    /// says. `root` is the task's folder (a patch applies to the file there). Returns a
    /// path to look at again when a patch did not apply (the file there may not be the
    /// base it was asked with: the watcher may have missed a change of it).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn chunk(
        &mut self,
        device: DeviceId,
        key: FetchKey,
        chunk: Chunk,
        offset: u64,
        data: &[u8],
        last: bool,
        root: Option<&Path>,
    ) -> Option<(TaskId, RelPath)> {
        let len = data.len() as u64;
        let verdict = self
            .exchange
            .chunk(Instant::now(), device, &key, chunk, offset, len, last);
        let mut look = None;
        match verdict {
            Verdict::Ignore => return None,
            Verdict::Refuse(why) => {
                tracing::warn!(%device, path = %key.1, "a transfer was refused: {why}");
            }
            Verdict::Write => {
                if let Err(e) = self.write(&key, chunk, offset, data) {
                    tracing::warn!(%device, path = %key.1, error = %e, "a transfer failed");
                    self.exchange.failed(&key);
                }
            }
            Verdict::Finish => {
                // The last chunk may carry the last bytes (protocol 7).
                if !data.is_empty() {
                    if let Err(e) = self.write(&key, chunk, offset, data) {
                        tracing::warn!(%device, path = %key.1, error = %e, "a transfer failed");
                        self.exchange.failed(&key);
                        self.carry_out();
                        return None;
                    }
                }
                let ok = self.finish(&key, chunk, offset + len, root);
                if !ok && matches!(chunk, Chunk::Patch { .. }) {
                    look = Some((key.0, key.1.clone()));
                }
                self.exchange.finished(&key, ok);
            }
        }
        self.carry_out();
        look
    }

    /// `device` has not got the content of `key` (or no longer).
    pub(super) fn unavailable(&mut self, device: DeviceId, key: FetchKey) {
        self.exchange.unavailable(Instant::now(), device, &key);
        self.carry_out();
    }

    /// `device`, asked for the rest of `key` from `asked`, sends from `from` instead (its
    /// copy differs from the part kept here from there): the part is cut back to `from`
    /// when the first chunk comes (see `start`), if the exchange takes it.
    pub(super) fn resend(&mut self, device: DeviceId, key: FetchKey, asked: u64, from: u64) {
        let _taken = self
            .exchange
            .resend(Instant::now(), device, &key, asked, from);
    }

    /// `device` wants this device's signature of `base` for `key`: true if it is to be
    /// sent.
    pub(super) fn signature_wanted(
        &mut self,
        device: DeviceId,
        key: &FetchKey,
        base: ContentHash,
    ) -> bool {
        self.exchange
            .signature_wanted(Instant::now(), device, key, base)
    }

    /// The connection with `device` closed.
    pub(super) fn disconnected(&mut self, device: DeviceId) {
        self.exchange.disconnected(Instant::now(), device);
        self.carry_out();
    }

    /// Let time pass: requests unanswered and transfers stalled move on.
    pub(super) fn tick(&mut self) {
        self.exchange.handle_timeout(Instant::now());
        self.carry_out();
        self.reused();
    }

    /// Take the reuse thread's answers: a content staged is told to the core as fetched;
    /// one that nothing held here had is fetched from the peers.
    fn reused(&mut self) {
        for (want, staged) in self.reuser.finished() {
            if staged {
                self.told.push_back(Input::Fetched {
                    task: want.task,
                    path: want.path.clone(),
                    hash: want.hash,
                    from: want.from,
                    ok: true,
                });
            } else {
                // The room was checked before it was tried here.
                let _ = self.fetch(want, |_| Ok(()));
            }
        }
    }

    /// A patch of `key` failed (its edits could not be placed): asked whole next time.
    pub(super) fn ask_whole(&mut self, key: FetchKey) {
        self.exchange.ask_whole(key);
    }

    /// The requests to send and the facts for the core that the last calls produced.
    pub(super) fn orders(&mut self) -> (Vec<Send>, VecDeque<Input>) {
        (
            std::mem::take(&mut self.sends),
            std::mem::take(&mut self.told),
        )
    }

    /// Carry out the exchange's orders: requests queued to send, fetches ended queued for
    /// the core, what was being received closed (or removed).
    fn carry_out(&mut self) {
        while let Some(order) = self.exchange.poll_order() {
            match order {
                Order::Request {
                    to,
                    task,
                    path,
                    hash,
                    size,
                    base,
                    offset,
                } => {
                    let checks = self.parts.checks_of(&self.staging, (hash, size), offset);
                    let request = qsync_core::Message::Request {
                        task,
                        path,
                        hash,
                        size,
                        base,
                        offset,
                        checks,
                    };
                    self.sends.push((to, request));
                }
                Order::Fetched {
                    task,
                    path,
                    hash,
                    from,
                    ok,
                } => self.told.push_back(Input::Fetched {
                    task,
                    path,
                    hash,
                    from,
                    ok,
                }),
                Order::Close { key, discard } => self.close(key, discard),
            }
        }
    }

    /// Stop receiving for `key`: its part removed (`discard`), or kept for a resume.
    fn close(&mut self, key: FetchKey, discard: bool) {
        let receiving = self.receiving.remove(&key);
        if discard {
            self.parts.remove(&key.2);
            self.staging.remove_partial(&key.2);
        } else if let Some(Receiving::Whole(incoming)) = receiving {
            self.parts.park(key.2, *incoming);
            // A part is kept for a later resume; a peer that begins many transfers and
            // finishes none must not fill the state folder.
            self.staging
                .trim_parts(MAX_KEPT_PARTS, &self.parts_in_use());
        }
    }

    /// The contents whose part files are being written or resumed from.
    fn parts_in_use(&self) -> Vec<ContentHash> {
        self.receiving
            .keys()
            .map(|(_, _, hash)| *hash)
            .chain(self.parts.hashes())
            .chain(self.exchange.fetching_hashes())
            .collect()
    }

    /// Write a chunk the exchange let through.
    fn write(
        &mut self,
        key: &FetchKey,
        chunk: Chunk,
        offset: u64,
        data: &[u8],
    ) -> Result<(), EngineError> {
        if !self.receiving.contains_key(key) {
            let started = self.start(key, chunk, offset)?;
            self.receiving.insert(key.clone(), started);
        }
        match self.receiving.get_mut(key) {
            Some(receiving) => receiving.accept(offset, data),
            None => Ok(()),
        }
    }

    /// Begin receiving for `key` at `offset`: its part file (`Parts::take`), or a patch.
    fn start(
        &mut self,
        key: &FetchKey,
        chunk: Chunk,
        offset: u64,
    ) -> Result<Receiving, EngineError> {
        let size = self.exchange.size_of(key).unwrap_or(0);
        Ok(match chunk {
            Chunk::Whole => {
                let incoming = self.parts.take(&self.staging, (key.2, size), offset)?;
                Receiving::Whole(Box::new(incoming))
            }
            Chunk::Patch { base } => {
                Receiving::Patch(Box::new(IncomingPatch::start(base, key.2, size)))
            }
        })
    }

    /// Check and stage the content of a fetch whose last chunk came: true if staged.
    fn finish(&mut self, key: &FetchKey, chunk: Chunk, offset: u64, root: Option<&Path>) -> bool {
        let receiving = match self.receiving.remove(key) {
            Some(receiving) => Ok(receiving),
            // Nothing came before the end: an empty content, or an empty patch, or the
            // rest of a part that was whole already.
            None => self.start(key, chunk, offset),
        };
        let outcome = receiving.and_then(|r| r.finish(&self.staging, root, &key.1));
        outcome.unwrap_or_else(|e| {
            tracing::warn!(path = %key.1, error = %e, "a transfer failed");
            false
        })
    }
}
