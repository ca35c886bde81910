//! The daemon: one engine thread owns the parts and routes every event to them, in order:
//! the store, the sync driver (`crate::sync`: the core, the folders it places into, the
//! content exchange, serving), the peers' connections (`peers.rs`), the tasks' watchers,
//! walks and hashing threads (`tasks.rs`, `walks.rs`, `hashing.rs`), the link requests
//! (`links.rs`) and the keeping of blobs (`keeping.rs`). Tokio tasks carry the network;
//! the control socket's commands are answered in `commands.rs` (those that only read, in
//! `views.rs`).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use qsync_base::{ContentHash, DeviceId, FileEntry, TaskId};
use qsync_core::Ledger;
use qsync_discovery::DiscoveryEvent;
use qsync_store::Store;
use qsync_watch::WatchBatch;
use qsync_wire::Message;
use tokio::sync::oneshot;

use crate::control::{DaemonEvent, Reply, Request};
use crate::net::{self, NetEvent, PeerConn};
use crate::sync::{Around, SyncDriver};
use crate::EngineError;

mod changes;
mod commands;
mod conflicts;
mod folders;
mod hashing;
pub mod identity;
mod keeping;
mod links;
mod parts;
mod peers;
mod progress;
mod start;
mod tasks;
mod telling;
mod terms;
mod versions;
mod views;
pub mod walks;

pub use start::{run, Daemon, DaemonHandle};

/// How a daemon runs.
#[derive(Debug, Clone)]
pub struct DaemonConfig {
    /// Where its state lives (database, blobs, device id, control socket).
    pub state_dir: PathBuf,
    /// Where it listens for other devices.
    pub listen: SocketAddr,
    /// Its human name.
    pub name: String,
    /// Announce and browse with mDNS.
    pub mdns: bool,
    /// Where back-to-front questions are written.
    pub btf_dir: PathBuf,
    /// How long a question to the person may wait.
    pub answer_timeout: Duration,
    /// Scan every task's folder whole this often (zero: never), a safety net
    /// for what the watcher misses.
    pub rescan_every: Duration,
    /// The share of the synced data (percent) the bases of patches may take in the state
    /// folder, at least 128 MiB; 0 keeps none (see `keeper.rs`).
    pub base_share: u8,
}

/// Everything the engine thread reacts to.
#[derive(Debug)]
pub enum Event {
    /// From the network.
    Net(NetEvent),
    /// A watcher saw changes in a task's folder.
    Watch(TaskId, WatchBatch),
    /// A command from the control socket.
    Control(Request),
    /// A pairing this device asked for finished.
    Paired(TaskId, Result<net::Paired, String>, oneshot::Sender<Reply>),
    /// Discovery news.
    Discovery(DiscoveryEvent),
    /// A chunk of what a walk of a task's folder found (see `walks.rs`).
    Walked(TaskId, Vec<qsync_watch::Walked>),
    /// A walk of a task's folder ended.
    WalkEnded(TaskId, walks::Ended),
    /// Hashing threads have files hashed, waiting to be folded in (see `hashing.rs`).
    Hashed,
    /// Content held here was staged, or found not to be what a fetch wants, off the
    /// engine thread (`sync/reuse.rs`): taken at the driver's next tick.
    Reused,
    /// Stop the daemon (see `DaemonHandle::stop`).
    Stop,
}

/// At most this many waiting events are taken before their facts are handled.
const EVENTS_AT_ONCE: usize = 256;

/// The daemon's engine thread: the parts it routes events between.
struct Engine {
    me: DeviceId,
    config: DaemonConfig,
    store: Store,
    /// The tasks: links, watchers, walks, hashing.
    tasks: tasks::Tasks,
    /// The linked devices' connections, addresses, dials and probes.
    peers: peers::Peers,
    /// The blobs of new versions owed to the keeper's thread.
    keeping: keeping::Keeping,
    events: Sender<Event>,
    /// What happens, told to `qsync events` and the HTTP API's event stream.
    telling: telling::Telling,
    /// The sync core, its driver, and the folders it places into.
    sync: SyncDriver,
    /// Link requests from other devices, waiting on the person or the pairing.
    links: links::Links,
    /// Versions kept by placements, to record, and when they were last thinned (see
    /// `versions.rs`).
    versions: versions::Waiting,
    /// A stop was asked for: the loop ends after the events taken with it.
    stopping: bool,
}

/// What the sync driver reaches through the engine: the store (its ledger and blobs) and
/// the connections.
struct Surroundings<'a> {
    store: &'a mut Store,
    peers: &'a mut peers::Peers,
}

impl Around for Surroundings<'_> {
    type Ledgers = Store;

    fn ledgers(&mut self) -> &mut Store {
        self.store
    }

    fn conn(&self, device: &DeviceId) -> Option<&PeerConn> {
        self.peers.conn(device)
    }

    fn close_all(&mut self) {
        self.peers.close_all();
    }

    fn kept(&self, hash: &ContentHash) -> Option<PathBuf> {
        let blobs = self.store.blobs();
        blobs.contains(hash).then(|| blobs.path(hash))
    }
}

