//! One fetch and the rules that are its own: which chunks it takes (in order, from the
//! device asked, within its size and the limits), when it is slow, the request that asks
//! for the rest of it, and what `status` shows of it. The table of fetches and the rules
//! between them (holders, waits, blame) are the [`Exchange`](crate::Exchange)'s.

use std::collections::{HashMap, VecDeque};
use std::time::Instant;

use qsync_base::{check_block_len, ContentHash, DeviceId};

use crate::{
    FetchKey, Order, Transfer, Verdict, MAX_OPEN_INCOMING, MAX_PATCH, MAX_PATCH_MEMORY, MIN_RATE,
    SLOW_AFTER,
};

/// How far a fetch is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Progress {
    /// Asked; nothing came yet.
    Asked,
    /// The sender asked for this device's signature of the base (being sent).
    Signing,
    /// Content coming whole: the part file holds `Fetch::kept` bytes.
    Whole,
    /// A patch coming: this many bytes of it are here.
    Patch(u64),
}

/// One fetch: what it wants, who is asked, how far it is.
#[derive(Debug)]
pub(crate) struct Fetch {
    pub(crate) size: u64,
    pub(crate) base: Option<ContentHash>,
    /// The peers the core named for it (each hears how it ended).
    pub(crate) askers: Vec<DeviceId>,
    /// Who to ask next, in order.
    pub(crate) holders: VecDeque<DeviceId>,
    /// Who was asked last.
    pub(crate) asked: DeviceId,
    pub(crate) progress: Progress,
    /// Bytes of the content held here (the part file), from earlier answers too.
    pub(crate) kept: u64,
    /// When it was asked, or its last chunk came.
    pub(crate) since: Instant,
    /// When its first chunk came (for its rate), and the bytes kept then.
    pub(crate) began: Option<Instant>,
    pub(crate) began_kept: u64,
    /// The devices whose bytes are in the part, in order (a part read from disk at the
    /// start counts as `from_disk`): who to blame when the whole does not hash right.
    pub(crate) contributors: Vec<DeviceId>,
    pub(crate) from_disk: bool,
    /// The bytes kept before the device asked said to drop them from a block on
    /// ([`Fetch::resend`]): one that then moves on before bringing as many back is
    /// suspected (a liar could otherwise wipe every honest holder's progress for free).
    pub(crate) rewound: Option<u64>,
}

impl Fetch {
    /// The rules for a chunk of the content itself; an error ends the fetch (and, when
    /// set, discards the bytes received).
    pub(crate) fn whole_chunk(
        &mut self,
        open: &mut HashMap<DeviceId, usize>,
        from: DeviceId,
        offset: u64,
        len: u64,
        last: bool,
    ) -> Result<Verdict, (String, bool)> {
        match self.progress {
            Progress::Patch(_) => return Ok(Verdict::Ignore),
            Progress::Asked | Progress::Signing => {
                if offset != self.kept {
                    // The rest of an answer to an earlier request: the new one starts at
                    // the bytes kept.
                    return Ok(Verdict::Ignore);
                }
                let slots = open.entry(from).or_default();
                if *slots >= MAX_OPEN_INCOMING {
                    return Err((
                        format!("{MAX_OPEN_INCOMING} transfers from this device are open already; asked again later"),
                        false,
                    ));
                }
                *slots += 1;
                self.progress = Progress::Whole;
            }
            Progress::Whole => {
                if offset < self.kept && (!last || len > 0) {
                    // Bytes it sent already (a second answer of the same device, to an
                    // older request): dropped, not held against it.
                    return Ok(Verdict::Ignore);
                }
            }
        }
        let end = offset.checked_add(len);
        if offset != self.kept || end.is_none_or(|end| end > self.size) {
            return Err((
                format!(
                    "content arrived out of order or past its {} bytes (offset {offset}, {len} bytes)",
                    self.size
                ),
                true,
            ));
        }
        // The last chunk may carry the last bytes (protocol 7: one message fewer per
        // content); it must end the content. (Checked before anything is counted.)
        let end = self.kept + len;
        if last && end != self.size {
            return Err((
                format!("content ended at {end} of its {} bytes", self.size),
                true,
            ));
        }
        self.kept = end;
        Ok(if last {
            Verdict::Finish
        } else {
            Verdict::Write
        })
    }

