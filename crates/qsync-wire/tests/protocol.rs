//! Properties of the wire protocol: round trips, tamper and replay rejection, no panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use qsync_wire::fuzzing::{fixed_sessions, wire};
use qsync_wire::pairing::{open_pair, seal_pair, PairMessage, PairingSecret};
use qsync_wire::*;
use tokio_util::codec::Framed;

fn rel_path() -> impl Strategy<Value = RelPath> {
    "[a-zA-Z0-9 _.-]{1,8}(/[a-zA-Z0-9_-]{1,8}){0,3}"
        .prop_filter_map("valid path", |s| RelPath::new(s).ok())
}

fn hash() -> impl Strategy<Value = ContentHash> {
    any::<[u8; 32]>().prop_map(ContentHash::from_bytes)
}

fn update() -> impl Strategy<Value = UpdateId> {
    any::<u64>().prop_map(UpdateId)
}

fn kind() -> impl Strategy<Value = EntryKind> {
    prop_oneof![
        Just(EntryKind::File),
        Just(EntryKind::Folder),
        Just(EntryKind::Symlink)
    ]
}

fn outcome() -> impl Strategy<Value = Outcome> {
    prop_oneof![
        Just(Outcome::Applied),
        rel_path().prop_map(|kept_as| Outcome::Conflict { kept_as }),
        ".{0,40}".prop_map(|reason| Outcome::Failed { reason }),
    ]
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ".{0,32}".prop_map(|name| Message::Hello { name }),
        ".{0,32}".prop_map(|name| Message::HelloAck { name }),
        (
            update(),
            rel_path(),
            kind(),
            any::<u64>(),
            hash(),
            proptest::option::of(hash()),
            any::<i64>()
        )
            .prop_map(
                |(update, path, kind, size, hash, base, mtime_ns)| Message::Create {
                    update,
                    path,
                    kind,
                    size,
                    hash,
                    base,
                    mtime_ns
                }
            ),
        (
            update(),
            rel_path(),
            hash(),
            hash(),
            any::<u64>(),
            any::<i64>()
        )
            .prop_map(
                |(update, path, base, result, delta_len, mtime_ns)| Message::Patch {
                    update,
                    path,
                    base,
                    result,
                    delta_len,
                    mtime_ns
                }
            ),
        (
            update(),
            any::<u64>(),
            proptest::collection::vec(any::<u8>(), 0..2048)
        )
            .prop_map(|(update, offset, data)| Message::Chunk {
                update,
                offset,
                data: Bytes::from(data)
            }),
        (update(), rel_path(), proptest::option::of(hash()))
            .prop_map(|(update, path, base)| Message::Delete { update, path, base }),
        (update(), rel_path(), rel_path()).prop_map(|(update, from, to)| Message::Rename {
            update,
            from,
            to
        }),
        (update(), outcome())
            .prop_map(|(update, outcome)| Message::ModificationDone { update, outcome }),
        ".{0,32}".prop_map(|folder_name| Message::LinkDevice { folder_name }),
        Just(Message::LinkAccepted),
        ".{0,32}".prop_map(|reason| Message::LinkRefused { reason }),
        Just(Message::UnlinkDevice),
        Just(Message::SetupRequest),
        (any::<u64>(), any::<u64>()).prop_map(|(files, bytes)| Message::SetupDone { files, bytes }),
    ]
}

fn task() -> TaskId {
    TaskId::from_bytes([5; 32])
}

proptest! {
    #[test]
    fn every_message_round_trips(messages in proptest::collection::vec(message(), 1..8)) {
        let (mut a, mut b) = fixed_sessions().unwrap();
        for message in messages {
            let mut frame = a.seal(task(), &message).unwrap().to_vec();
            let (t, got) = b.open(&mut frame).unwrap();
            prop_assert_eq!(t, task());
            prop_assert_eq!(got, message);
        }
    }

    #[test]
    fn any_single_bit_flip_is_rejected(message in message(), bit in any::<prop::sample::Index>()) {
        let (mut a, mut b) = fixed_sessions().unwrap();
        let mut frame = a.seal(task(), &message).unwrap().to_vec();
        let bit = bit.index(frame.len() * 8);
        frame[bit / 8] ^= 1 << (bit % 8);
        prop_assert!(b.open(&mut frame).is_err());
        prop_assert!(b.is_poisoned());
        // Once poisoned, even a genuine frame is refused.
        let mut next = a.seal(task(), &message).unwrap().to_vec();
        prop_assert!(matches!(b.open(&mut next), Err(WireError::Poisoned)));
    }

    #[test]
    fn truncation_is_rejected(message in message(), cut in any::<prop::sample::Index>()) {
        let (mut a, mut b) = fixed_sessions().unwrap();
        let frame = a.seal(task(), &message).unwrap();
        let mut short = frame[..cut.index(frame.len())].to_vec();
        prop_assert!(b.open(&mut short).is_err());
    }

    #[test]
    fn random_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        wire(&data);
    }

    #[test]
    fn pair_messages_round_trip(name in ".{0,20}", key in any::<[u8; 32]>()) {
        let msg = PairMessage::Accept { public_key: key, name, listen_port: 7878 };
        let frame = seal_pair(DeviceId::from_bytes([1; 32]), task(), &msg).unwrap();
        prop_assert_eq!(open_pair(&frame).unwrap().2, msg);
    }
}

