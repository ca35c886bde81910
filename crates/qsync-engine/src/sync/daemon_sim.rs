//! Daemons in one process: each device is the real [`SyncDriver`] (the core, the content
//! exchange, the serving threads, the placements) with a `MemLedger` and a temporary
//! folder; the test carries their messages ([`Loopback`]), tells them what changed on disk
//! (the watcher's own `observe`, run at once) and cuts or restores their connections. The
//! flows a person lives (link, edit, be away, come back, edit on both sides while apart)
//! run in milliseconds, without sockets, SQLite or timers.

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use qsync_base::{DeviceId, RelPath, TaskId};
use qsync_core::Input;
use qsync_watch::{Index, WatchBatch};

use super::loopback::Loopback;
use super::{Around, Report, SyncDriver, TaskFolder};

const TASK: TaskId = TaskId::from_bytes([9; 32]);

/// One device: its driver, its surroundings, its folder.
struct Device {
    id: DeviceId,
    driver: SyncDriver,
    around: Loopback,
    root: PathBuf,
    /// Changes received and placed here.
    applied: usize,
    _dir: tempfile::TempDir,
}

impl Device {
    fn new(n: u8) -> Self {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("folder");
        fs::create_dir(&root).unwrap();
        let id = DeviceId::from_bytes([n; 32]);
        let mut driver = SyncDriver::start(id, [n; 32], &dir.path().join("state")).unwrap();
        driver.add_folder(
            TASK,
            TaskFolder::new(root.clone(), Index::default(), [], false),
        );
        let mut around = Loopback::default();
        around.add_task(TASK);
        Self {
            id,
            driver,
            around,
            root,
            applied: 0,
            _dir: dir,
        }
    }

    /// Write `content` at `path` and let the device see it, as its watcher would.
    fn write(&mut self, path: &str, content: &[u8]) {
        let at = self.root.join(path);
        fs::create_dir_all(at.parent().unwrap()).unwrap();
        fs::write(&at, content).unwrap();
        self.seen(path);
    }

    /// Remove the file at `path` and let the device see it.
    fn remove(&mut self, path: &str) {
        fs::remove_file(self.root.join(path)).unwrap();
        self.seen(path);
    }

    fn seen(&mut self, path: &str) {
        self.look(WatchBatch::Changes {
            touched: [RelPath::new(path).unwrap()].into(),
            renames: Vec::new(),
        });
    }

    /// What the watcher reports of `batch`, handed to the driver.
    fn look(&mut self, batch: WatchBatch) {
        let folder = self.driver.folder_mut(&TASK).unwrap();
        let root = folder.root.clone();
        let events = qsync_watch::observe(&root, &mut folder.index, &batch).unwrap();
        self.driver.local(TASK, events);
        self.turn();
    }

    fn feed(&mut self, input: Input) {
        self.driver.feed(&mut self.around, input);
        self.turn();
    }

    /// What the daemon's loop does between events: placements made durable, the driver
    /// run, time let pass, and what the driver reports done.
    fn turn(&mut self) {
        self.driver.flush();
        self.driver.run(&mut self.around, None);
        self.driver.tick(&mut self.around);
        while let Some(report) = self.driver.poll_report() {
            match report {
                Report::Applied(applied) => {
                    self.applied += 1;
                    // The watcher reports the placement's own writes (absorbed: the index
                    // expects them) and the conflicting copy moved aside (a new file).
                    let mut touched = vec![applied.path];
                    touched.extend(applied.aside);
                    self.look(WatchBatch::Changes {
                        touched: touched.into_iter().collect(),
                        renames: Vec::new(),
                    });
                }
                Report::LookAt(_, paths) => self.look(WatchBatch::Changes {
                    touched: paths.into_iter().collect(),
                    renames: Vec::new(),
                }),
                Report::Rescan(_) => self.look(WatchBatch::Rescan {
                    reason: "a placement failed".into(),
                }),
                Report::Delivered(_) | Report::Relearn => {}
            }
        }
        if self.driver.wants_run() {
            self.driver.run(&mut self.around, None);
        }
    }

