//! The sync driver: the thin driver of `qsync-core`, owned by the daemon's engine thread and
//! reused whole by the fuzzer and the in-process tests. Facts become the core's inputs
//! (connections, the core's messages, content that arrived, what the watcher saw, links),
//! each batch of inputs is handled in one ledger transaction committed before its orders
//! are carried out, and the orders become sends, served content and placements whose
//! outcomes go back in as inputs.
//!
//! [`SyncDriver`] owns the core, the folders it places into and the placements under way
//! (`placing.rs`: [`TaskFolder`]s, root, index, contents held), the content side
//! (`content.rs`: the content exchange's driver and the serving threads), the patches of
//! this device's edits (`inline.rs`) and what peers are distrusted for (`distrust.rs`).
//! What it does not own it reaches through [`Around`] (`around.rs`): the ledger's
//! transactions ([`Ledgers`]: SQLite in the daemon, `MemLedger` in tests), the connections
//! with peers and the blobs kept as bases of patches. What the daemon must do for it (look
//! at paths on disk, scan a folder, keep a blob, tell `qsync events`) comes out as
//! [`Report`]s.
//!
//! Content travels beside the core's messages: the core's `Fetch` order goes to the
//! content exchange (`crate::exchange`, sans-IO), which decides which holder to ask and
//! from which byte; its orders are carried out here (a `Request` sent, the core told,
//! a part file closed or removed). The peer's serving thread streams `Content` chunks, or
//! a `Delta` from the content this device has (or `Unavailable`); each chunk is taken
//! only if the exchange says so, and the content is staged under its hash, checked,
//! before the core hears `Fetched` (`content.rs`).
//!
//! If the ledger fails mid-call, the transaction rolls back, the core is replaced by a new
//! one and every connection is closed: the peers redial, and the exchange starts again from
//! what the ledger holds, as after a restart ([`Report::Relearn`]).

use std::collections::VecDeque;
use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
use qsync_core::{Core, Effect, Input, Ledger, PlaceOutcome, State};
use qsync_watch::LocalEvent;
use qsync_wire::Message;

use crate::control::{PeerDistrust, TransferInfo};
use crate::driver::guard;
use crate::driver::place::Staging;
use crate::exchange::Want;
use crate::EngineError;

mod around;
mod content;
#[cfg(test)]
mod daemon_sim;
mod distrust;
mod fetching;
mod folder;
mod held;
mod inline;
pub(crate) mod loopback;
mod not_synced;
mod parts;
mod placing;
mod reuse;
mod serving;
mod standing;

pub(crate) use around::{Around, Ledgers};
pub(crate) use folder::TaskFolder;

use content::Content;
use distrust::DistrustBook;
use placing::{Folders, Settled};

/// What the driver asks of the daemon, taken with [`SyncDriver::poll_report`].
#[derive(Debug)]
pub(crate) enum Report {
    /// A received change was placed.
    Applied(Applied),
    /// `device` acknowledged records of ours.
    Delivered(DeviceId),
    /// These paths of the task's folder are not what the core believed: look at them on
    /// disk now (the watcher may have missed them), and tell the driver what differs.
    LookAt(TaskId, Vec<RelPath>),
    /// A placement failed: the task's folder should be scanned whole.
    Rescan(TaskId),
    /// The ledger failed and the core started afresh: every folder's index again from the
    /// ledger, then a whole scan, so that the new core hears of what was not recorded.
    Relearn,
}

/// A received change that was placed.
#[derive(Debug)]
pub(crate) struct Applied {
    pub(crate) task: TaskId,
    /// The device it came from.
    pub(crate) from: DeviceId,
    pub(crate) path: RelPath,
    /// Its content and size, for a file.
    pub(crate) content: Option<(ContentHash, u64)>,
    /// The file's content it replaced, if it was a file.
    pub(crate) replaces: Option<ContentHash>,
    /// Where this device's conflicting version was moved, if it was.
    pub(crate) aside: Option<RelPath>,
    /// Whether it deleted the path.
    pub(crate) deleted: bool,
    /// The version of the file it deleted or replaced, if one was kept.
    pub(crate) kept: Option<Box<crate::driver::place::KeptVersion>>,
    /// The device that made the version it replaced (`Record::by`), if known.
    pub(crate) replaced_by: Option<DeviceId>,
}

