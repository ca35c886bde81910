//! The `core` fuzz target's corpus, replayed as a plain test (no nightly needed).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::{Path, PathBuf};

use qsync_base::{ContentHash, DeviceId, RelPath, VersionVector};
use qsync_core::fuzzing::{messages, TASK};
use qsync_core::{Message, Record, State};

fn corpus() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/core")
}

#[test]
fn fuzz_corpus_replays_without_panic() {
    let mut count = 0;
    for entry in std::fs::read_dir(corpus()).unwrap() {
        messages(
            std::time::Instant::now(),
            &std::fs::read(entry.unwrap().path()).unwrap(),
        );
        count += 1;
    }
    assert!(count > 0);
}

/// Writes the seed corpus: `cargo test -p qsync-core --test fuzz_corpus -- --ignored`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = corpus();
    std::fs::create_dir_all(&dir).unwrap();
    let peer = DeviceId::from_bytes([2; 32]);
    let record = |path: &str, state: State, seq: u64| Record {
        path: RelPath::new(path).unwrap(),
        state,
        version: VersionVector::new().bumped(peer),
        mtime_ns: 0,
        seq,
        retimed: None,
        by: None,
    };
    let file = State::File {
        hash: ContentHash::of(b"x"),
        size: 1,
        mode: 0o644,
    };
    let seeds: Vec<Vec<Message>> = vec![
        vec![Message::Hello {
            task: TASK,
            after: 0,
            reply: true,
        }],
        vec![Message::Records {
            task: TASK,
            records: vec![
                record("d", State::Folder { mode: 0o755 }, 1),
                record("d/f", file.clone(), 2),
                record(
                    "l",
                    State::Symlink {
                        target: "../x".into(),
                    },
                    3,
                ),
            ],
            upto: 3,
        }],
        vec![
            Message::Records {
                task: TASK,
                records: vec![record("a", file.clone(), 5)],
                upto: 5,
            },
            Message::Records {
                task: TASK,
                records: vec![record("a", State::Deleted, 6)],
                upto: 7,
            },
            Message::Ack {
                task: TASK,
                upto: 6,
            },
        ],
        vec![Message::Request {
            task: TASK,
            path: RelPath::new("a").unwrap(),
            hash: ContentHash::of(b"x"),
            size: 1,
            base: None,
            offset: 0,
            checks: Vec::new(),
        }],
        vec![Message::Request {
            task: TASK,
            path: RelPath::new("a").unwrap(),
            hash: ContentHash::of(b"x"),
            size: 3 << 20,
            base: None,
            offset: 2 << 20,
            checks: vec![ContentHash::of(b"p0"), ContentHash::of(b"p1")],
        }],
    ];
    for (i, seed) in seeds.iter().enumerate() {
        let mut bytes = Vec::new();
        for message in seed {
            bytes.extend(message.to_wire().unwrap());
        }
        std::fs::write(dir.join(format!("seed-{i}")), bytes).unwrap();
    }
}
