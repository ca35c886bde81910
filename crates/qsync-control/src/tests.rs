//! The protocol's round trips and human forms.
#![allow(clippy::unwrap_used)]
use super::*;
use proptest::prelude::*;

fn id() -> impl Strategy<Value = [u8; 32]> {
    any::<[u8; 32]>()
}

proptest! {
    /// Every command survives the line protocol (one line of JSON), paths with spaces,
    /// newlines and any Unicode included.
    #[test]
    fn commands_survive_one_line(task in id(), device in id(), path in ".{0,40}", name in proptest::option::of(".{0,20}")) {
        let (task, device) = (TaskId::from_bytes(task), DeviceId::from_bytes(device));
        for command in [
            Command::TaskAdd { path: PathBuf::from(&path), name: name.clone(), folder_type: Some(FolderType::ReceiveOnly) },
            Command::Unlink { task, device },
            Command::TaskSet { task, links_out: name.as_ref().map(|n| n.len() % 2 == 0), versions: None, paused: Some(true), folder_type: Some(FolderType::SendOnly) },
            Command::Revert { task },
            Command::RevertPreview { task },
            Command::TaskSet { task, links_out: None, paused: None, folder_type: None, versions: Some(VersionPolicy { keep: Keep::Trash { days: 7 }, cap: Some(1 << 30) }) },
            Command::Versions { path: Some(PathBuf::from(&path)), newest: Some(100) },
            Command::Restore { path: PathBuf::from(&path), version: Some(3), at: Some(-1), to: None },
            Command::AppAdd { kind: "grapin".into(), name: path.clone(), folder: path.clone().into(), app_dir: None, config: "{\"a\": 1}\n".into() },
        ] {
            let line = serde_json::to_string(&command).unwrap();
            prop_assert!(!line.contains('\n'));
            prop_assert_eq!(serde_json::from_str::<Command>(&line).unwrap(), command);
        }
    }
}

#[test]
fn text_from_the_network_cannot_drive_the_terminal() {
    let event = DaemonEvent::Question {
        id: "1\u{1b}]0;x".into(),
        flag: "CHOOSELINKPATH".into(),
        context: "evil\u{1b}[2J\nconnected aaaa".into(),
    };
    let shown = event.to_string();
    assert!(
        !shown.contains('\u{1b}') && !shown.contains('\n'),
        "{shown}"
    );
}

#[test]
fn status_shows_transfers_under_way_and_reads_older_replies_without_them() {
    let device = DeviceId::from_bytes([3; 32]);
    let task = TaskId::from_bytes([4; 32]);
    let mut status = Status {
        device,
        tasks: 1,
        connected: 1,
        updates: 0,
        pending: 0,
        deltas: 0,
        sent: 0,
        received: 0,
        wire_sent: 0,
        wire_received: 0,
        unsupported: 0,
        versions_bytes: 0,
        paused: Vec::new(),
        not_synced: Vec::new(),
        ignore_problems: Vec::new(),
        scans: Vec::new(),
        distrusted: Vec::new(),
        transfers: vec![TransferInfo {
            device,
            task,
            path: RelPath::new("films/a\u{1b}[2J.mkv").unwrap(),
            done: 600,
            size: 1000,
            patch: false,
            rate: 300,
        }],
    };
    let shown = Reply::Status(status.clone()).to_string();
    let line = shown.lines().last().unwrap();
    assert!(
        line.starts_with(&format!("receiving {task} films/a")),
        "{line}"
    );
    assert!(
        line.ends_with(&format!("from {device} 600 of 1000 bytes 300 B/s")),
        "{line}"
    );
    assert!(!shown.contains('\u{1b}'), "{shown}");
    // A reply of an older daemon, without transfers, still reads.
    status.transfers.clear();
    let mut json = serde_json::to_value(Reply::Status(status.clone())).unwrap();
    json.as_object_mut().unwrap().remove("transfers");
    let read: Reply = serde_json::from_value(json).unwrap();
    assert_eq!(read, Reply::Status(status));
}

