//! Two Syncthing instances on loopback, configured by this file: keys made by
//! `syncthing generate`, then config.xml edited so that each listens on 127.0.0.1 only,
//! knows the other by address, and shares folder `bench` with it. Global discovery, local
//! discovery, relays, NAT traversal, usage reporting, crash reporting, upgrades and the
//! low-priority setting are off. Watching is on with its minimum delay (1 s); the periodic
//! rescan is set to an hour so that it cannot help.

#![allow(
    missing_docs,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub const FOLDER: &str = "bench";

pub struct Syncthing {
    child: Option<Child>,
    pub home: PathBuf,
    pub folder: PathBuf,
    pub id: String,
    api_key: String,
    gui: u16,
    listen: u16,
}

/// A free port on loopback, never one handed out before in this process: a port is found
/// by binding and releasing it, and the system may give the same one again at the next
/// ask (a CI run configured an instance with its peer at its own listening port).
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

/// Whether `syncthing` is installed.
pub fn available() -> bool {
    Command::new("syncthing").arg("--version").output().is_ok()
}

pub fn version() -> String {
    Command::new("syncthing")
        .arg("--version")
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .take(2)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_else(|_| "syncthing ?".into())
}

/// Replace the text of the first `<tag>` at or after `from`.
fn set_tag(xml: &mut String, from: usize, tag: &str, value: &str) {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = from
        + xml[from..]
            .find(&open)
            .unwrap_or_else(|| panic!("no <{tag}> in config.xml"))
        + open.len();
    let end = start + xml[start..].find(&close).unwrap();
    xml.replace_range(start..end, value);
}

fn tag_text(xml: &str, tag: &str) -> String {
    let open = format!("<{tag}>");
    let start = xml.find(&open).unwrap() + open.len();
    let end = start + xml[start..].find('<').unwrap();
    xml[start..end].to_owned()
}

impl Syncthing {
    fn generate(base: &Path, name: &str, folder: &Path) -> Syncthing {
        let home = base.join(format!("syncthing-{name}"));
        let out = Command::new("syncthing")
            .args(["generate", "--no-default-folder", "--skip-port-probing"])
            .arg(format!("--home={}", home.display()))
            .output()
            .expect("syncthing is installed (./scripts/bench-deps.sh)");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        let id = text
            .lines()
            .find_map(|l| l.split("Device ID: ").nth(1))
            .unwrap_or_else(|| panic!("no device id from syncthing generate: {text}"))
            .trim()
            .to_owned();
        let config = fs::read_to_string(home.join("config.xml")).unwrap();
        fs::create_dir_all(folder.join(".stfolder")).unwrap();
        Syncthing {
            child: None,
            home,
            folder: folder.to_owned(),
            id,
            api_key: tag_text(&config, "apikey"),
            gui: free_port(),
            listen: free_port(),
        }
    }

    fn configure(&self, peer: &Syncthing) {
        let path = self.home.join("config.xml");
        let mut xml = fs::read_to_string(&path).unwrap();
        let gui = xml.find("<gui").unwrap();
        set_tag(&mut xml, gui, "address", &format!("127.0.0.1:{}", self.gui));
        let options = xml.find("<options>").unwrap();
        for (tag, value) in [
            ("listenAddress", format!("tcp://127.0.0.1:{}", self.listen)),
            ("globalAnnounceEnabled", "false".into()),
            ("localAnnounceEnabled", "false".into()),
            ("relaysEnabled", "false".into()),
            ("natEnabled", "false".into()),
            ("startBrowser", "false".into()),
            ("urAccepted", "-1".into()),
            ("autoUpgradeIntervalH", "0".into()),
            ("crashReportingEnabled", "false".into()),
            ("setLowPriority", "false".into()),
        ] {
            set_tag(&mut xml, options, tag, &value);
        }
        let shared = format!(
            r#"    <folder id="{FOLDER}" label="{FOLDER}" path="{}" type="sendreceive" rescanIntervalS="3600" fsWatcherEnabled="true" fsWatcherDelayS="1" ignorePerms="false" autoNormalize="true">
        <filesystemType>basic</filesystemType>
        <device id="{}" introducedBy=""></device>
        <device id="{}" introducedBy=""></device>
    </folder>
    <device id="{}" name="peer" compression="metadata" introducer="false" skipIntroductionRemovals="false" introducedBy="">
        <address>tcp://127.0.0.1:{}</address>
        <paused>false</paused>
    </device>
"#,
            self.folder.display(),
            self.id,
            peer.id,
            peer.id,
            peer.listen
        );
        xml.insert_str(gui, &shared);
        fs::write(&path, xml).unwrap();
    }

    /// Keys and config for two instances sharing `a_folder` and `b_folder`.
    pub fn pair(base: &Path, a_folder: &Path, b_folder: &Path) -> (Syncthing, Syncthing) {
        let a = Syncthing::generate(base, "a", a_folder);
        let b = Syncthing::generate(base, "b", b_folder);
        a.configure(&b);
        b.configure(&a);
        (a, b)
    }

    /// Start the instance and wait for its REST API.
    pub fn start(&mut self) {
        let log = fs::File::create(self.home.join("log.txt")).unwrap();
        let child = Command::new("syncthing")
            .args(["serve", "--no-browser", "--no-restart", "--no-upgrade"])
            .arg(format!("--home={}", self.home.display()))
            .env("STNODEFAULTFOLDER", "1")
            .env("STNOUPGRADE", "1")
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.try_get("/rest/system/ping").is_none() {
            assert!(
                Instant::now() < deadline,
                "syncthing did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().unwrap().id()
    }

    pub fn log(&self) -> String {
        fs::read_to_string(self.home.join("log.txt")).unwrap_or_default()
    }

    fn try_get(&self, path: &str) -> Option<serde_json::Value> {
        let mut response = ureq::get(&format!("http://127.0.0.1:{}{path}", self.gui))
            .header("X-API-Key", &self.api_key)
            .call()
            .ok()?;
        let text = response.body_mut().read_to_string().ok()?;
        serde_json::from_str(&text).ok()
    }

    fn folder_status(&self) -> serde_json::Value {
        self.try_get(&format!("/rest/db/status?folder={FOLDER}"))
            .unwrap_or(serde_json::Value::Null)
    }

    /// Wait until the folder is idle with `files` files known locally and nothing needed.
    pub fn wait_complete(&self, files: u64, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        loop {
            let s = self.folder_status();
            if s["state"] == "idle"
                && s["localFiles"].as_u64() == Some(files)
                && s["needTotalItems"].as_u64() == Some(0)
            {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "syncthing folder never complete: {s}\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Bytes this instance sent and received on its connections.
    pub fn wire_bytes(&self) -> u64 {
        let c = self.try_get("/rest/system/connections").unwrap_or_default();
        c["total"]["inBytesTotal"].as_u64().unwrap_or(0)
            + c["total"]["outBytesTotal"].as_u64().unwrap_or(0)
    }
}

impl Drop for Syncthing {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
