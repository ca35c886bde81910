//! The daemon: one engine thread owns the state (store, the sync core and its driver, task
//! indexes) and handles events in order; tokio tasks carry the network, threads watch the
//! folders. The sync itself is `sync.rs` (the driver of `qsync-core`); this module wires
//! the network, discovery, links, watchers and the control socket to it.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use qsync_base::{ContentHash, DeviceId, EntryKind, FileEntry, RelPath, TaskId};
use qsync_discovery::{Config as DiscoveryConfig, Discovery, DiscoveryEvent};
use qsync_store::{AppRecord, Store};
use qsync_watch::{observe, scan_reporting, Filter, Index, LocalEvent, TaskWatcher, WatchBatch};
use qsync_wire::{LinkKey, Message};
use tokio::sync::oneshot;

use crate::control::{AppInfo, Command, DaemonEvent, DeviceInfo, Reply, Status, TaskInfo};
use crate::fsops::remove_stale_parts;
use crate::keeper::{Keeper, Owed};
use crate::net::{self, Keys, NetCtx, NetEvent, Outbound, Outgoing};
use crate::{btf, EngineError};

mod commands;
mod sync;

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
}

/// Everything the engine thread reacts to.
#[derive(Debug)]
pub enum Event {
    /// From the network.
    Net(NetEvent),
    /// A watcher saw changes in a task's folder.
    Watch(TaskId, WatchBatch),
    /// A command from the control socket; the answer goes to `reply`.
    Control(Command, oneshot::Sender<Reply>),
    /// A pairing this device asked for finished.
    Paired(TaskId, Result<net::Paired, String>, oneshot::Sender<Reply>),
    /// The person answered where a linked task goes.
    LinkAnswer {
        /// The pairing request.
        request: Box<NetEvent>,
        /// The folder chosen, or why not.
        answer: Result<PathBuf, String>,
    },
    /// Discovery news.
    Discovery(DiscoveryEvent),
}

struct TaskState {
    root: PathBuf,
    index: Index,
    links: HashSet<DeviceId>,
    /// Paths found at start whose names QSync cannot carry (logged; counted in `status`).
    unsupported: usize,
    _watcher: Option<TaskWatcher>,
}

struct Conn {
    id: u64,
    tx: Outgoing,
}

/// At most this many waiting events are taken before their facts are handled.
const EVENTS_AT_ONCE: usize = 256;

/// Received files' blobs are kept once nothing has been received for this long...
const KEEP_AFTER_QUIET: Duration = Duration::from_millis(500);
/// ...or once this many are owed.
const MAX_OWED: usize = 10_000;

struct Engine {
    me: DeviceId,
    config: DaemonConfig,
    store: Store,
    tasks: HashMap<TaskId, TaskState>,
    conns: HashMap<DeviceId, Conn>,
    /// Placed files whose blobs (the bases of later patches) are still to be kept, and the
    /// thread that keeps them.
    owed: Vec<Owed>,
    keeper: Keeper,
    /// When the last file was placed.
    last_received: Instant,
    keys: Keys,
    events: Sender<Event>,
    runtime: tokio::runtime::Handle,
    net: NetCtx,
    addresses: HashMap<DeviceId, SocketAddr>,
    last_dial: HashMap<DeviceId, Instant>,
    /// Records sent and changes placed since start, for `status`.
    sent: u64,
    received: u64,
    /// What happens, for `qsync events` (sending fails only when nobody listens).
    notify: tokio::sync::broadcast::Sender<DaemonEvent>,
    /// The sync core and what its driver keeps.
    sync: sync::CoreSync,
}

