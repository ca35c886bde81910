//! The linked devices as the network sees them: the connection to each (one at a time),
//! where each was last proven to listen and where mDNS says it listens, the dials made
//! (the smaller id dials first; every other attempt tries mDNS's suggestion), and the
//! probes of devices mDNS said left (a forged goodbye must not close a live session: the
//! device itself is pinged, and only silence closes it).
//!
//! It owns no sync state: the daemon tells the core and the store what these changes mean.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use qsync_base::{DeviceId, TaskId};
use qsync_wire::Message;

use crate::control::Reply;
use crate::net::PeerConn;
use crate::net::{self, Linked, NetCtx, Outbound};

/// How long a device mDNS said left has to answer a ping before its session is closed.
const PROBE_WAIT: Duration = Duration::from_secs(5);

/// The linked devices' connections, addresses, dials and probes.
/// How many devices found by mDNS are kept for front ends (discovery bounds its own
/// table too; this bounds what a flood of announcements costs here).
const MAX_NEARBY: usize = 256;

pub(super) struct Peers {
    me: DeviceId,
    /// The devices linked with this one (shared with the network tasks and discovery).
    pub(super) linked: Linked,
    conns: HashMap<DeviceId, PeerConn>,
    /// Where each linked device was last proven to listen (from the link, or a dial).
    addresses: HashMap<DeviceId, SocketAddr>,
    /// Where mDNS says a linked device listens: tried in turn with `addresses`.
    suggested: HashMap<DeviceId, SocketAddr>,
    dial_attempts: HashMap<DeviceId, u32>,
    last_dial: HashMap<DeviceId, Instant>,
    /// Devices mDNS said left, asked whether they are still there: the nonce and when.
    probes: HashMap<DeviceId, (u64, Instant)>,
    /// Devices this device's person paused: never dialled, their connections dropped.
    paused: std::collections::HashSet<DeviceId>,
    /// What mDNS found on the network, linked or not, for front ends offering devices to
    /// link: each device's announced name and addresses (at most [`MAX_NEARBY`]).
    nearby: HashMap<DeviceId, (String, Vec<SocketAddr>)>,
    net: NetCtx,
    runtime: tokio::runtime::Handle,
}

impl Peers {
    /// No connection yet; `linked` is the set the network tasks check.
    pub(super) fn new(
        me: DeviceId,
        linked: Linked,
        net: NetCtx,
        runtime: tokio::runtime::Handle,
    ) -> Self {
        Self {
            me,
            linked,
            conns: HashMap::new(),
            addresses: HashMap::new(),
            suggested: HashMap::new(),
            paused: Default::default(),
            dial_attempts: HashMap::new(),
            last_dial: HashMap::new(),
            probes: HashMap::new(),
            nearby: HashMap::new(),
            net,
            runtime,
        }
    }

    /// The devices mDNS finds now, by id.
    pub(super) fn nearby(&self) -> Vec<crate::control::NearbyInfo> {
        let mut found: Vec<_> = self
            .nearby
            .iter()
            .map(|(device, (name, addresses))| crate::control::NearbyInfo {
                device: *device,
                name: name.clone(),
                addresses: addresses.iter().map(ToString::to_string).collect(),
                linked: self.is_linked(device),
            })
            .collect();
        found.sort_by_key(|d| d.device.to_string());
        found
    }

    /// What the network tasks need (to dial, to pair).
    pub(super) fn net(&self) -> &NetCtx {
        &self.net
    }

    /// Pair with the device at `address` (`HOST:PORT`, a name or an address) as `plan`
    /// says, on the network runtime: `progress` hears the code to show (and its closing
    /// stops the pairing: the person went away), `then` the outcome.
    pub(super) fn pair(
        &self,
        address: String,
        plan: net::LinkPlan,
        progress: tokio::sync::mpsc::UnboundedSender<Reply>,
        then: impl FnOnce(Result<net::Paired, String>) + Send + 'static,
    ) {
        let ctx = self.net.clone();
        self.runtime.spawn(async move {
            let result = match tokio::net::lookup_host(address.as_str()).await {
                Ok(addrs) => {
                    let addrs: Vec<SocketAddr> = addrs.collect();
                    let watch = progress.clone();
                    let pairing = net::pair_initiator(addrs, plan, ctx, |device, code| {
                        let _ = progress.send(Reply::LinkCode {
                            device,
                            fingerprint: qsync_wire::fingerprint(&device),
                            code: code.to_string(),
                        });
                    });
                    // The person who started it went away (Ctrl-C): nobody shows the
                    // code any more, so the link stops.
                    tokio::select! {
                        result = pairing => result,
                        () = watch.closed() => Err("the link command was interrupted".to_owned()),
                    }
                }
                Err(e) => Err(format!(
                    "could not find `{address}`: {e} (give HOST:PORT, e.g. laptop.local:7878)"
                )),
            };
            then(result);
        });
    }

