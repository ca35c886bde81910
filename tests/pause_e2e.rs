//! Pausing a task, as a person does it, with two real daemons on loopback: while paused,
//! edits on either side stay on their side (also across a restart of the paused daemon);
//! once resumed, both arrive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/node.rs"]
mod node;
#[path = "support/peer.rs"]
mod peer;

use std::fs;
use std::time::Duration;

use node::{linked_pair, wait_for, wait_same, Pair};

const SETTLE: Duration = Duration::from_secs(120);

#[test]
fn edits_made_during_a_pause_arrive_after_resume_and_none_before() {
    let base = tempfile::tempdir().unwrap();
    let Pair {
        a: _a,
        mut b,
        root_a,
        root_b,
        task,
    } = linked_pair(base.path(), &[("first.txt", b"synced")]);

    let paused = b.cli(&["pause", &task]);
    assert!(paused.contains("paused"), "{paused}");
    assert!(b.cli(&["status"]).contains(&format!("paused {task}")));
    let why = b.cli(&["status", "--task", &task]);
    assert!(why.starts_with("(task): paused here"), "{why}");
    fs::write(root_a.join("from-a.txt"), b"made on A").unwrap();
    fs::write(root_b.join("from-b.txt"), b"made on B").unwrap();
    fs::write(root_a.join("first.txt"), b"edited on A").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!root_b.join("from-a.txt").exists(), "taken while paused");
    assert!(!root_a.join("from-b.txt").exists(), "sent while paused");
    assert_eq!(fs::read(root_b.join("first.txt")).unwrap(), b"synced");

    // Still paused after a restart.
    b.restart();
    fs::write(root_b.join("later-b.txt"), b"after the restart").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(!root_b.join("from-a.txt").exists() && !root_a.join("later-b.txt").exists());
    assert!(b.cli(&["task", "list"]).contains("paused"));

    b.cli(&["resume", &task]);
    wait_same(&root_a, &root_b, SETTLE);
    for (name, content) in [
        ("from-a.txt", "made on A"),
        ("from-b.txt", "made on B"),
        ("later-b.txt", "after the restart"),
        ("first.txt", "edited on A"),
    ] {
        wait_for(name, SETTLE, || {
            fs::read(root_b.join(name)).is_ok_and(|c| c == content.as_bytes())
        });
    }
    assert!(!b.cli(&["status"]).contains("paused "));
    assert_eq!(
        b.cli(&["status", "--task", &task]),
        format!("task {task} is in sync here")
    );
}

/// A device paused: no connection with it, for any task, until resumed (across a
/// restart); what changed on either side meanwhile then syncs.
#[test]
fn a_paused_device_is_not_connected_until_resumed() {
    let base = tempfile::tempdir().unwrap();
    let Pair {
        a,
        mut b,
        root_a,
        root_b,
        task: _,
    } = linked_pair(base.path(), &[("first.txt", b"synced")]);
    let alpha = a
        .cli(&["status"])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();

    b.cli(&["pause", "--device", &alpha]);
    wait_for("the connection closed", SETTLE, || {
        b.status("connected") == 0
    });
    assert!(b.cli(&["devices"]).contains("paused"));
    fs::write(root_a.join("from-a.txt"), b"made on A").unwrap();
    fs::write(root_b.join("from-b.txt"), b"made on B").unwrap();
    b.restart();
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(b.status("connected"), 0, "a paused device is not let in");
    assert!(!root_b.join("from-a.txt").exists() && !root_a.join("from-b.txt").exists());

    b.cli(&["resume", "--device", &alpha]);
    wait_same(&root_a, &root_b, SETTLE);
    assert!(root_b.join("from-a.txt").exists() && root_a.join("from-b.txt").exists());
}
