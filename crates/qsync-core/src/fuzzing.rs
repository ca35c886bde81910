//! Entry points for the `core` fuzz target (and its corpus replay in `cargo test`): bytes
//! from a peer, decoded as the driver decodes them, fed to a core. Nothing may panic, and
//! the core must keep its own invariants whatever a peer says.

use std::time::{Duration, Instant};

use qsync_base::{DeviceId, TaskId};

use crate::{Core, Effect, Input, MemLedger, Message, PlaceOutcome};

/// The device the fuzzed messages come from, and the task they name.
pub const PEER: DeviceId = DeviceId::from_bytes([2; 32]);
/// The task the fuzzed core syncs with [`PEER`].
pub const TASK: TaskId = TaskId::from_bytes([7; 32]);

/// `data` is a sequence of message bodies ([`Message::to_wire`], about [`TASK`]) from [`PEER`], fed at time `start`
/// (the caller's clock: this crate reads none) to a linked and connected core; every
/// placement it orders is reported done, every fetch successful.
pub fn messages(start: Instant, data: &[u8]) {
    let mut core = Core::new(DeviceId::from_bytes([1; 32]));
    let mut ledger = MemLedger::new();
    let feed = |core: &mut Core, ledger: &mut MemLedger, input: Input| {
        let Ok(()) = core.handle(start, input, ledger);
        let mut answers = Vec::new();
        while let Some(effect) = core.poll_effect() {
            match effect {
                Effect::Place(p) => answers.push(Input::Placed {
                    task: p.task,
                    path: p.path,
                    outcome: PlaceOutcome::Done,
                }),
                Effect::Fetch {
                    task, path, hash, ..
                } => answers.push(Input::Fetched {
                    task,
                    path,
                    hash,
                    from: PEER,
                    ok: true,
                }),
                _ => {}
            }
        }
        answers
    };
    let mut pending = feed(
        &mut core,
        &mut ledger,
        Input::Link {
            task: TASK,
            peer: PEER,
        },
    );
    pending.extend(feed(
        &mut core,
        &mut ledger,
        Input::Connected { peer: PEER },
    ));
    let mut rest = data;
    while !rest.is_empty() {
        let Ok((message, tail)) = Message::take_from_wire(TASK, rest) else {
            break;
        };
        rest = tail;
        pending.extend(feed(
            &mut core,
            &mut ledger,
            Input::Received {
                from: PEER,
                message,
            },
        ));
        // Answers may order more; a bound keeps a hostile sequence from looping forever.
        for _ in 0..64 {
            let Some(input) = pending.pop() else {
                break;
            };
            pending.extend(feed(&mut core, &mut ledger, input));
        }
    }
    let Ok(()) = core.handle_timeout(start + Duration::from_secs(3600), &mut ledger);
}