#[test]
fn replayed_frame_is_rejected() {
    let (mut a, mut b) = fixed_sessions().unwrap();
    let frame = a.seal(task(), &Message::SetupRequest).unwrap();
    b.open(&mut frame.to_vec()).unwrap();
    let err = b.open(&mut frame.to_vec()).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::OutOfOrder {
                expected: 1,
                got: 0
            }
        ),
        "{err}"
    );
}

#[test]
fn reordered_or_dropped_frames_are_rejected() {
    let (mut a, mut b) = fixed_sessions().unwrap();
    let _first = a.seal(task(), &Message::SetupRequest).unwrap();
    let second = a.seal(task(), &Message::SetupRequest).unwrap();
    let err = b.open(&mut second.to_vec()).unwrap_err();
    assert!(
        matches!(
            err,
            WireError::OutOfOrder {
                expected: 0,
                got: 1
            }
        ),
        "{err}"
    );
}

#[test]
fn a_recorded_connection_cannot_be_replayed_on_a_new_one() {
    let key = LinkKey::from_bytes([8; 32]);
    let (alice, bob) = (DeviceId::random(), DeviceId::random());
    let (ha, oa) = Handshake::start(alice).unwrap();
    let (hb, ob) = Handshake::start(bob).unwrap();
    let mut a = ha.finish(&ob, &key).unwrap();
    let _b = hb.finish(&oa, &key).unwrap();
    let recorded = a.seal(task(), &Message::UnlinkDevice).unwrap();

    // The attacker replays alice's opening and first frame to bob, who picks a new nonce.
    let (hb2, _ob2) = Handshake::start(bob).unwrap();
    let mut b2 = hb2.finish(&oa, &key).unwrap();
    let err = b2.open(&mut recorded.to_vec()).unwrap_err();
    assert!(matches!(err, WireError::Tampered { .. }), "{err}");
}

#[test]
fn frame_from_another_device_or_key_is_rejected() {
    let (mut a, mut b) = fixed_sessions().unwrap();
    // b talks to a; a frame b sealed itself claims b as sender.
    let own = b.seal(task(), &Message::SetupRequest).unwrap();
    assert!(matches!(
        b.open(&mut own.to_vec()),
        Err(WireError::ForeignSender { .. })
    ));

    // Same peer id, wrong key.
    let (ha, oa) = Handshake::with_nonce(DeviceId::from_bytes([1; 32]), [3; 32]);
    let (hb, ob) = Handshake::with_nonce(DeviceId::from_bytes([2; 32]), [4; 32]);
    let mut wrong = ha.finish(&ob, &LinkKey::from_bytes([0; 32])).unwrap();
    let mut right = hb.finish(&oa, &LinkKey::from_bytes([0x42; 32])).unwrap();
    let frame = wrong.seal(task(), &Message::SetupRequest).unwrap();
    assert!(matches!(
        right.open(&mut frame.to_vec()),
        Err(WireError::Tampered { .. })
    ));
    let _ = a.seal(task(), &Message::SetupRequest).unwrap();
}

#[test]
fn oversized_message_is_refused_when_sealing() {
    let (mut a, _) = fixed_sessions().unwrap();
    let huge = Message::Chunk {
        update: UpdateId(0),
        offset: 0,
        data: Bytes::from(vec![0; MAX_FRAME_LEN]),
    };
    assert!(matches!(
        a.seal(task(), &huge),
        Err(WireError::TooLarge { .. })
    ));
    // The counter did not move: the next frame still opens.
    let (_, mut b) = fixed_sessions().unwrap();
    let mut ok = a.seal(task(), &Message::SetupRequest).unwrap().to_vec();
    assert!(b.open(&mut ok).is_ok());
}

