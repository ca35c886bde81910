//! Recording 10,000 file changes in one batch (goal < 1 s) and the initial mapping of a
//! 100,000-entry tree.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use qsync_base::{ContentHash, DeviceId, EntryKind, FileEntry, RelPath, TaskId};
use qsync_store::{Change, Store};

fn entry(i: usize) -> FileEntry {
    FileEntry {
        path: RelPath::new(format!("dir{}/sub{}/file{i}.txt", i % 100, i % 7)).unwrap(),
        kind: EntryKind::File,
        size: i as u64,
        mtime_ns: i as i64,
        hash: Some(ContentHash::of(&i.to_le_bytes())),
        mode: 0o644,
    }
}

fn fresh() -> (tempfile::TempDir, Store, TaskId, Vec<DeviceId>) {
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let task = TaskId::random();
    store.add_task(task, "/tmp/x".as_ref(), "bench").unwrap();
    let devices = vec![DeviceId::random(), DeviceId::random()];
    for d in &devices {
        store.add_link(task, *d, "peer").unwrap();
    }
    (dir, store, task, devices)
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("store");
    group.sample_size(10);
    group.bench_function("record 10,000 changes for 2 devices (one batch)", |b| {
        b.iter_batched(
            fresh,
            |(_dir, mut store, task, devices)| {
                let changes = (0..10_000)
                    .map(|i| Change::Modify {
                        entry: entry(i),
                        base: None,
                        delta: Some(vec![0u8; 64]),
                    })
                    .collect();
                store.record_changes(task, changes, &devices).unwrap()
            },
            BatchSize::PerIteration,
        )
    });
    let entries: Vec<FileEntry> = (0..100_000).map(entry).collect();
    group.bench_function("initial mapping of 100,000 entries", |b| {
        b.iter_batched(
            fresh,
            |(_dir, mut store, task, _)| store.record_mapping(task, &entries).unwrap(),
            BatchSize::PerIteration,
        )
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
