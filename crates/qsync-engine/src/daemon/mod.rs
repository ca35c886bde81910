//! The daemon: one engine thread owns the state (store, delivery, task indexes) and handles
//! events in order; tokio tasks carry the network, threads watch the folders.

use std::collections::{HashMap, HashSet};
use std::fs;
use std::io::{Read, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use qsync_base::{
    ContentHash, ContentHasher, DeviceId, EntryKind, FileEntry, RelPath, TaskId, UpdateId,
};
use qsync_delta::Options;
use qsync_discovery::{Config as DiscoveryConfig, Discovery, DiscoveryEvent};
use qsync_store::{AppRecord, Change, ModType, PendingUpdate, Store};
use qsync_watch::{
    observe, scan, scan_reporting, stat_entry, Filter, Index, LocalEvent, TaskWatcher, WatchBatch,
};
use qsync_wire::{LinkKey, Message, Outcome, MAX_CHUNK_LEN};
use tokio::sync::oneshot;

use crate::conflict::{decide, keep_on_remote_folder_delete, Decision, Version};
use crate::control::{AppInfo, Command, DaemonEvent, DeviceInfo, Reply, Status, TaskInfo};
use crate::delivery::{Action, Delivery};
use crate::fsops::{
    incoming_file, prepare_target, remove_any, remove_stale_parts, safe_target, sync_file_systems,
};
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
    /// Scan every task's folder whole this often (core mode; zero: never), a safety net
    /// for what the watcher misses.
    pub rescan_every: Duration,
    /// Run the sync rules of `qsync-core` (see [`sync`](self::sync)) instead of the
    /// classic ones.
    pub core: bool,
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

/// Content a change replaced, whose blob may now be unused.
enum Replaced {
    Blob(ContentHash),
    Tree,
}

enum IncomingKind {
    Full {
        hash: ContentHash,
        base: Option<ContentHash>,
        kind: EntryKind,
        file: tempfile::NamedTempFile,
        /// The hash of what was received so far (so the file is never read back for it).
        hasher: Box<ContentHasher>,
    },
    Patch {
        base: ContentHash,
        result: ContentHash,
        delta: Vec<u8>,
    },
}

struct Incoming {
    task: TaskId,
    path: RelPath,
    size: u64,
    received: u64,
    mtime_ns: i64,
    kind: IncomingKind,
}

/// Largest delta accepted in memory.
const MAX_DELTA: u64 = 256 * 1024 * 1024;

/// A batch of received files is made durable (and answered) once no message has come for
/// this long...
const STAGE_IDLE: Duration = Duration::from_millis(2);
/// ...or once its oldest file waited this long...
const STAGE_MAX_AGE: Duration = Duration::from_millis(250);
/// ...or once it holds this many files (half the sender's creation window, so that the
/// answers to one batch go back while the next arrives)...
const STAGE_MAX_FILES: usize = crate::delivery::WINDOW / 2;
/// ...or this many bytes.
const STAGE_MAX_BYTES: u64 = 64 * 1024 * 1024;

/// Received files' blobs are kept once nothing has been received for this long...
const KEEP_AFTER_QUIET: Duration = Duration::from_millis(500);
/// ...or once this many are owed.
const MAX_OWED: usize = 10_000;

/// Received files, verified and written but not yet durable, in place, recorded or
/// answered. A run of creations (a setup copy, many new files) is flushed together:
/// one `syncfs` makes all their content durable, they are renamed into place, a second
/// `syncfs` makes the names durable, one transaction records them, and then they are
/// acknowledged. That is the order one file at a time would follow (fsync, rename,
/// record, acknowledge), with two flushes a batch instead of two fsyncs a file.
#[derive(Default)]
struct Staged {
    files: Vec<StagedFile>,
    bytes: u64,
    since: Option<Instant>,
}

struct StagedFile {
    device: DeviceId,
    update: UpdateId,
    task: TaskId,
    target: PathBuf,
    /// The received content, closed (a batch holds no file descriptors), removed if dropped.
    file: tempfile::TempPath,
    /// What was written.
    written: FileEntry,
    /// What the target was when the update was accepted (it must still be so at the rename).
    seen: Option<Fingerprint>,
    /// The content it replaces.
    local: Option<ContentHash>,
}

/// Enough of a path's metadata to tell that it changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Fingerprint {
    ino: u64,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
}

/// The folders holding `targets`, each once.
fn parent_folders<'a>(targets: impl Iterator<Item = &'a Path>) -> Vec<&'a Path> {
    let mut folders: Vec<&Path> = targets.filter_map(Path::parent).collect();
    folders.sort();
    folders.dedup();
    folders
}

fn fingerprint(path: &Path) -> Option<Fingerprint> {
    use std::os::unix::fs::MetadataExt;
    let m = fs::symlink_metadata(path).ok()?;
    Some(Fingerprint {
        ino: m.ino(),
        size: m.size(),
        mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec(),
        ctime_ns: m.ctime() * 1_000_000_000 + m.ctime_nsec(),
    })
}

struct Engine {
    me: DeviceId,
    config: DaemonConfig,
    store: Store,
    delivery: Delivery,
    tasks: HashMap<TaskId, TaskState>,
    conns: HashMap<DeviceId, Conn>,
    incoming: HashMap<(DeviceId, UpdateId), Incoming>,
    /// Received files waiting to be made durable together.
    staged: Staged,
    /// Received files whose blobs are still to be kept, and the thread that keeps them.
    owed: Vec<Owed>,
    keeper: Keeper,
    /// When the last file content from a device arrived.
    last_received: Instant,
    /// Updates made redundant by a full-content send, marked done with its acknowledgement.
    subsumed: HashMap<(DeviceId, UpdateId), Vec<UpdateId>>,
    /// Patches already retried as full content.
    retried: HashSet<(DeviceId, UpdateId)>,
    keys: Keys,
    events: Sender<Event>,
    runtime: tokio::runtime::Handle,
    net: NetCtx,
    addresses: HashMap<DeviceId, SocketAddr>,
    last_dial: HashMap<DeviceId, Instant>,
    /// Updates sent and received since start, for `status`.
    sent: u64,
    received: u64,
    /// What happens, for `qsync events` (sending fails only when nobody listens).
    notify: tokio::sync::broadcast::Sender<DaemonEvent>,
    /// The `qsync-core` driver's state, when the daemon runs the core's rules.
    sync: Option<sync::CoreSync>,
}

