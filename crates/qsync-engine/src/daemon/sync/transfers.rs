//! The transfers beside the core's messages, as the content exchange (`crate::exchange`)
//! decides them: chunks of content and patches written (into the part file of the content,
//! or memory) when it lets them through and checked and staged at the end; the signatures
//! of rsync's exchange (ours sent when a peer asks for one for a fetch of ours; a peer's
//! received for a serve order waiting for it); connections closed; and the free-space
//! check made before a file is asked for.

use super::*;
use crate::exchange::{Chunk, Verdict};

impl Engine {
    /// Let time pass for the exchange (requests unanswered and transfers stalled move to
    /// another holder, or end) and for serve orders waiting for a signature.
    pub(super) fn core_drop_stalled(&mut self) {
        self.sync.exchange.handle_timeout(Instant::now());
        self.exchange_step();
        self.serve_late();
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
            Message::Sync { body } => {
                // The body leaves the task out: it is about the task its frame named.
                let message = match qsync_core::Message::from_wire(task, &body) {
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
            Message::Content {
                path,
                hash,
                offset,
                data,
                last,
            } => {
                let key = (task, path, hash);
                let chunk = Chunk::Whole;
                let verdict = self.sync.exchange.chunk(
                    Instant::now(),
                    device,
                    &key,
                    chunk,
                    offset,
                    data.len() as u64,
                    last,
                );
                self.received_chunk(device, key, chunk, verdict, offset, &data);
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
                let chunk = Chunk::Patch { base };
                let verdict = self.sync.exchange.chunk(
                    Instant::now(),
                    device,
                    &key,
                    chunk,
                    offset,
                    data.len() as u64,
                    last,
                );
                self.received_chunk(device, key, chunk, verdict, offset, &data);
            }
            Message::SignatureWanted { path, hash, base } => {
                // The sender keeps no copy of our version: describe it, for a fetch of ours
                // that named it as its base, once (and not once content is coming).
                let key = (task, path, hash);
                let now = Instant::now();
                if !self.sync.exchange.signature_wanted(now, device, &key, base) {
                    return;
                }
                let (Some(conn), Some(state)) = (self.conns.get(&device), self.tasks.get(&task))
                else {
                    return;
                };
                let (_, path, hash) = key;
                let job = ServeJob {
                    root: state.root.clone(),
                    task,
                    path,
                    hash,
                    work: Work::Sign { base },
                    tx: conn.tx.clone(),
                    queued: conn.queued.clone(),
                };
                self.queue_serve(device, job);
            }
            Message::Signature {
                path,
                hash,
                base,
                offset,
                data,
                last,
            } => {
                // A chunk of the signature a serve order of ours waits for; nothing else.
                let key = (device, task, path, hash);
                let Some(awaiting) = self.sync.awaiting.get_mut(&key) else {
                    return;
                };
                if awaiting.base != base {
                    return;
                }
                if !last {
                    if let Err(e) = awaiting.incoming.accept(offset, &data) {
                        tracing::debug!(%device, error = %e, "a signature was refused; the content is served whole");
                        self.serve_awaiting(&key, None);
                    }
                    return;
                }
                let incoming = std::mem::replace(
                    &mut awaiting.incoming,
                    transfer::IncomingSignature::start(&self.sync.signature_memory),
                );
                // Only a signature of the base the asker named: any other makes a patch
                // it would refuse.
                let signature = incoming
                    .finish()
                    .filter(|(sig, _)| sig.source_hash() == base);
                self.serve_awaiting(&key, signature);
            }
            Message::Unavailable { path, hash } => {
                let key = (task, path, hash);
                self.sync.exchange.unavailable(Instant::now(), device, &key);
                self.exchange_step();
            }
            // The older protocol's updates (from a daemon of before version vectors).
            other => {
                tracing::debug!(%device, message = ?std::mem::discriminant(&other), "ignored an update of the older protocol")
            }
        }
    }

    /// Carry out the exchange's verdict on a chunk from `device`: its bytes written (the
    /// part file opened, or the patch begun, at the first), or the content checked and
    /// staged at the last; then the exchange's orders.
    fn received_chunk(
        &mut self,
        device: DeviceId,
        key: FetchKey,
        chunk: Chunk,
        verdict: Verdict,
        offset: u64,
        data: &[u8],
    ) {
        match verdict {
            Verdict::Ignore => return,
            Verdict::Refuse(why) => {
                tracing::warn!(%device, path = %key.1, "a transfer was refused: {why}");
            }
            Verdict::Write => {
                if let Err(e) = self.write_chunk(&key, chunk, offset, data) {
                    tracing::warn!(%device, path = %key.1, error = %e, "a transfer failed");
                    self.sync.exchange.failed(&key);
                }
            }
            Verdict::Finish => {
                let ok = self.finish_fetch(&key, chunk, offset);
                self.sync.exchange.finished(&key, ok);
            }
        }
        self.exchange_step();
    }

    /// Write a chunk the exchange let through.
    fn write_chunk(
        &mut self,
        key: &FetchKey,
        chunk: Chunk,
        offset: u64,
        data: &[u8],
    ) -> Result<(), EngineError> {
        let sync = &mut self.sync;
        if !sync.receiving.contains_key(key) {
            let size = sync.exchange.size_of(key).unwrap_or(0);
            let started = match chunk {
                Chunk::Whole => Receiving::Whole(Box::new(open_whole(sync, key, size, offset)?)),
                Chunk::Patch { base } => {
                    Receiving::Patch(Box::new(IncomingPatch::start(base, key.2, size)))
                }
            };
            sync.receiving.insert(key.clone(), started);
        }
        let Some(receiving) = sync.receiving.get_mut(key) else {
            return Ok(());
        };
        match receiving {
            Receiving::Whole(incoming) => incoming.accept(offset, data),
            Receiving::Patch(patch) => {
                patch.accept(data);
                Ok(())
            }
        }
    }

    /// Check and stage the content of a fetch whose last chunk came: true if staged.
    fn finish_fetch(&mut self, key: &FetchKey, chunk: Chunk, offset: u64) -> bool {
        let sync = &mut self.sync;
        let size = sync.exchange.size_of(key).unwrap_or(0);
        let receiving = match sync.receiving.remove(key) {
            Some(receiving) => receiving,
            // Nothing came before the end: an empty content, or an empty patch.
            None => match chunk {
                Chunk::Whole => match open_whole(sync, key, size, offset) {
                    Ok(incoming) => Receiving::Whole(Box::new(incoming)),
                    Err(e) => {
                        tracing::warn!(path = %key.1, error = %e, "a transfer failed");
                        return false;
                    }
                },
                Chunk::Patch { base } => {
                    Receiving::Patch(Box::new(IncomingPatch::start(base, key.2, size)))
                }
            },
        };
        let outcome = match receiving {
            Receiving::Whole(incoming) => incoming.finish(&sync.staging),
            Receiving::Patch(patch) => {
                let root = self.tasks.get(&key.0).map(|t| t.root.clone());
                let applied = match root {
                    Some(root) => patch.finish(&root, &key.1, &sync.staging),
                    None => Ok(false),
                };
                if !matches!(applied, Ok(true)) {
                    // Our file may not be the base we asked with: the watcher may have
                    // missed a change of it. (The exchange asks for it whole next time.)
                    self.core_look_at(key.0, vec![key.1.clone()]);
                }
                applied
            }
        };
        match outcome {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(path = %key.1, error = %e, "a transfer failed");
                false
            }
        }
    }

