//! What the simulated people and the world do: edits on a disk (write, mkdir, symlink,
//! rm -rf, mv, chmod), crashes and partitions, and random schedules of them.

use super::*;

impl World {
    // ----- people's edits --------------------------------------------------------------------

    pub(super) fn next_mtime(&mut self) -> i64 {
        self.mtime += 1_000_000_007;
        self.mtime
    }

    pub(super) fn new_content(&mut self) -> (ContentHash, u64) {
        let n = self.rng.next();
        (ContentHash::of(&n.to_le_bytes()), 8)
    }

    /// Make the folders above `path` (mkdir -p); false if a file is in the way.
    pub(super) fn make_parents(disk: &mut Disk, path: &str) -> bool {
        let mut parents = Vec::new();
        let mut p = parent_of(path);
        while let Some(q) = p {
            parents.push(q.to_owned());
            p = parent_of(q);
        }
        for q in parents.iter().rev() {
            match disk.get(q.as_str()) {
                Some(Node::Folder { .. }) => {}
                Some(_) => return false,
                None => {
                    disk.insert(q.clone(), Node::Folder { mode: 0o755 });
                }
            }
        }
        true
    }

    /// Device `d`'s person writes new content to `path` (making folders above it).
    pub fn write(&mut self, d: usize, path: &str) {
        let (hash, size) = self.new_content();
        let mtime_ns = self.next_mtime();
        let disk = &mut self.devices[d].disk;
        if matches!(disk.get(path), Some(Node::Folder { .. })) || !Self::make_parents(disk, path) {
            return;
        }
        let mode = match disk.get(path) {
            Some(Node::File { mode, .. }) => *mode,
            _ => 0o644,
        };
        disk.insert(
            path.to_owned(),
            Node::File {
                hash,
                size,
                mode,
                mtime_ns,
            },
        );
        self.log(format!("dev{d} user writes {path}"));
        self.touch(d);
    }

    pub fn mkdir(&mut self, d: usize, path: &str) {
        let disk = &mut self.devices[d].disk;
        if disk.contains_key(path) || !Self::make_parents(disk, path) {
            return;
        }
        disk.insert(path.to_owned(), Node::Folder { mode: 0o755 });
        self.log(format!("dev{d} user mkdir {path}"));
        self.touch(d);
    }

    pub fn symlink(&mut self, d: usize, path: &str, target: &str) {
        let disk = &mut self.devices[d].disk;
        if disk.contains_key(path) || !Self::make_parents(disk, path) {
            return;
        }
        disk.insert(
            path.to_owned(),
            Node::Symlink {
                target: target.to_owned(),
            },
        );
        self.log(format!("dev{d} user symlink {path}"));
        self.touch(d);
    }

    /// rm -rf
    pub fn delete(&mut self, d: usize, path: &str) {
        let doomed = subtree(&self.devices[d].disk, path);
        if doomed.is_empty() {
            return;
        }
        for p in doomed {
            self.devices[d].disk.remove(&p);
            self.person_removed(d, p);
        }
        self.log(format!("dev{d} user deletes {path}"));
        self.touch(d);
    }

    /// Note that device `d`'s person removed `path` from its place (see `World::deleted`).
    fn person_removed(&mut self, d: usize, path: String) {
        let path = RelPath::new(path).unwrap();
        if let Some(known) = self.devices[d].ledger.get(&self.task, &path) {
            self.deleted.push((path, known.version, known.state));
        }
    }

    /// mv from to (to must not exist, its parent must be a folder, not inside from)
    pub fn rename(&mut self, d: usize, from: &str, to: &str) {
        let disk = &mut self.devices[d].disk;
        if !disk.contains_key(from) || disk.contains_key(to) || under(to, from) || from == to {
            return;
        }
        if let Some(parent) = parent_of(to) {
            if !matches!(disk.get(parent), Some(Node::Folder { .. })) {
                return;
            }
        }
        for p in subtree(disk, from) {
            let disk = &mut self.devices[d].disk;
            if let Some(node) = disk.remove(&p) {
                let moved = format!("{to}{}", &p[from.len()..]);
                disk.insert(moved, node);
            }
            self.person_removed(d, p);
        }
        self.log(format!("dev{d} user renames {from} -> {to}"));
        self.touch(d);
    }

