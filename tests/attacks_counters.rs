//! Attacks on the sync core's trust by a linked device turned hostile, against real daemons
//! on loopback: version counters forged for the victim and for a third device (which
//! stopped sync for good, and erased an edit without a conflict copy), floods of greetings,
//! records and tombstones (which cost gigabytes), and an unlink the core did not hear of.
//! The hostile device (`support/peer.rs`) holds the key of a daemon that was linked the
//! ordinary way and then stopped.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/node.rs"]
mod node;
#[path = "support/peer.rs"]
mod peer;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use node::{device_at, link, rss_kib, tree, wait_for, wait_same, Node};
use peer::{Heard, Peer};
use qsync_base::{ContentHash, DeviceId, VersionVector};
use qsync_core::{State, MAX_COUNTER, MAX_VERSION_ENTRIES};
use qsync_wire::{Identity, TaskId};

const SETTLE: Duration = Duration::from_secs(60);

/// A daemon `a` syncing `root` with an honest daemon `c`, and with a device whose key the
/// attacker holds (its daemon is stopped).
struct Scene {
    base: tempfile::TempDir,
    a: Node,
    c: Node,
    task: TaskId,
    root: PathBuf,
    root_c: PathBuf,
    hostile: Identity,
}

fn scene(files: &[(&str, &[u8])]) -> Scene {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("A");
    fs::create_dir(&root).unwrap();
    for (name, content) in files {
        fs::write(root.join(name), content).unwrap();
    }
    let a = Node::start(base.path(), "victim");
    let mut b = Node::start(base.path(), "linked");
    let c = Node::start(base.path(), "honest");
    let task = a.add_task(&root);
    let (root_b, root_c) = (base.path().join("B"), base.path().join("C"));
    link(&a, &task, &b, &root_b);
    link(&a, &task, &c, &root_c);
    wait_same(&root, &root_b, SETTLE);
    wait_same(&root, &root_c, SETTLE);
    let hostile = peer::identity_of(&b.state);
    b.kill();
    Scene {
        base,
        a,
        c,
        task: task.parse().unwrap(),
        root,
        root_c,
        hostile,
    }
}

fn id_of(node: &Node) -> DeviceId {
    device_at(&node.state).parse().unwrap()
}

fn file(content: &[u8]) -> State {
    State::File {
        hash: ContentHash::of(content),
        size: content.len() as u64,
        mode: 0o644,
    }
}

/// `version` with `device`'s counter set to `counter`.
fn with(version: &VersionVector, device: DeviceId, counter: u64) -> VersionVector {
    let mut counters: Vec<(DeviceId, u64)> = version.clone().into();
    counters.retain(|(d, _)| *d != device);
    counters.push((device, counter));
    counters.into()
}

/// Whether some file of `root` (at `name` or a conflict copy of it) holds `content`.
fn kept(root: &Path, name: &str, content: &[u8]) -> bool {
    let stem = name.split('.').next().unwrap_or(name);
    fs::read_dir(root).unwrap().flatten().any(|e| {
        let n = e.file_name().to_string_lossy().into_owned();
        (n == name || (n.starts_with(stem) && n.contains(".sync-conflict-")))
            && fs::read(e.path()).is_ok_and(|c| c == content)
    })
}

/// The `distrusted` line of `node`'s status for `device`: (refused, doubted).
fn distrusted(node: &Node, device: DeviceId) -> (u64, u64) {
    let status = node.cli(&["status"]);
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("distrusted {device}")));
    let Some(line) = line else { return (0, 0) };
    let words: Vec<&str> = line.split_whitespace().collect();
    let number = |key: &str| {
        words
            .windows(2)
            .find(|w| w[0] == key)
            .and_then(|w| w[1].parse().ok())
            .unwrap_or(0)
    };
    (number("refused"), number("doubted"))
}

