//! Cases where the index once hid a change of the person's (each found by the sync
//! simulator in qsync-core, which drives real cores through this index).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use qsync_base::{ContentHash, EntryKind, FileEntry, RelPath};
use qsync_watch::{Index, LocalEvent};

fn path(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn file(p: &str, content: u8, mode: u32) -> FileEntry {
    FileEntry {
        path: path(p),
        kind: EntryKind::File,
        size: 1,
        mtime_ns: 0,
        hash: Some(ContentHash::of(&[content])),
        mode,
    }
}

fn folder(p: &str) -> FileEntry {
    FileEntry {
        path: path(p),
        kind: EntryKind::Folder,
        size: 0,
        mtime_ns: 0,
        hash: None,
        mode: 0o755,
    }
}

fn deleted(events: &[LocalEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            LocalEvent::Delete { path, .. } => Some(path.to_string()),
            _ => None,
        })
        .collect()
}

fn created(events: &[LocalEvent]) -> Vec<String> {
    events
        .iter()
        .filter_map(|e| match e {
            LocalEvent::Create(entry) => Some(entry.path.to_string()),
            _ => None,
        })
        .collect()
}

#[test]
fn an_engine_write_deleted_before_any_event_is_reported_deleted() {
    let mut index = Index::new(vec![]);
    index.expect(path("d"), Some(folder("d")));
    index.expect(path("d/x"), Some(file("d/x", 1, 0o644)));
    // The person removed both before the watcher looked: a rescan must say so.
    let events = index.reconcile(vec![]);
    assert_eq!(deleted(&events), ["d"]);
}

#[test]
fn a_subfolder_moved_out_before_the_engine_removed_its_empty_parent_is_reported() {
    let mut index = Index::new(vec![folder("c"), folder("c/a")]);
    // The person moves c/a to b/b; then the engine removes c, which it found empty.
    index.expect_removed(path("c"));
    let events = index.reconcile(vec![folder("b"), folder("b/b")]);
    assert_eq!(deleted(&events), ["c/a"]);
    assert_eq!(created(&events), ["b", "b/b"]);
}

#[test]
fn what_the_person_makes_where_an_engine_write_went_away_is_reported() {
    let mut index = Index::new(vec![folder("a")]);
    index.expect(path("a/b"), Some(folder("a/b")));
    index.expect(path("a/b/f"), Some(file("a/b/f", 1, 0o644)));
    // The person deletes a (with what the engine wrote in it) before any event...
    let events = index.reconcile(vec![]);
    assert_eq!(deleted(&events), ["a"]);
    // ...then makes a/b again: it is the person's, not the engine's.
    let events = index.reconcile(vec![folder("a"), folder("a/b"), file("a/b/g", 2, 0o644)]);
    assert_eq!(created(&events), ["a", "a/b", "a/b/g"]);
}

#[test]
fn a_mode_change_alone_is_a_change_and_an_unknown_mode_matches_any() {
    let mut index = Index::new(vec![file("run.sh", 1, 0o644), file("old", 2, 0)]);
    let events = index.reconcile(vec![file("run.sh", 1, 0o755), file("old", 2, 0o600)]);
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(matches!(&events[0], LocalEvent::Modify { entry, .. } if entry.mode == 0o755));
}

#[test]
fn newly_ignored_paths_are_forgotten_without_events() {
    let mut index = Index::new(vec![
        folder("logs"),
        file("logs/a.log", 1, 0o644),
        file("notes", 2, 0o644),
    ]);
    index.expect(path("logs/b.log"), Some(file("logs/b.log", 3, 0o644)));
    let forgotten = index.forget_where(|p, _| p.as_str() == "logs" || p.as_str() == "logs/b.log");
    assert_eq!(forgotten.len(), 2);
    let events = index.reconcile(vec![file("notes", 2, 0o644)]);
    assert!(events.is_empty(), "{events:?}");
}

#[test]
fn a_write_that_failed_is_withdrawn_and_its_absence_is_no_deletion() {
    let mut index = Index::new(vec![]);
    index.expect(path("f"), Some(file("f", 1, 0o644)));
    index.withdraw(&path("f"));
    assert!(index.reconcile(vec![]).is_empty());
}

#[test]
fn what_the_engine_wrote_at_a_path_ignored_here_is_forgotten_with_it() {
    let mut index = Index::new(vec![]);
    index.expect(path("cache/x"), Some(file("cache/x", 1, 0o644)));
    index.forget_where(|p, _| p.as_str().starts_with("cache"));
    // The scan leaves ignored paths out: that is no deletion.
    assert!(index.reconcile(vec![]).is_empty());
}
