//! The transfers beside the core's messages: content and patches coming in for the
//! core's fetches (in order, within the announced size and the limits, staged once
//! checked), the signatures of rsync's exchange (ours sent when a peer asks for one for a
//! fetch of ours; a peer's received for a serve order waiting for it), fetches ended or
//! dropped (a stalled transfer, a closed connection), and the free-space check made
//! before a file is asked for.

use super::*;

impl Engine {
    /// Transfers begun (a file open here, or a patch in memory) that got no chunk for
    /// [`TRANSFER_IDLE`] are dropped, giving back their share of the limits: an honest
    /// peer streams a file it began without pause, so this is a peer that stopped (or
    /// never meant to finish). The core asks again later.
    pub(super) fn core_drop_stalled(&mut self) {
        let stalled: Vec<_> = self
            .sync
            .fetches
            .iter()
            .filter(|(_, f)| {
                (f.incoming.is_some() || f.patch.is_some()) && f.last.elapsed() >= TRANSFER_IDLE
            })
            .map(|(key, _)| key.clone())
            .collect();
        for key in stalled {
            tracing::warn!(device = %key.0, path = %key.2, "a transfer stalled; it is asked for again later");
            self.fetch_done(key, Ok(false));
        }
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
                let sync = &mut self.sync;
                let key = (device, task, path, hash);
                let Some(fetch) = sync.fetches.get_mut(&key) else {
                    return; // not asked for (or given up): dropped
                };
                fetch.last = Instant::now();
                if fetch.incoming.is_none() && (offset != 0 || (last && fetch.size != 0)) {
                    // The rest of an answer to an earlier request of the same content (the
                    // transfer is asked again): the new answer starts at 0.
                    return;
                }
                fetch.began.get_or_insert(fetch.last);
                let incoming = match fetch.incoming.take() {
                    Some(incoming) => Ok(*incoming),
                    None => {
                        let slots = sync.open_incoming.entry(device).or_default();
                        Incoming::start(&sync.staging, hash, fetch.size, slots)
                    }
                };
                let outcome = if last {
                    Some(incoming.and_then(|i| i.finish(&sync.staging)))
                } else {
                    match incoming.and_then(|mut i| i.accept(offset, &data).map(|()| i)) {
                        Ok(incoming) => {
                            fetch.incoming = Some(Box::new(incoming));
                            CoreSync::reserve(&mut sync.reserved, fetch);
                            None
                        }
                        Err(e) => Some(Err(e)),
                    }
                };
                if let Some(outcome) = outcome {
                    self.fetch_done(key, outcome);
                }
            }
            Message::Delta {
                path,
                hash,
                base,
                offset,
                data,
                last,
            } => {
                let sync = &mut self.sync;
                let key = (device, task, path, hash);
                let Some(fetch) = sync.fetches.get_mut(&key) else {
                    return;
                };
                if fetch.base != Some(base) || fetch.incoming.is_some() {
                    return; // not the base it has, or whole content already coming
                }
                fetch.last = Instant::now();
                if fetch.patch.is_none() && offset != 0 {
                    return; // the rest of an answer to an earlier request
                }
                fetch.began.get_or_insert(fetch.last);
                let memory = &sync.patch_memory;
                let mut patch = fetch.patch.take().unwrap_or_else(|| {
                    Box::new(IncomingPatch::start(base, hash, fetch.size, memory))
                });
                let outcome = if last {
                    let root = self.tasks.get(&task).map(|t| t.root.clone());
                    Some(match root {
                        Some(root) => patch.finish(&root, &key.2, &sync.staging),
                        None => Ok(false),
                    })
                } else {
                    match patch.accept(offset, &data) {
                        Ok(()) => {
                            fetch.patch = Some(patch);
                            CoreSync::reserve(&mut sync.reserved, fetch);
                            None
                        }
                        Err(e) => Some(Err(e)),
                    }
                };
                if let Some(outcome) = outcome {
                    if !matches!(outcome, Ok(true)) {
                        // Next time, the content comes whole (a patch that does not apply,
                        // or one too large to take in memory).
                        self.sync.whole.insert((task, key.2.clone(), hash));
                        if last {
                            // Our file may not be the base we asked with: the watcher may
                            // have missed a change of it.
                            self.core_look_at(task, vec![key.2.clone()]);
                        }
                    }
                    self.fetch_done(key, outcome);
                }
            }
            Message::SignatureWanted { path, hash, base } => {
                // The sender keeps no copy of our version: describe it, for a fetch of ours
                // that named it as its base, once (and not once content is coming).
                let key = (device, task, path, hash);
                let Some(fetch) = self.sync.fetches.get_mut(&key) else {
                    return;
                };
                if fetch.base != Some(base)
                    || fetch.signing
                    || fetch.incoming.is_some()
                    || fetch.patch.is_some()
                {
                    return;
                }
                let (Some(conn), Some(state)) = (self.conns.get(&device), self.tasks.get(&task))
                else {
                    return;
                };
                fetch.signing = true;
                fetch.last = Instant::now();
                let (_, _, path, hash) = key;
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
                let sync = &mut self.sync;
                if sync
                    .fetches
                    .remove(&(device, task, path.clone(), hash))
                    .is_some()
                {
                    self.core_feed(Input::Fetched {
                        task,
                        path,
                        hash,
                        from: device,
                        ok: false,
                    });
                }
            }
            // The older protocol's updates (from a daemon of before version vectors).
            other => {
                tracing::debug!(%device, message = ?std::mem::discriminant(&other), "ignored an update of the older protocol")
            }
        }
    }

    /// A fetch ended: staged (`Ok(true)`) or not; the core hears it.
    pub(super) fn fetch_done(
        &mut self,
        key: (DeviceId, TaskId, RelPath, ContentHash),
        outcome: Result<bool, EngineError>,
    ) {
        let ok = match outcome {
            Ok(ok) => ok,
            Err(e) => {
                tracing::warn!(device = %key.0, path = %key.2, error = %e, "a transfer failed");
                false
            }
        };
        let sync = &mut self.sync;
        if let Some(fetch) = sync.fetches.remove(&key) {
            CoreSync::release(&mut sync.reserved, &fetch);
        }
        let (from, task, path, hash) = key;
        self.core_feed(Input::Fetched {
            task,
            path,
            hash,
            from,
            ok,
        });
    }

    /// A connection is gone: its fetches are dropped (asked again after reconnecting).
    pub(in crate::daemon) fn core_disconnected(&mut self, device: DeviceId) {
        let sync = &mut self.sync;
        // Its orders queued for serving are skipped (their connection is closed); those it
        // makes after reconnecting must not be taken for them and dropped as repeats.
        if let Ok(mut serving) = sync.serving.lock() {
            serving.retain(|(d, ..)| *d != device);
        }
        // Their serve orders waiting for a signature are dropped: it asks again.
        sync.awaiting.retain(|(d, ..), _| *d != device);
        let reserved = &mut sync.reserved;
        sync.fetches.retain(|(d, ..), fetch| {
            let keep = *d != device;
            if !keep {
                CoreSync::release(reserved, fetch);
            }
            keep
        });
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
        transfer::room_for(&places, size.saturating_add(self.sync.reserved))
    }
}