/// One `Records` naming every path with its current content but the counters of the
/// victim and of the third device at the wire's maximum, then at the bound: the first is
/// refused (and counted), the second taken as concurrent; edits go on both ways after.
#[test]
fn counters_forged_to_the_maximum_do_not_stop_sync() {
    let s = scene(&[("one.txt", b"one"), ("two.txt", b"two")]);
    let (a, c) = (id_of(&s.a), id_of(&s.c));
    let mut p = Peer::connect(s.a.port, &s.hostile, s.task);
    wait_for("the victim's records", SETTLE, || {
        p.pump(Duration::from_millis(200));
        p.theirs.len() >= 2
    });
    for counter in [i64::MAX as u64, MAX_COUNTER] {
        let forged: Vec<_> = p
            .theirs
            .values()
            .map(|r| {
                let v = with(&with(&r.version, a, counter), c, counter);
                (r.path.to_string(), r.state.clone(), v)
            })
            .collect();
        p.put_versions(forged);
        p.pump(Duration::from_secs(1));
    }
    wait_for("the refusal in status", SETTLE, || {
        distrusted(&s.a, p.me).0 > 0
    });
    // Edits on both sides still reach the other, as content or as a conflict copy.
    fs::write(s.root.join("one.txt"), b"edited on A").unwrap();
    wait_for("A's edit on C", SETTLE, || {
        kept(&s.root_c, "one.txt", b"edited on A")
    });
    fs::write(s.root_c.join("two.txt"), b"edited on C").unwrap();
    wait_for("C's edit on A", SETTLE, || {
        kept(&s.root, "two.txt", b"edited on C")
    });
    drop(p);
    wait_same(&s.root, &s.root_c, SETTLE);
    assert_eq!(distrusted(&s.c, a).0, 0, "C refused nothing of A's");
}

/// C is away and its person edits `report.txt`. The hostile device sends A a record of
/// `report.txt` with A's content (then, in the second run, a deletion) and C's counter
/// forged far ahead. When C returns, its edit survives on both devices.
#[test]
fn a_forged_counter_of_an_away_device_does_not_erase_its_edit() {
    for deletion in [false, true] {
        let mut s = scene(&[("report.txt", b"first draft")]);
        let c = id_of(&s.c);
        s.c.kill();
        fs::write(s.root_c.join("report.txt"), b"C's edit, made while away").unwrap();
        let mut p = Peer::connect(s.a.port, &s.hostile, s.task);
        wait_for("the victim's records", SETTLE, || {
            p.pump(Duration::from_millis(200));
            !p.theirs.is_empty()
        });
        let record = p
            .theirs
            .values()
            .find(|r| r.path.as_str() == "report.txt")
            .cloned()
            .unwrap();
        let state = if deletion {
            State::Deleted
        } else {
            record.state.clone()
        };
        let forged = with(&record.version, c, 1000);
        p.put_versions(vec![("report.txt".into(), state, forged)]);
        p.pump(Duration::from_secs(2));
        drop(p);
        s.c.restart();
        wait_same(&s.root, &s.root_c, SETTLE);
        for root in [&s.root, &s.root_c] {
            assert!(
                kept(root, "report.txt", b"C's edit, made while away"),
                "deletion {deletion}: C's edit is gone from {}: {:?}",
                root.display(),
                tree(root)
            );
        }
    }
}

/// 400 greetings of 13 bytes each used to re-queue the whole task's records each (2.3 GB
/// RSS); then a flood of records beyond the window (840,000 records took 4 GB). Both now
/// cost at most the window.
#[test]
fn floods_of_greetings_and_records_cost_a_bounded_memory() {
    let files: Vec<(String, Vec<u8>)> = (0..2000)
        .map(|i| (format!("f{i:04}"), format!("file {i}").into_bytes()))
        .collect();
    let refs: Vec<(&str, &[u8])> = files
        .iter()
        .map(|(n, c)| (n.as_str(), c.as_slice()))
        .collect();
    let s = scene(&refs);
    let mut p = Peer::connect(s.a.port, &s.hostile, s.task);
    p.pump(Duration::from_secs(2));
    let before = rss_kib(&s.a);
    for _ in 0..400 {
        p.core(qsync_core::Message::Hello {
            task: s.task,
            after: 0,
            reply: true,
        });
    }
    p.pump(Duration::from_secs(3));
    let after_hellos = rss_kib(&s.a);
    let records: Vec<(String, State, VersionVector)> = (0..200_000)
        .map(|i| {
            let content = format!("never sent {i}");
            let version = VersionVector::new().bumped(p.me);
            (format!("flood/{i:06}"), file(content.as_bytes()), version)
        })
        .collect();
    p.put_versions(records);
    p.pump(Duration::from_secs(5));
    let after_records = rss_kib(&s.a);
    eprintln!(
        "RSS of the attacked daemon: {before} KiB before, {after_hellos} KiB after 400 greetings, {after_records} KiB after 200,000 records"
    );
    assert!(
        after_hellos < before + 32 * 1024,
        "greetings: {before} -> {after_hellos} KiB"
    );
    assert!(
        after_records < before + 96 * 1024,
        "records: {before} -> {after_records} KiB"
    );
    let (refused, _) = distrusted(&s.a, p.me);
    assert!(refused > 100_000, "{refused} refused");
    // It still answers its person and syncs with the honest device.
    fs::write(s.root.join("after.txt"), b"after the flood").unwrap();
    wait_for("the new file on C", SETTLE, || {
        s.root_c.join("after.txt").exists()
    });
}

