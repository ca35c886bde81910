//! Tests of the placements on real temporary folders.
#![allow(clippy::unwrap_used, clippy::expect_used)]
use super::super::in_place;
use super::*;
use crate::driver::shelf::Shelf;
use qsync_base::{ContentHash, TaskId};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, UNIX_EPOCH};

struct Folder {
    _dir: tempfile::TempDir,
    root: PathBuf,
    staging: Staging,
    index: Index,
}

fn folder() -> Folder {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("task");
    fs::create_dir(&root).unwrap();
    let staging = Staging::open(dir.path().join("staging")).unwrap();
    Folder {
        _dir: dir,
        root,
        staging,
        index: Index::default(),
    }
}

fn stage(f: &Folder, content: &[u8]) -> State {
    let hash = ContentHash::of(content);
    fs::write(f.staging.path_of(&hash), content).unwrap();
    State::File {
        hash,
        size: content.len() as u64,
        mode: 0o640,
    }
}

fn placement(path: &str, expect: State, target: State) -> Placement {
    Placement {
        task: TaskId::from_bytes([1; 32]),
        path: RelPath::new(path).unwrap(),
        expect,
        target,
        mtime_ns: 1_700_000_000_000_000_000,
        aside: None,
        parents: vec![],
        from: qsync_base::DeviceId::from_bytes([2; 32]),
        makers: (None, None),
    }
}

#[test]
fn a_new_file_lands_with_its_mode_and_time_in_new_folders() {
    let mut f = folder();
    let file = stage(&f, b"hello");
    let mut p = placement("a/b/f.txt", State::Deleted, file.clone());
    p.parents = vec![RelPath::new("a").unwrap(), RelPath::new("a/b").unwrap()];
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::Done
    );
    let local = f.root.join("a/b/f.txt");
    assert_eq!(fs::read(&local).unwrap(), b"hello");
    let meta = fs::metadata(&local).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o640);
    assert_eq!(
        meta.modified().unwrap(),
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    );
    assert_eq!(state_at(&f.root, &p.path, &f.index).unwrap(), file);
}

#[test]
fn a_changed_disk_is_left_alone() {
    let mut f = folder();
    fs::write(f.root.join("x"), b"the person's edit").unwrap();
    let old = State::File {
        hash: ContentHash::of(b"before"),
        size: 6,
        mode: 0o644,
    };
    let new = stage(&f, b"theirs");
    let p = placement("x", old, new);
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::Diverged
    );
    assert_eq!(fs::read(f.root.join("x")).unwrap(), b"the person's edit");
}

#[test]
fn the_loser_goes_aside_and_a_mode_change_needs_no_content() {
    let mut f = folder();
    fs::write(f.root.join("x"), b"ours").unwrap();
    fs::set_permissions(f.root.join("x"), fs::Permissions::from_mode(0o644)).unwrap();
    let ours = state_at(&f.root, &RelPath::new("x").unwrap(), &f.index).unwrap();
    let theirs = stage(&f, b"theirs");
    let mut p = placement("x", ours.clone(), theirs);
    p.aside = Some(RelPath::new("x.sync-conflict").unwrap());
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::Done
    );
    assert_eq!(fs::read(f.root.join("x")).unwrap(), b"theirs");
    assert_eq!(fs::read(f.root.join("x.sync-conflict")).unwrap(), b"ours");

    let now = state_at(&f.root, &RelPath::new("x").unwrap(), &f.index).unwrap();
    let State::File { hash, size, .. } = now.clone() else {
        panic!()
    };
    let p = placement(
        "x",
        now,
        State::File {
            hash,
            size,
            mode: 0o755,
        },
    );
    f.staging.remove(&hash);
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::Done
    );
    assert_eq!(
        fs::metadata(f.root.join("x")).unwrap().permissions().mode() & 0o777,
        0o755
    );
}

