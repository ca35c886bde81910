//! Three hosts in network namespaces on a bridge, one daemon each: link all three to one
//! task, edit on each, partition one host, edit on both sides, heal, and check that all
//! three converge with nothing lost. Namespaces are removed even when the test fails.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/node.rs"]
mod node;
mod support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use node::link_at;
use support::{namespaces_available, Daemon, Hosts};

const QSYNC: &str = env!("CARGO_BIN_EXE_qsync");

fn cli(state: &Path, args: &[&str]) -> String {
    let out = Command::new(QSYNC)
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "qsync {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn tree(root: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(".qsync-") {
                continue;
            }
            let rel = entry
                .path()
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if entry.file_type().unwrap().is_dir() {
                stack.push(entry.path());
                out.push((rel, b"<dir>".to_vec()));
            } else {
                out.push((rel, std::fs::read(entry.path()).unwrap_or_default()));
            }
        }
    }
    out.sort();
    out
}

fn wait_all_same(dirs: &[PathBuf], timeout: Duration) -> Vec<(String, Vec<u8>)> {
    let deadline = Instant::now() + timeout;
    loop {
        let trees: Vec<_> = dirs.iter().map(|d| tree(d)).collect();
        if trees.windows(2).all(|w| w[0] == w[1]) {
            return trees.into_iter().next().unwrap();
        }
        if Instant::now() > deadline {
            let names: Vec<Vec<&String>> = trees
                .iter()
                .map(|t| t.iter().map(|(n, _)| n).collect())
                .collect();
            panic!("the three hosts did not converge in {timeout:?}: {names:#?}");
        }
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn three_hosts_converge_after_a_partition() {
    if !namespaces_available("three_hosts_converge_after_a_partition") {
        return;
    }
    let hosts = Hosts::bridged(3).unwrap();
    let base = tempfile::tempdir().unwrap();
    let states: Vec<PathBuf> = (0..3)
        .map(|i| base.path().join(format!("state{i}")))
        .collect();
    let dirs: Vec<PathBuf> = (0..3)
        .map(|i| base.path().join(format!("data{i}")))
        .collect();
    let _daemons: Vec<Daemon> = (0..3)
        .map(|i| {
            let state = states[i].to_str().unwrap().to_owned();
            let name = format!("host{i}");
            let args = [
                "--state-dir",
                &state,
                "daemon",
                "--name",
                &name,
                "--port",
                "7878",
            ];
            let daemon = hosts.spawn(i, QSYNC, &args).unwrap();
            daemon
                .wait_for("qsync daemon", Duration::from_secs(20))
                .unwrap();
            daemon
        })
        .collect();

    std::fs::create_dir_all(dirs[0].join("shared")).unwrap();
    std::fs::write(dirs[0].join("shared/doc.txt"), "original").unwrap();
    let task = cli(&states[0], &["task", "add", dirs[0].to_str().unwrap()])
        .split_whitespace()
        .nth(1)
        .unwrap()
        .to_owned();
    link_at(&states[0], &task, "198.18.0.2:7878", &states[1], &dirs[1]);
    link_at(&states[0], &task, "198.18.0.3:7878", &states[2], &dirs[2]);
    link_at(&states[1], &task, "198.18.0.3:7878", &states[2], &dirs[2]);
    wait_all_same(&dirs, Duration::from_secs(60));

    // Edits on each host reach the two others.
    for (i, dir) in dirs.iter().enumerate() {
        std::fs::write(
            dir.join(format!("from-host{i}.txt")),
            format!("written on host {i}"),
        )
        .unwrap();
    }
    let all = wait_all_same(&dirs, Duration::from_secs(60));
    assert!(all.iter().any(|(n, _)| n == "from-host2.txt"));

    // Partition host 2, edit on both sides, heal.
    let ns2 = &hosts.names[2];
    let status = Command::new("ip")
        .args(["-n", ns2, "link", "set", "eth0", "down"])
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::write(
        dirs[0].join("shared/doc.txt"),
        "edited on host 0 during the partition",
    )
    .unwrap();
    std::fs::write(
        dirs[2].join("shared/doc.txt"),
        "edited on host 2 during the partition",
    )
    .unwrap();
    std::fs::write(dirs[2].join("offline-on-2.txt"), "host 2 alone").unwrap();
    std::fs::write(dirs[1].join("online-on-1.txt"), "host 1 with host 0").unwrap();
    std::thread::sleep(Duration::from_secs(3));
    let status = Command::new("ip")
        .args(["-n", ns2, "link", "set", "eth0", "up"])
        .status()
        .unwrap();
    assert!(status.success());

    let all = wait_all_same(&dirs, Duration::from_secs(120));
    let contents: Vec<&[u8]> = all.iter().map(|(_, c)| c.as_slice()).collect();
    for kept in [
        &b"edited on host 0 during the partition"[..],
        b"edited on host 2 during the partition",
        b"host 2 alone",
        b"host 1 with host 0",
    ] {
        assert!(
            contents.contains(&kept),
            "lost: {}",
            String::from_utf8_lossy(kept)
        );
    }
    let copies = all
        .iter()
        .filter(|(n, _)| n.starts_with("shared/doc.sync-conflict-"))
        .count();
    assert_eq!(copies, 1, "one conflict copy beside the name: {all:?}");
}
