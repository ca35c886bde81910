//! Tests of the parent module.
use super::*;

#[test]
fn the_journal_reads_back_and_a_torn_one_is_nothing() {
    let undo = Undo {
        // A task folder's name need not be UTF-8.
        root: PathBuf::from(std::ffi::OsStr::from_bytes(b"/data/t\xffsk")),
        path: RelPath::new("a/b.bin").unwrap(),
        id: (7, 1234),
        size: 1 << 20,
        before: (1_700_000_000_000_000_000, 0o644),
        after: (1_700_000_001_000_000_000, 0o600),
        hashes: (ContentHash::of(b"before"), ContentHash::of(b"after")),
        runs: vec![
            (10, b"old".to_vec(), b"new".to_vec()),
            (5000, vec![7; 300], vec![8; 300]),
        ],
    };
    let bytes = undo.encode();
    assert_eq!(Undo::decode(&bytes), Some(undo));
    for cut in [0, 1, 4, bytes.len() / 2, bytes.len() - 1] {
        assert_eq!(Undo::decode(&bytes[..cut]), None, "cut at {cut}");
    }
    let mut flipped = bytes.clone();
    flipped[20] ^= 1;
    assert_eq!(Undo::decode(&flipped), None);
}

/// A 2 MiB file in a task folder, and the journal `write` makes before editing it at
/// two places (to mode 0o600 and the time 42).
fn journaled() -> (tempfile::TempDir, PathBuf, PathBuf, Vec<u8>, Undo) {
    let dir = tempfile::tempdir().unwrap();
    let (root, staging) = (dir.path().join("task"), dir.path().join("staging"));
    let (old, undo) = journaled_in(&root, &staging);
    (dir, root, staging, old, undo)
}

pub(super) fn journaled_in(root: &Path, staging: &Path) -> (Vec<u8>, Undo) {
    let root = root.to_owned();
    fs::create_dir_all(&root).unwrap();
    fs::create_dir_all(staging).unwrap();
    let old: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
    fs::write(root.join("big.bin"), &old).unwrap();
    fs::set_permissions(root.join("big.bin"), fs::Permissions::from_mode(0o644)).unwrap();
    let folder = TaskRoot::open(&root).unwrap().top().unwrap();
    let target = Target::open(&folder, "big.bin").unwrap();
    let mut new = old.clone();
    new[100..104].copy_from_slice(b"EDIT");
    new[900_000..900_002].copy_from_slice(b"ED");
    let undo = Undo {
        root: root.clone(),
        path: RelPath::new("big.bin").unwrap(),
        id: target.id,
        size: target.size,
        before: (target.mtime_ns, 0o644),
        after: (42, 0o600),
        hashes: (ContentHash::of(&old), ContentHash::of(&new)),
        runs: vec![
            (100, old[100..104].to_vec(), b"EDIT".to_vec()),
            (900_000, old[900_000..900_002].to_vec(), b"ED".to_vec()),
        ],
    };
    write_journal(&staging.join(UNDO_JOURNAL), &undo.encode()).unwrap();
    (old, undo)
}

pub(super) fn edit(root: &Path, at: u64, bytes: &[u8]) {
    let file = OpenOptions::new()
        .write(true)
        .open(root.join("big.bin"))
        .unwrap();
    file.write_all_at(bytes, at).unwrap();
}

/// A crash after the journal and part of the edits (half of a run, before the time and
/// mode were set): the next start puts the old bytes, time and mode back, and empties
/// the journal.
#[test]
fn a_cut_short_edit_is_undone_at_the_next_start() {
    let (_dir, root, staging, old, undo) = journaled();
    edit(&root, 100, b"ED");
    fs::set_permissions(root.join("big.bin"), fs::Permissions::from_mode(0o600)).unwrap();
    assert_eq!(
        undo_cut_short(&staging).unwrap(),
        Some(root.join("big.bin"))
    );
    assert!(fs::read(root.join("big.bin")).unwrap() == old, "put back");
    let meta = fs::metadata(root.join("big.bin")).unwrap();
    assert_eq!(meta.permissions().mode() & 0o777, 0o644);
    assert_eq!(
        meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
        undo.before.0
    );
    assert_eq!(
        undo_cut_short(&staging).unwrap(),
        None,
        "the journal is empty"
    );
}

/// An edit that was whole (its journal not emptied yet) stays, whatever its time and
/// mode became since: the placement may have been reported, and undoing it would look
/// like a person's revert.
#[test]
fn a_whole_edit_is_left_as_it_is() {
    let (_dir, root, staging, _, _) = journaled();
    edit(&root, 100, b"EDIT");
    edit(&root, 900_000, b"ED");
    fs::set_permissions(root.join("big.bin"), fs::Permissions::from_mode(0o640)).unwrap();
    let whole = fs::read(root.join("big.bin")).unwrap();
    assert_eq!(undo_cut_short(&staging).unwrap(), None);
    assert!(fs::read(root.join("big.bin")).unwrap() == whole);
}

/// A write of someone else's after the crash stays, in the edited runs or anywhere
/// else in the file (a database that kept writing while the daemon was down), even
/// though the runs hold only old and new bytes.
#[test]
fn a_later_write_anywhere_in_the_file_is_left_as_it_is() {
    for (at, bytes) in [
        (101u64, b"P".as_slice()),
        (1_500_000, b"elsewhere".as_slice()),
    ] {
        let (_dir, root, staging, _, _) = journaled();
        edit(&root, 100, b"ED");
        edit(&root, at, bytes);
        let theirs = fs::read(root.join("big.bin")).unwrap();
        assert_eq!(undo_cut_short(&staging).unwrap(), None, "a write at {at}");
        assert!(fs::read(root.join("big.bin")).unwrap() == theirs);
    }
}

#[test]
fn staged_edits_read_back_only_for_their_base_and_hash() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x.edits");
    let (base, hash) = (ContentHash::of(b"base"), ContentHash::of(b"new"));
    let edits = InPlace {
        header: Header {
            source_len: 1000,
            source_hash: base,
            target_len: 1000,
            target_hash: hash,
        },
        edits: vec![(3, b"abc".to_vec()), (997, b"xyz".to_vec())],
    };
    put_edits(&path, &edits).unwrap();
    assert_eq!(edits_at(&path, &hash, Some(base)), Some(edits));
    assert_eq!(edits_at(&path, &hash, Some(hash)), None, "another base");
    assert_eq!(edits_at(&path, &base, Some(base)), None, "another content");
    assert_eq!(edits_at(&path, &hash, None), None);
}
