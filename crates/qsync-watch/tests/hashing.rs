//! Files hashed away from the index: the index's owner only stats, a file to read comes
//! back as a `ToHash`, and its hash is taken only if the file still is what was hashed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeSet, HashMap};
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use qsync_base::{ContentHash, RelPath};
use qsync_watch::{
    fold_hashed, observe_deferred, scan, Filter, Index, LocalEvent, Observed, ToHash, WatchBatch,
};

fn p(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

/// The batch a watcher would deliver for `touched` and `renames`.
fn batch(touched: &[&str], renames: &[(&str, &str)]) -> WatchBatch {
    WatchBatch::Changes {
        touched: touched.iter().map(|t| p(t)).collect::<BTreeSet<_>>(),
        renames: renames.iter().map(|(a, b)| (p(a), p(b))).collect(),
    }
}

/// Hash `files` as a hashing thread would, and fold the results in.
fn hash_and_fold(root: &Path, index: &mut Index, files: Vec<ToHash>) -> qsync_watch::Folded {
    let hashed = files.into_iter().map(|f| f.hash(root)).collect();
    fold_hashed(root, index, &Filter::for_root(root).unwrap(), hashed)
}

#[test]
fn a_file_written_again_while_it_was_hashed_is_hashed_again_never_recorded_stale() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("doc"), "first version").unwrap();
    let mut index = Index::default();

    // The index's owner only stats: the new file comes back to hash, nothing is recorded.
    let Observed {
        events, to_hash, ..
    } = observe_deferred(root, &mut index, &batch(&["doc"], &[])).unwrap();
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(to_hash.len(), 1);
    assert!(index.get(&p("doc")).is_none());

    // A hashing thread reads the first version; the person saves again before the result
    // is folded in (the same as while it was being read: the stat taken before reading
    // no longer matches).
    let hashed: Vec<_> = to_hash.into_iter().map(|f| f.hash(root)).collect();
    fs::write(root.join("doc"), "second version, longer").unwrap();
    let filter = Filter::for_root(root).unwrap();
    let folded = fold_hashed(root, &mut index, &filter, hashed);
    assert!(folded.events.is_empty(), "{:?}", folded.events);
    assert!(index.get(&p("doc")).is_none(), "recorded with a stale hash");
    assert_eq!(folded.to_hash.len(), 1, "handed back to hash again");

    let folded = hash_and_fold(root, &mut index, folded.to_hash);
    assert!(folded.to_hash.is_empty());
    let [LocalEvent::Create(entry)] = &folded.events[..] else {
        panic!("{:?}", folded.events)
    };
    assert_eq!(entry.hash, Some(ContentHash::of(b"second version, longer")));
    assert_eq!(index.get(&p("doc")).unwrap().hash, entry.hash);
}

#[test]
fn a_file_replaced_by_one_of_the_same_size_while_hashed_is_hashed_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("doc"), "aaaa").unwrap();
    let mut index = Index::new(scan(root, &HashMap::new()).unwrap());
    fs::write(root.join("doc"), "bbbb").unwrap();
    let observed = observe_deferred(root, &mut index, &batch(&["doc"], &[])).unwrap();
    // Until hashed, the index keeps what it knew.
    assert_eq!(
        index.get(&p("doc")).unwrap().hash,
        Some(ContentHash::of(b"aaaa"))
    );
    let hashed: Vec<_> = observed.to_hash.into_iter().map(|f| f.hash(root)).collect();
    // Saved aside and renamed over, as editors do: same size, another inode.
    fs::write(root.join("doc.tmp"), "cccc").unwrap();
    fs::rename(root.join("doc.tmp"), root.join("doc")).unwrap();
    let filter = Filter::for_root(root).unwrap();
    let folded = fold_hashed(root, &mut index, &filter, hashed);
    assert!(folded.events.is_empty(), "{:?}", folded.events);
    let folded = hash_and_fold(root, &mut index, folded.to_hash);
    assert!(
        matches!(&folded.events[..], [LocalEvent::Modify { entry, previous }]
            if entry.hash == Some(ContentHash::of(b"cccc"))
                && *previous == Some(ContentHash::of(b"aaaa"))),
        "{:?}",
        folded.events
    );
}

