//! A deterministic simulator for the sync rules: N devices, each a real [`Core`] with an
//! in-memory ledger and disk, a virtual clock, a network that delays messages, drops
//! connections, partitions and heals, crash-restarts, and random edits by each device's
//! person. One seed fully determines a run.
//!
//! What a crash loses is what a killed daemon loses: the core's memory, staged content and
//! messages in flight. The ledger and the disk survive (each placement is durable before
//! the core hears it is done, and a ledger write happens inside one `handle` call).
//!
//! Placements are carried out as the daemon's driver does them: later (on its own thread,
//! in batches), so that they finish in any order across paths and the person may change
//! the disk in between; each is reported to the core when it is done.
//!
//! The watcher is modelled as a debounced scan that compares the disk with the ledger and
//! reports each difference as [`Input::Observed`]: deletions innermost first, then new and
//! changed paths outermost first.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::fmt::Write as _;
use std::time::{Duration, Instant};

use qsync_base::{
    Causality, ContentHash, DeviceId, EntryKind, FileEntry, RelPath, TaskId, VersionVector,
};
use qsync_core::rules::is_conflict_copy;
use qsync_core::{Core, Effect, Input, MemLedger, Message, PlaceOutcome, Placement, State};
use qsync_exchange::{Chunk, Exchange, Order, Verdict, Want};
use qsync_watch::{Index, LocalEvent};

mod check;
mod hostile;
mod people;
mod watcher;

pub use hostile::{Attack, Hostile, HOSTILE};
#[allow(unused_imports)] // the bench uses only part of it
pub use people::{random_hostile_ops, random_ops, Op};

/// Simulated time per step.
pub const TICK: Duration = Duration::from_millis(10);
/// The watcher's debounce.
pub const DEBOUNCE: Duration = Duration::from_millis(200);

/// A small, fast, seeded generator (xorshift64*): the whole run follows from its seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        if n == 0 {
            0
        } else {
            self.next() % n
        }
    }
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            None
        } else {
            items.get(self.below(items.len() as u64) as usize)
        }
    }
}

/// What a path is on a simulated disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    File {
        hash: ContentHash,
        size: u64,
        mode: u32,
        mtime_ns: i64,
    },
    Folder {
        mode: u32,
    },
    Symlink {
        target: String,
    },
}

impl Node {
    pub fn state(&self) -> State {
        match self {
            Node::File {
                hash, size, mode, ..
            } => State::File {
                hash: *hash,
                size: *size,
                mode: *mode,
            },
            Node::Folder { mode } => State::Folder { mode: *mode },
            Node::Symlink { target } => State::Symlink {
                target: target.clone(),
            },
        }
    }
    fn mtime(&self) -> i64 {
        match self {
            Node::File { mtime_ns, .. } => *mtime_ns,
            _ => 0,
        }
    }
}

/// What the real watcher would see of a node.
fn file_entry(path: &str, node: &Node) -> FileEntry {
    let path = RelPath::new(path.to_owned()).unwrap();
    match node {
        Node::File {
            hash,
            size,
            mode,
            mtime_ns,
        } => FileEntry {
            path,
            kind: EntryKind::File,
            size: *size,
            mtime_ns: *mtime_ns,
            hash: Some(*hash),
            mode: *mode,
        },
        Node::Folder { mode } => FileEntry {
            path,
            kind: EntryKind::Folder,
            size: 0,
            mtime_ns: 0,
            hash: None,
            mode: *mode,
        },
        Node::Symlink { target } => FileEntry {
            path,
            kind: EntryKind::Symlink,
            size: target.len() as u64,
            mtime_ns: 0,
            hash: Some(ContentHash::of(target.as_bytes())),
            mode: 0,
        },
    }
}

/// A device's disk: its task folder as a map of paths.
pub type Disk = BTreeMap<String, Node>;

fn parent_of(path: &str) -> Option<&str> {
    path.rsplit_once('/').map(|(p, _)| p)
}