impl Engine {
    fn run(&mut self, inbox: &Receiver<Event>) {
        let mut next_tick = Instant::now();
        while !self.stopping {
            match inbox.recv_timeout(self.wait(next_tick)) {
                Ok(event) => self.events_waiting(event, inbox),
                Err(RecvTimeoutError::Timeout) => {
                    if self.sync.batch_since().is_some() {
                        self.sync_with(|sync, around| {
                            sync.flush();
                            sync.run(around, None);
                        });
                    }
                    // Quiet for a moment: the blobs of placed files are kept.
                    let moved = self.sync.content_moved();
                    if self.keeping.quiet(moved, !self.sync.serving_idle()) {
                        self.keeping.keep_owed(&self.sync);
                    }
                    if Instant::now() >= next_tick {
                        self.tick();
                        next_tick = Instant::now() + Duration::from_secs(1);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if self.stopping {
                break;
            }
            if !self.links.is_empty() {
                self.poll_links();
            }
            self.sync_with(|sync, around| sync.tick(around));
            self.keep_versions();
            if self.keeping.too_many() {
                self.keeping.keep_owed(&self.sync);
            }
            let busy = self.keeping.last_busy(self.sync.content_moved());
            if self.with_found(|tasks, found| tasks.scan_when_due(found, busy)) {
                self.sync_with(|sync, around| sync.run(around, None));
            }
        }
        self.finish();
    }

    /// The end of a stop: what was placed is made durable and recorded, the connections
    /// closed (a placement under way stays a part file in the staging folder, taken up
    /// again at the next start; blobs not kept yet as bases of patches are not: edits of
    /// those files travel by the signature exchange).
    fn finish(&mut self) {
        self.sync_with(|sync, around| {
            sync.flush();
            sync.run(around, None);
        });
        self.keep_versions();
        self.peers.close_all();
    }

    /// Record the versions placements kept, and thin them when due (every minute, and
    /// while much is kept: see `versions.rs`), busy or not.
    fn keep_versions(&mut self) {
        let mut waiting = std::mem::replace(&mut self.versions, versions::Waiting::new());
        self.shelving().record(&mut waiting);
        if waiting.thin_due() {
            self.shelving().thin();
        }
        self.versions = waiting;
    }

    /// How long the engine may wait for an event: until its next tick, the driver's next
    /// timeout, the keeping of blobs, placements made durable, or a look at the answers.
    fn wait(&self, next_tick: Instant) -> Duration {
        let now = Instant::now();
        let mut wait = next_tick.saturating_duration_since(now);
        let moved = self.sync.content_moved();
        if let Some(left) = self.keeping.wait(moved, !self.sync.serving_idle()) {
            wait = wait.min(left);
        }
        if let Some(at) = self.sync.next_timeout() {
            wait = wait.min(at.saturating_duration_since(now));
        }
        if self.sync.batch_since().is_some() {
            wait = wait.min(crate::sync::BATCH_QUIET);
        }
        if self.links.asking() {
            wait = wait.min(Duration::from_millis(100));
        }
        wait
    }

    /// `first` and the events already waiting after it are taken together: the facts they
    /// bring are handled in one transaction.
    fn events_waiting(&mut self, first: Event, inbox: &Receiver<Event>) {
        self.sync.defer(true);
        self.handle(first);
        for _ in 1..EVENTS_AT_ONCE {
            match inbox.try_recv() {
                Ok(event) => self.handle(event),
                Err(_) => break,
            }
        }
        self.sync.defer(false);
        self.sync_with(|sync, around| sync.run(around, None));
        // Placements waiting too long are made durable even while busy.
        if self
            .sync
            .batch_since()
            .is_some_and(|since| since.elapsed() >= crate::sync::MAX_BATCH_WAIT)
        {
            self.sync_with(|sync, around| {
                sync.flush();
                sync.run(around, None);
            });
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Stop => self.stopping = true,
            Event::Net(e) => self.net_event(e),
            Event::Watch(task, batch) => {
                self.with_found(|tasks, found| tasks.observe(found, task, &batch));
                self.sync_with(|sync, around| sync.run(around, None));
            }
            Event::Walked(task, chunk) => {
                self.with_found(|tasks, found| tasks.walked(found, task, chunk));
            }
            Event::WalkEnded(task, ended) => {
                self.with_found(|tasks, found| tasks.walk_ended(found, task, ended));
            }
            Event::Reused => {} // the driver's tick after every event takes the answers
            Event::Hashed => {
                if self.with_found(|tasks, found| tasks.hashed(found)) {
                    // The rest at the engine's next turn, after what waits in its inbox.
                    let _ = self.events.send(Event::Hashed);
                }
            }
            Event::Control(Request::Command(command, reply)) => {
                let answer = self.control(command, reply);
                if let Some((answer, reply)) = answer {
                    let _ = reply.send(answer);
                }
            }
            Event::Control(Request::Link {
                task,
                address,
                expect,
                progress,
                reply,
            }) => self.start_link(task, address, expect, progress, reply),
            Event::Paired(task, result, reply) => {
                let answer = match result {
                    Ok(paired) => match self
                        .change(|c| c.linked(task, paired.device, &paired.name, paired.addr))
                    {
                        Ok(()) => {
                            self.feed(qsync_core::Input::Link {
                                task,
                                peer: paired.device,
                            });
                            self.peers.dial(paired.device);
                            // What the peer lacks: the setup copy the CLI follows.
                            let entries = self.overview().pending(Some(paired.device)).unwrap_or(0);
                            tracing::info!(device = %paired.device, %task, "linked");
                            Reply::Linked {
                                device: paired.device,
                                name: paired.name.clone(),
                                entries: usize::try_from(entries).unwrap_or(usize::MAX),
                            }
                        }
                        Err(e) => Reply::error(e),
                    },
                    Err(e) => Reply::error(e),
                };
                let _ = reply.send(answer);
            }
            Event::Discovery(DiscoveryEvent::Found(peer)) => {
                self.peers.found(peer.device, &peer.name, &peer.addresses);
            }
            Event::Discovery(DiscoveryEvent::Lost(device)) => self.peers.lost(device),
        }
    }

    fn tick(&mut self) {
        for device in self.peers.silent() {
            // Gone: stop sending into a connection nobody reads; what was in flight stays
            // pending and goes again when the device is back.
            tracing::info!(%device, "left (no answer to a ping); its updates wait until it is back");
            self.telling.connection(&self.store, device, false);
            let _ = self.store.set_connected(device, false, None);
            self.disconnected(device);
        }
        self.peers.dial_linked();
        let sync = &self.sync;
        self.telling.second(|| sync.transfers());
    }

    fn net_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Connected {
                device,
                conn,
                addr,
                dialled,
            } => {
                if !self.peers.connected_to(device, conn, addr, dialled) {
                    return;
                }
                tracing::info!(%device, %addr, "connected");
                self.telling.connection(&self.store, device, true);
                let proven = dialled.then(|| addr.to_string());
                let _ = self.store.set_connected(device, true, proven.as_deref());
                // A replaced connection: the core starts the exchange afresh.
                self.disconnected(device);
                self.feed(qsync_core::Input::Connected { peer: device });
            }
            NetEvent::Disconnected { device, conn } => {
                if self.peers.is_current(&device, conn) {
                    tracing::info!(%device, "disconnected");
                    self.peers.close(device);
                    self.telling.connection(&self.store, device, false);
                    let _ = self.store.set_connected(device, false, None);
                    self.disconnected(device);
                }
            }
            NetEvent::Received {
                device,
                conn,
                task,
                message,
                credit: _credit,
            } => {
                // From a connection that was replaced (or given up on): dropped, so one
                // device feeds the engine through one connection only.
                if self.peers.is_current(&device, conn) {
                    self.received(device, task, message);
                }
            }
            NetEvent::LinkRequest { request, reply } => self.link_requested(request, reply),
            NetEvent::LinkProven { id, done } => self.link_proven(id, done),
            NetEvent::LinkFailed { id, reason } => self.links.failed(id, &reason),
        }
    }

    fn received(&mut self, device: DeviceId, task: TaskId, message: Message) {
        // The session's own messages (greetings, probes) are the peers' part; what is not
        // from a current connection is dropped there too.
        let Some(message) = self.peers.received(device, task, message) else {
            return;
        };
        if !self.tasks.linked(&task, &device) {
            tracing::warn!(%device, %task, "rejected a message about a task this device is not linked to");
            return;
        }
        if let Message::Unlink = message {
            if let Err(e) = self.change(|c| c.unlink(task, device)) {
                tracing::warn!(%device, %task, "could not record that the device unlinked: {e}");
            }
            return;
        }
        self.sync_with(|sync, around| sync.received(around, device, task, message));
    }

    /// Publish `event` for the front ends.
    fn tell(&self, event: DaemonEvent) {
        self.telling.tell(event);
    }
}

/// The paths the core knows of in `task`, as the watcher's entries (to compare the disk
/// against at start). A store from before version vectors first gets its records.
fn known(store: &mut Store, me: DeviceId, task: TaskId) -> Result<Vec<FileEntry>, EngineError> {
    let seeded = store.seed_records(task, me)?;
    if seeded > 0 {
        tracing::info!(%task, records = seeded, "gave the paths known before version vectors their first version");
    }
    let tx = store.ledger()?;
    let records = tx.records_after(&task, 0, usize::MAX)?;
    Ok(records
        .into_iter()
        .filter_map(|(r, _)| crate::driver::place::entry_for(&r.path, &r.state, r.mtime_ns))
        .collect())
}
