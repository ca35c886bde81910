//! Attacks on the Magasin, driven through the real `qsync` binary against a store made with
//! `qsync store init/add/sign` and served on loopback by `qsync store serve`, with a real
//! daemon to record what gets installed.
//!
//! Each attack must be refused before anything from the store runs, and leave nothing
//! installed: no app folder, no download left over, no record in the daemon, and the
//! installer's tell-tale file (`$HOME/installer-ran`) absent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/node.rs"]
mod node;
#[path = "support/store.rs"]
mod store;

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use node::{Node, QSYNC};
use store::{add_app, add_grapin, hello_archive, init, serve, sign, store_cli, HELLO};

/// One device that installs from a store: its daemon and a home folder of its own.
struct Device {
    node: Node,
    home: PathBuf,
}

impl Device {
    fn new(base: &Path) -> Device {
        let home = base.join("home");
        fs::create_dir_all(&home).unwrap();
        Device {
            node: Node::start(base, "victim"),
            home,
        }
    }

    fn run(&self, url: &str, args: &[&str]) -> Result<String, String> {
        store_cli(&self.node.state, &self.home, url, args)
    }

    /// Nothing of `app` is on this device, and its installer never ran.
    fn assert_clean(&self, url: &str, app: &str, attack: &str) {
        let apps = self.node.state.join("apps");
        let left: Vec<String> = fs::read_dir(&apps)
            .map(|d| {
                d.flatten()
                    .map(|e| e.file_name().to_string_lossy().into_owned())
                    .collect()
            })
            .unwrap_or_default();
        assert!(
            left.is_empty(),
            "{attack}: left in {}: {left:?}",
            apps.display()
        );
        assert!(
            !self.home.join("installer-ran").exists(),
            "{attack}: the installer ran"
        );
        let installed = self.run(url, &["installed"]).unwrap();
        assert!(!installed.contains(app), "{attack}: recorded: {installed}");
    }
}

/// A signed store with Hello, served; the device trusts it by its fingerprint.
struct Fixture {
    _base: tempfile::TempDir,
    dir: PathBuf,
    work: PathBuf,
    _server: store::StoreServer,
    url: String,
    device: Device,
}

fn fixture() -> Fixture {
    let base = tempfile::tempdir().unwrap();
    let dir = base.path().join("store");
    let fingerprint = init(&dir);
    let work = base.path().join("work");
    fs::create_dir_all(&work).unwrap();
    add_app(&dir, &hello_archive(&work), HELLO);
    sign(&dir, None);
    let server = serve(&dir);
    let url = server.url.clone();
    let device = Device::new(base.path());
    device
        .run(&url, &["trust", "--fingerprint", &fingerprint])
        .unwrap();
    Fixture {
        dir,
        work,
        url,
        _server: server,
        device,
        _base: base,
    }
}