/// A modification time as the system wants it.
fn system_time(mtime_ns: i64) -> std::time::SystemTime {
    let since = Duration::from_nanos(mtime_ns.max(0).unsigned_abs());
    std::time::UNIX_EPOCH + since
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

    let sync = if config.core {
        Some(sync::CoreSync::start(me, &config.state_dir)?)
    } else {
        None
    };
    let mut engine = Engine {
        me,
        config,
        store,
        delivery: Delivery::new(),
        tasks: HashMap::new(),
        conns: HashMap::new(),
        incoming: HashMap::new(),
        staged: Staged::default(),
        owed: Vec::new(),
        keeper,
        last_received: Instant::now(),
        subsumed: HashMap::new(),
        retried: HashSet::new(),
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
        let known: Vec<FileEntry> = if self.sync.is_some() {
            self.core_known(task)?
        } else {
            self.store
                .files(task)?
                .into_iter()
                .map(|f| f.entry)
                .collect()
        };
        let mut index = Index::new(known);
        // Paths `.qsyncignore` excludes now (a pattern added while the daemon was stopped)
        // stop syncing; the scan below must not take their absence for deletions.
        let filter = Filter::for_root(&root)?;
        let ignored = index.forget_where(|path, is_folder| !filter.includes(path, is_folder));
        if !ignored.is_empty() {
            tracing::info!(%task, count = ignored.len(), "paths now ignored stop syncing; nothing is deleted anywhere");
            if self.sync.is_none() {
                self.store.forget_files(task, &ignored)?;
            }
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
        if self.sync.is_some() {
            self.core_local(task, offline);
        } else {
            self.local_events(task, offline);
        }
        Ok(())
    }

    fn run(&mut self, inbox: Receiver<Event>) {
        let mut next_tick = Instant::now();
        loop {
            let mut wait = next_tick.saturating_duration_since(Instant::now());
            if self.staged.since.is_some() {
                wait = wait.min(STAGE_IDLE);
            }
            if !self.owed.is_empty() {
                wait = wait.min(KEEP_AFTER_QUIET.saturating_sub(self.last_received.elapsed()));
            }
            if let Some(at) = self.sync.as_ref().and_then(sync::CoreSync::next_timeout) {
                wait = wait.min(at.saturating_duration_since(Instant::now()));
            }
            match inbox.recv_timeout(wait) {
                Ok(event) => self.handle(event),
                Err(RecvTimeoutError::Timeout) => {
                    // Quiet for a moment: what was received becomes durable and is answered.
                    self.flush_staged();
                    if self.last_received.elapsed() >= KEEP_AFTER_QUIET {
                        self.keeper.keep(std::mem::take(&mut self.owed));
                    }
                    if Instant::now() >= next_tick {
                        self.tick();
                        next_tick = Instant::now() + Duration::from_secs(1);
                    }
                }
                Err(RecvTimeoutError::Disconnected) => {
                    self.flush_staged();
                    return;
                }
            }
            self.core_tick();
            if self
                .staged
                .since
                .is_some_and(|t| t.elapsed() >= STAGE_MAX_AGE)
            {
                self.flush_staged();
            }
        }
    }

    fn handle(&mut self, event: Event) {
        // Only more file content (and commands that only read) may overtake staged files;
        // anything else (a delete, a rename, a local change, a command that changes
        // something, a disconnection) sees them in place first.
        let more_content = matches!(
            &event,
            Event::Net(NetEvent::Received {
                message: Message::Create { .. } | Message::Chunk { .. },
                ..
            })
        );
        if more_content {
            self.last_received = Instant::now();
        } else if !matches!(&event, Event::Control(command, _) if command.reads_only()) {
            self.flush_staged();
        }
        match event {
            Event::Net(e) => self.net_event(e),
            Event::Watch(task, batch) => {
                let Some(state) = self.tasks.get_mut(&task) else {
                    return;
                };
                match observe(&state.root, &mut state.index, &batch) {
                    Ok(events) if self.sync.is_some() => self.core_local(task, events),
                    Ok(events) => self.local_events(task, events),
                    Err(e) => tracing::warn!(%task, error = %e, "could not look at the folder"),
                }
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
                        Ok(()) if self.sync.is_some() => {
                            self.core_feed(qsync_core::Input::Link {
                                task,
                                peer: paired.device,
                            });
                            self.dial(paired.device);
                            Reply::Linked {
                                device: paired.device,
                                name: paired.name.clone(),
                                code: paired.code.to_string(),
                                entries: self.store.files(task).map_or(0, |f| f.len()),
                            }
                        }
                        Ok(()) => {
                            let setup = self.store.queue_setup(task, paired.device);
                            match setup {
                                Ok(updates) => {
                                    let n = updates.len();
                                    for u in updates {
                                        let creation = u.mod_type == ModType::Create;
                                        let actions =
                                            self.delivery.add(paired.device, u.update, creation);
                                        self.perform(actions);
                                    }
                                    self.dial(paired.device);
                                    Reply::Linked {
                                        device: paired.device,
                                        name: paired.name.clone(),
                                        code: paired.code.to_string(),
                                        entries: n,
                                    }
                                }
                                Err(e) => Reply::error(e),
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
                    self.delivery.disconnected(device);
                    self.incoming.retain(|(d, _), _| *d != device);
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
                if self.sync.is_some() {
                    // A replaced connection: the core starts the exchange afresh.
                    self.core_disconnected(device);
                    self.core_feed(qsync_core::Input::Connected { peer: device });
                    return;
                }
                self.delivery.disconnected(device);
                let missing: Vec<(UpdateId, bool)> = match self.store.missing_for(device) {
                    Ok(m) => m
                        .into_iter()
                        .map(|u| (u.update, u.mod_type == ModType::Create))
                        .collect(),
                    Err(e) => {
                        tracing::warn!(error = %e, "could not read pending updates");
                        vec![]
                    }
                };
                let actions = self.delivery.connected(device, missing);
                self.perform(actions);
            }
            NetEvent::Disconnected { device, conn } => {
                if self.conns.get(&device).is_some_and(|c| c.id == conn) {
                    tracing::info!(%device, "disconnected");
                    self.conns.remove(&device);
                    self.tell(DaemonEvent::Disconnected { device });
                    self.delivery.disconnected(device);
                    self.incoming.retain(|(d, _), _| *d != device);
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

    fn local_events(&mut self, task: TaskId, events: Vec<LocalEvent>) {
        for event in events {
            if let Err(e) = self.local_event(task, event) {
                tracing::warn!(%task, error = %e, "could not record a local change");
            }
        }
    }

    fn local_event(&mut self, task: TaskId, event: LocalEvent) -> Result<(), EngineError> {
        let Some(state) = self.tasks.get(&task) else {
            return Ok(());
        };
        let root = state.root.clone();
        let devices: Vec<DeviceId> = state.links.iter().copied().collect();
        tracing::debug!(%task, ?event, "local change");
        let change = match event {
            LocalEvent::Create(entry) => {
                self.keep_content(&root, &entry)?;
                Change::Create(entry)
            }
            LocalEvent::Modify { entry, previous } => {
                let new_hash = self.keep_content(&root, &entry)?;
                let delta = match (previous, new_hash) {
                    (Some(old), Some(new)) if self.store.blobs().contains(&old) => {
                        let (old_path, new_path) =
                            (self.store.blobs().path(&old), self.store.blobs().path(&new));
                        let mut out = Vec::new();
                        // Blobs are named by their content's hash: the encoder need not hash them.
                        match qsync_delta::encode_file_known(
                            &old_path,
                            &new_path,
                            &mut out,
                            &Options::default(),
                            (old, new),
                        ) {
                            Ok(qsync_delta::Encoded::Patch { .. }) => Some(out),
                            Ok(qsync_delta::Encoded::Full(_)) => None,
                            Err(e) => {
                                // Never lose the change over a delta: send the whole file.
                                tracing::info!(error = %e, "no delta for this change; the whole file will be sent");
                                None
                            }
                        }
                    }
                    _ => None,
                };
                Change::Modify {
                    entry,
                    base: previous,
                    delta,
                }
            }
            LocalEvent::Delete { path, .. } => Change::Delete(path),
            LocalEvent::Rename { from, to } => Change::Rename { from, to },
        };
        // Content this change replaces or removes; its blob goes once no file refers to it.
        let replaced = match &change {
            Change::Modify { base, .. } => base.map(Replaced::Blob),
            Change::Delete(path) => match self.store.file(task, path)? {
                Some(f) if f.entry.kind == EntryKind::Folder => Some(Replaced::Tree),
                Some(f) => f.entry.hash.map(Replaced::Blob),
                None => None,
            },
            _ => None,
        };
        let updates = self.store.record_changes(task, vec![change], &devices)?;
        self.release(replaced);
        for update in updates {
            for device in &devices {
                let creation = update.mod_type == ModType::Create;
                let actions = self.delivery.add(*device, update.update, creation);
                self.perform(actions);
            }
        }
        Ok(())
    }

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

    fn release(&self, replaced: Option<Replaced>) {
        let result = match replaced {
            Some(Replaced::Blob(hash)) => self.store.release_blob(&hash),
            Some(Replaced::Tree) => self.store.sweep_blobs(),
            None => Ok(()),
        };
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not remove content no file refers to any more");
        }
    }

    // ---------- sending ----------

    fn perform(&mut self, actions: Vec<Action>) {
        for action in actions {
            match action {
                Action::Send { device, update } => {
                    if let Err(e) = self.send_update(device, update, false) {
                        tracing::warn!(%device, ?update, error = %e, "could not send an update; it stays pending");
                        let more = self.delivery.failed(device, update);
                        self.perform(more);
                    }
                }
                Action::MarkDone { device, update } => {
                    let mut done = vec![update];
                    done.extend(self.subsumed.remove(&(device, update)).unwrap_or_default());
                    if let Err(e) = self.store.mark_many_done(device, &done) {
                        tracing::warn!(error = %e, "could not mark an update done");
                    }
                    self.retried.remove(&(device, update));
                }
            }
        }
    }

    fn send_update(
        &mut self,
        device: DeviceId,
        id: UpdateId,
        force_full: bool,
    ) -> Result<(), EngineError> {
        self.sent += 1;
        let Some(update) = self.store.update(id)? else {
            let more = self.delivery.failed(device, id);
            self.perform(more);
            return Ok(());
        };
        let task = update.task;
        match update.mod_type {
            ModType::Patch if !force_full => match self.store.delta(id)? {
                Some(delta) => {
                    let (Some(base), Some(result)) = (update.base_hash, update.result_hash) else {
                        return self.send_full(device, &update);
                    };
                    let mtime_ns = self
                        .store
                        .file(task, &update.path)?
                        .map_or(0, |f| f.entry.mtime_ns);
                    self.send(
                        device,
                        task,
                        Message::Patch {
                            update: id,
                            path: update.path.clone(),
                            base,
                            result,
                            delta_len: delta.len() as u64,
                            mtime_ns,
                        },
                    );
                    self.send_chunks(device, task, id, &delta);
                    Ok(())
                }
                None => self.send_full(device, &update),
            },
            ModType::Create | ModType::Patch => self.send_full(device, &update),
            ModType::Rename if force_full => {
                let Some(to) = update.new_path.clone() else {
                    return Err(EngineError::State("a rename without a new path".into()));
                };
                let content = PendingUpdate {
                    path: to,
                    mod_type: ModType::Create,
                    new_path: None,
                    base_hash: None,
                    ..update
                };
                self.send_full(device, &content)
            }
            ModType::Delete => {
                self.send(
                    device,
                    task,
                    Message::Delete {
                        update: id,
                        path: update.path.clone(),
                        base: update.base_hash,
                    },
                );
                Ok(())
            }
            ModType::Rename => {
                let Some(to) = update.new_path.clone() else {
                    return Err(EngineError::State("a rename without a new path".into()));
                };
                self.send(
                    device,
                    task,
                    Message::Rename {
                        update: id,
                        from: update.path.clone(),
                        to,
                    },
                );
                Ok(())
            }
        }
    }

    /// Send the newest full content of the update's path; later pending creates and patches
    /// of the same path for this device become redundant.
    fn send_full(&mut self, device: DeviceId, update: &PendingUpdate) -> Result<(), EngineError> {
        let task = update.task;
        let Some(file) = self.store.file(task, &update.path)? else {
            // Gone since: what removed it is pending too. Nothing to send for this one; it
            // is settled here (no message: update ids are this device's own numbering).
            let actions = self.delivery.acknowledged(device, update.update);
            self.perform(actions);
            return Ok(());
        };
        let later = self
            .store
            .later_content_updates(device, task, &update.path, update.update)?;
        self.subsumed.insert((device, update.update), later);
        let entry = file.entry;
        let base = if update.mod_type == ModType::Patch {
            update.base_hash
        } else {
            None
        };
        let mut hash = entry.hash.unwrap_or_else(|| ContentHash::of(b""));
        let blob = match entry.kind {
            EntryKind::Folder => None,
            _ => match self.blob_or_disk(task, &entry, &mut hash) {
                Some(file) => Some(file),
                None => {
                    // The content is gone from the disk too (deleted or moved again at
                    // once): the events recorded after this one describe what happened.
                    tracing::debug!(path = %entry.path, "content gone; skipping this update");
                    self.subsumed.remove(&(device, update.update));
                    let actions = self.delivery.acknowledged(device, update.update);
                    self.perform(actions);
                    return Ok(());
                }
            },
        };
        let size = match &blob {
            Some(f) => f
                .metadata()
                .map_err(|e| {
                    EngineError::io(
                        "inspect a blob for",
                        &update.path.to_local(Path::new("")),
                        e,
                    )
                })?
                .len(),
            None => 0,
        };
        self.send(
            device,
            task,
            Message::Create {
                update: update.update,
                path: entry.path.clone(),
                kind: entry.kind,
                size,
                hash,
                base,
                mtime_ns: entry.mtime_ns,
            },
        );
        if let (Some(file), Some(conn)) = (blob, self.conns.get(&device)) {
            let _ = conn.tx.send(Outbound::Content {
                task,
                update: update.update,
                file,
            });
        }
        Ok(())
    }

    /// The stored content of `entry`, or, when it could not be kept in time (the file moved
    /// at once), the content on disk now, kept on the way; `hash` becomes its hash.
    fn blob_or_disk(
        &self,
        task: TaskId,
        entry: &FileEntry,
        hash: &mut ContentHash,
    ) -> Option<fs::File> {
        if let Ok(file) = self.store.blobs().open_blob(hash) {
            return Some(file);
        }
        let root = self.tasks.get(&task)?.root.clone();
        let kept = self.keep_content(&root, entry).ok().flatten()?;
        let file = self.store.blobs().open_blob(&kept).ok()?;
        *hash = kept;
        Some(file)
    }

    /// Send in-memory bytes (a delta) as `Chunk`s; file content is streamed by the
    /// connection itself (`Outbound::Content`).
    fn send_chunks(&self, device: DeviceId, task: TaskId, update: UpdateId, content: &[u8]) {
        for (i, piece) in content.chunks(MAX_CHUNK_LEN).enumerate() {
            let offset = (i * MAX_CHUNK_LEN) as u64;
            let data = Bytes::copy_from_slice(piece);
            self.send(
                device,
                task,
                Message::Chunk {
                    update,
                    offset,
                    data,
                },
            );
        }
    }

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
        if self.sync.is_some() {
            self.core_received(device, task, message);
            return;
        }
        let answers = match &message {
            Message::Create { update, .. }
            | Message::Patch { update, .. }
            | Message::Chunk { update, .. }
            | Message::Delete { update, .. }
            | Message::Rename { update, .. } => Some(*update),
            _ => None,
        };
        let result = match message {
            Message::ModificationDone { update, outcome } => {
                self.done(device, update, outcome);
                Ok(None)
            }
            Message::Create {
                update,
                path,
                kind,
                size,
                hash,
                base,
                mtime_ns,
            } => self.begin_create(device, task, update, path, kind, size, hash, base, mtime_ns),
            Message::Patch {
                update,
                path,
                base,
                result,
                delta_len,
                mtime_ns,
            } => {
                if delta_len > MAX_DELTA {
                    Err(EngineError::State(format!(
                        "a delta of {delta_len} bytes is over the limit"
                    )))
                } else {
                    self.incoming.insert(
                        (device, update),
                        Incoming {
                            task,
                            path,
                            size: delta_len,
                            received: 0,
                            mtime_ns,
                            kind: IncomingKind::Patch {
                                base,
                                result,
                                delta: Vec::new(),
                            },
                        },
                    );
                    self.maybe_finish(device, update)
                }
            }
            Message::Chunk {
                update,
                offset,
                data,
            } => self.chunk(device, update, offset, &data),
            Message::Delete { update, path, base } => self
                .apply_delete(device, task, &path, base)
                .map(|o| Some((update, o))),
            Message::Rename { update, from, to } => self
                .apply_rename(task, &from, &to)
                .map(|o| Some((update, o))),
            Message::UnlinkDevice => {
                let _ = self.store.remove_link(task, device);
                if let Some(t) = self.tasks.get_mut(&task) {
                    t.links.remove(&device);
                }
                Ok(None)
            }
            other => {
                tracing::debug!(?other, "ignored message");
                Ok(None)
            }
        };
        match result {
            Ok(Some((update, outcome))) => {
                self.received += 1;
                self.send(device, task, Message::ModificationDone { update, outcome });
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(%device, %task, error = %e, "could not apply an update");
                // Always answer, or the sender's per-device lock would wait forever.
                if let Some(update) = answers {
                    self.incoming.remove(&(device, update));
                    let outcome = Outcome::Failed {
                        reason: e.to_string(),
                    };
                    self.send(device, task, Message::ModificationDone { update, outcome });
                }
            }
        }
    }

    fn done(&mut self, device: DeviceId, update: UpdateId, outcome: Outcome) {
        if let Outcome::Failed { reason } = &outcome {
            if self.delivery.is_in_flight(device, update) && self.retried.insert((device, update)) {
                tracing::info!(%device, ?update, %reason, "the peer could not apply a patch; sending the whole file");
                if let Err(e) = self.send_update(device, update, true) {
                    tracing::warn!(error = %e, "could not send the whole file");
                }
                return;
            }
            tracing::warn!(%device, ?update, %reason, "the peer could not apply an update; it stays pending");
            let actions = self.delivery.failed(device, update);
            self.perform(actions);
            return;
        }
        let actions = self.delivery.acknowledged(device, update);
        self.perform(actions);
        self.tell(DaemonEvent::Delivered { device });
    }

    /// Tell `qsync events` listeners, if any.
    fn tell(&self, event: DaemonEvent) {
        if self.notify.receiver_count() > 0 {
            let _ = self.notify.send(event);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn begin_create(
        &mut self,
        device: DeviceId,
        task: TaskId,
        update: UpdateId,
        path: RelPath,
        kind: EntryKind,
        size: u64,
        hash: ContentHash,
        base: Option<ContentHash>,
        mtime_ns: i64,
    ) -> Result<Option<(UpdateId, Outcome)>, EngineError> {
        let root = self.root(task)?;
        if kind == EntryKind::Folder {
            let target = prepare_target(&root, &path)?;
            let entry = FileEntry {
                path: path.clone(),
                kind,
                size: 0,
                mtime_ns,
                hash: None,
                mode: 0,
            };
            self.expect(task, &path, Some(entry.clone()));
            if let Err(e) = fs::create_dir_all(&target) {
                self.withdraw(task, &path);
                return Err(EngineError::io("create", &target, e));
            }
            self.store
                .record_changes(task, vec![Change::Create(entry)], &[])?;
            return Ok(Some((update, Outcome::Applied)));
        }
        let target = prepare_target(&root, &path)?;
        let file = incoming_file(&target)
            .map_err(|e| EngineError::io("create a temporary file for", &target, e))?;
        self.incoming.insert(
            (device, update),
            Incoming {
                task,
                path,
                size,
                received: 0,
                mtime_ns,
                kind: IncomingKind::Full {
                    hash,
                    base,
                    kind,
                    file,
                    hasher: Box::default(),
                },
            },
        );
        self.maybe_finish(device, update)
    }

    fn chunk(
        &mut self,
        device: DeviceId,
        update: UpdateId,
        offset: u64,
        data: &[u8],
    ) -> Result<Option<(UpdateId, Outcome)>, EngineError> {
        let Some(incoming) = self.incoming.get_mut(&(device, update)) else {
            return Err(EngineError::State(format!(
                "a chunk for an unknown update {update:?}"
            )));
        };
        if offset != incoming.received || incoming.received + data.len() as u64 > incoming.size {
            self.incoming.remove(&(device, update));
            return Err(EngineError::State(
                "chunks out of order or past the announced size".into(),
            ));
        }
        match &mut incoming.kind {
            IncomingKind::Full { file, hasher, .. } => {
                hasher.update(data);
                file.write_all(data)
                    .map_err(|e| EngineError::io("write", file.path(), e))?
            }
            IncomingKind::Patch { delta, .. } => delta.extend_from_slice(data),
        }
        incoming.received += data.len() as u64;
        self.maybe_finish(device, update)
    }

    fn maybe_finish(
        &mut self,
        device: DeviceId,
        update: UpdateId,
    ) -> Result<Option<(UpdateId, Outcome)>, EngineError> {
        if self
            .incoming
            .get(&(device, update))
            .is_none_or(|i| i.received < i.size)
        {
            return Ok(None);
        }
        let Some(incoming) = self.incoming.remove(&(device, update)) else {
            return Ok(None);
        };
        let outcome = match self.finish(device, update, incoming) {
            Ok(Some(outcome)) => outcome,
            // Staged: answered when the batch is flushed.
            Ok(None) => return Ok(None),
            Err(e) => Outcome::Failed {
                reason: e.to_string(),
            },
        };
        Ok(Some((update, outcome)))
    }

    /// Put a completely received update in place; `None` when it was staged (see
    /// [`Staged`]) and is answered later.
    fn finish(
        &mut self,
        device: DeviceId,
        update: UpdateId,
        incoming: Incoming,
    ) -> Result<Option<Outcome>, EngineError> {
        let Incoming {
            task,
            path,
            mtime_ns,
            kind,
            ..
        } = incoming;
        if self
            .staged
            .files
            .iter()
            .any(|f| f.task == task && f.written.path == path)
        {
            // The same path again: decide against the staged version, in place.
            self.flush_staged();
        }
        let root = self.root(task)?;
        let target = safe_target(&root, &path)?;
        let seen = fingerprint(&target);
        let local_entry = stat_entry(&root, &path, None)?;
        let local = local_entry.as_ref().and_then(|e| e.hash);
        let (base, result) = match &kind {
            IncomingKind::Full { hash, base, .. } => (*base, *hash),
            IncomingKind::Patch { base, result, .. } => (Some(*base), *result),
        };
        let incoming_version = Version {
            hash: result,
            mtime_ns,
        };
        let local_version = local_entry.as_ref().and_then(|e| {
            e.hash.map(|hash| Version {
                hash,
                mtime_ns: e.mtime_ns,
            })
        });
        let decision = if local_entry.is_some() && local_version.is_none() {
            // A folder stands where a file arrives: the file goes aside.
            Decision::KeepIncomingAside {
                keep_as: crate::conflict::conflict_name(&path, &incoming_version),
            }
        } else {
            decide(base, incoming_version, local_version, &path)
        };
        let mut outcome = Outcome::Applied;
        let mut target = target;
        let mut aside = false;
        // A file just written: what it is, to save hashing it again; and whether its blob is
        // already kept.
        let mut written: Option<FileEntry> = None;
        let mut blob_kept = false;
        match decision {
            Decision::AlreadyThere => return Ok(Some(Outcome::Applied)),
            Decision::Apply => {}
            Decision::KeepLocalThenApply { keep_as } | Decision::KeepIncomingAside { keep_as }
                if matches!(kind, IncomingKind::Patch { .. }) =>
            {
                // The delta does not apply to the local version: ask for the whole file.
                let _ = keep_as;
                return Ok(Some(Outcome::Failed {
                    reason: "the local version differs from the patch's base".into(),
                }));
            }
            Decision::KeepLocalThenApply { keep_as } => {
                let keep = prepare_target(&root, &keep_as)?;
                fs::rename(&target, &keep)
                    .map_err(|e| EngineError::io("keep the local version as", &keep, e))?;
                tracing::warn!(%path, kept_as = %keep_as, "conflict: both versions kept, the incoming one has the name");
                outcome = Outcome::Conflict { kept_as: keep_as };
            }
            Decision::KeepIncomingAside { keep_as } => {
                target = prepare_target(&root, &keep_as)?;
                tracing::warn!(%path, kept_as = %keep_as, "conflict: both versions kept, the local one has the name");
                outcome = Outcome::Conflict { kept_as: keep_as };
                aside = true;
            }
        }
        let entry_kind = match &kind {
            IncomingKind::Full { kind, .. } => *kind,
            IncomingKind::Patch { .. } => EntryKind::File,
        };
        match kind {
            IncomingKind::Full {
                hash,
                file,
                kind: EntryKind::Symlink,
                ..
            } => {
                let mut text = Vec::new();
                fs::File::open(file.path())
                    .and_then(|mut f| f.read_to_end(&mut text))
                    .map_err(|e| EngineError::io("read", file.path(), e))?;
                if ContentHash::of(&text) != hash {
                    return Ok(Some(Outcome::Failed {
                        reason: "the received link target does not match its hash".into(),
                    }));
                }
                let link_target = PathBuf::from(String::from_utf8_lossy(&text).into_owned());
                if !aside {
                    let size = text.len() as u64;
                    self.expect_content(task, &path, EntryKind::Symlink, size, mtime_ns, hash);
                }
                let made = remove_any(&target)
                    .map_err(|e| EngineError::io("replace", &target, e))
                    .and_then(|()| {
                        std::os::unix::fs::symlink(&link_target, &target)
                            .map_err(|e| EngineError::io("create the link", &target, e))
                    });
                if let Err(e) = made {
                    self.withdraw(task, &path);
                    return Err(e);
                }
            }
            IncomingKind::Full {
                hash, file, hasher, ..
            } => {
                if hasher.finish() != hash {
                    return Ok(Some(Outcome::Failed {
                        reason: "the received content does not match its hash".into(),
                    }));
                }
                let size = file.as_file().metadata().map(|m| m.len()).unwrap_or(0);
                // Received files keep their sender's modification time.
                let _ = file.as_file().set_modified(system_time(mtime_ns));
                if !aside && matches!(outcome, Outcome::Applied) {
                    // No conflict: made durable, put in place and answered with the
                    // batch it joins.
                    self.staged.files.push(StagedFile {
                        device,
                        update,
                        task,
                        target,
                        file: file.into_temp_path(),
                        written: FileEntry {
                            path,
                            kind: EntryKind::File,
                            size,
                            mtime_ns,
                            hash: Some(hash),
                            mode: 0,
                        },
                        seen,
                        local,
                    });
                    self.staged.bytes += size;
                    self.staged.since.get_or_insert_with(Instant::now);
                    if self.staged.files.len() >= STAGE_MAX_FILES
                        || self.staged.bytes >= STAGE_MAX_BYTES
                    {
                        self.flush_staged();
                    }
                    return Ok(None);
                }
                // Make the file durable and, unless it goes aside, keep its content for
                // future deltas: a kernel copy of the verified temporary file, made before
                // it takes its name so that no later edit can slip into the copy. The two
                // run side by side, so their fsyncs overlap.
                let blobs = self.store.blobs();
                let (synced, kept) = std::thread::scope(|s| {
                    let kept =
                        (!aside).then(|| s.spawn(|| blobs.put_verified_copy(file.path(), &hash)));
                    let synced = file.as_file().sync_all();
                    (synced, kept.map(|k| k.join()))
                });
                synced.map_err(|e| EngineError::io("sync", file.path(), e))?;
                match kept {
                    Some(Ok(result)) => result?,
                    Some(Err(_)) => {
                        return Err(EngineError::State("the blob copy thread panicked".into()))
                    }
                    None => {}
                }
                if !aside {
                    self.expect_content(task, &path, EntryKind::File, size, mtime_ns, hash);
                    blob_kept = true;
                    written = Some(FileEntry {
                        path: path.clone(),
                        kind: EntryKind::File,
                        size,
                        mtime_ns,
                        hash: Some(hash),
                        mode: 0,
                    });
                }
                if let Err(e) = file.persist(&target) {
                    self.withdraw(task, &path);
                    return Err(EngineError::io("put in place", &target, e.error));
                }
            }
            IncomingKind::Patch { result, delta, .. } => {
                let size = qsync_delta::Header::read(&mut &delta[..]).map_or(0, |h| h.target_len);
                self.expect_content(task, &path, EntryKind::File, size, mtime_ns, result);
                if let Err(e) = qsync_delta::apply_file(&delta[..], &target, &target) {
                    self.withdraw(task, &path);
                    return Ok(Some(Outcome::Failed {
                        reason: e.to_string(),
                    }));
                }
                // Received files keep their sender's modification time.
                if let Ok(file) = fs::OpenOptions::new().write(true).open(&target) {
                    let _ = file.set_modified(system_time(mtime_ns));
                }
                // The applier checked the result against `result`.
                written = Some(FileEntry {
                    path: path.clone(),
                    kind: EntryKind::File,
                    size,
                    mtime_ns,
                    hash: Some(result),
                    mode: 0,
                });
            }
        }
        if aside {
            // The copy kept aside is a new local file: the watcher reports it and it syncs.
            return Ok(Some(outcome));
        }
        // Record the new state, and keep its content for future deltas. The hash of a file
        // just written is reused unless its size or mtime moved since.
        let entry = stat_entry(&root, &path, written.as_ref())?.ok_or_else(|| {
            EngineError::State(format!("{path} vanished right after it was written"))
        })?;
        let kept = blob_kept && written.as_ref().is_some_and(|w| w.hash == entry.hash);
        match entry.kind {
            _ if kept => {}
            EntryKind::Folder => {}
            EntryKind::File => self.owe_blob(path.to_local(&root), entry.hash),
            EntryKind::Symlink => {
                self.keep_content(&root, &entry)?;
            }
        }
        let change = if local.is_some() && entry_kind == EntryKind::File {
            Change::Modify {
                entry,
                base: local,
                delta: None,
            }
        } else {
            Change::Create(entry)
        };
        self.store.record_changes(task, vec![change], &[])?;
        self.release(local.map(Replaced::Blob));
        Ok(Some(outcome))
    }

    /// Make the staged files durable, put them in place, record them and answer their
    /// senders, in that order (see [`Staged`]). A file whose target changed on this device
    /// since it was accepted is not put in place: its sender is told, and sends it again.
    fn flush_staged(&mut self) {
        let Staged { files, .. } = std::mem::take(&mut self.staged);
        if files.is_empty() {
            return;
        }
        let failed = |reason: String| Outcome::Failed { reason };
        let mut answers = Vec::with_capacity(files.len());
        // 1. The content is durable.
        let content_folders = parent_folders(files.iter().map(|f| f.target.as_path()));
        if let Err(e) = sync_file_systems(&content_folders) {
            tracing::warn!(error = %e, "could not make received files durable");
            for f in files {
                let reason = format!("could not make {} durable here: {e}", f.written.path);
                answers.push((f.device, f.task, f.update, failed(reason)));
            }
            return self.answer(answers);
        }
        // 2. In place, unless something changed there meanwhile.
        let mut placed = Vec::with_capacity(files.len());
        for f in files {
            let path = f.written.path.clone();
            if fingerprint(&f.target) != f.seen {
                let reason = format!("{path} changed on this device while it arrived");
                answers.push((f.device, f.task, f.update, failed(reason)));
                continue;
            }
            let w = &f.written;
            let hash = w.hash.unwrap_or_else(|| ContentHash::of(b""));
            self.expect_content(f.task, &path, EntryKind::File, w.size, w.mtime_ns, hash);
            if let Err(e) = f.file.persist(&f.target) {
                self.withdraw(f.task, &path);
                let reason = format!("could not put {path} in place: {}", e.error);
                answers.push((f.device, f.task, f.update, failed(reason)));
                continue;
            }
            placed.push((f.device, f.task, f.update, f.target, f.written, f.local));
        }
        // 3. The names are durable before they are recorded: a recorded file whose rename
        // a crash undid would look deleted here, and that delete would spread.
        let name_folders = parent_folders(placed.iter().map(|p| p.3.as_path()));
        if let Err(e) = sync_file_systems(&name_folders) {
            tracing::warn!(error = %e, "could not make received files' names durable");
            for (device, task, update, _, written, ..) in placed {
                let reason = format!("could not make {} durable here: {e}", written.path);
                answers.push((device, task, update, failed(reason)));
            }
            return self.answer(answers);
        }
        // 4. Recorded, one transaction per task.
        let mut by_task: HashMap<TaskId, Vec<_>> = HashMap::new();
        for (device, task, update, target, written, local) in placed {
            let recorded = self.root(task).and_then(|root| {
                let entry = stat_entry(&root, &written.path, Some(&written))?.ok_or_else(|| {
                    EngineError::State(format!(
                        "{} vanished right after it was written",
                        written.path
                    ))
                })?;
                self.owe_blob(target, entry.hash);
                Ok(match local {
                    Some(_) => Change::Modify {
                        entry,
                        base: local,
                        delta: None,
                    },
                    None => Change::Create(entry),
                })
            });
            match recorded {
                Ok(change) => by_task
                    .entry(task)
                    .or_default()
                    .push((device, update, local, change)),
                Err(e) => answers.push((device, task, update, failed(e.to_string()))),
            }
        }
        for (task, items) in by_task {
            let (heads, changes): (Vec<_>, Vec<_>) = items
                .into_iter()
                .map(|(device, update, local, change)| ((device, update, local), change))
                .unzip();
            match self.store.record_changes(task, changes, &[]) {
                Ok(_) => {
                    for (device, update, local) in heads {
                        self.release(local.map(Replaced::Blob));
                        answers.push((device, task, update, Outcome::Applied));
                    }
                }
                Err(e) => {
                    for (device, update, _) in heads {
                        answers.push((device, task, update, failed(e.to_string())));
                    }
                }
            }
        }
        self.answer(answers);
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

    /// Tell senders how their updates went.
    fn answer(&mut self, answers: Vec<(DeviceId, TaskId, UpdateId, Outcome)>) {
        for (device, task, update, outcome) in answers {
            self.received += 1;
            match &outcome {
                Outcome::Applied => self.tell(DaemonEvent::Applied { task, from: device }),
                Outcome::Conflict { kept_as } => self.tell(DaemonEvent::Conflict {
                    task,
                    kept_as: kept_as.clone(),
                }),
                Outcome::Failed { .. } => {}
            }
            self.send(device, task, Message::ModificationDone { update, outcome });
        }
    }

    fn apply_delete(
        &mut self,
        device: DeviceId,
        task: TaskId,
        path: &RelPath,
        base: Option<ContentHash>,
    ) -> Result<Outcome, EngineError> {
        let root = self.root(task)?;
        let target = safe_target(&root, path)?;
        let local = stat_entry(&root, path, None)?;
        let Some(local) = local else {
            return Ok(Outcome::Applied);
        };
        if local.kind != EntryKind::Folder && local.hash != base {
            // Changed here since: keep it (under its own name), do not delete.
            return Ok(Outcome::Conflict {
                kept_as: path.clone(),
            });
        }
        if local.kind == EntryKind::Folder {
            if let Some(outcome) = self.delete_folder_keeping_changes(device, task, &root, path)? {
                return Ok(outcome);
            }
        }
        self.expect(task, path, None);
        if let Err(e) = remove_any(&target) {
            self.withdraw(task, path);
            return Err(EngineError::io("delete", &target, e));
        }
        self.store
            .record_changes(task, vec![Change::Delete(path.clone())], &[])?;
        let replaced = match local.hash {
            Some(hash) if local.kind != EntryKind::Folder => Replaced::Blob(hash),
            _ => Replaced::Tree,
        };
        self.release(Some(replaced));
        Ok(Outcome::Applied)
    }

    /// A folder deleted on `device`. What changed here since `device` last heard of it (a
    /// file with an update still pending for `device`, or one that differs from what was
    /// last recorded) is kept, with the folders holding it; the rest is deleted. `None` when
    /// nothing needs keeping: the caller deletes the whole folder.
    fn delete_folder_keeping_changes(
        &mut self,
        device: DeviceId,
        task: TaskId,
        root: &Path,
        folder: &RelPath,
    ) -> Result<Option<Outcome>, EngineError> {
        let mut pending: HashSet<RelPath> = HashSet::new();
        for update in self.store.missing_for(device)? {
            if update.task == task {
                pending.extend(update.new_path);
                pending.insert(update.path);
            }
        }
        let recorded: HashMap<RelPath, FileEntry> = self
            .store
            .files(task)?
            .into_iter()
            .filter(|f| f.entry.path.starts_with(folder))
            .map(|f| (f.entry.path.clone(), f.entry))
            .collect();
        let mut files = Vec::new();
        let mut folders = Vec::new();
        collect_tree(root, folder, &mut files, &mut folders);
        let mut keep = Vec::new();
        let mut delete = Vec::new();
        for path in files {
            let known = recorded.get(&path);
            let here = stat_entry(root, &path, known)?;
            if keep_on_remote_folder_delete(here.as_ref(), known, pending.contains(&path)) {
                keep.push(path);
            } else if here.is_some() {
                delete.push(path);
            }
        }
        if keep.is_empty() {
            return Ok(None);
        }
        tracing::warn!(%folder, kept = keep.len(), "folder deleted on the other device; files changed here are kept");
        let mut removed = Vec::new();
        for path in delete {
            self.expect(task, &path, None);
            let local = path.to_local(root);
            match fs::remove_file(&local) {
                Ok(()) => removed.push(path),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => removed.push(path),
                Err(e) => {
                    self.withdraw(task, &path);
                    return Err(EngineError::io("delete", &local, e));
                }
            }
        }
        // Deepest first, so that a folder emptied by the removals goes too.
        folders.sort_by_key(|f| std::cmp::Reverse(f.as_str().len()));
        for path in folders {
            if fs::remove_dir(path.to_local(root)).is_ok() {
                self.expect(task, &path, None);
                removed.push(path);
            }
        }
        self.store
            .record_changes(task, removed.into_iter().map(Change::Delete).collect(), &[])?;
        self.release(Some(Replaced::Tree));
        Ok(Some(Outcome::Conflict {
            kept_as: folder.clone(),
        }))
    }

    fn apply_rename(
        &mut self,
        task: TaskId,
        from: &RelPath,
        to: &RelPath,
    ) -> Result<Outcome, EngineError> {
        let root = self.root(task)?;
        let source = safe_target(&root, from)?;
        let Some(entry) = stat_entry(&root, from, None)? else {
            // Nothing to rename here: the sender then sends what is at the new path.
            return Ok(Outcome::Failed {
                reason: format!("{from} is not here to rename"),
            });
        };
        let dest = prepare_target(&root, to)?;
        self.expect(task, from, None);
        self.expect(
            task,
            to,
            Some(FileEntry {
                path: to.clone(),
                ..entry
            }),
        );
        if let Err(e) = fs::rename(&source, &dest) {
            self.withdraw(task, from);
            self.withdraw(task, to);
            return Err(EngineError::io("rename", &source, e));
        }
        self.store.record_changes(
            task,
            vec![Change::Rename {
                from: from.clone(),
                to: to.clone(),
            }],
            &[],
        )?;
        Ok(Outcome::Applied)
    }

    fn expect(&mut self, task: TaskId, path: &RelPath, state: Option<FileEntry>) {
        if let Some(t) = self.tasks.get_mut(&task) {
            t.index.expect(path.clone(), state);
        }
    }

    /// Take back an announcement whose write failed (nothing of it will be seen, and its
    /// absence must not be taken for a deletion).
    fn withdraw(&mut self, task: TaskId, path: &RelPath) {
        if let Some(t) = self.tasks.get_mut(&task) {
            t.index.withdraw(path);
        }
    }

    /// Announce that the engine is about to write this content at `path`.
    fn expect_content(
        &mut self,
        task: TaskId,
        path: &RelPath,
        kind: EntryKind,
        size: u64,
        mtime_ns: i64,
        hash: ContentHash,
    ) {
        let entry = FileEntry {
            path: path.clone(),
            kind,
            size,
            mtime_ns,
            hash: Some(hash),
            mode: 0,
        };
        self.expect(task, path, Some(entry));
    }

    fn root(&self, task: TaskId) -> Result<PathBuf, EngineError> {
        self.tasks
            .get(&task)
            .map(|t| t.root.clone())
            .ok_or(EngineError::UnknownTask(task))
    }
}

/// Every file (or link) and folder under `folder`, as paths of the task rooted at `root`;
/// QSync's own temporary files are skipped. `folder` itself is listed with the folders.
fn collect_tree(
    root: &Path,
    folder: &RelPath,
    files: &mut Vec<RelPath>,
    folders: &mut Vec<RelPath>,
) {
    folders.push(folder.clone());
    let Ok(entries) = fs::read_dir(folder.to_local(root)) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        if name.starts_with(".qsync-") {
            continue;
        }
        let Ok(child) = RelPath::new(name).map(|n| folder.join(&n)) else {
            continue;
        };
        match entry.file_type() {
            Ok(t) if t.is_dir() => collect_tree(root, &child, files, folders),
            Ok(_) => files.push(child),
            Err(_) => {}
        }
    }
}
