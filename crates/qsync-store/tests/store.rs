//! The store against a model, under crashes, and its plain operations.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::Duration;

use proptest::prelude::*;
use qsync_base::{ContentHash, DeviceId, EntryKind, FileEntry, RelPath, TaskId, UpdateId};
use qsync_store::{Change, ModType, Store, DB_FILE};

fn entry(path: &str, content: &[u8]) -> FileEntry {
    FileEntry {
        path: RelPath::new(path).unwrap(),
        kind: EntryKind::File,
        size: content.len() as u64,
        mtime_ns: 1,
        hash: Some(ContentHash::of(content)),
        mode: 0o644,
    }
}

fn setup(devices: usize) -> (tempfile::TempDir, Store, TaskId, Vec<DeviceId>) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(&dir.path().join("state")).unwrap();
    let task = TaskId::random();
    store.add_task(task, "/data/task".as_ref(), "task").unwrap();
    let ids: Vec<DeviceId> = (0..devices)
        .map(|i| DeviceId::from_bytes([i as u8 + 1; 32]))
        .collect();
    for d in &ids {
        store.add_link(task, *d, "peer").unwrap();
    }
    (dir, store, task, ids)
}

#[derive(Debug, Clone)]
enum Op {
    /// A local change to path `path`, still to be delivered to the devices in `to`.
    Change {
        path: u8,
        kind: u8,
        to: BTreeSet<usize>,
    },
    /// Device `device` acknowledges its `n` oldest missing updates.
    Ack { device: usize, n: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0u8..4, 0u8..4, proptest::collection::btree_set(0usize..3, 0..=3))
            .prop_map(|(path, kind, to)| Op::Change { path, kind, to }),
        2 => (0usize..3, 0usize..4).prop_map(|(device, n)| Op::Ack { device, n }),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    /// Random changes, devices away and back, acknowledgements: no delta is lost while a
    /// device needs it, none survives when no device does, and each device's missing list
    /// is exactly the model's, in order.
    #[test]
    fn pending_and_delta_lifecycle_matches_a_model(ops in proptest::collection::vec(op(), 1..40)) {
        let (_dir, mut store, task, devices) = setup(3);
        // model: update -> (has delta, devices still to deliver to)
        let mut model: BTreeMap<UpdateId, (bool, BTreeSet<usize>)> = BTreeMap::new();
        for (step, op) in ops.into_iter().enumerate() {
            match op {
                Op::Change { path, kind, to } => {
                    let path = format!("f{path}");
                    let content = step.to_le_bytes();
                    let change = match kind {
                        0 => Change::Create(entry(&path, &content)),
                        1 => Change::Modify { entry: entry(&path, &content), base: None, delta: Some(content.to_vec()) },
                        2 => Change::Delete(RelPath::new(path).unwrap()),
                        _ => Change::Rename { from: RelPath::new(path).unwrap(), to: RelPath::new(format!("r{step}")).unwrap() },
                    };
                    let has_delta = kind == 1;
                    let ids: Vec<DeviceId> = to.iter().map(|i| devices[*i]).collect();
                    let done = store.record_changes(task, vec![change], &ids).unwrap();
                    if !to.is_empty() {
                        model.insert(done[0].update, (has_delta, to));
                    }
                }
                Op::Ack { device, n } => {
                    let missing = store.missing_for(devices[device]).unwrap();
                    let acked: Vec<UpdateId> = missing.iter().take(n).map(|u| u.update).collect();
                    store.mark_many_done(devices[device], &acked).unwrap();
                    for id in acked {
                        let entry = model.get_mut(&id).unwrap();
                        entry.1.remove(&device);
                        if entry.1.is_empty() {
                            model.remove(&id);
                        }
                    }
                }
            }
            for (i, d) in devices.iter().enumerate() {
                let got: Vec<UpdateId> = store.missing_for(*d).unwrap().iter().map(|u| u.update).collect();
                let want: Vec<UpdateId> = model.iter().filter(|(_, (_, to))| to.contains(&i)).map(|(id, _)| *id).collect();
                prop_assert_eq!(got, want);
            }
            for (id, (has_delta, _)) in &model {
                prop_assert_eq!(store.delta(*id).unwrap().is_some(), *has_delta, "delta of {:?}", id);
            }
            let counts = store.counts().unwrap();
            prop_assert_eq!(counts.updates, model.len() as u64);
            prop_assert_eq!(counts.deltas, model.values().filter(|(d, _)| *d).count() as u64);
            prop_assert_eq!(counts.pending, model.values().map(|(_, to)| to.len() as u64).sum::<u64>());
        }
    }
}

