//! The content the driver exchanges with peers: the core's orders to fetch content (handed
//! to the content exchange, whose requests are sent here), what peers send (the core's
//! messages, chunks of content and patches (written into the content's part file, or memory, when the content
//! exchange lets them through, checked and staged at the end: `fetching.rs`), the
//! signatures of rsync's exchange (ours sent when a peer asks for one for a fetch of ours;
//! a peer's received for a serve order waiting for it), connections that close, and the
//! core's orders to serve content (`serving.rs`).

use std::time::Instant;

use bytes::Bytes;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
use qsync_core::Input;
use qsync_wire::Message;

use super::{reuse, serving, Around, Report, SyncDriver};
use crate::control::TransferInfo;
use crate::exchange::{Chunk, FetchKey, Want};
use crate::net::Outbound;

impl SyncDriver {
    /// Whether no serve order is queued, under way, or waiting for a signature.
    pub(crate) fn serving_idle(&self) -> bool {
        self.serving.idle()
    }

    /// The transfers coming in now.
    pub(crate) fn transfers(&self) -> Vec<TransferInfo> {
        self.fetching.transfers()
    }

    /// The core's order to get content: found staged already or held here already
    /// (`reuse.rs`), put off when the disk has no room for it, or handed to the content
    /// exchange, which asks a holder for it.
    pub(super) fn fetch(&mut self, around: &mut impl Around, want: Want) {
        let (from, task, path, hash) = (want.from, want.task, want.path.clone(), want.hash);
        // Where new content is written: staging, and the task's folder (when it is on
        // another file system, the content is copied there). Each must have room for it,
        // with `transfer::FREE_SPACE_MARGIN` to spare.
        let mut places = vec![self.fetching.staging.dir().to_owned()];
        places.extend(self.folders.get(&task).map(|f| f.root.clone()));
        let now = around.now();
        // A patch that came with the record is applied only where its result fits.
        let fits = self.free_space.room_for(&places, want.size, now).is_ok();
        let root = self.folders.get(&task).map(|f| f.root.clone());
        let staging = &self.fetching.staging;
        if fits && self.patches_in.apply(&want, root.as_deref(), staging) {
            // Its patch came with its record and gave the content: nothing is asked for.
            self.inputs.push_back(Input::Fetched {
                task,
                path,
                hash,
                from,
                ok: true,
            });
            return;
        }
        let space = &self.free_space;
        let room = |needed: u64| space.room_for(&places, needed, now);
        let folder = self.folders.get(&task);
        let kept = |hash: &ContentHash| around.kept(hash);
        let local = |staging: &_, want: &_| reuse::sources(staging, folder, kept, want);
        if let Some(ok) = self.fetching.want(want, room, local) {
            self.inputs.push_back(Input::Fetched {
                task,
                path,
                hash,
                from,
                ok,
            });
        }
        self.exchange_orders(around);
    }

    /// Send the exchange's requests and queue what it tells the core. A request that
    /// cannot leave (the device is no longer connected) is answered "not had" at once, so
    /// the next holder is asked.
    pub(super) fn exchange_orders(&mut self, around: &mut impl Around) {
        loop {
            let (sends, told) = self.fetching.orders();
            self.inputs.extend(told);
            if sends.is_empty() {
                return;
            }
            for (to, request) in sends {
                let key = match &request {
                    qsync_core::Message::Request {
                        task, path, hash, ..
                    } => (*task, path.clone(), *hash),
                    _ => continue,
                };
                if !self.send(around, to, request) {
                    self.fetching.unavailable(to, key);
                }
            }
        }
    }

    /// Carry out the exchange's orders, then let the core hear how its fetches went
    /// (unless facts are deferred). Not from within the core's run: there the orders
    /// alone are carried out, and the run goes on with the inputs queued.
    pub(super) fn exchange_step(&mut self, around: &mut impl Around) {
        self.exchange_orders(around);
        if self.wants_run() {
            self.run(around, None);
        }
    }

