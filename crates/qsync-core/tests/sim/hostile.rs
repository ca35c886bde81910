//! A hostile linked device for the simulator: it holds a real link with some honest devices
//! and sends them well-formed records built to hurt, as a stolen or compromised device
//! could: counters forged for the receiver and for third devices, counters at and past the
//! bound, versions naming as many devices as allowed and more, old records again, floods of
//! `Hello`s and of tombstones, and the rightful edits any linked device may make. It sees
//! every honest ledger (the worst case), serves whatever content it announced, and never
//! acknowledges anything.
//!
//! What the checks then hold it to: honest devices converge among themselves, never refuse
//! an honest device's record, keep every honest edit (at its path or as a conflict copy)
//! unless the hostile device overwrote it with a version that had truly seen it, and hold
//! at most the window of its records in memory.

use qsync_core::{Record, MAX_COUNTER, MAX_VERSION_ENTRIES, WINDOW_BYTES};

use super::*;

/// The hostile device's index in [`Write::device`].
pub const HOSTILE: usize = usize::MAX;

/// What the hostile device does in one action of a schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Attack {
    /// A record whose version claims more of the receiver's own changes than it made.
    ForgeReceiver,
    /// A record whose version claims more of a third device's changes than it made.
    ForgeThird,
    /// A forged counter exactly at [`MAX_COUNTER`], for the receiver or a third device.
    AtBound,
    /// A counter one past [`MAX_COUNTER`] (refused).
    PastBound,
    /// A version naming [`MAX_VERSION_ENTRIES`] devices (or one more: refused).
    Wide,
    /// An edit on top of what the receiver holds, as any linked device may make.
    Rightful,
    /// A record sent before, again under a new number.
    Replay,
    /// Many `Hello`s on one connection.
    HelloFlood,
    /// Many deletions of paths nobody has, with wide versions.
    TombstoneFlood,
}

/// The attacks of random schedules. `Wide` (a version naming as many devices as allowed)
/// is left out: once a version names 64 devices, joins cut it (`rules::join`), and the cut
/// can drop an honest device's entry, its own included (seed 337 of `many_hostile_seeds`
/// with `Wide` in: three honest devices, a write whose writer's entry is cut from every
/// copy). The devices still converge there and no content is lost, but what a version had
/// seen is no longer known, so neither the simulator's "nothing lost" check nor a device's
/// own-counter check can be exact. It has named tests of its own.
const ATTACKS: [Attack; 8] = [
    Attack::ForgeReceiver,
    Attack::ForgeThird,
    Attack::AtBound,
    Attack::PastBound,
    Attack::Rightful,
    Attack::Replay,
    Attack::HelloFlood,
    Attack::TombstoneFlood,
];

impl Attack {
    pub fn random(rng: &mut Rng) -> Self {
        *rng.pick(&ATTACKS).unwrap_or(&Attack::Rightful)
    }
}

/// The hostile device's own state.
pub struct Hostile {
    pub id: DeviceId,
    /// The honest devices it is linked with.
    pub neighbours: Vec<usize>,
    /// Those it is connected to now.
    pub up: BTreeSet<usize>,
    /// Its sequence number per receiver (always going up).
    seq: BTreeMap<usize, u64>,
    /// Records sent, for replays.
    sent: Vec<Record>,
    /// Content it announced (it serves all of it).
    pub contents: BTreeSet<ContentHash>,
    /// Stopped for good (the settling phase runs without it).
    pub gone: bool,
    /// Per record sent: its path and version with each honest device's counter cut down
    /// to what that device had made then. A write that version has seen was rightfully
    /// overwritten; any other write must survive.
    pub rightful: Vec<(RelPath, VersionVector)>,
    /// Messages to honest devices, due at a time.
    pub(super) outbox: VecDeque<(Instant, usize, Packet)>,
}

impl Hostile {
    pub fn new(neighbours: Vec<usize>) -> Self {
        Self {
            id: DeviceId::from_bytes([0xEE; 32]),
            neighbours,
            up: BTreeSet::new(),
            seq: BTreeMap::new(),
            sent: Vec::new(),
            contents: BTreeSet::new(),
            gone: false,
            rightful: Vec::new(),
            outbox: VecDeque::new(),
        }
    }

    fn next_seq(&mut self, to: usize) -> u64 {
        let seq = self.seq.entry(to).or_insert(0);
        *seq += 1;
        *seq
    }
}

fn fake_device(i: usize) -> DeviceId {
    let mut id = [0xF0u8; 32];
    id[..8].copy_from_slice(&(i as u64).to_le_bytes());
    DeviceId::from_bytes(id)
}