fn under(path: &str, folder: &str) -> bool {
    path.len() > folder.len() && path.starts_with(folder) && path.as_bytes()[folder.len()] == b'/'
}

fn subtree(disk: &Disk, path: &str) -> Vec<String> {
    disk.keys()
        .filter(|p| *p == path || under(p, path))
        .cloned()
        .collect()
}

/// What travels between two devices.
#[derive(Debug, Clone)]
enum Packet {
    Core(Message),
    /// The answer to a content request: the content (known by its hash) or "unavailable".
    Content {
        task: TaskId,
        path: RelPath,
        hash: ContentHash,
        ok: bool,
    },
}

/// One local write the person made, as the core recorded it (for the no-loss check).
#[derive(Debug, Clone)]
pub struct Write {
    pub device: usize,
    pub path: RelPath,
    pub base: VersionVector,
    pub version: VersionVector,
    pub state: State,
    /// What the write replaced.
    pub before: State,
}

pub struct Device {
    pub id: DeviceId,
    pub core: Option<Core>,
    pub ledger: MemLedger,
    pub disk: Disk,
    staged: BTreeSet<ContentHash>,
    dirty_since: Option<Instant>,
    /// The real watcher's model of the disk (`qsync_watch::Index`), rebuilt from the ledger
    /// at each start, told of every placement before it happens.
    index: Index,
    /// Placements ordered and not carried out yet, each with when it will be.
    placing: Vec<(Instant, Placement)>,
    /// Fetches under way, in the daemon's own exchange machine (`qsync-exchange`): which
    /// holder is asked, who is asked next when one has not got it, goes away or does not
    /// answer. (Content here has no bytes: an answer is one empty last chunk.)
    exchange: Exchange,
    /// Inputs queued while the core's orders are carried out (the daemon's queue).
    queued: VecDeque<Input>,
    /// Send-only, as the daemon's driver makes it: every fetch and placement is answered
    /// as excluded (the core keeps the peers' versions as rivals).
    pub send_only: bool,
    busy: bool,
}

/// A connection between two devices, with messages in flight each way.
struct Link {
    a: usize,
    b: usize,
    up: bool,
    /// (deliver at, to device, from device, packet)
    in_flight: VecDeque<(Instant, usize, usize, Packet)>,
}

pub struct World {
    pub rng: Rng,
    pub start: Instant,
    pub now: Instant,
    pub task: TaskId,
    pub devices: Vec<Device>,
    links: Vec<Link>,
    /// Pairs that cannot talk (a partition).
    pub cut: BTreeSet<(usize, usize)>,
    /// Devices whose person paused the task (see `qsync_core::Input::Pause`).
    pub paused: BTreeSet<usize>,
    pub writes: Vec<Write>,
    /// Paths a person deleted, each with the version its device had recorded for it then.
    /// A person may delete a path the watcher has not reported yet, and a placement ordered
    /// before may make a folder there (a parent of what it places) before the watcher
    /// looks: the deletion is never seen as one, but what it removed (the version and
    /// content that device knew) was the person's choice.
    pub deleted: Vec<(RelPath, VersionVector, State)>,
    pub trace: Vec<String>,
    pub records_sent: u64,
    /// Folded runs sent (`Message::Fold`), the records they stood for, and how many were
    /// asked for in full.
    pub folds_sent: u64,
    pub records_folded: u64,
    pub unfolds: u64,
    pub versions_made: u64,
    pub reconnects: u64,
    /// What each device refused or distrusted: (device, from, report).
    pub distrusts: Vec<(usize, usize, qsync_core::Report)>,
    /// A hostile linked device, if the run has one.
    pub hostile: Option<Hostile>,
    /// Contents of conflict copies that a placement replaced (a copy that lost a conflict
    /// is not copied again: the daemon keeps what it held among the task's versions, which
    /// this list stands for), with their paths.
    pub shelved: Vec<(String, State)>,
    mtime: i64,
}

