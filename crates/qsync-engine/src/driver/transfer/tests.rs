//! Tests of the parent module.
#![allow(clippy::unwrap_used, clippy::panic)]
use super::*;
use std::fs;

fn collect(root: &Path, path: &str, hash: ContentHash) -> Vec<Message> {
    let mut out = Vec::new();
    serve(
        root,
        &RelPath::new(path).unwrap(),
        hash,
        None,
        (0, &[]),
        |m| {
            out.push(m);
            true
        },
    );
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
    assert_eq!(messages.len(), 3, "three chunks, the last one ending it");
    let mut incoming = Incoming::open(&staging, hash, content.len() as u64, 0).unwrap();
    for (i, message) in messages.iter().enumerate() {
        match message {
            Message::Content {
                offset, data, last, ..
            } => {
                assert_eq!(*last, i == 2, "only the last chunk says it is the last");
                incoming.accept(*offset, data).unwrap();
            }
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
    // The rest is asked from there, with the part's checks, and served from there.
    let mut again = Incoming::open(&staging, hash, size, MAX_CHUNK_LEN as u64).unwrap();
    let mut rest = Vec::new();
    serve(
        dir.path(),
        &RelPath::new("big").unwrap(),
        hash,
        None,
        (MAX_CHUNK_LEN as u64, &again.checks()),
        |m| {
            rest.push(m);
            true
        },
    );
    for message in &rest {
        match message {
            Message::Content { offset, data, .. } => again.accept(*offset, data).unwrap(),
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

/// Serve `content` (at `big` under `root`) to an asker holding `part`: the messages,
/// and the first offset sent.
fn resume_from(root: &Path, content: &[u8], part: &Incoming) -> (Vec<Message>, u64) {
    fs::write(root.join("big"), content).unwrap();
    let mut sent = Vec::new();
    let hash = ContentHash::of(content);
    let path = RelPath::new("big").unwrap();
    serve(
        root,
        &path,
        hash,
        None,
        (part.received(), &part.checks()),
        |m| {
            sent.push(m);
            true
        },
    );
    // Told first where it sends from, when that is not where it was asked from.
    let first = match sent.first() {
        Some(Message::Resend { asked, from, .. }) => {
            assert_eq!(*asked, part.received());
            assert!(matches!(sent.get(1), Some(Message::Content { offset, .. }) if offset == from));
            *from
        }
        Some(Message::Content { offset, .. }) => *offset,
        other => panic!("{other:?}"),
    };
    (sent, first)
}

#[test]
fn a_part_torn_in_its_second_block_is_sent_again_from_there_only() {
    let dir = tempfile::tempdir().unwrap();
    let staging = Staging::open(dir.path().join("staging")).unwrap();
    let mib = 1usize << 20;
    let content: Vec<u8> = (0..4 * mib + 5).map(|i| (i % 241) as u8).collect();
    let hash = ContentHash::of(&content);
    // 3 MiB kept, the second MiB torn (zeros, as after a power cut).
    let mut part = content[..3 * mib].to_vec();
    part[mib + 10..mib + 4000].fill(0);
    fs::write(staging.partial_path(&hash), &part).unwrap();
    let mut incoming =
        Incoming::open(&staging, hash, content.len() as u64, 3 * mib as u64).unwrap();
    let (sent, first) = resume_from(dir.path(), &content, &incoming);
    assert_eq!(first, mib as u64, "sent again from the torn block");
    assert!(incoming.rewind(first).unwrap());
    for message in &sent {
        if let Message::Content { offset, data, .. } = message {
            incoming.accept(*offset, data).unwrap();
        }
    }
    let bytes: usize = sent.iter().map(Message::data_len).sum();
    assert_eq!(bytes, content.len() - mib);
    assert!(incoming.finish(&staging).unwrap());
    assert_eq!(fs::read(staging.path_of(&hash)).unwrap(), content);
}

#[test]
fn a_part_the_holder_cannot_check_is_sent_again_whole_and_a_good_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let staging = Staging::open(dir.path().join("staging")).unwrap();
    let content: Vec<u8> = (0..3 << 20).map(|i| (i % 239) as u8).collect();
    let hash = ContentHash::of(&content);
    fs::write(staging.partial_path(&hash), &content[..(2 << 20) + 7]).unwrap();
    let good = Incoming::open(&staging, hash, content.len() as u64, (2 << 20) + 7).unwrap();
    assert_eq!(resume_from(dir.path(), &content, &good).1, (2 << 20) + 7);
    // Checks missing (the asker could not read its part): all of it.
    let path = RelPath::new("big").unwrap();
    let mut first = None;
    serve(dir.path(), &path, hash, None, ((2 << 20) + 7, &[]), |m| {
        if let Message::Content { offset, .. } = m {
            first.get_or_insert(offset);
        }
        true
    });
    assert_eq!(first, Some(0));
    // A part wrong from its first byte: all of it too.
    let liar: Vec<u8> = content[..2 << 20].iter().map(|b| b ^ 1).collect();
    fs::write(staging.partial_path(&hash), &liar).unwrap();
    let lied = Incoming::open(&staging, hash, content.len() as u64, 2 << 20).unwrap();
    assert_eq!(resume_from(dir.path(), &content, &lied).1, 0);
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
    let space = FreeSpace::default();
    let now = Instant::now();
    assert!(space.room_for(&places, 1, now).is_ok());
    let why = space.room_for(&places, 1 << 60, now).unwrap_err();
    assert!(why.contains("would not fit"), "{why}");
}

#[test]
fn what_was_asked_since_the_last_measure_counts_against_it() {
    let dir = tempfile::tempdir().unwrap();
    let places = [dir.path().to_owned()];
    let space = FreeSpace::default();
    let now = Instant::now();
    space.room_for(&places, 1, now).unwrap();
    let free = space.measured.borrow()[&places[0]].free;
    // Half of what is free, twice: the second is not believed without measuring again,
    // and measured again it does not fit (nothing was written, but the first half is
    // counted as asked only until the next measure).
    let half = free / 2;
    space.room_for(&places, half, now).unwrap();
    assert_eq!(space.measured.borrow()[&places[0]].asked, half + 1);
    space.room_for(&places, half, now).unwrap();
    assert_eq!(
        space.measured.borrow()[&places[0]].asked,
        half,
        "measured again"
    );
    // Once old, a measure is taken again whatever was asked.
    let later = now + FREE_SPACE_FRESH;
    space.room_for(&places, 1, later).unwrap();
    assert_eq!(space.measured.borrow()[&places[0]].asked, 1);
}

#[test]
fn a_small_file_is_served_as_one_message_and_an_empty_one_as_its_end_alone() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("small"), b"a few bytes").unwrap();
    fs::write(dir.path().join("empty"), b"").unwrap();
    let small = collect(dir.path(), "small", ContentHash::of(b"a few bytes"));
    assert!(
        matches!(&small[..], [Message::Content { offset: 0, data, last: true, .. }] if &data[..] == b"a few bytes"),
        "{small:?}"
    );
    let empty = collect(dir.path(), "empty", ContentHash::of(b""));
    assert!(
        matches!(&empty[..], [Message::Content { offset: 0, data, last: true, .. }] if data.is_empty()),
        "{empty:?}"
    );
    // Changed since it was announced: its bytes never go, only the answer that it is not
    // that content.
    let changed = collect(dir.path(), "small", ContentHash::of(b"other bytes"));
    assert!(
        matches!(&changed[..], [Message::Unavailable { .. }]),
        "{changed:?}"
    );
}
