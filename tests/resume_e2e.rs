//! Transfers cut short resume where they stopped, with real daemons on loopback: the
//! receiving daemon killed (SIGKILL) in the middle of a large file asks, once restarted,
//! for the rest only; a sender that stalls in the middle is replaced by another device
//! holding the same content, which sends the rest only. The sending side is a device
//! driven by hand (`support/peer.rs`), so that the test decides exactly where the
//! transfer is cut and counts every byte it sends. While a transfer is under way, `qsync
//! status --json` shows it and `qsync events` streams its progress.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/node.rs"]
mod node;
#[path = "support/peer.rs"]
mod peer;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use node::{link, wait_for, wait_same, Node};
use peer::{Heard, Peer};
use qsync_base::{ContentHash, RelPath};
use qsync_core::State;
use qsync_wire::{Identity, Message, TaskId, MAX_CHUNK_LEN};

const SETTLE: Duration = Duration::from_secs(60);

/// The size of the file cut short (MiB): `QSYNC_RESUME_MIB` (1024 for the figure).
fn size() -> usize {
    std::env::var("QSYNC_RESUME_MIB")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(64)
        << 20
}

/// Bytes that do not compress, the same for a given length.
fn noise(len: usize) -> Vec<u8> {
    node::noise(0, len)
}

/// A daemon `a` syncing `root`, linked to a device whose key the test now holds (its daemon
/// stopped), and that device's folder.
struct Scene {
    base: tempfile::TempDir,
    a: Node,
    task: TaskId,
    root: PathBuf,
    peer: Identity,
}

fn scene() -> Scene {
    let base = tempfile::tempdir().unwrap();
    let root = base.path().join("A");
    fs::create_dir(&root).unwrap();
    let a = Node::start(base.path(), "receiver");
    let mut b = Node::start(base.path(), "sender");
    let task = a.add_task(&root);
    let root_b = base.path().join("B");
    link(&a, &task, &b, &root_b);
    let peer = peer::identity_of(&b.state);
    b.kill();
    Scene {
        base,
        a,
        task: task.parse().unwrap(),
        root,
        peer,
    }
}

fn file(content: &[u8]) -> State {
    State::File {
        hash: ContentHash::of(content),
        size: content.len() as u64,
        mode: 0o644,
    }
}

/// Wait for a request for `path`; the offset it asks from.
fn requested_offset(p: &mut Peer, path: &str) -> u64 {
    let path = RelPath::new(path).unwrap();
    let offset_of = |h: &Heard| match h {
        Heard::Core(qsync_core::Message::Request {
            path: asked,
            offset,
            ..
        }) if *asked == path => Some(*offset),
        _ => None,
    };
    p.until(SETTLE, |h| offset_of(h).is_some());
    p.heard
        .iter()
        .rev()
        .find_map(offset_of)
        .expect("a request for the file")
}

/// Send `data[from..upto]` as content of `path` in chunks (and the end, if `last`);
/// returns the content bytes sent.
fn send_content(
    p: &mut Peer,
    path: &str,
    data: &[u8],
    from: usize,
    upto: usize,
    last: bool,
) -> usize {
    send_as(p, (path, ContentHash::of(data)), data, (from, upto), last)
}

/// Send `data[from..upto]` as chunks of the content `hash` of `path` (bytes that may not
/// be it: a liar's).
fn send_as(
    p: &mut Peer,
    (path, hash): (&str, ContentHash),
    data: &[u8],
    (from, upto): (usize, usize),
    last: bool,
) -> usize {
    let task = p.task;
    let path = RelPath::new(path).unwrap();
    let mut at = from;
    while at < upto {
        let end = (at + MAX_CHUNK_LEN).min(upto);
        p.send(
            task,
            &Message::Content {
                path: path.clone(),
                hash,
                offset: at as u64,
                data: Bytes::copy_from_slice(&data[at..end]),
                last: false,
            },
        );
        at = end;
    }
    if last {
        p.send(
            task,
            &Message::Content {
                path,
                hash,
                offset: at as u64,
                data: Bytes::new(),
                last: true,
            },
        );
    }
    upto - from
}

/// The bytes of the content `hash` the receiver keeps from a transfer cut short.
fn part_len(state: &Path, hash: &ContentHash) -> u64 {
    fs::metadata(
        state
            .join("staging")
            .join(format!(".partial-{}", hash.to_hex())),
    )
    .map_or(0, |m| m.len())
}