#[test]
fn a_store_that_was_tampered_with_is_refused_before_anything_runs() {
    let f = fixture();
    let install = || f.device.run(&f.url, &["install", "Hello", "--yes"]);

    // Checking the pinned key against a fingerprint given later: a mismatch is an error.
    let err = f
        .device
        .run(&f.url, &["trust", "--fingerprint", "0000 0000 0000 0000"])
        .unwrap_err();
    assert!(err.contains("is trusted with key"), "{err}");

    // The store as published installs (the installer runs), and uninstalls.
    let out = install().unwrap();
    assert!(out.contains("installed Hello"), "{out}");
    assert!(f.device.home.join("installer-ran").exists());
    f.device.run(&f.url, &["uninstall", "Hello"]).unwrap();
    fs::remove_file(f.device.home.join("installer-ran")).unwrap();
    f.device.assert_clean(&f.url, "Hello", "uninstalled");
    let signed_index = fs::read(f.dir.join("index.json")).unwrap();
    let signature = fs::read(f.dir.join("index.json.sig")).unwrap();

    // (1) One byte of the archive changed on the server.
    let archive = f.dir.join("hello.tar.gz");
    let good = fs::read(&archive).unwrap();
    let mut bad = good.clone();
    let middle = bad.len() / 2;
    bad[middle] ^= 0x01;
    fs::write(&archive, &bad).unwrap();
    let err = install().unwrap_err();
    assert!(err.contains("SHA-256"), "(1): {err}");
    f.device.assert_clean(&f.url, "Hello", "(1) a changed byte");
    fs::write(&archive, &good).unwrap();

    // (2) The index re-signed with another key (a store key stolen from nobody: made up).
    let other = f.work.join("other-store");
    init(&other);
    sign(&f.dir, Some(&store::key_of(&other)));
    let err = install().unwrap_err();
    assert!(err.contains("another key"), "(2): {err}");
    f.device.assert_clean(&f.url, "Hello", "(2) another key");

    // (3) An unsigned index.
    fs::remove_file(f.dir.join("index.json.sig")).unwrap();
    let err = install().unwrap_err();
    assert!(err.contains("not signed"), "(3): {err}");
    f.device.assert_clean(&f.url, "Hello", "(3) unsigned");

    // (4) A web index, signed by the right key, whose entry names a file of this machine.
    let local = f.work.join("local.tar.gz");
    fs::write(&local, &good).unwrap();
    let text = String::from_utf8(signed_index.clone()).unwrap().replace(
        "\"hello.tar.gz\"",
        &format!("\"file://{}\"", local.display()),
    );
    fs::write(f.dir.join("index.json"), text).unwrap();
    sign(&f.dir, None);
    let err = install().unwrap_err();
    assert!(err.contains("may not point at a file"), "(4): {err}");
    f.device.assert_clean(&f.url, "Hello", "(4) file://");

    // (5) An older index, validly signed, served again (a replay of sequence 1 after the
    // device saw a newer one).
    fs::write(f.dir.join("index.json"), &signed_index).unwrap();
    fs::write(f.dir.join("index.json.sig"), &signature).unwrap();
    let err = install().unwrap_err();
    assert!(err.contains("older index"), "(5): {err}");
    f.device.assert_clean(&f.url, "Hello", "(5) replay");

    // The pin is dropped only when asked, by the name `trusted` lists.
    let trusted = f.device.run(&f.url, &["trusted"]).unwrap();
    let id = trusted.split_whitespace().next().unwrap().to_owned();
    assert!(
        id.ends_with("/index.json") && !id.contains("://"),
        "{trusted}"
    );
    f.device.run(&f.url, &["forget", &id]).unwrap();
    let trusted = f.device.run(&f.url, &["trusted"]).unwrap();
    assert!(trusted.contains("no store trusted"), "{trusted}");
}

#[test]
fn nothing_runs_without_consent_when_nobody_can_answer() {
    let f = fixture();
    let err = f.device.run(&f.url, &["install", "Hello"]).unwrap_err();
    assert!(err.contains("needs your confirmation"), "{err}");
    // The person would have been shown what runs, and on whose key.
    assert!(
        err.contains("installer install.sh") && err.contains("launcher bin/hello.sh"),
        "{err}"
    );
    assert!(err.contains("signed by key"), "{err}");
    f.device.assert_clean(&f.url, "Hello", "no consent");

    // A description that would hide the real question behind terminal escapes is shown
    // escaped.
    let hider = HELLO
        .replace("\"Hello\"", "\"Hider\"")
        .replace("hello.tar.gz", "hider.tar.gz")
        .replace(
            "Writes a marker",
            "Harmless.\\nInstall it? [y/N] \\u001b[8m",
        );
    let archive = f.work.join("hider.tar.gz");
    fs::copy(f.dir.join("hello.tar.gz"), &archive).unwrap();
    add_app(&f.dir, &archive, &hider);
    sign(&f.dir, None);
    let err = f.device.run(&f.url, &["install", "Hider"]).unwrap_err();
    assert!(
        !err.contains('\u{1b}') && err.contains("\\u{1b}[8m"),
        "{err:?}"
    );
    assert!(err.contains("Harmless.\\u{a}Install it?"), "{err:?}");

    // A store never trusted: nobody to confirm its key, nothing read from it.
    let untrusting = Device::new(&f.work.join("second"));
    let err = untrusting
        .run(&f.url, &["install", "Hello", "--yes"])
        .unwrap_err();
    assert!(err.contains("not trusted yet"), "{err}");
    untrusting.assert_clean(&f.url, "Hello", "never trusted");
}

