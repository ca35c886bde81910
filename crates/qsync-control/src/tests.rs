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
            Command::Versions { path: Some(PathBuf::from(&path)) },
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
