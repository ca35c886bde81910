//! The daemon's sync: the thin driver of `qsync-core`. Facts become the core's inputs
//! (connections, the core's messages, content that arrived, what the watcher saw, links),
//! each input is handled in one SQLite transaction committed before its orders are carried
//! out, and the orders become sends, served content and placements whose outcomes go back
//! in as inputs.
//!
//! Content travels beside the core's messages: the core's `Fetch` order goes to the
//! content exchange (`crate::exchange`, sans-IO), which decides which holder to ask and
//! from which byte; its orders are carried out here (a `Request` sent, the core told,
//! a part file closed or removed). The peer's serving thread streams `Content` chunks, or
//! a `Delta` from the content this device has (or `Unavailable`); each chunk is taken
//! only if the exchange says so, and the content is staged under its hash, checked,
//! before the core hears `Fetched`.
//!
//! What the watcher misses is looked for when a placement finds the disk changed, when a
//! patch does not apply, and by a whole scan every `rescan_every`.
//!
//! The transfers themselves (content and patches coming in, fetches ending, the free-space
//! check) are in `sync/transfers.rs`; serving content to peers (a serving thread per peer, serve
//! orders waiting for a peer's signature) in `sync/serving.rs`.
//!
//! If the ledger fails mid-call, the transaction rolls back, the core is replaced by a new
//! one and every connection is closed: the peers redial, and the exchange starts again from
//! what the ledger holds, as after a restart.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;

use qsync_base::{ContentHash, DeviceId, EntryKind, FileEntry, RelPath, TaskId};
use qsync_core::{Core, Effect, Input, Ledger, PlaceOutcome, State};
use qsync_watch::{observe_deferred, Index, LocalEvent, Observed, WatchBatch};
use qsync_wire::Message;

use super::Engine;
use crate::control::DaemonEvent;
use crate::driver::guard;
use crate::driver::place::{self, Batch, Staging};
use crate::driver::transfer;
use crate::exchange::Want;
use crate::keeper::Owed;
use crate::EngineError;

mod fetching;
mod serving;
mod transfers;

use fetching::Fetching;

use serving::Serving;

/// What the driver keeps beside the core.
pub(super) struct CoreSync {
    core: Core,
    /// The secret the core's spare counter keys come from (see
    /// `qsync_core::rules::counter_keys`): derived from this device's private key, the
    /// same at every start.
    key_seed: [u8; 32],
    /// What peers sent that the core refused or doubted, counted for `status`.
    pub(super) distrust: super::distrust::DistrustBook,
    /// Receiving content for the core's fetches (the exchange's machine, part files,
    /// patches, the staging folder).
    fetching: Fetching,
    /// Inputs waiting to be handled (outcomes of orders carried out).
    inputs: VecDeque<Input>,
    /// Serving content to peers (a thread per peer, orders waiting for a signature).
    serving: Serving,
    /// When each task's folder was last scanned whole because a placement failed.
    rescanned: HashMap<TaskId, Instant>,
    /// When every folder was last scanned whole.
    last_full_scan: Instant,
    /// When the ledger last failed (and the core was started afresh).
    last_reset: Option<Instant>,
    /// Placements begun, made durable together, and when the first of them began.
    batch: Batch,
    batch_since: Instant,
    /// Facts are queued, not handled yet (see [`Engine::core_defer`]).
    deferred: bool,
    /// When staging was last swept of old content.
    last_sweep: Instant,
}

/// A placement that fails (rather than finding the disk changed) means the watcher missed
/// something (inotify drops events when folders come and go fast): the task's folder is
/// scanned whole and what differs is reported, at most this often.
const RESCAN_EVERY: Duration = Duration::from_secs(5);

/// Staged content older than this is removed (a placement still wanting it has it
/// fetched again): content fetched for records that were replaced or that wait (under a
/// link, say) does not fill the state folder's disk.
const STAGED_MAX_AGE: Duration = Duration::from_secs(600);

