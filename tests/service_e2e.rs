//! QSync as a service, as a person (or systemd) runs it: one daemon per state folder, a
//! graceful stop on SIGTERM that leaves no half-written file under its real name and is
//! taken up at the next start, the config file and its live reload, the CLI's errors
//! (JSON, exit codes, no backtrace), and a menu that never stops a daemon it did not start.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/node.rs"]
mod node;
#[path = "support/peer.rs"]
mod peer;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use node::{linked_pair, qsync, wait_same, Node, Pair};

fn kill(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

/// Wait for `pid` to end (it is the test's child, reaped by `Node`): whether it did within
/// `time`.
fn gone(pid: u32, time: Duration) -> bool {
    let deadline = Instant::now() + time;
    while Instant::now() < deadline {
        let state = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
        // Gone, or a zombie waiting for its parent (the test) to reap it.
        if state.is_empty() || state.split(' ').nth(2) == Some("Z") {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A daemon on loopback with no HTTP API, started with one more environment variable.
fn daemon_with(
    state: &std::path::Path,
    (key, value): (&str, &std::path::Path),
) -> std::process::Child {
    Command::new(qsync())
        .arg("--state-dir")
        .arg(state)
        .args([
            "daemon",
            "--no-mdns",
            "--listen-ip",
            "127.0.0.1",
            "--port",
            "0",
            "--http",
            "off",
        ])
        .env(key, value)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap()
}

#[test]
fn a_second_daemon_on_the_same_state_folder_refuses_naming_the_first() {
    let base = tempfile::tempdir().unwrap();
    let first = Node::start(base.path(), "one");
    let out = Command::new(qsync())
        .arg("--state-dir")
        .arg(&first.state)
        .args(["daemon", "--no-mdns", "--port", "0", "--http", "off"])
        .env("RUST_BACKTRACE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(5), "{stderr}");
    let pid = first.pid().unwrap();
    assert!(stderr.contains(&format!("pid {pid}")), "{stderr}");
    assert!(
        !stderr.contains("backtrace") && stderr.lines().count() <= 2,
        "{stderr}"
    );
    // The first still answers: its socket was not taken over.
    assert!(first.cli(&["status"]).contains("device"));
}

#[test]
fn sigterm_during_a_transfer_stops_cleanly_and_the_next_start_finishes_it() {
    let base = tempfile::tempdir().unwrap();
    let Pair {
        a: _a,
        mut b,
        root_a,
        root_b,
        task: _,
    } = linked_pair(base.path(), &[("small.txt", b"first")]);
    let big = node::noise(7, 96 << 20);
    std::fs::write(root_a.join("big.bin"), &big).unwrap();
    // Stopped while the big file comes in.
    node::wait_for("the transfer to start", Duration::from_secs(60), || {
        b.cli(&["status"]).contains("big.bin")
    });
    let pid = b.pid().unwrap();
    kill(pid, "-TERM");
    assert!(
        gone(pid, Duration::from_secs(15)),
        "SIGTERM did not stop the daemon"
    );
    let log = b.log();
    assert!(log.contains("qsync daemon stopped"), "{log}");
    // Nothing half-written under the real name.
    if let Ok(there) = std::fs::read(root_b.join("big.bin")) {
        assert!(there == big, "a partial big.bin under its real name");
    }
    b.restart();
    wait_same(&root_a, &root_b, Duration::from_secs(120));
}

#[test]
fn the_config_file_is_made_at_first_start_flags_win_and_reload_applies_live() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start(base.path(), "conf");
    let file = node.cli(&["config", "path"]);
    assert_eq!(file, node.state.join("qsync.toml").display().to_string());
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains("rescan_every = 60") && text.contains("http = "),
        "{text}"
    );
    let set = node.cli(&["config", "set", "rescan_every", "5"]);
    assert!(set.starts_with("rescan_every = 5"), "{set}");
    assert_eq!(node.cli(&["config", "get", "rescan_every"]), "5");
    let applied = node.cli(&["config", "reload"]);
    assert!(applied.contains("every 5 s"), "{applied}");
    let refused = node
        .try_cli(&["config", "set", "port", "seventy"])
        .unwrap_err();
    assert!(refused.contains("whole number"), "{refused}");
    // SIGHUP reads the file again too.
    node.cli(&["config", "set", "rescan_every", "0"]);
    kill(node.pid().unwrap(), "-HUP");
    node::wait_for("SIGHUP applied", Duration::from_secs(10), || {
        node.log().contains("no whole scans")
    });
}

#[test]
fn errors_are_json_with_distinct_exit_codes_and_no_backtrace() {
    let base = tempfile::tempdir().unwrap();
    let run = |args: &[&str]| {
        Command::new(qsync())
            .arg("--state-dir")
            .arg(base.path().join("nobody"))
            .args(args)
            .env("RUST_BACKTRACE", "1")
            .output()
            .unwrap()
    };
    let none = run(&["--json", "status"]);
    assert_eq!(none.status.code(), Some(3));
    let error: serde_json::Value = serde_json::from_slice(&none.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "no_daemon");
    assert!(error["error"]["message"]
        .as_str()
        .unwrap()
        .contains("no QSync daemon"));
    let plain = run(&["status"]);
    let stderr = String::from_utf8_lossy(&plain.stderr);
    assert!(stderr.starts_with("error: no QSync daemon"), "{stderr}");
    assert!(!stderr.contains("Stack backtrace"), "{stderr}");

    let node = Node::start(base.path(), "refuser");
    let out = Command::new(qsync())
        .arg("--state-dir")
        .arg(&node.state)
        .args([
            "--json",
            "pause",
            "aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa",
        ])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(4),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let error: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(error["error"]["kind"], "refused");
}

#[test]
fn the_menu_never_stops_a_daemon_it_did_not_start_and_asks_for_one_it_did() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start(base.path(), "running");
    let quit = |state: &std::path::Path, input: &str| {
        let mut menu = Command::new(qsync())
            .arg("--state-dir")
            .arg(state)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        menu.stdin
            .take()
            .unwrap()
            .write_all(input.as_bytes())
            .unwrap();
        let out = menu.wait_with_output().unwrap();
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let shown = quit(&node.state, "q\n");
    assert!(!shown.contains("keep the daemon running"), "{shown}");
    assert!(
        node.cli(&["status"]).contains("device"),
        "the menu stopped it"
    );

    // No daemon: the menu starts one, says so, and it keeps syncing after quit...
    let state = base.path().join("state-menu");
    std::fs::create_dir_all(&state).unwrap();
    std::fs::write(
        state.join("qsync.toml"),
        "port = 0\nmdns = false\nhttp = \"off\"\nlisten_ip = \"127.0.0.1\"\n",
    )
    .unwrap();
    let shown = quit(&state, "q\n\n");
    assert!(shown.contains("started a QSync daemon"), "{shown}");
    assert!(shown.contains("goes on syncing"), "{shown}");
    assert!(node::cli_at(&state, &["status"]).contains("device"));
    // ...unless the person says no.
    let shown = quit(&state, "q\n");
    assert!(
        !shown.contains("keep the daemon running"),
        "attached: {shown}"
    );
    node::cli_at(&state, &["stop"]);
    node::wait_for("the stop", Duration::from_secs(15), || {
        Command::new(qsync())
            .arg("--state-dir")
            .arg(&state)
            .arg("status")
            .output()
            .is_ok_and(|o| o.status.code() == Some(3))
    });
    let shown = quit(&state, "q\nn\n");
    assert!(shown.contains("started a QSync daemon"), "{shown}");
    node::wait_for(
        "the daemon the menu started to stop",
        Duration::from_secs(15),
        || {
            Command::new(qsync())
                .arg("--state-dir")
                .arg(&state)
                .arg("status")
                .output()
                .is_ok_and(|o| o.status.code() == Some(3))
        },
    );
}

/// Under systemd (`Type=notify`): READY=1 once the daemon listens, STOPPING=1 on SIGTERM,
/// then a clean exit.
#[test]
fn systemd_hears_ready_and_stopping() {
    let base = tempfile::tempdir().unwrap();
    let socket_path = base.path().join("notify.sock");
    let socket = std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let mut daemon = daemon_with(&base.path().join("state"), ("NOTIFY_SOCKET", &socket_path));
    let mut said = [0u8; 256];
    let n = socket.recv(&mut said).expect("READY=1 within 30 s");
    assert!(String::from_utf8_lossy(&said[..n]).contains("READY=1"));
    assert!(node::cli_at(&base.path().join("state"), &["status"]).contains("device"));
    kill(daemon.id(), "-TERM");
    let n = socket.recv(&mut said).expect("STOPPING=1");
    assert!(String::from_utf8_lossy(&said[..n]).contains("STOPPING=1"));
    let status = daemon.wait().unwrap();
    assert!(status.success(), "{status}");
}

/// With a session's runtime folder (`XDG_RUNTIME_DIR`), the control socket lives there and
/// the state folder links to it: clients find it from the state folder alone.
#[test]
fn the_control_socket_lives_in_the_runtime_folder_when_there_is_one() {
    use std::os::unix::fs::FileTypeExt;
    let base = tempfile::tempdir().unwrap();
    let run = base.path().join("run");
    std::fs::create_dir(&run).unwrap();
    let state = base.path().join("state");
    let mut daemon = daemon_with(&state, ("XDG_RUNTIME_DIR", &run));
    node::wait_for("the daemon", Duration::from_secs(20), || {
        Command::new(qsync())
            .arg("--state-dir")
            .arg(&state)
            .arg("status")
            .env_remove("XDG_RUNTIME_DIR")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    let link = std::fs::read_link(state.join("control.sock")).expect("a link in the state folder");
    assert!(link.starts_with(run.join("qsync")), "{}", link.display());
    assert!(std::fs::metadata(&link).unwrap().file_type().is_socket());
    kill(daemon.id(), "-TERM");
    assert!(daemon.wait().unwrap().success());
}