#[test]
fn the_human_form_of_a_failure_says_error() {
    assert_eq!(
        Reply::error("no such task").to_string(),
        "error: no such task"
    );
    let line = serde_json::to_string(&Reply::error("x")).unwrap();
    assert_eq!(line, r#"{"reply":"error","message":"x"}"#);
}

/// An event of a kind this client does not know (from a newer daemon) is recognised as an
/// event, so `follow` skips it and the stream goes on; anything else that does not parse
/// still stops it.
#[test]
fn an_unknown_kind_of_event_is_skipped_not_fatal() {
    let newer = r#"{"reply":"event","event":"something_new","x":1}"#;
    assert!(serde_json::from_str::<Reply>(newer).is_err());
    assert!(socket::is_event(newer));
    assert!(!socket::is_event(r#"{"reply":"something_new"}"#));
    assert!(!socket::is_event("not json"));
}

/// An event as the HTTP API's stream sends it: flat, with its id and time, and the same
/// after a round trip, progress included.
#[test]
fn numbered_events_are_flat_and_survive_a_round_trip() {
    let device = DeviceId::from_bytes([5; 32]);
    let task = TaskId::from_bytes([6; 32]);
    for event in [
        DaemonEvent::Applied {
            task,
            from: device,
            name: Some("laptop".into()),
            path: Some(RelPath::new("notes/a b.txt").unwrap()),
            deleted: false,
        },
        DaemonEvent::Transfer(TransferInfo {
            device,
            task,
            path: RelPath::new("big.iso").unwrap(),
            done: 1,
            size: 2,
            patch: false,
            rate: 3,
        }),
        DaemonEvent::LinkEnded {
            task,
            ok: false,
            message: "refused".into(),
        },
    ] {
        let numbered = Numbered {
            id: 7,
            at: 8,
            event,
        };
        let json = serde_json::to_value(&numbered).unwrap();
        assert_eq!(json["id"], 7);
        assert!(json["event"].is_string(), "{json}");
        let back: Numbered = serde_json::from_value(json).unwrap();
        assert_eq!(back, numbered);
    }
}

/// A follower of an older daemon's events still reads them, and a newer daemon's events
/// that an older follower does not know are skipped by `follow` (see socket.rs).
#[test]
fn events_of_older_daemons_still_parse() {
    let device = DeviceId::from_bytes([5; 32]);
    let old = format!(r#"{{"reply":"event","event":"connected","device":"{device}"}}"#);
    assert_eq!(
        serde_json::from_str::<Reply>(&old).unwrap(),
        Reply::Event(DaemonEvent::Connected { device, name: None })
    );
}

/// The feed replays what a follower missed after the id it gives, says when the history
/// no longer holds it or the id is of an earlier run, and hands over each event once.
#[test]
fn the_feed_replays_after_an_id_and_says_what_it_lost() {
    let feed = EventFeed::new();
    let device = DeviceId::from_bytes([1; 32]);
    let before = feed.next_id() - 1;
    let ids: Vec<u64> = (0..5)
        .map(|_| feed.publish(DaemonEvent::Delivered { device }))
        .collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let all = feed.subscribe(Some(before));
    assert_eq!(all.backlog.len(), 5);
    assert!(!all.missed);
    let after_third = feed.subscribe(Some(ids[2]));
    let got: Vec<u64> = after_third.backlog.iter().map(|e| e.id).collect();
    assert_eq!(got, ids[3..]);
    assert!(!after_third.missed);
    // An id from the future (the clock went back since): the gap said too.
    assert!(feed.subscribe(Some(ids[4] + 1_000_000)).missed);
    assert!(!feed.subscribe(Some(ids[4])).missed);
    // An id from an earlier run: everything of this run, and the gap said.
    let earlier = feed.subscribe(Some(1));
    assert_eq!(earlier.backlog.len(), 5);
    assert!(earlier.missed);
    // Progress is live only.
    let mut live = feed.subscribe(None);
    feed.publish_transient(DaemonEvent::Delivered { device });
    assert!(live.live.try_recv().is_ok());
    assert_eq!(feed.subscribe(Some(before)).backlog.len(), 5);
    // Past the history's bound, the oldest go and a follower from before is told.
    for _ in 0..EVENT_HISTORY {
        feed.publish(DaemonEvent::Delivered { device });
    }
    // (the last of the first five was dropped too, but after it nothing kept was lost)
    assert!(!feed.subscribe(Some(ids[4])).missed);
    let late = feed.subscribe(Some(ids[3]));
    assert!(late.missed);
    assert_eq!(late.backlog.len(), EVENT_HISTORY);
    let recent = late.backlog[10].id;
    let caught_up = feed.subscribe(Some(recent));
    assert!(!caught_up.missed);
    assert_eq!(caught_up.backlog.len(), EVENT_HISTORY - 11);
}