    /// The device asked (from `asked`) says its copy differs from the bytes kept here
    /// from the block at `from` on, and sends from there: taken if it answers the request
    /// under way (nothing came of it yet, asked from the bytes kept) and `from` is a
    /// block's start before them. The bytes from `from` are then dropped.
    pub(crate) fn resend(&mut self, asked: u64, from: u64) -> bool {
        let answering = matches!(self.progress, Progress::Asked) && asked == self.kept;
        if !answering || from >= self.kept || !from.is_multiple_of(check_block_len(self.kept)) {
            return false;
        }
        self.rewound = Some(self.kept);
        self.kept = from;
        if from == 0 {
            self.contributors.clear();
            self.from_disk = false;
        }
        true
    }

    /// The rules for a chunk of a patch.
    pub(crate) fn patch_chunk(
        &mut self,
        memory: &mut u64,
        base: ContentHash,
        offset: u64,
        len: u64,
        last: bool,
    ) -> Result<Verdict, (String, bool)> {
        if self.base != Some(base) {
            return Ok(Verdict::Ignore); // not the base this device has
        }
        let received = match self.progress {
            Progress::Whole => return Ok(Verdict::Ignore),
            Progress::Asked | Progress::Signing if offset != 0 => return Ok(Verdict::Ignore),
            Progress::Asked | Progress::Signing => 0,
            Progress::Patch(received) => received,
        };
        if offset != received {
            return Err(("a patch arrived out of order".into(), false));
        }
        if last && len == 0 {
            return Ok(Verdict::Finish);
        }
        if received.saturating_add(len) > MAX_PATCH {
            return Err((
                format!("a patch is larger than {MAX_PATCH} bytes; the content is asked for whole"),
                false,
            ));
        }
        if memory.saturating_add(len) > MAX_PATCH_MEMORY {
            return Err((
                format!("patches in memory would pass {MAX_PATCH_MEMORY} bytes; the content is asked for whole"),
                false,
            ));
        }
        *memory += len;
        self.progress = Progress::Patch(received + len);
        // The last chunk may carry the last bytes of the patch (protocol 7).
        Ok(if last {
            Verdict::Finish
        } else {
            Verdict::Write
        })
    }

    /// Whether a transfer under way for [`SLOW_AFTER`] brought less than [`MIN_RATE`].
    pub(crate) fn is_slow(&self, now: Instant) -> bool {
        let Some(began) = self.began else {
            return false;
        };
        let took = now.saturating_duration_since(began);
        if took < SLOW_AFTER || self.progress != Progress::Whole {
            return false;
        }
        let brought = self.kept.saturating_sub(self.began_kept);
        brought < MIN_RATE.saturating_mul(took.as_secs())
    }

    /// The request that asks `self.asked` for the rest of `key`'s content.
    pub(crate) fn request(&self, key: &FetchKey) -> Order {
        Order::Request {
            to: self.asked,
            task: key.0,
            path: key.1.clone(),
            hash: key.2,
            size: self.size,
            base: self.base.filter(|_| self.kept == 0),
            offset: self.kept,
        }
    }

    /// What `status` shows of it: none while nothing came yet.
    pub(crate) fn transfer(&self, (task, path, _): &FetchKey, now: Instant) -> Option<Transfer> {
        let (done, patch) = match self.progress {
            Progress::Whole => (self.kept, false),
            Progress::Patch(received) => (received, true),
            Progress::Asked | Progress::Signing => return None,
        };
        let seconds = self
            .began
            .map_or(0.0, |b| now.saturating_duration_since(b).as_secs_f64());
        let rate = if seconds > 0.0 {
            (done as f64 / seconds) as u64
        } else {
            0
        };
        Some(Transfer {
            device: self.asked,
            task: *task,
            path: path.clone(),
            done,
            size: self.size,
            patch,
            rate,
        })
    }
}