    /// Whether nothing waits: no input, no placement, nothing being served.
    fn idle(&self) -> bool {
        !self.driver.wants_run()
            && self.driver.batch_since().is_none()
            && self.driver.serving_idle()
    }

    /// The folder's files and their contents.
    fn files(&self) -> BTreeMap<String, Vec<u8>> {
        let mut out = BTreeMap::new();
        list(&self.root, &self.root, &mut out);
        out
    }
}

fn list(root: &Path, at: &Path, out: &mut BTreeMap<String, Vec<u8>>) {
    for entry in fs::read_dir(at).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            list(root, &path, out);
        } else {
            let name = path.strip_prefix(root).unwrap().display().to_string();
            out.insert(name, fs::read(&path).unwrap());
        }
    }
}

/// Devices and the connections between them.
struct Sim {
    devices: Vec<Device>,
    /// Bytes of content, patches and signatures carried so far.
    carried: usize,
}

impl Sim {
    fn new(count: u8) -> Self {
        Self {
            devices: (1..=count).map(Device::new).collect(),
            carried: 0,
        }
    }

    /// Link devices `a` and `b` for the task (the pairing done) and connect them.
    fn link(&mut self, a: usize, b: usize) {
        let (ida, idb) = (self.devices[a].id, self.devices[b].id);
        self.devices[a].feed(Input::Link {
            task: TASK,
            peer: idb,
        });
        self.devices[b].feed(Input::Link {
            task: TASK,
            peer: ida,
        });
        self.connect(a, b);
    }

    fn connect(&mut self, a: usize, b: usize) {
        let (ida, idb) = (self.devices[a].id, self.devices[b].id);
        self.devices[a].around.connect(idb);
        self.devices[b].around.connect(ida);
        self.devices[a].feed(Input::Connected { peer: idb });
        self.devices[b].feed(Input::Connected { peer: ida });
    }

    /// Cut the connection between `a` and `b`: what was on its way is lost.
    fn disconnect(&mut self, a: usize, b: usize) {
        for (me, other) in [(a, b), (b, a)] {
            let peer = self.devices[other].id;
            let device = &mut self.devices[me];
            device.around.disconnect(&peer);
            device.driver.disconnected(&mut device.around, peer);
            device.turn();
        }
    }

    /// Carry messages until nothing moves and nothing waits, the core's timers fired as
    /// if their time had passed (at most 10 s, or a minute of the devices' time: a flow
    /// that does not settle fails).
    fn settle(&mut self) {
        let start = Instant::now();
        let mut skipped = Duration::ZERO;
        let mut quiet = 0;
        loop {
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "the devices never settled"
            );
            if self.carry() || !self.devices.iter().all(Device::idle) {
                quiet = 0;
                // The serving threads write on their own time.
                std::thread::sleep(Duration::from_millis(1));
                continue;
            }
            quiet += 1;
            if quiet < 3 {
                continue;
            }
            // Quiet: the next timer of a core fires (an acknowledgement, a retry).
            let now = self.devices[0].around.now();
            let next = self
                .devices
                .iter()
                .filter_map(|d| d.driver.core_timeout())
                .min();
            let Some(wait) = next.map(|t| t.saturating_duration_since(now)) else {
                return;
            };
            if skipped + wait > Duration::from_secs(60) {
                return;
            }
            skipped += wait;
            for device in &mut self.devices {
                device.around.advance(wait);
                device.turn();
            }
            quiet = 0;
        }
    }

    /// Deliver what each device sent; whether anything moved.
    fn carry(&mut self) -> bool {
        let mut moved = false;
        for from in 0..self.devices.len() {
            for to in 0..self.devices.len() {
                let (from_id, to_id) = (self.devices[from].id, self.devices[to].id);
                let sent = self.devices[from].around.take_sent(&to_id);
                let receiver = &mut self.devices[to];
                for (task, message) in sent {
                    moved = true;
                    self.carried += message.served_len();
                    if receiver.around.is_connected(&from_id) {
                        receiver
                            .driver
                            .received(&mut receiver.around, from_id, task, message);
                        receiver.turn();
                    }
                }
            }
        }
        for device in &mut self.devices {
            device.turn();
        }
        moved
    }
}