impl World {
    /// Make the last of `devices` honest devices' neighbours linked with a hostile device.
    pub fn with_hostile(seed: u64, devices: usize, topology: Topology) -> Self {
        let mut world = World::new(seed, devices, topology);
        let neighbours: Vec<usize> = (0..devices).filter(|d| d % 2 == 0).collect();
        let hostile = Hostile::new(neighbours.clone());
        let id = hostile.id;
        world.hostile = Some(hostile);
        for d in neighbours {
            let task = world.task;
            world.input(d, Input::Link { task, peer: id });
        }
        world.update_links();
        world
    }

    /// Bring the hostile device's connections up or down with the honest devices' state.
    pub(super) fn update_hostile_links(&mut self) {
        let Some(hostile) = self.hostile.as_ref() else {
            return;
        };
        let id = hostile.id;
        let changes: Vec<(usize, bool)> = hostile
            .neighbours
            .iter()
            .map(|&d| (d, !hostile.gone && self.devices[d].core.is_some()))
            .filter(|&(d, should)| should != hostile.up.contains(&d))
            .collect();
        for (d, should) in changes {
            if let Some(h) = self.hostile.as_mut() {
                if should {
                    h.up.insert(d);
                } else {
                    h.up.remove(&d);
                    h.outbox.retain(|(_, to, _)| *to != d);
                }
            }
            if should {
                self.log(format!("hostile link {d} up"));
                self.input(d, Input::Connected { peer: id });
            } else if self.devices[d].core.is_some() {
                self.log(format!("hostile link {d} down"));
                self.input(d, Input::Disconnected { peer: id });
            }
        }
    }

    /// An honest device's message to the hostile device: it answers only requests for
    /// content, always with the content.
    pub(super) fn message_to_hostile(&mut self, from: usize, message: Message) {
        let Some(h) = self.hostile.as_mut() else {
            return;
        };
        if let Message::Request {
            task, path, hash, ..
        } = message
        {
            let ok = h.contents.contains(&hash);
            let at = self.now + Duration::from_millis(1);
            h.outbox.push_back((
                at,
                from,
                Packet::Content {
                    task,
                    path,
                    hash,
                    ok,
                },
            ));
        }
    }

    /// Deliver the hostile device's due messages.
    pub(super) fn deliver_hostile(&mut self) {
        loop {
            let Some(h) = self.hostile.as_mut() else {
                return;
            };
            let due = h.outbox.front().is_some_and(|(at, ..)| *at <= self.now);
            if !due {
                return;
            }
            let Some((_, to, packet)) = h.outbox.pop_front() else {
                return;
            };
            let id = h.id;
            match packet {
                Packet::Core(message) => self.input(to, Input::Received { from: id, message }),
                Packet::Content {
                    task,
                    path,
                    hash,
                    ok,
                } => self.answered(to, id, (task, path, hash), ok),
            }
        }
    }