/// Read this device's id from the state folder, making one on first start.
pub fn device_id(state_dir: &Path) -> Result<DeviceId, EngineError> {
    let path = state_dir.join("device_id");
    match fs::read_to_string(&path) {
        Ok(text) => text
            .trim()
            .parse()
            .map_err(|e| EngineError::State(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(state_dir).map_err(|e| EngineError::io("create", state_dir, e))?;
            let id = DeviceId::random();
            fs::write(&path, format!("{id}\n")).map_err(|e| EngineError::io("write", &path, e))?;
            Ok(id)
        }
        Err(e) => Err(EngineError::io("read", &path, e)),
    }
}

/// The control socket's path in a state folder.
pub fn control_socket(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// Run a daemon until the process ends.
pub fn run(config: DaemonConfig) -> Result<(), EngineError> {
    let me = device_id(&config.state_dir)?;
    let store = Store::open(&config.state_dir)?;
    let keeper = Keeper::start(store.blobs().clone());
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| EngineError::io("start the network runtime for", &config.state_dir, e))?;
    let (events, inbox) = channel::<Event>();
    let keys: Keys = Arc::new(Mutex::new(HashMap::new()));
    let listener = runtime
        .block_on(tokio::net::TcpListener::bind(config.listen))
        .map_err(|e| EngineError::Listen(config.listen, e))?;
    let port = listener
        .local_addr()
        .map_err(|e| EngineError::Listen(config.listen, e))?
        .port();
    let net = NetCtx {
        me,
        name: config.name.clone(),
        port,
        keys: keys.clone(),
        events: events.clone(),
        next_conn: Arc::new(std::sync::atomic::AtomicU64::new(1)),
        pair_timeout: config.answer_timeout + Duration::from_secs(5),
        wire: Arc::new(net::WireCounters::default()),
        inbox_budget: Arc::new(tokio::sync::Semaphore::new(net::INBOX_BUDGET_KIB)),
    };
    runtime.spawn(net::listen(listener, net.clone()));
    let (notify, _) = tokio::sync::broadcast::channel(1024);
    crate::control::serve(
        &runtime,
        control_socket(&config.state_dir),
        events.clone(),
        notify.clone(),
    )?;

    let _discovery = if config.mdns {
        let (discovery, found) =
            Discovery::start(DiscoveryConfig::new(me, config.name.clone(), port))?;
        let forward = events.clone();
        std::thread::spawn(move || {
            for event in found {
                if forward.send(Event::Discovery(event)).is_err() {
                    break;
                }
            }
        });
        Some(discovery)
    } else {
        None
    };

    let sync = sync::CoreSync::start(me, &config.state_dir)?;
    let mut engine = Engine {
        me,
        config,
        store,
        tasks: HashMap::new(),
        conns: HashMap::new(),
        owed: Vec::new(),
        keeper,
        last_received: Instant::now(),
        keys,
        events,
        runtime: runtime.handle().clone(),
        net,
        addresses: HashMap::new(),
        last_dial: HashMap::new(),
        sent: 0,
        received: 0,
        notify,
        sync,
    };
    engine.load()?;
    tracing::info!(device = %me, port, "qsync daemon ready");
    println!("qsync daemon {me} listening on port {port}");
    let _ = std::io::stdout().flush();
    engine.run(inbox);
    Ok(())
}

impl Engine {
    fn load(&mut self) -> Result<(), EngineError> {
        if let Ok(mut keys) = self.keys.lock() {
            for device in self.store.devices()? {
                keys.insert(device.id, LinkKey::from_bytes(device.link_key));
                if let Some(addr) = device.last_address.as_deref().and_then(|a| a.parse().ok()) {
                    self.addresses.insert(device.id, addr);
                }
            }
        }
        for device in self.store.devices()? {
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
        remove_stale_parts(&root);
        let known: Vec<FileEntry> = self.core_known(task)?;
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
        std::thread::spawn(move || {
            for batch in batches {
                if forward.send(Event::Watch(task, batch)).is_err() {
                    break;
                }
            }
        });
        let scanned = scan_reporting(&root, &index.to_map())?;
        let unsupported = scanned.unsupported.len();
        let offline = index.reconcile(scanned.entries);
        let links: HashSet<DeviceId> = self.store.linked_devices(task)?.into_iter().collect();
        self.tasks.insert(
            task,
            TaskState {
                root,
                index,
                links,
                unsupported,
                _watcher: Some(watcher),
            },
        );
        self.core_local(task, offline);
        Ok(())
    }

    fn run(&mut self, inbox: Receiver<Event>) {
        let mut next_tick = Instant::now();
        loop {
            let mut wait = next_tick.saturating_duration_since(Instant::now());
            if !self.owed.is_empty() {
                wait = wait.min(KEEP_AFTER_QUIET.saturating_sub(self.last_received.elapsed()));
            }
            if let Some(at) = self.sync.next_timeout() {
                wait = wait.min(at.saturating_duration_since(Instant::now()));
            }
            if self.core_batch_since().is_some() {
                wait = wait.min(sync::BATCH_QUIET);
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
                    if self.last_received.elapsed() >= KEEP_AFTER_QUIET {
                        self.keeper.keep(std::mem::take(&mut self.owed));
                    }
                    if Instant::now() >= next_tick {
                        self.tick();
                        next_tick = Instant::now() + Duration::from_secs(1);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => return,
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
            Event::Control(command, reply) => {
                let answer = self.control(command, reply);
                if let Some((answer, reply)) = answer {
                    let _ = reply.send(answer);
                }
            }
            Event::Paired(task, result, reply) => {
                let answer = match result {
                    Ok(paired) => match self.linked(
                        task,
                        paired.device,
                        &paired.name,
                        &paired.key,
                        paired.addr,
                    ) {
                        Ok(()) => {
                            self.core_feed(qsync_core::Input::Link {
                                task,
                                peer: paired.device,
                            });
                            self.dial(paired.device);
                            // What the peer lacks: the setup copy the CLI follows.
                            let entries = self.core_pending(Some(paired.device)).unwrap_or(0);
                            Reply::Linked {
                                device: paired.device,
                                name: paired.name.clone(),
                                code: paired.code.to_string(),
                                entries: usize::try_from(entries).unwrap_or(usize::MAX),
                            }
                        }
                        Err(e) => Reply::error(e),
                    },
                    Err(e) => Reply::error(e),
                };
                let _ = reply.send(answer);
            }
            Event::LinkAnswer { request, answer } => self.link_answer(*request, answer),
            Event::Discovery(DiscoveryEvent::Found(peer)) => {
                if let Some(addr) = peer
                    .addresses
                    .iter()
                    .find(|a| a.is_ipv4())
                    .or(peer.addresses.first())
                {
                    self.addresses.insert(peer.device, *addr);
                }
            }
            Event::Discovery(DiscoveryEvent::Lost(device)) => {
                // Gone without a goodbye: stop sending into a connection nobody reads; what
                // was in flight stays pending and goes again when the device is back.
                if self.conns.remove(&device).is_some() {
                    tracing::info!(%device, "lost; its updates wait until it is back");
                    self.tell(DaemonEvent::Disconnected { device });
                    let _ = self.store.set_connected(device, false, None);
                    self.core_disconnected(device);
                }
            }
        }
    }

    fn tick(&mut self) {
        let linked: Vec<DeviceId> = self
            .keys
            .lock()
            .map(|k| k.keys().copied().collect())
            .unwrap_or_default();
        for device in linked {
            if !self.conns.contains_key(&device) {
                self.dial(device);
            }
        }
    }

    fn dial(&mut self, device: DeviceId) {
        let Some(addr) = self.addresses.get(&device).copied() else {
            return;
        };
        if self.conns.contains_key(&device) {
            return;
        }
        // The smaller id dials; the other waits a while before trying itself.
        let wait = if self.me < device {
            Duration::from_secs(1)
        } else {
            Duration::from_secs(5)
        };
        if self
            .last_dial
            .get(&device)
            .is_some_and(|t| t.elapsed() < wait)
        {
            return;
        }
        self.last_dial.insert(device, Instant::now());
        let ctx = self.net.clone();
        self.runtime.spawn(async move {
            if let Err(e) = net::dial(addr, device, ctx).await {
                tracing::debug!(%device, %addr, error = %e, "could not connect");
            }
        });
    }

    fn linked(
        &mut self,
        task: TaskId,
        device: DeviceId,
        name: &str,
        key: &LinkKey,
        addr: SocketAddr,
    ) -> Result<(), EngineError> {
        self.store.add_link(task, device, name, key.as_bytes())?;
        self.store
            .set_connected(device, false, Some(&addr.to_string()))?;
        if let Ok(mut keys) = self.keys.lock() {
            keys.insert(device, key.clone());
        }
        self.addresses.insert(device, addr);
        if let Some(state) = self.tasks.get_mut(&task) {
            state.links.insert(device);
        }
        Ok(())
    }

    fn link_answer(&mut self, request: NetEvent, answer: Result<PathBuf, String>) {
        let NetEvent::PairRequest {
            device,
            name,
            task,
            addr,
            key,
            code,
            reply,
            ..
        } = request
        else {
            return;
        };
        let result = answer.and_then(|root| {
            let known = self.tasks.contains_key(&task);
            if !known {
                // The folder may not exist yet: compare where it will be.
                let at = fs::canonicalize(&root).unwrap_or_else(|_| root.clone());
                self.refuse_overlap(&at).map_err(|e| e.to_string())?;
                self.store
                    .add_task(task, &root, &name)
                    .map_err(|e| e.to_string())?;
            }
            self.linked(task, device, &name, &key, addr)
                .map_err(|e| e.to_string())?;
            if !known {
                self.start_task(task, root).map_err(|e| e.to_string())?;
            }
            self.core_feed(qsync_core::Input::Link { task, peer: device });
            tracing::info!(%device, %task, %code, "linked");
            Ok(())
        });
        let _ = reply.send(result);
    }

    fn net_event(&mut self, event: NetEvent) {
        match event {
            NetEvent::Connected {
                device,
                conn,
                addr,
                tx,
            } => {
                if !self.keys.lock().is_ok_and(|k| k.contains_key(&device)) {
                    return;
                }
                tracing::info!(%device, %addr, "connected");
                self.conns.insert(device, Conn { id: conn, tx });
                self.tell(DaemonEvent::Connected { device });
                let _ = self.store.set_connected(device, true, None);
                // A replaced connection: the core starts the exchange afresh.
                self.core_disconnected(device);
                self.core_feed(qsync_core::Input::Connected { peer: device });
            }
            NetEvent::Disconnected { device, conn } => {
                if self.conns.get(&device).is_some_and(|c| c.id == conn) {
                    tracing::info!(%device, "disconnected");
                    self.conns.remove(&device);
                    self.tell(DaemonEvent::Disconnected { device });
                    let _ = self.store.set_connected(device, false, None);
                    self.core_disconnected(device);
                }
            }
            NetEvent::Received {
                device,
                task,
                message,
                credit: _credit,
            } => self.received(device, task, message),
            request @ NetEvent::PairRequest { .. } => {
                let NetEvent::PairRequest {
                    device,
                    ref name,
                    ref folder_name,
                    code,
                    ..
                } = request
                else {
                    return;
                };
                let context = format!("{name} ({device}) wants to link the folder \"{folder_name}\"; confirmation code {code}. Where should it go? (empty: refuse)");
                let dir = self.config.btf_dir.clone();
                let timeout = self.config.answer_timeout;
                let events = self.events.clone();
                self.tell(DaemonEvent::Question {
                    flag: btf::CHOOSE_LINK_PATH.to_owned(),
                    context: context.clone(),
                });
                std::thread::spawn(move || {
                    let answer =
                        match btf::ask_input(&dir, btf::CHOOSE_LINK_PATH, &context, timeout) {
                            Ok(path) if path.trim().is_empty() => {
                                Err("the person refused".to_owned())
                            }
                            Ok(path) => Ok(PathBuf::from(path.trim())),
                            Err(e) => Err(e.to_string()),
                        };
                    let _ = events.send(Event::LinkAnswer {
                        request: Box::new(request),
                        answer,
                    });
                });
            }
        }
    }

    fn send(&self, device: DeviceId, task: TaskId, message: Message) -> bool {
        self.conns
            .get(&device)
            .is_some_and(|c| c.tx.send(Outbound::Message(task, message)).is_ok())
    }

    // ---------- local changes ----------

    /// Keep the newest full content of a file or symlink as a blob; returns its hash.
    fn keep_content(
        &self,
        root: &Path,
        entry: &FileEntry,
    ) -> Result<Option<ContentHash>, EngineError> {
        match entry.kind {
            EntryKind::Folder => Ok(None),
            EntryKind::File => {
                let local = entry.path.to_local(root);
                match self.store.blobs().put_file(&local) {
                    Ok(hash) => Ok(Some(hash)),
                    Err(e) => {
                        tracing::debug!(error = %e, "file vanished before it could be kept");
                        Ok(entry.hash)
                    }
                }
            }
            EntryKind::Symlink => {
                let target = fs::read_link(entry.path.to_local(root))
                    .map_err(|e| EngineError::io("read the link", &entry.path.to_local(root), e))?;
                Ok(Some(
                    self.store
                        .blobs()
                        .put(target.as_os_str().as_encoded_bytes())?,
                ))
            }
        }
    }

    // ---------- sending ----------

    // ---------- receiving ----------

    fn received(&mut self, device: DeviceId, task: TaskId, message: Message) {
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
        if let Message::UnlinkDevice = message {
            let _ = self.store.remove_link(task, device);
            if let Some(t) = self.tasks.get_mut(&task) {
                t.links.remove(&device);
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

    /// Keep the content of a received file as a blob later, when the daemon is quiet
    /// (see [`crate::keeper`]).
    fn owe_blob(&mut self, file: PathBuf, hash: Option<ContentHash>) {
        let Some(hash) = hash else { return };
        if !self.store.blobs().contains(&hash) {
            self.owed.push(Owed { file, hash });
        }
        if self.owed.len() >= MAX_OWED {
            self.keeper.keep(std::mem::take(&mut self.owed));
        }
    }
}
