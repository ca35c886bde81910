//! A store for the Magasin's tests: made with `qsync store init/add/sign`, served on
//! loopback by `qsync store serve`, and `qsync store ...` run as a person (or a script) would.
#![allow(dead_code)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};

use crate::node::QSYNC;

/// `qsync store serve`, killed on drop.
pub struct StoreServer {
    child: Child,
    /// `http://127.0.0.1:PORT/`.
    pub url: String,
}

impl Drop for StoreServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Serve the store folder `dir` on a free loopback port.
pub fn serve(dir: &Path) -> StoreServer {
    let mut child = Command::new(QSYNC)
        .args(["store", "serve"])
        .arg(dir)
        .args(["--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let url = line
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no address in `{line}`"))
        .to_owned();
    StoreServer { child, url }
}

/// `qsync ARGS` with no terminal on stdin: `Ok(stdout)` or `Err(stderr)`.
pub fn qsync(args: &[&str]) -> Result<String, String> {
    outcome(
        Command::new(QSYNC)
            .args(args)
            .stdin(Stdio::null())
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap(),
    )
}

pub fn outcome(out: Output) -> Result<String, String> {
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

/// Run `qsync --state-dir STATE store ARGS` with `home` as the home folder, user `tester`,
/// the store at `url`, plain http allowed (the test server has no TLS), no terminal.
pub fn store_cli(state: &Path, home: &Path, url: &str, args: &[&str]) -> Result<String, String> {
    outcome(
        Command::new(QSYNC)
            .arg("--state-dir")
            .arg(state)
            .arg("store")
            .args(args)
            .arg("--insecure-http")
            .stdin(Stdio::null())
            .env("HOME", home)
            .env("USER", "tester")
            .env("QSYNC_STORE", url)
            .env_remove("XDG_DATA_HOME")
            .env("RUST_BACKTRACE", "0")
            .output()
            .unwrap(),
    )
}

pub fn script(path: &Path, body: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A tar.gz of the folder `src/top` made with the system's tar.
pub fn tar_gz(src: &Path, top: &str, out: &Path) {
    let status = Command::new("tar")
        .arg("-czf")
        .arg(out)
        .arg("-C")
        .arg(src)
        .arg(top)
        .status()
        .unwrap();
    assert!(status.success());
}

/// The publisher key of the store folder `dir` in these tests: `DIR.key`, beside it.
pub fn key_of(dir: &Path) -> PathBuf {
    dir.with_extension("key")
}

/// `qsync store init DIR --key DIR.key`: the publisher key's fingerprint.
pub fn init(dir: &Path) -> String {
    let key = key_of(dir);
    let out = qsync(&[
        "store",
        "init",
        dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ])
    .unwrap();
    out.lines()
        .find_map(|l| l.strip_prefix("publisher key fingerprint: "))
        .unwrap_or_else(|| panic!("no fingerprint in {out}"))
        .to_owned()
}

/// `qsync store add DIR ARCHIVE --config JSON` (the JSON written beside the store).
pub fn add_app(dir: &Path, archive: &Path, json: &str) {
    let config = dir.with_extension("app.json");
    fs::write(&config, json).unwrap();
    qsync(&[
        "store",
        "add",
        dir.to_str().unwrap(),
        archive.to_str().unwrap(),
        "--config",
        config.to_str().unwrap(),
    ])
    .unwrap();
}

/// `qsync store add DIR --grapin JSON`.
pub fn add_grapin(dir: &Path, json: &str) {
    let config = dir.with_extension("grapin.json");
    fs::write(&config, json).unwrap();
    qsync(&[
        "store",
        "add",
        dir.to_str().unwrap(),
        "--grapin",
        config.to_str().unwrap(),
    ])
    .unwrap();
}

/// `qsync store sign DIR --key KEY` (by default `DIR.key`).
pub fn sign(dir: &Path, key: Option<&Path>) {
    let key = key.map_or_else(|| key_of(dir), Path::to_path_buf);
    qsync(&[
        "store",
        "sign",
        dir.to_str().unwrap(),
        "--key",
        key.to_str().unwrap(),
    ])
    .unwrap();
}

/// The Hello app: its installer writes `installed.txt` in its folder and `$HOME/installer-ran`
/// (so a test can tell whether it ran), its launcher a marker in its data folder, its
/// uninstaller a goodbye. Returns the archive.
pub fn hello_archive(work: &Path) -> PathBuf {
    let src = work.join("hello-src");
    let app = src.join("hello");
    script(
        &app.join("bin/hello.sh"),
        r#"echo "hello from $QSYNC_APP_DIR" > "$QSYNC_APP_DATA/marker.txt""#,
    );
    script(
        &app.join("install.sh"),
        r#"echo yes > installed.txt; touch "$HOME/installer-ran""#,
    );
    script(
        &app.join("uninstall.sh"),
        r#"echo bye > "$QSYNC_APP_DATA/goodbye.txt""#,
    );
    let archive = work.join("hello.tar.gz");
    tar_gz(&src, "hello", &archive);
    fs::remove_dir_all(&src).unwrap();
    archive
}

pub const HELLO: &str = r#"{ "AppName": "Hello", "AppDescription": "Writes a marker",
  "AppDownloadUrl": "hello.tar.gz", "NeedsInstaller": true,
  "AppLauncherPath": "bin/hello.sh", "AppInstallerPath": "install.sh",
  "AppUninstallerPath": "uninstall.sh", "AppSyncDataFolderPath": "data" }"#;