/// Five floods of 1,000 tombstones of paths nobody has, each with a version naming as many
/// devices as allowed (they used to be allowed 1,024): the first costs the database at most
/// a few kilobytes each; once C has acknowledged them they are forgotten, and the floods
/// after it reuse that room instead of growing the database five times over.
#[test]
fn a_flood_of_tombstones_grows_the_database_by_a_bounded_amount() {
    let s = scene(&[("x", b"x")]);
    let size = |state: &Path| -> u64 {
        fs::read_dir(state)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name().to_string_lossy().contains(".sqlite")
                    || e.file_name().to_string_lossy().ends_with(".db")
                    || e.file_name().to_string_lossy().contains(".db-")
            })
            .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
            .sum()
    };
    let mut p = Peer::connect(s.a.port, &s.hostile, s.task);
    p.pump(Duration::from_secs(1));
    let before = size(&s.a.state);
    let mut wide = VersionVector::new().bumped(p.me);
    for i in 0..MAX_VERSION_ENTRIES - 1 {
        let mut id = [0xF0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        wide = wide.bumped(DeviceId::from_bytes(id));
    }
    let mut first = 0;
    for round in 0..5 {
        let tombstones: Vec<_> = (0..1000)
            .map(|i| (format!("gone{round}/{i:04}"), State::Deleted, wide.clone()))
            .collect();
        p.put_versions(tombstones);
        p.pump(Duration::from_secs(3));
        s.a.cli(&["status"]);
        std::thread::sleep(Duration::from_secs(1));
        let grown = size(&s.a.state).saturating_sub(before);
        eprintln!(
            "database after {} floods of 1,000 hostile tombstones: +{grown} bytes",
            round + 1
        );
        if round == 0 {
            first = grown;
            assert!(grown < 12 << 20, "the first flood grew it by {grown} bytes");
        }
    }
    let grown = size(&s.a.state).saturating_sub(before);
    assert!(
        grown < first * 2 + (2 << 20),
        "five floods grew it by {grown} bytes, the first by {first}: tombstones are kept"
    );
}

/// `qsync unlink TASK DEVICE` stops the stream at once: a file made after it is never
/// announced to the unlinked device, and the connection closes (no task left in common).
#[test]
fn unlink_stops_the_stream_at_once() {
    let s = scene(&[("x", b"x")]);
    let mut p = Peer::connect(s.a.port, &s.hostile, s.task);
    p.pump(Duration::from_secs(1));
    s.a.cli(&["unlink", &s.task.to_string(), &p.me.to_string()]);
    fs::write(s.root.join("secret-after-unlink.txt"), b"not for you").unwrap();
    wait_for("the new file on C", SETTLE, || {
        s.root_c.join("secret-after-unlink.txt").exists()
    });
    let closed = p.is_closed(Duration::from_secs(5));
    let named = p.heard.iter().any(|h| match h {
        Heard::Core(qsync_core::Message::Records { records, .. }) => records
            .iter()
            .any(|r| r.path.as_str() == "secret-after-unlink.txt"),
        _ => false,
    });
    assert!(!named, "the unlinked device heard of the new file");
    assert!(closed, "the connection is still open");
    let _ = &s.base;
}
