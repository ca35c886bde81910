//! Folder types with two real daemons on loopback: a send-only task sends its changes
//! and applies none of the other device's (`status --task` says why it differs), and
//! `qsync revert` makes its versions win on the other device; made send-receive again, it
//! takes what it had left aside.
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
fn a_send_only_task_applies_nothing_and_its_revert_wins_everywhere() {
    let base = tempfile::tempdir().unwrap();
    let Pair {
        a,
        b,
        root_a,
        root_b,
        task,
    } = linked_pair(base.path(), &[("plan.txt", b"the plan")]);

    let set = a.cli(&["task", "set", &task, "--type", "send-only"]);
    assert!(set.contains("send-only"), "{set}");
    fs::write(base.path().join("new"), b"beta's plan").unwrap();
    fs::rename(base.path().join("new"), root_b.join("plan.txt")).unwrap();
    fs::write(root_b.join("extra.txt"), b"beta's extra").unwrap();
    fs::write(root_a.join("mine.txt"), b"alpha's").unwrap();
    wait_for("A's change on B", SETTLE, || {
        root_b.join("mine.txt").exists()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        fs::read(root_a.join("plan.txt")).unwrap(),
        b"the plan",
        "applied on a send-only task"
    );
    assert!(!root_a.join("extra.txt").exists());
    let why = a.cli(&["status", "--task", &task]);
    assert!(why.contains("send-only"), "{why}");

    let plan = a.cli(&["revert", "--dry-run", &task]);
    assert!(
        plan.contains("plan.txt") && plan.contains("extra.txt"),
        "{plan}"
    );
    a.cli(&["revert", &task]);
    wait_same(&root_a, &root_b, SETTLE);
    assert_eq!(fs::read(root_b.join("plan.txt")).unwrap(), b"the plan");
    assert!(!root_b.join("extra.txt").exists(), "what only B had goes");
    // B lost nothing for good: its versions keep both.
    let kept = b.cli(&["versions"]);
    assert!(
        kept.contains("plan.txt") && kept.contains("extra.txt"),
        "{kept}"
    );

    // Send-receive again: B's next change is applied.
    a.cli(&["task", "set", &task, "--type", "send-receive"]);
    fs::write(root_b.join("later.txt"), b"later").unwrap();
    wait_for("B's later change on A", SETTLE, || {
        root_a.join("later.txt").exists()
    });
    wait_same(&root_a, &root_b, SETTLE);
}

/// A revert overrides what this device syncs, never what its rules ignore: the other
/// device's files there stay, whatever it did to the rules meanwhile.
#[test]
fn a_revert_leaves_the_paths_this_device_ignores() {
    let base = tempfile::tempdir().unwrap();
    let Pair {
        a,
        b: _b,
        root_b,
        task,
        ..
    } = linked_pair(base.path(), &[(".qsyncignore", b"media/\n")]);

    a.cli(&["task", "set", &task, "--type", "send-only"]);
    // B syncs media/ from now on; A does not take that, and ignores media/.
    fs::write(base.path().join("new"), b"").unwrap();
    fs::rename(base.path().join("new"), root_b.join(".qsyncignore")).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    fs::create_dir_all(root_b.join("media")).unwrap();
    fs::write(root_b.join("media/song.ogg"), b"beta's song").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    a.cli(&["revert", &task]);
    wait_for("A's rules back on B", SETTLE, || {
        fs::read(root_b.join(".qsyncignore")).is_ok_and(|c| c == b"media/\n")
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        fs::read(root_b.join("media/song.ogg")).unwrap(),
        b"beta's song"
    );
    // Both ways again: what B has and A ignores is listed as such on A.
    a.cli(&["task", "set", &task, "--type", "send-receive"]);
    wait_for("the ignored path listed", SETTLE, || {
        a.cli(&["status", "--task", &task])
            .contains("media/song.ogg: ignored here")
    });
}

/// A receive-only task applies the other device's changes and sends none of its own:
/// `status --task` lists what changed here, a change received for such a path wins (the
/// version made here is kept), and `qsync revert` puts the received versions back, across
/// a restart; made send-receive again, what changes here is sent.
#[test]
fn a_receive_only_task_sends_nothing_and_its_revert_puts_back_what_it_received() {
    let base = tempfile::tempdir().unwrap();
    let Pair {
        a: _a,
        mut b,
        root_a,
        root_b,
        task,
    } = linked_pair(
        base.path(),
        &[("plan.txt", b"the plan"), ("notes.txt", b"notes")],
    );
    let set = b.cli(&["task", "set", &task, "--type", "receive-only"]);
    assert!(set.contains("receive-only"), "{set}");
    fs::write(root_b.join("plan.txt"), b"beta's plan").unwrap();
    fs::write(root_b.join("draft.txt"), b"beta's draft").unwrap();
    fs::remove_file(root_b.join("notes.txt")).unwrap();
    fs::write(root_a.join("mine.txt"), b"alpha's").unwrap();
    wait_for("A's change on B", SETTLE, || {
        root_b.join("mine.txt").exists()
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(fs::read(root_a.join("plan.txt")).unwrap(), b"the plan");
    assert!(
        !root_a.join("draft.txt").exists(),
        "sent by a receive-only task"
    );
    assert!(root_a.join("notes.txt").exists());
    let why = b.cli(&["status", "--task", &task]);
    for listed in [
        "receive-only",
        "plan.txt",
        "draft.txt",
        "notes.txt: changed here",
    ] {
        assert!(why.contains(listed), "{listed} in {why}");
    }

    // What B changed is still drift after a restart.
    b.kill();
    b.restart();
    wait_for("the drift found again", SETTLE, || {
        b.try_cli(&["status", "--task", &task])
            .is_ok_and(|w| w.contains("draft.txt"))
    });
    // A change received for a path changed here wins; the version made here is kept.
    fs::write(base.path().join("new"), b"alpha's new plan").unwrap();
    fs::rename(base.path().join("new"), root_a.join("plan.txt")).unwrap();
    wait_for("A's plan on B", SETTLE, || {
        fs::read(root_b.join("plan.txt")).is_ok_and(|c| c == b"alpha's new plan")
    });
    let kept = b.cli(&["versions", root_b.join("plan.txt").to_str().unwrap()]);
    assert!(kept.contains("plan.txt"), "{kept}");

    let plan = b.cli(&["revert", "--dry-run", &task]);
    assert!(
        plan.contains("would revert") && plan.contains("draft.txt") && plan.contains("notes.txt"),
        "{plan}"
    );
    assert!(
        root_b.join("draft.txt").exists(),
        "a dry run changes nothing"
    );
    b.cli(&["revert", &task]);
    wait_same(&root_a, &root_b, SETTLE);
    assert_eq!(fs::read(root_b.join("notes.txt")).unwrap(), b"notes");
    assert!(!root_b.join("draft.txt").exists(), "what only B made goes");
    let why = b.cli(&["status", "--task", &task]);
    assert!(!why.contains("draft.txt"), "{why}");

    // Send-receive again: B's next change is sent.
    b.cli(&["task", "set", &task, "--type", "send-receive"]);
    fs::write(root_b.join("later.txt"), b"later").unwrap();
    wait_for("B's later change on A", SETTLE, || {
        root_a.join("later.txt").exists()
    });
    wait_same(&root_a, &root_b, SETTLE);
}

/// The folder type is chosen when the task is added, and shown with its options.
#[test]
fn a_task_added_receive_only_is_receive_only_from_its_first_scan() {
    let base = tempfile::tempdir().unwrap();
    let a = node::Node::start(base.path(), "alpha");
    let folder = base.path().join("Inbox");
    fs::create_dir_all(&folder).unwrap();
    let added = a.cli(&[
        "task",
        "add",
        "--type",
        "receive-only",
        folder.to_str().unwrap(),
    ]);
    let task = added.split_whitespace().nth(1).unwrap().to_owned();
    let options = a.cli(&["task", "set", &task]);
    assert!(options.contains("receive-only"), "{options}");
    fs::write(folder.join("local.txt"), b"made here").unwrap();
    wait_for("the change listed as not sent", SETTLE, || {
        a.cli(&["status", "--task", &task])
            .contains("local.txt: changed here")
    });
}
