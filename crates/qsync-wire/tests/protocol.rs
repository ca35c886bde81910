//! Properties of the wire protocol: handshakes that prove keys, pairing that a device in
//! the middle cannot pass, round trips, tamper and replay rejection, no panics.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use proptest::prelude::*;
use qsync_wire::fuzzing::{fixed_sessions, handshake, wire};
use qsync_wire::pairing::{Answerer, Asker, PairingCode};
use qsync_wire::*;
use tokio_util::codec::Framed;

fn rel_path() -> impl Strategy<Value = RelPath> {
    "[a-zA-Z0-9 _.-]{1,8}(/[a-zA-Z0-9_-]{1,8}){0,3}"
        .prop_filter_map("valid path", |s| RelPath::new(s).ok())
}

fn hash() -> impl Strategy<Value = ContentHash> {
    any::<[u8; 32]>().prop_map(ContentHash::from_bytes)
}

fn data() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..2048).prop_map(Bytes::from)
}

fn message() -> impl Strategy<Value = Message> {
    prop_oneof![
        ".{0,32}".prop_map(|name| Message::Hello { name }),
        ".{0,32}".prop_map(|name| Message::HelloAck { name }),
        any::<u64>().prop_map(|nonce| Message::Ping { nonce }),
        any::<u64>().prop_map(|nonce| Message::Pong { nonce }),
        (
            ".{0,32}",
            ".{0,32}",
            any::<u16>(),
            any::<u64>(),
            any::<u64>(),
            data()
        )
            .prop_map(|(name, folder_name, listen_port, files, bytes, spake)| {
                Message::LinkRequest {
                    name,
                    folder_name,
                    listen_port,
                    files,
                    bytes,
                    spake,
                }
            }),
        (".{0,32}", any::<u16>(), data(), any::<[u8; 32]>()).prop_map(
            |(name, listen_port, spake, confirm)| Message::LinkAnswer {
                name,
                listen_port,
                spake,
                confirm
            }
        ),
        any::<[u8; 32]>().prop_map(|confirm| Message::LinkConfirm { confirm }),
        Just(Message::LinkDone),
        ".{0,32}".prop_map(|reason| Message::LinkRefused { reason }),
        Just(Message::Unlink),
        data().prop_map(|body| Message::Sync { body }),
        (
            data(),
            proptest::collection::vec((any::<u32>(), data()), 0..4)
        )
            .prop_map(|(body, patches)| Message::SyncPatched { body, patches }),
        (rel_path(), hash(), any::<u64>(), data(), any::<bool>()).prop_map(
            |(path, hash, offset, data, last)| Message::Content {
                path,
                hash,
                offset,
                data,
                last
            }
        ),
        (rel_path(), hash()).prop_map(|(path, hash)| Message::Unavailable { path, hash }),
        (
            rel_path(),
            hash(),
            hash(),
            any::<u64>(),
            data(),
            any::<bool>()
        )
            .prop_map(|(path, hash, base, offset, data, last)| Message::Delta {
                path,
                hash,
                base,
                offset,
                data,
                last
            }),
    ]
}

fn task() -> TaskId {
    TaskId::from_bytes([5; 32])
}

fn identity(seed: u8) -> Identity {
    Identity::from_private_bytes([seed; 32]).unwrap()
}

