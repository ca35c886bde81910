//! A peer that announces a version and never serves it does not hold the path: once a
//! record of another peer has waited [`PATIENCE`] behind it, that record goes first, its
//! content is asked of its own sender, and the announced version is decided after it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{
    Core, Effect, Input, Ledger, MemLedger, Message, PlaceOutcome, Record, State, PATIENCE,
};

fn file(content: &[u8]) -> State {
    State::File {
        hash: ContentHash::of(content),
        size: content.len() as u64,
        mode: 0o644,
    }
}

/// Every effect so far.
fn effects(core: &mut Core) -> Vec<Effect> {
    std::iter::from_fn(|| core.poll_effect()).collect()
}

/// The peers content was asked of, in order.
fn requests(effects: &[Effect]) -> Vec<DeviceId> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Fetch { from, .. } => Some(*from),
            _ => None,
        })
        .collect()
}

/// A device linked with a hostile and an honest peer, both greeted.
struct Scene {
    hostile: DeviceId,
    honest: DeviceId,
    task: TaskId,
    path: RelPath,
    start: Instant,
    core: Core,
    ledger: MemLedger,
}

impl Scene {
    fn new() -> Scene {
        let (a, hostile, honest) = (
            DeviceId::from_bytes([1; 32]),
            DeviceId::from_bytes([2; 32]),
            DeviceId::from_bytes([3; 32]),
        );
        let task = TaskId::from_bytes([7; 32]);
        let (mut core, mut ledger) = (Core::new(a), MemLedger::new());
        let start = Instant::now();
        for peer in [hostile, honest] {
            for input in [
                Input::Link { task, peer },
                Input::Connected { peer },
                Input::Received {
                    from: peer,
                    message: Message::Hello {
                        task,
                        after: 0,
                        reply: false,
                    },
                },
            ] {
                core.handle(start, input, &mut ledger).unwrap();
            }
        }
        effects(&mut core);
        Scene {
            hostile,
            honest,
            task,
            path: RelPath::new("report.txt").unwrap(),
            start,
            core,
            ledger,
        }
    }

    /// `from`'s first record, of `path`.
    fn records(
        task: TaskId,
        path: &RelPath,
        from: DeviceId,
        state: State,
        version: VersionVector,
    ) -> Input {
        Input::Received {
            from,
            message: Message::Records {
                task,
                records: vec![Record {
                    path: path.clone(),
                    state,
                    version,
                    mtime_ns: 0,
                    seq: 1,
                    retimed: None,
                    by: None,
                }],
                upto: 1,
            },
        }
    }
}

#[test]
fn a_peer_that_never_serves_holds_another_peers_record_for_patience_only() {
    let Scene {
        hostile,
        honest,
        task,
        path,
        start,
        mut core,
        mut ledger,
    } = Scene::new();
    let records = |from, state, version| Scene::records(task, &path, from, state, version);

    // The hostile device announces a version; its content is asked of it, and never comes.
    let announced: VersionVector = vec![(hostile, 1)].into();
    core.handle(
        start,
        records(hostile, file(b"never served"), announced),
        &mut ledger,
    )
    .unwrap();
    assert_eq!(requests(&effects(&mut core)), [hostile]);

    // The honest device's newer version of the same path waits behind it...
    let newer: VersionVector = vec![(hostile, 1), (honest, 1)].into();
    let content = file(b"the honest edit");
    core.handle(
        start,
        records(honest, content.clone(), newer.clone()),
        &mut ledger,
    )
    .unwrap();
    assert!(requests(&effects(&mut core)).is_empty());
    let almost = start + PATIENCE / 2;
    core.handle_timeout(almost, &mut ledger).unwrap();
    assert!(
        requests(&effects(&mut core)).is_empty(),
        "not before its time"
    );

    // ... for PATIENCE at most: then its content is asked of the honest device.
    let due = core.poll_timeout().expect("a check is due");
    assert!(due <= start + PATIENCE, "{:?}", due - start);
    core.handle_timeout(due, &mut ledger).unwrap();
    assert_eq!(requests(&effects(&mut core)), [honest]);

    let hash = ContentHash::of(b"the honest edit");
    let fetched = Input::Fetched {
        task,
        path: path.clone(),
        hash,
        from: honest,
        ok: true,
    };
    core.handle(due, fetched, &mut ledger).unwrap();
    let placed = effects(&mut core).into_iter().find_map(|e| match e {
        Effect::Place(p) => Some(p),
        _ => None,
    });
    assert_eq!(placed.expect("placed").target, content);
    let done = Input::Placed {
        task,
        path: path.clone(),
        outcome: PlaceOutcome::Done,
    };
    core.handle(due, done, &mut ledger).unwrap();
    let record = ledger.record(&task, &path).unwrap().expect("a record");
    assert_eq!((record.state, record.version), (content, newer));

    // The announced version, decided after it, is older: dropped without asking again,
    // and both streams are acknowledged.
    let after = effects(&mut core);
    assert!(requests(&after).is_empty(), "{after:?}");
    let acked: Vec<DeviceId> = after
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                message: Message::Ack { upto: 1, .. },
            } => Some(*to),
            _ => None,
        })
        .collect();
    assert!(
        acked.contains(&honest) && acked.contains(&hostile),
        "{after:?}"
    );
}