/// The whole scan every `rescan_every` waits until content has stopped flowing (and local
/// changes stopped coming) for this long...
const RESCAN_QUIET: Duration = Duration::from_secs(5);
/// ...for at most this many periods.
const RESCAN_POSTPONED: u32 = 10;

/// Queued inputs handled in one SQLite transaction (their orders wait for its commit).
const INPUTS_PER_TRANSACTION: usize = 256;

/// Placements begun are made durable once the daemon has been quiet this long...
pub(super) const BATCH_QUIET: Duration = Duration::from_millis(2);
/// ...or once the oldest has waited this long (or the batch is full).
pub(super) const MAX_BATCH_WAIT: Duration = Duration::from_millis(250);

impl CoreSync {
    /// The transfers coming in now, for `status`.
    pub(super) fn transfers(&self) -> Vec<crate::control::TransferInfo> {
        self.fetching.transfers()
    }
}

/// Which device, task, path and content a serve order is for.
type ServeKey = (DeviceId, TaskId, RelPath, ContentHash);

impl CoreSync {
    /// The core of device `me`, its content staged under `state_dir/staging` (emptied: a
    /// fetch cut short by a stop starts again), once an edit in place that a crash cut
    /// short is undone (its journal is in the staging folder).
    pub(super) fn start(
        me: DeviceId,
        key_seed: [u8; 32],
        state_dir: &Path,
    ) -> Result<Self, EngineError> {
        let dir = state_dir.join("staging");
        if let Err(e) = crate::driver::in_place::undo_cut_short(&dir) {
            // The daemon still starts: the file stays as the crash left it, and is synced
            // as it is found.
            tracing::error!(error = %e, "could not undo an edit in place that a crash cut short");
        }
        let staging = Staging::open(dir)?;
        // What a stop left is dropped (a fetch cut short starts again), but for the parts
        // of contents on their way in: their transfers resume from them.
        staging.empty_but_parts()?;
        // Read once now, before any placement: received modes are masked by it.
        tracing::debug!(
            umask = format!("{:03o}", guard::umask()),
            "received modes are masked"
        );
        Ok(Self {
            core: Core::with_key_seed(me, key_seed),
            key_seed,
            distrust: super::distrust::DistrustBook::default(),
            fetching: Fetching::new(staging),
            inputs: VecDeque::new(),
            serving: Serving::default(),
            rescanned: HashMap::new(),
            last_full_scan: Instant::now(),
            last_reset: None,
            batch: Batch::default(),
            batch_since: Instant::now(),
            deferred: false,
            last_sweep: Instant::now(),
        })
    }

    /// When the core next wants time to pass.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// When the exchange next wants time to pass.
    pub(super) fn exchange_timeout(&self) -> Option<Instant> {
        self.fetching.next_timeout()
    }

    /// Whether no serve order is queued, under way, or waiting for a signature.
    pub(super) fn serving_idle(&self) -> bool {
        self.serving.idle()
    }
}

impl Engine {
    /// Hand the core one fact and carry out everything that follows.
    pub(super) fn core_feed(&mut self, input: Input) {
        self.sync.inputs.push_back(input);
        if !self.sync.deferred {
            self.core_run(None);
        }
    }

    /// While `deferred`, facts are queued and not handled: the run loop takes the events
    /// waiting in its inbox first, so that they share one transaction.
    pub(super) fn core_defer(&mut self, deferred: bool) {
        self.sync.deferred = deferred;
    }

