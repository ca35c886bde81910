//! Seal + open throughput: 64 KiB chunk frames (goal ≥ 1 GiB/s on one core) and frames/s
//! for small messages.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qsync_wire::fuzzing::fixed_sessions;
use qsync_wire::{Message, TaskId, UpdateId};

fn seal_open(c: &mut Criterion) {
    let task = TaskId::from_bytes([9; 32]);
    let mut group = c.benchmark_group("wire");

    let chunk = Message::Chunk {
        update: UpdateId(1),
        offset: 0,
        data: Bytes::from(vec![0xab; 64 * 1024]),
    };
    group.throughput(Throughput::Bytes(64 * 1024));
    let (mut a, mut b) = fixed_sessions().unwrap();
    group.bench_function("seal+open 64KiB chunk", |bench| {
        bench.iter(|| {
            let frame = a.seal(task, &chunk).unwrap();
            let mut frame = frame.to_vec();
            b.open(&mut frame).unwrap()
        })
    });

    let hello = Message::ModificationDone {
        update: UpdateId(7),
        outcome: qsync_wire::Outcome::Applied,
    };
    group.throughput(Throughput::Elements(1));
    let (mut a, mut b) = fixed_sessions().unwrap();
    group.bench_function("seal+open small message", |bench| {
        bench.iter(|| {
            let frame = a.seal(task, &hello).unwrap();
            let mut frame = frame.to_vec();
            b.open(&mut frame).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
