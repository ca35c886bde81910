//! Test hosts in network namespaces: made by the test, removed even when it fails.
//! Addresses come from the benchmarking range 198.18.0.0/15; nothing else is ever reached.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver};
use std::time::{Duration, Instant};

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Whether this machine lets the test make namespaces. Where it does not, the test is
/// skipped with a message, except on CI (CI=true), which runs as root and must run it.
pub fn namespaces_available(test: &str) -> bool {
    let probe = format!("qsp{}", suffix());
    let ok = ip(&["netns", "add", &probe]).is_ok();
    let _ = ip(&["netns", "del", &probe]);
    if !ok {
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "{test}: CI must be able to create network namespaces (run as root with iproute2)"
            );
        }
        eprintln!("{test}: skipped, this machine does not allow network namespaces (needs root and iproute2)");
    }
    ok
}

/// A set of namespaces, optionally joined by a bridge; everything is deleted on drop.
pub struct Hosts {
    pub names: Vec<String>,
    bridge: Option<String>,
    veths: Vec<String>,
}

/// Unique per test run and per call, and short: interface names hold 15 characters.
fn suffix() -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    format!(
        "{}{}",
        std::process::id() % 100_000,
        char::from(b'a' + (n % 26) as u8)
    )
}

impl Hosts {
    /// One namespace whose loopback carries multicast: several daemons side by side.
    pub fn loopback() -> Result<Self, String> {
        let name = format!("qsl{}", suffix());
        let hosts = Self {
            names: vec![name.clone()],
            bridge: None,
            veths: vec![],
        };
        ip(&["netns", "add", &name])?;
        ip(&["-n", &name, "link", "set", "lo", "up"])?;
        ip(&["-n", &name, "link", "set", "lo", "multicast", "on"])?;
        ip(&["-n", &name, "route", "add", "224.0.0.0/4", "dev", "lo"])?;
        Ok(hosts)
    }

    /// `n` namespaces on one bridge, host i at 198.18.0.(i+1)/24.
    pub fn bridged(n: usize) -> Result<Self, String> {
        let sfx = suffix();
        let bridge = format!("qbr{sfx}");
        let mut hosts = Self {
            names: vec![],
            bridge: Some(bridge.clone()),
            veths: vec![],
        };
        ip(&["link", "add", &bridge, "type", "bridge"])?;
        ip(&["link", "set", &bridge, "up"])?;
        for i in 0..n {
            let name = format!("qsn{sfx}{i}");
            let veth = format!("qv{sfx}{i}");
            ip(&["netns", "add", &name])?;
            hosts.names.push(name.clone());
            ip(&[
                "link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &name,
            ])?;
            hosts.veths.push(veth.clone());
            ip(&["link", "set", &veth, "master", &bridge, "up"])?;
            ip(&[
                "-n",
                &name,
                "addr",
                "add",
                &format!("198.18.0.{}/24", i + 1),
                "dev",
                "eth0",
            ])?;
            ip(&["-n", &name, "link", "set", "eth0", "up"])?;
            ip(&["-n", &name, "link", "set", "lo", "up"])?;
            ip(&["-n", &name, "route", "add", "224.0.0.0/4", "dev", "eth0"])?;
        }
        Ok(hosts)
    }

    /// Start `program args` inside host `i`; its stdout lines arrive on the receiver.
    pub fn spawn(&self, i: usize, program: &str, args: &[&str]) -> Result<Daemon, String> {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &self.names[i], program])
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("spawn {program}: {e}"))?;
        let stdout = child.stdout.take().ok_or("no stdout")?;
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        Ok(Daemon { child, lines })
    }
}

impl Drop for Hosts {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = ip(&["netns", "del", name]);
        }
        for veth in &self.veths {
            let _ = ip(&["link", "del", veth]);
        }
        if let Some(bridge) = &self.bridge {
            let _ = ip(&["link", "del", bridge]);
        }
    }
}

/// A process in a namespace; killed on drop.
pub struct Daemon {
    child: Child,
    pub lines: Receiver<String>,
}

impl Daemon {
    /// The first stdout line starting with `prefix`, waiting at most `timeout`.
    pub fn wait_for(&self, prefix: &str, timeout: Duration) -> Result<String, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .ok_or_else(|| format!("no `{prefix}` line within {timeout:?}"))?;
            match self.lines.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => {}
                Err(_) => return Err(format!("no `{prefix}` line within {timeout:?}")),
            }
        }
    }

    /// Kill with SIGKILL: no goodbye on the network.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}