    /// Let time pass for the core (placements waiting for a retry), and scan every folder
    /// whole when it is time to.
    pub(super) fn core_tick(&mut self) {
        self.core_drop_stalled();
        if self.sync.last_sweep.elapsed() >= STAGED_MAX_AGE / 10 {
            self.sync.last_sweep = Instant::now();
            let removed = self.sync.fetching.sweep(STAGED_MAX_AGE);
            if removed > 0 {
                tracing::info!(count = removed, "removed staged content nothing placed");
            }
        }
        let every = self.config.rescan_every;
        let since = self.sync.last_full_scan.elapsed();
        if !every.is_zero() && since >= every {
            // The safety net waits while content flows or a walk goes on: a whole walk then
            // competes with them for the disk (with 100,000 files moved in, one began a
            // minute after the start and walked for 64 s beside the placements), and what
            // arrives meanwhile is told to the index as it is placed. It waits at most
            // `RESCAN_POSTPONED` periods.
            let busy = self.last_busy.elapsed() < RESCAN_QUIET
                || self.tasks.values().any(|t| t.scanning.is_some());
            if !busy || since >= every.saturating_mul(RESCAN_POSTPONED) {
                self.sync.last_full_scan = Instant::now();
                self.core_rescan_all();
            }
        }
        let due = self
            .sync
            .next_timeout()
            .is_some_and(|t| t <= Instant::now());
        if due {
            self.core_run(Some(Instant::now()));
        }
    }

    /// Handle the queued inputs (and a timeout first, if `timeout`), up to
    /// [`INPUTS_PER_TRANSACTION`] in one transaction, carrying out the orders of those
    /// calls once it is committed.
    pub(super) fn core_run(&mut self, mut timeout: Option<Instant>) {
        loop {
            let sync = &mut self.sync;
            if timeout.is_none() && sync.inputs.is_empty() {
                return;
            }
            let now = Instant::now();
            let result = (|| -> Result<(), qsync_store::StoreError> {
                let mut tx = self.store.ledger()?;
                if let Some(at) = timeout.take() {
                    sync.core.handle_timeout(at, &mut tx)?;
                }
                for _ in 0..INPUTS_PER_TRANSACTION {
                    let Some(input) = sync.inputs.pop_front() else {
                        break;
                    };
                    let input = modes_as_recorded(input, &tx)?;
                    sync.core.handle(now, input, &mut tx)?;
                }
                tx.commit()
            })();
            timeout = None;
            if let Err(e) = result {
                tracing::error!(error = %e, "the ledger failed; the sync starts again from what it holds");
                sync.core = Core::with_key_seed(self.me, sync.key_seed);
                // The parts received stay on disk: the new fetches resume from them.
                sync.fetching.reset();
                sync.serving.reset();
                // The peers redial; both sides then greet each other afresh.
                self.peers.close_all();
                let again = sync.last_reset.is_some_and(|t| t.elapsed() < RESCAN_EVERY);
                sync.last_reset = Some(Instant::now());
                if again {
                    // Failing again at once (a full disk, say): stop for now rather than
                    // spin. The whole scan every `rescan_every` and the peers' next
                    // greetings bring back what is dropped here.
                    sync.inputs.clear();
                    return;
                }
                // What was placed or seen and not recorded is on disk and in the watcher's
                // index: the index is rebuilt from the ledger and the folders scanned, so
                // the new core hears of it.
                self.core_relearn();
                continue;
            }
            while let Some(effect) = self.sync.core.poll_effect() {
                self.core_effect(effect);
            }
        }
    }

    /// The core's order to get content: found staged already, put off when the disk has
    /// no room for it, or handed to the content exchange, which asks a holder for it.
    fn core_fetch(&mut self, want: Want) {
        let (from, task, path, hash) = (want.from, want.task, want.path.clone(), want.hash);
        let places = self.content_places(task);
        let room = |needed: u64| transfer::room_for(&places, needed);
        let answer = self.sync.fetching.want(want, room);
        if let Some(ok) = answer {
            self.sync.inputs.push_back(Input::Fetched {
                task,
                path,
                hash,
                from,
                ok,
            });
        }
        self.exchange_orders();
    }