/// The receiver is killed with 60% of a large file here; restarted, it asks for the rest
/// only, and the file it places is the one sent.
#[test]
fn a_receiver_killed_mid_file_asks_only_for_the_rest_after_restart() {
    let mut s = scene();
    let data = noise(size());
    let hash = ContentHash::of(&data);
    let mut p = Peer::connect(s.a.port, &s.peer, s.task);
    p.put("video.bin", file(&data));
    assert_eq!(requested_offset(&mut p, "video.bin"), 0);
    let cut = data.len() * 6 / 10;
    send_content(&mut p, "video.bin", &data, 0, cut, false);
    wait_for("60% of the file written on the receiver", SETTLE, || {
        p.pump(Duration::from_millis(50));
        part_len(&s.a.state, &hash) >= cut as u64
    });
    s.a.kill();
    p.close();
    s.a.restart();

    let mut p = Peer::connect(s.a.port, &s.peer, s.task);
    // The record was never acknowledged as placed: the peer sends it again.
    p.put("video.bin", file(&data));
    let offset = requested_offset(&mut p, "video.bin") as usize;
    let sent = send_content(&mut p, "video.bin", &data, offset, data.len(), true);
    wait_for("the whole file on the receiver", SETTLE, || {
        p.pump(Duration::from_millis(50));
        fs::metadata(s.root.join("video.bin")).is_ok_and(|m| m.len() == data.len() as u64)
    });
    let share = sent as f64 / data.len() as f64;
    println!(
        "after the restart, {sent} of {} bytes travelled ({:.1}%)",
        data.len(),
        share * 100.0
    );
    assert_eq!(offset, cut, "asked from where it stopped");
    assert!(share <= 0.45, "{:.1}% sent again", share * 100.0);
    assert!(
        fs::read(s.root.join("video.bin")).unwrap() == data,
        "the file differs"
    );
    assert_eq!(part_len(&s.a.state, &hash), 0, "no part file left");
}

/// How the first sender stops in the middle of the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Cut {
    /// It stays connected and sends nothing more.
    Stall,
    /// Its connection goes (its daemon killed, its Wi-Fi gone).
    Gone,
}

/// A holder that stops sending in the middle (`cut`) is replaced by another connected
/// device that announced the same content: it is asked for the rest only, and the file
/// arrives.
fn second_holder_takes_over(cut: Cut) {
    let s = scene();
    let c = Node::start(s.base.path(), "second holder");
    let root_c = s.base.path().join("C");
    link(&s.a, &s.task.to_string(), &c, &root_c);
    wait_same(&s.root, &root_c, SETTLE);

    let data = noise(16 << 20);
    let hash = ContentHash::of(&data);
    let mut p = Peer::connect(s.a.port, &s.peer, s.task);
    p.put("shared.bin", file(&data));
    assert_eq!(requested_offset(&mut p, "shared.bin"), 0);
    let half = data.len() / 2;
    send_content(&mut p, "shared.bin", &data, 0, half, false);
    wait_for("half the file written on the receiver", SETTLE, || {
        p.pump(Duration::from_millis(50));
        part_len(&s.a.state, &hash) >= half as u64
    });
    let before = s.a.status("wire_received");
    // The second device gets the same file (copied in by its person): it announces it.
    let outside = s.base.path().join("shared.tmp");
    fs::write(&outside, &data).unwrap();
    fs::rename(&outside, root_c.join("shared.bin")).unwrap();
    let t = Instant::now();
    if cut == Cut::Gone {
        // Once the receiver has heard of the second holder, the first one goes.
        p.pump(Duration::from_secs(2));
        p.close();
        wait_for("the file on the receiver", SETTLE, || {
            std::thread::sleep(Duration::from_millis(100));
            fs::metadata(s.root.join("shared.bin")).is_ok_and(|m| m.len() == data.len() as u64)
        });
    } else {
        wait_for("the file on the receiver", SETTLE, || {
            p.pump(Duration::from_millis(100));
            fs::metadata(s.root.join("shared.bin")).is_ok_and(|m| m.len() == data.len() as u64)
        });
    }
    let took = t.elapsed();
    let wire = s.a.status("wire_received") - before;
    println!(
        "{cut:?}: the second holder sent the rest after {took:?}; {wire} bytes came in for the other {} bytes",
        data.len() - half
    );
    assert!(
        fs::read(s.root.join("shared.bin")).unwrap() == data,
        "the file differs"
    );
    assert!(
        wire < (data.len() - half) as u64 + (data.len() as u64 / 10),
        "{wire} bytes came in: the second holder sent more than the rest"
    );
    let bound = match cut {
        Cut::Stall => qsync_engine::exchange::STALL_SWITCH + Duration::from_secs(10),
        Cut::Gone => Duration::from_secs(10),
    };
    assert!(took < bound, "took {took:?}");
}

#[test]
fn a_sender_that_stalls_mid_file_is_replaced_by_another_holder_from_where_it_stopped() {
    second_holder_takes_over(Cut::Stall);
}

