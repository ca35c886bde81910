//! The content side of the driver: everything that moves file bytes between devices,
//! owned by [`Content`]. The core's orders to fetch content go to the receiving side
//! (`fetching.rs`: the content exchange's machine, part files, patches, staging), after a
//! look at what the disk has room for and at the patch that came with the record
//! (`inline.rs`); the chunks, patches and signatures peers send are taken or not as the
//! exchange says; the core's orders to serve content go to the serving threads
//! (`serving.rs`).
//!
//! What the core is to hear (how its fetches went) and what the daemon is to look at (a
//! file a patch did not apply to) are queued here and taken by the driver after each call
//! ([`Content::take_told`]): the content side never runs the core.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::Bytes;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
use qsync_core::{Input, Record};
use qsync_wire::Message;

use super::fetching::Fetching;
use super::placing::Folders;
use super::serving::{self, Serving};
use super::{inline, reuse, Around, Report};
use crate::control::TransferInfo;
use crate::driver::place::Staging;
use crate::driver::transfer::FreeSpace;
use crate::exchange::{Chunk, FetchKey, Want};
use crate::net::Outbound;

/// Staged content older than this is removed (a placement still wanting it has it
/// fetched again): content fetched for records that were replaced or that wait (under a
/// link, say) does not fill the state folder's disk.
const STAGED_MAX_AGE: Duration = Duration::from_secs(600);

/// The content exchanged with peers, both ways (see the [module documentation](self)).
pub(super) struct Content {
    /// Receiving content for the core's fetches (the exchange's machine, part files,
    /// patches, the staging folder).
    fetching: Fetching,
    /// The free space where fetched content is written, measured now and then.
    free_space: FreeSpace,
    /// The patches that came with peers' records, until the core wants their content.
    patches_in: inline::Received,
    /// Serving content to peers (a thread per peer, orders waiting for a signature).
    serving: Serving,
    /// When staging was last swept of old content.
    last_sweep: Instant,
    /// When content last moved (a chunk received, a serve order queued, a placement).
    moved: Instant,
    /// What the core is to hear, taken by the driver.
    told: VecDeque<Input>,
    /// What the daemon is to do, taken by the driver.
    reports: VecDeque<Report>,
}

impl Content {
    /// Content fetched is staged in `staging`.
    pub(super) fn new(staging: Staging) -> Self {
        Self {
            fetching: Fetching::new(staging),
            free_space: FreeSpace::default(),
            patches_in: inline::Received::default(),
            serving: Serving::default(),
            last_sweep: Instant::now(),
            moved: Instant::now(),
            told: VecDeque::new(),
            reports: VecDeque::new(),
        }
    }

    /// Where fetched content is staged before it is placed.
    pub(super) fn staging(&self) -> &Staging {
        &self.fetching.staging
    }

    /// Call `wake` when content held here was staged off the engine thread.
    pub(super) fn set_wake(&mut self, wake: reuse::Wake) {
        self.fetching.set_wake(wake);
    }

    /// Why a content of `task` did not fit on disk, if one did not in the last minute.
    pub(super) fn no_room_lately(&self, task: &TaskId) -> Option<&str> {
        self.fetching.no_room_lately(task)
    }