#[test]
fn pairing_then_talking_over_a_real_stream() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (alice, bob) = (DeviceId::random(), DeviceId::random());
        let (sa, sb) = (PairingSecret::generate().unwrap(), PairingSecret::generate().unwrap());
        let (pa, pb) = (sa.public_key(), sb.public_key());
        let (key_a, code_a) = sa.agree(alice, bob, &pb).unwrap();
        let (key_b, code_b) = sb.agree(bob, alice, &pa).unwrap();
        assert_eq!(code_a, code_b);

        let (sock_a, sock_b) = tokio::io::duplex(1 << 20);
        let mut fa = Framed::new(sock_a, FrameCodec::new());
        let mut fb = Framed::new(sock_b, FrameCodec::new());

        let (ha, open_a) = Handshake::start(alice).unwrap();
        let (hb, open_b) = Handshake::start(bob).unwrap();
        fa.send(open_a).await.unwrap();
        fb.send(open_b).await.unwrap();
        let got_b = fb.next().await.unwrap().unwrap();
        let opening = Opening::parse(&got_b).unwrap();
        assert_eq!(opening.sender(), alice);
        let mut b = hb.finish_opening(&opening, &key_b).unwrap();
        let got_a = fa.next().await.unwrap().unwrap();
        let mut a = ha.finish(&got_a, &key_a).unwrap();

        let content = Bytes::from(vec![7u8; MAX_CHUNK_LEN]);
        let send = async {
            for i in 0..4u64 {
                let msg = Message::Chunk { update: UpdateId(1), offset: i * content.len() as u64, data: content.clone() };
                fa.send(a.seal(task(), &msg).unwrap()).await.unwrap();
            }
        };
        let receive = async {
            for i in 0..4u64 {
                let mut frame = fb.next().await.unwrap().unwrap();
                let (_, msg) = b.open(&mut frame).unwrap();
                assert!(matches!(msg, Message::Chunk { offset, .. } if offset == i * MAX_CHUNK_LEN as u64));
            }
        };
        tokio::join!(send, receive);
    });
}

/// The fuzz target's seed corpus, run as a plain test so CI needs no nightly toolchain.
#[test]
fn fuzz_corpus_replays_without_panic() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/wire");
    let mut count = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        wire(&data);
        count += 1;
    }
    assert!(count > 0, "no seeds in {}", dir.display());
}

/// Writes the seed corpus: `cargo test -p qsync-wire -- --ignored write_fuzz_seeds`.
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fuzz/corpus/wire");
    std::fs::create_dir_all(&dir).unwrap();
    let (mut a, _) = fixed_sessions().unwrap();
    let mut codec = FrameCodec::new();
    let mut stream = bytes::BytesMut::new();
    let (_, open) = Handshake::with_nonce(DeviceId::from_bytes([1; 32]), [3; 32]);
    tokio_util::codec::Encoder::encode(&mut codec, open, &mut stream).unwrap();
    let pair = seal_pair(
        DeviceId::from_bytes([1; 32]),
        task(),
        &PairMessage::Refuse { reason: "x".into() },
    )
    .unwrap();
    tokio_util::codec::Encoder::encode(&mut codec, pair, &mut stream).unwrap();
    for msg in [
        Message::Hello { name: "a".into() },
        Message::SetupRequest,
        Message::UnlinkDevice,
    ] {
        tokio_util::codec::Encoder::encode(&mut codec, a.seal(task(), &msg).unwrap(), &mut stream)
            .unwrap();
    }
    let body = postcard::to_stdvec(&Message::Rename {
        update: UpdateId(3),
        from: RelPath::new("a/b").unwrap(),
        to: RelPath::new("c").unwrap(),
    })
    .unwrap();
    let pair_body = postcard::to_stdvec(&PairMessage::Accept {
        public_key: [9; 32],
        name: "n".into(),
        listen_port: 1,
    })
    .unwrap();
    let content = postcard::to_stdvec(&Message::Content {
        path: RelPath::new("a/b").unwrap(),
        hash: qsync_base::ContentHash::of(b"x"),
        offset: 0,
        data: bytes::Bytes::from_static(b"x"),
        last: true,
    })
    .unwrap();
    let seeds: [(&str, Vec<u8>); 6] = [
        ("stream", [&[0u8][..], &stream].concat()),
        ("body", [&[1u8][..], &body].concat()),
        ("content", [&[1u8][..], &content].concat()),
        ("pair", [&[2u8][..], &pair_body].concat()),
        ("flip", vec![3, 77, b'h', b'i']),
        ("empty", vec![]),
    ];
    for (name, data) in seeds {
        std::fs::write(dir.join(name), data).unwrap();
    }
}
