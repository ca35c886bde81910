//! The mDNS side and the threads that drive [`Presence`].

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mdns_sd::{ServiceDaemon, ServiceEvent, ServiceInfo};
use qsync_base::DeviceId;
use qsync_wire::PROTOCOL_VERSION;

use crate::probe::Prober;
use crate::{DiscoveryError, DiscoveryEvent, Input, Peer, Presence};

/// The mDNS service type of QSync daemons.
pub const SERVICE_TYPE: &str = "_qsync._tcp.local.";

/// How discovery runs.
#[derive(Debug, Clone)]
pub struct Config {
    /// This device.
    pub device: DeviceId,
    /// Its human name, announced in the TXT record.
    pub name: String,
    /// The port the daemon listens on.
    pub port: u16,
    /// A device not heard from for this long is lost (default 30 s).
    pub expiry: Duration,
    /// How often known devices are probed (default 10 s).
    pub probe_interval: Duration,
    /// Announce and browse with mDNS (off: manual peers only).
    pub mdns: bool,
    /// The devices linked to this one, shared with the daemon and read at every probe
    /// round: kept over others when the table of devices is full, and probed first (see
    /// [`Presence`]).
    pub linked: Arc<Mutex<HashSet<DeviceId>>>,
}

impl Config {
    /// Defaults for `device`, listening on `port`.
    pub fn new(device: DeviceId, name: impl Into<String>, port: u16) -> Self {
        Self {
            device,
            name: name.into(),
            port,
            expiry: Duration::from_secs(30),
            probe_interval: Duration::from_secs(10),
            mdns: true,
            linked: Arc::default(),
        }
    }
}

/// Why a TXT record was not taken as a QSync device.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TxtError {
    /// No `id` property.
    #[error("no `id` property")]
    MissingId,
    /// The `id` property is not a device id.
    #[error("`id` is not a device id: {0}")]
    BadId(String),
    /// Another protocol version.
    #[error("protocol version `{0}`, this device speaks {PROTOCOL_VERSION}")]
    WrongVersion(String),
}

/// Read a QSync TXT record: the device id and the human name (at most 64 characters).
pub fn parse_txt<'a>(
    get: impl Fn(&str) -> Option<&'a str>,
) -> Result<(DeviceId, String), TxtError> {
    let version = get("v").unwrap_or("");
    if version.parse::<u8>().ok() != Some(PROTOCOL_VERSION) {
        return Err(TxtError::WrongVersion(version.chars().take(16).collect()));
    }
    let id = get("id").ok_or(TxtError::MissingId)?;
    let device = id
        .parse::<DeviceId>()
        .map_err(|e| TxtError::BadId(e.to_string()))?;
    let name = get("name").unwrap_or("").chars().take(64).collect();
    Ok((device, name))
}

/// Running discovery: announcing, browsing, probing. Dropping it stops everything and
/// withdraws the announcement.
pub struct Discovery {
    daemon: Option<ServiceDaemon>,
    fullname: String,
    prober: Prober,
    manual: Arc<Mutex<Vec<SocketAddr>>>,
    stop: Arc<AtomicBool>,
}

impl std::fmt::Debug for Discovery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Discovery")
            .field("fullname", &self.fullname)
            .finish_non_exhaustive()
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> Result<(), DiscoveryError> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(|_| ())
        .map_err(|source| DiscoveryError::Io {
            op: "start a discovery thread",
            source,
        })
}

impl Discovery {
    /// Start announcing and browsing; events arrive on the returned channel.
    pub fn start(config: Config) -> Result<(Self, Receiver<DiscoveryEvent>), DiscoveryError> {
        let (inputs, input_rx) = channel::<Input>();
        let (events_tx, events) = channel();
        let stop = Arc::new(AtomicBool::new(false));
        let manual: Arc<Mutex<Vec<SocketAddr>>> = Arc::new(Mutex::new(Vec::new()));
        let (daemon, fullname) = if config.mdns {
            let (daemon, fullname) = announce_and_browse(&config, inputs.clone(), stop.clone())?;
            (Some(daemon), fullname)
        } else {
            (None, String::new())
        };
        let probe_timeout = Duration::from_secs(2).min(config.probe_interval);
        let prober = Prober::start(probe_timeout, inputs)?;
        let rounds = Rounds {
            prober: prober.clone(),
            manual: manual.clone(),
            linked: config.linked.clone(),
        };
        let flag = stop.clone();
        spawn("qsync-presence", move || {
            track(&config, &input_rx, &events_tx, &rounds, &flag);
        })?;
        Ok((
            Self {
                daemon,
                fullname,
                prober,
                manual,
                stop,
            },
            events,
        ))
    }

    /// Add a device by address, for networks where multicast is blocked. It is probed now
    /// and with every probe round; once it answers it is reported like any other device.
    pub fn add_manual(&self, address: SocketAddr) {
        if let Ok(mut manual) = self.manual.lock() {
            if !manual.contains(&address) {
                manual.push(address);
            }
        }
        self.prober.queue(address);
    }
}

/// What the presence thread needs for a probe round.
struct Rounds {
    prober: Prober,
    manual: Arc<Mutex<Vec<SocketAddr>>>,
    linked: Arc<Mutex<HashSet<DeviceId>>>,
}

