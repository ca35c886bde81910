//! Mapping and watching real temporary folders.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::fs;
use std::path::Path;
use std::sync::mpsc::Receiver;
use std::time::{Duration, Instant};

use qsync_base::{ContentHash, EntryKind, RelPath};
use qsync_watch::{observe, scan, Index, LocalEvent, TaskWatcher, WatchBatch};

fn p(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

/// Collect and fold batches until nothing arrives for `quiet`.
fn drain(
    root: &Path,
    index: &mut Index,
    rx: &Receiver<WatchBatch>,
    quiet: Duration,
) -> Vec<LocalEvent> {
    let mut events = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while let Ok(batch) = rx.recv_timeout(quiet) {
        events.extend(observe(root, index, &batch).unwrap());
        assert!(Instant::now() < deadline, "events never settled");
    }
    events
}

fn start(root: &Path) -> (TaskWatcher, Receiver<WatchBatch>, Index) {
    let index = Index::new(scan(root, &HashMap::new()).unwrap());
    let (watcher, rx) = TaskWatcher::start(root, Duration::from_millis(150)).unwrap();
    (watcher, rx, index)
}

const QUIET: Duration = Duration::from_millis(1200);

fn assert_index_matches_disk(root: &Path, index: &Index) {
    let disk = scan(root, &HashMap::new()).unwrap();
    let believed: Vec<_> = index.entries().cloned().collect();
    let strip = |v: &[qsync_base::FileEntry]| {
        v.iter()
            .map(|e| (e.path.clone(), e.kind, e.hash))
            .collect::<Vec<_>>()
    };
    assert_eq!(strip(&believed), strip(&disk));
}

#[test]
fn scan_records_everything_but_ignored_and_own_temp_files_and_never_follows_links() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("secret"), "outside the root").unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("a/b")).unwrap();
    fs::write(root.join("a/b/c.txt"), "c").unwrap();
    fs::write(root.join("empty"), "").unwrap();
    fs::write(root.join(".hidden"), "synced too").unwrap();
    fs::write(root.join("build.log"), "ignored").unwrap();
    fs::create_dir(root.join("target")).unwrap();
    fs::write(root.join("target/x"), "ignored").unwrap();
    fs::write(root.join(".qsync-tmp-123"), "ours").unwrap();
    fs::write(root.join(".qsyncignore"), "*.log\ntarget/\n").unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("link")).unwrap();

    let entries = scan(root, &HashMap::new()).unwrap();
    let paths: Vec<&str> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(
        paths,
        [
            ".hidden",
            ".qsyncignore",
            "a",
            "a/b",
            "a/b/c.txt",
            "empty",
            "link"
        ]
    );
    let link = entries.iter().find(|e| e.path.as_str() == "link").unwrap();
    assert_eq!(link.kind, EntryKind::Symlink);
    assert_eq!(
        link.hash,
        Some(ContentHash::of(
            outside.path().as_os_str().as_encoded_bytes()
        ))
    );
    let c = entries
        .iter()
        .find(|e| e.path.as_str() == "a/b/c.txt")
        .unwrap();
    assert_eq!((c.size, c.hash), (1, Some(ContentHash::of(b"c"))));

    // The hash cache: same size and mtime means the cached hash is trusted, but only once
    // the file has not changed status for two seconds (time stamps are coarse: two
    // versions of one size written in one tick look alike).
    let mut cache: HashMap<RelPath, _> = entries
        .iter()
        .map(|e| (e.path.clone(), e.clone()))
        .collect();
    let fake = ContentHash::of(b"cached");
    cache.get_mut(&p("a/b/c.txt")).unwrap().hash = Some(fake);
    let hash_of_c = |cache: &HashMap<RelPath, _>| {
        scan(root, cache)
            .unwrap()
            .iter()
            .find(|e| e.path.as_str() == "a/b/c.txt")
            .unwrap()
            .hash
    };
    assert_eq!(
        hash_of_c(&cache),
        Some(ContentHash::of(b"c")),
        "just written"
    );
    std::thread::sleep(Duration::from_millis(2100));
    assert_eq!(hash_of_c(&cache), Some(fake), "settled");
}

