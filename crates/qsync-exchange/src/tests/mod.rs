//! Tests of the exchange machine: a model driver under random schedules (`model.rs`)
//! and named cases (`cases.rs`), sharing the devices below and the check of the counts
//! the exchange keeps beside its fetch table.

#![allow(clippy::unwrap_used, clippy::panic, clippy::expect_used)]

use std::collections::HashMap;

use super::*;

mod cases;
mod model;

const HONEST: DeviceId = DeviceId::from_bytes([1; 32]);
const LIAR: DeviceId = DeviceId::from_bytes([2; 32]);
const MUTE: DeviceId = DeviceId::from_bytes([3; 32]);
const TASK: TaskId = TaskId::from_bytes([9; 32]);
const DEVICES: [DeviceId; 3] = [HONEST, LIAR, MUTE];

/// Check the counts the exchange keeps beside its fetch table against the table.
fn check_counts(x: &Exchange) {
    let begun = |f: &&Fetch| matches!(f.progress, Progress::Whole | Progress::Patch(_));
    let reserved: u64 = x.fetches.values().filter(begun).map(|f| f.size).sum();
    assert_eq!(x.reserved, reserved, "reserved bytes");
    let patches: u64 = x
        .fetches
        .values()
        .map(|f| match f.progress {
            Progress::Patch(n) => n,
            _ => 0,
        })
        .sum();
    assert_eq!(x.patch_memory, patches, "patch memory");
    let mut open: HashMap<DeviceId, usize> = HashMap::new();
    for f in x.fetches.values() {
        if f.progress == Progress::Whole {
            *open.entry(f.asked).or_default() += 1;
        }
    }
    assert_eq!(x.open, open, "open transfers");
    for (key, f) in &x.fetches {
        assert_eq!(x.by_hash.get(&key.2), Some(key), "one fetch per content");
        assert!(f.kept <= f.size);
    }
    assert_eq!(x.by_hash.len(), x.fetches.len());
}