/// Which devices are linked.
#[derive(Debug, Clone, Copy)]
pub enum Topology {
    /// Every pair.
    Pairs,
    /// 0 – 1 – 2 – …: only neighbours.
    Line,
    /// 0 in the middle.
    Star,
}

impl World {
    pub fn new(seed: u64, devices: usize, topology: Topology) -> Self {
        let start = Instant::now();
        let task = TaskId::from_bytes([0x7a; 32]);
        let mut world = World {
            rng: Rng::new(seed),
            start,
            now: start,
            task,
            devices: (0..devices)
                .map(|i| Device {
                    id: DeviceId::from_bytes([i as u8 + 1; 32]),
                    core: Some(Core::new(DeviceId::from_bytes([i as u8 + 1; 32]))),
                    ledger: MemLedger::new(),
                    disk: Disk::new(),
                    staged: BTreeSet::new(),
                    dirty_since: None,
                    index: Index::default(),
                    placing: Vec::new(),
                    exchange: Exchange::default(),
                    queued: VecDeque::new(),
                    send_only: false,
                    busy: false,
                })
                .collect(),
            links: Vec::new(),
            cut: BTreeSet::new(),
            paused: BTreeSet::new(),
            writes: Vec::new(),
            deleted: Vec::new(),
            trace: Vec::new(),
            records_sent: 0,
            folds_sent: 0,
            records_folded: 0,
            unfolds: 0,
            versions_made: 0,
            reconnects: 0,
            distrusts: Vec::new(),
            hostile: None,
            shelved: Vec::new(),
            mtime: 1_764_000_000_000_000_000,
        };
        let pairs: Vec<(usize, usize)> = match topology {
            Topology::Pairs => (0..devices)
                .flat_map(|a| (a + 1..devices).map(move |b| (a, b)))
                .collect(),
            Topology::Line => (1..devices).map(|b| (b - 1, b)).collect(),
            Topology::Star => (1..devices).map(|b| (0, b)).collect(),
        };
        for (a, b) in pairs {
            world.links.push(Link {
                a,
                b,
                up: false,
                in_flight: VecDeque::new(),
            });
            for (me, peer) in [(a, b), (b, a)] {
                let peer_id = world.devices[peer].id;
                world.input(
                    me,
                    Input::Link {
                        task,
                        peer: peer_id,
                    },
                );
            }
        }
        world.update_links();
        world
    }

    fn log(&mut self, line: String) {
        let ms = (self.now - self.start).as_millis();
        self.trace.push(format!("{ms:>7}ms {line}"));
    }

    pub fn trace_text(&self) -> String {
        let mut out = String::new();
        for line in &self.trace {
            let _ = writeln!(out, "{line}");
        }
        out
    }

    // ----- the network -------------------------------------------------------------------

    fn connected(&self, link: &Link) -> bool {
        self.devices[link.a].core.is_some()
            && self.devices[link.b].core.is_some()
            && !self.cut.contains(&(link.a.min(link.b), link.a.max(link.b)))
    }

    /// Bring links up or down to match who is running and the partitions.
    fn update_links(&mut self) {
        for i in 0..self.links.len() {
            let should = self.connected(&self.links[i]);
            if should == self.links[i].up {
                continue;
            }
            self.links[i].up = should;
            self.links[i].in_flight.clear();
            let (a, b) = (self.links[i].a, self.links[i].b);
            let (ida, idb) = (self.devices[a].id, self.devices[b].id);
            if should {
                self.reconnects += 1;
                self.log(format!("link {a}-{b} up"));
                self.input(a, Input::Connected { peer: idb });
                self.input(b, Input::Connected { peer: ida });
            } else {
                self.log(format!("link {a}-{b} down"));
                if self.devices[a].core.is_some() {
                    self.input(a, Input::Disconnected { peer: idb });
                }
                if self.devices[b].core.is_some() {
                    self.input(b, Input::Disconnected { peer: ida });
                }
            }
        }
        self.update_hostile_links();
    }

