//! Two real daemons on loopback: the seed's flows end to end.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/node.rs"]
mod node;

use std::fs;
use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use node::{link, tree, wait_same, Node};

const SETTLE: Duration = Duration::from_secs(60);

fn pair() -> (tempfile::TempDir, Node, Node) {
    let base = tempfile::tempdir().unwrap();
    let a = Node::start(base.path(), "alpha");
    let b = Node::start(base.path(), "beta");
    (base, a, b)
}

#[test]
fn link_and_setup_copy_of_a_real_tree() {
    let (base, a, b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(da.join("nested/deeper/deepest")).unwrap();
    fs::write(da.join("empty"), "").unwrap();
    fs::write(da.join("nested/deeper/deepest/leaf.txt"), "leaf").unwrap();
    let big: Vec<u8> = (0..50 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 24) as u8)
        .collect();
    fs::write(da.join("big.bin"), &big).unwrap();
    fs::create_dir(da.join("many")).unwrap();
    for i in 0..1000 {
        fs::write(da.join(format!("many/f{i}.txt")), format!("small file {i}")).unwrap();
    }
    let task = a.add_task(&da);
    let linked = link(&a, &task, &b, &db);
    assert!(linked.contains("entries to copy"), "{linked}");
    wait_same(&da, &db, Duration::from_secs(120));
    assert_eq!(tree(&db).len(), 1000 + 7);
}

#[test]
fn live_edits_both_ways_without_echo() {
    let (base, a, b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(da.join("docs")).unwrap();
    fs::create_dir_all(da.join("archive")).unwrap();
    fs::write(da.join("docs/notes.txt"), "line 1\n".repeat(1000)).unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, SETTLE);
    let (sent_a, sent_b) = (a.status("sent"), b.status("sent"));

    // On A: create, append, truncate, overwrite the middle, rename, move, delete a file and a folder.
    fs::write(da.join("new.txt"), "brand new").unwrap();
    fs::OpenOptions::new()
        .append(true)
        .open(da.join("docs/notes.txt"))
        .unwrap()
        .write_all(b"appended\n")
        .unwrap();
    wait_same(&da, &db, SETTLE);
    let f = fs::OpenOptions::new()
        .write(true)
        .open(da.join("docs/notes.txt"))
        .unwrap();
    f.set_len(3000).unwrap();
    drop(f);
    wait_same(&da, &db, SETTLE);
    let mut content = fs::read(da.join("docs/notes.txt")).unwrap();
    content[1500..1510].copy_from_slice(b"OVERWRITE!");
    fs::write(da.join("docs/notes.txt"), &content).unwrap();
    wait_same(&da, &db, SETTLE);
    fs::rename(da.join("new.txt"), da.join("renamed.txt")).unwrap();
    fs::rename(da.join("renamed.txt"), da.join("archive/renamed.txt")).unwrap();
    wait_same(&da, &db, SETTLE);
    fs::create_dir_all(da.join("doomed/inner")).unwrap();
    fs::write(da.join("doomed/inner/x"), "x").unwrap();
    wait_same(&da, &db, SETTLE);
    fs::remove_dir_all(da.join("doomed")).unwrap();
    fs::remove_file(da.join("archive/renamed.txt")).unwrap();
    wait_same(&da, &db, SETTLE);
    std::thread::sleep(Duration::from_secs(2));
    let echoed = b.status("sent");
    if echoed != sent_b {
        // Rare (seen once in many runs, under load): say what B was doing.
        let log = b.log();
        let tail: Vec<&str> = log.lines().rev().take(60).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "B echoed A's changes back: sent {sent_b} before, {echoed} after; B's log ends:\n{}",
            tail.join("\n")
        );
    }
    assert!(a.status("sent") > sent_a);

    // The same kind of edits on B come back to A, and A does not echo them.
    let sent_a = a.status("sent");
    fs::write(db.join("from-b.txt"), "hello from B").unwrap();
    fs::write(db.join("docs/notes.txt"), "rewritten on B").unwrap();
    fs::rename(db.join("from-b.txt"), db.join("archive/from-b.txt")).unwrap();
    wait_same(&da, &db, SETTLE);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(a.status("sent"), sent_a, "A echoed B's changes back");
    assert_eq!(a.status("pending"), 0);
    assert_eq!(b.status("pending"), 0);
}

