//! Which devices are around: a sans-IO state machine.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use qsync_base::DeviceId;

use crate::DiscoveryEvent;

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
    /// Time passed.
    Tick,
}

#[derive(Debug, Clone)]
struct Seen {
    peer: Peer,
    last_seen: Instant,
}

/// Tracks which devices are around and reports when that changes.
#[derive(Debug, Clone)]
pub struct Presence {
    me: DeviceId,
    expiry: Duration,
    peers: BTreeMap<DeviceId, Seen>,
}

impl Presence {
    /// Track others than `me`; a device not seen for `expiry` is lost.
    pub fn new(me: DeviceId, expiry: Duration) -> Self {
        Self {
            me,
            expiry,
            peers: BTreeMap::new(),
        }
    }

    /// The devices around now.
    pub fn peers(&self) -> impl Iterator<Item = &Peer> {
        self.peers.values().map(|s| &s.peer)
    }

    /// Feed one input observed at `now`; returns the events it causes.
    pub fn handle(&mut self, input: Input, now: Instant) -> Vec<DiscoveryEvent> {
        match input {
            Input::Announced(peer) if peer.device != self.me => self.seen(peer, now),
            Input::Answered { device, address } if device != self.me => {
                let name = self
                    .peers
                    .get(&device)
                    .map(|s| s.peer.name.clone())
                    .unwrap_or_default();
                let mut addresses = self
                    .peers
                    .get(&device)
                    .map(|s| s.peer.addresses.clone())
                    .unwrap_or_default();
                if !addresses.contains(&address) {
                    addresses.push(address);
                }
                self.seen(
                    Peer {
                        device,
                        name,
                        addresses,
                    },
                    now,
                )
            }
            Input::Withdrawn(device) => match self.peers.remove(&device) {
                Some(_) => vec![DiscoveryEvent::Lost(device)],
                None => vec![],
            },
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

    fn seen(&mut self, mut peer: Peer, now: Instant) -> Vec<DiscoveryEvent> {
        peer.addresses.sort();
        peer.addresses.dedup();
        match self.peers.get_mut(&peer.device) {
            Some(seen) => {
                seen.last_seen = now;
                let mut merged = seen.peer.addresses.clone();
                merged.extend(peer.addresses.iter().copied());
                merged.sort();
                merged.dedup();
                let renamed = !peer.name.is_empty() && peer.name != seen.peer.name;
                if merged != seen.peer.addresses || renamed {
                    seen.peer.addresses = merged;
                    if renamed {
                        seen.peer.name = peer.name;
                    }
                    vec![DiscoveryEvent::Found(seen.peer.clone())]
                } else {
                    vec![]
                }
            }
            None => {
                self.peers.insert(
                    peer.device,
                    Seen {
                        peer: peer.clone(),
                        last_seen: now,
                    },
                );
                vec![DiscoveryEvent::Found(peer)]
            }
        }
    }
}
