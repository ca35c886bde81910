//! Three real daemons on loopback, linked pairwise: random creates, edits, appends, renames
//! and deletes of files and folders on all three at once, while daemons are killed (-9) and
//! restarted. Then everything heals,
//! and the three folders must hold the same tree, with nothing pending anywhere; and the
//! last write each device made (concurrent, one of them killed right after) survives on
//! every device, at its path or as a conflict copy.
//!
//! This is what the deterministic simulator (`crates/qsync-core/tests/simulator.rs`)
//! checks by the thousands; this test checks that the real daemon (watcher, SQLite
//! ledger, placements, transfers, restarts) keeps the same promises. The operations
//! follow a seed: `QSYNC_TORTURE_SEED` replays one (the seed is printed), and
//! `QSYNC_TORTURE_ROUNDS` sets how many rounds of edits run (default 20, about one per
//! 300 ms).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/node.rs"]
mod node;

use std::collections::BTreeSet;
use std::fs;
use std::io::Write;
use std::path::Path;
use std::time::{Duration, Instant};

use node::{link, tree, wait_same, Node};

const SETTLE: Duration = Duration::from_secs(180);

/// xorshift64*: enough randomness for a schedule, fully determined by the seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

const NAMES: [&str; 5] = ["a.txt", "b.txt", "c.bin", "d", "e.txt"];
const FOLDERS: [&str; 3] = ["x", "y", "x/z"];

/// One random change in `dir`, as a person would make it; `token` makes written content
/// unique. Returns what was done (for the log printed on failure).
fn random_op(rng: &mut Rng, dir: &Path, token: &str) -> String {
    let now = tree(dir);
    let files: Vec<&String> = now
        .iter()
        .filter(|(_, h)| *h != "dir")
        .map(|(p, _)| p)
        .collect();
    let folders: Vec<&String> = now
        .iter()
        .filter(|(_, h)| *h == "dir")
        .map(|(p, _)| p)
        .collect();
    let some_place = |rng: &mut Rng| -> String {
        let name = NAMES[rng.below(NAMES.len())];
        match rng.pick(&folders) {
            Some(folder) if rng.below(2) == 0 => format!("{folder}/{name}"),
            _ => name.to_owned(),
        }
    };
    let result = match rng.below(8) {
        0 | 1 => {
            let path = some_place(rng);
            let body = format!("{token}\n").repeat(1 + rng.below(2000));
            fs::write(dir.join(&path), body).map(|()| format!("write {path}"))
        }
        2 => match rng.pick(&files) {
            Some(path) => fs::OpenOptions::new()
                .append(true)
                .open(dir.join(path))
                .and_then(|mut f| writeln!(f, "{token}"))
                .map(|()| format!("append {path}")),
            None => Ok("nothing to append to".into()),
        },
        3 => match rng.pick(&files) {
            Some(path) => fs::remove_file(dir.join(path)).map(|()| format!("delete {path}")),
            None => Ok("nothing to delete".into()),
        },
        4 => match rng.pick(&files) {
            Some(path) => {
                let to = some_place(rng);
                fs::rename(dir.join(path), dir.join(&to)).map(|()| format!("rename {path} {to}"))
            }
            None => Ok("nothing to rename".into()),
        },
        5 => {
            let folder = FOLDERS[rng.below(FOLDERS.len())];
            fs::create_dir_all(dir.join(folder)).map(|()| format!("mkdir {folder}"))
        }
        6 => match rng.pick(&folders) {
            Some(folder) => {
                let to = FOLDERS[rng.below(FOLDERS.len())];
                fs::rename(dir.join(folder), dir.join(to))
                    .map(|()| format!("rename folder {folder} {to}"))
            }
            None => Ok("no folder to rename".into()),
        },
        _ => match rng.pick(&folders) {
            Some(folder) => {
                fs::remove_dir_all(dir.join(folder)).map(|()| format!("rmdir {folder}"))
            }
            None => Ok("no folder to remove".into()),
        },
    };
    // A change racing with a placement may fail (the path moved meanwhile): so be it.
    result.unwrap_or_else(|e| format!("failed: {e}"))
}