#[test]
fn a_folder_goes_only_when_empty_and_links_are_made_not_followed() {
    let mut f = folder();
    fs::create_dir(f.root.join("d")).unwrap();
    fs::write(f.root.join("d/kept"), b"changed here").unwrap();
    let d = state_at(&f.root, &RelPath::new("d").unwrap(), &f.index).unwrap();
    let p = placement("d", d, State::Deleted);
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::NotEmpty
    );
    assert!(f.root.join("d/kept").exists());

    // A peer's link out of the folder is not made; one inside is.
    let out = State::Symlink {
        target: "/etc".into(),
    };
    let p = placement("l", State::Deleted, out.clone());
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::Failed
    );
    assert!(fs::symlink_metadata(f.root.join("l")).is_err());
    let inside = State::Symlink {
        target: "d/kept".into(),
    };
    let p = placement("in", State::Deleted, inside.clone());
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::Done
    );
    assert_eq!(
        state_at(&f.root, &RelPath::new("in").unwrap(), &f.index).unwrap(),
        inside
    );
    // The person's own link out: nothing is written through it.
    std::os::unix::fs::symlink("/etc", f.root.join("l")).unwrap();
    assert_eq!(
        state_at(&f.root, &RelPath::new("l").unwrap(), &f.index).unwrap(),
        out
    );
    let file = stage(&f, b"x");
    let p = placement("l/passwd", State::Deleted, file);
    assert!(place(&f.root, &f.staging, &p, &mut f.index).is_err());
}

#[test]
fn a_peers_0777_lands_masked_by_the_umask_and_still_counts_as_placed() {
    let mut f = folder();
    // Under the usual umask 022: 0755.
    let masked = 0o777 & !super::guard::umask();
    let theirs = |s: State| match s {
        State::File { hash, size, .. } => State::File {
            hash,
            size,
            mode: 0o777,
        },
        other => other,
    };
    let file = theirs(stage(&f, b"x"));
    let folder = State::Folder { mode: 0o777 };
    for (path, target) in [("d", &folder), ("f", &file)] {
        let p = placement(path, State::Deleted, target.clone());
        assert_eq!(
            place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
            PlaceOutcome::Done
        );
        let mode = fs::symlink_metadata(f.root.join(path))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, masked, "{path}");
    }
    // The watcher's index heard the masked modes: nothing looks changed here.
    let scan = qsync_watch::scan(&f.root, &f.index.to_map()).unwrap();
    assert!(f.index.reconcile(scan).is_empty());
    // The next placement expects the record's mode, and finds it as placed.
    let State::File { hash, size, .. } = file else {
        panic!()
    };
    let p = placement(
        "f",
        file.clone(),
        State::File {
            hash,
            size,
            mode: 0o700,
        },
    );
    f.staging.remove(&hash);
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::Done
    );
    let mode = fs::metadata(f.root.join("f")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o700);
}

#[test]
fn a_batch_names_nothing_until_flushed_then_reports_every_placement() {
    let mut f = folder();
    let mut batch = Batch::default();
    // The folder's own record and two files in it, the files ordered before the
    // core heard the folder was made: each asks for it as a parent.
    let folder_made = placement("d", State::Deleted, State::Folder { mode: 0o750 });
    let mut first = placement("d/1", State::Deleted, stage(&f, b"one"));
    first.parents = vec![RelPath::new("d").unwrap()];
    let mut second = placement("d/2", State::Deleted, stage(&f, b"two"));
    second.parents = first.parents.clone();
    for p in [&first, &second, &folder_made] {
        let begun = batch
            .begin(&f.root, &f.staging, p, &mut f.index, (false, None))
            .unwrap();
        assert_eq!(begun, None, "{}", p.path);
    }
    assert!(!f.root.join("d/1").exists(), "named before it is durable");
    // The content moved out of staging (written once, not copied).
    assert!(!f.staging.has(&ContentHash::of(b"one")));

    let mut tasks = HashMap::from([(first.task, &mut f.index)]);
    let placed = batch.flush(&mut tasks, |index| &mut **index);
    let outcomes: Vec<_> = placed
        .iter()
        .map(|(p, o, _)| (p.path.to_string(), o.as_ref().ok().copied()))
        .collect();
    assert_eq!(
        outcomes,
        vec![
            ("d/1".to_string(), Some(PlaceOutcome::Done)),
            ("d/2".to_string(), Some(PlaceOutcome::Done)),
            ("d".to_string(), Some(PlaceOutcome::Done)),
        ]
    );
    assert!(batch.is_empty());
    assert_eq!(fs::read(f.root.join("d/2")).unwrap(), b"two");
    let mode = fs::metadata(f.root.join("d")).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o750);
    let scan = qsync_watch::scan(&f.root, &f.index.to_map()).unwrap();
    assert!(f.index.reconcile(scan).is_empty(), "no temporary file left");
}

