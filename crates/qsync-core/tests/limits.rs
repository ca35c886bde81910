//! Records no honest device sends are ignored: a link target over `MAX_LINK_TARGET`
//! bytes, a version naming more than `MAX_VERSION_ENTRIES` devices. The records around
//! them are still taken.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use qsync_base::{DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{
    Core, Effect, Input, Ledger, MemLedger, Message, Record, State, MAX_LINK_TARGET,
    MAX_VERSION_ENTRIES,
};

#[test]
fn oversized_links_and_versions_are_ignored() {
    let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
    let task = TaskId::from_bytes([7; 32]);
    let (mut core, mut ledger) = (Core::new(a), MemLedger::new());
    let now = Instant::now();
    for input in [
        Input::Link { task, peer: b },
        Input::Connected { peer: b },
        Input::Received {
            from: b,
            message: Message::Hello {
                task,
                after: 0,
                reply: false,
            },
        },
    ] {
        core.handle(now, input, &mut ledger).unwrap();
    }
    let link = |path: &str, len: usize, seq: u64, version: VersionVector| Record {
        path: RelPath::new(path).unwrap(),
        state: State::Symlink {
            target: "t".repeat(len),
        },
        version,
        mtime_ns: 0,
        seq,
    };
    let mut huge = VersionVector::new();
    for i in 0..=MAX_VERSION_ENTRIES {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        huge = huge.bumped(DeviceId::from_bytes(id));
    }
    let one = VersionVector::new().bumped(b);
    let records = vec![
        link("long", MAX_LINK_TARGET + 1, 1, one.clone()),
        link("wide", 1, 2, huge),
        link("fine", MAX_LINK_TARGET, 3, one),
    ];
    let message = Message::Records {
        task,
        records,
        upto: 3,
    };
    core.handle(now, Input::Received { from: b, message }, &mut ledger)
        .unwrap();
    let placed: Vec<String> = std::iter::from_fn(|| core.poll_effect())
        .filter_map(|e| match e {
            Effect::Place(p) => Some(p.path.to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(placed, ["fine"]);
    assert!(ledger
        .record(&task, &RelPath::new("long").unwrap())
        .unwrap()
        .is_none());
}
