//! A peer that reconnects sends again what this device had not settled, under the same
//! sequence numbers. A placement of the first copy may still be under way; when it ends
//! (or the new copy replaces it), the new copy must not count as settled: the peer would
//! then never send it again, and a second disconnection before it is carried out would
//! lose it. Found by the simulator once placements finished later than ordered.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use qsync_base::{DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{Core, Effect, Input, MemLedger, Message, PlaceOutcome, Record, State};

/// Every order the core has given since the last call.
fn orders(core: &mut Core) -> Vec<Effect> {
    std::iter::from_fn(|| core.poll_effect()).collect()
}

/// The highest acknowledgement among `orders`.
fn acked(orders: &[Effect]) -> Option<u64> {
    orders
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                message: Message::Ack { upto, .. },
                ..
            } => Some(*upto),
            _ => None,
        })
        .max()
}

fn give(core: &mut Core, ledger: &mut MemLedger, now: Instant, input: Input) {
    core.handle(now, input, ledger).unwrap();
}

/// The peer `from` greets for `task` (its sequence from the start) and sends `record`.
fn greet_and_send(
    core: &mut Core,
    ledger: &mut MemLedger,
    now: Instant,
    (task, from): (TaskId, DeviceId),
    record: &Record,
) {
    let hello = Message::Hello {
        task,
        after: 0,
        reply: false,
    };
    let records = Message::Records {
        task,
        records: vec![record.clone()],
        upto: record.seq,
    };
    for message in [hello, records] {
        give(core, ledger, now, Input::Received { from, message });
    }
}

/// How the peer's sequence starts again while a placement of its is under way.
#[derive(Clone, Copy)]
enum Restart {
    /// It goes away and comes back.
    Reconnect,
    /// It is linked again while connected (paired anew, say).
    Relink,
}

#[test]
fn a_record_sent_again_is_not_acknowledged_before_it_is_placed() {
    resent(Restart::Reconnect);
}

#[test]
fn a_record_sent_again_after_a_new_link_is_not_acknowledged_before_it_is_placed() {
    resent(Restart::Relink);
}

fn resent(restart: Restart) {
    let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
    let task = TaskId::from_bytes([7; 32]);
    let (mut core, mut ledger) = (Core::new(b), MemLedger::new());
    let now = Instant::now();
    give(&mut core, &mut ledger, now, Input::Link { task, peer: a });
    let folder = Record {
        path: RelPath::new("docs").unwrap(),
        state: State::Folder { mode: 0o755 },
        version: VersionVector::new().bumped(a),
        mtime_ns: 0,
        seq: 1,
        retimed: None,
        by: None,
    };
    // A sends the folder; its placement is ordered, and A goes away before it is done.
    give(&mut core, &mut ledger, now, Input::Connected { peer: a });
    greet_and_send(&mut core, &mut ledger, now, (task, a), &folder);
    assert_eq!(acked(&orders(&mut core)), None, "not placed yet");
    if let Restart::Reconnect = restart {
        give(&mut core, &mut ledger, now, Input::Disconnected { peer: a });
    }
    // The placement finds the disk changed meanwhile: to be decided again later.
    let placed = |outcome| Input::Placed {
        task,
        path: folder.path.clone(),
        outcome,
    };
    give(&mut core, &mut ledger, now, placed(PlaceOutcome::Diverged));

    // A is back and sends the folder again, under the same number.
    let again_from = match restart {
        Restart::Reconnect => Input::Connected { peer: a },
        Restart::Relink => Input::Link { task, peer: a },
    };
    give(&mut core, &mut ledger, now, again_from);
    greet_and_send(&mut core, &mut ledger, now, (task, a), &folder);
    let again = orders(&mut core);
    assert_eq!(
        acked(&again),
        None,
        "acknowledged a record that is not on disk yet"
    );
    assert!(
        again.iter().any(|e| matches!(e, Effect::Place(_))),
        "the new copy's placement is ordered: {again:?}"
    );

    // Carried out at last: now it is acknowledged.
    give(&mut core, &mut ledger, now, placed(PlaceOutcome::Done));
    assert_eq!(acked(&orders(&mut core)), Some(1));
}