#[test]
fn an_edit_saved_while_the_batch_waits_wins() {
    let mut f = folder();
    fs::write(f.root.join("x"), b"before").unwrap();
    let before = state_at(&f.root, &RelPath::new("x").unwrap(), &f.index).unwrap();
    let p = placement("x", before, stage(&f, b"theirs"));
    let mut batch = Batch::default();
    assert_eq!(
        batch
            .begin(&f.root, &f.staging, &p, &mut f.index, (false, None))
            .unwrap(),
        None
    );
    std::thread::sleep(Duration::from_millis(20));
    fs::write(f.root.join("x"), b"the person's edit").unwrap();
    let mut tasks = HashMap::from([(p.task, &mut f.index)]);
    let placed = batch.flush(&mut tasks, |index| &mut **index);
    assert_eq!(placed.len(), 1);
    assert!(matches!(placed[0].1, Ok(PlaceOutcome::Diverged)));
    assert_eq!(fs::read(f.root.join("x")).unwrap(), b"the person's edit");
    let leftovers: Vec<_> = fs::read_dir(&f.root).unwrap().collect();
    assert_eq!(leftovers.len(), 1, "the prepared file is removed");
}

#[test]
fn missing_content_is_said() {
    let mut f = folder();
    let p = placement(
        "x",
        State::Deleted,
        State::File {
            hash: ContentHash::of(b"never fetched"),
            size: 13,
            mode: 0o644,
        },
    );
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::NoContent
    );
}

#[test]
fn what_was_placed_is_not_reported_as_a_change() {
    let mut f = folder();
    let file = stage(&f, b"hello");
    let p = placement("f", State::Deleted, file);
    place(&f.root, &f.staging, &p, &mut f.index).unwrap();
    let scan = qsync_watch::scan(&f.root, &f.index.to_map()).unwrap();
    let events = f.index.reconcile(scan);
    assert!(events.is_empty(), "{events:?}");
}

/// A 2 MiB file and the edits that flip one byte of it, staged as edits in place.
fn staged_edit(f: &Folder, path: &str) -> (Vec<u8>, Vec<u8>, Placement) {
    let old: Vec<u8> = (0..2u32 << 20).map(|i| (i % 253) as u8).collect();
    fs::write(f.root.join(path), &old).unwrap();
    fs::set_permissions(f.root.join(path), fs::Permissions::from_mode(0o644)).unwrap();
    let mut new = old.clone();
    new[1_000_000] ^= 0xff;
    let (from, to) = (ContentHash::of(&old), ContentHash::of(&new));
    let edits = InPlace {
        header: qsync_delta::Header {
            source_len: old.len() as u64,
            source_hash: from,
            target_len: new.len() as u64,
            target_hash: to,
        },
        edits: vec![(1_000_000, vec![new[1_000_000]])],
    };
    f.staging.put_edits(&edits).unwrap();
    let size = old.len() as u64;
    let p = placement(
        path,
        State::File {
            hash: from,
            size,
            mode: 0o644,
        },
        State::File {
            hash: to,
            size,
            mode: 0o600,
        },
    );
    (old, new, p)
}

/// Edits staged in place are written into the file itself: the same inode, the new bytes,
/// time and mode, and an empty undo journal once reported.
#[test]
fn edits_in_place_are_written_into_the_file() {
    use std::os::unix::fs::MetadataExt;
    let mut f = folder();
    let (_, new, p) = staged_edit(&f, "big.bin");
    let inode = fs::metadata(f.root.join("big.bin")).unwrap().ino();
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::Done
    );
    let meta = fs::metadata(f.root.join("big.bin")).unwrap();
    assert_eq!(meta.ino(), inode, "written in place");
    assert!(fs::read(f.root.join("big.bin")).unwrap() == new);
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert_eq!(
        meta.modified().unwrap(),
        UNIX_EPOCH + Duration::from_secs(1_700_000_000)
    );
    let journal = f.staging.dir().join(in_place::UNDO_JOURNAL);
    assert_eq!(fs::metadata(journal).unwrap().len(), 0);
    assert_eq!(state_at(&f.root, &p.path, &f.index).unwrap(), p.target);
}