#[test]
fn what_a_folder_holds_reaches_the_device_it_is_linked_with_then_its_edits_follow() {
    let started = Instant::now();
    let mut sim = Sim::new(2);
    sim.devices[0].write("notes.txt", b"first notes");
    sim.devices[0].write("photos/cat.jpg", &[7u8; 100_000]);
    sim.link(0, 1);
    sim.settle();
    assert_eq!(
        sim.devices[1].files(),
        sim.devices[0].files(),
        "the setup copy"
    );
    assert_eq!(
        sim.devices[1].applied, 2,
        "two files (their folder made with them)"
    );

    sim.devices[0].write("notes.txt", b"first notes, and a second line");
    sim.settle();
    assert_eq!(
        sim.devices[1].files()["notes.txt"],
        b"first notes, and a second line"
    );
    sim.devices[1].remove("photos/cat.jpg");
    sim.settle();
    assert_eq!(sim.devices[0].files(), sim.devices[1].files());
    assert!(!sim.devices[0].files().contains_key("photos/cat.jpg"));
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "{:?}",
        started.elapsed()
    );
}

#[test]
fn a_device_that_was_away_gets_every_change_it_missed_when_it_returns() {
    let mut sim = Sim::new(2);
    sim.devices[0].write("keep.txt", b"kept");
    sim.devices[0].write("edit.txt", b"before");
    sim.devices[0].write("gone.txt", b"to be deleted");
    sim.link(0, 1);
    sim.settle();
    sim.disconnect(0, 1);

    sim.devices[0].write("edit.txt", b"edited while the other device was away");
    sim.devices[0].write("new/made.txt", b"made while away");
    sim.devices[0].remove("gone.txt");
    sim.settle();
    assert_eq!(
        sim.devices[1].files()["edit.txt"],
        b"before",
        "away: nothing came"
    );

    sim.connect(0, 1);
    sim.settle();
    let files = sim.devices[1].files();
    assert_eq!(files, sim.devices[0].files());
    assert_eq!(files["new/made.txt"], b"made while away");
    assert!(!files.contains_key("gone.txt"));
}

#[test]
fn edits_of_one_file_on_both_sides_while_apart_keep_both_on_both_devices() {
    let mut sim = Sim::new(3);
    sim.devices[0].write("plan.txt", b"v1");
    sim.link(0, 1);
    sim.link(0, 2);
    sim.settle();
    sim.disconnect(0, 1);
    sim.devices[0].write("plan.txt", b"edited on the first device");
    sim.devices[1].write("plan.txt", b"edited on the second device");
    sim.settle();
    sim.connect(0, 1);
    sim.settle();

    let files = sim.devices[0].files();
    assert_eq!(sim.devices[1].files(), files, "the same on both sides");
    assert_eq!(
        sim.devices[2].files(),
        files,
        "and on the third, through the first"
    );
    let contents: Vec<&[u8]> = files.values().map(Vec::as_slice).collect();
    assert!(
        contents.contains(&&b"edited on the first device"[..]),
        "{files:?}"
    );
    assert!(
        contents.contains(&&b"edited on the second device"[..]),
        "{files:?}"
    );
    assert!(
        files.keys().any(|k| k.contains("sync-conflict")),
        "{files:?}"
    );
}

/// Bytes that do not compress, the same for a given length.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect()
}

#[test]
fn an_edit_of_a_large_file_travels_as_a_patch_from_the_version_the_other_device_has() {
    let mut sim = Sim::new(2);
    let mut big = noise(2_000_000);
    sim.devices[0].write("big.bin", &big);
    sim.link(0, 1);
    sim.settle();
    assert_eq!(sim.devices[1].files()["big.bin"], big);

    // One byte changed: the other device describes its version (no copy of it is kept
    // here), and a patch from it travels.
    let before = sim.carried;
    big[1_000_000] ^= 0xff;
    sim.devices[0].write("big.bin", &big);
    sim.settle();
    assert!(sim.devices[1].files()["big.bin"] == big, "the edit arrived");
    let carried = sim.carried - before;
    println!("a one-byte edit of a 2 MB file: {carried} bytes of signature and patch");
    assert!(
        carried < 200_000,
        "{carried} bytes carried for a one-byte edit of a 2 MB file"
    );
}