#[test]
fn a_sender_that_goes_away_mid_file_is_replaced_by_another_holder_from_where_it_stopped() {
    second_holder_takes_over(Cut::Gone);
}

/// A holder that sends wrong bytes for 60% of a file, then goes away, costs the honest
/// holder that takes over one copy of the file and no more: the checks of the part the
/// receiver asks with differ from the honest copy's at the first block, so it sends all
/// of it from there, once (before the checks: the other 40%, then, the result being
/// wrong, all of it again).
#[test]
fn a_liars_part_is_replaced_by_the_honest_holder_sending_the_file_once() {
    let s = scene();
    let c = Node::start(s.base.path(), "honest holder");
    let root_c = s.base.path().join("C");
    link(&s.a, &s.task.to_string(), &c, &root_c);
    wait_same(&s.root, &root_c, SETTLE);

    let data = noise(16 << 20);
    let hash = ContentHash::of(&data);
    let lie: Vec<u8> = data.iter().map(|b| b ^ 0x5a).collect();
    let mut p = Peer::connect(s.a.port, &s.peer, s.task);
    p.put("shared.bin", file(&data));
    assert_eq!(requested_offset(&mut p, "shared.bin"), 0);
    let cut = data.len() * 6 / 10;
    send_as(&mut p, ("shared.bin", hash), &lie, (0, cut), false);
    wait_for("60% of the lie written on the receiver", SETTLE, || {
        p.pump(Duration::from_millis(50));
        part_len(&s.a.state, &hash) >= cut as u64
    });
    let before = s.a.status("wire_received");
    let outside = s.base.path().join("shared.tmp");
    fs::write(&outside, &data).unwrap();
    fs::rename(&outside, root_c.join("shared.bin")).unwrap();
    // Once the receiver has heard of the honest holder, the liar goes.
    p.pump(Duration::from_secs(2));
    p.close();
    wait_for("the file on the receiver", SETTLE, || {
        std::thread::sleep(Duration::from_millis(100));
        fs::metadata(s.root.join("shared.bin")).is_ok_and(|m| m.len() == data.len() as u64)
    });
    let wire = s.a.status("wire_received") - before;
    println!(
        "after a liar's 60%, {wire} bytes came in for a file of {} bytes ({:.2}x)",
        data.len(),
        wire as f64 / data.len() as f64
    );
    assert!(
        fs::read(s.root.join("shared.bin")).unwrap() == data,
        "the file differs"
    );
    assert!(
        wire as f64 <= data.len() as f64 * 1.05,
        "{wire} bytes came in: more than the file once"
    );
}

/// A file half sent: the receiver's `status --json` lists the transfer with the bytes
/// received so far and its size, and `qsync --json events` streams it as `transfer`
/// events (once a second), which is all a front end needs for a progress bar.
#[test]
fn a_transfer_under_way_shows_its_progress_in_status_and_in_the_event_stream() {
    let s = scene();
    let events = node::Events::follow(&s.a.state);

    let data = noise(8 << 20);
    let hash = ContentHash::of(&data);
    let mut p = Peer::connect(s.a.port, &s.peer, s.task);
    p.put("movie.bin", file(&data));
    assert_eq!(requested_offset(&mut p, "movie.bin"), 0);
    let half = data.len() / 2;
    send_content(&mut p, "movie.bin", &data, 0, half, false);
    wait_for("half the file written on the receiver", SETTLE, || {
        p.pump(Duration::from_millis(50));
        part_len(&s.a.state, &hash) >= half as u64
    });

    let status: serde_json::Value = serde_json::from_str(&s.a.cli(&["--json", "status"])).unwrap();
    let transfers = status["transfers"].as_array().unwrap();
    assert_eq!(transfers.len(), 1, "{status}");
    assert_eq!(transfers[0]["path"], "movie.bin");
    assert_eq!(transfers[0]["size"], data.len() as u64);
    assert!(
        transfers[0]["done"].as_u64().unwrap() >= half as u64,
        "{status}"
    );

    // Bytes keep coming, a little at a time, so that the stream (its client may connect
    // late on a loaded machine) has moves to tell.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut at = half;
    let event = loop {
        if at + (64 << 10) < data.len() {
            at += send_content(&mut p, "movie.bin", &data, at, at + (64 << 10), false);
        }
        p.pump(Duration::from_millis(20));
        let left = deadline.saturating_duration_since(Instant::now());
        assert!(!left.is_zero(), "no transfer event");
        match events.rx.recv_timeout(left.min(Duration::from_millis(200))) {
            Ok(e) if e["event"] == "transfer" => break e,
            _ => continue,
        }
    };
    assert_eq!(event["path"], "movie.bin", "{event}");
    assert_eq!(event["size"], data.len() as u64, "{event}");
    assert!(event["done"].as_u64().unwrap() >= half as u64, "{event}");
}
