//! The SQLite ledger behaves exactly like qsync-core's in-memory one (which the simulator
//! proves the sync rules against), survives a reopen, and rolls back an uncommitted call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use qsync_base::{ContentHash, DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{Ledger, MemLedger, Record, State};
use qsync_store::Store;

const TASK: TaskId = TaskId::from_bytes([3; 32]);
const PEERS: [DeviceId; 2] = [DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32])];
const PATHS: [&str; 6] = ["a", "a/b", "a/b/c", "a b", "a0", "b"];

fn store() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    store.add_task(TASK, "/tmp/task".as_ref(), "task").unwrap();
    for (i, peer) in PEERS.iter().enumerate() {
        store.add_link(TASK, *peer, &format!("peer{i}")).unwrap();
    }
    (dir, store)
}

#[derive(Debug, Clone)]
enum Op {
    Put {
        path: usize,
        state: u8,
        counter: u64,
        peer: usize,
    },
    Rival {
        path: usize,
        peer: usize,
        keep: bool,
        counter: u64,
    },
    Received {
        peer: usize,
        seq: u64,
    },
    Acked {
        peer: usize,
        seq: u64,
    },
    Forget {
        peer: usize,
    },
    /// Forget the tombstone of a path (if it is one).
    ForgetTombstone {
        path: usize,
    },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..PATHS.len(), 0u8..4, 1u64..5, 0usize..2).prop_map(|(path, state, counter, peer)| {
            Op::Put {
                path,
                state,
                counter,
                peer,
            }
        }),
        (0..PATHS.len(), 0usize..2, any::<bool>(), 1u64..5).prop_map(
            |(path, peer, keep, counter)| Op::Rival {
                path,
                peer,
                keep,
                counter
            }
        ),
        (0usize..2, 0u64..50).prop_map(|(peer, seq)| Op::Received { peer, seq }),
        (0usize..2, 0u64..50).prop_map(|(peer, seq)| Op::Acked { peer, seq }),
        (0usize..2).prop_map(|peer| Op::Forget { peer }),
        (0..PATHS.len()).prop_map(|path| Op::ForgetTombstone { path }),
    ]
}

fn state(kind: u8, counter: u64) -> State {
    match kind {
        0 => State::Deleted,
        1 => State::File {
            hash: ContentHash::of(&counter.to_le_bytes()),
            size: counter,
            mode: 0o644,
        },
        2 => State::Folder { mode: 0o755 },
        _ => State::Symlink {
            target: format!("../t{counter}"),
        },
    }
}

fn record(path: usize, kind: u8, counter: u64, peer: usize, seq: u64) -> Record {
    let mut version = VersionVector::new();
    for _ in 0..counter {
        version = version.bumped(PEERS[peer]);
    }
    Record {
        path: RelPath::new(PATHS[path]).unwrap(),
        state: state(kind, counter),
        version,
        mtime_ns: -(counter as i64) * 1_000_000_007,
        seq,
        // A time moved, for some: the version whose content it keeps.
        retimed: counter
            .is_multiple_of(2)
            .then(|| VersionVector::new().bumped(PEERS[1 - peer])),
        // Its maker, for some (records from before devices were named have none).
        by: (!counter.is_multiple_of(3)).then_some(PEERS[peer]),
    }
}

fn apply<L: Ledger>(ledger: &mut L, op: &Op, seq: u64) -> Result<(), L::Error> {
    match *op {
        Op::Put {
            path,
            state,
            counter,
            peer,
        } => {
            // Some records are taken from a peer as is, the others made here.
            let origin = (counter % 2 == 1).then_some(PEERS[peer]);
            ledger.put(&TASK, record(path, state, counter, peer, seq), origin)
        }
        Op::Rival {
            path,
            peer,
            keep,
            counter,
        } => {
            let rival = keep.then(|| record(path, 1, counter, peer, counter));
            ledger.set_rival(
                &TASK,
                &RelPath::new(PATHS[path]).unwrap(),
                &PEERS[peer],
                rival,
            )
        }
        Op::Received { peer, seq } => ledger.set_received_upto(&TASK, &PEERS[peer], seq),
        Op::Acked { peer, seq } => ledger.set_acked_upto(&TASK, &PEERS[peer], seq),
        Op::Forget { peer } => ledger.forget_peer(&TASK, &PEERS[peer]),
        Op::ForgetTombstone { path } => {
            ledger.forget_tombstone(&TASK, &RelPath::new(PATHS[path]).unwrap())
        }
    }
}

