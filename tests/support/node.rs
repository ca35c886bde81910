//! A `qsync` daemon as a child process on loopback (mDNS off), with its own state folder.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const QSYNC: &str = env!("CARGO_BIN_EXE_qsync");

/// The `qsync` program to run: `QSYNC_BIN` if set (a bench comparing an older build with
/// this one in the same run), else the one this build made.
pub fn qsync() -> std::ffi::OsString {
    std::env::var_os("QSYNC_BIN").unwrap_or_else(|| QSYNC.into())
}

pub struct Node {
    pub state: PathBuf,
    pub port: u16,
    pub name: String,
    /// `RUST_LOG` for the daemon (its log is `state-NAME.log` beside its state folder).
    pub log_filter: Option<&'static str>,
    /// More arguments of `qsync daemon`.
    pub extra: Vec<String>,
    /// `HOME` for the daemon (where `~` leads), if not the test's own.
    pub home: Option<PathBuf>,
    child: Option<Child>,
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}

impl Node {
    pub fn start(base: &Path, name: &str) -> Node {
        Self::start_with(base, name, None)
    }

    /// A daemon logging with `RUST_LOG=log_filter`.
    pub fn start_with(base: &Path, name: &str, log_filter: Option<&'static str>) -> Node {
        Self::start_full(base, name, log_filter, &[])
    }

    /// A daemon started with more arguments of `qsync daemon`.
    pub fn start_args(base: &Path, name: &str, extra: &[&str]) -> Node {
        Self::start_full(base, name, None, extra)
    }

    /// A daemon logging with `RUST_LOG=log_filter` and started with more arguments.
    pub fn start_full(
        base: &Path,
        name: &str,
        log_filter: Option<&'static str>,
        extra: &[&str],
    ) -> Node {
        let mut node = Node {
            state: base.join(format!("state-{name}")),
            port: free_port(),
            name: name.into(),
            log_filter,
            extra: extra.iter().map(|a| a.to_string()).collect(),
            home: None,
            child: None,
        };
        // A first start may pick another free port if the one picked is taken meanwhile.
        for _ in 0..5 {
            match node.try_restart() {
                Ok(()) => return node,
                Err(why) => eprintln!("daemon {name}: {why}; trying another port"),
            }
            node.port = free_port();
        }
        panic!("daemon {name} did not start");
    }

    /// A daemon whose home folder (where `~` leads) is `home`.
    pub fn start_home(base: &Path, name: &str, home: &Path) -> Node {
        let mut node = Node {
            state: base.join(format!("state-{name}")),
            port: free_port(),
            name: name.into(),
            log_filter: None,
            extra: Vec::new(),
            home: Some(home.to_owned()),
            child: None,
        };
        node.restart();
        node
    }

    /// Start the daemon again on its port. A port that another connection holds for a
    /// moment (a free port is picked by binding and releasing it, and the system may hand
    /// it to an outgoing connection meanwhile) makes the daemon exit at once: it is tried
    /// again, a few times.
    pub fn restart(&mut self) {
        for _ in 0..5 {
            match self.try_restart() {
                Ok(()) => return,
                Err(why) => eprintln!("daemon {}: {why}; trying again", self.name),
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("daemon {} did not start", self.name);
    }

    /// Start the daemon; an error if it exits before it answers, or does not answer
    /// within 20 s.
    fn try_restart(&mut self) -> Result<(), String> {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.state.with_extension("log"))
            .ok();
        let child = Command::new(qsync())
            .args(["--state-dir"])
            .arg(&self.state)
            .args([
                "daemon",
                "--no-mdns",
                "--listen-ip",
                "127.0.0.1",
                "--port",
                &self.port.to_string(),
                "--name",
                &self.name,
                "-v",
            ])
            // Each test daemon's HTTP API on a port of its own (`http.address` in its
            // state folder says which), unless the test chose one.
            .args(if self.extra.iter().any(|a| a == "--http") {
                &[][..]
            } else {
                &["--http", "127.0.0.1:0"][..]
            })
            .args(&self.extra)
            .envs(self.log_filter.map(|f| ("RUST_LOG", f)))
            .envs(self.home.as_ref().map(|h| ("HOME", h)))
            .stdout(Stdio::null())
            .stderr(log.map_or(Stdio::null(), Stdio::from))
            .spawn()
            .expect("start qsync daemon");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while self.try_cli(&["status"]).is_err() {
            let exited = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten());
            if let Some(status) = exited {
                self.child = None;
                return Err(format!("exited at start ({status}), port {}", self.port));
            }
            if Instant::now() >= deadline {
                self.kill();
                return Err("no answer within 20 s".into());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(())
    }

    /// How many blobs (copies kept as bases of patches) its state folder holds: one file
    /// each, in one folder per first byte of their hash.
    pub fn blob_count(&self) -> usize {
        std::fs::read_dir(self.state.join("blobs"))
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|sub| std::fs::read_dir(sub.path()).ok())
            .map(|files| files.count())
            .sum()
    }

    /// The daemon's process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// SIGKILL: no goodbye, no cleanup.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn try_cli(&self, args: &[&str]) -> Result<String, String> {
        let out = Command::new(qsync())
            .arg("--state-dir")
            .arg(&self.state)
            .args(args)
            .output()
            .map_err(|e| e.to_string())?;
        if out.status.success() {
            Ok(String::from_utf8_lossy(&out.stdout).trim().to_owned())
        } else {
            Err(String::from_utf8_lossy(&out.stderr).trim().to_owned())
        }
    }