#[test]
fn each_event_kind_and_moves_across_folders() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("from")).unwrap();
    fs::create_dir_all(root.join("to")).unwrap();
    fs::write(root.join("from/moved.txt"), "moving").unwrap();
    fs::write(root.join("doomed.txt"), "bye").unwrap();
    fs::write(root.join("edited.txt"), "v1").unwrap();
    let (_w, rx, mut index) = start(root);

    fs::write(root.join("new.txt"), "hello").unwrap();
    fs::write(root.join("edited.txt"), "v2 longer").unwrap();
    fs::remove_file(root.join("doomed.txt")).unwrap();
    fs::rename(root.join("from/moved.txt"), root.join("to/moved.txt")).unwrap();
    let events = drain(root, &mut index, &rx, QUIET);

    assert!(
        events.contains(&LocalEvent::Rename {
            from: p("from/moved.txt"),
            to: p("to/moved.txt")
        }),
        "{events:#?}"
    );
    assert!(events
        .iter()
        .any(|e| matches!(e, LocalEvent::Create(f) if f.path.as_str() == "new.txt")));
    assert!(events.iter().any(
        |e| matches!(e, LocalEvent::Modify { entry, .. } if entry.path.as_str() == "edited.txt")
    ));
    assert!(events
        .iter()
        .any(|e| matches!(e, LocalEvent::Delete { path, .. } if path.as_str() == "doomed.txt")));
    assert_eq!(events.len(), 4, "{events:#?}");
    assert_index_matches_disk(root, &index);
}

#[test]
fn nested_folders_created_and_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (_w, rx, mut index) = start(root);
    fs::create_dir_all(root.join("x/y/z")).unwrap();
    for f in ["x/1", "x/y/2", "x/y/z/3"] {
        fs::write(root.join(f), f).unwrap();
    }
    let events = drain(root, &mut index, &rx, QUIET);
    let created: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            LocalEvent::Create(f) => Some(f.path.as_str()),
            _ => None,
        })
        .collect();
    for want in ["x", "x/y", "x/y/z", "x/1", "x/y/2", "x/y/z/3"] {
        assert!(created.contains(&want), "{want} missing from {created:?}");
    }
    assert_index_matches_disk(root, &index);

    fs::remove_dir_all(root.join("x")).unwrap();
    let events = drain(root, &mut index, &rx, QUIET);
    assert!(
        events.contains(&LocalEvent::Delete {
            path: p("x"),
            kind: EntryKind::Folder,
            previous: None
        }),
        "{events:#?}"
    );
    assert!(events
        .iter()
        .all(|e| matches!(e, LocalEvent::Delete { .. })));
    assert_index_matches_disk(root, &index);
}

#[test]
fn editor_save_through_a_temporary_file_is_one_modify() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("doc.txt"), "first draft").unwrap();
    let (_w, rx, mut index) = start(root);
    fs::write(root.join(".doc.txt.swp"), "second draft").unwrap();
    fs::rename(root.join(".doc.txt.swp"), root.join("doc.txt")).unwrap();
    let events = drain(root, &mut index, &rx, QUIET);
    assert!(
        matches!(&events[..], [LocalEvent::Modify { entry, previous }]
            if entry.path.as_str() == "doc.txt" && *previous == Some(ContentHash::of(b"first draft"))),
        "{events:#?}"
    );
}

#[test]
fn the_engine_writes_are_not_echoed_but_a_concurrent_edit_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("a.txt"), "old").unwrap();
    fs::write(root.join("b.txt"), "old").unwrap();
    let (_w, rx, mut index) = start(root);

    // The engine applies remote updates to a.txt and b.txt...
    for name in ["a.txt", "b.txt"] {
        let mut entry = index.get(&p(name)).unwrap().clone();
        entry.hash = Some(ContentHash::of(b"remote"));
        entry.size = 6;
        index.expect(p(name), Some(entry));
        fs::write(root.join(name), "remote").unwrap();
    }
    // ...while the person edits b.txt.
    fs::write(root.join("b.txt"), "person's edit").unwrap();
    let events = drain(root, &mut index, &rx, QUIET);
    assert!(
        matches!(&events[..], [LocalEvent::Modify { entry, .. }] if entry.path.as_str() == "b.txt"),
        "{events:#?}"
    );
}

#[test]
fn a_burst_of_ten_thousand_files_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (_w, rx, mut index) = start(root);
    fs::create_dir(root.join("burst")).unwrap();
    for i in 0..10_000 {
        fs::write(root.join(format!("burst/f{i:05}")), i.to_string()).unwrap();
    }
    let events = drain(root, &mut index, &rx, Duration::from_secs(3));
    let creates = events
        .iter()
        .filter(|e| matches!(e, LocalEvent::Create(_)))
        .count();
    assert_eq!(creates, 10_001, "the folder and every file");
    assert_index_matches_disk(root, &index);
}