    /// A message for the core or its transfers from `device`, about `task` (a task
    /// `device` is linked to: the daemon checked).
    pub(crate) fn received(
        &mut self,
        around: &mut impl Around,
        device: DeviceId,
        task: TaskId,
        message: Message,
    ) {
        match message {
            Message::Sync { body } => self.core_message(around, device, task, &body, Vec::new()),
            Message::SyncPatched { body, patches } => {
                self.core_message(around, device, task, &body, patches);
            }
            Message::Content {
                path,
                hash,
                offset,
                data,
                last,
            } => {
                let key = (task, path, hash);
                self.chunk(around, device, key, (Chunk::Whole, offset), &data, last);
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
                self.chunk(around, device, key, chunk, &data, last);
            }
            Message::SignatureWanted { path, hash, base } => {
                self.signature_wanted(around, device, (task, path, hash), base);
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
                self.exchange_step(around);
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

    /// A message of `device`'s core about `task`, for ours. The body leaves the task out:
    /// it is about the task its frame named.
    /// A message of `device`'s core, with the patches that came with its records.
    fn core_message(
        &mut self,
        around: &mut impl Around,
        device: DeviceId,
        task: TaskId,
        body: &[u8],
        patches: Vec<(u32, Bytes)>,
    ) {
        let message = match qsync_core::Message::from_wire(task, body) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%device, error = %e, "dropped a sync message that does not decode");
                return;
            }
        };
        if let (qsync_core::Message::Records { records, .. }, false) =
            (&message, patches.is_empty())
        {
            self.patches_in.keep(task, records, patches);
        }
        tracing::debug!(%device, ?message, "core message");
        if matches!(message, qsync_core::Message::Ack { .. }) {
            self.reports.push_back(Report::Delivered(device));
        }
        self.feed(
            around,
            Input::Received {
                from: device,
                message,
            },
        );
    }

    /// A chunk of content or of a patch from `device`, at `offset`, for the exchange to
    /// take or not.
    fn chunk(
        &mut self,
        around: &mut impl Around,
        device: DeviceId,
        key: FetchKey,
        (chunk, offset): (Chunk, u64),
        data: &[u8],
        last: bool,
    ) {
        // Content flowing: the daemon's keeper of blobs waits until it is quiet.
        self.content_moved = Instant::now();
        let root = self.folders.get(&key.0).map(|f| f.root.as_path());
        let look = self
            .fetching
            .chunk(device, key, chunk, offset, data, last, root);
        if let Some((task, path)) = look {
            self.reports.push_back(Report::LookAt(task, vec![path]));
        }
        self.exchange_step(around);
    }

    /// `device` keeps no copy of our version `base` of the content it is sending: we
    /// describe it, for a fetch of ours that named it as its base, once (and not once
    /// content is coming).
    fn signature_wanted(
        &mut self,
        around: &mut impl Around,
        device: DeviceId,
        key: FetchKey,
        base: ContentHash,
    ) {
        if !self.fetching.signature_wanted(device, &key, base) {
            return;
        }
        let (Some(conn), Some(folder)) = (around.conn(&device), self.folders.get(&key.0)) else {
            return;
        };
        let (task, path, hash) = key;
        let root = folder.root.clone();
        self.serving
            .sign(device, conn, task, root, path, hash, base);
    }

    /// A connection is gone: its transfers move to another holder, or end (asked again
    /// after reconnecting, from the bytes received).
    pub(crate) fn disconnected(&mut self, around: &mut impl Around, device: DeviceId) {
        self.serving.disconnected(device);
        self.fetching.disconnected(device);
        self.exchange_orders(around);
        self.feed(around, Input::Disconnected { peer: device });
    }

    /// The core's order to tell `to` that `hash` at `path` of `task` is not served now (the
    /// task is paused).
    pub(super) fn unavailable(
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
        to: DeviceId,
        (task, path, hash): (TaskId, RelPath, ContentHash),
        (base, offset, checks): (Option<ContentHash>, u64, Vec<ContentHash>),
    ) {
        let Some(conn) = around.conn(&to) else {
            return; // gone: it asks again after reconnecting
        };
        let Some(folder) = self.folders.get(&task) else {
            // Not synced here any more: say so, or the asker waits for ever.
            let _ = conn
                .tx
                .send(Outbound::Message(task, Message::Unavailable { path, hash }));
            return;
        };
        self.content_moved = Instant::now();
        let kept = |hash: &ContentHash| around.kept(hash);
        let order = serving::Order::new(folder, kept, (task, path, hash), (base, offset, checks));
        self.serving.serve(to, conn, order);
    }
}
