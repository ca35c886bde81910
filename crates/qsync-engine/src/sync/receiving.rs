//! What the driver receives from peers and serves them: the core's messages, chunks of
//! content and patches (written into the content's part file, or memory, when the content
//! exchange lets them through, checked and staged at the end: `fetching.rs`), the
//! signatures of rsync's exchange (ours sent when a peer asks for one for a fetch of ours;
//! a peer's received for a serve order waiting for it), connections that close, and the
//! core's orders to serve content (`serving.rs`).

use std::time::Instant;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
use qsync_core::Input;
use qsync_wire::Message;

use super::{serving, Around, Report, SyncDriver};
use crate::exchange::{Chunk, FetchKey};
use crate::net::Outbound;

impl SyncDriver {
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
            Message::Sync { body } => self.core_message(around, device, task, &body),
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
            // The older protocol's updates (from a daemon of before version vectors).
            other => {
                tracing::debug!(%device, message = ?std::mem::discriminant(&other), "ignored an update of the older protocol")
            }
        }
    }

    /// A message of `device`'s core about `task`, for ours. The body leaves the task out:
    /// it is about the task its frame named.
    fn core_message(
        &mut self,
        around: &mut impl Around,
        device: DeviceId,
        task: TaskId,
        body: &[u8],
    ) {
        let message = match qsync_core::Message::from_wire(task, body) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%device, error = %e, "dropped a sync message that does not decode");
                return;
            }
        };
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

    /// The core's order to serve `hash` at `path` of `task` to `to` (`base`: the asker's
    /// version there; `offset`: the bytes it has already).
    pub(super) fn serve(
        &mut self,
        around: &mut impl Around,
        to: DeviceId,
        task: TaskId,
        path: RelPath,
        hash: ContentHash,
        (base, offset): (Option<ContentHash>, u64),
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
        // A patch needs the asker's version: kept here if this task held it (a content of
        // another task is never used, nor its presence told: see `held.rs`).
        let kept = base
            .filter(|b| folder.held.contains(b))
            .and_then(|b| around.kept(&b));
        let order = serving::Order {
            task,
            announced: folder.announced(&path, &hash),
            path,
            hash,
            base,
            offset,
            root: folder.root.clone(),
            kept,
        };
        self.serving.serve(to, conn, order);
    }
}