    /// Send the exchange's requests and queue what it tells the core. A request that
    /// cannot leave (the device is no longer connected) is answered "not had" at once, so
    /// the next holder is asked.
    pub(super) fn exchange_orders(&mut self) {
        loop {
            let (sends, told) = self.sync.fetching.orders();
            self.sync.inputs.extend(told);
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
                if !self.core_send(to, request) {
                    self.sync.fetching.unavailable(to, key);
                }
            }
        }
    }

    /// Carry out the exchange's orders, then let the core hear how its fetches went
    /// (unless facts are deferred). Not from within the core's run: there the orders
    /// alone are carried out, and the run goes on with the inputs queued.
    pub(super) fn exchange_step(&mut self) {
        self.exchange_orders();
        if !self.sync.deferred && !self.sync.inputs.is_empty() {
            self.core_run(None);
        }
    }

    /// Send one of the core's messages to `to`, as a wire `Sync` message.
    /// Whether it was queued (the device is connected).
    fn core_send(&mut self, to: DeviceId, message: qsync_core::Message) -> bool {
        if let qsync_core::Message::Records { records, .. } = &message {
            self.sent += records.len() as u64;
        }
        let task = message.task();
        match message.to_wire() {
            Ok(body) => self.send(
                to,
                task,
                Message::Sync {
                    body: Bytes::from(body),
                },
            ),
            Err(e) => {
                tracing::error!(error = %e, "could not encode a sync message");
                false
            }
        }
    }

    fn core_effect(&mut self, effect: Effect) {
        tracing::debug!(?effect, "core order");
        match effect {
            Effect::Distrust { from, task, report } => {
                self.sync.distrust.report(from, task, &report);
            }
            Effect::Fetch {
                from,
                holders,
                task,
                path,
                hash,
                size,
                base,
            } => self.core_fetch(Want {
                from,
                holders,
                task,
                path,
                hash,
                size,
                base,
                kept: 0,
            }),
            Effect::Send { to, message } => {
                self.core_send(to, message);
            }
            Effect::Serve {
                to,
                task,
                path,
                hash,
                base,
                offset,
            } => self.core_serve(to, task, path, hash, (base, offset)),
            Effect::Place(placement) => {
                let Some(state) = self.tasks.get_mut(&placement.task) else {
                    return;
                };
                let sync = &mut self.sync;
                if sync.batch.is_empty() {
                    sync.batch_since = Instant::now();
                }
                let begun = sync.batch.begin(
                    &state.root,
                    &sync.fetching.staging,
                    &placement,
                    &mut state.index,
                    state.options.links_out,
                );
                match begun {
                    Ok(None) => {
                        if sync.batch.is_full() {
                            self.core_flush();
                        }
                    }
                    Ok(Some(outcome)) => self.core_placed(placement, Ok(outcome)),
                    Err(e) => self.core_placed(placement, Err(e)),
                }
            }
        }
    }

    /// Make the placements begun durable, and queue their outcomes for the core. Called
    /// when a batch is full, when the daemon is quiet for a moment, and when the oldest
    /// placement has waited [`MAX_BATCH_WAIT`].
    pub(super) fn core_flush(&mut self) {
        let placed = self
            .sync
            .batch
            .flush(&mut self.tasks, |state| &mut state.index);
        for (placement, outcome) in placed {
            self.core_placed(placement, outcome);
        }
    }

    /// Whether placements wait, and since when.
    pub(super) fn core_batch_since(&self) -> Option<Instant> {
        (!self.sync.batch.is_empty()).then_some(self.sync.batch_since)
    }

    /// A placement's outcome: events, a look at the disk when it was not what the core
    /// believed, and the core's input.
    fn core_placed(
        &mut self,
        placement: qsync_core::Placement,
        outcome: Result<PlaceOutcome, EngineError>,
    ) {
        let mut rescan = false;
        let outcome = outcome.unwrap_or_else(|e| {
            // Tried again later (waiting longer after each failure in a row: a full disk),
            // decided anew against what the disk holds (looked at again whole: the failure
            // may come from a change the watcher missed).
            tracing::warn!(task = %placement.task, path = %placement.path, error = %e, "could not place a received change; it is tried again later");
            rescan = true;
            PlaceOutcome::Failed
        });
        let links_out = self
            .tasks
            .get(&placement.task)
            .is_some_and(|s| s.options.links_out);
        let refused =
            guard::refusal(&placement, links_out).filter(|_| outcome == PlaceOutcome::Failed);
        if let Some(state) = self.tasks.get_mut(&placement.task) {
            state.not_synced.placed(placement.task, &placement, refused);
        }
        if let (PlaceOutcome::NoContent, State::File { hash, .. }) = (&outcome, &placement.target) {
            // Staged as edits that this placement cannot use (it moves a conflicting copy
            // aside, or the file cannot be written in place): asked for whole, or the core
            // would be told at once that the content is here, again and again.
            if self
                .sync
                .fetching
                .staging
                .edits_for(hash, placement.expect.hash())
                .is_some()
            {
                self.sync.fetching.staging.remove(hash);
                let key = (placement.task, placement.path.clone(), *hash);
                self.sync.fetching.ask_whole(key);
            }
        }
        if rescan {
            self.core_rescan(placement.task);
        } else if outcome != PlaceOutcome::Done && refused.is_none() {
            tracing::debug!(task = %placement.task, path = %placement.path, ?outcome, "a placement was not made");
            // The disk is not what the core believes. Usually the watcher has just not
            // reported it yet, but it may have missed it: look now at the paths this
            // placement involves, so its retry decides on the truth.
            let mut paths = vec![placement.path.clone()];
            paths.extend(placement.aside.iter().cloned());
            paths.extend(placement.parents.iter().cloned());
            let mut at = placement.path.parent();
            while let Some(parent) = at {
                at = parent.parent();
                paths.push(parent);
            }
            self.core_look_at(placement.task, paths);
        }
        if outcome == PlaceOutcome::Done {
            self.core_applied(&placement);
        }
        self.sync.inputs.push_back(Input::Placed {
            task: placement.task,
            path: placement.path,
            outcome,
        });
    }

    /// A placement was made: its staged content goes, its blob is owed (kept as the base
    /// of the patches of its next versions, see `keeper.rs`), and `qsync events` hears it.
    fn core_applied(&mut self, placement: &qsync_core::Placement) {
        if let State::File { hash, size, .. } = &placement.target {
            self.sync.fetching.staging.remove(hash);
            if let Some(state) = self.tasks.get(&placement.task) {
                let previous = match &placement.expect {
                    State::File { hash, .. } => Some(*hash),
                    _ => None,
                };
                let owed = Owed {
                    root: state.root.clone(),
                    path: placement.path.clone(),
                    hash: *hash,
                    size: *size,
                    edited: previous.is_some(),
                    replaces: previous,
                };
                self.owe_blob(owed);
            }
        }
        self.received += 1;
        self.last_busy = Instant::now();
        self.tell(DaemonEvent::Applied {
            task: placement.task,
            from: placement.from,
        });
        if let Some(kept_as) = placement.aside.clone() {
            self.tell(DaemonEvent::Conflict {
                task: placement.task,
                kept_as,
            });
        }
    }

    /// The paths the core knows of in `task`, as the watcher's entries (to compare the disk
    /// against at start). A store from before version vectors first gets its records.
    pub(super) fn core_known(&mut self, task: TaskId) -> Result<Vec<FileEntry>, EngineError> {
        let seeded = self.store.seed_records(task, self.me)?;
        if seeded > 0 {
            tracing::info!(%task, records = seeded, "gave the paths known before version vectors their first version");
        }
        let tx = self.store.ledger()?;
        let records = tx.records_after(&task, 0, usize::MAX)?;
        Ok(records
            .into_iter()
            .filter_map(|(r, _)| place::entry_for(&r.path, &r.state, r.mtime_ns))
            .collect())
    }

    /// The watcher's `events` for `task` (already in its index), queued as the core's facts.
    pub(super) fn core_queue_local(&mut self, task: TaskId, events: Vec<LocalEvent>) {
        let Some(state) = self.tasks.get(&task) else {
            return;
        };
        // A copy of each new file version is kept: the base of the patches that carry its
        // next versions to devices that have this one. Owed to the keeper thread, off the
        // path that announces the change (copying each file first made a folder of new
        // files wait for all of them to be copied before the first record left).
        let root = state.root.clone();
        if !events.is_empty() {
            // Likely asked for at once: the keeper waits (see `Engine::last_busy`).
            self.last_busy = Instant::now();
        }
        for event in &events {
            let (entry, previous) = match event {
                LocalEvent::Create(entry) => (entry, None),
                LocalEvent::Modify { entry, previous } => (entry, Some(*previous)),
                _ => continue,
            };
            if let (EntryKind::File, Some(hash)) = (entry.kind, entry.hash) {
                self.owe_blob(Owed {
                    root: root.clone(),
                    path: entry.path.clone(),
                    hash,
                    size: entry.size,
                    edited: previous.is_some(),
                    replaces: previous.flatten(),
                });
            }
        }
        let Some(state) = self.tasks.get(&task) else {
            return;
        };
        match crate::driver::observed(task, &state.root, &state.index, events) {
            Ok(inputs) => {
                for input in &inputs {
                    tracing::debug!(?input, "seen on disk");
                }
                let sync = &mut self.sync;
                sync.inputs.extend(inputs);
            }
            Err(e) => tracing::warn!(%task, error = %e, "could not look at a change"),
        }
    }

    /// Look at `paths` of `task` on disk now, as if the watcher had named them, and queue
    /// what differs from the index.
    fn core_look_at(&mut self, task: TaskId, paths: Vec<RelPath>) {
        // Only paths whose folders are real folders of the task: the watcher's look at a
        // path goes by name, and one under a link would be a file outside (its hash and
        // size would become a record sent to every peer).
        let root = self
            .tasks
            .get(&task)
            .and_then(|t| crate::driver::root::TaskRoot::open(&t.root).ok());
        let Some(root) = root else {
            return;
        };
        let inside = |path: &RelPath| match path.parent() {
            None => true,
            Some(parent) => !matches!(
                root.folder(Some(&parent)),
                Err(crate::driver::root::RootError::Escapes { .. })
            ),
        };
        let batch = WatchBatch::Changes {
            touched: paths.into_iter().filter(inside).collect(),
            renames: Vec::new(),
        };
        let found = self.core_observe(task, &batch);
        if found > 0 {
            tracing::info!(%task, changes = found, "a placement found changes the watcher had not reported");
        }
    }

    /// Fold a watcher batch (a real one or one made up to look again) into `task`'s index
    /// and queue the changes it shows as the core's facts; the folders it names (the whole
    /// folder, for a rescan) are walked on the task's thread, their changes queued as they
    /// come (see `walks.rs`), and the files whose content must be read are hashed on the
    /// hashing threads (see `hashing.rs`). Returns how many changes were queued now.
    pub(super) fn core_observe(&mut self, task: TaskId, batch: &WatchBatch) -> usize {
        let Some(state) = self.tasks.get_mut(&task) else {
            return 0;
        };
        match observe_deferred(&state.root, &mut state.index, batch) {
            Ok(Observed {
                events,
                to_hash,
                walks,
            }) => {
                self.hashers.queue(task, &state.root, to_hash);
                for plan in walks {
                    if plan.start().is_none() {
                        state
                            .scanning
                            .get_or_insert_with(super::walks::Scanning::new);
                    }
                    state.walker.queue(plan);
                }
                let count = events.len();
                self.core_queue_local(task, events);
                count
            }
            Err(e) => {
                tracing::warn!(%task, error = %e, "could not look at the folder");
                0
            }
        }
    }

    /// After a ledger failure: every task's index again from the ledger, then a whole scan
    /// (what is on disk and not recorded becomes the core's facts).
    fn core_relearn(&mut self) {
        let tasks: Vec<TaskId> = self.tasks.keys().copied().collect();
        for task in tasks {
            match self.core_known(task) {
                Ok(known) => {
                    if let Some(state) = self.tasks.get_mut(&task) {
                        state.index = Index::new(known);
                    }
                    self.sync.rescanned.remove(&task);
                    self.core_rescan(task);
                }
                Err(e) => tracing::error!(%task, error = %e, "could not read the ledger"),
            }
        }
    }

    /// Scan every task's folder whole and fold in what the watcher missed (a safety net,
    /// run every [`DaemonConfig::rescan_every`]).
    pub(super) fn core_rescan_all(&mut self) {
        // A task whose folder is being walked whole already is left to that walk.
        let tasks: Vec<TaskId> = self
            .tasks
            .iter()
            .filter(|(_, t)| t.scanning.is_none())
            .map(|(task, _)| *task)
            .collect();
        for task in tasks {
            let sync = &mut self.sync;
            sync.rescanned.remove(&task);
            self.core_rescan(task);
        }
        self.core_run(None);
    }

    /// Scan `task`'s folder whole and queue what differs from the index (throttled: see
    /// [`RESCAN_EVERY`]).
    fn core_rescan(&mut self, task: TaskId) {
        let sync = &mut self.sync;
        if sync
            .rescanned
            .get(&task)
            .is_some_and(|t| t.elapsed() < RESCAN_EVERY)
        {
            return;
        }
        sync.rescanned.insert(task, Instant::now());
        // Through the watcher's own rescan: `.qsyncignore` is read again first, so a path it
        // excludes now stops syncing rather than looking deleted.
        let rescan = WatchBatch::Rescan {
            reason: "a look at the whole folder".into(),
        };
        // What it finds is logged at its end (`core_walk_ended`).
        self.core_observe(task, &rescan);
    }

    /// How many of this device's records `device` (or every linked device) still lacks.
    pub(super) fn core_pending(&self, device: Option<DeviceId>) -> Result<u64, EngineError> {
        let mut pending = 0;
        for (task, state) in &self.tasks {
            for peer in &state.links {
                if device.is_none_or(|d| d == *peer) {
                    pending += self.store.pending_for(*task, *peer)?;
                }
            }
        }
        Ok(pending)
    }
}