    fn link_index(&self, x: usize, y: usize) -> Option<usize> {
        self.links
            .iter()
            .position(|l| (l.a == x && l.b == y) || (l.a == y && l.b == x))
    }

    fn transmit(&mut self, from: usize, to: usize, packet: Packet) {
        let Some(i) = self.link_index(from, to) else {
            return;
        };
        if !self.links[i].up {
            return;
        }
        match &packet {
            Packet::Core(Message::Records { records, .. })
            | Packet::Core(Message::Unfolded { records, .. }) => {
                self.records_sent += records.len() as u64
            }
            Packet::Core(Message::Fold { fold, .. }) => {
                self.folds_sent += 1;
                self.records_folded += u64::from(fold.count);
            }
            Packet::Core(Message::Unfold { .. }) => self.unfolds += 1,
            _ => {}
        }
        // In order per connection: each message is delivered after the one before it.
        let delay = Duration::from_millis(1 + self.rng.below(30));
        let last = self.links[i]
            .in_flight
            .back()
            .map(|m| m.0)
            .unwrap_or(self.now);
        let at = (self.now + delay).max(last);
        self.links[i].in_flight.push_back((at, to, from, packet));
    }

    fn deliver_due(&mut self) {
        for i in 0..self.links.len() {
            while let Some((at, ..)) = self.links[i].in_flight.front() {
                if *at > self.now {
                    break;
                }
                let Some((_, to, from, packet)) = self.links[i].in_flight.pop_front() else {
                    break;
                };
                let from_id = self.devices[from].id;
                // `QSYNC_SIM_PATH=b/b`: the trace also shows every record of that path
                // delivered, to follow one path through a failing schedule.
                if let (
                    Ok(watch),
                    Packet::Core(
                        Message::Records { records, .. } | Message::Unfolded { records, .. },
                    ),
                ) = (std::env::var("QSYNC_SIM_PATH"), &packet)
                {
                    for r in records.iter().filter(|r| r.path.as_str() == watch) {
                        let line = format!(
                            "dev{from} -> dev{to}: {} {:?} {:?}",
                            r.path,
                            short(&r.state),
                            r.version
                        );
                        self.log(line);
                    }
                }
                match &packet {
                    Packet::Core(Message::Fold { fold, .. }) => self.log(format!(
                        "dev{from} -> dev{to}: fold {:?} from {} x{} #{}",
                        fold.shape, fold.start, fold.count, fold.first_seq
                    )),
                    Packet::Core(Message::Unfold { first, last, .. }) => {
                        self.log(format!("dev{from} -> dev{to}: unfold #{first}..=#{last}"))
                    }
                    Packet::Core(Message::Unfolded { first, records, .. }) => self.log(format!(
                        "dev{from} -> dev{to}: unfolded #{first}: {} records",
                        records.len()
                    )),
                    _ => {}
                }
                match packet {
                    Packet::Core(message) => self.input(
                        to,
                        Input::Received {
                            from: from_id,
                            message,
                        },
                    ),
                    Packet::Content {
                        task,
                        path,
                        hash,
                        ok,
                    } => {
                        if !ok {
                            let recorded = self.devices[to].ledger.get(&task, &path);
                            self.log(format!(
                                "dev{to}: {path} unavailable from dev{from}; here {:?}",
                                recorded.map(|r| (short(&r.state), r.version))
                            ));
                        }
                        self.answered(to, from_id, (task, path, hash), ok);
                    }
                }
            }
        }
    }

    /// Send device `d`'s request to `to`, honest or hostile.
    fn ask(&mut self, d: usize, to: DeviceId, message: Message) {
        if self.hostile.as_ref().is_some_and(|h| h.id == to) {
            self.message_to_hostile(d, message);
        } else if let Some(to) = self.index_of(&to) {
            self.transmit(d, to, Packet::Core(message));
        }
    }

