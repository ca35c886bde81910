//! Which devices are around: a sans-IO state machine.
//!
//! Anyone on the LAN can announce made-up devices, each with made-up addresses, so what it
//! keeps is bounded ([`Limits`]): at most 256 devices, each with at most 8 addresses. When
//! the table is full, a new device takes the place of the one that matters least: a device
//! not linked to this one before a linked one (the daemon says which are, with
//! [`Input::Linked`]), and among those the one heard from longest ago; a newcomer that
//! would itself be that one is not kept. A device with too many addresses keeps the ones
//! heard most recently. Every device dropped to make room is reported `Lost`, so `Found`
//! and `Lost` still alternate.

use std::collections::{BTreeMap, HashSet};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use qsync_base::DeviceId;

use crate::DiscoveryEvent;

/// The most devices [`Presence`] keeps by default.
pub const MAX_PEERS: usize = 256;

/// The most addresses it keeps for one device by default (a host with IPv4, IPv6 and a
/// few interfaces has fewer).
pub const MAX_ADDRESSES: usize = 8;

/// A device that is around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    /// Its id.
    pub device: DeviceId,
    /// Its human name (empty when found by a manual probe).
    pub name: String,
    /// Where its daemon listens.
    pub addresses: Vec<SocketAddr>,
}

/// What the world reports to [`Presence`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// mDNS resolved an announcement.
    Announced(Peer),
    /// mDNS saw the announcement go away.
    Withdrawn(DeviceId),
    /// A TCP probe of `address` was answered by `device`.
    Answered {
        /// Who answered.
        device: DeviceId,
        /// Where.
        address: SocketAddr,
    },
    /// The devices linked to this one now: kept over others when the table is full, and
    /// probed first.
    Linked(Vec<DeviceId>),
    /// Time passed.
    Tick,
}

/// How much [`Presence`] keeps.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Devices at most.
    pub peers: usize,
    /// Addresses of one device at most.
    pub addresses: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            peers: MAX_PEERS,
            addresses: MAX_ADDRESSES,
        }
    }
}

#[derive(Debug, Clone)]
struct Seen {
    name: String,
    /// Each address, with when it was last reported.
    addresses: BTreeMap<SocketAddr, Instant>,
    last_seen: Instant,
}

impl Seen {
    fn peer(&self, device: DeviceId) -> Peer {
        Peer {
            device,
            name: self.name.clone(),
            addresses: self.addresses.keys().copied().collect(),
        }
    }
}

/// Tracks which devices are around and reports when that changes.
#[derive(Debug, Clone)]
pub struct Presence {
    me: DeviceId,
    expiry: Duration,
    limits: Limits,
    linked: HashSet<DeviceId>,
    peers: BTreeMap<DeviceId, Seen>,
}

impl Presence {
    /// Track others than `me`; a device not seen for `expiry` is lost. Keeps at most the
    /// default [`Limits`].
    pub fn new(me: DeviceId, expiry: Duration) -> Self {
        Self::with_limits(me, expiry, Limits::default())
    }

    /// [`Presence::new`] keeping at most `limits`.
    pub fn with_limits(me: DeviceId, expiry: Duration, limits: Limits) -> Self {
        Self {
            me,
            expiry,
            limits,
            linked: HashSet::new(),
            peers: BTreeMap::new(),
        }
    }

