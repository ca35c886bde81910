//! Entry points shared by the `wire` fuzz target and the corpus test, so both exercise
//! exactly the same code. Not part of the stable API.

use bytes::BytesMut;
use qsync_base::{DeviceId, TaskId};
use tokio_util::codec::Decoder;

use crate::{pairing, peek_sender, FrameCodec, Handshake, LinkKey, Message, Opening, Session};

/// Two sessions with fixed ids, nonces and key: `(a, b)` where `a` seals for `b`.
pub fn fixed_sessions() -> Result<(Session, Session), crate::WireError> {
    let key = LinkKey::from_bytes([0x42; 32]);
    let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
    let (ha, oa) = Handshake::with_nonce(a, [3; 32]);
    let (hb, ob) = Handshake::with_nonce(b, [4; 32]);
    Ok((ha.finish(&ob, &key)?, hb.finish(&oa, &key)?))
}

/// Feed arbitrary bytes to every parser of untrusted wire bytes. Never panics.
pub fn wire(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok((mut a, mut b)) = fixed_sessions() else {
        return;
    };
    match mode % 4 {
        // A byte stream: cut into frames, each tried as every kind of frame.
        0 => {
            let mut codec = FrameCodec::new();
            let mut buf = BytesMut::from(rest);
            while let Ok(Some(mut frame)) = codec.decode(&mut buf) {
                let _ = peek_sender(&frame);
                let _ = Opening::parse(&frame);
                let _ = pairing::open_pair(&frame);
                let _ = b.open(&mut frame);
            }
            let _ = codec.decode_eof(&mut buf);
        }
        // A decrypted body that authenticated but holds arbitrary bytes.
        1 => {
            if let Ok(frame) = a.seal_raw(TaskId::from_bytes([5; 32]), rest) {
                let _ = b.open(&mut frame.to_vec());
            }
        }
        2 => {
            let _ = postcard::from_bytes::<pairing::PairMessage>(rest);
        }
        // A valid frame with one corrupted byte chosen by the input.
        _ => {
            let Some((&at, body)) = rest.split_first() else {
                return;
            };
            let Ok(frame) = a.seal(
                TaskId::from_bytes([5; 32]),
                &Message::Hello {
                    name: String::from_utf8_lossy(body).into(),
                },
            ) else {
                return;
            };
            let mut frame = frame.to_vec();
            let at = usize::from(at) % frame.len();
            frame[at] ^= 0x80;
            let _ = b.open(&mut frame);
        }
    }
}