#[test]
fn a_renamed_file_waits_for_its_hash_with_its_old_path_and_is_told_as_a_rename() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("a"), "content").unwrap();
    fs::write(root.join("other"), "x").unwrap();
    let mut index = Index::new(scan(root, &HashMap::new()).unwrap());
    fs::rename(root.join("a"), root.join("b")).unwrap();
    fs::remove_file(root.join("other")).unwrap();
    let observed = observe_deferred(
        root,
        &mut index,
        &batch(&["a", "b", "other"], &[("a", "b")]),
    )
    .unwrap();
    // The deletion beside it is told now; the move waits for the hash.
    assert!(
        matches!(&observed.events[..], [LocalEvent::Delete { path, .. }] if *path == p("other")),
        "{:?}",
        observed.events
    );
    assert!(index.get(&p("a")).is_some());
    let folded = hash_and_fold(root, &mut index, observed.to_hash);
    assert_eq!(
        folded.events,
        [LocalEvent::Rename {
            from: p("a"),
            to: p("b")
        }]
    );
    assert!(index.get(&p("a")).is_none());
    assert_eq!(
        index.get(&p("b")).unwrap().hash,
        Some(ContentHash::of(b"content"))
    );
}

#[test]
fn a_huge_sparse_file_is_not_read_by_the_look() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let huge = fs::File::create(root.join("huge.bin")).unwrap();
    huge.set_len(64 << 30).unwrap();
    drop(huge);
    fs::write(root.join("small"), "small").unwrap();
    let mut index = Index::default();
    let started = Instant::now();
    let observed = observe_deferred(root, &mut index, &batch(&["huge.bin", "small"], &[])).unwrap();
    let took = started.elapsed();
    assert!(took < Duration::from_millis(100), "the look took {took:?}");
    let sizes: Vec<(&str, u64)> = observed
        .to_hash
        .iter()
        .map(|f| (f.path().as_str(), f.size()))
        .collect();
    assert_eq!(sizes, [("huge.bin", 64 << 30), ("small", 5)]);
}

#[test]
fn a_file_whose_folder_became_a_link_is_never_read_and_taken_as_gone() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("f"), "secret outside").unwrap();
    let root = dir.path();
    fs::create_dir(root.join("d")).unwrap();
    fs::write(root.join("d/f"), "inside").unwrap();
    let mut index = Index::new(scan(root, &HashMap::new()).unwrap());
    fs::write(root.join("d/f"), "inside, edited").unwrap();
    let observed = observe_deferred(root, &mut index, &batch(&["d/f"], &[])).unwrap();
    fs::remove_dir_all(root.join("d")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("d")).unwrap();
    let folded = hash_and_fold(root, &mut index, observed.to_hash);
    assert!(
        matches!(&folded.events[..], [LocalEvent::Delete { path, .. }] if *path == p("d/f")),
        "{:?}",
        folded.events
    );
    assert!(folded.to_hash.is_empty());
}