/// The driver of the sync core (see the [module documentation](self)).
pub(crate) struct SyncDriver {
    core: Core,
    /// The secret the core's spare counter keys come from (see
    /// `qsync_core::rules::counter_keys`): derived from this device's private key, the
    /// same at every start.
    key_seed: [u8; 32],
    /// The folders of the tasks synced here, and the placements under way.
    folders: Folders,
    /// What peers sent that the core refused or doubted, counted for `status`.
    distrust: DistrustBook,
    /// The content exchanged with peers: fetched, served.
    content: Content,
    /// The patches of this device's edits, sent with their records (`inline.rs`).
    patches_out: inline::Outgoing,
    /// The devices connected now (no patch is made for an edit while none is).
    connected: std::collections::HashSet<DeviceId>,
    /// The tasks paused here and the receive-only ones (said to the core again after a
    /// reset: it remembers none).
    standing: standing::Standing,
    /// Inputs waiting to be handled (outcomes of orders carried out).
    inputs: VecDeque<Input>,
    /// What the daemon is asked to do.
    reports: VecDeque<Report>,
    /// When the ledger last failed (and the core was started afresh).
    last_reset: Option<Instant>,
    /// Facts are queued, not handled yet (see [`SyncDriver::defer`]).
    deferred: bool,
    /// Records sent and changes placed since start, for `status`.
    sent: u64,
    placed: u64,
}

/// How many records a message of the core carries (those of a fold included).
fn records_in(message: &qsync_core::Message) -> u64 {
    match message {
        qsync_core::Message::Records { records, .. }
        | qsync_core::Message::Unfolded { records, .. } => records.len() as u64,
        qsync_core::Message::Fold { fold, .. } => u64::from(fold.count),
        _ => 0,
    }
}

/// A ledger failing again within this time stops the driver for now rather than spin.
const FAILING_AGAIN: Duration = Duration::from_secs(5);

/// Queued inputs handled in one ledger transaction (their orders wait for its commit).
const INPUTS_PER_TRANSACTION: usize = 256;

/// Placements begun are made durable once the daemon has been quiet this long...
pub(crate) const BATCH_QUIET: Duration = Duration::from_millis(2);
/// ...or once the oldest has waited this long (or the batch is full).
pub(crate) const MAX_BATCH_WAIT: Duration = Duration::from_millis(250);

/// Which device, task, path and content a serve order is for.
type ServeKey = (DeviceId, TaskId, RelPath, ContentHash);

impl SyncDriver {
    /// The driver of device `me`, its content staged under `state_dir/staging` (emptied but
    /// for the parts of contents on their way in, which transfers resume from), once an
    /// edit in place that a crash cut short is undone (its journal is in the staging
    /// folder).
    pub(crate) fn start(
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
        staging.empty_but_parts()?;
        // Read once now, before any placement: received modes are masked by it.
        tracing::debug!(
            umask = format!("{:03o}", guard::umask()),
            "received modes are masked"
        );
        Ok(Self {
            core: Core::with_key_seed(me, key_seed),
            key_seed,
            folders: Folders::default(),
            distrust: DistrustBook::default(),
            content: Content::new(staging),
            patches_out: inline::Outgoing::default(),
            connected: Default::default(),
            standing: Default::default(),
            inputs: VecDeque::new(),
            reports: VecDeque::new(),
            last_reset: None,
            deferred: false,
            sent: 0,
            placed: 0,
        })
    }