impl Rounds {
    /// Tell `presence` which devices are linked now.
    fn tell_linked(&self, presence: &mut Presence) {
        let linked: Vec<DeviceId> = match self.linked.lock() {
            Ok(linked) => linked.iter().copied().collect(),
            Err(_) => return,
        };
        presence.handle(Input::Linked(linked), Instant::now());
    }

    /// Queue a probe of every known address, linked devices first; what does not fit in
    /// the queue waits for the next round.
    fn probe(&self, presence: &Presence) {
        let manual: Vec<SocketAddr> = match self.manual.lock() {
            Ok(manual) => manual.clone(),
            Err(_) => Vec::new(),
        };
        let targets = presence.probe_targets(&manual);
        let queued = targets.iter().filter(|a| self.prober.queue(**a)).count();
        if queued < targets.len() {
            tracing::debug!(
                queued,
                waiting = targets.len() - queued,
                "probe round: some addresses are still being probed or wait for the next round"
            );
        }
    }
}

/// Announce this device over mDNS and start the thread that turns what browsing hears
/// into `inputs`, until `stop`; the daemon and the announcement's full name.
fn announce_and_browse(
    config: &Config,
    inputs: Sender<Input>,
    stop: Arc<AtomicBool>,
) -> Result<(ServiceDaemon, String), DiscoveryError> {
    let id = config.device.to_string().replace('-', "");
    let instance = format!("qsync-{}", id.get(..16).unwrap_or("device"));
    let daemon = ServiceDaemon::new()?;
    let properties = [
        ("id", config.device.to_string()),
        ("v", PROTOCOL_VERSION.to_string()),
        ("name", config.name.clone()),
    ];
    let info = ServiceInfo::new(
        SERVICE_TYPE,
        &instance,
        &format!("{instance}.local."),
        "",
        config.port,
        &properties[..],
    )?
    .enable_addr_auto();
    let fullname = info.get_fullname().to_owned();
    daemon.register(info)?;
    let browse = daemon.browse(SERVICE_TYPE)?;
    spawn("qsync-mdns", move || {
        let mut names: HashMap<String, DeviceId> = HashMap::new();
        while !stop.load(Ordering::Relaxed) {
            let event = match browse.recv_timeout(Duration::from_millis(500)) {
                Ok(event) => event,
                Err(mdns_sd::RecvTimeoutError::Timeout) => continue,
                Err(_) => break,
            };
            let Some(input) = heard(event, &mut names) else {
                continue;
            };
            if inputs.send(input).is_err() {
                break;
            }
        }
    })?;
    Ok((daemon, fullname))
}

/// What one mDNS event says, if anything (`names`: the devices of the announcements
/// resolved so far, by full name, for their goodbyes).
fn heard(event: ServiceEvent, names: &mut HashMap<String, DeviceId>) -> Option<Input> {
    match event {
        ServiceEvent::ServiceResolved(service) => {
            match parse_txt(|key| service.txt_properties.get_property_val_str(key)) {
                Ok((device, name)) => {
                    names.insert(service.fullname.clone(), device);
                    let addresses = service
                        .addresses
                        .iter()
                        .map(|ip| SocketAddr::new(ip.to_ip_addr(), service.port))
                        .collect();
                    Some(Input::Announced(Peer {
                        device,
                        name,
                        addresses,
                    }))
                }
                Err(e) => {
                    tracing::info!(service = %service.fullname, error = %e, "ignoring an announcement that is not a usable QSync device");
                    None
                }
            }
        }
        ServiceEvent::ServiceRemoved(_, fullname) => names.remove(&fullname).map(Input::Withdrawn),
        _ => None,
    }
}

/// The presence thread: feeds [`Presence`] what comes on `inputs` (and a tick when nothing
/// does), sends its events, and runs a probe round every `config.probe_interval`, until
/// `stop` or nobody listens.
fn track(
    config: &Config,
    inputs: &Receiver<Input>,
    events: &Sender<DiscoveryEvent>,
    rounds: &Rounds,
    stop: &AtomicBool,
) {
    let mut presence = Presence::new(config.device, config.expiry);
    let tick = Duration::from_millis(500).min(config.probe_interval);
    let mut next_probe = Instant::now() + config.probe_interval;
    rounds.tell_linked(&mut presence);
    while !stop.load(Ordering::Relaxed) {
        let input = match inputs.recv_timeout(tick) {
            Ok(input) => input,
            Err(RecvTimeoutError::Timeout) => Input::Tick,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        for event in presence.handle(input, Instant::now()) {
            if events.send(event).is_err() {
                return;
            }
        }
        if Instant::now() >= next_probe {
            next_probe = Instant::now() + config.probe_interval;
            rounds.tell_linked(&mut presence);
            rounds.probe(&presence);
        }
    }
}

impl Drop for Discovery {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(daemon) = self.daemon.take() {
            if let Ok(done) = daemon.unregister(&self.fullname) {
                let _ = done.recv_timeout(Duration::from_secs(1));
            }
            let _ = daemon.shutdown();
        }
    }
}
