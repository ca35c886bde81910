//! Tests of the parent module.
#![allow(clippy::unwrap_used, clippy::panic)]
use super::*;
use std::fs;

fn collect(root: &Path, path: &str, hash: ContentHash) -> Vec<Message> {
    let mut out = Vec::new();
    serve(root, &RelPath::new(path).unwrap(), hash, None, 0, |m| {
        out.push(m);
        true
    });
    out
}

#[test]
fn a_file_travels_in_chunks_and_is_staged_once_checked() {
    let dir = tempfile::tempdir().unwrap();
    let staging = Staging::open(dir.path().join("staging")).unwrap();
    let content: Vec<u8> = (0..MAX_CHUNK_LEN * 2 + 17)
        .map(|i| (i % 251) as u8)
        .collect();
    fs::write(dir.path().join("big"), &content).unwrap();
    let hash = ContentHash::of(&content);
    let messages = collect(dir.path(), "big", hash);
    assert_eq!(messages.len(), 4, "three chunks and the end");
    let mut incoming = Incoming::open(&staging, hash, content.len() as u64, 0).unwrap();
    for message in &messages {
        match message {
            Message::Content {
                offset,
                data,
                last: false,
                ..
            } => incoming.accept(*offset, data).unwrap(),
            Message::Content { last: true, .. } => {}
            other => panic!("{other:?}"),
        }
    }
    assert!(incoming.finish(&staging).unwrap());
    assert_eq!(fs::read(staging.path_of(&hash)).unwrap(), content);
}

#[test]
fn changed_gone_or_linked_content_is_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("f"), b"now").unwrap();
    let asked = ContentHash::of(b"before");
    assert!(matches!(
        collect(dir.path(), "f", asked).last(),
        Some(Message::Unavailable { .. })
    ));
    assert!(matches!(
        collect(dir.path(), "missing", asked)[..],
        [Message::Unavailable { .. }]
    ));
    std::os::unix::fs::symlink("/etc/hostname", dir.path().join("l")).unwrap();
    let messages = collect(dir.path(), "l", asked);
    assert!(
        matches!(messages[..], [Message::Unavailable { .. }]),
        "{messages:?}"
    );
}

#[test]
fn out_of_order_oversized_or_wrong_content_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let staging = Staging::open(dir.path().join("staging")).unwrap();
    let hash = ContentHash::of(b"hello");
    let mut incoming = Incoming::open(&staging, hash, 5, 0).unwrap();
    assert!(incoming.accept(1, b"ello").is_err());
    assert!(incoming.accept(0, b"hello!").is_err());
    incoming.accept(0, b"jello").unwrap();
    assert!(!incoming.finish(&staging).unwrap());
    assert!(!staging.has(&hash));
}

#[test]
fn a_transfer_cut_short_resumes_from_its_part_and_is_checked_whole() {
    let dir = tempfile::tempdir().unwrap();
    let staging = Staging::open(dir.path().join("staging")).unwrap();
    let content: Vec<u8> = (0..MAX_CHUNK_LEN * 3).map(|i| (i % 253) as u8).collect();
    fs::write(dir.path().join("big"), &content).unwrap();
    let hash = ContentHash::of(&content);
    let size = content.len() as u64;
    // A first transfer stops after one chunk: its part stays.
    let mut first = Incoming::open(&staging, hash, size, 0).unwrap();
    first.accept(0, &content[..MAX_CHUNK_LEN]).unwrap();
    drop(first);
    assert_eq!(staging.partial_len(&hash), MAX_CHUNK_LEN as u64);
    // The rest is asked from there, and served from there.
    let mut rest = Vec::new();
    serve(
        dir.path(),
        &RelPath::new("big").unwrap(),
        hash,
        None,
        MAX_CHUNK_LEN as u64,
        |m| {
            rest.push(m);
            true
        },
    );
    let mut again = Incoming::open(&staging, hash, size, MAX_CHUNK_LEN as u64).unwrap();
    for message in &rest {
        match message {
            Message::Content {
                offset,
                data,
                last: false,
                ..
            } => again.accept(*offset, data).unwrap(),
            Message::Content { last: true, .. } => {}
            other => panic!("{other:?}"),
        }
    }
    let sent: usize = rest.iter().map(Message::data_len).sum();
    assert_eq!(sent, content.len() - MAX_CHUNK_LEN, "only the rest travels");
    assert!(again.finish(&staging).unwrap());
    assert_eq!(fs::read(staging.path_of(&hash)).unwrap(), content);
    assert_eq!(
        staging.partial_len(&hash),
        0,
        "the part became the staged content"
    );
}

#[test]
fn a_wrong_part_is_found_at_the_end_and_removed() {
    let dir = tempfile::tempdir().unwrap();
    let staging = Staging::open(dir.path().join("staging")).unwrap();
    let hash = ContentHash::of(b"hello world");
    fs::write(staging.partial_path(&hash), b"jello").unwrap();
    let mut incoming = Incoming::open(&staging, hash, 11, 5).unwrap();
    incoming.accept(5, b" world").unwrap();
    assert!(!incoming.finish(&staging).unwrap());
    assert!(!staging.has(&hash));
    assert_eq!(staging.partial_len(&hash), 0);
    // A part shorter than the offset asked is not resumed from.
    fs::write(staging.partial_path(&hash), b"hel").unwrap();
    assert!(Incoming::open(&staging, hash, 11, 5).is_err());
}

#[test]
fn a_file_larger_than_the_free_space_does_not_fit() {
    let dir = tempfile::tempdir().unwrap();
    let places = [dir.path().to_owned()];
    assert!(room_for(&places, 1).is_ok());
    let why = room_for(&places, 1 << 60).unwrap_err();
    assert!(why.contains("would not fit"), "{why}");
}
