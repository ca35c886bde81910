//! The Magasin end to end: a real store served on loopback by `qsync store serve`, a
//! tout-en-un app installed from it, launched, its data synced between two daemons, then
//! uninstalled; a grapin for a fake app tree installed and synced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/node.rs"]
mod node;

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use node::{link, Node, QSYNC};

/// `qsync store serve`, killed on drop.
struct StoreServer {
    child: Child,
    url: String,
}

impl Drop for StoreServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn serve(dir: &Path) -> StoreServer {
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

/// Run `qsync store ...` for `node` with a fake home folder and user name.
fn store_cli(node: &Node, home: &Path, url: &str, args: &[&str]) -> Result<String, String> {
    let out = Command::new(QSYNC)
        .arg("--state-dir")
        .arg(&node.state)
        .arg("store")
        .args(args)
        .env("HOME", home)
        .env("USER", "tester")
        .env("QSYNC_STORE", url)
        .env_remove("XDG_DATA_HOME")
        .env("RUST_BACKTRACE", "0")
        .output()
        .unwrap();
    if out.status.success() {
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    } else {
        Err(String::from_utf8_lossy(&out.stderr).into_owned())
    }
}

fn wait_for(path: &Path, what: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(text) = fs::read_to_string(path) {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: {} never appeared",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn script(path: &Path, body: &str) {
    fs::create_dir_all(path.parent().unwrap()).unwrap();
    fs::write(path, format!("#!/bin/sh\nset -e\n{body}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).unwrap();
}

/// A store folder with one tout-en-un app (a tar.gz made with the system's tar), one grapin
/// and one broken entry.
fn make_store(dir: &Path) {
    let app = dir.join("hello-src/hello");
    script(
        &app.join("bin/hello.sh"),
        r#"echo "hello from $QSYNC_APP_DIR" > "$QSYNC_APP_DATA/marker.txt""#,
    );
    script(&app.join("install.sh"), "echo yes > installed.txt");
    script(
        &app.join("uninstall.sh"),
        r#"echo bye > "$QSYNC_APP_DATA/goodbye.txt""#,
    );
    let status = Command::new("tar")
        .arg("-czf")
        .arg(dir.join("hello.tar.gz"))
        .arg("-C")
        .arg(dir.join("hello-src"))
        .arg("hello")
        .status()
        .unwrap();
    assert!(status.success());
    fs::remove_dir_all(dir.join("hello-src")).unwrap();
    fs::write(
        dir.join("index.json"),
        r#"{
          "tout_en_un_configs": [
            { "AppName": "Hello", "AppDescription": "Writes a marker",
              "AppDownloadUrl": "hello.tar.gz", "NeedsInstaller": true,
              "AppLauncherPath": "bin/hello.sh", "AppInstallerPath": "install.sh",
              "AppUninstallerPath": "uninstall.sh", "AppSyncDataFolderPath": "data" },
            { "AppName": "Broken", "AppDownloadUrl": "x.zip", "AppLauncherPath": "../escape",
              "AppSyncDataFolderPath": "data" }
          ],
          "grapin_configs": [
            { "AppName": "FakeApp", "AppDescription": "A fake app's saves",
              "AppSyncDataFolderPath": { "Linux": "~/.fakeapp/%username%/%any%/saves",
                                         "Windows": "C:/Users/%username%/AppData/FakeApp/%any%/saves" },
              "NeedsFormat": true, "SupportedPlatforms": ["Linux", "Windows"] },
            { "AppName": "NotThere", "AppSyncDataFolderPath": "~/.not-there/%any%",
              "NeedsFormat": true, "SupportedPlatforms": ["Linux"] }
          ]
        }"#,
    )
    .unwrap();
}

fn task_of(installed: &str, name: &str) -> String {
    let line = installed
        .lines()
        .find(|l| l.starts_with(name))
        .unwrap_or_else(|| panic!("{name} not in {installed}"));
    let words: Vec<&str> = line.split_whitespace().collect();
    let at = words.iter().position(|w| *w == "task").unwrap();
    words[at + 1].to_owned()
}

#[test]
fn store_install_launch_sync_uninstall() {
    let base = tempfile::tempdir().unwrap();
    let (home_a, home_b) = (base.path().join("home-a"), base.path().join("home-b"));
    fs::create_dir_all(&home_a).unwrap();
    fs::create_dir_all(&home_b).unwrap();
    let store_dir = base.path().join("store");
    fs::create_dir_all(&store_dir).unwrap();
    make_store(&store_dir);
    let server = serve(&store_dir);
    let a = Node::start(base.path(), "alpha");
    let b = Node::start(base.path(), "beta");
    let url = server.url.clone();
    let run = |args: &[&str]| store_cli(&a, &home_a, &url, args);

    // The store lists the good entries and says why the broken one is skipped.
    let out = Command::new(QSYNC)
        .args(["store", "list", "--store", &url])
        .output()
        .unwrap();
    let (list, warnings) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert!(list.contains("Hello") && list.contains("FakeApp"), "{list}");
    assert!(!list.contains("Broken"), "{list}");
    assert!(warnings.contains("AppLauncherPath"), "{warnings}");
    assert!(run(&["search", "saves"]).unwrap().contains("FakeApp"));
    assert!(run(&["install", "Nope"])
        .unwrap_err()
        .contains("no app named Nope"));

    // Tout-en-un: installed (the installer ran), launched (it writes a marker).
    let out = run(&["install", "Hello"]).unwrap();
    assert!(out.contains("installed Hello"), "{out}");
    let app_dir = a.state.join("apps/Hello");
    assert_eq!(
        fs::read_to_string(app_dir.join("installed.txt")).unwrap(),
        "yes\n"
    );
    let shortcut = home_a.join(".local/share/applications/qsync-Hello.desktop");
    assert!(fs::read_to_string(&shortcut)
        .unwrap()
        .contains("bin/hello.sh"));
    assert!(run(&["install", "Hello"])
        .unwrap_err()
        .contains("already installed"));
    let installed = run(&["installed"]).unwrap();
    let task = task_of(&installed, "Hello");

    assert!(run(&["launch", "Hello"]).unwrap().contains("started Hello"));
    let marker = wait_for(
        &app_dir.join("data/marker.txt"),
        "the launched app's marker",
    );
    assert!(marker.contains("apps/Hello"), "{marker}");

    // Its data folder syncs to a second daemon, both ways.
    let on_b = base.path().join("hello-on-b");
    link(&a, &task, &b, &on_b);
    assert_eq!(
        wait_for(&on_b.join("marker.txt"), "the marker on B"),
        marker
    );
    fs::write(on_b.join("from-b.txt"), "written on B").unwrap();
    assert_eq!(
        wait_for(&app_dir.join("data/from-b.txt"), "B's file on A"),
        "written on B"
    );

    // Uninstalled: the uninstaller ran, files and shortcut are gone, the data is kept aside,
    // and B's copy is untouched (removing the files was not synced).
    let out = run(&["uninstall", "Hello"]).unwrap();
    assert!(out.contains("uninstalled Hello"), "{out}");
    assert!(!app_dir.exists() && !shortcut.exists());
    let kept: Vec<PathBuf> = fs::read_dir(a.state.join("apps-data"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert_eq!(kept.len(), 1);
    assert_eq!(
        fs::read_to_string(kept[0].join("goodbye.txt")).unwrap(),
        "bye\n"
    );
    assert_eq!(
        fs::read_to_string(kept[0].join("from-b.txt")).unwrap(),
        "written on B"
    );
    std::thread::sleep(Duration::from_secs(2));
    assert!(on_b.join("marker.txt").exists(), "B lost its copy");
    assert!(!run(&["installed"]).unwrap().contains("Hello"));

    // A grapin: `%username%` is the user, `%any%` the first folder in sorted order.
    let app_tree = home_a.join(".fakeapp/tester");
    fs::create_dir_all(app_tree.join("profile-b/saves")).unwrap();
    fs::create_dir_all(app_tree.join("profile-a/saves")).unwrap();
    fs::write(app_tree.join("profile-a/saves/slot1.sav"), "level 3").unwrap();
    let out = run(&["install", "FakeApp"]).unwrap();
    assert!(
        out.contains("is `profile-a` (also there: profile-b)"),
        "{out}"
    );
    let task = task_of(&run(&["installed"]).unwrap(), "FakeApp");
    let saves_on_b = base.path().join("saves-on-b");
    link(&a, &task, &b, &saves_on_b);
    assert_eq!(
        wait_for(&saves_on_b.join("slot1.sav"), "the save on B"),
        "level 3"
    );
    let out = run(&["uninstall", "FakeApp"]).unwrap();
    assert!(out.contains("untouched"), "{out}");
    assert!(
        app_tree.join("profile-a/saves/slot1.sav").exists(),
        "a grapin's data is never removed"
    );

    // A grapin whose folder does not exist: a clear error, nothing recorded.
    let err = run(&["install", "NotThere"]).unwrap_err();
    assert!(err.contains("no folder"), "{err}");
    assert!(run(&["installed"]).unwrap().contains("no app installed"));
}