#[test]
fn b_offline_a_edits_twice_b_returns_and_gets_both_in_order() {
    let (_dir, mut store, task, devices) = setup(1);
    let b = devices[0];
    store
        .set_connected(b, false, Some("198.18.0.2:7878"))
        .unwrap();
    store
        .record_changes(task, vec![Change::Create(entry("notes.txt", b"v1"))], &[b])
        .unwrap();
    store
        .record_changes(
            task,
            vec![Change::Modify {
                entry: entry("notes.txt", b"v2"),
                base: Some(ContentHash::of(b"v1")),
                delta: Some(b"d12".to_vec()),
            }],
            &[b],
        )
        .unwrap();
    store
        .record_changes(
            task,
            vec![Change::Modify {
                entry: entry("notes.txt", b"v3"),
                base: Some(ContentHash::of(b"v2")),
                delta: Some(b"d23".to_vec()),
            }],
            &[b],
        )
        .unwrap();
    let missing = store.missing_for(b).unwrap();
    assert_eq!(
        missing
            .iter()
            .map(|u| (u.mod_type, u.version))
            .collect::<Vec<_>>(),
        [
            (ModType::Create, 1),
            (ModType::Patch, 2),
            (ModType::Patch, 3)
        ]
    );
    assert_eq!(store.delta(missing[1].update).unwrap().unwrap(), b"d12");
    for u in &missing {
        store.mark_done(b, u.update).unwrap();
    }
    assert_eq!(store.counts().unwrap().deltas, 0);
    assert_eq!(store.counts().unwrap().updates, 0);
    let file = store
        .file(task, &RelPath::new("notes.txt").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(file.version, 3);
    assert_eq!(file.entry.hash, Some(ContentHash::of(b"v3")));
    let dev = store.device(b).unwrap().unwrap();
    assert_eq!(dev.last_address.as_deref(), Some("198.18.0.2:7878"));
    assert!(!dev.is_connected);
}

#[test]
fn folders_rename_and_delete_with_their_contents() {
    let (_dir, mut store, task, _) = setup(0);
    store
        .record_mapping(
            task,
            &[entry("a/x", b"1"), entry("a/y/z", b"2"), entry("ab", b"3")],
        )
        .unwrap();
    store
        .record_changes(
            task,
            vec![Change::Rename {
                from: RelPath::new("a").unwrap(),
                to: RelPath::new("b").unwrap(),
            }],
            &[],
        )
        .unwrap();
    let paths: Vec<String> = store
        .files(task)
        .unwrap()
        .iter()
        .map(|f| f.entry.path.to_string())
        .collect();
    assert_eq!(paths, ["ab", "b/x", "b/y/z"]);
    store
        .record_changes(task, vec![Change::Delete(RelPath::new("b").unwrap())], &[])
        .unwrap();
    let paths: Vec<String> = store
        .files(task)
        .unwrap()
        .iter()
        .map(|f| f.entry.path.to_string())
        .collect();
    assert_eq!(paths, ["ab"]);
    assert_eq!(
        store.counts().unwrap().updates,
        0,
        "nobody needed those updates"
    );
}

#[test]
fn unlinking_drops_pending_rows_and_unneeded_deltas() {
    let (_dir, mut store, task, devices) = setup(2);
    let change = Change::Modify {
        entry: entry("f", b"x"),
        base: None,
        delta: Some(vec![1]),
    };
    store.record_changes(task, vec![change], &devices).unwrap();
    store.remove_link(task, devices[0]).unwrap();
    assert_eq!(store.counts().unwrap().deltas, 1, "device 1 still needs it");
    assert!(
        store.device(devices[0]).unwrap().is_none(),
        "linked to nothing: forgotten"
    );
    store.remove_link(task, devices[1]).unwrap();
    assert_eq!(store.counts().unwrap().deltas, 0);
    assert_eq!(store.linked_devices(task).unwrap(), []);
}

#[test]
fn tasks_devices_and_errors() {
    let (dir, mut store, task, devices) = setup(1);
    assert_eq!(store.tasks().unwrap()[0].id, task);
    assert_eq!(store.tasks_of(devices[0]).unwrap(), [task]);
    let unknown = TaskId::random();
    assert!(matches!(
        store.record_changes(unknown, vec![], &[]),
        Err(qsync_store::StoreError::UnknownTask(_))
    ));
    assert!(matches!(
        store.add_link(unknown, devices[0], "x"),
        Err(qsync_store::StoreError::UnknownTask(_))
    ));
    assert!(store.set_connected(DeviceId::random(), true, None).is_err());
    store.set_connected(devices[0], true, None).unwrap();
    store.set_receiving_update(task, devices[0], true).unwrap();
    assert!(store.device(devices[0]).unwrap().unwrap().is_connected);
    store.remove_task(task).unwrap();
    assert!(store.tasks().unwrap().is_empty());
    assert!(store.linked_devices(task).unwrap().is_empty());

    let mode = std::fs::metadata(dir.path().join("state").join(DB_FILE))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the database holds link keys");
}

/// A reflink blob is a snapshot named by what it holds, or there is none (ext4): never a
/// blob whose name is not its content. (tests/reflink_xfs.rs checks the clone on XFS.)
#[test]
fn a_cloned_blob_holds_what_its_name_says_or_is_not_made() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(dir.path()).unwrap();
    let path = dir.path().join("file");
    std::fs::write(&path, b"content to clone").unwrap();
    let file = std::fs::File::open(&path).unwrap();
    match store.blobs().stage_clone(&file).unwrap() {
        None => {} // no reflinks on this file system: the caller copies
        Some((hash, staged)) => {
            assert_eq!(hash, ContentHash::of(b"content to clone"));
            staged.unwrap().publish().unwrap();
            let blob = std::fs::read(store.blobs().path(&hash)).unwrap();
            assert_eq!(blob, b"content to clone");
        }
    }
}

