//! Records no honest device sends are refused: a link target over `MAX_LINK_TARGET`
//! bytes, a version naming more than `MAX_VERSION_ENTRIES` devices, a counter above
//! `MAX_COUNTER`. What came before is taken; the refused record and everything after it on
//! that connection are neither taken nor acknowledged, and the refusal is reported.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Instant;

use qsync_base::{DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{
    Core, Distrust, Effect, Input, Ledger, MemLedger, Message, Record, State, MAX_COUNTER,
    MAX_LINK_TARGET, MAX_VERSION_ENTRIES,
};

#[test]
fn oversized_links_versions_and_counters_are_refused_and_never_acknowledged() {
    let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
    let task = TaskId::from_bytes([7; 32]);
    let now = Instant::now();
    let link = |path: &str, len: usize, seq: u64, version: VersionVector| Record {
        path: RelPath::new(path).unwrap(),
        state: State::Symlink {
            target: "t".repeat(len),
        },
        version,
        mtime_ns: 0,
        seq,
        retimed: None,
        by: None,
    };
    let mut huge = VersionVector::new();
    for i in 0..=MAX_VERSION_ENTRIES {
        let mut id = [0u8; 32];
        id[..8].copy_from_slice(&(i as u64).to_le_bytes());
        huge = huge.bumped(DeviceId::from_bytes(id));
    }
    let one = VersionVector::new().bumped(b);
    let forged: VersionVector = vec![(b, MAX_COUNTER + 1)].into();
    // What a time-only version keeps is a version too: held to the same bounds.
    let keeping = |kept: VersionVector| Record {
        retimed: Some(kept),
        ..link("kept", 1, 2, one.clone())
    };
    let cases = [
        (
            link("long", MAX_LINK_TARGET + 1, 2, one.clone()),
            Distrust::LinkTooLong,
        ),
        (link("wide", 1, 2, huge.clone()), Distrust::TooManyDevices),
        (link("high", 1, 2, forged.clone()), Distrust::NumberTooLarge),
        (keeping(huge), Distrust::TooManyDevices),
        (keeping(forged), Distrust::NumberTooLarge),
    ];
    for (bad, why) in cases {
        let (mut core, mut ledger) = (Core::new(a), MemLedger::new());
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
        while core.poll_effect().is_some() {}
        let records = vec![
            link("first", MAX_LINK_TARGET, 1, one.clone()),
            bad,
            link("after", 1, 3, one.clone()),
        ];
        let message = Message::Records {
            task,
            records,
            upto: 3,
        };
        core.handle(now, Input::Received { from: b, message }, &mut ledger)
            .unwrap();
        let effects: Vec<Effect> = std::iter::from_fn(|| core.poll_effect()).collect();
        let placed: Vec<String> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Place(p) => Some(p.path.to_string()),
                _ => None,
            })
            .collect();
        assert_eq!(placed, ["first"], "{why:?}");
        let reported = effects.iter().find_map(|e| match e {
            Effect::Distrust { from, report, .. } if *from == b => Some(report.clone()),
            _ => None,
        });
        let report = reported.expect("the refusal is reported");
        assert_eq!(
            (report.why, report.count),
            (why, 2),
            "the bad record and the one after"
        );
        // Nothing at or after the refused record is acknowledged, whatever `upto` says.
        let acked = effects.iter().find_map(|e| match e {
            Effect::Send {
                message: Message::Ack { upto, .. },
                ..
            } => Some(*upto),
            _ => None,
        });
        assert!(
            acked.is_none_or(|upto| upto < 2),
            "{why:?}: acked {acked:?}"
        );
        core.handle(
            now,
            Input::Placed {
                task,
                path: RelPath::new("first").unwrap(),
                outcome: qsync_core::PlaceOutcome::Done,
            },
            &mut ledger,
        )
        .unwrap();
        let acks: Vec<u64> = std::iter::from_fn(|| core.poll_effect())
            .filter_map(|e| match e {
                Effect::Send {
                    message: Message::Ack { upto, .. },
                    ..
                } => Some(upto),
                _ => None,
            })
            .collect();
        assert_eq!(acks, [1], "{why:?}");
        assert!(ledger
            .record(&task, &RelPath::new("after").unwrap())
            .unwrap()
            .is_none());
    }
}
