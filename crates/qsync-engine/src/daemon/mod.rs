//! The daemon: one engine thread owns the state (store, the sync core and its driver, task
//! indexes) and handles events in order; tokio tasks carry the network, threads watch the
//! folders, walk them (`walks.rs`) and hash the files they report (`hashing.rs`). The sync
//! itself is `sync.rs` (the driver of `qsync-core`); this module wires the network,
//! discovery, links, watchers and the control socket to it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qsync_base::{ContentHash, DeviceId, EntryKind, FileEntry, TaskId};
use qsync_discovery::{Config as DiscoveryConfig, Discovery, DiscoveryEvent};
use qsync_store::{Store, TaskOptions};
use qsync_watch::{Filter, Index, TaskWatcher, WatchBatch};
use qsync_wire::Message;
use tokio::sync::oneshot;

use crate::control::{control_socket, DaemonEvent, Reply, Request};
use crate::keeper::{Keeper, Owed};
use crate::net::{self, Linked, NetCtx, NetEvent, Outgoing};
use crate::{btf, EngineError};

mod commands;
mod distrust;
mod hashing;
mod held;
pub mod identity;
mod links;
mod not_synced;
mod peers;
mod sync;
pub mod walks;

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
}

struct TaskState {
    root: PathBuf,
    index: Index,
    /// The contents the task has held: the bases a peer of it may ask a patch from.
    held: held::Held,
    /// What its person chose for it here (links out of the folder allowed, say).
    options: TaskOptions,
    links: HashSet<DeviceId>,
    /// Paths found by the last whole walk whose names QSync cannot carry (logged; counted
    /// in `status`).
    unsupported: usize,
    /// Received changes the folder does not take (links out of it), for `status`.
    not_synced: not_synced::NotSynced,
    /// A walk of the whole folder under way.
    scanning: Option<walks::Scanning>,
    /// `task add` replies waiting for the first walk's end.
    added: Vec<(Reply, oneshot::Sender<Reply>)>,
    walker: walks::Walker,
    _watcher: Option<TaskWatcher>,
}

