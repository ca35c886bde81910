//! Seal + open throughput: 64 KiB content frames (goal ≥ 2 GiB/s on one core), frames/s
//! for small messages, and handshakes/s.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qsync_wire::fuzzing::fixed_sessions;
use qsync_wire::fuzzing::{fixed_identities, handshake};
use qsync_wire::pairing::{Answerer, Asker};
use qsync_wire::{ContentHash, Message, PairingCode, RelPath, TaskId};

fn seal_open(c: &mut Criterion) {
    let task = TaskId::from_bytes([9; 32]);
    let mut group = c.benchmark_group("wire");

    let chunk = Message::Content {
        path: RelPath::new("photos/big.raw").unwrap(),
        hash: ContentHash::of(b"x"),
        offset: 0,
        data: Bytes::from(vec![0xab; 64 * 1024]),
        last: false,
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

    let hello = Message::Ping { nonce: 7 };
    group.throughput(Throughput::Elements(1));
    let (mut a, mut b) = fixed_sessions().unwrap();
    group.bench_function("seal+open small message", |bench| {
        bench.iter(|| {
            let frame = a.seal(task, &hello).unwrap();
            let mut frame = frame.to_vec();
            b.open(&mut frame).unwrap()
        })
    });

    // A whole Noise XX handshake, both sides: what each new connection costs.
    let (alice, bob) = fixed_identities().unwrap();
    group.bench_function("handshake (both sides)", |bench| {
        bench.iter(|| handshake(&alice, &bob).unwrap())
    });

    // Pairing's cryptography, both sides (SPAKE2 and the two proofs): what a link costs
    // beyond the people typing.
    let (a, b) = handshake(&alice, &bob).unwrap();
    let code: PairingCode = "1234-5678".parse().unwrap();
    group.bench_function("pairing (both sides)", |bench| {
        bench.iter(|| {
            let (asker, request) = Asker::start(&code, &a, task);
            let (answerer, answer, proof) = Answerer::answer(&code, &b, task, &request).unwrap();
            let proof_a = asker.check(&answer, &proof).unwrap();
            answerer.check(&proof_a).unwrap()
        })
    });
    group.finish();
}

criterion_group!(benches, seal_open);
criterion_main!(benches);