    pub fn chmod(&mut self, d: usize, path: &str) {
        if let Some(Node::File { mode, .. }) = self.devices[d].disk.get_mut(path) {
            *mode ^= 0o100;
            self.log(format!("dev{d} user chmod {path}"));
            self.touch(d);
        }
    }

    /// Device `d`'s person sets the modification time of file `path` `secs` seconds after
    /// the simulated clock's (`touch -d`; before it when negative); its content stays.
    pub fn touch_file(&mut self, d: usize, path: &str, secs: i64) {
        let at = self.mtime + secs * 1_000_000_000;
        if let Some(Node::File { mtime_ns, .. }) = self.devices[d].disk.get_mut(path) {
            *mtime_ns = at;
            self.log(format!("dev{d} user touches {path}"));
            self.touch(d);
        }
    }

    /// The modification time of file `path` on device `d`'s disk.
    pub fn mtime_of(&self, d: usize, path: &str) -> Option<i64> {
        match self.devices[d].disk.get(path) {
            Some(Node::File { mtime_ns, .. }) => Some(*mtime_ns),
            _ => None,
        }
    }

    // ----- faults --------------------------------------------------------------------------

    /// kill -9: memory, staged content and messages in flight are lost.
    pub fn crash(&mut self, d: usize) {
        if self.devices[d].core.take().is_some() {
            self.devices[d].staged.clear();
            self.devices[d].dirty_since = None;
            // Placements not carried out yet die with the daemon (one under way is all or
            // nothing: the simulator carries each out at once when it is due).
            self.devices[d].placing.clear();
            self.devices[d].exchange = qsync_exchange::Exchange::default();
            self.devices[d].queued.clear();
            self.log(format!("dev{d} crashes"));
            self.update_links();
        }
    }

    /// Start again: a new core on the surviving ledger and disk, then a full scan.
    pub fn restart(&mut self, d: usize) {
        if self.devices[d].core.is_none() {
            self.devices[d].core = Some(Core::new(self.devices[d].id));
            // As a daemon starts: the watcher's index is what the ledger says is on disk.
            let known: Vec<FileEntry> = self.devices[d]
                .ledger
                .all(&self.task)
                .into_iter()
                .filter_map(|r| {
                    let node = match r.state {
                        State::Deleted => return None,
                        State::File { hash, size, mode } => Node::File {
                            hash,
                            size,
                            mode,
                            mtime_ns: r.mtime_ns,
                        },
                        State::Folder { mode } => Node::Folder { mode },
                        State::Symlink { target } => Node::Symlink { target },
                    };
                    Some(file_entry(r.path.as_str(), &node))
                })
                .collect();
            self.devices[d].index = Index::new(known);
            self.log(format!("dev{d} restarts"));
            // As the daemon: a paused task is said so before anything else.
            if self.paused.contains(&d) {
                let task = self.task;
                self.input(d, Input::Pause { task, paused: true });
            }
            self.scan(d);
            self.update_links();
        }
    }

    /// The person of `d` pauses the task there.
    pub fn pause(&mut self, d: usize) {
        if self.paused.insert(d) {
            self.log(format!("dev{d} pauses"));
            let task = self.task;
            self.input(d, Input::Pause { task, paused: true });
        }
    }

    /// The person of `d` resumes the task there (the daemon says so at its next start if
    /// it is down now).
    pub fn resume(&mut self, d: usize) {
        self.paused.remove(&d);
        self.log(format!("dev{d} resumes"));
        let task = self.task;
        self.input(
            d,
            Input::Pause {
                task,
                paused: false,
            },
        );
    }

    pub fn partition(&mut self, a: usize, b: usize) {
        self.cut.insert((a.min(b), a.max(b)));
        self.update_links();
    }

    /// `a` and `b` can talk again (no restart).
    pub fn reconnect(&mut self, a: usize, b: usize) {
        self.cut.remove(&(a.min(b), a.max(b)));
        self.update_links();
    }

    pub fn heal(&mut self) {
        self.cut.clear();
        for d in 0..self.devices.len() {
            self.restart(d);
        }
        self.update_links();
    }
}