struct Conn {
    id: u64,
    tx: Outgoing,
    /// Frames sent before anything queued on `tx`.
    urgent: Outgoing,
    /// Content bytes queued on `tx` (see `net::MAX_QUEUED_CONTENT`).
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

/// At most this many waiting events are taken before their facts are handled.
const EVENTS_AT_ONCE: usize = 256;

/// Received files' blobs are kept once nothing has been received for this long...
const KEEP_AFTER_QUIET: Duration = Duration::from_millis(500);
/// ...or once this many are owed...
const MAX_OWED: usize = 10_000;
/// ...or once the first of them has been owed this long.
const KEEP_AT_MOST_AFTER: Duration = Duration::from_secs(30);

struct Engine {
    me: DeviceId,
    config: DaemonConfig,
    store: Store,
    tasks: HashMap<TaskId, TaskState>,
    /// The linked devices' connections, addresses, dials and probes.
    peers: peers::Peers,
    /// Placed files whose blobs (the bases of later patches) are still to be kept, and the
    /// thread that keeps them.
    owed: Vec<Owed>,
    keeper: Keeper,
    /// When content last moved (a chunk received, a file placed, a serve order queued) or
    /// a local change was seen: the keeper copies blobs only once it has been quiet a
    /// moment, so that its reading, writing and `syncfs` do not slow the transfer (the
    /// copy of a just-saved 100 MiB file slowed the patch of it by half).
    last_busy: Instant,
    /// When the oldest of [`Engine::owed`] was owed.
    owed_since: Option<Instant>,
    events: Sender<Event>,
    /// Records sent and changes placed since start, for `status`.
    sent: u64,
    received: u64,
    /// What happens, for `qsync events` (sending fails only when nobody listens).
    notify: tokio::sync::broadcast::Sender<DaemonEvent>,
    /// The sync core and what its driver keeps.
    sync: sync::CoreSync,
    /// The threads that read and hash the files of the tasks' folders.
    hashers: hashing::Hashers,
    /// Link requests from other devices, waiting on the person or the pairing.
    links: links::Links,
}

/// Run a daemon until the process ends.
pub fn run(config: DaemonConfig) -> Result<(), EngineError> {
    let loaded = identity::load(&config.state_dir)?;
    let me = loaded.identity.device();
    let loaded_private = loaded.identity.private_bytes();
    let store = Store::open(&config.state_dir)?;
    if loaded.upgraded {
        let text = format!(
            "this state folder was made by an older QSync: this device's id is now its key ({me}), and the links made before were dropped; link your devices again (tasks and files are kept)"
        );
        tracing::warn!("{text}");
        println!("{text}");
    }
    let keeper = Keeper::start(store.blobs().clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| EngineError::io("start the network runtime for", &config.state_dir, e))?;
    let (events, inbox) = channel::<Event>();
    let linked: Linked = Arc::new(Mutex::new(HashSet::new()));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.listen))
        .map_err(|e| EngineError::Listen(config.listen, e))?;
    let port = listener
        .local_addr()
        .map_err(|e| EngineError::Listen(config.listen, e))?
        .port();
    let net = net_context(&config, loaded.identity, port, &linked, &events);
    // Questions of an earlier run: nobody waits for their answers now.
    btf::clear(&config.btf_dir);
    runtime.spawn(net::listen(listener, net.clone()));
    let (notify, _) = tokio::sync::broadcast::channel(1024);
    crate::control::serve(
        &runtime,
        control_socket(&config.state_dir),
        {
            let events = events.clone();
            move |request| events.send(Event::Control(request)).is_ok()
        },
        notify.clone(),
    )?;

    let _discovery = if config.mdns {
        Some(start_discovery(&config, me, port, &linked, &events)?)
    } else {
        None
    };

    let sync = sync::CoreSync::start(me, counter_key_seed(&loaded_private), &config.state_dir)?;
    let hashers = hashing::Hashers::start(&events, &config.state_dir)?;
    let links = links::Links::new(config.btf_dir.clone(), config.answer_timeout);
    let mut engine = Engine {
        me,
        config,
        store,
        tasks: HashMap::new(),
        peers: peers::Peers::new(me, linked, net, runtime.handle().clone()),
        owed: Vec::new(),
        keeper,
        last_busy: Instant::now(),
        owed_since: None,
        events,
        sent: 0,
        received: 0,
        notify,
        sync,
        hashers,
        links,
    };
    engine.load()?;
    tracing::info!(device = %me, port, "qsync daemon ready");
    println!("qsync daemon {me} listening on port {port}");
    let _ = std::io::stdout().flush();
    engine.run(inbox);
    Ok(())
}

/// The seed of the core's spare counter keys, which must be unknown to peers until used:
/// derived from the private key, never from anything a peer sees.
fn counter_key_seed(private: &[u8]) -> [u8; 32] {
    let mut seed_input = b"qsync counter key seed".to_vec();
    seed_input.extend_from_slice(private);
    *ContentHash::of(&seed_input).as_bytes()
}

/// What the network tasks share: this device's identity and port, the linked devices,
/// where they report, and the limits they keep together.
fn net_context(
    config: &DaemonConfig,
    identity: qsync_wire::Identity,
    port: u16,
    linked: &Linked,
    events: &Sender<Event>,
) -> NetCtx {
    NetCtx {
        identity: Arc::new(identity),
        name: config.name.clone(),
        port,
        linked: linked.clone(),
        events: {
            let events = events.clone();
            Arc::new(move |event| events.send(Event::Net(event)).is_ok())
        },
        next_conn: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        // Two questions may come one after the other (code and folder, then whether to
        // send the folder's files), each with its own time.
        pair_timeout: config.answer_timeout * 2 + Duration::from_secs(5),
        wire: Arc::new(net::WireCounters::default()),
        inbox_budget: Arc::new(tokio::sync::Semaphore::new(net::INBOX_BUDGET_KIB)),
        strangers: Arc::new(net::Strangers::default()),
        link_requests: Arc::new(tokio::sync::Semaphore::new(net::MAX_LINK_REQUESTS)),
        link_requests_by_host: Arc::new(Mutex::new(HashMap::new())),
        admission: Arc::new(Mutex::new(net::Admission::default())),
    }
}