#[test]
fn blobs_are_content_addressed_and_swept_when_unreferenced() {
    let (dir, mut store, task, _) = setup(0);
    let kept = store.blobs().put(&b"kept content"[..]).unwrap();
    let orphan = store.blobs().put(&b"nobody refers to me"[..]).unwrap();
    assert_eq!(kept, ContentHash::of(b"kept content"));
    store
        .record_mapping(task, &[entry("k", b"kept content")])
        .unwrap();
    drop(store);
    let store = Store::open(&dir.path().join("state")).unwrap();
    assert!(store.blobs().contains(&kept));
    assert!(!store.blobs().contains(&orphan), "swept at open");
    let mut text = String::new();
    std::io::Read::read_to_string(&mut store.blobs().open_blob(&kept).unwrap(), &mut text).unwrap();
    assert_eq!(text, "kept content");
}

/// Run by `killed_mid_write_leaves_a_consistent_database` in a child process: records
/// batches of changes forever, until it is killed.
#[test]
#[ignore]
fn crash_child() {
    let Some(dir) = std::env::var_os("QSYNC_STORE_CRASH_DIR") else {
        return;
    };
    let mut store = Store::open(std::path::Path::new(&dir)).unwrap();
    let task = TaskId::from_bytes([1; 32]);
    let devices = [DeviceId::from_bytes([2; 32]), DeviceId::from_bytes([3; 32])];
    store.add_task(task, "/data".as_ref(), "crash").unwrap();
    for d in devices {
        store.add_link(task, d, "peer").unwrap();
    }
    let mut previous: Vec<UpdateId> = Vec::new();
    for batch in 0.. {
        let changes = (0..100)
            .map(|i| Change::Modify {
                entry: entry(&format!("b{batch}/f{i}"), &[batch as u8, i as u8]),
                base: None,
                delta: Some(vec![7; 512]),
            })
            .collect();
        let done = store.record_changes(task, changes, &devices).unwrap();
        store.mark_many_done(devices[0], &previous).unwrap();
        previous = done.iter().map(|u| u.update).collect();
        if batch == 0 {
            println!("ready");
        }
    }
}

#[test]
fn killed_mid_write_leaves_a_consistent_database() {
    for round in 0..3 {
        let dir = tempfile::tempdir().unwrap();
        let mut child = Command::new(std::env::current_exe().unwrap())
            .args([
                "--ignored",
                "--exact",
                "crash_child",
                "--nocapture",
                "--test-threads=1",
            ])
            .env("QSYNC_STORE_CRASH_DIR", dir.path())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let lines = BufReader::new(child.stdout.take().unwrap()).lines();
        for line in lines {
            if line.unwrap().contains("ready") {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(100 + 150 * round));
        child.kill().unwrap(); // SIGKILL
        child.wait().unwrap();

        let store = Store::open(dir.path()).unwrap();
        store.check_integrity().unwrap();
        let counts = store.counts().unwrap();
        let files = store.files(TaskId::from_bytes([1; 32])).unwrap().len() as u64;
        assert!(files >= 100, "at least the first batch landed");
        assert_eq!(files % 100, 0, "a batch is all or nothing");
        assert_eq!(counts.updates, files, "device 2 still needs every update");
        assert_eq!(counts.deltas, counts.updates, "no delta lost while needed");
        let d1 = store
            .missing_for(DeviceId::from_bytes([2; 32]))
            .unwrap()
            .len() as u64;
        assert_eq!(d1 % 100, 0, "acknowledgements are all or nothing");
        assert_eq!(counts.pending, counts.updates + d1);
    }
}

#[test]
fn later_content_updates_of_one_path_for_one_device() {
    let (_dir, mut store, task, devices) = setup(2);
    let (b, c) = (devices[0], devices[1]);
    let first = store
        .record_changes(task, vec![Change::Create(entry("f", b"1"))], &[b, c])
        .unwrap()[0]
        .update;
    let modify = |n: u8| Change::Modify {
        entry: entry("f", &[n]),
        base: None,
        delta: Some(vec![n]),
    };
    let second = store.record_changes(task, vec![modify(2)], &[b]).unwrap()[0].update;
    store
        .record_changes(task, vec![Change::Create(entry("other", b"x"))], &[b])
        .unwrap();
    let third = store
        .record_changes(task, vec![modify(3)], &[b, c])
        .unwrap()[0]
        .update;
    store
        .record_changes(task, vec![Change::Delete(RelPath::new("f").unwrap())], &[b])
        .unwrap();
    let f = RelPath::new("f").unwrap();
    assert_eq!(
        store.later_content_updates(b, task, &f, first).unwrap(),
        [second, third]
    );
    assert_eq!(
        store.later_content_updates(c, task, &f, first).unwrap(),
        [third]
    );
    assert_eq!(store.later_content_updates(b, task, &f, third).unwrap(), []);
}