    /// Call `wake` when content held here was staged off the engine thread: the daemon
    /// then ticks the driver (see `reuse.rs`).
    pub(crate) fn set_wake(&mut self, wake: reuse::Wake) {
        self.content.set_wake(wake);
    }

    /// Sync `task`'s folder.
    pub(crate) fn add_folder(&mut self, task: TaskId, folder: TaskFolder) {
        self.folders.insert(task, folder);
    }

    /// Stop syncing `task`'s folder.
    pub(crate) fn remove_folder(&mut self, task: &TaskId) -> Option<TaskFolder> {
        self.folders.remove(task)
    }

    pub(crate) fn folder(&self, task: &TaskId) -> Option<&TaskFolder> {
        self.folders.get(task)
    }

    pub(crate) fn folder_mut(&mut self, task: &TaskId) -> Option<&mut TaskFolder> {
        self.folders.get_mut(task)
    }

    pub(crate) fn folders(&self) -> impl Iterator<Item = (&TaskId, &TaskFolder)> {
        self.folders.iter()
    }

    /// Why a content of `task` did not fit on disk, if one did not in the last minute.
    pub(crate) fn no_room_lately(&self, task: &TaskId) -> Option<&str> {
        self.content.no_room_lately(task)
    }

    /// What the person of receive-only `task` changed and did not send (`Core::drift`).
    pub(crate) fn drift(&self, task: &TaskId) -> Vec<(RelPath, State)> {
        self.core.drift(task)
    }

    /// This device's id.
    pub(crate) fn me(&self) -> DeviceId {
        self.core.me()
    }

    /// Where fetched content is staged before it is placed.
    pub(crate) fn staging(&self) -> &Staging {
        self.content.staging()
    }

    /// What the daemon is asked to do next.
    pub(crate) fn poll_report(&mut self) -> Option<Report> {
        self.reports.pop_front()
    }

    /// When the core next wants time to pass (by [`Around::now`]).
    #[cfg(test)]
    pub(crate) fn core_timeout(&self) -> Option<Instant> {
        self.core.poll_timeout()
    }

