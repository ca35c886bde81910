//! What a device takes from a peer never goes back to that peer, whatever order the
//! driver's placements finish in. Seen on real daemons under load: a folder and a file in
//! it arrive together, the file's placement (which makes the folder it needs) finishes
//! before the folder's own, and the folder made for the file was sent back as a change.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{Core, Effect, Input, MemLedger, Message, PlaceOutcome, Placement, Record, State};

/// Every order the core has given since the last call.
fn orders(core: &mut Core) -> Vec<Effect> {
    std::iter::from_fn(|| core.poll_effect()).collect()
}

/// The records sent to `peer` among `orders`.
fn records_to(orders: &[Effect], peer: DeviceId) -> Vec<Record> {
    orders
        .iter()
        .filter_map(|e| match e {
            Effect::Send {
                to,
                message: Message::Records { records, .. },
            } if *to == peer => Some(records.clone()),
            _ => None,
        })
        .flatten()
        .collect()
}

fn placements(orders: &[Effect]) -> Vec<Placement> {
    orders
        .iter()
        .filter_map(|e| match e {
            Effect::Place(p) => Some(p.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn a_folder_made_for_a_file_that_lands_first_is_not_sent_back() {
    let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
    let task = TaskId::from_bytes([7; 32]);
    let (mut core, mut ledger) = (Core::new(b), MemLedger::new());
    let now = Instant::now();
    core.handle(now, Input::Link { task, peer: a }, &mut ledger)
        .unwrap();
    core.handle(now, Input::Connected { peer: a }, &mut ledger)
        .unwrap();
    let hello = Message::Hello {
        task,
        after: 0,
        reply: false,
    };
    core.handle(
        now,
        Input::Received {
            from: a,
            message: hello,
        },
        &mut ledger,
    )
    .unwrap();
    orders(&mut core);

    // A made `doomed/inner` and a file in it; both records arrive in one message.
    let (folder, file) = (
        RelPath::new("doomed/inner").unwrap(),
        RelPath::new("doomed/inner/x").unwrap(),
    );
    let hash = ContentHash::of(b"x");
    let from_a = |path: &RelPath, state: State, seq| Record {
        path: path.clone(),
        state,
        version: VersionVector::new().bumped(a),
        mtime_ns: 0,
        seq,
        retimed: None,
        by: None,
    };
    let records = Message::Records {
        task,
        records: vec![
            from_a(
                &RelPath::new("doomed").unwrap(),
                State::Folder { mode: 0o755 },
                1,
            ),
            from_a(&folder, State::Folder { mode: 0o755 }, 2),
            from_a(
                &file,
                State::File {
                    hash,
                    size: 1,
                    mode: 0o644,
                },
                3,
            ),
        ],
        upto: 3,
    };
    core.handle(
        now,
        Input::Received {
            from: a,
            message: records,
        },
        &mut ledger,
    )
    .unwrap();
    // The folders are placed at once; the file is fetched first.
    let first = orders(&mut core);
    let folders = placements(&first);
    assert_eq!(folders.len(), 2, "{first:?}");
    core.handle(
        now,
        Input::Placed {
            task,
            path: folders[0].path.clone(),
            outcome: PlaceOutcome::Done,
        },
        &mut ledger,
    )
    .unwrap();
    core.handle(
        now,
        Input::Fetched {
            task,
            path: file.clone(),
            hash,
            from: a,
            ok: true,
        },
        &mut ledger,
    )
    .unwrap();
    let second = orders(&mut core);
    let for_file = placements(&second);
    assert_eq!(for_file.len(), 1, "{second:?}");
    assert_eq!(
        for_file[0].parents,
        std::slice::from_ref(&folder),
        "the file's placement makes the folder whose own placement has not finished"
    );

    // The file's placement finishes before the folder's.
    let mut sent = records_to(&second, a);
    for path in [&file, &folder] {
        core.handle(
            now,
            Input::Placed {
                task,
                path: path.clone(),
                outcome: PlaceOutcome::Done,
            },
            &mut ledger,
        )
        .unwrap();
        sent.extend(records_to(&orders(&mut core), a));
    }
    assert!(sent.is_empty(), "sent back to A what came from A: {sent:?}");
}