#[test]
fn a_rescan_request_reconciles_with_the_disk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("kept"), "k").unwrap();
    fs::write(root.join("gone"), "g").unwrap();
    let mut index = Index::new(scan(root, &HashMap::new()).unwrap());
    fs::remove_file(root.join("gone")).unwrap();
    fs::write(root.join("appeared"), "a").unwrap();
    let events = observe(
        root,
        &mut index,
        &WatchBatch::Rescan {
            reason: "test".into(),
        },
    )
    .unwrap();
    assert_eq!(events.len(), 2, "{events:#?}");
    assert_index_matches_disk(root, &index);
}

/// The mapping goal: 100,000 files in under 5 s with hashes cached by (size, mtime).
/// `cargo test -p qsync-watch --release -- --ignored scan_100k --nocapture`
#[test]
#[ignore]
fn scan_100k() {
    let dir = tempfile::tempdir().unwrap();
    for d in 0..100 {
        fs::create_dir(dir.path().join(format!("d{d}"))).unwrap();
        for f in 0..1000 {
            fs::write(dir.path().join(format!("d{d}/f{f}")), format!("{d}/{f}")).unwrap();
        }
    }
    let t = Instant::now();
    let first = scan(dir.path(), &HashMap::new()).unwrap();
    let cold = t.elapsed();
    let cache: HashMap<_, _> = first.into_iter().map(|e| (e.path.clone(), e)).collect();
    let t = Instant::now();
    let second = scan(dir.path(), &cache).unwrap();
    let warm = t.elapsed();
    println!(
        "scan of {} entries: {cold:?} hashing everything, {warm:?} with cached hashes",
        second.len()
    );
    assert!(warm < Duration::from_secs(5));
}

/// A folder named by an event is walked: a path the index knows under it and no longer on
/// disk is reported deleted, but one `.qsyncignore` now excludes only stops syncing (it
/// used to be reported deleted, and peers deleted it).
#[test]
fn a_walked_folder_reports_what_is_gone_but_not_what_is_ignored() {
    use std::collections::BTreeSet;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir_all(root.join("d")).unwrap();
    fs::write(root.join("d/kept.txt"), "k").unwrap();
    fs::write(root.join("d/gone.txt"), "g").unwrap();
    fs::write(root.join("d/ignored.log"), "i").unwrap();
    let mut index = Index::new(scan(root, &HashMap::new()).unwrap());
    fs::remove_file(root.join("d/gone.txt")).unwrap();
    fs::write(root.join(".qsyncignore"), "*.log\n").unwrap();
    let batch = WatchBatch::Changes {
        touched: BTreeSet::from([p("d")]),
        renames: Vec::new(),
    };
    let events = observe(root, &mut index, &batch).unwrap();
    let deleted: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            LocalEvent::Delete { path, .. } => Some(path.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(deleted, ["d/gone.txt"], "{events:?}");
    assert!(index.get(&p("d/kept.txt")).is_some());
}

/// A file closed after writing is reported as soon as it is quiet a moment, not after the
/// whole debounce period; a second save right after is reported early too, once quiet
/// twice as long, and a writer that saves in a loop ends up waiting the whole period; a
/// path touched by another event after its close waits the period too.
#[test]
fn a_file_closed_after_writing_is_reported_early_and_a_loop_is_debounced() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let period = Duration::from_secs(3);
    let (_w, rx) = TaskWatcher::start(root, period).unwrap();
    let t = Instant::now();
    fs::write(root.join("saved.txt"), "done").unwrap();
    let batch = rx.recv_timeout(period).expect("reported before the period");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    assert_eq!(
        batch,
        WatchBatch::Changes {
            touched: [p("saved.txt")].into(),
            renames: vec![]
        }
    );
    let t = Instant::now();
    fs::write(root.join("saved.txt"), "again").unwrap();
    rx.recv_timeout(period).expect("reported before the period");
    assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
    // Saved again and again as soon as it is reported: each early report needs twice the
    // quiet of the one before, until the whole period.
    let mut waits = Vec::new();
    for i in 0..8 {
        let t = Instant::now();
        fs::write(root.join("saved.txt"), format!("loop {i}")).unwrap();
        rx.recv_timeout(2 * period).expect("reported");
        waits.push(t.elapsed());
    }
    assert!(waits[0] < Duration::from_secs(1), "{waits:?}");
    assert!(waits[7] >= period, "a save loop is debounced: {waits:?}");

    // Written, closed, then renamed at once (an editor's temporary file): the whole period.
    let t = Instant::now();
    fs::write(root.join(".tmp-save"), "draft").unwrap();
    fs::rename(root.join(".tmp-save"), root.join("doc.txt")).unwrap();
    rx.recv_timeout(2 * period)
        .expect("reported after the period");
    assert!(t.elapsed() >= period, "{:?}", t.elapsed());
}

