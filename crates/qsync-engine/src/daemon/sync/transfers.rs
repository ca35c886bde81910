//! The transfers beside the core's messages, as the content exchange (`crate::exchange`)
//! decides them: chunks of content and patches written (into the part file of the content,
//! or memory) when it lets them through and checked and staged at the end; the signatures
//! of rsync's exchange (ours sent when a peer asks for one for a fetch of ours; a peer's
//! received for a serve order waiting for it); connections closed; and the free-space
//! check made before a file is asked for.

use std::time::Instant;

use qsync_base::{ContentHash, DeviceId, EntryKind, RelPath, TaskId};
use qsync_core::Input;
use qsync_wire::Message;

use super::{serving, Engine};
use crate::control::DaemonEvent;
use crate::exchange::{Chunk, FetchKey};
use crate::net::Outbound;

impl Engine {
    /// Let time pass for the exchange (requests unanswered and transfers stalled move to
    /// another holder, or end) and for serve orders waiting for a signature.
    pub(super) fn core_drop_stalled(&mut self) {
        self.sync.fetching.tick();
        self.exchange_step();
        self.sync.serving.late();
    }

    /// A message for the core or its transfers from `device`.
    pub(in crate::daemon) fn core_received(
        &mut self,
        device: DeviceId,
        task: TaskId,
        message: Message,
    ) {
        if matches!(message, Message::Content { .. } | Message::Delta { .. }) {
            // Content flowing: the keeper of blobs waits until it is quiet.
            self.last_busy = Instant::now();
        }
        match message {
            Message::Sync { body } => self.core_message(device, task, &body),
            Message::Content {
                path,
                hash,
                offset,
                data,
                last,
            } => self.core_chunk(
                device,
                (task, path, hash),
                Chunk::Whole,
                offset,
                &data,
                last,
            ),
            Message::Delta {
                path,
                hash,
                base,
                offset,
                data,
                last,
            } => {
                let key = (task, path, hash);
                self.core_chunk(device, key, Chunk::Patch { base }, offset, &data, last);
            }
            Message::SignatureWanted { path, hash, base } => {
                // The sender keeps no copy of our version: describe it, for a fetch of ours
                // that named it as its base, once (and not once content is coming).
                let key = (task, path, hash);
                if !self.sync.fetching.signature_wanted(device, &key, base) {
                    return;
                }
                let (Some(conn), Some(state)) = (self.peers.conn(&device), self.tasks.get(&task))
                else {
                    return;
                };
                let (_, path, hash) = key;
                let root = state.root.clone();
                self.sync
                    .serving
                    .sign(device, conn, task, root, path, hash, base);
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
                self.sync.serving.signature(key, base, offset, &data, last);
            }
            Message::Unavailable { path, hash } => {
                self.sync.fetching.unavailable(device, (task, path, hash));
                self.exchange_step();
            }
            // The older protocol's updates (from a daemon of before version vectors).
            other => {
                tracing::debug!(%device, message = ?std::mem::discriminant(&other), "ignored an update of the older protocol")
            }
        }
    }

    /// A message of `device`'s core about `task`, for ours. The body leaves the task out:
    /// it is about the task its frame named.
    fn core_message(&mut self, device: DeviceId, task: TaskId, body: &[u8]) {
        let message = match qsync_core::Message::from_wire(task, body) {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(%device, error = %e, "dropped a sync message that does not decode");
                return;
            }
        };
        tracing::debug!(%device, ?message, "core message");
        if matches!(message, qsync_core::Message::Ack { .. }) {
            self.tell(DaemonEvent::Delivered { device });
        }
        self.core_feed(Input::Received {
            from: device,
            message,
        });
    }

    /// A chunk of content or of a patch from `device`, for the exchange to take or not.
    fn core_chunk(
        &mut self,
        device: DeviceId,
        key: FetchKey,
        chunk: Chunk,
        offset: u64,
        data: &[u8],
        last: bool,
    ) {
        let root = self.tasks.get(&key.0).map(|t| t.root.as_path());
        let look = self
            .sync
            .fetching
            .chunk(device, key, chunk, offset, data, last, root);
        if let Some((task, path)) = look {
            self.core_look_at(task, vec![path]);
        }
        self.exchange_step();
    }

    /// A connection is gone: its transfers move to another holder, or end (asked again
    /// after reconnecting, from the bytes received).
    pub(in crate::daemon) fn core_disconnected(&mut self, device: DeviceId) {
        let sync = &mut self.sync;
        sync.serving.disconnected(device);
        sync.fetching.disconnected(device);
        self.exchange_orders();
        self.core_feed(Input::Disconnected { peer: device });
    }

    /// The core's order to serve `hash` at `path` of `task` to `to` (`base`: the asker's
    /// version there; `offset`: the bytes it has already).
    pub(super) fn core_serve(
        &mut self,
        to: DeviceId,
        task: TaskId,
        path: RelPath,
        hash: ContentHash,
        (base, offset): (Option<ContentHash>, u64),
    ) {
        let Some(conn) = self.peers.conn(&to) else {
            return; // gone: it asks again after reconnecting
        };
        let Some(state) = self.tasks.get(&task) else {
            // Not synced here any more: say so, or the asker waits for ever.
            let _ = conn
                .tx
                .send(Outbound::Message(task, Message::Unavailable { path, hash }));
            return;
        };
        self.last_busy = Instant::now();
        let announced = state
            .index
            .get(&path)
            .and_then(|e| (e.kind == EntryKind::File && e.hash == Some(hash)).then_some(e.size));
        // A patch needs the asker's version: kept here if this task held it (a content of
        // another task is never used, nor its presence told: see `held.rs`).
        let blobs = self.store.blobs();
        let kept = base
            .filter(|b| state.held.contains(b) && blobs.contains(b))
            .map(|b| blobs.path(&b));
        let order = serving::Order {
            task,
            path,
            hash,
            base,
            offset,
            root: state.root.clone(),
            announced,
            kept,
        };
        self.sync.serving.serve(to, conn, order);
    }

    /// Where new content for `task` is written: staging, and the task's folder (when it
    /// is on another file system, the content is copied there). Each must have room for
    /// it, with [`transfer::FREE_SPACE_MARGIN`] to spare.
    pub(super) fn content_places(&self, task: TaskId) -> Vec<std::path::PathBuf> {
        let mut places = vec![self.sync.fetching.staging.dir().to_owned()];
        if let Some(state) = self.tasks.get(&task) {
            places.push(state.root.clone());
        }
        places
    }
}