/// Wait until the three folders hold one tree and no device has anything pending.
fn converge(dirs: &[&Path], nodes: &[Node], log: &[String]) {
    let deadline = Instant::now() + SETTLE;
    loop {
        let same = dirs.windows(2).all(|w| tree(w[0]) == tree(w[1]));
        let pending: Vec<u64> = nodes.iter().map(|n| n.status("pending")).collect();
        if same && pending.iter().all(|p| *p == 0) {
            // Still the same a moment later: settled, not passing through.
            std::thread::sleep(Duration::from_secs(1));
            if dirs.windows(2).all(|w| tree(w[0]) == tree(w[1])) {
                return;
            }
        }
        if Instant::now() > deadline {
            println!("operations:\n{}", log.join("\n"));
            for w in dirs.windows(2) {
                wait_same(w[0], w[1], Duration::ZERO);
            }
            panic!(
                "trees agree but pending stays {pending:?}; operations:\n{}",
                log.join("\n")
            );
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn three_daemons_under_random_edits_and_kill_9_converge_and_lose_nothing() {
    let seed: u64 = std::env::var("QSYNC_TORTURE_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(1, |d| d.as_nanos() as u64)
                | 1
        });
    let rounds: usize = std::env::var("QSYNC_TORTURE_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    println!("QSYNC_TORTURE_SEED={seed}");
    let mut rng = Rng(seed);

    let temp = tempfile::tempdir().unwrap();
    let base = if std::env::var_os("QSYNC_TORTURE_KEEP").is_some() {
        // Keep the folders and the daemons' logs (state-*.log) to look at afterwards.
        let kept = temp.keep();
        println!("kept in {}", kept.display());
        kept
    } else {
        temp.path().to_owned()
    };
    let names = ["alpha", "beta", "gamma"];
    let mut nodes: Vec<Node> = names
        .iter()
        .map(|n| {
            // Every order of the core and every change seen, for a failure's post-mortem
            // (with QSYNC_TORTURE_KEEP).
            let log = Some("info,qsync_engine=debug");
            Node::start_with(base.as_path(), n, log)
        })
        .collect();
    let dirs: Vec<std::path::PathBuf> = ["A", "B", "C"]
        .iter()
        .map(|d| base.as_path().join(d))
        .collect();
    fs::create_dir_all(dirs[0].join("x")).unwrap();
    fs::write(dirs[0].join("a.txt"), "first\n").unwrap();
    let task = nodes[0].add_task(&dirs[0]);
    link(&nodes[0], &task, &nodes[1], &dirs[1]);
    link(&nodes[0], &task, &nodes[2], &dirs[2]);
    // B and C link directly too: the task exists on C, so C joins it again with B.
    link(&nodes[1], &task, &nodes[2], &dirs[2]);
    let dir_refs: Vec<&Path> = dirs.iter().map(|d| d.as_path()).collect();
    converge(&dir_refs, &nodes, &[]);

    let mut log = Vec::new();
    let mut down: Option<(usize, usize)> = None; // (node, round it comes back)
    for round in 0..rounds {
        for (d, dir) in dirs.iter().enumerate() {
            for _ in 0..1 + rng.below(2) {
                let token = format!("{}-{round}-{}", names[d], rng.next());
                let done = random_op(&mut rng, dir, &token);
                log.push(format!("round {round} {}: {done}", names[d]));
            }
        }
        match down {
            Some((d, back)) if back <= round => {
                nodes[d].restart();
                log.push(format!("round {round}: {} restarted", names[d]));
                down = None;
            }
            None if rng.below(4) == 0 => {
                let d = rng.below(nodes.len());
                nodes[d].kill();
                log.push(format!("round {round}: {} killed (-9)", names[d]));
                down = Some((d, round + 1 + rng.below(3)));
            }
            _ => {}
        }
        std::thread::sleep(Duration::from_millis(100 + rng.below(400) as u64));
    }
    if let Some((d, _)) = down {
        nodes[d].restart();
    }
    converge(&dir_refs, &nodes, &log);

    // Each device's last write: to one shared path at once, and one path of its own; one
    // device is killed right after writing. Nothing later touches them, so every one of
    // them must be on every device (the shared path's losers as conflict copies).
    let mut last_writes = Vec::new();
    for (d, dir) in dirs.iter().enumerate() {
        for path in ["final.txt".to_owned(), format!("final-{}.txt", names[d])] {
            let body = format!("last write of {} to {path}, seed {seed}\n", names[d]);
            fs::write(dir.join(&path), &body).unwrap();
            last_writes.push((path, blake3::hash(body.as_bytes()).to_hex().to_string()));
        }
    }
    let victim = rng.below(nodes.len());
    nodes[victim].kill();
    std::thread::sleep(Duration::from_secs(1));
    nodes[victim].restart();
    converge(&dir_refs, &nodes, &log);
    for dir in &dirs {
        let held: BTreeSet<String> = tree(dir).into_values().collect();
        for (path, hash) in &last_writes {
            assert!(
                held.contains(hash),
                "a last write to {path} is missing from {} (seed {seed}); operations:\n{}",
                dir.display(),
                log.join("\n")
            );
        }
    }
}