/// A settled file or folder renamed (a person's `mv`) is reported as soon as it is seen,
/// not after the whole debounce period: a rename is whole when it happens.
#[test]
fn a_settled_file_or_folder_renamed_is_reported_early() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("film.bin"), "settled").unwrap();
    fs::create_dir(root.join("photos")).unwrap();
    fs::write(root.join("photos/a.jpg"), "a").unwrap();
    let period = Duration::from_secs(3);
    let (_w, rx) = TaskWatcher::start(root, period).unwrap();
    for (from, to) in [("film.bin", "movie.bin"), ("photos", "album")] {
        let t = Instant::now();
        fs::rename(root.join(from), root.join(to)).unwrap();
        let batch = rx.recv_timeout(period).expect("reported before the period");
        assert!(t.elapsed() < Duration::from_secs(1), "{:?}", t.elapsed());
        let WatchBatch::Changes { touched, .. } = batch else {
            panic!("{batch:?}")
        };
        assert!(touched.contains(&p(to)), "{touched:?}");
    }
}

/// A file written and still open (its writer held up, say) is not reported after the
/// period: only once closed, or once quiet for `UNCLOSED_QUIET`.
#[test]
fn a_file_still_open_for_writing_waits_for_its_close() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let period = Duration::from_millis(150);
    let (_w, rx) = TaskWatcher::start(root, period).unwrap();
    let mut file = fs::File::create(root.join("big.bin")).unwrap();
    file.write_all(b"the first half").unwrap();
    assert!(
        rx.recv_timeout(4 * period).is_err(),
        "a file still being written is not reported after the period"
    );
    let t = Instant::now();
    file.write_all(b" and the rest").unwrap();
    drop(file);
    rx.recv_timeout(period).expect("reported once closed");
    assert!(t.elapsed() < period, "{:?}", t.elapsed());

    // A writer that never closes is reported once it has stopped for long enough.
    let mut file = fs::OpenOptions::new()
        .append(true)
        .open(root.join("big.bin"))
        .unwrap();
    file.write_all(b", then more").unwrap();
    let t = Instant::now();
    rx.recv_timeout(4 * qsync_watch::UNCLOSED_QUIET)
        .expect("reported while still open");
    assert!(
        t.elapsed() >= qsync_watch::UNCLOSED_QUIET,
        "{:?}",
        t.elapsed()
    );
    drop(file);
}

/// A writer that keeps its file open and writes every 300 ms (a database committing) never
/// stays quiet for `UNCLOSED_QUIET`: it is reported once it has waited `OPEN_AT_MOST`.
#[test]
fn a_file_held_open_and_written_often_is_reported_after_a_while() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let (_w, rx) = TaskWatcher::start(root, Duration::from_millis(150)).unwrap();
    let mut file = fs::File::create(root.join("db")).unwrap();
    let t = Instant::now();
    let reported = loop {
        file.write_all(b"commit").unwrap();
        if rx.recv_timeout(Duration::from_millis(300)).is_ok() {
            break t.elapsed();
        }
        assert!(
            t.elapsed() < 3 * qsync_watch::OPEN_AT_MOST,
            "never reported"
        );
    };
    assert!(reported >= qsync_watch::OPEN_AT_MOST, "{reported:?}");
}

/// A link to a folder outside (a peer may sync one) is a link: the watcher does not watch
/// what it points to, so files there never become the task's.
#[test]
fn a_link_to_a_folder_outside_is_not_watched_through() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    let root = dir.path();
    std::os::unix::fs::symlink(outside.path(), root.join("away")).unwrap();
    let (_w, rx, mut index) = start(root);
    fs::write(outside.path().join("secret"), b"x").unwrap();
    fs::write(root.join("here"), b"y").unwrap();
    let events = drain(root, &mut index, &rx, Duration::from_millis(800));
    let paths: Vec<String> = index.entries().map(|e| e.path.to_string()).collect();
    assert_eq!(paths, ["away", "here"], "{events:?}");
}