    /// Device `to` got `server`'s answer to a request for `hash` at `path`: the content
    /// (`ok`, staged once its exchange takes it), or "not here".
    pub(crate) fn answered(
        &mut self,
        to: usize,
        server: DeviceId,
        (task, path, hash): (TaskId, RelPath, ContentHash),
        ok: bool,
    ) {
        let key = (task, path, hash);
        let now = self.now;
        let device = &mut self.devices[to];
        if !ok {
            device.exchange.unavailable(now, server, &key);
        } else if device
            .exchange
            .chunk(now, server, &key, Chunk::Whole, 0, 0, true)
            == Verdict::Finish
        {
            // Staged once the exchange takes it (an answer it ignores is dropped).
            device.staged.insert(hash);
            device.exchange.finished(&key, true);
        }
        self.exchange_orders(to);
    }

    /// Carry out device `d`'s exchange orders: requests sent, fetches ended told to its
    /// core (queued, as the daemon does).
    fn exchange_orders(&mut self, d: usize) {
        while let Some(order) = self.devices[d].exchange.poll_order() {
            match order {
                Order::Request {
                    to,
                    task,
                    path,
                    hash,
                    size,
                    base,
                    offset,
                } => {
                    let message = Message::Request {
                        task,
                        path,
                        hash,
                        size,
                        base,
                        offset,
                        // The simulated contents have no bytes to check.
                        checks: Vec::new(),
                    };
                    self.ask(d, to, message);
                }
                Order::Fetched {
                    task,
                    path,
                    hash,
                    from,
                    ok,
                } => self.input(
                    d,
                    Input::Fetched {
                        task,
                        path,
                        hash,
                        from,
                        ok,
                    },
                ),
                Order::Close { .. } => {}
            }
        }
    }

    // ----- driving the cores -------------------------------------------------------------

    /// Give device `d`'s core one input and carry out every order that follows.
    pub fn input(&mut self, d: usize, input: Input) {
        if self.devices[d].core.is_none() {
            return;
        }
        if let Input::Disconnected { peer } = input {
            // As the daemon: the exchange moves the fetches asked of it first, and what
            // it tells the core comes before the disconnection.
            self.devices[d].exchange.disconnected(self.now, peer);
            self.exchange_orders(d);
        }
        self.devices[d].queued.push_back(input);
        if self.devices[d].busy {
            return; // handled by the call under way, after the orders it carries out
        }
        self.devices[d].busy = true;
        while let Some(input) = self.devices[d].queued.pop_front() {
            let now = self.now;
            let device = &mut self.devices[d];
            if let Some(core) = device.core.as_mut() {
                let Ok(()) = core.handle(now, input, &mut device.ledger);
            }
            self.run_effects(d);
            self.exchange_orders(d);
        }
        self.devices[d].busy = false;
    }

    /// `d` answers `to`'s request for content: the content (`ok`), or "unavailable".
    fn answer_content(
        &mut self,
        d: usize,
        to: DeviceId,
        (task, path, hash): (TaskId, RelPath, ContentHash),
        ok: bool,
    ) {
        if let Some(to) = self.index_of(&to) {
            let content = Packet::Content {
                task,
                path,
                hash,
                ok,
            };
            self.transmit(d, to, content);
        }
    }

