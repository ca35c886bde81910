//! Who gets which update when: the per-device lock, in a sans-IO state machine.
//!
//! Every update a device must receive has a pending row in the store (the seed's
//! `retard` table) until that device acknowledges it. This state machine decides what to
//! send: to each connected device, oldest first, one update at a time (the seed's
//! per-device lock, released by `ModificationDone`). The one exception is a run of
//! creations (a setup copy, many new files): up to [`WINDOW`] of them go out without
//! waiting for each answer, since a creation does not depend on how an earlier one went.
//! Anything else (a patch, a delete, a rename) waits until nothing is in flight, so a
//! failure and its retry can never be overtaken by an update that builds on it. It does no
//! I/O: the driver feeds it what happened and carries out the [`Action`]s it returns.

use std::collections::{BTreeMap, BTreeSet};

use qsync_base::{DeviceId, UpdateId};

/// How many creations may be in flight to one device at once. The receiver makes them
/// durable and answers them in batches of up to half this, so answers to one batch come
/// back while the next one is still arriving.
pub const WINDOW: usize = 128;

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
    in_flight: BTreeSet<UpdateId>,
    waiting: BTreeSet<UpdateId>,
    /// Which of the known updates are creations.
    creations: BTreeSet<UpdateId>,
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

    /// `device` must receive `update` (a pending row was recorded for it); `creation` says
    /// whether it creates a path.
    pub fn add(&mut self, device: DeviceId, update: UpdateId, creation: bool) -> Vec<Action> {
        let peer = self.peers.entry(device).or_default();
        if creation {
            peer.creations.insert(update);
        }
        if !peer.in_flight.contains(&update) {
            peer.waiting.insert(update);
        }
        self.pump(device)
    }

    /// `device` is reachable and greeted; `missing` is what the store says it lacks, each
    /// with whether it is a creation.
    pub fn connected(
        &mut self,
        device: DeviceId,
        missing: impl IntoIterator<Item = (UpdateId, bool)>,
    ) -> Vec<Action> {
        let peer = self.peers.entry(device).or_default();
        peer.connected = true;
        for (update, creation) in missing {
            if creation {
                peer.creations.insert(update);
            }
            if !peer.in_flight.contains(&update) {
                peer.waiting.insert(update);
            }
        }
        self.pump(device)
    }

    /// `device` went away: what was in flight stays pending and will be sent again.
    pub fn disconnected(&mut self, device: DeviceId) {
        if let Some(peer) = self.peers.get_mut(&device) {
            peer.connected = false;
            let in_flight = std::mem::take(&mut peer.in_flight);
            peer.waiting.extend(in_flight);
        }
    }

    /// `device` answered `update` with `ModificationDone`. An acknowledgement of something
    /// not in flight (late, duplicated, forged) is ignored.
    pub fn acknowledged(&mut self, device: DeviceId, update: UpdateId) -> Vec<Action> {
        let Some(peer) = self.peers.get_mut(&device) else {
            return vec![];
        };
        if !peer.in_flight.remove(&update) {
            return vec![];
        }
        peer.creations.remove(&update);
        let mut actions = vec![Action::MarkDone { device, update }];
        actions.extend(self.pump(device));
        actions
    }

    /// The device's update could not be sent (for instance its content vanished):
    /// drop it from this session; it stays pending in the store.
    pub fn failed(&mut self, device: DeviceId, update: UpdateId) -> Vec<Action> {
        if let Some(peer) = self.peers.get_mut(&device) {
            peer.in_flight.remove(&update);
        }
        self.pump(device)
    }

    /// Whether `device` has nothing in flight and nothing waiting.
    pub fn is_idle(&self, device: DeviceId) -> bool {
        self.peers
            .get(&device)
            .is_none_or(|p| p.in_flight.is_empty() && p.waiting.is_empty())
    }

    /// Whether `update` is in flight to `device`.
    pub fn is_in_flight(&self, device: DeviceId, update: UpdateId) -> bool {
        self.peers
            .get(&device)
            .is_some_and(|p| p.in_flight.contains(&update))
    }

    fn pump(&mut self, device: DeviceId) -> Vec<Action> {
        let Some(peer) = self.peers.get_mut(&device) else {
            return vec![];
        };
        let mut actions = vec![];
        while peer.connected {
            let Some(&next) = peer.waiting.first() else {
                break;
            };
            let may_go = peer.in_flight.is_empty()
                || (peer.in_flight.len() < WINDOW
                    && peer.creations.contains(&next)
                    && peer.in_flight.iter().all(|u| peer.creations.contains(u)));
            if !may_go {
                break;
            }
            peer.waiting.pop_first();
            peer.in_flight.insert(next);
            actions.push(Action::Send {
                device,
                update: next,
            });
        }
        actions
    }
}
