//! Starting a daemon: the lock on its state folder, its identity and store, the network
//! runtime and listener, the control socket, discovery, and the engine with its parts;
//! and the handle front ends reach it through.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::Path;
use std::sync::mpsc::{channel, Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qsync_base::{ContentHash, DeviceId};
use qsync_discovery::{Config as DiscoveryConfig, Discovery};
use qsync_store::Store;

use super::{hashing, identity, keeping, links, peers, tasks, DaemonConfig, Engine, Event};
use crate::control::{control_socket, EventFeed, Request};
use crate::keeper::Keeper;
use crate::net::{self, Linked, NetCtx};
use crate::sync::SyncDriver;
use crate::{btf, EngineError};

/// Run a daemon until it is stopped (see [`DaemonHandle::stop`]).
pub fn run(config: DaemonConfig) -> Result<(), EngineError> {
    Daemon::start(config)?.run();
    Ok(())
}

/// A daemon started and listening: [`Daemon::run`] carries it out on the calling thread
/// until it is stopped; front ends reach it through [`Daemon::handle`].
pub struct Daemon {
    // Fields drop in this order: the engine (its store closes) before the runtime, and
    // the lock last.
    engine: Engine,
    inbox: Receiver<Event>,
    _discovery: Option<Discovery>,
    runtime: tokio::runtime::Runtime,
    _lock: File,
}

/// How front ends reach a running daemon: its commands, its events, its stop. Cheap to
/// clone; it outlives the daemon harmlessly (requests then fail).
#[derive(Clone)]
pub struct DaemonHandle {
    events: Sender<Event>,
    feed: EventFeed,
}

impl DaemonHandle {
    /// Hand a command to the daemon (as the control socket does); `false` once it stopped.
    pub fn request(&self, request: Request) -> bool {
        self.events.send(Event::Control(request)).is_ok()
    }

    /// What happens in the daemon, numbered, with a bounded history.
    pub fn feed(&self) -> &EventFeed {
        &self.feed
    }

    /// Ask the daemon to stop: what was placed is made durable, connections close, and
    /// [`Daemon::run`] returns.
    pub fn stop(&self) {
        let _ = self.events.send(Event::Stop);
    }
}

impl Daemon {
    /// The runtime of its network side, where front ends may run their own servers.
    pub fn runtime(&self) -> tokio::runtime::Handle {
        self.runtime.handle().clone()
    }

    /// A handle for front ends.
    pub fn handle(&self) -> DaemonHandle {
        DaemonHandle {
            events: self.engine.events.clone(),
            feed: self.engine.telling.feed().clone(),
        }
    }

    /// Carry out the daemon on this thread until it is stopped. The store closes before
    /// the lock on the state folder is let go; the network side gets two seconds to end
    /// (a name lookup under way is not waited for).
    pub fn run(self) {
        let Daemon {
            mut engine,
            inbox,
            _discovery,
            runtime,
            _lock,
        } = self;
        engine.run(&inbox);
        drop(engine);
        drop(_discovery);
        runtime.shutdown_timeout(Duration::from_secs(2));
        tracing::info!("qsync daemon stopped");
        drop(_lock);
    }

    /// Start a daemon on `config`'s state folder: refused while another runs on it.
    pub fn start(config: DaemonConfig) -> Result<Daemon, EngineError> {
        let lock = lock_state(&config.state_dir)?;
        let (engine, inbox, discovery, runtime) = start_engine(config)?;
        Ok(Daemon {
            engine,
            inbox,
            _discovery: discovery,
            runtime,
            _lock: lock,
        })
    }
}

/// Take the state folder's lock (`daemon.lock`, holding the pid of the daemon that has
/// it): one daemon per state folder. The lock goes with the process, however it ends.
fn lock_state(state_dir: &Path) -> Result<File, EngineError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    // The folder private from the start (the store makes it 0700 too, later): no other
    // user opens the lock file and holds it.
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(state_dir)
        .map_err(|e| EngineError::io("create the state folder", state_dir, e))?;
    let path = state_dir.join("daemon.lock");
    // Opened without truncating: the pid of a running daemon stays readable. Never
    // through a symbolic link planted at its name.
    let mut file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
        .open(&path)
        .map_err(|e| EngineError::io("open", &path, e))?;
    match file.try_lock() {
        Ok(()) => {}
        Err(std::fs::TryLockError::WouldBlock) => {
            let mut text = String::new();
            let _ = file.take(32).read_to_string(&mut text);
            return Err(EngineError::AlreadyRunning {
                state_dir: state_dir.to_owned(),
                pid: text.trim().parse().ok(),
            });
        }
        Err(std::fs::TryLockError::Error(e)) => return Err(EngineError::io("lock", &path, e)),
    }
    let write_pid = |file: &mut File| -> std::io::Result<()> {
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())
    };
    write_pid(&mut file).map_err(|e| EngineError::io("write the pid into", &path, e))?;
    Ok(file)
}

type Started = (
    Engine,
    Receiver<Event>,
    Option<Discovery>,
    tokio::runtime::Runtime,
);

/// Tell the person (log and standard output) that the state folder was upgraded.
fn say_upgraded(me: DeviceId) {
    let text = format!(
        "this state folder was made by an older QSync: this device's id is now its key ({me}), and the links made before were dropped; link your devices again (tasks and files are kept)"
    );
    tracing::warn!("{text}");
    let _ = writeln!(std::io::stdout(), "{text}");
}

fn start_engine(config: DaemonConfig) -> Result<Started, EngineError> {
    let loaded = identity::load(&config.state_dir)?;
    let me = loaded.identity.device();
    let loaded_private = loaded.identity.private_bytes();
    let store = Store::open(&config.state_dir)?;
    if loaded.upgraded {
        say_upgraded(me);
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
    let feed = EventFeed::new();
    crate::control::serve(
        &runtime,
        control_socket(&config.state_dir),
        {
            let events = events.clone();
            move |request| events.send(Event::Control(request)).is_ok()
        },
        feed.clone(),
    )?;

    let discovery = if config.mdns {
        Some(start_discovery(&config, me, port, &linked, &events)?)
    } else {
        None
    };

    let mut sync = SyncDriver::start(me, counter_key_seed(&loaded_private), &config.state_dir)?;
    let wake = events.clone();
    sync.set_wake(std::sync::Arc::new(move || {
        let _ = wake.send(Event::Reused);
    }));
    let hashers = hashing::Hashers::start(&events, &config.state_dir)?;
    let links = links::Links::new(config.btf_dir.clone(), config.answer_timeout);
    let mut engine = Engine {
        me,
        tasks: tasks::Tasks::new(hashers, config.rescan_every, events.clone()),
        keeping: keeping::Keeping::new(keeper, config.base_share),
        config,
        store,
        peers: peers::Peers::new(me, linked, net, runtime.handle().clone()),
        events,
        telling: super::telling::Telling::new(feed),
        sync,
        links,
        versions: super::versions::Waiting::new(),
        stopping: false,
    };
    engine.change(|c| c.load())?;
    tracing::info!(device = %me, port, "qsync daemon ready");
    // Not println!: a closed or full standard output must not stop the daemon.
    let _ = writeln!(
        std::io::stdout(),
        "qsync daemon {me} listening on port {port}"
    );
    let _ = std::io::stdout().flush();
    Ok((engine, inbox, discovery, runtime))
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
