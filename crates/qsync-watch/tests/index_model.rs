//! The index as a state machine: whatever happens on disk, replaying its events on a copy
//! reproduces the disk; the engine's own writes produce no events.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;

use proptest::prelude::*;
use qsync_base::{ContentHash, EntryKind, FileEntry, RelPath};
use qsync_watch::{Index, LocalEvent};

type Disk = BTreeMap<RelPath, FileEntry>;

fn path(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

fn file(p: &RelPath, content: u8) -> FileEntry {
    FileEntry {
        path: p.clone(),
        kind: EntryKind::File,
        size: 1,
        mtime_ns: i64::from(content),
        hash: Some(ContentHash::of(&[content])),
        mode: 0o644,
    }
}

const NAMES: [&str; 6] = ["a", "b", "d/x", "d/y", "e/z", ".tmp"];

#[derive(Debug, Clone)]
enum Op {
    Write(usize, u8),
    Delete(usize),
    Rename(usize, usize),
    /// The engine applies a remote write (announced with `expect`).
    Remote(usize, u8),
    /// The watcher delivers what happened since the last flush.
    Flush,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..NAMES.len(), any::<u8>()).prop_map(|(i, c)| Op::Write(i, c)),
        (0..NAMES.len()).prop_map(Op::Delete),
        (0..NAMES.len(), 0..NAMES.len()).prop_map(|(a, b)| Op::Rename(a, b)),
        (0..NAMES.len(), any::<u8>()).prop_map(|(i, c)| Op::Remote(i, c)),
        Just(Op::Flush),
    ]
}

fn apply(replica: &mut Disk, event: &LocalEvent) {
    match event {
        LocalEvent::Create(e) | LocalEvent::Modify { entry: e, .. } => {
            replica.insert(e.path.clone(), e.clone());
        }
        LocalEvent::Delete { path, .. } => replica.retain(|p, _| !p.starts_with(path)),
        LocalEvent::Rename { from, to } => {
            let moved: Vec<FileEntry> = replica
                .values()
                .filter(|e| e.path.starts_with(from))
                .cloned()
                .collect();
            replica.retain(|p, _| !p.starts_with(from) && !p.starts_with(to));
            for mut e in moved {
                let new =
                    RelPath::new(format!("{}{}", to, &e.path.as_str()[from.as_str().len()..]))
                        .unwrap();
                e.path = new.clone();
                replica.insert(new, e);
            }
        }
    }
}

/// Files only (folders are implied), so the disk is a map of file paths.
fn observe_all(disk: &Disk, touched: &[RelPath]) -> Vec<(RelPath, Option<FileEntry>)> {
    touched
        .iter()
        .map(|p| (p.clone(), disk.get(p).cloned()))
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replaying_events_reproduces_the_disk(ops in proptest::collection::vec(op(), 1..40)) {
        let mut disk = Disk::new();
        let mut index = Index::new(vec![]);
        // What the peers know: local events replayed, remote writes applied at the source.
        let mut replica = Disk::new();
        let mut touched: Vec<RelPath> = Vec::new();
        let mut renames: Vec<(RelPath, RelPath)> = Vec::new();
        for op in ops {
            match op {
                Op::Write(i, c) => {
                    let p = path(NAMES[i]);
                    disk.insert(p.clone(), file(&p, c));
                    touched.push(p);
                }
                Op::Delete(i) => {
                    let p = path(NAMES[i]);
                    disk.remove(&p);
                    touched.push(p);
                }
                Op::Rename(a, b) => {
                    let (from, to) = (path(NAMES[a]), path(NAMES[b]));
                    if from != to {
                        if let Some(mut e) = disk.remove(&from) {
                            e.path = to.clone();
                            disk.insert(to.clone(), e);
                            renames.push((from.clone(), to.clone()));
                            touched.push(from);
                            touched.push(to);
                        }
                    }
                }
                Op::Remote(i, c) => {
                    let p = path(NAMES[i]);
                    let e = file(&p, c);
                    index.expect(p.clone(), Some(e.clone()));
                    disk.insert(p.clone(), e.clone());
                    replica.insert(p.clone(), e);
                    touched.push(p);
                }
                Op::Flush => {
                    let events = index.observe(&renames, observe_all(&disk, &touched));
                    for e in &events {
                        apply(&mut replica, e);
                    }
                    touched.clear();
                    renames.clear();
                    prop_assert_eq!(&replica, &disk);
                    let believed: Disk = index.entries().map(|e| (e.path.clone(), e.clone())).collect();
                    prop_assert_eq!(&believed, &disk);
                }
            }
        }
    }
}

#[test]
fn engine_writes_are_silent_and_a_concurrent_local_edit_is_not_lost() {
    let p = path("notes.txt");
    let mut index = Index::new(vec![file(&p, 1)]);
    index.expect(p.clone(), Some(file(&p, 2)));
    assert_eq!(index.observe(&[], vec![(p.clone(), Some(file(&p, 2)))]), []);

    // The engine writes 3, but the person saved 4 meanwhile: reported.
    index.expect(p.clone(), Some(file(&p, 3)));
    let events = index.observe(&[], vec![(p.clone(), Some(file(&p, 4)))]);
    assert!(
        matches!(&events[..], [LocalEvent::Modify { entry, .. }] if entry.hash == file(&p, 4).hash)
    );
}

#[test]
fn save_through_a_temporary_file_is_one_modify() {
    let (real, temp) = (path("doc.txt"), path(".doc.txt.swp"));
    let mut index = Index::new(vec![file(&real, 1)]);
    let events = index.observe(
        &[(temp.clone(), real.clone())],
        vec![(temp, None), (real.clone(), Some(file(&real, 2)))],
    );
    assert!(
        matches!(&events[..], [LocalEvent::Modify { entry, .. }] if entry.path == real),
        "{events:?}"
    );
}