/// Announce this device and browse for others over mDNS; what it finds comes to the engine
/// thread as `Event::Discovery`. Discovery keeps linked devices over others when a flood
/// fills its table.
fn start_discovery(
    config: &DaemonConfig,
    me: DeviceId,
    port: u16,
    linked: &Linked,
    events: &Sender<Event>,
) -> Result<Discovery, EngineError> {
    let mut discovery_config = DiscoveryConfig::new(me, config.name.clone(), port);
    discovery_config.linked = linked.clone();
    let (discovery, found) = Discovery::start(discovery_config)?;
    let forward = events.clone();
    std::thread::Builder::new()
        .name("qsync-discovery-events".into())
        .spawn(move || {
            for event in found {
                if forward.send(Event::Discovery(event)).is_err() {
                    break;
                }
            }
        })
        .map_err(|e| EngineError::io("start discovery's thread for", &config.state_dir, e))?;
    Ok(discovery)
}

impl Engine {
    fn load(&mut self) -> Result<(), EngineError> {
        for device in self.store.devices()? {
            let addr = device.last_address.as_deref().and_then(|a| a.parse().ok());
            self.peers.link(device.id, addr);
            self.store.set_connected(device.id, false, None)?;
        }
        for task in self.store.tasks()? {
            self.start_task(task.id, task.root)?;
        }
        Ok(())
    }

    /// Start watching a task and fold in what changed while the daemon was not running.
    fn start_task(&mut self, task: TaskId, root: PathBuf) -> Result<(), EngineError> {
        fs::create_dir_all(&root).map_err(|e| EngineError::io("create", &root, e))?;
        // Transfers cut short by a crash leave only temporary files: remove them.
        let stale = crate::driver::root::TaskRoot::open(&root)
            .map(|r| r.remove_stale(crate::driver::place::PART_PREFIX))
            .unwrap_or(0);
        if stale > 0 {
            tracing::info!(%task, count = stale, "removed unfinished transfers");
        }
        let known: Vec<FileEntry> = self.core_known(task)?;
        let held = held::Held::new(known.iter().filter_map(|e| e.hash));
        let mut index = Index::new(known);
        // Paths `.qsyncignore` excludes now (a pattern added while the daemon was stopped)
        // stop syncing; the scan below must not take their absence for deletions.
        let filter = Filter::for_root(&root)?;
        let ignored = index.forget_where(|path, is_folder| !filter.includes(path, is_folder));
        if !ignored.is_empty() {
            tracing::info!(%task, count = ignored.len(), "paths now ignored stop syncing; nothing is deleted anywhere");
        }
        let (watcher, batches) = TaskWatcher::start(&root, Duration::from_millis(200))?;
        let forward = self.events.clone();
        std::thread::Builder::new()
            .name("qsync-watch-events".into())
            .spawn(move || {
                for batch in batches {
                    if forward.send(Event::Watch(task, batch)).is_err() {
                        break;
                    }
                }
            })
            .map_err(|e| EngineError::io("start the watcher's thread for", &root, e))?;
        // What changed while the daemon was not running: the whole folder is walked on the
        // task's own thread, its entries recorded as they come (see `walks.rs`).
        let walker = walks::Walker::start(task, root.clone(), self.events.clone())?;
        walker.queue(qsync_watch::WalkPlan::new(&index, None, filter));
        let links: HashSet<DeviceId> = self.store.linked_devices(task)?.into_iter().collect();
        let options = self.store.task_options(task)?;
        self.tasks.insert(
            task,
            TaskState {
                root,
                index,
                held,
                options,
                links,
                unsupported: 0,
                not_synced: Default::default(),
                scanning: Some(walks::Scanning::new()),
                added: Vec::new(),
                walker,
                _watcher: Some(watcher),
            },
        );
        Ok(())
    }

