//! Conflicts as a person settles them, with two real daemons on loopback: both devices
//! edit a file while apart, `qsync conflicts` lists the copy with both versions, and
//! `qsync resolve` settles it, the result reaching the other device; what a resolution
//! removes is kept as a version.
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

use node::{linked_pair, wait_for, wait_same, Node, Pair};

const SETTLE: Duration = Duration::from_secs(120);

/// Two devices that both edited `plan.txt` while B was stopped: both hold the winner at
/// `plan.txt` and the loser in a conflict copy beside it.
struct Conflicted {
    _base: tempfile::TempDir,
    a: Node,
    b: Node,
    root_a: PathBuf,
    root_b: PathBuf,
}

fn conflicted() -> Conflicted {
    let base = tempfile::tempdir().unwrap();
    let Pair {
        a,
        mut b,
        root_a,
        root_b,
        ..
    } = linked_pair(base.path(), &[("plan.txt", b"plan")]);
    b.kill();
    fs::write(root_a.join("plan.txt"), b"alpha's plan").unwrap();
    fs::write(root_b.join("plan.txt"), b"beta's plan, longer").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    b.restart();
    wait_same(&root_a, &root_b, SETTLE);
    assert_eq!(copies(&root_a).len(), 1, "one conflict copy");
    Conflicted {
        _base: base,
        a,
        b,
        root_a,
        root_b,
    }
}

fn copies(root: &Path) -> Vec<String> {
    fs::read_dir(root)
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains(".sync-conflict-"))
        .collect()
}

#[test]
fn a_conflict_is_listed_with_both_versions_and_settled_for_the_other_everywhere() {
    let c = conflicted();
    let listed = c.a.cli(&["conflicts"]);
    println!("{listed}");
    let line = listed.lines().next().unwrap();
    assert!(line.starts_with("conflict plan.txt"), "{line}");
    assert!(line.contains(&copies(&c.root_a)[0]), "{line}");
    let winner = fs::read(c.root_a.join("plan.txt")).unwrap();
    let loser = fs::read(c.root_a.join(&copies(&c.root_a)[0])).unwrap();
    // Why the task is not in sync: the conflict, with its copy.
    let task =
        c.a.cli(&["task", "list"])
            .split_whitespace()
            .nth(1)
            .unwrap()
            .to_owned();
    let why = c.a.cli(&["status", "--task", &task]);
    assert!(
        why.starts_with("plan.txt: conflict; the other version is plan.sync-conflict-"),
        "{why}"
    );
    // Asked on the other device by the original's path: the same copy.
    let on_b =
        c.b.cli(&["conflicts", c.root_b.join("plan.txt").to_str().unwrap()]);
    assert_eq!(on_b.lines().count(), 1, "{on_b}");

    c.b.cli(&[
        "resolve",
        c.root_b.join("plan.txt").to_str().unwrap(),
        "--keep",
        "other",
    ]);
    assert_eq!(fs::read(c.root_b.join("plan.txt")).unwrap(), loser);
    assert!(copies(&c.root_b).is_empty());
    wait_same(&c.root_a, &c.root_b, SETTLE);
    assert!(copies(&c.root_a).is_empty(), "settled on A too");
    assert_eq!(c.a.cli(&["conflicts"]), "no conflicts");
    // The version that lost the settling is kept on B.
    let versions =
        c.b.cli(&["versions", c.root_b.join("plan.txt").to_str().unwrap()]);
    assert!(versions.contains("resolved-over"), "{versions}");
    c.b.cli(&["restore", c.root_b.join("plan.txt").to_str().unwrap()]);
    assert_eq!(fs::read(c.root_b.join("plan.txt")).unwrap(), winner);
}

