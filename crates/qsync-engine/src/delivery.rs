//! Who gets which update when: the per-device lock, in a sans-IO state machine.
//!
//! Every update a device must receive has a pending row in the store (the seed's
//! `retard` table) until that device acknowledges it. This state machine decides what to
//! send: to each connected device, one update at a time (the seed's per-device lock,
//! released by `ModificationDone`), oldest first. It does no I/O: the driver feeds it what
//! happened and carries out the [`Action`]s it returns.

use std::collections::{BTreeMap, BTreeSet};

use qsync_base::{DeviceId, UpdateId};

/// What the driver must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Send this update to this device (and wait for its acknowledgement).
    Send {
        /// To whom.
        device: DeviceId,
        /// Which update.
        update: UpdateId,
    },
    /// The device acknowledged the update: remove its pending row (and the delta once no
    /// device needs it).
    MarkDone {
        /// Who acknowledged.
        device: DeviceId,
        /// Which update.
        update: UpdateId,
    },
}

#[derive(Debug, Clone, Default)]
struct Peer {
    connected: bool,
    in_flight: Option<UpdateId>,
    waiting: BTreeSet<UpdateId>,
}

/// The per-device delivery state.
#[derive(Debug, Clone, Default)]
pub struct Delivery {
    peers: BTreeMap<DeviceId, Peer>,
}

impl Delivery {
    /// Nothing known yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// `device` must receive `update` (a pending row was recorded for it).
    pub fn add(&mut self, device: DeviceId, update: UpdateId) -> Vec<Action> {
        let peer = self.peers.entry(device).or_default();
        if peer.in_flight != Some(update) {
            peer.waiting.insert(update);
        }
        self.pump(device)
    }

    /// `device` is reachable and greeted; `missing` is what the store says it lacks.
    pub fn connected(
        &mut self,
        device: DeviceId,
        missing: impl IntoIterator<Item = UpdateId>,
    ) -> Vec<Action> {
        let peer = self.peers.entry(device).or_default();
        peer.connected = true;
        peer.waiting.extend(missing);
        if let Some(update) = peer.in_flight {
            peer.waiting.remove(&update);
        }
        self.pump(device)
    }

    /// `device` went away: what was in flight stays pending and will be sent again.
    pub fn disconnected(&mut self, device: DeviceId) {
        if let Some(peer) = self.peers.get_mut(&device) {
            peer.connected = false;
            if let Some(update) = peer.in_flight.take() {
                peer.waiting.insert(update);
            }
        }
    }

    /// `device` answered `update` with `ModificationDone`. An acknowledgement of something
    /// not in flight (late, duplicated, forged) is ignored.
    pub fn acknowledged(&mut self, device: DeviceId, update: UpdateId) -> Vec<Action> {
        let Some(peer) = self.peers.get_mut(&device) else {
            return vec![];
        };
        if peer.in_flight != Some(update) {
            return vec![];
        }
        peer.in_flight = None;
        let mut actions = vec![Action::MarkDone { device, update }];
        actions.extend(self.pump(device));
        actions
    }

    /// The device's update could not be sent (for instance its content vanished):
    /// drop it from this session; it stays pending in the store.
    pub fn failed(&mut self, device: DeviceId, update: UpdateId) -> Vec<Action> {
        if let Some(peer) = self.peers.get_mut(&device) {
            if peer.in_flight == Some(update) {
                peer.in_flight = None;
            }
        }
        self.pump(device)
    }

    /// Whether `device` has nothing in flight and nothing waiting.
    pub fn is_idle(&self, device: DeviceId) -> bool {
        self.peers
            .get(&device)
            .is_none_or(|p| p.in_flight.is_none() && p.waiting.is_empty())
    }

    /// What is in flight to `device`.
    pub fn in_flight(&self, device: DeviceId) -> Option<UpdateId> {
        self.peers.get(&device).and_then(|p| p.in_flight)
    }

    fn pump(&mut self, device: DeviceId) -> Vec<Action> {
        let Some(peer) = self.peers.get_mut(&device) else {
            return vec![];
        };
        if !peer.connected || peer.in_flight.is_some() {
            return vec![];
        }
        match peer.waiting.pop_first() {
            Some(update) => {
                peer.in_flight = Some(update);
                vec![Action::Send { device, update }]
            }
            None => vec![],
        }
    }
}
