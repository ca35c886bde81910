//! Folded runs of records (`fold.rs`) from the receiving side: a fold that cannot be
//! rebuilt here is asked for in full, and nothing from its first number on is
//! acknowledged until its records come; a peer's fold or request that no honest device
//! makes is refused or ignored.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{
    Core, Effect, Fold, Input, Ledger, MemLedger, Message, Record, Shape, State, ACK_DELAY,
};

const A: DeviceId = DeviceId::from_bytes([1; 32]);
const B: DeviceId = DeviceId::from_bytes([2; 32]);
const TASK: TaskId = TaskId::from_bytes([7; 32]);

/// Device B, linked with A and greeted by it; its ledger holds `x` as A made it.
fn b_with_x() -> (Core, MemLedger, Instant, Record) {
    let (mut core, mut ledger) = (Core::new(B), MemLedger::new());
    let now = Instant::now();
    let x = Record {
        path: RelPath::new("x").unwrap(),
        state: State::File {
            hash: ContentHash::of(b"x"),
            size: 1,
            mode: 0o644,
        },
        version: VersionVector::new().bumped(A),
        mtime_ns: 1,
        seq: 1,
        retimed: None,
        by: None,
    };
    ledger.put(&TASK, x.clone(), Some(A)).unwrap();
    for input in [
        Input::Link {
            task: TASK,
            peer: A,
        },
        Input::Connected { peer: A },
        received(Message::Hello {
            task: TASK,
            after: 0,
            reply: false,
        }),
    ] {
        core.handle(now, input, &mut ledger).unwrap();
    }
    while core.poll_effect().is_some() {}
    (core, ledger, now, x)
}

fn received(message: Message) -> Input {
    Input::Received { from: A, message }
}

/// Everything B sends A from now on.
fn sent(core: &mut Core) -> Vec<Message> {
    std::iter::from_fn(|| core.poll_effect())
        .filter_map(|e| match e {
            Effect::Send { to, message } if to == A => Some(message),
            _ => None,
        })
        .collect()
}

fn acked(messages: &[Message]) -> Option<u64> {
    messages
        .iter()
        .filter_map(|m| match m {
            Message::Ack { upto, .. } => Some(*upto),
            _ => None,
        })
        .max()
}

fn deleted_fold(first_seq: u64, count: u32) -> Fold {
    Fold {
        shape: Shape::Deleted {
            root: RelPath::new("d").unwrap(),
            mtime_ns: 5,
        },
        start: RelPath::new("d/b").unwrap(),
        count,
        first_seq,
        digest: ContentHash::of(b"not these records"),
    }
}

#[test]
fn a_fold_b_cannot_rebuild_is_asked_for_and_holds_the_acknowledgements_until_it_comes() {
    let (mut core, mut ledger, now, x) = b_with_x();
    let mut give = |core: &mut Core, at: Instant, message| {
        core.handle(at, received(message), &mut ledger).unwrap();
        core.handle_timeout(at + ACK_DELAY, &mut ledger).unwrap();
        sent(core)
    };
    // A's numbers up to 3 are covered; its fold of 4..=6 names a folder B does not hold.
    let said = give(
        &mut core,
        now,
        Message::Records {
            task: TASK,
            records: vec![],
            upto: 3,
        },
    );
    assert_eq!(acked(&said), Some(3));
    let fold = Message::Fold {
        task: TASK,
        fold: deleted_fold(4, 3),
        upto: 6,
    };
    let said = give(&mut core, now, fold);
    assert!(
        said.contains(&Message::Unfold {
            task: TASK,
            first: 4,
            last: 6
        }),
        "{said:?}"
    );
    // A later record B settles at once: still acknowledged no further than 3.
    let later = Message::Records {
        task: TASK,
        records: vec![Record { seq: 7, ..x }],
        upto: 7,
    };
    let said = give(&mut core, now + Duration::from_millis(50), later);
    assert!(acked(&said).is_none_or(|upto| upto <= 3), "{said:?}");
    // The run comes in full (its records were replaced since: none is left): all of it
    // is acknowledged.
    let unfolded = Message::Unfolded {
        task: TASK,
        first: 4,
        last: 6,
        records: vec![],
    };
    let said = give(&mut core, now + Duration::from_millis(100), unfolded);
    assert_eq!(acked(&said), Some(7), "{said:?}");
}

