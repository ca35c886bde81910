//! Starting a daemon: its identity and store, the network runtime and listener, the
//! control socket, discovery, and the engine thread with its parts.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::sync::mpsc::{channel, Sender};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qsync_base::{ContentHash, DeviceId};
use qsync_discovery::{Config as DiscoveryConfig, Discovery};
use qsync_store::Store;

use super::{hashing, identity, keeping, links, peers, tasks, DaemonConfig, Engine, Event};
use crate::control::control_socket;
use crate::keeper::Keeper;
use crate::net::{self, Linked, NetCtx};
use crate::sync::SyncDriver;
use crate::{btf, EngineError};

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
        notify,
        sync,
        links,
        progress: Default::default(),
        versions: super::versions::Waiting::new(),
    };
    engine.change(|c| c.load())?;
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
