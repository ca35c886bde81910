//! The front ends: the terminal menu re-asks on bad input, the CLI gives clear errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/node.rs"]
mod node;

use std::io::Write;
use std::process::{Command, Stdio};

use node::{Node, QSYNC};

#[test]
fn the_menu_re_asks_on_bad_input_and_lists_tasks() {
    let base = tempfile::tempdir().unwrap();
    // A daemon with mDNS off runs first; the menu attaches to it instead of starting one.
    let node = Node::start(base.path(), "menu");
    let folder = base.path().join("Photos");
    std::fs::create_dir(&folder).unwrap();
    let mut menu = Command::new(QSYNC)
        .arg("--state-dir")
        .arg(&node.state)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let input = format!(
        "12\nhello\n1\n/no/such/folder\n1\n{}\n3\n2\nsome-task\nnot-an-address\n4\n0\n5\n6\nNoSuchApp\n7\nnot-a-task\n8\nq\n",
        folder.display()
    );
    menu.stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    let out = menu.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("`12` is not one of the choices"), "{text}");
    assert!(text.contains("`hello` is not one of the choices"), "{text}");
    assert!(text.contains("no folder at /no/such/folder"), "{text}");
    assert!(
        text.contains("Photos devices=0"),
        "the new task is listed: {text}"
    );
    assert!(text.contains("is not host:port"), "{text}");
    assert!(text.contains("updates 0 pending 0"), "{text}");
    assert!(text.contains("(no app installed)"), "{text}");
    assert!(
        text.contains("no app named NoSuchApp is installed"),
        "{text}"
    );
    // The task choices ask for a task among those listed, and say what is wrong with one.
    assert!(text.contains("task id: "), "{text}");
    assert!(text.contains("not-a-task"), "{text}");
    assert!(text.contains("no conflicts"), "{text}");
}

#[test]
fn commands_without_a_daemon_say_how_to_start_one() {
    let base = tempfile::tempdir().unwrap();
    let out = Command::new(QSYNC)
        .arg("--state-dir")
        .arg(base.path())
        .args(["task", "list"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("no QSync daemon is running") && err.contains("qsync daemon"),
        "{err}"
    );
}

#[test]
fn every_subcommand_has_help() {
    for sub in [
        "daemon",
        "task",
        "devices",
        "link",
        "unlink",
        "forget",
        "status",
        "questions",
        "answer",
        "discover",
        "store",
    ] {
        let out = Command::new(QSYNC).args([sub, "--help"]).output().unwrap();
        assert!(
            out.status.success() && !out.stdout.is_empty(),
            "{sub} --help"
        );
    }
}

#[test]
fn a_folder_inside_or_around_a_task_is_refused() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start(base.path(), "overlap");
    let (a, b) = (base.path().join("A"), base.path().join("B"));
    std::fs::create_dir_all(a.join("inner")).unwrap();
    std::fs::create_dir_all(&b).unwrap();
    node.add_task(&a);
    for folder in [a.join("inner"), a.clone(), base.path().to_owned()] {
        let err = node
            .try_cli(&["task", "add", folder.to_str().unwrap()])
            .unwrap_err();
        // The base folder also holds the daemon's state folder: refused for that first.
        let refused = err.contains("overlaps") || err.contains("QSync's own folder");
        assert!(refused, "{}: {err}", folder.display());
    }
    node.add_task(&b);
}

/// A task can never be `/`, hold the daemon's state folder (a peer could then overwrite
/// its database) or be inside it (but for tout-en-un apps' data, under `apps/`).
#[test]
fn a_task_cannot_be_the_root_or_hold_the_state_folder() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start(base.path(), "own");
    let inside = node.state.join("inside");
    std::fs::create_dir_all(&inside).unwrap();
    for (folder, why) in [
        ("/".to_owned(), "whole file system"),
        (base.path().display().to_string(), "QSync's own folder"),
        (node.state.display().to_string(), "QSync's own folder"),
        (inside.display().to_string(), "QSync's own folder"),
    ] {
        let err = node.try_cli(&["task", "add", &folder]).unwrap_err();
        assert!(err.contains(why), "{folder}: {err}");
    }
}

