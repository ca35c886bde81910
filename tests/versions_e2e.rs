//! Versions with two real daemons on loopback, as a person uses them: a file that a
//! change from the other device deletes or replaces is kept on this device
//! (`qsync versions` lists it with the device that made the change), `qsync restore`
//! brings it back, and the restored file syncs to the other device like any change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/node.rs"]
mod node;
#[path = "support/peer.rs"]
mod peer;

use std::fs;
use std::time::Duration;

use node::{link, wait_for, wait_same, Node};

const SETTLE: Duration = Duration::from_secs(120);

#[test]
fn a_file_deleted_by_the_other_device_is_kept_and_restored_everywhere() {
    let base = tempfile::tempdir().unwrap();
    let a = Node::start(base.path(), "alpha");
    let b = Node::start(base.path(), "beta");
    let (root_a, root_b) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(root_a.join("notes")).unwrap();
    fs::write(root_a.join("notes/todo.txt"), b"milk, eggs").unwrap();
    fs::write(root_a.join("report.txt"), b"first draft").unwrap();
    let task = a.add_task(&root_a);
    link(&a, &task, &b, &root_b);
    wait_same(&root_a, &root_b, SETTLE);

    // A deletes a file B had, and replaces another: both are kept on B.
    fs::remove_file(root_a.join("notes/todo.txt")).unwrap();
    fs::write(base.path().join("new.txt"), b"second draft").unwrap();
    fs::rename(base.path().join("new.txt"), root_a.join("report.txt")).unwrap();
    wait_same(&root_a, &root_b, SETTLE);
    let listed = b.cli(&["versions"]);
    println!("{listed}");
    let todo = listed
        .lines()
        .find(|l| l.ends_with("notes/todo.txt"))
        .expect("the deleted file is listed");
    assert!(
        todo.contains("deleted") && todo.contains("by alpha"),
        "{todo}"
    );
    let report = listed
        .lines()
        .find(|l| l.ends_with("report.txt"))
        .expect("the replaced file is listed");
    assert!(report.contains("replaced"), "{report}");
    // Asked by path (relative to nothing: absolute), the folder's versions only.
    let in_notes = b.cli(&["versions", root_b.join("notes").to_str().unwrap()]);
    assert_eq!(in_notes.lines().count(), 1, "{in_notes}");
    // Nothing of it is inside the synced folder.
    assert!(!root_b.join("notes/todo.txt").exists());

    // Restored on B: it is back on B, and reaches A as a change of B's.
    b.cli(&["restore", root_b.join("notes/todo.txt").to_str().unwrap()]);
    assert_eq!(
        fs::read(root_b.join("notes/todo.txt")).unwrap(),
        b"milk, eggs"
    );
    wait_for("the restored file on A", SETTLE, || {
        fs::read(root_a.join("notes/todo.txt")).is_ok_and(|c| c == b"milk, eggs")
    });

    // The first draft comes back by its number, beside the second, which stays.
    let id = report.split_whitespace().nth(1).unwrap();
    let beside = root_b.join("report-first.txt");
    b.cli(&[
        "restore",
        root_b.join("report.txt").to_str().unwrap(),
        "--version",
        id,
        "--to",
        beside.to_str().unwrap(),
    ]);
    assert_eq!(fs::read(&beside).unwrap(), b"first draft");
    assert_eq!(
        fs::read(root_b.join("report.txt")).unwrap(),
        b"second draft"
    );
    wait_same(&root_a, &root_b, SETTLE);

    // A task that keeps none keeps none: A replaces the file again.
    b.cli(&["task", "set", &task, "--versions", "off"]);
    let before = b.cli(&["versions"]).lines().count();
    fs::write(base.path().join("new.txt"), b"third draft").unwrap();
    fs::rename(base.path().join("new.txt"), root_a.join("report.txt")).unwrap();
    wait_same(&root_a, &root_b, SETTLE);
    assert_eq!(b.cli(&["versions"]).lines().count(), before);
    assert!(b.status("versions_bytes") > 0);
}

/// A restore never loses what it replaces: the file there is kept as a version itself.
#[test]
fn a_restore_over_a_file_keeps_that_file() {
    let base = tempfile::tempdir().unwrap();
    let a = Node::start(base.path(), "alpha");
    let b = Node::start(base.path(), "beta");
    let (root_a, root_b) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(&root_a).unwrap();
    fs::write(root_a.join("plan.txt"), b"plan A").unwrap();
    let task = a.add_task(&root_a);
    link(&a, &task, &b, &root_b);
    wait_same(&root_a, &root_b, SETTLE);
    fs::write(base.path().join("new.txt"), b"plan B").unwrap();
    fs::rename(base.path().join("new.txt"), root_a.join("plan.txt")).unwrap();
    wait_same(&root_a, &root_b, SETTLE);
    b.cli(&["restore", root_b.join("plan.txt").to_str().unwrap()]);
    assert_eq!(fs::read(root_b.join("plan.txt")).unwrap(), b"plan A");
    let listed = b.cli(&["versions", root_b.join("plan.txt").to_str().unwrap()]);
    assert!(
        listed
            .lines()
            .any(|l| l.contains("restored-over") && l.contains("by this device")),
        "{listed}"
    );
    wait_for("plan A on A again", SETTLE, || {
        fs::read(root_a.join("plan.txt")).is_ok_and(|c| c == b"plan A")
    });
    // And plan B can be brought back in turn.
    b.cli(&["restore", root_b.join("plan.txt").to_str().unwrap()]);
    assert_eq!(fs::read(root_b.join("plan.txt")).unwrap(), b"plan B");
}

/// An edit made on this device can be undone: the version before it is kept when the
/// daemon had a copy of it (files of 16 KiB or more), and its restore syncs.
#[test]
fn an_edit_made_here_is_undone_and_the_undo_syncs() {
    let base = tempfile::tempdir().unwrap();
    let a = Node::start(base.path(), "alpha");
    let b = Node::start(base.path(), "beta");
    let (root_a, root_b) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(&root_a).unwrap();
    let first = node::noise(7, 64 << 10);
    fs::write(root_a.join("thesis.tex"), &first).unwrap();
    let task = a.add_task(&root_a);
    link(&a, &task, &b, &root_b);
    wait_same(&root_a, &root_b, SETTLE);
    wait_for("a copy of the first version kept", SETTLE, || {
        a.blob_count() >= 1
    });

    let mut second = first.clone();
    second[1000..1010].copy_from_slice(b"a new idea");
    fs::write(root_a.join("thesis.tex"), &second).unwrap();
    wait_same(&root_a, &root_b, SETTLE);
    let listed = a.cli(&["versions", root_a.join("thesis.tex").to_str().unwrap()]);
    assert!(
        listed.contains("edited-here") && listed.contains("by this device"),
        "{listed}"
    );

    a.cli(&["restore", root_a.join("thesis.tex").to_str().unwrap()]);
    assert_eq!(fs::read(root_a.join("thesis.tex")).unwrap(), first);
    wait_for("the undo on B", SETTLE, || {
        fs::read(root_b.join("thesis.tex")).is_ok_and(|c| c == first)
    });
}