#[test]
fn a_file_written_all_the_time_is_hashed_a_few_times_then_left_to_its_next_event() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("log"), "0").unwrap();
    let mut index = Index::default();
    let filter = Filter::for_root(root).unwrap();
    let mut to_hash = observe_deferred(root, &mut index, &batch(&["log"], &[]))
        .unwrap()
        .to_hash;
    let mut hashed_times = 0;
    let mut line = String::from("0");
    while !to_hash.is_empty() {
        let hashed = to_hash.into_iter().map(|f| f.hash(root)).collect();
        hashed_times += 1;
        line.push('+');
        fs::write(root.join("log"), &line).unwrap();
        let folded = fold_hashed(root, &mut index, &filter, hashed);
        assert!(folded.events.is_empty(), "{:?}", folded.events);
        to_hash = folded.to_hash;
    }
    assert_eq!(hashed_times, qsync_watch::HASH_TRIES);
    assert!(index.get(&p("log")).is_none());
    // Its next change, reported by the watcher, starts again.
    let observed = observe_deferred(root, &mut index, &batch(&["log"], &[])).unwrap();
    let folded = hash_and_fold(root, &mut index, observed.to_hash);
    assert!(
        matches!(&folded.events[..], [LocalEvent::Create(e)] if e.size == line.len() as u64),
        "{:?}",
        folded.events
    );
}

/// Place `content` at `name` as the engine does: announced, written with an old time,
/// then stamped once in place. Returns the entry announced.
fn place_as_engine(root: &Path, index: &mut Index, name: &str, content: &[u8], mtime_ns: i64) {
    use std::os::unix::fs::MetadataExt;
    let entry = qsync_base::FileEntry {
        path: p(name),
        kind: qsync_base::EntryKind::File,
        size: content.len() as u64,
        mtime_ns,
        hash: Some(ContentHash::of(content)),
        mode: 0o644,
    };
    index.expect(p(name), Some(entry));
    fs::write(root.join(name), content).unwrap();
    let file = fs::File::options()
        .write(true)
        .open(root.join(name))
        .unwrap();
    file.set_modified(std::time::UNIX_EPOCH + Duration::from_nanos(mtime_ns as u64))
        .unwrap();
    let meta = file.metadata().unwrap();
    index.placed(
        p(name),
        (meta.dev(), meta.ino()),
        meta.ctime() * 1_000_000_000 + meta.ctime_nsec(),
    );
}

#[test]
fn a_file_the_engine_placed_is_not_read_again_when_the_watcher_sees_it() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut index = Index::default();
    // A time well before now, as a peer's file has.
    let old = 1_700_000_000_000_000_000;
    place_as_engine(root, &mut index, "photo", b"the bytes received", old);
    // Changed within the last moments, the file would be read again; placed and stamped,
    // its announced hash stands, and the announcement absorbs it.
    let Observed {
        events, to_hash, ..
    } = observe_deferred(root, &mut index, &batch(&["photo"], &[])).unwrap();
    assert!(to_hash.is_empty(), "read again: {to_hash:?}");
    assert!(events.is_empty(), "{events:?}");
    assert_eq!(
        index.get(&p("photo")).unwrap().hash,
        Some(ContentHash::of(b"the bytes received"))
    );
}

#[test]
fn a_file_written_after_its_placement_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut index = Index::default();
    let old = 1_700_000_000_000_000_000;
    place_as_engine(root, &mut index, "doc", b"received", old);
    // The person writes the same number of bytes at once: a new modification time (now),
    // whatever the status time says.
    fs::write(root.join("doc"), b"REWRITE!").unwrap();
    let observed = observe_deferred(root, &mut index, &batch(&["doc"], &[])).unwrap();
    assert_eq!(observed.to_hash.len(), 1, "taken for the placed content");
    let folded = hash_and_fold(root, &mut index, observed.to_hash);
    let [LocalEvent::Modify { entry, .. }] = &folded.events[..] else {
        panic!("{:?}", folded.events)
    };
    assert_eq!(entry.hash, Some(ContentHash::of(b"REWRITE!")));
}

#[test]
fn a_placed_file_whose_time_is_its_placement_time_is_read_again() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let mut index = Index::default();
    // A peer's file written a moment ago: its time is within a tick of the placement, as
    // a write here after the placement would be; the stamp does not stand for it.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    place_as_engine(root, &mut index, "live", b"just saved", now);
    let observed = observe_deferred(root, &mut index, &batch(&["live"], &[])).unwrap();
    assert_eq!(observed.to_hash.len(), 1);
}