    /// When the exchange next wants time to pass.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.fetching.next_timeout()
    }

    /// When content last moved.
    pub(super) fn moved(&self) -> Instant {
        self.moved
    }

    /// Whether no serve order is queued, under way, or waiting for a signature.
    pub(super) fn serving_idle(&self) -> bool {
        self.serving.idle()
    }

    /// The transfers coming in now.
    pub(super) fn transfers(&self) -> Vec<TransferInfo> {
        self.fetching.transfers()
    }

    /// What the core is to hear and what the daemon is to do, since the last call.
    pub(super) fn take_told(&mut self) -> (VecDeque<Input>, VecDeque<Report>) {
        (
            std::mem::take(&mut self.told),
            std::mem::take(&mut self.reports),
        )
    }

    /// The core was started afresh: every fetch and serve order is forgotten (the parts
    /// received stay on disk: the new fetches resume from them).
    pub(super) fn reset(&mut self) {
        self.fetching.reset();
        self.serving.reset();
    }

    /// Let time pass: transfers stalled and requests unanswered move on, serve orders
    /// waiting for a signature give up, old staged content goes.
    pub(super) fn tick(&mut self, around: &mut impl Around) {
        self.fetching.tick();
        self.orders(around);
        self.serving.late();
        if self.last_sweep.elapsed() >= STAGED_MAX_AGE / 10 {
            self.last_sweep = Instant::now();
            let removed = self.fetching.sweep(STAGED_MAX_AGE);
            if removed > 0 {
                tracing::info!(count = removed, "removed staged content nothing placed");
            }
        }
    }

    /// The core's order to get content: found staged already or held here already
    /// (`reuse.rs`), made from the patch that came with its record, put off when the disk
    /// has no room for it, or handed to the content exchange, which asks a holder for it.
    pub(super) fn fetch(&mut self, around: &mut impl Around, folders: &Folders, want: Want) {
        let (from, task, path, hash) = (want.from, want.task, want.path.clone(), want.hash);
        // Where new content is written: staging, and the task's folder (when it is on
        // another file system, the content is copied there). Each must have room for it,
        // with `transfer::FREE_SPACE_MARGIN` to spare.
        let mut places = vec![self.fetching.staging.dir().to_owned()];
        let folder = folders.get(&task);
        places.extend(folder.map(|f| f.root.clone()));
        let now = around.now();
        // A patch that came with the record is applied only where its result fits.
        let fits = self.free_space.room_for(&places, want.size, now).is_ok();
        let root = folder.map(|f| f.root.as_path());
        let staging = &self.fetching.staging;
        let fetched = |ok| Input::Fetched {
            task,
            path,
            hash,
            from,
            ok,
        };
        if fits && self.patches_in.apply(&want, root, staging) {
            // Its patch came with its record and gave the content: nothing is asked for.
            self.told.push_back(fetched(true));
            return;
        }
        let space = &self.free_space;
        let room = |needed: u64| space.room_for(&places, needed, now);
        let kept = |hash: &ContentHash| around.kept(hash);
        let local = |staging: &_, want: &_| reuse::sources(staging, folder, kept, want);
        if let Some(ok) = self.fetching.want(want, room, local) {
            self.told.push_back(fetched(ok));
        }
        self.orders(around);
    }

    /// Send the exchange's requests and queue what it tells the core. A request that
    /// cannot leave (the device is no longer connected) is answered "not had" at once, so
    /// the next holder is asked.
    pub(super) fn orders(&mut self, around: &mut impl Around) {
        loop {
            let (sends, told) = self.fetching.orders();
            self.told.extend(told);
            if sends.is_empty() {
                return;
            }
            for (to, request) in sends {
                let qsync_core::Message::Request {
                    task, path, hash, ..
                } = &request
                else {
                    continue;
                };
                let key = (*task, path.clone(), *hash);
                let sent = super::encoded(&request)
                    .is_some_and(|body| around.send(to, key.0, Message::Sync { body }));
                if !sent {
                    self.fetching.unavailable(to, key);
                }
            }
        }
    }

    /// Keep the patches that came with `device`'s `records` of `task`, until the core
    /// wants their content.
    pub(super) fn patches_came(
        &mut self,
        task: TaskId,
        records: &[Record],
        patches: Vec<(u32, Bytes)>,
    ) {
        self.patches_in.keep(task, records, patches);
    }

    /// A message about content from `device`, about `task`: a chunk of content or of a
    /// patch, a signature wanted or sent, content not had, or sent from another byte.
    /// Messages of the core are not for here (nor the older protocol's: ignored).
    pub(super) fn received(
        &mut self,
        around: &mut impl Around,
        folders: &Folders,
        (device, task): (DeviceId, TaskId),
        message: Message,
    ) {
        match message {
            Message::Content {
                path,
                hash,
                offset,
                data,
                last,
            } => {
                let key = (task, path, hash);
                self.chunk(
                    around,
                    folders,
                    device,
                    key,
                    (Chunk::Whole, offset),
                    &data,
                    last,
                );
            }
            Message::Delta {
                path,
                hash,
                base,
                offset,
                data,
                last,
            } => {
                let key = (task, path, hash);
                let chunk = (Chunk::Patch { base }, offset);
                self.chunk(around, folders, device, key, chunk, &data, last);
            }
            Message::SignatureWanted { path, hash, base } => {
                self.signature_wanted(around, folders, device, (task, path, hash), base);
            }
            Message::Signature {
                path,
                hash,
                base,
                offset,
                data,
                last,
            } => {
                let key = (device, task, path, hash);
                self.serving.signature(key, base, offset, &data, last);
            }
            Message::Unavailable { path, hash } => {
                self.fetching.unavailable(device, (task, path, hash));
                self.orders(around);
            }
            Message::Resend {
                path,
                hash,
                asked,
                from,
            } => self
                .fetching
                .resend(device, (task, path, hash), asked, from),
            // The older protocol's updates (from a daemon of before version vectors).
            other => {
                tracing::debug!(%device, message = ?std::mem::discriminant(&other), "ignored an update of the older protocol")
            }
        }
    }

    /// A chunk of content or of a patch from `device`, at `offset`, for the exchange to
    /// take or not.
    #[allow(clippy::too_many_arguments)]
    fn chunk(
        &mut self,
        around: &mut impl Around,
        folders: &Folders,
        device: DeviceId,
        key: FetchKey,
        (chunk, offset): (Chunk, u64),
        data: &[u8],
        last: bool,
    ) {
        // Content flowing: the daemon's keeper of blobs waits until it is quiet.
        self.moved = Instant::now();
        let root = folders.get(&key.0).map(|f| f.root.as_path());
        let look = self
            .fetching
            .chunk(device, key, chunk, offset, data, last, root);
        if let Some((task, path)) = look {
            self.reports.push_back(Report::LookAt(task, vec![path]));
        }
        self.orders(around);
    }

    /// `device` keeps no copy of our version `base` of the content it is sending: we
    /// describe it, for a fetch of ours that named it as its base, once (and not once
    /// content is coming).
    fn signature_wanted(
        &mut self,
        around: &mut impl Around,
        folders: &Folders,
        device: DeviceId,
        key: FetchKey,
        base: ContentHash,
    ) {
        if !self.fetching.signature_wanted(device, &key, base) {
            return;
        }
        let (Some(conn), Some(folder)) = (around.conn(&device), folders.get(&key.0)) else {
            return;
        };
        let (task, path, hash) = key;
        let root = folder.root.clone();
        self.serving
            .sign(device, conn, task, root, path, hash, base);
    }

    /// A connection is gone: its transfers move to another holder, or end (asked again
    /// after reconnecting, from the bytes received), and what was served to it stops.
    pub(super) fn disconnected(&mut self, around: &mut impl Around, device: DeviceId) {
        self.serving.disconnected(device);
        self.fetching.disconnected(device);
        self.orders(around);
    }

    /// The core's order to tell `to` that `hash` at `path` of `task` is not served now (the
    /// task is paused).
    pub(super) fn refuse(
        &mut self,
        around: &mut impl Around,
        to: DeviceId,
        (task, path, hash): (TaskId, RelPath, ContentHash),
    ) {
        if let Some(conn) = around.conn(&to) {
            let _ = conn
                .tx
                .send(Outbound::Message(task, Message::Unavailable { path, hash }));
        }
    }

    /// The core's order to serve `hash` at `path` of `task` to `to` (`base`: the asker's
    /// version there; `offset`: the bytes it has already, `checks` their checks).
    pub(super) fn serve(
        &mut self,
        around: &mut impl Around,
        folders: &Folders,
        to: DeviceId,
        (task, path, hash): (TaskId, RelPath, ContentHash),
        (base, offset, checks): (Option<ContentHash>, u64, Vec<ContentHash>),
    ) {
        let Some(conn) = around.conn(&to) else {
            return; // gone: it asks again after reconnecting
        };
        let Some(folder) = folders.get(&task) else {
            // Not synced here any more: say so, or the asker waits for ever.
            let _ = conn
                .tx
                .send(Outbound::Message(task, Message::Unavailable { path, hash }));
            return;
        };
        self.moved = Instant::now();
        let kept = |hash: &ContentHash| around.kept(hash);
        let order = serving::Order::new(folder, kept, (task, path, hash), (base, offset, checks));
        self.serving.serve(to, conn, order);
    }

    /// A placement used the staged content `hash`: it is removed from staging.
    pub(super) fn placed(&mut self, hash: Option<ContentHash>) {
        if let Some(hash) = hash {
            self.fetching.staging.remove(&hash);
        }
        self.moved = Instant::now();
    }

    /// The edits staged for `key` could not be used: its content is asked for whole next
    /// time.
    pub(super) fn ask_whole(&mut self, key: FetchKey) {
        self.fetching.ask_whole(key);
    }
}