    /// The devices around now.
    pub fn peers(&self) -> impl Iterator<Item = Peer> + '_ {
        self.peers.iter().map(|(d, s)| s.peer(*d))
    }

    /// What to probe, in order: the addresses of linked devices, then `manual` ones, then
    /// the others, each group the most recently heard devices first; no address twice.
    pub fn probe_targets(&self, manual: &[SocketAddr]) -> Vec<SocketAddr> {
        let mut seen: Vec<(&DeviceId, &Seen)> = self.peers.iter().collect();
        seen.sort_by_key(|(_, s)| std::cmp::Reverse(s.last_seen));
        let addresses_of = |linked: bool| {
            seen.iter()
                .filter(move |(d, _)| self.linked.contains(d) == linked)
                .flat_map(|(_, s)| s.addresses.keys().copied())
        };
        let mut out: Vec<SocketAddr> = Vec::new();
        let all = addresses_of(true)
            .chain(manual.iter().copied())
            .chain(addresses_of(false));
        for address in all {
            if !out.contains(&address) {
                out.push(address);
            }
        }
        out
    }

    /// Feed one input observed at `now`; returns the events it causes.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<DiscoveryEvent> {
        match input {
            Input::Announced(peer) if peer.device != self.me => {
                self.seen(peer.device, peer.name, peer.addresses, now)
            }
            Input::Answered { device, address } if device != self.me => {
                self.seen(device, String::new(), vec![address], now)
            }
            Input::Withdrawn(device) => match self.peers.remove(&device) {
                Some(_) => vec![DiscoveryEvent::Lost(device)],
                None => vec![],
            },
            Input::Linked(devices) => {
                self.linked = devices.into_iter().collect();
                vec![]
            }
            Input::Tick => {
                let expired: Vec<DeviceId> = self
                    .peers
                    .iter()
                    .filter(|(_, s)| now.saturating_duration_since(s.last_seen) > self.expiry)
                    .map(|(d, _)| *d)
                    .collect();
                expired
                    .into_iter()
                    .map(|d| {
                        self.peers.remove(&d);
                        DiscoveryEvent::Lost(d)
                    })
                    .collect()
            }
            Input::Announced(_) | Input::Answered { .. } => vec![],
        }
    }

    /// `device` was heard at `addresses` (its `name`, if not empty).
    fn seen(
        &mut self,
        device: DeviceId,
        name: String,
        addresses: Vec<SocketAddr>,
        now: Instant,
    ) -> Vec<DiscoveryEvent> {
        // Of a report with too many addresses, the first ones.
        let mut reported: Vec<SocketAddr> = Vec::new();
        for address in addresses {
            if reported.len() < self.limits.addresses && !reported.contains(&address) {
                reported.push(address);
            }
        }
        let mut events = Vec::new();
        if !self.peers.contains_key(&device) {
            if !self.make_room(device, now, &mut events) {
                return events;
            }
            let seen = Seen {
                name,
                addresses: reported.into_iter().map(|a| (a, now)).collect(),
                last_seen: now,
            };
            events.push(DiscoveryEvent::Found(seen.peer(device)));
            self.peers.insert(device, seen);
            return events;
        }
        let Some(seen) = self.peers.get_mut(&device) else {
            return events;
        };
        seen.last_seen = now;
        let before: Vec<SocketAddr> = seen.addresses.keys().copied().collect();
        for address in reported {
            seen.addresses.insert(address, now);
        }
        // Too many: the ones heard longest ago go.
        while seen.addresses.len() > self.limits.addresses {
            let oldest = seen.addresses.iter().min_by_key(|(_, at)| **at);
            let Some(oldest) = oldest.map(|(a, _)| *a) else {
                break;
            };
            seen.addresses.remove(&oldest);
        }
        let renamed = !name.is_empty() && name != seen.name;
        if renamed {
            seen.name = name;
        }
        if renamed || seen.addresses.keys().ne(before.iter()) {
            events.push(DiscoveryEvent::Found(seen.peer(device)));
        }
        events
    }

    /// Room for a new device `device` heard at `now`: true if there is some (another device
    /// dropped for it if the table is full, its `Lost` pushed on `events`), false if the
    /// newcomer is the one that matters least.
    fn make_room(
        &mut self,
        device: DeviceId,
        now: Instant,
        events: &mut Vec<DiscoveryEvent>,
    ) -> bool {
        if self.peers.len() < self.limits.peers {
            return true;
        }
        // Least wanted first: not linked, then heard longest ago.
        let rank = |d: &DeviceId, at: Instant| (self.linked.contains(d), at);
        let least = self
            .peers
            .iter()
            .map(|(d, s)| (*d, rank(d, s.last_seen)))
            .min_by_key(|(_, r)| *r);
        match least {
            Some((dropped, r)) if r < rank(&device, now) => {
                self.peers.remove(&dropped);
                events.push(DiscoveryEvent::Lost(dropped));
                true
            }
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn id(n: u32) -> DeviceId {
        let mut bytes = [0u8; 32];
        bytes[..4].copy_from_slice(&n.to_be_bytes());
        bytes[4] = 1;
        DeviceId::from_bytes(bytes)
    }

    fn addr(n: u32) -> SocketAddr {
        SocketAddr::from(([10, (n >> 16) as u8, (n >> 8) as u8, n as u8], 7878))
    }

    fn announce(n: u32, addresses: Vec<SocketAddr>) -> Input {
        Input::Announced(Peer {
            device: id(n),
            name: format!("d{n}"),
            addresses,
        })
    }

    /// A flood of made-up devices holds at most 256 of them; the linked device heard first
    /// stays, and the devices dropped are reported lost, oldest first.
    #[test]
    fn a_flood_of_announcements_keeps_the_linked_device_and_the_newest() {
        let start = Instant::now();
        let mut presence = Presence::new(id(0), Duration::from_secs(3600));
        presence.handle(Input::Linked(vec![id(1)]), start);
        let mut lost = Vec::new();
        for n in 1..=10_000u32 {
            let at = start + Duration::from_millis(u64::from(n));
            for event in presence.handle(announce(n, vec![addr(n)]), at) {
                if let DiscoveryEvent::Lost(d) = event {
                    lost.push(d);
                }
            }
        }
        assert_eq!(presence.peers().count(), MAX_PEERS);
        let kept: HashSet<DeviceId> = presence.peers().map(|p| p.device).collect();
        assert!(kept.contains(&id(1)), "the linked device was dropped");
        assert!(kept.contains(&id(10_000)) && !kept.contains(&id(2)));
        assert_eq!(lost.len(), 10_000 - MAX_PEERS);
        assert_eq!(lost.first(), Some(&id(2)));
        // Its addresses come first in a probe round.
        assert_eq!(presence.probe_targets(&[])[0], addr(1));
    }

    /// A table full of linked devices keeps them: a stranger is not kept at all.
    #[test]
    fn a_stranger_never_pushes_out_a_linked_device() {
        let now = Instant::now();
        let limits = Limits {
            peers: 2,
            addresses: 8,
        };
        let mut presence = Presence::with_limits(id(0), Duration::from_secs(60), limits);
        presence.handle(Input::Linked(vec![id(1), id(2)]), now);
        presence.handle(announce(1, vec![addr(1)]), now);
        presence.handle(announce(2, vec![addr(2)]), now);
        let later = now + Duration::from_secs(1);
        assert_eq!(presence.handle(announce(3, vec![addr(3)]), later), vec![]);
        let kept: Vec<DeviceId> = presence.peers().map(|p| p.device).collect();
        assert_eq!(kept, vec![id(1), id(2)]);
    }

    /// A device announcing thousands of addresses keeps 8, and the ones heard most
    /// recently win over older ones.
    #[test]
    fn a_device_keeps_its_eight_newest_addresses() {
        let now = Instant::now();
        let mut presence = Presence::new(id(0), Duration::from_secs(60));
        presence.handle(announce(1, (0..5000).map(addr).collect()), now);
        let peer = presence.peers().next().unwrap();
        assert_eq!(peer.addresses, (0..8).map(addr).collect::<Vec<_>>());
        let later = now + Duration::from_secs(1);
        let answered = Input::Answered {
            device: id(1),
            address: addr(9000),
        };
        presence.handle(answered, later);
        let peer = presence.peers().next().unwrap();
        assert_eq!(peer.addresses.len(), MAX_ADDRESSES);
        assert!(peer.addresses.contains(&addr(9000)));
    }
}
