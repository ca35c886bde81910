//! Streamed walks: entries come in bounded chunks while the walk goes on, what changed
//! between the walk and the fold is taken as the disk shows it then, what the walk did not
//! find is looked at again, and a walk stopped early takes nothing for deleted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::fs;
use std::sync::Mutex;

use qsync_base::RelPath;
use qsync_watch::{
    fold_walked, hash_now, look_again, walk_now, Filter, Index, LocalEvent, WalkPlan, WatchError,
    CHUNK_ENTRIES,
};

fn p(s: &str) -> RelPath {
    RelPath::new(s).unwrap()
}

#[test]
fn a_big_folder_comes_in_bounded_chunks_each_folder_before_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    for d in 0..5 {
        fs::create_dir(root.join(format!("d{d}"))).unwrap();
        for f in 0..300 {
            fs::write(root.join(format!("d{d}/f{f}")), format!("{d}/{f}")).unwrap();
        }
    }
    let index = Index::default();
    let plan = WalkPlan::new(&index, None, Filter::for_root(root).unwrap());
    let chunks = Mutex::new(Vec::new());
    let end = plan
        .run(root, &|chunk| {
            chunks.lock().unwrap().push(chunk);
            true
        })
        .unwrap();
    let chunks = chunks.into_inner().unwrap();
    assert_eq!(end.found, 1505);
    assert!(
        chunks.len() >= 1505 / CHUNK_ENTRIES,
        "{} chunks",
        chunks.len()
    );
    assert!(chunks.iter().all(|c| c.len() <= CHUNK_ENTRIES));
    // Folded in order, no file comes before its folder.
    let mut index = Index::default();
    let filter = Filter::for_root(root).unwrap();
    let mut seen = std::collections::HashSet::new();
    for chunk in chunks {
        for event in fold_walked(root, &mut index, &filter, chunk).events {
            let LocalEvent::Create(entry) = event else {
                panic!("{event:?}")
            };
            if let Some(parent) = entry.path.parent() {
                assert!(seen.contains(&parent), "{} before its folder", entry.path);
            }
            seen.insert(entry.path);
        }
    }
    assert_eq!(seen.len(), 1505);
}

/// The chunks of a walk of the whole of `root`, from an empty index, not folded in yet.
fn walked_chunks(root: &std::path::Path) -> Vec<Vec<qsync_watch::Walked>> {
    let plan = WalkPlan::new(&Index::default(), None, Filter::for_root(root).unwrap());
    let chunks = Mutex::new(Vec::new());
    plan.run(root, &|chunk| {
        chunks.lock().unwrap().push(chunk);
        true
    })
    .unwrap();
    chunks.into_inner().unwrap()
}

#[test]
fn what_changed_after_the_walk_saw_it_is_taken_as_it_is_now() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("edited"), "old").unwrap();
    fs::write(root.join("removed"), "x").unwrap();
    fs::write(root.join("kept"), "same").unwrap();
    let chunks = walked_chunks(root);
    // Between the walk and the fold, on the engine's thread: one file edited (another
    // inode: written aside and renamed over, as editors do), one removed.
    fs::write(root.join("edited.tmp"), "new content").unwrap();
    fs::rename(root.join("edited.tmp"), root.join("edited")).unwrap();
    fs::remove_file(root.join("removed")).unwrap();
    let mut index = Index::default();
    let filter = Filter::for_root(root).unwrap();
    let mut to_hash = Vec::new();
    for chunk in chunks {
        to_hash.extend(fold_walked(root, &mut index, &filter, chunk).to_hash);
    }
    // The fold reads no file: the edited one waits to be hashed again.
    assert_eq!(
        to_hash
            .iter()
            .map(|f| f.path().as_str())
            .collect::<Vec<_>>(),
        ["edited"]
    );
    assert!(index.get(&p("edited")).is_none());
    hash_now(root, &mut index, &filter, to_hash);
    let edited = index.get(&p("edited")).unwrap();
    assert_eq!(edited.size, 11);
    assert_eq!(
        edited.hash,
        Some(qsync_base::ContentHash::of(b"new content"))
    );
    assert!(index.get(&p("removed")).is_none());
    assert_eq!(index.get(&p("kept")).unwrap().size, 4);
}