#[test]
fn records_for_a_run_nobody_asked_for_are_not_taken() {
    let (mut core, mut ledger, now, x) = b_with_x();
    let unasked = Message::Unfolded {
        task: TASK,
        first: 4,
        last: 4,
        records: vec![Record {
            path: RelPath::new("y").unwrap(),
            seq: 4,
            ..x
        }],
    };
    core.handle(now, received(unasked), &mut ledger).unwrap();
    let orders: Vec<Effect> = std::iter::from_fn(|| core.poll_effect()).collect();
    assert!(
        !orders
            .iter()
            .any(|e| matches!(e, Effect::Fetch { .. } | Effect::Place(_))),
        "{orders:?}"
    );
}

#[test]
fn a_fold_of_no_records_or_past_the_bounds_is_refused() {
    for fold in [
        deleted_fold(4, 0),
        deleted_fold(4, 10_000),
        deleted_fold(u64::MAX, 2),
    ] {
        let (mut core, mut ledger, now, _) = b_with_x();
        let message = Message::Fold {
            task: TASK,
            fold: fold.clone(),
            upto: 4,
        };
        core.handle(now, received(message), &mut ledger).unwrap();
        let orders: Vec<Effect> = std::iter::from_fn(|| core.poll_effect()).collect();
        assert!(
            orders.iter().any(|e| matches!(e, Effect::Distrust { .. })),
            "{fold:?}: {orders:?}"
        );
        assert!(
            !orders.iter().any(|e| matches!(
                e,
                Effect::Send {
                    message: Message::Unfold { .. },
                    ..
                }
            )),
            "{fold:?}: {orders:?}"
        );
    }
}

#[test]
fn a_peer_asking_for_a_run_this_device_never_folded_gets_nothing() {
    let (mut core, mut ledger, now, _) = b_with_x();
    let ask = Message::Unfold {
        task: TASK,
        first: 1,
        last: 200,
    };
    core.handle(now, received(ask), &mut ledger).unwrap();
    let said = sent(&mut core);
    assert!(
        !said.iter().any(|m| matches!(m, Message::Unfolded { .. })),
        "{said:?}"
    );
}

#[test]
fn records_of_a_hole_are_taken_only_from_its_answer_each_number_once() {
    let (mut core, mut ledger, now, x) = b_with_x();
    let file = |path: &str, seq| Record {
        path: RelPath::new(path).unwrap(),
        state: State::File {
            hash: ContentHash::of(path.as_bytes()),
            size: 9,
            mode: 0o644,
        },
        seq,
        ..x.clone()
    };
    let fold = Message::Fold {
        task: TASK,
        fold: deleted_fold(2, 1),
        upto: 2,
    };
    core.handle(now, received(fold), &mut ledger).unwrap();
    assert!(sent(&mut core).contains(&Message::Unfold {
        task: TASK,
        first: 2,
        last: 2
    }));
    let fetches = |core: &mut Core| {
        std::iter::from_fn(|| core.poll_effect())
            .filter(|e| matches!(e, Effect::Fetch { .. }))
            .count()
    };
    // Plain records naming the hole's number are not it: not taken.
    let plain = Message::Records {
        task: TASK,
        records: (0..100).map(|i| file(&format!("p{i}"), 2)).collect(),
        upto: 2,
    };
    core.handle(now, received(plain), &mut ledger).unwrap();
    assert_eq!(fetches(&mut core), 0);
    // Its answer: the number once, whatever else it carries.
    let answer = Message::Unfolded {
        task: TASK,
        first: 2,
        last: 2,
        records: vec![file("a", 2), file("b", 2), file("c", 3)],
    };
    core.handle(now, received(answer), &mut ledger).unwrap();
    assert_eq!(fetches(&mut core), 1);
}