    /// When the core or the exchange next wants time to pass.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        [self.core.poll_timeout(), self.content.next_timeout()]
            .into_iter()
            .flatten()
            .min()
    }

    /// When content last moved (a chunk received, a serve order queued, a placement).
    pub(crate) fn content_moved(&self) -> Instant {
        self.content.moved()
    }

    /// Whether no serve order is queued, under way, or waiting for a signature.
    pub(crate) fn serving_idle(&self) -> bool {
        self.content.serving_idle()
    }

    /// The transfers coming in now.
    pub(crate) fn transfers(&self) -> Vec<TransferInfo> {
        self.content.transfers()
    }

    /// The received records of `task` not carried out yet, and what each waits for.
    pub(crate) fn unsettled(&self, task: &TaskId) -> Vec<qsync_core::Unsettled> {
        self.core.unsettled(task)
    }

    /// Records sent and changes placed since start.
    pub(crate) fn counts(&self) -> (u64, u64) {
        (self.sent, self.placed)
    }

    /// What peers sent that the core refused or doubted.
    pub(crate) fn distrust(&self) -> Vec<PeerDistrust> {
        self.distrust.status()
    }

    /// Whether placements wait, and since when.
    pub(crate) fn batch_since(&self) -> Option<Instant> {
        self.folders.batch_since()
    }

    /// Whether queued inputs wait for [`SyncDriver::run`] (and are not deferred).
    pub(crate) fn wants_run(&self) -> bool {
        !self.deferred && !self.inputs.is_empty()
    }

    /// Hand the core one fact and carry out everything that follows (unless deferred).
    pub(crate) fn feed(&mut self, around: &mut impl Around, input: Input) {
        match &input {
            Input::Connected { peer } => _ = self.connected.insert(*peer),
            Input::Disconnected { peer } => _ = self.connected.remove(peer),
            _ => self.standing.note(&input),
        }
        self.inputs.push_back(input);
        if !self.deferred {
            self.run(around, None);
        }
    }

    /// While `deferred`, facts are queued and not handled: the daemon takes the events
    /// waiting in its inbox first, so that they share one transaction.
    pub(crate) fn defer(&mut self, deferred: bool) {
        self.deferred = deferred;
    }

    /// Whether facts are queued, not handled (see [`SyncDriver::defer`]).
    pub(crate) fn is_deferred(&self) -> bool {
        self.deferred
    }

    /// The watcher's `events` for `task` (already in the folder's index), queued as the
    /// core's facts.
    pub(crate) fn local(&mut self, task: TaskId, events: Vec<LocalEvent>) {
        let Some(folder) = self.folders.get(&task) else {
            return;
        };
        for event in &events {
            if let LocalEvent::Modify {
                entry,
                previous: Some(before),
            } = event
            {
                if let (qsync_base::EntryKind::File, Some(hash)) = (entry.kind, entry.hash) {
                    let new = (hash, entry.size);
                    self.patches_out
                        .edited(task, entry.path.clone(), new, *before);
                }
            }
        }
        match crate::driver::observed(task, &folder.root, &folder.index, events) {
            Ok(inputs) => {
                for input in &inputs {
                    tracing::debug!(?input, "seen on disk");
                }
                let rules = inputs.iter().find_map(folder::rules_changed);
                if rules.is_some() {
                    self.folders.new_round();
                }
                self.inputs.extend(inputs);
                self.inputs.extend(rules);
            }
            Err(e) => tracing::warn!(%task, error = %e, "could not look at a change"),
        }
    }

    /// Let time pass: transfers stalled and requests unanswered move on, serve orders
    /// waiting for a signature give up, old staged content goes, and the core's timers
    /// fire.
    pub(crate) fn tick(&mut self, around: &mut impl Around) {
        self.content.tick(around);
        self.content_step(around);
        let now = around.now();
        if self.core.poll_timeout().is_some_and(|t| t <= now) {
            self.run(around, Some(now));
        }
    }

    /// Handle the queued inputs (and a timeout first, if `timeout`), up to
    /// [`INPUTS_PER_TRANSACTION`] in one transaction, carrying out the orders of those
    /// calls once it is committed.
    pub(crate) fn run(&mut self, around: &mut impl Around, mut timeout: Option<Instant>) {
        if self.connected.is_empty() {
            // Nobody to send a patch to: an edit is served as a patch when asked for, later.
            self.patches_out.forget_seen();
        } else if self.patches_out.has_seen() {
            // Before the records of the edits go out (at the end of the transaction that
            // takes them in), their patches are made, to go with them.
            let folders = &self.folders;
            let root_of = |task: &TaskId| folders.get(task).map(|f| f.root.clone());
            self.patches_out.make(root_of, |hash| around.kept(hash));
        }
        loop {
            if timeout.is_none() && self.inputs.is_empty() {
                return;
            }
            let now = around.now();
            let (core, inputs) = (&mut self.core, &mut self.inputs);
            let at = timeout.take();
            let result = around.ledgers().transaction(|tx| {
                if let Some(at) = at {
                    core.handle_timeout(at, tx)?;
                }
                for _ in 0..INPUTS_PER_TRANSACTION {
                    let Some(input) = inputs.pop_front() else {
                        break;
                    };
                    let input = modes_as_recorded(input, tx)?;
                    core.handle(now, input, tx)?;
                }
                // Local changes go out together, once the batch is in (see
                // `Core::poll_timeout`).
                if core.poll_timeout().is_some_and(|t| t <= now) {
                    core.handle_timeout(now, tx)?;
                }
                Ok(())
            });
            if let Err(e) = result {
                tracing::error!(error = %e, "the ledger failed; the sync starts again from what it holds");
                self.reset(around);
                return;
            }
            self.folders.new_round();
            while let Some(effect) = self.core.poll_effect() {
                self.effect(around, effect);
            }
        }
    }

    /// After the ledger failed: a new core, the exchange and serving started again (the
    /// parts received stay on disk: the new fetches resume from them), every connection
    /// closed (the peers redial; both sides then greet each other afresh), and the daemon
    /// asked to relearn what is on disk (the inputs still queued go to the new core after
    /// it), unless the ledger failed a moment ago too (a full disk, say): the driver then
    /// drops its queued inputs and stops for now rather than spin, and the whole scan
    /// every `rescan_every` and the peers' next greetings bring back what is dropped.
    fn reset(&mut self, around: &mut impl Around) {
        self.core = Core::with_key_seed(self.core.me(), self.key_seed);
        self.content.reset();
        around.close_all();
        let again = self.last_reset.is_some_and(|t| t.elapsed() < FAILING_AGAIN);
        self.last_reset = Some(Instant::now());
        if again {
            self.inputs.clear();
        } else {
            self.reports.push_back(Report::Relearn);
        }
        // The new core hears of the paused and receive-only tasks before anything else.
        for input in self.standing.replay().into_iter().rev() {
            self.inputs.push_front(input);
        }
    }

    fn effect(&mut self, around: &mut impl Around, effect: Effect) {
        tracing::debug!(?effect, "core order");
        if let Some((task, path)) = self.folders.excluded(&effect) {
            // This device's rules exclude the path: nothing of it is fetched or placed.
            self.inputs.push_back(Input::Excluded { task, path });
            return;
        }
        match effect {
            Effect::Distrust { from, task, report } => self.distrust.report(from, task, &report),
            Effect::Fetch {
                from,
                holders,
                task,
                path,
                hash,
                size,
                base,
            } => self.content.fetch(
                around,
                &self.folders,
                Want {
                    from,
                    holders,
                    task,
                    path,
                    hash,
                    size,
                    base,
                    kept: 0,
                },
            ),
            Effect::Send { to, message } => _ = self.send(around, to, message),
            Effect::Serve {
                to,
                task,
                path,
                hash,
                base,
                offset,
                checks,
            } => {
                let (key, from) = ((task, path, hash), (base, offset, checks));
                self.content.serve(around, &self.folders, to, key, from);
            }
            Effect::Unavailable {
                to,
                task,
                path,
                hash,
            } => self.content.refuse(around, to, (task, path, hash)),
            Effect::Place(placement) => self.place(placement),
        }
        self.content_told();
    }

    /// Send one of the core's messages to `to`, as a wire `Sync` message.
    /// Whether it was queued (the device is connected).
    fn send(
        &mut self,
        around: &mut impl Around,
        to: DeviceId,
        message: qsync_core::Message,
    ) -> bool {
        self.sent += records_in(&message);
        let task = message.task();
        let Some(body) = encoded(&message) else {
            return false;
        };
        let wire = match &message {
            // This device's edits go with their patches, when made.
            qsync_core::Message::Records { records, .. } => {
                self.patches_out.message(task, records, body)
            }
            _ => Message::Sync { body },
        };
        around.send(to, task, wire)
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
            other => {
                let from = (device, task);
                self.content.received(around, &self.folders, from, other);
                self.content_step(around);
            }
        }
    }

    /// A message of `device`'s core about `task`, for ours, with the patches that came
    /// with its records. The body leaves the task out: it is about the task its frame
    /// named.
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
            self.content.patches_came(task, records, patches);
        }
        tracing::debug!(%device, ?message, "core message");
        if matches!(message, qsync_core::Message::Ack { .. }) {
            self.reports.push_back(Report::Delivered(device));
        }
        let from = device;
        self.feed(around, Input::Received { from, message });
    }

    /// A connection is gone: its transfers move to another holder, or end (asked again
    /// after reconnecting, from the bytes received), and the core hears of it.
    pub(crate) fn disconnected(&mut self, around: &mut impl Around, device: DeviceId) {
        self.content.disconnected(around, device);
        self.content_told();
        self.feed(around, Input::Disconnected { peer: device });
    }

    /// Take what the content side has for the core and the daemon.
    fn content_told(&mut self) {
        let (told, reports) = self.content.take_told();
        self.inputs.extend(told);
        self.reports.extend(reports);
    }

    /// Take what the content side has for the core and the daemon, then let the core hear
    /// it (unless facts are deferred). Not from within the core's run: there the content's
    /// orders alone are carried out, and the run goes on with the inputs queued.
    fn content_step(&mut self, around: &mut impl Around) {
        self.content_told();
        if self.wants_run() {
            self.run(around, None);
        }
    }

    // The core's placements: begun by the folders' batch, their outcomes carried out here.
    /// Place `placement` at once, outside the core and the batch: the fuzzer's way to
    /// check that the driver alone stays inside the folder, whatever it is handed.
    pub(crate) fn place_now(
        &mut self,
        placement: &qsync_core::Placement,
    ) -> Result<PlaceOutcome, EngineError> {
        let Some(folder) = self.folders.get_mut(&placement.task) else {
            return Ok(PlaceOutcome::Failed);
        };
        let staging = self.content.staging();
        crate::driver::place::place(&folder.root, staging, placement, &mut folder.index)
    }

    /// The core's order to place a change: begun now, made durable with the batch.
    pub(super) fn place(&mut self, placement: qsync_core::Placement) {
        let settled = self.folders.place(self.content.staging(), placement);
        self.settled(settled);
    }

    /// Make the placements begun durable, and queue their outcomes for the core. Called
    /// when a batch is full, when the daemon is quiet for a moment, and when the oldest
    /// placement has waited [`MAX_BATCH_WAIT`].
    pub(crate) fn flush(&mut self) {
        let settled = self.folders.flush(self.content.staging());
        self.settled(settled);
    }

    /// Carry out what follows placements' outcomes: a placement made frees its staged
    /// content, and the daemon hears of it (it keeps the content's blob as the base of
    /// the patches of its next versions, see `keeper.rs`, and tells `qsync events`).
    fn settled(&mut self, settled: Vec<Settled>) {
        for Settled {
            input,
            report,
            ask_whole,
        } in settled
        {
            if let Some(key) = ask_whole {
                self.content.ask_whole(key);
            }
            if let Some(Report::Applied(applied)) = &report {
                self.content.placed(applied.content.map(|(hash, _)| hash));
                self.placed += 1;
            }
            self.reports.extend(report);
            let rules = folder::rules_changed(&input);
            if rules.is_some() {
                self.folders.new_round();
            }
            self.inputs.push_back(input);
            self.inputs.extend(rules);
        }
    }
}

/// One of the core's messages as the body of a wire `Sync` message (`None`, logged, if it
/// does not encode).
fn encoded(message: &qsync_core::Message) -> Option<Bytes> {
    match message.to_wire() {
        Ok(body) => Some(Bytes::from(body)),
        Err(e) => {
            tracing::error!(error = %e, "could not encode a sync message");
            None
        }
    }
}

/// An observation whose mode is the recorded mode as this device places it (masked by the
/// umask) is handed to the core with the recorded mode: no change was made here (see
/// `driver/guard.rs`). Costs a look at the record, in the transaction the core's own look
/// is made in.
fn modes_as_recorded<L: Ledger>(input: Input, ledger: &L) -> Result<Input, L::Error> {
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
        let sync = SyncDriver::start(DeviceId::from_bytes([1; 32]), [2; 32], &state).unwrap();
        assert!(fs::read(root.join("big.bin")).unwrap() == old, "put back");
        assert!(!staging.join("leftover").exists(), "what a stop left goes");
        assert_eq!(
            sync.staging().partial_len(&hash),
            3,
            "a part stays, to resume"
        );
        let journal = staging.join(crate::driver::in_place::UNDO_JOURNAL);
        assert!(journal.is_file(), "the journal of edits in place is ready");
    }
}