/// `--json` gives one JSON object per reply, and `qsync events` streams what happens:
/// B's person is asked where A's folder goes, both connect, and a file from A is applied
/// on B and delivered from A, each as one event line, with no polling of files.
#[test]
fn json_replies_and_the_event_stream_follow_a_link_and_an_edit() {
    let base = tempfile::tempdir().unwrap();
    let a = Node::start(base.path(), "json-a");
    let b = Node::start(base.path(), "json-b");

    let status: serde_json::Value = serde_json::from_str(&a.cli(&["--json", "status"])).unwrap();
    assert_eq!(status["reply"], "status");
    assert_eq!(
        status["device"].as_str().unwrap(),
        a.cli(&["status"])
            .lines()
            .next()
            .unwrap()
            .trim_start_matches("device ")
    );
    let bad = Command::new(QSYNC)
        .arg("--state-dir")
        .arg(&a.state)
        .args(["--json", "pending", "not-an-id"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    // With --json, the error too is JSON, on standard output.
    let error: serde_json::Value = serde_json::from_slice(&bad.stdout).unwrap();
    let message = error["error"]["message"].as_str().unwrap();
    assert!(message.contains("names no linked device"), "{message}");

    let events = node::Events::follow(&b.state);

    let folder = base.path().join("A");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("first.txt"), b"hello").unwrap();
    let task = a.add_task(&folder);
    let tasks: serde_json::Value =
        serde_json::from_str(&a.cli(&["--json", "task", "list"])).unwrap();
    assert_eq!(tasks["tasks"][0]["task"].as_str(), Some(task.as_str()));
    node::link(&a, &task, &b, &base.path().join("B"));

    let mut seen = std::collections::BTreeSet::new();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !["question", "connected", "applied"]
        .iter()
        .all(|e| seen.contains(*e))
    {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let Ok(event) = events.rx.recv_timeout(left) else {
            panic!("events seen: {seen:?}");
        };
        assert_eq!(event["reply"], "event", "{event}");
        seen.insert(event["event"].as_str().unwrap_or_default().to_owned());
    }
}

/// A name QSync cannot carry is counted in `status` and named in the daemon's log.
#[test]
fn status_counts_names_that_cannot_be_synced() {
    use std::os::unix::ffi::OsStrExt;
    let base = tempfile::tempdir().unwrap();
    let node = Node::start(base.path(), "names");
    let folder = base.path().join("Docs");
    std::fs::create_dir(&folder).unwrap();
    std::fs::write(folder.join("fine.txt"), "ok").unwrap();
    std::fs::write(
        folder.join(std::ffi::OsStr::from_bytes(b"caf\xe9.txt")),
        "x",
    )
    .unwrap();
    node.add_task(&folder);
    assert_eq!(node.status("unsupported"), 1, "{}", node.cli(&["status"]));
    assert!(
        node.log().contains("not synced: the name is not UTF-8"),
        "{}",
        node.log()
    );
}

/// `link` takes a host name; `forget` unlinks a device from every task on both sides and
/// drops its record, and `qsync events` hears that its connection closed.
#[test]
fn a_device_linked_by_host_name_can_be_forgotten() {
    let base = tempfile::tempdir().unwrap();
    let a = Node::start(base.path(), "a");
    let b = Node::start(base.path(), "b");
    let folder = base.path().join("A");
    std::fs::create_dir(&folder).unwrap();
    let task = a.add_task(&folder);
    let by_name = format!("localhost:{}", b.port);
    node::link_at(&a.state, &task, &by_name, &b.state, &base.path().join("B"));
    let id_b = node::device_at(&b.state);
    assert!(a.cli(&["devices"]).contains(&id_b));
    node::wait_for(
        "the two connected",
        std::time::Duration::from_secs(20),
        || a.status("connected") == 1,
    );
    let events = node::Events::follow(&a.state);
    let out = a.cli(&["forget", &id_b]);
    assert!(
        out.starts_with("forgot") && out.contains("1 tasks"),
        "{out}"
    );
    assert!(a.cli(&["devices"]).is_empty());
    assert!(a.cli(&["task", "list"]).contains("devices=0"));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let closed = loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let event = events.rx.recv_timeout(left).expect("a disconnected event");
        if event["event"] == "disconnected" {
            break event;
        }
    };
    assert_eq!(closed["device"].as_str(), Some(id_b.as_str()), "{closed}");
    assert_eq!(a.status("connected"), 0);
    // B heard it: the link is gone there too.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while !b.cli(&["devices"]).is_empty() {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            b.cli(&["devices"])
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    let again = a.try_cli(&["forget", &id_b]).unwrap_err();
    assert!(again.contains("not a device linked"), "{again}");
}

/// `status` shows a large file coming in: from whom, where to, how far, how fast; and
/// nothing once it is in.
#[test]
fn status_shows_a_large_file_on_its_way_in() {
    let base = tempfile::tempdir().unwrap();
    let a = Node::start(base.path(), "sender");
    let b = Node::start(base.path(), "receiver");
    let (root_a, root_b) = (base.path().join("A"), base.path().join("B"));
    std::fs::create_dir(&root_a).unwrap();
    let task = a.add_task(&root_a);
    node::link(&a, &task, &b, &root_b);
    let status: serde_json::Value = serde_json::from_str(&a.cli(&["--json", "status"])).unwrap();
    let sender = status["device"].as_str().unwrap().to_owned();

    // 256 MiB that do not compress.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let size = 256usize << 20;
    let data: Vec<u8> = (0..size / 8)
        .flat_map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x.to_le_bytes()
        })
        .collect();
    std::fs::write(root_a.join("big.bin"), &data).unwrap();

    let mut seen = None;
    node::wait_for(
        "the transfer in `status`",
        std::time::Duration::from_secs(120),
        || {
            let status: serde_json::Value =
                serde_json::from_str(&b.cli(&["--json", "status"])).unwrap();
            seen = status["transfers"]
                .as_array()
                .and_then(|t| t.first().cloned())
                .filter(|t| t["done"].as_u64().is_some_and(|d| d > 0));
            seen.is_some() || std::fs::metadata(root_b.join("big.bin")).is_ok()
        },
    );
    let transfer = seen.expect("the transfer was seen under way");
    assert_eq!(transfer["path"], "big.bin");
    assert_eq!(transfer["size"].as_u64(), Some(size as u64));
    assert_eq!(transfer["device"].as_str(), Some(sender.as_str()));
    assert_eq!(transfer["task"].as_str(), Some(task.as_str()));
    node::wait_for(
        "big.bin on the receiver",
        std::time::Duration::from_secs(120),
        || std::fs::metadata(root_b.join("big.bin")).is_ok_and(|m| m.len() == size as u64),
    );
    let status: serde_json::Value = serde_json::from_str(&b.cli(&["--json", "status"])).unwrap();
    assert_eq!(status["transfers"], serde_json::json!([]));
}
