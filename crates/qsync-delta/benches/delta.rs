//! Encode and apply throughput on a 1%-changed 100 MiB file, and the patch size next to
//! what `rsync --stats` sends for the same edit, printed in the same run.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use qsync_delta::{apply, encode, Delta, Options};

const SIZE: usize = 100 * 1024 * 1024;

fn pseudo_random(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// 1% of the file changed: 100 scattered overwrites of 1% / 100 each.
fn one_percent_changed(old: &[u8]) -> Vec<u8> {
    let mut new = old.to_vec();
    let edits = 100;
    let each = old.len() / 100 / edits;
    for k in 0..edits {
        let at = k * (old.len() / edits) + 4096;
        new[at..at + each].copy_from_slice(&pseudo_random(each, k as u64 + 99));
    }
    new
}

fn rsync_bytes(old: &[u8], new: &[u8]) -> Option<u64> {
    let dir = tempfile::tempdir().ok()?;
    std::fs::write(dir.path().join("dest"), old).ok()?;
    std::fs::write(dir.path().join("src"), new).ok()?;
    let out = Command::new("rsync")
        .args([
            "--stats",
            "--ignore-times",
            "--no-whole-file",
            "--inplace",
            "src",
            "dest",
        ])
        .current_dir(dir.path())
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let literal = text.lines().find(|l| l.starts_with("Literal data:"))?;
    let digits: String = literal.chars().filter(|c| c.is_ascii_digit()).collect();
    digits.parse().ok()
}

fn bench(c: &mut Criterion) {
    let old = pseudo_random(SIZE, 7);
    let new = one_percent_changed(&old);
    let options = Options::default();
    let Delta::Patch(patch) = encode(&old, &new, &options).unwrap() else {
        panic!("expected a patch")
    };
    let changed = SIZE / 100;
    match rsync_bytes(&old, &new) {
        Some(rsync) => println!(
            "patch size for 1% (1 MiB in 100 places) of 100 MiB changed: qsync {} bytes, rsync literal data {} bytes, ratio qsync/rsync = {:.3}",
            patch.len(),
            rsync,
            patch.len() as f64 / rsync as f64
        ),
        None => println!("patch size: qsync {} bytes for {changed} changed bytes (rsync not installed)", patch.len()),
    }

    let mut group = c.benchmark_group("delta 100MiB 1% changed");
    group.sample_size(10);
    group.throughput(Throughput::Bytes(SIZE as u64));
    group.bench_function("encode", |b| {
        b.iter(|| encode(&old, &new, &options).unwrap())
    });
    group.bench_function("apply", |b| {
        b.iter(|| apply(patch.as_bytes(), &old).unwrap())
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