/// The record that went first for holding others does not give the path back to the
/// stuck one because that one claims to be newer (a forged claim of the honest device's
/// counter would pin the path again); the stuck one is decided in its turn.
#[test]
fn a_forged_newer_claim_does_not_pin_the_path_again() {
    let Scene {
        hostile,
        honest,
        task,
        path,
        start,
        mut core,
        mut ledger,
    } = Scene::new();
    let records = |from, state, version| Scene::records(task, &path, from, state, version);
    // Forged: it claims to have seen nine changes of the honest device.
    let forged: VersionVector = vec![(hostile, 1), (honest, 9)].into();
    let late = file(b"served late");
    core.handle(
        start,
        records(hostile, late.clone(), forged.clone()),
        &mut ledger,
    )
    .unwrap();
    let honest_edit = file(b"the honest edit");
    let version: VersionVector = vec![(honest, 1)].into();
    core.handle(
        start,
        records(honest, honest_edit.clone(), version),
        &mut ledger,
    )
    .unwrap();
    effects(&mut core);
    let due = core.poll_timeout().expect("a check is due");
    core.handle_timeout(due, &mut ledger).unwrap();
    assert_eq!(
        requests(&effects(&mut core)),
        [honest],
        "the honest record goes first"
    );

    // The hostile device's content comes after all, while its record waits at the back:
    // the core takes nothing out of turn (the daemon stages it under its hash).
    let fetched = |from: DeviceId, content: &[u8]| Input::Fetched {
        task,
        path: path.clone(),
        hash: ContentHash::of(content),
        from,
        ok: true,
    };
    core.handle(due, fetched(hostile, b"served late"), &mut ledger)
        .unwrap();
    assert!(effects(&mut core).is_empty(), "nothing before its turn");
    core.handle(due, fetched(honest, b"the honest edit"), &mut ledger)
        .unwrap();
    let placed: Vec<State> = effects(&mut core)
        .into_iter()
        .filter_map(|e| match e {
            Effect::Place(p) => Some(p.target),
            _ => None,
        })
        .collect();
    assert_eq!(placed, [honest_edit]);
    let done = Input::Placed {
        task,
        path: path.clone(),
        outcome: PlaceOutcome::Done,
    };
    core.handle(due, done.clone(), &mut ledger).unwrap();
    // Then the forged one, newer than the honest edit by its claim, in its turn: its
    // content is asked for again, and the daemon finds it staged.
    assert_eq!(requests(&effects(&mut core)), [hostile]);
    core.handle(due, fetched(hostile, b"served late"), &mut ledger)
        .unwrap();
    let placed: Vec<State> = effects(&mut core)
        .into_iter()
        .filter_map(|e| match e {
            Effect::Place(p) => Some(p.target),
            _ => None,
        })
        .collect();
    assert_eq!(placed, [late]);
    core.handle(due, done, &mut ledger).unwrap();
    let record = ledger.record(&task, &path).unwrap().expect("a record");
    assert_eq!(record.version, forged);
}