#[test]
fn grapins_cannot_take_the_home_folder_and_ask_before_secrets() {
    let f = fixture();
    fs::create_dir_all(f.device.home.join(".ssh")).unwrap();
    fs::write(f.device.home.join(".ssh/id_ed25519"), "secret").unwrap();
    add_grapin(
        &f.dir,
        r#"{"AppName":"Everything","AppSyncDataFolderPath":"~","SupportedPlatforms":["Linux"]}"#,
    );
    add_grapin(
        &f.dir,
        r#"{"AppName":"Keys","AppSyncDataFolderPath":"~/.ssh","SupportedPlatforms":["Linux"]}"#,
    );
    sign(&f.dir, None);
    let err = f
        .device
        .run(&f.url, &["install", "Everything", "--yes"])
        .unwrap_err();
    assert!(err.contains("home folder itself"), "{err}");
    let err = f.device.run(&f.url, &["install", "Keys"]).unwrap_err();
    assert!(
        err.contains("SSH keys") && err.contains("needs your confirmation"),
        "{err}"
    );
    let installed = f.device.run(&f.url, &["installed"]).unwrap();
    assert!(installed.contains("no app installed"), "{installed}");
}

/// A tar.gz of `count` empty files.
fn many_empty_files(path: &Path, count: u32) {
    let file = fs::File::create(path).unwrap();
    let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
        std::io::BufWriter::new(file),
        flate2::Compression::fast(),
    ));
    let mut header = tar::Header::new_gnu();
    header.set_size(0);
    header.set_mode(0o644);
    header.set_entry_type(tar::EntryType::Regular);
    for i in 0..count {
        header.set_path(format!("f/{i}")).unwrap();
        header.set_cksum();
        tar.append(&header, std::io::empty()).unwrap();
    }
    tar.into_inner().unwrap().finish().unwrap();
}

/// A zip holding `size` zeros in one entry. With `lie`, its headers say the entry is 1,000
/// bytes (a bomb that hides its size).
fn zeros_zip(path: &Path, size: usize, lie: bool) {
    let mut zip = zip::ZipWriter::new(fs::File::create(path).unwrap());
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .compression_level(Some(1));
    zip.start_file("zeros", options).unwrap();
    let chunk = vec![0u8; 1 << 20];
    for _ in 0..size / chunk.len() {
        zip.write_all(&chunk).unwrap();
    }
    zip.finish().unwrap();
    if lie {
        let mut bytes = fs::read(path).unwrap();
        let patch = |bytes: &mut Vec<u8>, signature: &[u8; 4], offset: usize| {
            let at = bytes.windows(4).position(|w| w == signature).unwrap();
            bytes[at + offset..at + offset + 4].copy_from_slice(&1000u32.to_le_bytes());
        };
        patch(&mut bytes, b"PK\x03\x04", 22); // local header: uncompressed size
        patch(&mut bytes, b"PK\x01\x02", 24); // central directory: uncompressed size
        fs::write(path, bytes).unwrap();
    }
}