    fn run(&mut self, inbox: Receiver<Event>) {
        let mut next_tick = Instant::now();
        loop {
            let mut wait = next_tick.saturating_duration_since(Instant::now());
            if !self.owed.is_empty() {
                let left = KEEP_AFTER_QUIET.saturating_sub(self.last_busy.elapsed());
                // While content is being served, look again now and then.
                let left = if self.sync.serving_idle() {
                    left
                } else {
                    left.max(Duration::from_millis(100))
                };
                wait = wait.min(left);
            }
            let timeouts = [self.sync.next_timeout(), self.sync.exchange_timeout()];
            for at in timeouts.into_iter().flatten() {
                wait = wait.min(at.saturating_duration_since(Instant::now()));
            }
            if self.core_batch_since().is_some() {
                wait = wait.min(sync::BATCH_QUIET);
            }
            if self.links.asking() {
                wait = wait.min(Duration::from_millis(100));
            }
            match inbox.recv_timeout(wait) {
                Ok(event) => {
                    // The events already waiting are taken together: the facts they bring
                    // are handled in one transaction.
                    self.core_defer(true);
                    self.handle(event);
                    for _ in 1..EVENTS_AT_ONCE {
                        match inbox.try_recv() {
                            Ok(event) => self.handle(event),
                            Err(_) => break,
                        }
                    }
                    self.core_defer(false);
                    self.core_run(None);
                    // Placements waiting too long are made durable even while busy.
                    if self
                        .core_batch_since()
                        .is_some_and(|since| since.elapsed() >= sync::MAX_BATCH_WAIT)
                    {
                        self.core_flush();
                        self.core_run(None);
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    if self.core_batch_since().is_some() {
                        self.core_flush();
                        self.core_run(None);
                    }
                    // Quiet for a moment: the blobs of placed files are kept.
                    if self.quiet() {
                        self.keep_owed();
                    }
                    if Instant::now() >= next_tick {
                        self.tick();
                        next_tick = Instant::now() + Duration::from_secs(1);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
            }
            if !self.links.is_empty() {
                self.poll_links();
            }
            self.core_tick();
        }
    }

    fn handle(&mut self, event: Event) {
        match event {
            Event::Net(e) => self.net_event(e),
            Event::Watch(task, batch) => {
                self.core_observe(task, &batch);
                self.core_run(None);
            }
            Event::Walked(task, chunk) => self.core_walked(task, chunk),
            Event::WalkEnded(task, ended) => self.core_walk_ended(task, ended),
            Event::Hashed => self.core_hashed(),
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
                    Ok(paired) => match self.linked(task, paired.device, &paired.name, paired.addr)
                    {
                        Ok(()) => {
                            self.core_feed(qsync_core::Input::Link {
                                task,
                                peer: paired.device,
                            });
                            self.peers.dial(paired.device);
                            // What the peer lacks: the setup copy the CLI follows.
                            let entries = self.core_pending(Some(paired.device)).unwrap_or(0);
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
                self.peers.found(peer.device, &peer.addresses);
            }
            Event::Discovery(DiscoveryEvent::Lost(device)) => self.peers.lost(device),
        }
    }

    fn tick(&mut self) {
        for device in self.peers.silent() {
            // Gone: stop sending into a connection nobody reads; what was in flight stays
            // pending and goes again when the device is back.
            tracing::info!(%device, "left (no answer to a ping); its updates wait until it is back");
            self.tell(DaemonEvent::Disconnected { device });
            let _ = self.store.set_connected(device, false, None);
            self.core_disconnected(device);
        }
        self.peers.dial_linked();
    }

    fn linked(
        &mut self,
        task: TaskId,
        device: DeviceId,
        name: &str,
        addr: SocketAddr,
    ) -> Result<(), EngineError> {
        self.store.add_link(task, device, name)?;
        self.store
            .set_connected(device, false, Some(&addr.to_string()))?;
        self.peers.link(device, Some(addr));
        if let Some(state) = self.tasks.get_mut(&task) {
            state.links.insert(device);
        }
        Ok(())
    }

    fn net_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Connected {
                device,
                conn,
                addr,
                dialled,
                tx,
                urgent,
                queued,
            } => {
                let conn = Conn {
                    id: conn,
                    tx,
                    urgent,
                    queued,
                };
                if !self.peers.connected_to(device, conn, addr, dialled) {
                    return;
                }
                tracing::info!(%device, %addr, "connected");
                self.tell(DaemonEvent::Connected { device });
                let proven = dialled.then(|| addr.to_string());
                let _ = self.store.set_connected(device, true, proven.as_deref());
                // A replaced connection: the core starts the exchange afresh.
                self.core_disconnected(device);
                self.core_feed(qsync_core::Input::Connected { peer: device });
            }
            NetEvent::Disconnected { device, conn } => {
                if self.peers.is_current(&device, conn) {
                    tracing::info!(%device, "disconnected");
                    self.peers.close(device);
                    self.tell(DaemonEvent::Disconnected { device });
                    let _ = self.store.set_connected(device, false, None);
                    self.core_disconnected(device);
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

    fn send(&self, device: DeviceId, task: TaskId, message: Message) -> bool {
        self.peers.send(device, task, message)
    }

    fn received(&mut self, device: DeviceId, task: TaskId, message: Message) {
        // From a connection given up on (a probe that went unanswered, a forgotten
        // device): its reader may still be draining.
        if !self.peers.is_connected(&device) {
            return;
        }
        // Anything at all from a device mDNS said left shows it is still there.
        if self.peers.heard_from(&device) {
            tracing::info!(%device, "heard from after mDNS said it left: the session stays");
        }
        match &message {
            Message::Hello { name } => {
                tracing::debug!(%device, %name, "hello");
                self.send(
                    device,
                    task,
                    Message::HelloAck {
                        name: self.config.name.clone(),
                    },
                );
                return;
            }
            Message::HelloAck { .. } => return,
            Message::Ping { nonce } => {
                self.peers
                    .send_urgent(device, Message::Pong { nonce: *nonce });
                return;
            }
            // The probe it answers was cleared above.
            Message::Pong { .. } => return,
            _ => {}
        }
        let linked = self
            .tasks
            .get(&task)
            .is_some_and(|t| t.links.contains(&device));
        if !linked {
            tracing::warn!(%device, %task, "rejected a message about a task this device is not linked to");
            return;
        }
        if let Message::Unlink = message {
            if let Err(e) = self.unlink(task, device) {
                tracing::warn!(%device, %task, "could not record that the device unlinked: {e}");
            }
            return;
        }
        self.core_received(device, task, message);
    }

    /// Tell `qsync events` listeners, if any.
    fn tell(&self, event: DaemonEvent) {
        if self.notify.receiver_count() > 0 {
            let _ = self.notify.send(event);
        }
    }

    /// Keep the content of a file version as a blob later, when the daemon is quiet (see
    /// [`crate::keeper`]).
    fn owe_blob(&mut self, owed: Owed) {
        // Its task now holds this content: a peer of the task may ask a patch from it
        // (see `held.rs`). Task folders never nest, so the root names one task.
        let blobs = self.store.blobs();
        if let Some(state) = self.tasks.values_mut().find(|t| t.root == owed.root) {
            state.held.insert(owed.hash, |h| blobs.contains(h));
        }
        if self.config.base_share > 0
            && owed.size >= crate::keeper::MIN_BASE
            && !self.store.blobs().contains(&owed.hash)
        {
            self.owed.push(owed);
            self.owed_since.get_or_insert_with(Instant::now);
        }
        if self.owed.len() >= MAX_OWED {
            self.keep_owed();
        }
    }

    /// Whether content has not moved for [`KEEP_AFTER_QUIET`] and none is being served, or
    /// blobs have been owed for [`KEEP_AT_MOST_AFTER`] (a long transfer does not keep
    /// every later edit from having a base).
    fn quiet(&self) -> bool {
        let quiet = self.last_busy.elapsed() >= KEEP_AFTER_QUIET && self.sync.serving_idle();
        quiet
            || self
                .owed_since
                .is_some_and(|t| t.elapsed() >= KEEP_AT_MOST_AFTER)
    }

    /// Hand what is owed to the keeper, with the budget for bases: a share of the data
    /// synced here (see [`DaemonConfig::base_share`]).
    fn keep_owed(&mut self) {
        if self.owed.is_empty() {
            return;
        }
        let synced: u64 = self
            .tasks
            .values()
            .flat_map(|t| t.index.entries())
            .filter(|e| e.kind == EntryKind::File)
            .map(|e| e.size)
            .sum();
        let budget = crate::keeper::budget(synced, self.config.base_share);
        self.owed_since = None;
        self.keeper.keep(std::mem::take(&mut self.owed), budget);
    }
}