    /// The hostile device makes one attack on honest device `to` about `path`.
    pub fn attack(&mut self, attack: Attack, to: usize, path: &str, x: u64) {
        let Some(h) = self.hostile.as_ref() else {
            return;
        };
        if !h.up.contains(&to) {
            return;
        }
        let task = self.task;
        let path = RelPath::new(path.to_owned()).unwrap();
        let local = self.devices[to].ledger.get(&task, &path);
        let base = local
            .as_ref()
            .map(|r| r.version.clone())
            .unwrap_or_default();
        let victim = self.devices[to].id;
        let third = self.devices
            [(to + 1 + x as usize % (self.devices.len() - 1).max(1)) % self.devices.len()]
        .id;
        let forged = |base: &VersionVector, who: DeviceId, counter: u64| {
            let mut counters: Vec<(DeviceId, u64)> = base.clone().into();
            counters.retain(|(d, _)| *d != who);
            counters.push((who, counter));
            VersionVector::from(counters)
        };
        let mut records = Vec::new();
        let mut hellos = 0;
        match attack {
            Attack::ForgeReceiver => {
                let v = forged(&base, victim, base.get(&victim) + 1 + x % 1000);
                records.push((path.clone(), self.hostile_state(&local, x), v));
            }
            Attack::ForgeThird => {
                let v = forged(&base, third, base.get(&third) + 1 + x % 1000);
                records.push((path.clone(), self.hostile_state(&local, x), v));
            }
            Attack::AtBound => {
                let who = if x.is_multiple_of(2) { victim } else { third };
                let v = forged(&base, who, MAX_COUNTER);
                records.push((path.clone(), self.hostile_state(&local, x), v));
            }
            Attack::PastBound => {
                let v = forged(&base, victim, MAX_COUNTER + 1);
                records.push((path.clone(), self.hostile_state(&local, x), v));
            }
            Attack::Wide => {
                let extra = x % 2;
                let mut v = base.bumped(self.hostile.as_ref().map_or(victim, |h| h.id));
                let mut i = 0;
                while v.iter().count() < MAX_VERSION_ENTRIES + extra as usize {
                    v = v.bumped(fake_device(i));
                    i += 1;
                }
                records.push((path.clone(), self.hostile_state(&local, x), v));
            }
            Attack::Rightful => {
                let v = base.bumped(self.hostile.as_ref().map_or(victim, |h| h.id));
                records.push((path.clone(), self.hostile_state(&local, x), v));
            }
            Attack::Replay => {
                if let Some(old) = self.hostile.as_ref().and_then(|h| h.sent.last()) {
                    records.push((old.path.clone(), old.state.clone(), old.version.clone()));
                }
            }
            Attack::HelloFlood => hellos = 10,
            Attack::TombstoneFlood => {
                for i in 0..20 {
                    let p = RelPath::new(format!("t{}/{i}", x % 7)).unwrap();
                    let mut v = VersionVector::new();
                    for k in 0..(x as usize % (MAX_VERSION_ENTRIES + 1)) {
                        v = v.bumped(fake_device(k));
                    }
                    records.push((p, State::Deleted, v));
                }
            }
        }
        for _ in 0..hellos {
            self.hostile_send(
                to,
                Message::Hello {
                    task,
                    after: 0,
                    reply: true,
                },
            );
        }
        if records.is_empty() {
            return;
        }
        let mut out = Vec::new();
        for (path, state, version) in records {
            let seq = self.hostile.as_mut().map_or(0, |h| h.next_seq(to));
            let mtime_ns = self.next_mtime();
            let record = Record {
                path,
                state,
                version,
                mtime_ns,
                seq,
                retimed: None,
                by: None,
            };
            self.note_hostile_write(&record);
            out.push(record);
        }
        let upto = out.last().map_or(0, |r| r.seq);
        self.log(format!("hostile {attack:?} to dev{to}: {out:?}"));
        self.hostile_send(
            to,
            Message::Records {
                task,
                records: out,
                upto,
            },
        );
        // Whatever it sends, what the victim holds for it stays within the window.
        if let Some(core) = self.devices[to].core.as_ref() {
            let held = core.held_from(&task, &self.hostile.as_ref().map_or(victim, |h| h.id));
            assert!(
                held <= WINDOW_BYTES,
                "dev{to} holds {held} bytes of the hostile device's records"
            );
        }
    }

    /// A state for a hostile record: what the receiver holds, new content, or a deletion.
    fn hostile_state(&mut self, local: &Option<Record>, x: u64) -> State {
        match x % 3 {
            0 => local.as_ref().map_or(State::Deleted, |r| r.state.clone()),
            1 => {
                let (hash, size) = self.new_content();
                if let Some(h) = self.hostile.as_mut() {
                    h.contents.insert(hash);
                }
                State::File {
                    hash,
                    size,
                    mode: 0o644,
                }
            }
            _ => State::Deleted,
        }
    }

    /// Remember a hostile record: as a write (for conflict copies of it), and as what it
    /// rightfully overwrites: its version with each honest device's counter cut to what
    /// that device holds for the path or an honest write of the path carried.
    fn note_hostile_write(&mut self, record: &Record) {
        let task = self.task;
        let mut counters: Vec<(DeviceId, u64)> = record.version.clone().into();
        for (device, counter) in counters.iter_mut() {
            if let Some(d) = self.devices.iter().find(|d| d.id == *device) {
                let issued = d
                    .ledger
                    .get(&task, &record.path)
                    .map_or(0, |r| r.version.get(device));
                // Or carried by an honest write of the path (a forged counter an honest
                // write was made on top of, say): the hostile device has seen it there.
                let carried = self
                    .writes
                    .iter()
                    .filter(|w| w.device != HOSTILE && w.path == record.path)
                    .map(|w| w.version.get(device))
                    .max()
                    .unwrap_or(0);
                *counter = (*counter).min(issued.max(carried));
            }
        }
        self.versions_made += 1;
        if let Some(h) = self.hostile.as_mut() {
            h.sent.push(record.clone());
            h.rightful
                .push((record.path.clone(), VersionVector::from(counters)));
        }
        self.writes.push(Write {
            device: HOSTILE,
            path: record.path.clone(),
            base: VersionVector::new(),
            version: record.version.clone(),
            state: record.state.clone(),
            before: State::Deleted,
        });
    }

    fn hostile_send(&mut self, to: usize, message: Message) {
        let at = self.now + Duration::from_millis(1);
        if let Some(h) = self.hostile.as_mut() {
            h.outbox.push_back((at, to, Packet::Core(message)));
        }
    }

    /// The hostile device stops for good (the honest devices then settle among themselves).
    pub fn hostile_leaves(&mut self) {
        if let Some(h) = self.hostile.as_mut() {
            h.gone = true;
        }
        self.update_links();
    }
}