    fn run_effects(&mut self, d: usize) {
        loop {
            let Some(effect) = self.devices[d].core.as_mut().and_then(|c| c.poll_effect()) else {
                return;
            };
            let excluded = match &effect {
                Effect::Fetch { task, path, .. } => Some((*task, path.clone())),
                Effect::Place(p) => Some((p.task, p.path.clone())),
                _ => None,
            };
            if let Some((task, path)) = excluded.filter(|_| self.devices[d].send_only) {
                self.log(format!("dev{d} takes nothing (send-only): {path}"));
                self.input(d, Input::Excluded { task, path });
                continue;
            }
            match effect {
                Effect::Send { to, message } => {
                    if self.hostile.as_ref().is_some_and(|h| h.id == to) {
                        self.message_to_hostile(d, message);
                    } else if let Some(to) = self.index_of(&to) {
                        self.transmit(d, to, Packet::Core(message));
                    }
                }
                Effect::Fetch {
                    from,
                    holders,
                    task,
                    path,
                    hash,
                    size,
                    base,
                } => {
                    // The simulator's content has no bytes: nothing to resume, nothing to
                    // patch.
                    let _ = (size, base);
                    let want = Want {
                        from,
                        holders,
                        task,
                        path,
                        hash,
                        size: 0,
                        base: None,
                        kept: 0,
                    };
                    self.devices[d].exchange.want(self.now, want);
                }
                Effect::Serve {
                    to,
                    task,
                    path,
                    hash,
                    ..
                } => {
                    let ok = matches!(self.devices[d].disk.get(path.as_str()), Some(Node::File { hash: h, .. }) if *h == hash);
                    if !ok {
                        let there = self.devices[d].disk.get(path.as_str()).map(Node::state);
                        let recorded = self.devices[d].ledger.get(&task, &path).map(|r| r.state);
                        self.log(format!(
                            "dev{d} cannot serve {path} {}: disk {:?}, ledger {:?}",
                            &hash.to_hex()[..6],
                            there.as_ref().map(short),
                            recorded.as_ref().map(short)
                        ));
                    }
                    self.answer_content(d, to, (task, path, hash), ok);
                }
                Effect::Unavailable {
                    to,
                    task,
                    path,
                    hash,
                } => {
                    self.log(format!("dev{d} does not serve {path} (paused)"));
                    self.answer_content(d, to, (task, path, hash), false);
                }
                Effect::Distrust { from, report, .. } => {
                    let from = self.index_of(&from).unwrap_or(usize::MAX);
                    self.log(format!("dev{d} distrusts dev{from}: {report:?}"));
                    self.distrusts.push((d, from, report));
                }
                Effect::Place(placement) => {
                    // Up to 40 ms later: placements ordered together finish in any order.
                    let at = self.now + Duration::from_millis(self.rng.below(40));
                    self.log(format!(
                        "dev{d} orders place {} -> {:?}",
                        placement.path,
                        short(&placement.target)
                    ));
                    self.devices[d].placing.push((at, placement));
                }
            }
        }
    }

    /// Carry out device `d`'s placements that are due, in the order of their times, and
    /// tell its core how each went.
    fn place_due(&mut self, d: usize) {
        loop {
            let now = self.now;
            let due = self.devices[d]
                .placing
                .iter()
                .enumerate()
                .filter(|(_, (at, _))| *at <= now)
                .min_by_key(|(_, (at, _))| *at)
                .map(|(i, _)| i);
            let Some(i) = due else { return };
            let (_, placement) = self.devices[d].placing.remove(i);
            let before = self.devices[d]
                .disk
                .get(placement.path.as_str())
                .map(Node::state);
            let outcome = self.place(d, &placement);
            if outcome == PlaceOutcome::Done {
                // The watcher sees the driver's own writes too (and absorbs them).
                self.touch(d);
            }
            let mut line = format!(
                "dev{d} place {} -> {:?}: {outcome:?}",
                placement.path,
                short(&placement.target)
            );
            if outcome != PlaceOutcome::Done {
                let _ = write!(
                    line,
                    " (expected {:?}, disk {:?}, aside {:?}, parents {:?})",
                    short(&placement.expect),
                    before.as_ref().map(short),
                    placement.aside,
                    placement.parents
                );
            }
            self.log(line);
            self.input(
                d,
                Input::Placed {
                    task: placement.task,
                    path: placement.path,
                    outcome,
                },
            );
        }
    }

    fn index_of(&self, id: &DeviceId) -> Option<usize> {
        self.devices.iter().position(|d| d.id == *id)
    }