#[test]
fn what_the_walk_did_not_find_is_deleted_but_only_after_a_whole_walk() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir(root.join("d")).unwrap();
    for f in 0..600 {
        fs::write(root.join(format!("d/f{f}")), "x").unwrap();
    }
    let mut index = Index::default();
    let plan = WalkPlan::new(&index, None, Filter::for_root(root).unwrap());
    walk_now(root, &mut index, plan).unwrap();
    assert_eq!(index.entries().count(), 601);
    fs::remove_file(root.join("d/f7")).unwrap();

    // A walk stopped after its first chunk says nothing about the rest.
    let plan = WalkPlan::new(&index, None, Filter::for_root(root).unwrap());
    let stopped = plan.run(root, &|_| false);
    assert!(matches!(stopped, Err(WatchError::Stopped)), "{stopped:?}");
    assert!(index.get(&p("d/f7")).is_some());

    // A whole walk names it, and a look again finds it gone.
    let plan = WalkPlan::new(&index, Some(&p("d")), Filter::for_root(root).unwrap());
    let end = plan.run(root, &|_| true).unwrap();
    assert_eq!(end.unseen, vec![p("d/f7")]);
    let filter = Filter::for_root(root).unwrap();
    let events = look_again(root, &mut index, &filter, end.unseen).events;
    assert!(
        matches!(&events[..], [LocalEvent::Delete { path, .. }] if *path == p("d/f7")),
        "{events:?}"
    );
}

/// Walked into an index, every event of it.
fn walked(root: &std::path::Path, index: &mut Index, start: Option<&RelPath>) -> Vec<LocalEvent> {
    let plan = WalkPlan::new(index, start, Filter::for_root(root).unwrap());
    walk_now(root, index, plan).unwrap().0
}

#[test]
fn what_qsyncignore_came_to_exclude_during_a_walk_is_not_folded_in() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::create_dir(root.join("node_modules")).unwrap();
    fs::write(root.join("node_modules/big.js"), "x").unwrap();
    fs::write(root.join("kept"), "x").unwrap();
    let chunks = walked_chunks(root);
    // The person excludes the folder while the walk's chunks wait for the engine.
    fs::write(root.join(".qsyncignore"), "node_modules/\n").unwrap();
    let filter = Filter::for_root(root).unwrap();
    let mut index = Index::default();
    for chunk in chunks {
        let folded = fold_walked(root, &mut index, &filter, chunk);
        assert!(folded.to_hash.is_empty(), "{folded:?}");
    }
    assert!(index.get(&p("kept")).is_some());
    assert!(index.get(&p("node_modules")).is_none());
    assert!(index.get(&p("node_modules/big.js")).is_none());
}

#[test]
fn a_folder_that_became_a_link_is_not_walked_through() {
    let dir = tempfile::tempdir().unwrap();
    let outside = tempfile::tempdir().unwrap();
    fs::write(outside.path().join("id_ed25519"), "secret").unwrap();
    let root = dir.path();
    fs::create_dir(root.join("f")).unwrap();
    fs::write(root.join("f/a"), "x").unwrap();
    let mut index = Index::default();
    walked(root, &mut index, None);
    // Planned while `f` is a folder, run once it is a link to a folder outside.
    let plan = WalkPlan::new(&index, Some(&p("f")), Filter::for_root(root).unwrap());
    fs::remove_dir_all(root.join("f")).unwrap();
    std::os::unix::fs::symlink(outside.path(), root.join("f")).unwrap();
    let (events, _) = walk_now(root, &mut index, plan).unwrap();
    assert!(index.get(&p("f/id_ed25519")).is_none(), "{events:?}");
    assert!(index.get(&p("f/a")).is_none(), "{events:?}");
    // `f` itself is now a link (its own look says so), nothing under it.
    let f = index.get(&p("f")).unwrap();
    assert_eq!(f.kind, qsync_base::EntryKind::Symlink);
}

#[test]
fn a_file_that_became_a_fifo_is_gone_for_the_index() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    fs::write(root.join("pipe"), "x").unwrap();
    let mut index = Index::default();
    walked(root, &mut index, None);
    fs::remove_file(root.join("pipe")).unwrap();
    rustix::fs::mknodat(
        rustix::fs::CWD,
        root.join("pipe"),
        rustix::fs::FileType::Fifo,
        rustix::fs::Mode::from_raw_mode(0o600),
        0,
    )
    .unwrap();
    let events = walked(root, &mut index, None);
    assert!(
        matches!(&events[..], [LocalEvent::Delete { path, .. }] if *path == p("pipe")),
        "{events:?}"
    );
}