/// A file with another name (a hard link, maybe outside the task) is never written in
/// place: the placement has no content (the daemon then asks for it whole); a file changed
/// after the placement began is left alone.
#[test]
fn edits_in_place_never_reach_another_name_nor_a_changed_file() {
    let mut f = folder();
    let (old, _, p) = staged_edit(&f, "linked.bin");
    fs::hard_link(f.root.join("linked.bin"), f._dir.path().join("outside")).unwrap();
    assert_eq!(
        place(&f.root, &f.staging, &p, &mut f.index).unwrap(),
        PlaceOutcome::NoContent
    );
    assert!(fs::read(f._dir.path().join("outside")).unwrap() == old);
    // (The daemon then drops the staged edits and asks for the content whole.)

    let (_, _, p) = staged_edit(&f, "edited.bin");
    let mut batch = Batch::default();
    assert_eq!(
        batch
            .begin(&f.root, &f.staging, &p, &mut f.index, (false, None))
            .unwrap(),
        None
    );
    std::thread::sleep(Duration::from_millis(20));
    fs::write(f.root.join("edited.bin"), b"the person's save").unwrap();
    let mut tasks = HashMap::from([(p.task, &mut f.index)]);
    let placed = batch.flush(&mut tasks, |index| &mut **index);
    assert!(matches!(placed[0].1, Ok(PlaceOutcome::Diverged)));
    assert_eq!(
        fs::read(f.root.join("edited.bin")).unwrap(),
        b"the person's save"
    );
}

/// Place `p` in a batch of its own with versions kept on `shelf` (or not); its outcome
/// and the version kept.
fn place_keeping(
    f: &mut Folder,
    p: &Placement,
    shelf: Option<&Shelf>,
) -> (PlaceOutcome, Option<KeptVersion>) {
    let mut batch = Batch::default();
    let begun = batch
        .begin(
            &f.root,
            &f.staging,
            p,
            &mut f.index,
            (false, shelf.map(|s| (s, u64::MAX))),
        )
        .unwrap();
    assert_eq!(begun, None);
    let mut tasks = HashMap::from([(p.task, &mut f.index)]);
    let (_, outcome, kept) = batch.flush(&mut tasks, |index| &mut **index).pop().unwrap();
    (outcome.unwrap(), kept)
}

#[test]
fn a_file_replaced_or_deleted_is_kept_as_a_version_where_the_task_keeps_them() {
    let mut f = folder();
    let shelf = f.staging.shelf().clone();
    let x = RelPath::new("x").unwrap();
    fs::write(f.root.join("x"), b"first").unwrap();
    let first = state_at(&f.root, &x, &f.index).unwrap();
    let second = stage(&f, b"second");
    let (outcome, kept) = place_keeping(&mut f, &placement("x", first, second), Some(&shelf));
    assert_eq!(outcome, PlaceOutcome::Done);
    let kept = kept.expect("the first version is kept");
    assert_eq!(
        (kept.why, kept.size, kept.hash),
        ("replaced", 5, ContentHash::of(b"first"))
    );
    let task = TaskId::from_bytes([1; 32]);
    assert_eq!(
        fs::read(shelf.path_of(&task, &kept.hash)).unwrap(),
        b"first"
    );
    assert_eq!(fs::read(f.root.join("x")).unwrap(), b"second");

    // Deleted: kept for reuse in staging first, where a version finds its bytes.
    let second = state_at(&f.root, &x, &f.index).unwrap();
    let (outcome, kept) = place_keeping(
        &mut f,
        &placement("x", second, State::Deleted),
        Some(&shelf),
    );
    assert_eq!(outcome, PlaceOutcome::Done);
    let kept = kept.expect("the deleted file is kept");
    assert_eq!(kept.why, "deleted");
    let bytes = f.staging.version_bytes(&task, &kept.hash).unwrap();
    assert_eq!(fs::read(bytes).unwrap(), b"second");

    // A file that a symlink replaces is kept too.
    fs::write(f.root.join("z"), b"fifth").unwrap();
    let fifth = state_at(&f.root, &RelPath::new("z").unwrap(), &f.index).unwrap();
    let link = State::Symlink { target: "y".into() };
    let (outcome, kept) = place_keeping(&mut f, &placement("z", fifth, link), Some(&shelf));
    assert_eq!(
        (outcome, kept.map(|k| k.why)),
        (PlaceOutcome::Done, Some("replaced"))
    );
    assert_eq!(
        fs::read(shelf.path_of(&task, &ContentHash::of(b"fifth"))).unwrap(),
        b"fifth"
    );

    // A task that keeps none: nothing on the shelf.
    fs::write(f.root.join("y"), b"third").unwrap();
    let third = state_at(&f.root, &RelPath::new("y").unwrap(), &f.index).unwrap();
    let fourth = stage(&f, b"fourth");
    let (outcome, kept) = place_keeping(&mut f, &placement("y", third, fourth), None);
    assert_eq!((outcome, kept), (PlaceOutcome::Done, None));
    assert!(!shelf.path_of(&task, &ContentHash::of(b"third")).exists());
}