/// Everything a ledger can be asked, as one comparable value.
fn view<L: Ledger>(ledger: &L) -> Result<String, L::Error> {
    let mut out = format!(
        "tasks {:?} peers {:?} last {}\n",
        ledger.tasks()?,
        ledger.peers(&TASK)?,
        ledger.last_seq(&TASK)?
    );
    for path in PATHS {
        let path = RelPath::new(path).unwrap();
        out += &format!(
            "{path}: {:?} rivals {:?}\n",
            ledger.record(&TASK, &path)?,
            ledger.rivals(&TASK, &path)?
        );
        out += &format!("  under {:?}\n", ledger.records_under(&TASK, &path)?);
        for start in PATHS {
            let start = RelPath::new(start).unwrap();
            out += &format!(
                "  live from {start}: {:?} {:?}\n",
                ledger.live_under(&TASK, &path, &start, false, 2)?,
                ledger.live_under(&TASK, &path, &start, true, 2)?
            );
        }
    }
    out += &format!(
        "after 0: {:?}\nafter 2 (2): {:?}\n",
        ledger.records_after(&TASK, 0, 100)?,
        ledger.records_after(&TASK, 2, 2)?
    );
    out += &format!("rival paths {:?}\n", ledger.rival_paths(&TASK)?);
    out += &format!(
        "tombstones {:?}\n1..=5 (2): {:?}\n",
        ledger.tombstones(&TASK, 0, 100, 100)?,
        ledger.tombstones(&TASK, 1, 5, 2)?
    );
    for peer in PEERS {
        out += &format!(
            "{peer:?} received {} acked {}\n",
            ledger.received_upto(&TASK, &peer)?,
            ledger.acked_upto(&TASK, &peer)?
        );
    }
    Ok(out)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn sqlite_ledger_answers_like_the_in_memory_one(ops in proptest::collection::vec(op(), 0..40)) {
        let (_dir, mut store) = store();
        let mut memory = MemLedger::new();
        for peer in PEERS {
            let Ok(()) = memory.link(&TASK, &peer);
        }
        for (i, op) in ops.iter().enumerate() {
            let seq = i as u64 + 1;
            let Ok(()) = apply(&mut memory, op, seq);
            let mut tx = store.ledger().unwrap();
            apply(&mut tx, op, seq).unwrap();
            let Ok(expected) = view(&memory);
            prop_assert_eq!(view(&tx).unwrap(), expected);
            tx.commit().unwrap();
        }
    }
}

#[test]
fn an_uncommitted_call_leaves_nothing_and_a_committed_one_survives_a_reopen() {
    let (dir, mut store) = store();
    let mut tx = store.ledger().unwrap();
    tx.put(&TASK, record(0, 1, 1, 0, 1), None).unwrap();
    drop(tx);
    assert_eq!(
        store
            .ledger()
            .unwrap()
            .record(&TASK, &RelPath::new("a").unwrap())
            .unwrap(),
        None
    );

    let mut tx = store.ledger().unwrap();
    tx.put(&TASK, record(0, 1, 1, 0, 1), None).unwrap();
    tx.put(&TASK, record(1, 3, 2, 1, 2), Some(PEERS[1]))
        .unwrap();
    tx.set_acked_upto(&TASK, &PEERS[0], 1).unwrap();
    tx.commit().unwrap();
    drop(store);

    let store = Store::open(dir.path()).unwrap();
    // Device 0 acknowledged seq 1: one record is still pending for it. Device 1 lacks the
    // first; the second came from it, so it is not pending there.
    assert_eq!(store.pending_for(TASK, PEERS[0]).unwrap(), 1);
    assert_eq!(store.pending_for(TASK, PEERS[1]).unwrap(), 1);
}

#[test]
fn a_store_from_before_version_vectors_gets_one_version_per_path() {
    let (_dir, mut store) = store();
    let me = DeviceId::from_bytes([7; 32]);
    let file = qsync_base::FileEntry {
        path: RelPath::new("notes.txt").unwrap(),
        kind: qsync_base::EntryKind::File,
        size: 5,
        mtime_ns: 42,
        hash: Some(ContentHash::of(b"hello")),
        mode: 0,
    };
    store.record_mapping(TASK, &[file]).unwrap();
    assert_eq!(store.seed_records(TASK, me).unwrap(), 1);
    assert_eq!(store.seed_records(TASK, me).unwrap(), 0, "only once");
    let tx = store.ledger().unwrap();
    let record = tx
        .record(&TASK, &RelPath::new("notes.txt").unwrap())
        .unwrap()
        .unwrap();
    assert_eq!(record.version, VersionVector::new().bumped(me));
    assert!(matches!(
        record.state,
        State::File {
            size: 5,
            mode: 0,
            ..
        }
    ));
}

/// The copy of a file version the core's records name is the base of later patches: the
/// sweep at open keeps it, and removes copies nothing names.
#[test]
fn the_sweep_at_open_keeps_the_blobs_records_name() {
    let (dir, mut store) = store();
    let named = store.blobs().put(&b"the current version"[..]).unwrap();
    let orphan = store.blobs().put(&b"a version since replaced"[..]).unwrap();
    let mut tx = store.ledger().unwrap();
    let file = State::File {
        hash: named,
        size: 19,
        mode: 0o644,
    };
    let path = RelPath::new("notes.txt").unwrap();
    let version = VersionVector::new().bumped(PEERS[0]);
    let current = Record {
        path,
        state: file,
        version,
        mtime_ns: 0,
        seq: 1,
        retimed: None,
        by: None,
    };
    tx.put(&TASK, current, None).unwrap();
    tx.commit().unwrap();
    drop(store);
    let store = Store::open(dir.path()).unwrap();
    assert!(store.blobs().contains(&named));
    assert!(!store.blobs().contains(&orphan));
}