    /// The connection with `device`, if it is connected.
    pub(super) fn conn(&self, device: &DeviceId) -> Option<&PeerConn> {
        self.conns.get(device)
    }

    /// Whether `device` is connected.
    pub(super) fn is_connected(&self, device: &DeviceId) -> bool {
        self.conns.contains_key(device)
    }

    /// How many devices are connected.
    pub(super) fn connected(&self) -> usize {
        self.conns.len()
    }

    /// Whether `device` is linked with this one.
    pub(super) fn is_linked(&self, device: &DeviceId) -> bool {
        self.linked.lock().is_ok_and(|l| l.contains(device))
    }

    /// `device` is linked (a link made, or loaded), last proven at `addr` if known.
    pub(super) fn link(&mut self, device: DeviceId, addr: Option<SocketAddr>) {
        if let Ok(mut linked) = self.linked.lock() {
            linked.insert(device);
        }
        if let Some(addr) = addr {
            self.addresses.insert(device, addr);
        }
    }

    /// `device` is no longer linked: its addresses go; its connection is closed (true if
    /// there was one).
    pub(super) fn forget(&mut self, device: DeviceId) -> bool {
        if let Ok(mut linked) = self.linked.lock() {
            linked.remove(&device);
        }
        self.addresses.remove(&device);
        self.suggested.remove(&device);
        self.paused.remove(&device);
        self.close(device)
    }

    /// Close the connection with `device` (true if there was one).
    pub(super) fn close(&mut self, device: DeviceId) -> bool {
        self.conns.remove(&device).is_some()
    }

    /// Pause `device` (its connection closed: true if there was one; none is made with it
    /// until resumed: it is taken out of the linked set the network tasks check, so its
    /// dials are turned away at the handshake, and it backs off), or resume it.
    pub(super) fn pause(&mut self, device: DeviceId, paused: bool) -> bool {
        if let Ok(mut linked) = self.linked.lock() {
            match paused {
                true => linked.remove(&device),
                false => linked.insert(device),
            };
        }
        if !paused {
            self.paused.remove(&device);
            return false;
        }
        self.paused.insert(device);
        self.close(device)
    }

    /// Close every connection (the peers redial).
    pub(super) fn close_all(&mut self) {
        self.conns.clear();
    }

    /// An authenticated connection with `device` is up (replacing any before): false if
    /// the device is not linked (dropped). `dialled`: this side dialled `addr`, where the
    /// device proved its key: the address to dial next time, whatever mDNS says.
    pub(super) fn connected_to(
        &mut self,
        device: DeviceId,
        conn: PeerConn,
        addr: SocketAddr,
        dialled: bool,
    ) -> bool {
        if !self.is_linked(&device) || self.paused.contains(&device) {
            return false;
        }
        self.probes.remove(&device);
        self.conns.insert(device, conn);
        self.dial_attempts.remove(&device);
        if dialled {
            self.addresses.insert(device, addr);
        }
        true
    }

    /// Whether `conn` is the connection in use with `device` (not one replaced or given up
    /// on, whose reader may still be draining).
    pub(super) fn is_current(&self, device: &DeviceId, conn: u64) -> bool {
        self.conns.get(device).is_some_and(|c| c.id == conn)
    }

    /// `device` was heard from: a probe of it is answered (true if there was one).
    fn heard_from(&mut self, device: &DeviceId) -> bool {
        self.probes.remove(device).is_some()
    }

    /// A message from `device` about `task`: the session's own (greetings, probes) are
    /// answered here; the others are handed back, unless the connection was given up on
    /// (a probe that went unanswered, a forgotten device: its reader may still be
    /// draining).
    pub(super) fn received(
        &mut self,
        device: DeviceId,
        task: TaskId,
        message: Message,
    ) -> Option<Message> {
        if !self.is_connected(&device) {
            return None;
        }
        // Anything at all from a device mDNS said left shows it is still there.
        if self.heard_from(&device) {
            tracing::info!(%device, "heard from after mDNS said it left: the session stays");
        }
        match message {
            Message::Hello { name } => {
                tracing::debug!(%device, %name, "hello");
                let name = self.net.name.clone();
                self.send(device, task, Message::HelloAck { name });
                None
            }
            Message::Ping { nonce } => {
                self.send_urgent(device, Message::Pong { nonce });
                None
            }
            // The probe a pong answers was cleared above.
            Message::HelloAck { .. } | Message::Pong { .. } => None,
            other => Some(other),
        }
    }