/// A handshake step as the fuzzer or a hostile peer might send it.
fn hand(bytes: &[u8]) -> Vec<u8> {
    [&[PROTOCOL_VERSION, FrameKind::Hand as u8][..], bytes].concat()
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

    /// The handshake as a state machine: whatever step a hostile peer corrupts (one bit
    /// of one of the three messages), or cuts short, no session comes out of it on the
    /// side that read the bad step.
    #[test]
    fn a_corrupted_or_cut_handshake_never_yields_a_session(
        step in 0usize..3,
        bit in any::<prop::sample::Index>(),
        cut in any::<bool>(),
    ) {
        let (ia, ib) = (identity(1), identity(2));
        let (mut a, first) = Handshake::initiate(&ia, None).unwrap();
        let mut b = Handshake::respond(&ib).unwrap();
        let spoil = |frame: Bytes, at: usize| -> Vec<u8> {
            let mut frame = frame.to_vec();
            if at == step {
                if cut {
                    frame.truncate(frame.len() - 1);
                } else {
                    let bit = bit.index(frame.len() * 8);
                    frame[bit / 8] ^= 1 << (bit % 8);
                }
            }
            frame
        };
        let first = spoil(first, 0);
        let Ok(Some(second)) = b.read(&first) else {
            prop_assert_eq!(step, 0);
            return Ok(());
        };
        // Noise's first message is a bare ephemeral key: a flipped bit there is a
        // different key, caught by the responder's proof in the second message.
        let second = spoil(second, 1);
        let Ok(Some(third)) = a.read(&second) else {
            prop_assert!(step <= 1);
            prop_assert!(a.into_session().is_err());
            return Ok(());
        };
        let third = spoil(third, 2);
        let read = b.read(&third);
        prop_assert!(read.is_err(), "step {} survived", step);
        prop_assert!(b.into_session().is_err());
    }

    /// Pairing as a state machine: the right code pairs, any other code fails on the
    /// asker's side before it shows anything, and the answerer never accepts a proof
    /// that was not made with its key.
    #[test]
    fn pairing_passes_with_the_right_code_only(
        shown in 0u32..100_000_000,
        typed in 0u32..100_000_000,
        forged in any::<[u8; 32]>(),
    ) {
        let (a, b) = fixed_sessions().unwrap();
        let shown: PairingCode = format!("{shown:08}").parse().unwrap();
        let typed: PairingCode = format!("{typed:08}").parse().unwrap();
        let (asker, request) = Asker::start(&shown, &a, task());
        let (answerer, answer, proof) = Answerer::answer(&typed, &b, task(), &request).unwrap();
        match asker.check(&answer, &proof) {
            Ok(proof_a) => {
                prop_assert_eq!(shown, typed);
                prop_assert!(answerer.check(&forged).is_err() || forged == proof_a);
            }
            Err(e) => {
                prop_assert_ne!(shown, typed);
                prop_assert!(matches!(e, WireError::Pairing(_)));
            }
        }
    }
}

#[test]
fn the_dialler_refuses_a_responder_that_is_not_the_device_it_expected() {
    let (alice, bob, mallory) = (identity(1), identity(2), identity(3));
    let (mut a, first) = Handshake::initiate(&alice, Some(bob.device())).unwrap();
    let mut m = Handshake::respond(&mallory).unwrap();
    let second = m.read(&first).unwrap().unwrap();
    let err = a.read(&second).unwrap_err();
    assert!(
        matches!(err, WireError::UnexpectedPeer { expected, got } if expected == bob.device() && got == mallory.device()),
        "{err}"
    );
    // Refused before the dialler's own key was shown: mallory never learns who called.
    assert!(m.peer().is_none());
}

#[test]
fn a_claimed_id_cannot_be_used_without_its_key() {
    // Mallory sends a sealed frame whose header claims bob's id over her own session.
    let (alice, bob, mallory) = (identity(1), identity(2), identity(3));
    let (mut m_to_a, mut a_from_m) = handshake(&mallory, &alice).unwrap();
    assert_eq!(a_from_m.peer(), mallory.device());
    let mut frame = m_to_a.seal(task(), &Message::Unlink).unwrap().to_vec();
    frame[2..34].copy_from_slice(bob.device().as_bytes());
    assert!(matches!(
        a_from_m.open(&mut frame),
        Err(WireError::ForeignSender { .. })
    ));
}