    /// A connection is gone: its transfers move to another holder, or end (asked again
    /// after reconnecting, from the bytes received).
    pub(in crate::daemon) fn core_disconnected(&mut self, device: DeviceId) {
        let sync = &mut self.sync;
        // Its orders queued for serving are skipped (their connection is closed); those it
        // makes after reconnecting must not be taken for them and dropped as repeats.
        if let Ok(mut serving) = sync.serving.lock() {
            serving.retain(|(d, ..)| *d != device);
        }
        // Their serve orders waiting for a signature are dropped: it asks again.
        sync.awaiting.retain(|(d, ..), _| *d != device);
        sync.exchange.disconnected(Instant::now(), device);
        self.exchange_orders();
        self.core_feed(Input::Disconnected { peer: device });
    }

    /// Whether `size` bytes of new content for `task` fit: in staging, and in the task's
    /// folder when it is on another file system (the content is copied there), each with
    /// [`transfer::FREE_SPACE_MARGIN`] to spare.
    pub(super) fn room_for(&self, task: TaskId, size: u64) -> Result<(), String> {
        let staging = self.sync.staging.dir();
        let mut places = vec![staging.to_owned()];
        if let Some(state) = self.tasks.get(&task) {
            places.push(state.root.clone());
        }
        // What transfers under way will still write counts as taken already.
        transfer::room_for(&places, size.saturating_add(self.sync.exchange.reserved()))
    }
}

/// The part file of `key`'s content to continue at `offset`: kept open from the holder
/// before, or opened (its first `offset` bytes read and hashed again).
fn open_whole(
    sync: &mut CoreSync,
    key: &FetchKey,
    size: u64,
    offset: u64,
) -> Result<Incoming, EngineError> {
    match sync.parked.remove(&key.2) {
        Some(parked) if parked.received() == offset => Ok(parked),
        _ => Incoming::open(&sync.staging, key.2, size, offset),
    }
}