    pub fn cli(&self, args: &[&str]) -> String {
        self.try_cli(args)
            .unwrap_or_else(|e| panic!("qsync {args:?} on {}: {e}", self.name))
    }

    pub fn status(&self, key: &str) -> u64 {
        let status = self.cli(&["status"]);
        let words: Vec<&str> = status.split_whitespace().collect();
        words
            .windows(2)
            .find(|w| w[0] == key)
            .and_then(|w| w[1].parse().ok())
            .unwrap_or_else(|| panic!("no {key} in {status}"))
    }

    pub fn add_task(&self, dir: &Path) -> String {
        let out = self.cli(&["task", "add", dir.to_str().unwrap()]);
        out.split_whitespace().nth(1).expect("task id").to_owned()
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.state.with_extension("log")).unwrap_or_default()
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `qsync ARGS` against the daemon of state folder `state`; panics on failure.
pub fn cli_at(state: &Path, args: &[&str]) -> String {
    let out = Command::new(qsync())
        .arg("--state-dir")
        .arg(state)
        .args(args)
        .output()
        .expect("run qsync");
    assert!(
        out.status.success(),
        "qsync {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

/// The device id of the daemon of `state`, as `qsync status` prints it.
pub fn device_at(state: &Path) -> String {
    let status = cli_at(state, &["status"]);
    status
        .lines()
        .find_map(|l| l.strip_prefix("device "))
        .map(|id| id.trim().to_owned())
        .unwrap_or_else(|| panic!("no device in {status}"))
}

/// The questions the daemon of `state` waits on: (id, flag, context).
pub fn questions(state: &Path) -> Vec<(String, String, String)> {
    cli_at(state, &["questions"])
        .lines()
        .filter_map(|l| {
            let mut parts = l.splitn(3, '\t');
            Some((
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
                parts.next()?.to_owned(),
            ))
        })
        .collect()
}

/// Wait for a question with one of `flags` on the daemon of `state`: (id, flag, context).
pub fn wait_question(state: &Path, flags: &[&str]) -> (String, String, String) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(q) = questions(state)
            .into_iter()
            .find(|q| flags.contains(&q.1.as_str()))
        {
            return q;
        }
        assert!(
            Instant::now() < deadline,
            "no {flags:?} question on {}",
            state.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `qsync link` running: the code it printed, and the process.
pub struct Linking {
    pub code: String,
    child: Child,
    rest: std::thread::JoinHandle<String>,
}

impl Linking {
    /// Start `qsync link [extra] TASK ADDR` for the daemon of `state`; read the code shown.
    pub fn start(state: &Path, task: &str, addr: &str, extra: &[&str]) -> Result<Linking, String> {
        use std::io::BufRead;
        let mut child = Command::new(qsync())
            .arg("--state-dir")
            .arg(state)
            .arg("link")
            .args(extra)
            .args([task, addr])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("link");
        let stdout = child.stdout.take().expect("stdout");
        let mut reader = std::io::BufReader::new(stdout);
        let mut line = String::new();
        let _ = reader.read_line(&mut line);
        let Some(code) = line.strip_prefix("code ").and_then(|r| r.get(..9)) else {
            let out = child.wait_with_output().expect("link output");
            return Err(format!("{line}{}", String::from_utf8_lossy(&out.stderr)));
        };
        let code = code.to_owned();
        // Read the rest in the background so the process never blocks on its stdout.
        let rest = std::thread::spawn(move || {
            let mut text = String::new();
            let _ = std::io::Read::read_to_string(&mut reader, &mut text);
            text
        });
        Ok(Linking { code, child, rest })
    }

    /// Wait for the command to end: whether it succeeded, and what it printed after the code.
    pub fn finish(mut self) -> (bool, String) {
        let status = self.child.wait().expect("wait for link");
        let mut err = String::new();
        if let Some(mut e) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut e, &mut err);
        }
        let out = self.rest.join().unwrap_or_default();
        (status.success(), format!("{out}{err}"))
    }
}

/// Link the daemon of `other` (at `addr`) to `task` of the daemon of `from`: answer
/// `other`'s question with the code shown and `dest` (and "yes" if `dest` holds files), or
/// only the code when `other` has the task already.
pub fn link_at(from: &Path, task: &str, addr: &str, other: &Path, dest: &Path) -> String {
    let linking = Linking::start(from, task, addr, &[]).unwrap_or_else(|e| panic!("link: {e}"));
    let (id, flag, _) = wait_question(other, &["CHOOSELINKPATH", "CONFIRMJOIN"]);
    if flag == "CONFIRMJOIN" {
        cli_at(other, &["answer", &id, &linking.code]);
    } else {
        cli_at(
            other,
            &[
                "answer",
                &id,
                &format!("{} {}", linking.code, dest.display()),
            ],
        );
        let holds_files = std::fs::read_dir(dest).is_ok_and(|mut d| d.next().is_some());
        if holds_files {
            let (id, _, _) = wait_question(other, &["CONFIRMSEND"]);
            cli_at(other, &["answer", &id, "yes"]);
        }
    }
    let (ok, text) = linking.finish();
    assert!(ok && text.starts_with("linked"), "link failed: {text}");
    text
}

/// Link `other` to `task` of `from` on loopback, its folder at `dest`.
pub fn link(from: &Node, task: &str, other: &Node, dest: &Path) -> String {
    let addr = format!("127.0.0.1:{}", other.port);
    link_at(&from.state, task, &addr, &other.state, dest)
}

/// Two linked daemons, as most flows start: `alpha` syncs its folder `A` (made under
/// `base`, holding `files`) as a new task with `beta`'s folder `B`, the same on both
/// when this returns.
pub struct Pair {
    pub a: Node,
    pub b: Node,
    pub root_a: PathBuf,
    pub root_b: PathBuf,
    pub task: String,
}

pub fn linked_pair(base: &Path, files: &[(&str, &[u8])]) -> Pair {
    let a = Node::start(base, "alpha");
    let b = Node::start(base, "beta");
    let (root_a, root_b) = (base.join("A"), base.join("B"));
    std::fs::create_dir_all(&root_a).unwrap();
    for (path, content) in files {
        let at = root_a.join(path);
        std::fs::create_dir_all(at.parent().unwrap()).unwrap();
        std::fs::write(at, content).unwrap();
    }
    let task = a.add_task(&root_a);
    link(&a, &task, &b, &root_b);
    wait_same(&root_a, &root_b, Duration::from_secs(120));
    Pair {
        a,
        b,
        root_a,
        root_b,
        task,
    }
}

/// Path -> content hash ("dir" for folders), ignoring QSync's own temporary files.
pub fn tree(root: &Path) -> BTreeMap<String, String> {
    fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, String>) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path
                .strip_prefix(root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            if entry.file_name().to_string_lossy().starts_with(".qsync-") {
                continue;
            }
            // Gone since the folder was read (a daemon at work): not part of this tree.
            let Ok(meta) = std::fs::symlink_metadata(&path) else {
                continue;
            };
            if meta.is_dir() {
                out.insert(rel, "dir".into());
                walk(root, &path, out);
            } else if meta.file_type().is_symlink() {
                if let Ok(target) = std::fs::read_link(&path) {
                    out.insert(rel, format!("link:{}", target.display()));
                }
            } else if let Ok(data) = std::fs::read(&path) {
                out.insert(rel, blake3::hash(&data).to_hex().to_string());
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(root, root, &mut out);
    out
}

/// Wait until `done`, at most `time`; panics naming `what` after that.
pub fn wait_for(what: &str, time: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + time;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `node`'s daemon's resident memory, in KiB (Linux `/proc`).
pub fn rss_kib(node: &Node) -> u64 {
    let pid = node.pid().expect("the daemon runs");
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("its status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("a VmRSS line")
}

/// Wait until both folders hold the same tree.
pub fn wait_same(a: &Path, b: &Path, timeout: Duration) {
    let deadline = Instant::now() + timeout;
    loop {
        let (ta, tb) = (tree(a), tree(b));
        if ta == tb {
            return;
        }
        if Instant::now() > deadline {
            let only_a: Vec<_> = ta
                .iter()
                .filter(|(k, v)| tb.get(*k) != Some(v))
                .map(|(k, _)| k)
                .take(10)
                .collect();
            let only_b: Vec<_> = tb
                .iter()
                .filter(|(k, v)| ta.get(*k) != Some(v))
                .map(|(k, _)| k)
                .take(10)
                .collect();
            panic!("trees differ after {timeout:?}: A-only/different {only_a:?}, B-only/different {only_b:?}");
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// `qsync --json events` of the daemon whose state folder is `state`, each line parsed, for
/// as long as this lives (the stream is given a moment to subscribe before it is returned).
pub struct Events {
    child: Child,
    pub rx: std::sync::mpsc::Receiver<serde_json::Value>,
}

impl Events {
    pub fn follow(state: &Path) -> Self {
        use std::io::{BufRead, BufReader};
        let mut child = Command::new(QSYNC)
            .arg("--state-dir")
            .arg(state)
            .args(["--json", "events"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel::<serde_json::Value>();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(value) = serde_json::from_str(&line) {
                    if tx.send(value).is_err() {
                        break;
                    }
                }
            }
        });
        std::thread::sleep(Duration::from_millis(300));
        Self { child, rx }
    }
}

impl Drop for Events {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Bytes that do not compress, the same for a given `seed` and length, different for
/// another seed.
pub fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut x: u64 = 0x2545_f491_4f6c_dd1d ^ seed.wrapping_mul(0x9e37_79b9_7f4a_7c15);
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        out.extend_from_slice(&x.to_le_bytes());
    }
    out.truncate(len);
    out
}