#[test]
fn out_of_turn_and_oversized_handshake_steps_are_refused() {
    let (alice, bob) = (identity(1), identity(2));
    let (mut a, first) = Handshake::initiate(&alice, None).unwrap();
    // The dialler cannot read before the responder answered... with its own message.
    assert!(a.read(&first).is_err());
    let mut b = Handshake::respond(&bob).unwrap();
    assert!(b.read(&hand(&[0; 31])).is_err(), "a short ephemeral key");
    let mut b = Handshake::respond(&bob).unwrap();
    assert!(
        b.read(&hand(&[7; 200])).is_err(),
        "a payload the protocol never sends"
    );
    let mut b = Handshake::respond(&bob).unwrap();
    let mut wrong_version = first.to_vec();
    wrong_version[0] = 1;
    assert!(matches!(
        b.read(&wrong_version),
        Err(WireError::UnknownVersion { got: 1, .. })
    ));
    assert!(Handshake::respond(&bob).unwrap().into_session().is_err());
}

#[test]
fn sessions_of_two_connections_share_no_keys() {
    // Forward secrecy's visible half: the same two devices get other keys every time,
    // so a frame recorded on one connection means nothing on the next.
    let (alice, bob) = (identity(1), identity(2));
    let (mut a1, _b1) = handshake(&alice, &bob).unwrap();
    let (_a2, mut b2) = handshake(&alice, &bob).unwrap();
    assert_ne!(a1.handshake_hash(), b2.handshake_hash());
    let recorded = a1.seal(task(), &Message::Unlink).unwrap();
    let err = b2.open(&mut recorded.to_vec()).unwrap_err();
    assert!(matches!(err, WireError::Tampered { .. }), "{err}");
}

#[test]
fn a_relay_between_two_devices_cannot_pass_pairing_with_their_messages() {
    // Mallory holds a connection with alice and one with bob and forwards pairing
    // messages between them. Alice shows the code; bob's person types it correctly.
    let (alice, bob, mallory) = (identity(1), identity(2), identity(3));
    let (a, m_a) = handshake(&alice, &mallory).unwrap();
    let (m_b, b) = handshake(&mallory, &bob).unwrap();
    let _ = (&m_a, &m_b);
    let code = PairingCode::random().unwrap();
    let (asker, request) = Asker::start(&code, &a, task());
    let (answerer, answer, proof) = Answerer::answer(&code, &b, task(), &request).unwrap();
    let err = asker.check(&answer, &proof).unwrap_err();
    assert!(matches!(err, WireError::Pairing(_)), "{err}");
    // Nor does bob accept a proof mallory could make: she has only her own sessions.
    assert!(answerer.check(&[0; 32]).is_err());
}

#[test]
fn codes_print_and_parse_as_people_type_them() {
    let code: PairingCode = "1234 5678".parse().unwrap();
    assert_eq!(code.to_string(), "1234-5678");
    assert_eq!("12345678".parse::<PairingCode>().unwrap(), code);
    for bad in ["1234-567", "1234-56789", "abcd-efgh", "", "1234-567x"] {
        assert!(bad.parse::<PairingCode>().is_err(), "{bad}");
    }
    assert_eq!(format!("{code:?}"), "PairingCode(..)");
}