    /// Carry out a placement on device `d`'s disk, as the daemon's driver would: check what
    /// is there, then change it; all or nothing.
    fn place(&mut self, d: usize, p: &Placement) -> PlaceOutcome {
        let device = &mut self.devices[d];
        let disk = &mut device.disk;
        let path = p.path.as_str();
        let here = disk.get(path).map(Node::state).unwrap_or(State::Deleted);
        if here != p.expect {
            return PlaceOutcome::Diverged;
        }
        for parent in &p.parents {
            if disk.contains_key(parent.as_str()) {
                return PlaceOutcome::Diverged;
            }
        }
        if let Some(aside) = &p.aside {
            let there = disk.get(aside.as_str()).map(Node::state);
            if there.is_some_and(|t| t != here) || !here.exists() {
                return PlaceOutcome::Diverged;
            }
        }
        // Each folder made and the path itself need their parent: a folder on disk, or one
        // made just before (as `mkdir` and `rename` would).
        let mut made: Vec<&str> = Vec::new();
        for q in p.parents.iter().map(RelPath::as_str).chain([path]) {
            if let Some(parent) = parent_of(q) {
                let ok =
                    made.contains(&parent) || matches!(disk.get(parent), Some(Node::Folder { .. }));
                if !ok {
                    return PlaceOutcome::Diverged;
                }
            }
            made.push(q);
        }
        if let State::File { hash, .. } = &p.target {
            let in_place = here.hash() == Some(*hash) && p.aside.is_none();
            if !in_place && !device.staged.contains(hash) {
                return PlaceOutcome::NoContent;
            }
        }
        let folder_with_children = here.is_folder()
            && !p.target.is_folder()
            && p.aside.is_none()
            && disk.keys().any(|k| under(k, path));
        if folder_with_children {
            return PlaceOutcome::NotEmpty;
        }
        for parent in &p.parents {
            disk.insert(parent.as_str().to_owned(), Node::Folder { mode: 0o755 });
        }
        if p.aside.is_none() && here.exists() && here != p.target && is_conflict_copy(&p.path) {
            self.shelved.push((path.to_owned(), here.clone()));
        }
        if let Some(aside) = &p.aside {
            if let Some(node) = disk.remove(path) {
                disk.entry(aside.as_str().to_owned()).or_insert(node);
            }
        }
        match &p.target {
            State::Deleted => {
                disk.remove(path);
            }
            State::File { hash, size, mode } => {
                disk.insert(
                    path.to_owned(),
                    Node::File {
                        hash: *hash,
                        size: *size,
                        mode: *mode,
                        mtime_ns: p.mtime_ns,
                    },
                );
            }
            State::Folder { mode } => {
                disk.insert(path.to_owned(), Node::Folder { mode: *mode });
            }
            State::Symlink { target } => {
                disk.insert(
                    path.to_owned(),
                    Node::Symlink {
                        target: target.clone(),
                    },
                );
            }
        }
        // The driver tells the watcher's index what it just wrote, so that seeing it later
        // is not taken for a change of the person's.
        let mut expected: Vec<RelPath> = p.parents.clone();
        expected.extend(p.aside.clone());
        expected.push(p.path.clone());
        for q in expected {
            match disk.get(q.as_str()) {
                Some(node) => device
                    .index
                    .expect(q.clone(), Some(file_entry(q.as_str(), node))),
                // The core removes a path alone (a folder only once empty).
                None => device.index.expect_removed(q),
            }
        }
        PlaceOutcome::Done
    }

    // ----- time ------------------------------------------------------------------------------

