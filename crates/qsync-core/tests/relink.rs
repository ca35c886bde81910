//! A link made anew starts the exchange from scratch: the peer may have removed the task
//! and made it again, its sequence numbers starting over, and it lacks what it once sent.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{Core, Effect, Input, Ledger, MemLedger, Message, Record, State};

#[test]
fn a_relinked_peer_is_greeted_from_the_start_and_gets_back_what_came_from_it() {
    let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
    let task = TaskId::from_bytes([7; 32]);
    let (mut core, mut ledger) = (Core::new(a), MemLedger::new());
    let now = Instant::now();
    core.handle(now, Input::Link { task, peer: b }, &mut ledger)
        .unwrap();
    // B's file, taken from B as is; B's sequence processed up to 500.
    let from_b = Record {
        path: RelPath::new("from-b.txt").unwrap(),
        state: State::File {
            hash: ContentHash::of(b"b"),
            size: 1,
            mode: 0o644,
        },
        version: VersionVector::new().bumped(b),
        mtime_ns: 0,
        seq: 1,
        retimed: None,
        by: None,
    };
    ledger.put(&task, from_b, Some(b)).unwrap();
    ledger.set_received_upto(&task, &b, 500).unwrap();
    ledger.set_acked_upto(&task, &b, 1).unwrap();

    // B removed the task (unlinking), and links it again.
    ledger.unlink(&task, &b);
    core.handle(now, Input::Link { task, peer: b }, &mut ledger)
        .unwrap();
    core.handle(now, Input::Connected { peer: b }, &mut ledger)
        .unwrap();
    let hello = core.poll_effect();
    assert!(
        matches!(
            hello,
            Some(Effect::Send {
                message: Message::Hello { after: 0, .. },
                ..
            })
        ),
        "greeted from the start: {hello:?}"
    );
    // B asks for everything: its own old file comes back to it.
    let ask = Message::Hello {
        task,
        after: 0,
        reply: false,
    };
    core.handle(
        now,
        Input::Received {
            from: b,
            message: ask,
        },
        &mut ledger,
    )
    .unwrap();
    let sent: Vec<Record> = std::iter::from_fn(|| core.poll_effect())
        .filter_map(|e| match e {
            Effect::Send {
                message: Message::Records { records, .. },
                ..
            } => Some(records),
            _ => None,
        })
        .flatten()
        .collect();
    assert_eq!(sent.len(), 1, "{sent:?}");
    assert_eq!(sent[0].path.as_str(), "from-b.txt");
}
