//! A path this device does not sync (its `.qsyncignore` excludes it): the driver answers
//! the core's order to fetch or place a received version of it with `Input::Excluded`.
//! The record is then acknowledged, so that its sender settles, kept as a rival in the
//! ledger (it survives a restart), and nothing is recorded: were the path synced again,
//! what is on disk here would meet the peers' versions as any concurrent change does, not
//! be taken as newer than one it never saw.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{Core, Effect, Input, Ledger, MemLedger, Message, Record, State};

/// Every order the core has given since the last call.
fn orders(core: &mut Core) -> Vec<Effect> {
    std::iter::from_fn(|| core.poll_effect()).collect()
}

fn fetches(orders: &[Effect], path: &RelPath) -> usize {
    orders
        .iter()
        .filter(|e| matches!(e, Effect::Fetch { path: p, .. } if p == path))
        .count()
}

#[test]
fn a_received_version_of_an_excluded_path_is_acknowledged_kept_and_decided_again() {
    let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
    let task = TaskId::from_bytes([7; 32]);
    let (mut core, mut ledger) = (Core::new(b), MemLedger::new());
    let now = Instant::now();
    let path = RelPath::new("skip.tmp").unwrap();
    let record = Record {
        path: path.clone(),
        state: State::File {
            hash: ContentHash::of(b"theirs"),
            size: 6,
            mode: 0o644,
        },
        version: VersionVector::new().bumped(a),
        mtime_ns: 1,
        seq: 1,
        retimed: None,
        by: None,
    };
    let hello = Message::Hello {
        task,
        after: 0,
        reply: false,
    };
    let records = Message::Records {
        task,
        records: vec![record],
        upto: 1,
    };
    let mut give = |core: &mut Core, input| core.handle(now, input, &mut ledger).unwrap();
    give(&mut core, Input::Link { task, peer: a });
    give(&mut core, Input::Connected { peer: a });
    for message in [hello, records] {
        give(&mut core, Input::Received { from: a, message });
    }
    assert_eq!(fetches(&orders(&mut core), &path), 1);
    let excluded = || Input::Excluded {
        task,
        path: path.clone(),
    };
    give(&mut core, excluded());
    let after = orders(&mut core);
    let acked = after.iter().any(|e| {
        matches!(
            e,
            Effect::Send {
                message: Message::Ack { upto: 1, .. },
                ..
            }
        )
    });
    assert!(acked, "not acknowledged: {after:?}");
    assert!(!after.iter().any(|e| matches!(e, Effect::Place(_))));
    // The rules change (the path may be synced now): the version is decided again, and
    // its content asked for.
    give(&mut core, Input::RulesChanged { task });
    assert_eq!(fetches(&orders(&mut core), &path), 1, "not decided again");
    // Excluded again: kept again, once.
    give(&mut core, excluded());
    give(&mut core, Input::RulesChanged { task });
    assert_eq!(fetches(&orders(&mut core), &path), 1);
    give(&mut core, excluded());
    // The daemon restarts: the version is still there to decide once the rules change.
    let mut core = Core::new(b);
    for input in [Input::Connected { peer: a }, Input::RulesChanged { task }] {
        core.handle(now, input, &mut ledger).unwrap();
    }
    assert_eq!(fetches(&orders(&mut core), &path), 1, "lost at the restart");
}

#[test]
fn nothing_is_recorded_for_an_excluded_path() {
    let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
    let task = TaskId::from_bytes([7; 32]);
    let (mut core, mut ledger) = (Core::new(b), MemLedger::new());
    let now = Instant::now();
    let path = RelPath::new("x.iso").unwrap();
    let record = Record {
        path: path.clone(),
        state: State::File {
            hash: ContentHash::of(b"x"),
            size: 1,
            mode: 0o644,
        },
        version: VersionVector::new().bumped(a),
        mtime_ns: 0,
        seq: 1,
        retimed: None,
        by: None,
    };
    for input in [
        Input::Link { task, peer: a },
        Input::Connected { peer: a },
        Input::Received {
            from: a,
            message: Message::Hello {
                task,
                after: 0,
                reply: false,
            },
        },
        Input::Received {
            from: a,
            message: Message::Records {
                task,
                records: vec![record],
                upto: 1,
            },
        },
        Input::Excluded {
            task,
            path: path.clone(),
        },
    ] {
        core.handle(now, input, &mut ledger).unwrap();
    }
    assert_eq!(ledger.received_upto(&task, &a).unwrap(), 1, "settled");
    assert_eq!(
        ledger.record(&task, &path).unwrap(),
        None,
        "nothing recorded"
    );
}