/// One random action of a schedule.
#[derive(Debug, Clone)]
pub enum Op {
    Write(usize, String),
    Mkdir(usize, String),
    Symlink(usize, String),
    Delete(usize, String),
    Rename(usize, String, String),
    Chmod(usize, String),
    /// `touch -d`: a file's time moved by so many seconds, its content unchanged.
    Touch(usize, String, i64),
    Crash(usize),
    Restart(usize),
    Partition(usize, usize),
    Heal,
    /// The task paused on a device, or resumed.
    Pause(usize),
    Resume(usize),
    Wait(u64),
    /// The hostile device attacks a device about a path (with a number to vary it).
    Attack(Attack, usize, String, u64),
}

const NAMES: [&str; 3] = ["a", "b", "c"];

fn random_path(rng: &mut Rng) -> String {
    let depth = 1 + rng.below(3) as usize;
    (0..depth)
        .map(|_| *rng.pick(&NAMES).unwrap_or(&"a"))
        .collect::<Vec<_>>()
        .join("/")
}

/// A random schedule of `len` actions for `devices` devices.
pub fn random_ops(rng: &mut Rng, devices: usize, len: usize, faults: bool) -> Vec<Op> {
    let n = devices as u64;
    (0..len)
        .map(|_| {
            let d = rng.below(n) as usize;
            let roll = rng.below(100);
            match roll {
                0..=29 => Op::Write(d, random_path(rng)),
                30..=37 => Op::Mkdir(d, random_path(rng)),
                38..=41 => Op::Symlink(d, random_path(rng)),
                42..=53 => Op::Delete(d, random_path(rng)),
                54..=65 => Op::Rename(d, random_path(rng), random_path(rng)),
                66..=70 => Op::Chmod(d, random_path(rng)),
                71..=75 if faults => Op::Crash(d),
                76..=80 if faults => Op::Restart(d),
                81..=85 if faults => Op::Partition(d, rng.below(n) as usize),
                86..=88 if faults => Op::Heal,
                89..=91 => Op::Touch(d, random_path(rng), -(rng.below(100_000) as i64)),
                92..=93 => Op::Pause(d),
                94..=95 => Op::Resume(d),
                _ => Op::Wait(rng.below(600)),
            }
        })
        .collect()
}

/// A random schedule with attacks of a hostile device on the even-numbered devices mixed in.
pub fn random_hostile_ops(rng: &mut Rng, devices: usize, len: usize, faults: bool) -> Vec<Op> {
    let mut ops = Vec::new();
    for op in random_ops(rng, devices, len, faults) {
        ops.push(op);
        while rng.chance(40) {
            let to = 2 * rng.below(devices.div_ceil(2) as u64) as usize;
            ops.push(Op::Attack(
                Attack::random(rng),
                to,
                random_path(rng),
                rng.next(),
            ));
        }
    }
    ops
}

impl World {
    pub fn apply(&mut self, op: &Op) {
        match op {
            Op::Write(d, p) => self.write(*d, p),
            Op::Mkdir(d, p) => self.mkdir(*d, p),
            Op::Symlink(d, p) => self.symlink(*d, p, "target"),
            Op::Delete(d, p) => self.delete(*d, p),
            Op::Rename(d, a, b) => self.rename(*d, a, b),
            Op::Chmod(d, p) => self.chmod(*d, p),
            Op::Touch(d, p, secs) => self.touch_file(*d, p, *secs),
            Op::Crash(d) => self.crash(*d),
            Op::Restart(d) => self.restart(*d),
            Op::Partition(a, b) if a != b => self.partition(*a, *b),
            Op::Partition(..) => {}
            Op::Heal => {
                self.cut.clear();
                self.update_links();
            }
            Op::Pause(d) => self.pause(*d),
            Op::Resume(d) => self.resume(*d),
            Op::Wait(ms) => self.run_for(Duration::from_millis(*ms)),
            Op::Attack(attack, to, path, x) => self.attack(*attack, *to, path, *x),
        }
        // People act at human speed: some time passes between two actions.
        let pause = self.rng.below(5);
        for _ in 0..pause {
            self.step();
        }
    }
}
