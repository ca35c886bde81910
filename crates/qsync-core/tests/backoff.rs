//! A record whose content cannot be fetched (the peer has it no more, the disk here is
//! full, a limit refused it) or whose placement the disk refuses is tried again, waiting
//! twice as long after each failure in a row, up to `MAX_RETRY_AFTER`: nothing is dropped,
//! and nothing spins.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{
    Core, Effect, Input, MemLedger, Message, PlaceOutcome, Record, State, MAX_RETRY_AFTER,
    RETRY_AFTER,
};

fn requests(core: &mut Core) -> usize {
    let mut n = 0;
    while let Some(effect) = core.poll_effect() {
        if matches!(effect, Effect::Fetch { .. }) {
            n += 1;
        }
    }
    n
}

#[test]
fn failed_fetches_and_placements_are_retried_with_doubling_waits() {
    let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
    let task = TaskId::from_bytes([7; 32]);
    let (mut core, mut ledger) = (Core::new(a), MemLedger::new());
    let mut now = Instant::now();
    core.handle(now, Input::Link { task, peer: b }, &mut ledger)
        .unwrap();
    core.handle(now, Input::Connected { peer: b }, &mut ledger)
        .unwrap();
    let hello = Message::Hello {
        task,
        after: 0,
        reply: false,
    };
    core.handle(
        now,
        Input::Received {
            from: b,
            message: hello,
        },
        &mut ledger,
    )
    .unwrap();
    let path = RelPath::new("big.bin").unwrap();
    let hash = ContentHash::of(b"big");
    let record = Record {
        path: path.clone(),
        state: State::File {
            hash,
            size: 3,
            mode: 0o644,
        },
        version: VersionVector::new().bumped(b),
        mtime_ns: 0,
        seq: 1,
        retimed: None,
        by: None,
    };
    let records = Message::Records {
        task,
        records: vec![record],
        upto: 1,
    };
    core.handle(
        now,
        Input::Received {
            from: b,
            message: records,
        },
        &mut ledger,
    )
    .unwrap();
    assert_eq!(requests(&mut core), 1);

    let fetched = |ok| Input::Fetched {
        task,
        path: path.clone(),
        hash,
        from: b,
        ok,
    };
    let mut waits = Vec::new();
    for _ in 0..7 {
        core.handle(now, fetched(false), &mut ledger).unwrap();
        let due = core.poll_timeout().expect("a retry is due");
        waits.push(due - now);
        // Nothing before it is due...
        core.handle_timeout(due - Duration::from_millis(1), &mut ledger)
            .unwrap();
        assert_eq!(requests(&mut core), 0);
        // ...then asked again.
        now = due;
        core.handle_timeout(now, &mut ledger).unwrap();
        assert_eq!(requests(&mut core), 1);
    }
    let secs: Vec<u64> = waits.iter().map(Duration::as_secs).collect();
    assert_eq!(secs, [1, 2, 4, 8, 16, 16, 16]);
    assert_eq!(RETRY_AFTER, Duration::from_secs(1));
    assert_eq!(MAX_RETRY_AFTER, Duration::from_secs(16));

    // Fetched at last, but the disk refuses the placement: waits go on doubling.
    core.handle(now, fetched(true), &mut ledger).unwrap();
    let placement = std::iter::from_fn(|| core.poll_effect())
        .find_map(|e| match e {
            Effect::Place(p) => Some(p),
            _ => None,
        })
        .expect("a placement");
    let placed = Input::Placed {
        task,
        path: placement.path,
        outcome: PlaceOutcome::Failed,
    };
    core.handle(now, placed, &mut ledger).unwrap();
    assert_eq!(core.poll_timeout().unwrap() - now, MAX_RETRY_AFTER);
}