#[test]
fn offline_device_catches_up_and_deltas_are_dropped() {
    let (base, a, mut b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(&da).unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    fs::write(da.join("log.txt"), &big).unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, SETTLE);

    b.kill();
    for i in 0..20 {
        match i % 4 {
            0 | 1 => {
                let mut f = fs::OpenOptions::new()
                    .append(true)
                    .open(da.join("log.txt"))
                    .unwrap();
                writeln!(f, "edit {i}").unwrap();
            }
            2 => fs::write(da.join(format!("file{i}.txt")), format!("file {i}")).unwrap(),
            _ => {
                let mut data = fs::read(da.join("log.txt")).unwrap();
                data[1000 + i] = b'#';
                fs::write(da.join("log.txt"), data).unwrap();
            }
        }
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(a.status("pending") > 0, "changes wait for B");
    b.restart();
    wait_same(&da, &db, SETTLE);
    let deadline = std::time::Instant::now() + SETTLE;
    while a.status("pending") > 0 || a.status("deltas") > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "pending rows or deltas left: {}",
            a.cli(&["status"])
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn both_edit_while_disconnected_and_both_versions_survive() {
    both_edit_while_disconnected("shared.txt", b"original", b"A's version", b"B's version");
}

/// The conflict copy of a 240-byte name is shortened to fit the file system (it used to be
/// too long to create, and the update stayed pending forever).
#[test]
fn a_conflict_on_a_240_byte_name_settles() {
    let name = format!("{}.txt", "n".repeat(236));
    both_edit_while_disconnected(&name, b"original", b"A's version", b"B's version");
}

/// Both edit a 2 MiB file without changing its length while apart: the versions are
/// concurrent, one keeps the name and the other becomes a conflict copy, on both sides,
/// whether the content travels as edits in place or whole.
#[test]
fn both_edit_a_large_file_while_disconnected_and_both_versions_survive() {
    let original: Vec<u8> = (0..2 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    let (mut ours, mut theirs) = (original.clone(), original.clone());
    ours[1000] ^= 0xff;
    theirs[1_500_000] ^= 0xff;
    both_edit_while_disconnected("disk.img", &original, &ours, &theirs);
}

fn both_edit_while_disconnected(name: &str, original: &[u8], at_a: &[u8], at_b: &[u8]) {
    let (base, a, mut b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(&da).unwrap();
    fs::write(da.join(name), original).unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, SETTLE);

    b.kill();
    fs::write(da.join(name), at_a).unwrap();
    fs::write(db.join(name), at_b).unwrap();
    std::thread::sleep(Duration::from_secs(1));
    b.restart();
    wait_same(&da, &db, SETTLE);
    let stem = name.split('.').next().unwrap_or(name);
    let stem = &stem[..stem.len().min(40)];
    let contents: Vec<Vec<u8>> = fs::read_dir(&da)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(stem))
        .map(|e| fs::read(e.path()).unwrap())
        .collect();
    let has = |v: &[u8]| contents.iter().any(|c| c == v);
    assert!(has(at_a) && has(at_b), "both versions survive");
    assert_eq!(contents.len(), 2, "one name, one conflict copy");
    assert_eq!(a.status("pending"), 0, "{}", a.cli(&["status"]));
    assert_eq!(b.status("pending"), 0, "{}", b.cli(&["status"]));
}

#[test]
fn a_frame_from_an_unlinked_device_is_rejected_and_logged() {
    use qsync_wire::{Identity, Message, TaskId};

    let (base, a, _b) = pair();
    let da = base.path().join("A");
    fs::create_dir_all(&da).unwrap();
    fs::write(da.join("keep.txt"), "untouched").unwrap();
    let task = a.add_task(&da);
    let before = tree(&da);

    // A stranger with a key of its own proves it (the handshake passes), then sends an
    // Unlink and a sync message about A's task.
    let stranger = Identity::generate().unwrap();
    let (mut stream, mut session) = hostile::connect(a.port, &stranger).unwrap();
    let task: TaskId = task.parse().unwrap();
    for evil in [
        Message::Unlink,
        Message::Sync {
            body: bytes::Bytes::from_static(b"\x01\x02"),
        },
    ] {
        let _ = hostile::send(&mut stream, &session.seal(task, &evil).unwrap());
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(tree(&da), before, "nothing on disk changed");
    assert!(a.log().contains("not linked"), "the refusal is logged");
}

#[test]
fn killed_in_the_middle_of_a_large_transfer_finishes_after_restart() {
    let (base, a, mut b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(&da).unwrap();
    fs::write(da.join("seed.txt"), "seed").unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, SETTLE);

    let big: Vec<u8> = (0..200 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2246822519) >> 20) as u8)
        .collect();
    fs::write(da.join("huge.bin"), &big).unwrap();
    // Kill B as soon as the transfer has started: content coming into its staging
    // folder, or being placed beside the target.
    let deadline = std::time::Instant::now() + SETTLE;
    let staging = b.state.join("staging");
    loop {
        let has = |dir: &std::path::Path, prefix: &str| {
            fs::read_dir(dir).is_ok_and(|entries| {
                entries
                    .flatten()
                    .any(|e| e.file_name().to_string_lossy().starts_with(prefix))
            })
        };
        let partial = has(&db, ".qsync-part-") || has(&staging, ".partial-");
        if partial {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the transfer never started"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    b.kill();
    assert!(
        !db.join("huge.bin").exists() || fs::read(db.join("huge.bin")).unwrap() == big,
        "a partial file under the real name"
    );
    b.restart();
    wait_same(&da, &db, Duration::from_secs(120));
    let leftovers = fs::read_dir(&db)
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".qsync-part-"))
        .count();
    assert_eq!(leftovers, 0, "temporary files are cleaned up");
}

/// Received files are made durable, put in place and acknowledged in batches. B is
/// killed in the middle of a setup copy of many small files (batches staged, some
/// acknowledged, some not); after its restart both sides hold every file, and nothing
/// B had not finished was taken for a deletion and spread to A.
#[test]
fn killed_in_the_middle_of_a_setup_copy_of_many_files_loses_nothing() {
    let (base, a, mut b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(da.join("many")).unwrap();
    const FILES: usize = 3000;
    for i in 0..FILES {
        fs::write(
            da.join(format!("many/f{i:04}")),
            format!("file {i} ").repeat(300),
        )
        .unwrap();
    }
    let before = tree(&da);
    let task = a.add_task(&da);
    let asker =
        node::Linking::start(&a.state, &task, &format!("127.0.0.1:{}", b.port), &[]).unwrap();
    let deadline = std::time::Instant::now() + SETTLE;
    let (id, _, _) = node::wait_question(&b.state, &["CHOOSELINKPATH"]);
    b.cli(&["answer", &id, &format!("{} {}", asker.code, db.display())]);
    // Kill B once part of the copy is there.
    loop {
        let got = fs::read_dir(db.join("many")).map_or(0, |d| d.count());
        if got >= FILES / 5 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the copy never started"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    b.kill();
    b.restart();
    wait_same(&da, &db, Duration::from_secs(120));
    let (ok, out) = asker.finish();
    assert!(ok, "link: {out}");
    assert_eq!(tree(&da), before, "A lost or changed files");
    let leftovers = fs::read_dir(db.join("many"))
        .unwrap()
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().starts_with(".qsync-"))
        .count();
    assert_eq!(leftovers, 0, "temporary files are cleaned up");
    assert_eq!(a.status("pending"), 0, "{}", a.cli(&["status"]));
}

/// Files created and moved away quickly are not lost, whatever the delay between the two
/// relative to the watcher's debounce: a create whose content already went is skipped, and
/// a rename the receiver cannot follow is answered by sending what is at the new path.
/// (A CI run under load lost such a file once; this sweeps the delays around that race,
/// which is too narrow to reproduce on demand.)
#[test]
fn files_created_and_moved_at_once_are_not_lost() {
    let (base, a, b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(da.join("inbox")).unwrap();
    fs::create_dir_all(da.join("done")).unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, SETTLE);
    for i in 0..60u64 {
        let name = format!("f{i}.txt");
        fs::write(da.join("inbox").join(&name), format!("file {i}")).unwrap();
        std::thread::sleep(Duration::from_millis(i * 5 % 300));
        fs::rename(da.join("inbox").join(&name), da.join("done").join(&name)).unwrap();
    }
    wait_same(&da, &db, SETTLE);
    assert_eq!(fs::read_dir(db.join("done")).unwrap().count(), 60);
}

/// Received files keep their sender's modification time, for new files and for patches
/// (conflict copies are named after it, so every device must see the same).
#[test]
fn received_files_keep_the_senders_mtime() {
    let (base, a, b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(&da).unwrap();
    fs::write(da.join("small.txt"), "v1").unwrap();
    fs::write(da.join("big.bin"), vec![7u8; 300_000]).unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, SETTLE);
    let mtime = |p: std::path::PathBuf| fs::metadata(p).unwrap().modified().unwrap();
    assert_eq!(mtime(da.join("big.bin")), mtime(db.join("big.bin")));
    std::thread::sleep(Duration::from_millis(1100));
    let mut data = fs::read(da.join("big.bin")).unwrap();
    data[1000] = 1;
    fs::write(da.join("big.bin"), data).unwrap();
    fs::write(da.join("small.txt"), "v2, longer").unwrap();
    wait_same(&da, &db, SETTLE);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        mtime(da.join("big.bin")),
        mtime(db.join("big.bin")),
        "patched file"
    );
    assert_eq!(mtime(da.join("small.txt")), mtime(db.join("small.txt")));
}

#[test]
fn a_folder_deleted_on_one_side_keeps_what_changed_on_the_other() {
    let (base, mut a, b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(da.join("d/sub")).unwrap();
    fs::write(da.join("d/keep.txt"), "v1").unwrap();
    fs::write(da.join("d/sub/gone.txt"), "old").unwrap();
    fs::write(da.join("top.txt"), "stays").unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, SETTLE);

    // A is away; B edits a file in `d` while A's person deletes all of `d`.
    a.kill();
    fs::write(db.join("d/keep.txt"), "changed on B while A was away").unwrap();
    let deadline = std::time::Instant::now() + SETTLE;
    while b.status("pending") == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "B never recorded its edit"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    fs::remove_dir_all(da.join("d")).unwrap();
    a.restart();

    // B's edit survives on both sides; what nobody changed is gone on both.
    wait_same(&da, &db, SETTLE);
    let deadline = std::time::Instant::now() + SETTLE;
    while !da.join("d/keep.txt").exists() || db.join("d/sub/gone.txt").exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "A: {:?}\nB: {:?}",
            tree(&da),
            tree(&db)
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_same(&da, &db, SETTLE);
    for dir in [&da, &db] {
        assert_eq!(
            fs::read_to_string(dir.join("d/keep.txt")).unwrap(),
            "changed on B while A was away"
        );
        assert!(!dir.join("d/sub").exists(), "{:?}", tree(dir));
        assert_eq!(fs::read_to_string(dir.join("top.txt")).unwrap(), "stays");
    }
}

/// A linked pair in step on a folder holding `big.bin` (2 MiB): the temporary folder, the
/// two daemons, their folders, and the file's content.
fn pair_with_a_big_file() -> (tempfile::TempDir, Node, Node, (PathBuf, PathBuf), Vec<u8>) {
    let (base, a, b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(&da).unwrap();
    let data: Vec<u8> = (0..2 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(da.join("big.bin"), &data).unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, SETTLE);
    (base, a, b, (da, db), data)
}

/// Received files are acknowledged before their blobs (the base of later deltas) are kept:
/// the keeper does that once the daemon is quiet. B receives a file, then a patch of it;
/// each time B's own edit that follows must still go back as a small delta, which A
/// writes into its file (the same length: in place, no new copy).
#[test]
fn edits_of_received_files_go_back_as_deltas() {
    let (_base, _a, b, (da, db), mut data) = pair_with_a_big_file();
    for (round, at) in [(1u8, 1_000_000usize), (2, 1_500_000)] {
        // Quiet for a while: B keeps the blob of what it received.
        std::thread::sleep(Duration::from_millis(1500));
        let before = b.status("wire_sent");
        let inode =
            || std::os::unix::fs::MetadataExt::ino(&fs::metadata(da.join("big.bin")).unwrap());
        let a_file = inode();
        data[at] ^= 0xff;
        fs::write(db.join("big.bin"), &data).unwrap();
        wait_same(&da, &db, SETTLE);
        let sent = b.status("wire_sent") - before;
        assert!(
            sent < 64 * 1024,
            "round {round}: B sent {sent} bytes for a 1-byte edit of a 2 MiB file it had received"
        );
        assert_eq!(
            inode(),
            a_file,
            "round {round}: A wrote the edit into its file"
        );
        // Now A edits, so that B's next base is a file it received as a patch.
        std::thread::sleep(Duration::from_millis(500));
        data[at + 7] ^= 0xff;
        fs::write(da.join("big.bin"), &data).unwrap();
        wait_same(&da, &db, SETTLE);
    }
}

/// An edit travels with its record: the sender makes the patch from the copy it kept of
/// the version before, and the receiver, which has that version, applies it without asking
/// (one message and its acknowledgement).
#[test]
fn an_edit_travels_with_its_record_as_a_patch() {
    let (_base, a, b, (da, db), mut data) = pair_with_a_big_file();
    // Quiet for a while: A keeps the copy of its version (the base of the patch).
    std::thread::sleep(Duration::from_millis(1500));
    let (a_before, b_before) = (a.status("wire_sent"), b.status("wire_sent"));
    data[1_234_567] ^= 0xff;
    fs::write(da.join("big.bin"), &data).unwrap();
    wait_same(&da, &db, SETTLE);
    std::thread::sleep(Duration::from_millis(300));
    let (a_sent, b_sent) = (
        a.status("wire_sent") - a_before,
        b.status("wire_sent") - b_before,
    );
    assert!(
        a_sent < 1500,
        "A sent {a_sent} bytes for a 1-byte edit of 2 MiB"
    );
    assert!(
        b_sent < 250,
        "B asked for the content ({b_sent} bytes sent): the patch did not come with the record"
    );
}

/// Devices that keep no copies of past versions (`--base-share 0`): an edit still travels
/// small, as a patch made from the block signature of the receiver's version (rsync's
/// exchange), both ways; and a file edited on both sides at once still settles.
#[test]
fn edits_without_kept_bases_travel_through_signatures() {
    let base = tempfile::tempdir().unwrap();
    let a = Node::start_args(base.path(), "alpha", &["--base-share", "0"]);
    let b = Node::start_args(base.path(), "beta", &["--base-share", "0"]);
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(&da).unwrap();
    let mut data: Vec<u8> = (0..4 * 1024 * 1024u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .collect();
    fs::write(da.join("big.bin"), &data).unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, SETTLE);
    for (round, at) in [(1usize, 1_000_000usize), (2, 3_000_000)] {
        let dir = if round == 1 { &da } else { &db };
        // Both ways: the edit one way, the signature of the old version the other.
        let wire = || a.status("wire_sent") + b.status("wire_sent");
        let before = wire();
        data[at] ^= 0xff;
        data.splice(at + 100..at + 100, *b"a few bytes inserted");
        fs::write(dir.join("big.bin"), &data).unwrap();
        wait_same(&da, &db, SETTLE);
        let sent = wire() - before;
        assert!(
            sent < 64 * 1024,
            "round {round}: {sent} bytes sent for a small edit of a 4 MiB file without a kept base"
        );
    }
    assert_eq!((a.blob_count(), b.blob_count()), (0, 0), "no copies kept");
}

/// A pattern added to `.qsyncignore` while the daemon is stopped: the newly ignored files
/// stop syncing, and are deleted nowhere (they used to be deleted on the other device).
#[test]
fn a_newly_ignored_file_is_deleted_nowhere() {
    let (base, mut a, b) = pair();
    let (da, db) = (base.path().join("A"), base.path().join("B"));
    fs::create_dir_all(da.join("logs")).unwrap();
    fs::write(da.join("notes.txt"), "keep syncing").unwrap();
    fs::write(da.join("debug.log"), "noise").unwrap();
    fs::write(da.join("logs/today.log"), "more noise").unwrap();
    let task = a.add_task(&da);
    link(&a, &task, &b, &db);
    wait_same(&da, &db, SETTLE);

    a.kill();
    fs::write(da.join(".qsyncignore"), "*.log\nlogs/\n").unwrap();
    a.restart();
    fs::write(da.join("notes.txt"), "still syncing").unwrap();
    let deadline = std::time::Instant::now() + SETTLE;
    while fs::read_to_string(db.join("notes.txt")).ok().as_deref() != Some("still syncing") {
        assert!(
            std::time::Instant::now() < deadline,
            "the edit never arrived"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(1));
    for path in ["debug.log", "logs/today.log"] {
        assert!(da.join(path).exists(), "{path} is gone on A");
        assert!(db.join(path).exists(), "{path} was deleted on B");
    }
}

/// A link that is not made tells the asking person why, in words about the other device,
/// never a detail of it (such as a folder's path): refused by its person, or a code typed
/// there that is not the one shown here.
#[test]
fn a_refused_link_says_why_on_the_asking_side() {
    let (base, a, b) = pair();
    let folder = base.path().join("A");
    fs::create_dir_all(&folder).unwrap();
    fs::write(folder.join("f"), b"x").unwrap();
    let task = a.add_task(&folder);
    let addr = format!("127.0.0.1:{}", b.port);

    let linking = node::Linking::start(&a.state, &task, &addr, &[]).unwrap();
    let (id, _, _) = node::wait_question(&b.state, &["CHOOSELINKPATH"]);
    b.cli(&["answer", &id, ""]);
    let (ok, text) = linking.finish();
    assert!(!ok, "{text}");
    assert!(
        text.contains("the person on the other device refused"),
        "{text}"
    );

    let linking = node::Linking::start(&a.state, &task, &addr, &[]).unwrap();
    let (id, _, _) = node::wait_question(&b.state, &["CHOOSELINKPATH"]);
    let wrong = if linking.code.starts_with('1') {
        "2"
    } else {
        "1"
    };
    let typo = format!(
        "{wrong}{} {}",
        &linking.code[1..],
        base.path().join("B").display()
    );
    b.cli(&["answer", &id, &typo]);
    let (ok, text) = linking.finish();
    assert!(!ok, "{text}");
    assert!(
        text.contains("did not match") && !text.contains(&base.path().display().to_string()),
        "{text}"
    );
}

/// A link question nobody answers in time: the asking side hears that, in those words.
#[test]
fn an_unanswered_link_says_so_on_the_asking_side() {
    let base = tempfile::tempdir().unwrap();
    let a = Node::start(base.path(), "alpha");
    let b = Node::start_args(base.path(), "beta", &["--answer-timeout", "1"]);
    let folder = base.path().join("A");
    fs::create_dir_all(&folder).unwrap();
    let task = a.add_task(&folder);
    let addr = format!("127.0.0.1:{}", b.port);
    let linking = node::Linking::start(&a.state, &task, &addr, &[]).unwrap();
    let (ok, text) = linking.finish();
    assert!(!ok, "{text}");
    assert!(
        text.contains("no answer from the person on the other device in time"),
        "{text}"
    );
}