    /// One tick: deliver messages, fire watchers and timers.
    pub fn step(&mut self) {
        self.now += TICK;
        self.deliver_due();
        self.deliver_hostile();
        for d in 0..self.devices.len() {
            self.place_due(d);
            if self.devices[d]
                .dirty_since
                .is_some_and(|t| self.now >= t + DEBOUNCE)
            {
                self.scan(d);
            }
            let now = self.now;
            let due = self.devices[d]
                .core
                .as_ref()
                .and_then(|c| c.poll_timeout())
                .is_some_and(|t| t <= now);
            if due {
                let device = &mut self.devices[d];
                if let Some(core) = device.core.as_mut() {
                    let Ok(()) = core.handle_timeout(now, &mut device.ledger);
                }
                self.run_effects(d);
                self.exchange_orders(d);
            }
            let exchange = &mut self.devices[d].exchange;
            if exchange.poll_timeout().is_some_and(|t| t <= now) {
                exchange.handle_timeout(now);
                self.exchange_orders(d);
            }
        }
    }

    pub fn run_for(&mut self, duration: Duration) {
        let end = self.now + duration;
        while self.now < end {
            self.step();
        }
    }

    fn quiet(&self) -> bool {
        self.links.iter().all(|l| l.in_flight.is_empty())
            && self.hostile.as_ref().is_none_or(|h| h.outbox.is_empty())
            && self.devices.iter().all(|d| {
                d.dirty_since.is_none()
                    && d.placing.is_empty()
                    && d.core.as_ref().is_none_or(|c| !c.is_busy())
            })
    }

    /// Heal everything and run until nothing moves (or `limit` passes); true if quiet.
    pub fn settle(&mut self, limit: Duration) -> bool {
        self.hostile_leaves();
        // Every person resumes what they paused (what a paused device holds is checked
        // once it syncs again).
        for d in std::mem::take(&mut self.paused) {
            self.resume(d);
        }
        self.heal();
        let end = self.now + limit;
        let mut quiet_ticks = 0;
        while self.now < end {
            self.step();
            quiet_ticks = if self.quiet() { quiet_ticks + 1 } else { 0 };
            if quiet_ticks > 30 {
                return true;
            }
        }
        if std::env::var_os("QSYNC_SIM_DUMP").is_some() {
            for (i, d) in self.devices.iter().enumerate() {
                if let Some(c) = d.core.as_ref().filter(|c| c.is_busy()) {
                    eprintln!("dev{i}: {c:#?}");
                }
                eprintln!(
                    "dev{i} dirty {:?} placing {}",
                    d.dirty_since,
                    d.placing.len()
                );
            }
            for l in &self.links {
                for m in l.in_flight.iter().take(3) {
                    eprintln!("in flight {} -> {}: {:?}", m.2, m.1, m.3);
                }
            }
        }
        false
    }
}

/// A short form of a state for traces.
pub fn short(state: &State) -> String {
    match state {
        State::Deleted => "deleted".into(),
        State::File { hash, mode, .. } => format!("file {} {mode:o}", &hash.to_hex()[..6]),
        State::Folder { mode } => format!("folder {mode:o}"),
        State::Symlink { target } => format!("link->{target}"),
    }
}

/// Run one schedule to the end, settle, and check every invariant.
/// A failed run: what failed, and the world as it was then (for its trace).
pub type Failure = Box<(String, World)>;

pub fn run(seed: u64, devices: usize, topology: Topology, ops: &[Op]) -> Result<World, Failure> {
    run_in(World::new(seed, devices, topology), ops)
}

/// The same, with a hostile device linked with the even-numbered devices.
pub fn run_hostile(
    seed: u64,
    devices: usize,
    topology: Topology,
    ops: &[Op],
) -> Result<World, Failure> {
    run_in(World::with_hostile(seed, devices, topology), ops)
}

fn run_in(mut world: World, ops: &[Op]) -> Result<World, Failure> {
    for op in ops {
        world.apply(op);
    }
    if !world.settle(Duration::from_secs(120)) {
        let e = "did not settle within 120 s of simulated time".to_owned();
        return Err(Box::new((e, world)));
    }
    match world.check() {
        Ok(()) => Ok(world),
        Err(e) => Err(Box::new((e, world))),
    }
}
