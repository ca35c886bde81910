//! Simulator throughput: seeded random schedules (3–5 devices, partitions, crashes, pairs,
//! line and star) run to the end, settled and checked, per second.
#![allow(
    missing_docs,
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    dead_code
)]

#[path = "../tests/sim/mod.rs"]
mod sim;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use sim::{random_ops, run, Rng, Topology};

fn schedules(c: &mut Criterion) {
    const PER_ITER: u64 = 100;
    let mut group = c.benchmark_group("simulator");
    group.throughput(Throughput::Elements(PER_ITER));
    group.sample_size(10);
    let mut next = 0u64;
    group.bench_function("100 random schedules", |b| {
        b.iter(|| {
            for _ in 0..PER_ITER {
                let seed = next;
                next += 1;
                let mut rng = Rng::new(seed);
                let devices = 3 + rng.below(3) as usize;
                let len = 5 + rng.below(40) as usize;
                let faults = rng.chance(50);
                let ops = random_ops(&mut rng, devices, len, faults);
                let topology =
                    [Topology::Pairs, Topology::Line, Topology::Star][(seed % 3) as usize];
                if let Err(failure) = run(seed, devices, topology, &ops) {
                    panic!("seed {seed}: {}", failure.0);
                }
            }
        })
    });
    group.finish();
}

criterion_group!(benches, schedules);
criterion_main!(benches);