/// Run `qsync ARGS` (no terminal), sampling its peak memory: (outcome, peak RSS in KiB,
/// time taken).
fn measured(device: &Device, url: &str, args: &[&str]) -> (Result<String, String>, u64, Duration) {
    let started = Instant::now();
    let mut child = Command::new(QSYNC)
        .arg("--state-dir")
        .arg(&device.node.state)
        .arg("store")
        .args(args)
        .arg("--insecure-http")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("HOME", &device.home)
        .env("USER", "tester")
        .env_remove("XDG_DATA_HOME")
        .env("QSYNC_STORE", url)
        .env("RUST_BACKTRACE", "0") // symbolizing a backtrace costs more than the work
        .spawn()
        .unwrap();
    let status = format!("/proc/{}/status", child.id());
    let mut peak = 0;
    while child.try_wait().unwrap().is_none() {
        if let Ok(text) = fs::read_to_string(&status) {
            if let Some(kib) = text
                .lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
            {
                peak = peak.max(kib);
            }
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let out = child.wait_with_output().unwrap();
    (store::outcome(out), peak, started.elapsed())
}

#[test]
fn archive_bombs_are_refused_quickly_in_bounded_memory() {
    let f = fixture();
    let app = |name: &str, file: &str| {
        format!(
            r#"{{"AppName":"{name}","AppDownloadUrl":"{file}","AppLauncherPath":"run","AppSyncDataFolderPath":"data"}}"#
        )
    };
    // A million empty files (about 1 MB compressed).
    let million = f.work.join("million.tar.gz");
    many_empty_files(&million, 1_000_000);
    // 1 GiB of zeros in one zip entry (about 1 MB compressed), its size told honestly, and
    // 256 MiB of zeros whose headers say 1,000 bytes. Both are refused with the unpacked
    // limit at 64 MiB.
    let honest = f.work.join("honest.zip");
    zeros_zip(&honest, 1 << 30, false);
    let liar = f.work.join("liar.zip");
    zeros_zip(&liar, 256 << 20, true);
    // `store add` and `sign` check archives as clients do, and refuse these: a hostile
    // publisher writes the entries and signs with the key itself.
    let mut index: serde_json::Value =
        serde_json::from_slice(&fs::read(f.dir.join("index.json")).unwrap()).unwrap();
    for (name, archive) in [("Million", &million), ("Honest", &honest), ("Liar", &liar)] {
        let file = archive.file_name().unwrap().to_str().unwrap();
        let bytes = fs::read(archive).unwrap();
        fs::write(f.dir.join(file), &bytes).unwrap();
        let mut entry: serde_json::Value = serde_json::from_str(&app(name, file)).unwrap();
        entry["AppDownloadSize"] = bytes.len().into();
        entry["AppDownloadSHA256"] = qsync_magasin::sha256_hex(&bytes).into();
        index["tout_en_un_configs"]
            .as_array_mut()
            .unwrap()
            .push(entry);
    }
    index["sequence"] = (index["sequence"].as_u64().unwrap() + 1).into();
    let bytes = index.to_string().into_bytes();
    let key = qsync_magasin::PublisherKey::load(&store::key_of(&f.dir)).unwrap();
    fs::write(f.dir.join("index.json"), &bytes).unwrap();
    fs::write(f.dir.join("index.json.sig"), key.sign(&bytes).to_json()).unwrap();

    for (name, expected) in [
        ("Million", "more than 100000 entries"),
        ("Honest", "more than 67108864 bytes"),
        ("Liar", "bytes its header says"),
    ] {
        let (result, peak_kib, took) = measured(
            &f.device,
            &f.url,
            &["install", name, "--yes", "--max-unpacked", "67108864"],
        );
        let err = result.unwrap_err();
        assert!(err.contains(expected), "{name}: {err}");
        assert!(took < Duration::from_secs(30), "{name} took {took:?}");
        assert!(peak_kib < 64 << 10, "{name}: peak RSS {peak_kib} KiB");
        f.device.assert_clean(&f.url, name, name);
        eprintln!(
            "{name}: refused in {took:?}, peak RSS {} MiB",
            peak_kib >> 10
        );
    }
}