#[test]
fn replayed_frame_is_rejected() {
    let (mut a, mut b) = fixed_sessions().unwrap();
    let frame = a.seal(task(), &Message::Unlink).unwrap();
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
    let _first = a.seal(task(), &Message::Unlink).unwrap();
    let second = a.seal(task(), &Message::Unlink).unwrap();
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
fn a_frame_of_its_own_is_rejected() {
    let (_, mut b) = fixed_sessions().unwrap();
    // b talks to a; a frame b sealed itself claims b as sender.
    let own = b.seal(task(), &Message::Unlink).unwrap();
    assert!(matches!(
        b.open(&mut own.to_vec()),
        Err(WireError::ForeignSender { .. })
    ));
}

#[test]
fn oversized_message_is_refused_when_sealing() {
    let (mut a, mut b) = fixed_sessions().unwrap();
    let huge = Message::Sync {
        body: Bytes::from(vec![0; MAX_FRAME_LEN]),
    };
    assert!(matches!(
        a.seal(task(), &huge),
        Err(WireError::TooLarge { .. })
    ));
    // The counter did not move: the next frame still opens.
    let mut ok = a.seal(task(), &Message::Unlink).unwrap().to_vec();
    assert!(b.open(&mut ok).is_ok());
}

#[test]
fn handshake_then_talking_over_a_real_stream() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (alice, bob) = (identity(1), identity(2));
        let (sock_a, sock_b) = tokio::io::duplex(1 << 20);
        let mut fa = Framed::new(sock_a, FrameCodec::pre_auth());
        let mut fb = Framed::new(sock_b, FrameCodec::pre_auth());

        let (mut ha, first) = Handshake::initiate(&alice, Some(bob.device())).unwrap();
        let mut hb = Handshake::respond(&bob).unwrap();
        fa.send(first).await.unwrap();
        let got = fb.next().await.unwrap().unwrap();
        fb.send(hb.read(&got).unwrap().unwrap()).await.unwrap();
        let got = fa.next().await.unwrap().unwrap();
        fa.send(ha.read(&got).unwrap().unwrap()).await.unwrap();
        let got = fb.next().await.unwrap().unwrap();
        assert!(hb.read(&got).unwrap().is_none());
        let (mut a, mut b) = (ha.into_session().unwrap(), hb.into_session().unwrap());
        assert_eq!(b.peer(), alice.device());
        fa.codec_mut().set_max_frame_len(MAX_FRAME_LEN);
        fb.codec_mut().set_max_frame_len(MAX_FRAME_LEN);

        let content = Bytes::from(vec![7u8; MAX_CHUNK_LEN]);
        let path = RelPath::new("big").unwrap();
        let hash = ContentHash::of(b"x");
        let send = async {
            for i in 0..4u64 {
                let msg = Message::Content { path: path.clone(), hash, offset: i * content.len() as u64, data: content.clone(), last: false };
                fa.send(a.seal(task(), &msg).unwrap()).await.unwrap();
            }
        };
        let receive = async {
            for i in 0..4u64 {
                let mut frame = fb.next().await.unwrap().unwrap();
                let (_, msg) = b.open(&mut frame).unwrap();
                assert!(matches!(msg, Message::Content { offset, .. } if offset == i * MAX_CHUNK_LEN as u64));
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
    let (alice, _) = qsync_wire::fuzzing::fixed_identities().unwrap();
    let (_, first) = Handshake::initiate(&alice, None).unwrap();
    tokio_util::codec::Encoder::encode(&mut codec, first, &mut stream).unwrap();
    for msg in [
        Message::Hello { name: "a".into() },
        Message::LinkDone,
        Message::Unlink,
    ] {
        tokio_util::codec::Encoder::encode(&mut codec, a.seal(task(), &msg).unwrap(), &mut stream)
            .unwrap();
    }
    let body = postcard::to_stdvec(&Message::LinkRequest {
        name: "n".into(),
        folder_name: "f".into(),
        listen_port: 1,
        files: 2,
        bytes: 3,
        spake: Bytes::from_static(&[0; 33]),
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
    let (_, spake) = Asker::start(&"1234-5678".parse().unwrap(), &a, task());
    let seeds: [(&str, Vec<u8>); 7] = [
        ("stream", [&[0u8][..], &stream].concat()),
        ("body", [&[1u8][..], &body].concat()),
        ("content", [&[1u8][..], &content].concat()),
        ("pair", [&[2u8][..], &spake].concat()),
        ("code", [&[2u8][..], b"1234-5678"].concat()),
        ("flip", vec![3, 77, b'h', b'i']),
        ("empty", vec![]),
    ];
    for (name, data) in seeds {
        std::fs::write(dir.join(name), data).unwrap();
    }
}