    /// mDNS found `device` at `addrs`: a suggestion for a linked device only (anyone can
    /// announce any id), tried in turn with the address proven last; a session is never
    /// re-pointed by it.
    pub(super) fn found(&mut self, device: DeviceId, name: &str, addrs: &[SocketAddr]) {
        if device != self.me
            && (self.nearby.len() < MAX_NEARBY || self.nearby.contains_key(&device))
        {
            let name: String = name.chars().take(64).collect();
            let addrs = addrs.iter().take(8).copied().collect();
            self.nearby.insert(device, (name, addrs));
        }
        let addr = addrs.iter().find(|a| a.is_ipv4()).or(addrs.first());
        if let (true, Some(addr)) = (self.is_linked(&device), addr) {
            self.suggested.insert(device, *addr);
        }
    }

    /// mDNS said `device` left: anyone on the LAN can forge a goodbye, so the device itself
    /// is asked; a session it does not answer on within [`PROBE_WAIT`] is closed.
    pub(super) fn lost(&mut self, device: DeviceId) {
        self.nearby.remove(&device);
        if self.conns.contains_key(&device) && !self.probes.contains_key(&device) {
            let nonce = u64::from_be_bytes(
                TaskId::random().as_bytes()[..8]
                    .try_into()
                    .unwrap_or([0; 8]),
            );
            tracing::info!(%device, "mDNS says it left; asking the device itself");
            self.probes.insert(device, (nonce, Instant::now()));
            self.send_urgent(device, Message::Ping { nonce });
        }
    }

    /// The devices that did not answer their probe in time: their connections are closed
    /// (nobody reads them); returned, for the daemon to tell.
    pub(super) fn silent(&mut self) -> Vec<DeviceId> {
        let silent: Vec<DeviceId> = self
            .probes
            .iter()
            .filter(|(_, (_, at))| at.elapsed() >= PROBE_WAIT)
            .map(|(d, _)| *d)
            .collect();
        silent
            .into_iter()
            .filter(|device| {
                self.probes.remove(device);
                self.conns.remove(device).is_some()
            })
            .collect()
    }

    /// Dial every linked device not connected (each at its own pace, see [`Peers::dial`]).
    pub(super) fn dial_linked(&mut self) {
        let linked: Vec<DeviceId> = self
            .linked
            .lock()
            .map(|l| l.iter().copied().collect())
            .unwrap_or_default();
        for device in linked {
            self.dial(device);
        }
    }

    /// Dial `device` unless it is connected or was dialled a moment ago: at the address
    /// proven last, or every other attempt at mDNS's suggestion when it differs (the
    /// device may have moved; or the suggestion may be forged).
    pub(super) fn dial(&mut self, device: DeviceId) {
        if self.conns.contains_key(&device) || self.paused.contains(&device) {
            return;
        }
        let attempt = self.dial_attempts.entry(device).or_insert(0);
        *attempt = attempt.wrapping_add(1);
        let proven = self.addresses.get(&device).copied();
        let suggested = self.suggested.get(&device).copied();
        let addr = match (proven, suggested) {
            (Some(p), Some(s)) if (*attempt).is_multiple_of(2) && p != s => s,
            (Some(p), _) => p,
            (None, Some(s)) => s,
            (None, None) => return,
        };
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

    /// Send ahead of anything queued for `device` (a ping, a pong).
    pub(super) fn send_urgent(&self, device: DeviceId, message: Message) {
        if let Some(c) = self.conns.get(&device) {
            let _ = c
                .urgent
                .send(Outbound::Message(TaskId::from_bytes([0; 32]), message));
        }
    }

    /// Send `message` about `task` to `device`, if connected: whether it was queued.
    pub(super) fn send(&self, device: DeviceId, task: TaskId, message: Message) -> bool {
        self.conns
            .get(&device)
            .is_some_and(|c| c.tx.send(Outbound::Message(task, message)).is_ok())
    }
}