/// An observation whose mode is the recorded mode as this device places it (masked by the
/// umask) is handed to the core with the recorded mode: no change was made here (see
/// `driver/guard.rs`). Costs a look at the record, in the transaction the core's own look
/// is made in.
fn modes_as_recorded(
    input: Input,
    ledger: &impl Ledger<Error = qsync_store::StoreError>,
) -> Result<Input, qsync_store::StoreError> {
    let Input::Observed {
        task,
        path,
        state,
        mtime_ns,
    } = input
    else {
        return Ok(input);
    };
    let state = match &state {
        State::File { .. } | State::Folder { .. } => match ledger.record(&task, &path)? {
            Some(record) => guard::as_recorded(state, &record.state),
            None => state,
        },
        _ => state,
    };
    Ok(Input::Observed {
        task,
        path,
        state,
        mtime_ns,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    /// The start undoes an edit in place that a crash cut short before it empties the
    /// staging folder, which holds the journal.
    #[test]
    fn a_start_undoes_a_cut_short_edit_then_empties_staging_but_for_parts() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("task");
        let state = dir.path().join("state");
        let staging = state.join("staging");
        let old = crate::driver::in_place::cut_short_for_test(&root, &staging);
        assert!(fs::read(root.join("big.bin")).unwrap() != old);
        // A content staged before the stop, and the part of one cut short.
        let hash = ContentHash::of(b"cut short");
        fs::write(staging.join("leftover"), b"staged").unwrap();
        fs::write(staging.join(format!(".partial-{}", hash.to_hex())), b"cut").unwrap();
        let sync = CoreSync::start(DeviceId::from_bytes([1; 32]), [2; 32], &state).unwrap();
        assert!(fs::read(root.join("big.bin")).unwrap() == old, "put back");
        assert!(!staging.join("leftover").exists(), "what a stop left goes");
        assert_eq!(
            sync.fetching.staging.partial_len(&hash),
            3,
            "a part stays, to resume"
        );
        let journal = staging.join(crate::driver::in_place::UNDO_JOURNAL);
        assert!(journal.is_file(), "the journal of edits in place is ready");
    }
}