#[test]
fn keeping_this_removes_the_copy_and_keeping_both_gives_it_a_plain_name() {
    let c = conflicted();
    let winner = fs::read(c.root_a.join("plan.txt")).unwrap();
    let copy = copies(&c.root_a)[0].clone();
    let loser = fs::read(c.root_a.join(&copy)).unwrap();
    c.a.cli(&[
        "resolve",
        c.root_a.join(&copy).to_str().unwrap(),
        "--keep",
        "both",
    ]);
    let plain = copy.replacen(".sync-conflict-", ".kept-", 1);
    assert_eq!(fs::read(c.root_a.join(&plain)).unwrap(), loser);
    wait_same(&c.root_a, &c.root_b, SETTLE);
    assert_eq!(c.b.cli(&["conflicts"]), "no conflicts");

    // A new conflict on the same file, settled for this side: the copy goes, kept.
    let mut b = c.b;
    b.kill();
    fs::write(c.root_a.join("plan.txt"), b"alpha again").unwrap();
    fs::write(c.root_b.join("plan.txt"), b"beta again!").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    b.restart();
    wait_same(&c.root_a, &c.root_b, SETTLE);
    let copy = copies(&c.root_a)[0].clone();
    c.a.cli(&[
        "resolve",
        c.root_a.join("plan.txt").to_str().unwrap(),
        "--keep",
        "this",
    ]);
    assert!(copies(&c.root_a).is_empty());
    wait_same(&c.root_a, &c.root_b, SETTLE);
    let versions = c.a.cli(&["versions"]);
    assert!(
        versions
            .lines()
            .any(|l| l.contains("resolved") && l.ends_with(&copy)),
        "{versions}"
    );
    assert_ne!(fs::read(c.root_a.join("plan.txt")).unwrap(), winner);
}

/// The first characters of a device's id, as a conflict copy's name holds them.
fn in_name(device: &str) -> String {
    device.chars().filter(|c| *c != '-').take(7).collect()
}

/// Three devices edit one file while apart: every device holds the same two copies, each
/// named after the device whose edit it holds, `conflicts` lists them with their makers,
/// and keeping one copy's version leaves one file and no copy everywhere.
#[test]
fn three_devices_edit_one_file_and_each_copy_names_its_device() {
    let base = tempfile::tempdir().unwrap();
    let Pair {
        a,
        mut b,
        root_a,
        root_b,
        task,
    } = linked_pair(base.path(), &[("plan.txt", b"plan")]);
    let mut c = Node::start(base.path(), "gamma");
    let root_c = base.path().join("C");
    node::link(&a, &task, &c, &root_c);
    wait_same(&root_a, &root_c, SETTLE);
    let ids: Vec<String> = [&a, &b, &c]
        .iter()
        .map(|n| in_name(&node::device_at(&n.state)))
        .collect();
    b.kill();
    c.kill();
    fs::write(root_a.join("plan.txt"), b"alpha's plan").unwrap();
    fs::write(root_b.join("plan.txt"), b"beta's plan, longer").unwrap();
    fs::write(root_c.join("plan.txt"), b"gamma's plan, the longest").unwrap();
    std::thread::sleep(Duration::from_secs(1));
    b.restart();
    c.restart();
    wait_for("two copies", SETTLE, || {
        copies(&root_a).len() == 2 && copies(&root_b).len() == 2 && copies(&root_c).len() == 2
    });
    wait_same(&root_a, &root_b, SETTLE);
    wait_same(&root_a, &root_c, SETTLE);
    let mut named = copies(&root_a);
    named.sort();
    let winner = fs::read(root_a.join("plan.txt")).unwrap();
    let made_by = |content: &[u8]| match content {
        b"alpha's plan" => &ids[0],
        b"beta's plan, longer" => &ids[1],
        _ => &ids[2],
    };
    for copy in &named {
        let content = fs::read(root_a.join(copy)).unwrap();
        let device = made_by(&content);
        assert!(
            copy.contains(&format!("-{device}.")),
            "{copy} names {device}"
        );
    }
    assert!(!named.iter().any(|n| n.contains(made_by(&winner).as_str())));
    // Listed on each device, each copy with its maker (by name where linked).
    let listed = b.cli(&["conflicts"]);
    assert_eq!(listed.lines().count(), 2, "{listed}");
    assert!(
        listed.lines().all(|l| l.contains(" by ")),
        "each version names its device: {listed}"
    );
    // Keeping one copy's version: one file and no copy, everywhere.
    let kept = fs::read(root_c.join(&named[0])).unwrap();
    c.cli(&[
        "resolve",
        root_c.join(&named[0]).to_str().unwrap(),
        "--keep",
        "other",
    ]);
    assert!(copies(&root_c).is_empty());
    wait_same(&root_a, &root_c, SETTLE);
    wait_same(&root_b, &root_c, SETTLE);
    for root in [&root_a, &root_b, &root_c] {
        assert!(copies(root).is_empty(), "{}", root.display());
        assert_eq!(fs::read(root.join("plan.txt")).unwrap(), kept);
    }
}
