//! The Magasin end to end: a real store served on loopback by `qsync store serve`, a
//! tout-en-un app installed from it, launched, its data synced between two daemons, then
//! uninstalled; a grapin for a fake app tree installed and synced.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/node.rs"]
mod node;
#[path = "support/store.rs"]
mod store;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use node::{link, Node};
use store::{add_app, add_grapin, hello_archive, init, serve, sign, HELLO};

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

/// A store folder made with `qsync store init/add/sign`: one tout-en-un app (a tar.gz made
/// with the system's tar) and two grapins. Returns the publisher key's fingerprint.
fn make_store(dir: &Path) -> String {
    let fingerprint = init(dir);
    let work = dir.with_extension("work");
    fs::create_dir_all(&work).unwrap();
    add_app(dir, &hello_archive(&work), HELLO);
    add_grapin(
        dir,
        r#"{ "AppName": "FakeApp", "AppDescription": "A fake app's saves",
             "AppSyncDataFolderPath": { "Linux": "~/.fakeapp/%username%/%any%/saves",
                                        "Windows": "C:/Users/%username%/AppData/FakeApp/%any%/saves" },
             "NeedsFormat": true, "SupportedPlatforms": ["Linux", "Windows"] }"#,
    );
    add_grapin(
        dir,
        r#"{ "AppName": "NotThere", "AppSyncDataFolderPath": "~/.not-there/%any%",
             "NeedsFormat": true, "SupportedPlatforms": ["Linux"] }"#,
    );
    sign(dir, None);
    fingerprint
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
    let fingerprint = make_store(&store_dir);
    let server = serve(&store_dir);
    let a = Node::start(base.path(), "alpha");
    let b = Node::start(base.path(), "beta");
    let url = server.url.clone();
    let run = |args: &[&str]| store::store_cli(&a.state, &home_a, &url, args);

    // A store is used only once its key is trusted: with nobody to ask, not at all.
    let err = run(&["list", "--yes"]).unwrap_err();
    assert!(err.contains("not trusted yet"), "{err}");
    assert!(err.contains(&fingerprint), "the key is shown: {err}");
    let err = run(&["trust", "--fingerprint", "0000 1111"]).unwrap_err();
    assert!(err.contains("not trusted"), "{err}");
    let out = run(&["trust", "--fingerprint", &fingerprint]).unwrap();
    assert!(out.contains("trusted"), "{out}");

    let list = run(&["list"]).unwrap();
    assert!(list.contains("Hello") && list.contains("FakeApp"), "{list}");
    assert!(run(&["search", "saves"]).unwrap().contains("FakeApp"));
    let listed: serde_json::Value =
        serde_json::from_str(&run(&["--json", "list"]).unwrap()).unwrap();
    let names: Vec<&str> = listed["apps"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|app| app["name"].as_str())
        .collect();
    assert!(
        names.contains(&"Hello") && names.contains(&"FakeApp"),
        "{listed}"
    );
    assert!(run(&["install", "Nope"])
        .unwrap_err()
        .contains("no app named Nope"));

    // Tout-en-un: installed (the installer ran), launched (it writes a marker).
    let out = run(&["install", "Hello", "--yes"]).unwrap();
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
    assert!(run(&["install", "Hello", "--yes"])
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
