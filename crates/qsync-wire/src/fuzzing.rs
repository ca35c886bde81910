//! Entry points shared by the `wire` fuzz target and the corpus test, so both exercise
//! exactly the same code. Not part of the stable API.

use bytes::BytesMut;
use qsync_base::TaskId;
use tokio_util::codec::Decoder;

use crate::pairing::{Answerer, Asker, PairingCode};
use crate::{FrameCodec, Handshake, Identity, Message, Session, WireError};

/// Two fixed identities (`a`, `b`).
pub fn fixed_identities() -> Result<(Identity, Identity), WireError> {
    Ok((
        Identity::from_private_bytes([1; 32])?,
        Identity::from_private_bytes([2; 32])?,
    ))
}

/// Run a whole handshake between `a` (dialling) and `b`: their sessions.
pub fn handshake(a: &Identity, b: &Identity) -> Result<(Session, Session), WireError> {
    let (mut hs_a, first) = Handshake::initiate(a, Some(b.device()))?;
    let mut hs_b = Handshake::respond(b)?;
    let second = hs_b
        .read(&first)?
        .ok_or(WireError::Handshake("no second message"))?;
    let third = hs_a
        .read(&second)?
        .ok_or(WireError::Handshake("no third message"))?;
    hs_b.read(&third)?;
    Ok((hs_a.into_session()?, hs_b.into_session()?))
}

/// Two connected sessions of fixed devices: `(a, b)` where `a` seals for `b`.
pub fn fixed_sessions() -> Result<(Session, Session), WireError> {
    let (a, b) = fixed_identities()?;
    handshake(&a, &b)
}

/// Feed arbitrary bytes to every parser of untrusted wire bytes. Never panics.
pub fn wire(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let Ok((ia, ib)) = fixed_identities() else {
        return;
    };
    let Ok((mut a, mut b)) = handshake(&ia, &ib) else {
        return;
    };
    let task = TaskId::from_bytes([5; 32]);
    match mode % 4 {
        // A byte stream before authentication: cut into small frames, each tried as every
        // handshake step and as a sealed frame.
        0 => {
            let mut codec = FrameCodec::pre_auth();
            let mut buf = BytesMut::from(rest);
            while let Ok(Some(mut frame)) = codec.decode(&mut buf) {
                if let Ok(mut responder) = Handshake::respond(&ib) {
                    let _ = responder.read(&frame);
                }
                if let Ok((mut initiator, first)) = Handshake::initiate(&ia, None) {
                    let _ = initiator.read(&frame);
                    if let Ok(mut responder) = Handshake::respond(&ib) {
                        if let Ok(Some(_)) = responder.read(&first) {
                            let _ = responder.read(&frame);
                        }
                    }
                }
                let _ = b.open(&mut frame);
            }
            let _ = codec.decode_eof(&mut buf);
        }
        // A decrypted body that authenticated but holds arbitrary bytes.
        1 => {
            if let Ok(frame) = a.seal_raw(task, rest) {
                let _ = b.open(&mut frame.to_vec());
            }
        }
        // Pairing: a typed code, and the peer's SPAKE2 messages and proofs.
        2 => {
            let _ = String::from_utf8_lossy(rest).parse::<PairingCode>();
            let Ok(code) = "1234-5678".parse::<PairingCode>() else {
                return;
            };
            let _ = Answerer::answer(&code, &b, task, rest);
            let (asker, _) = Asker::start(&code, &a, task);
            let mut proof = [0u8; 32];
            let n = rest.len().min(32);
            proof[..n].copy_from_slice(&rest[..n]);
            let _ = asker.check(rest, &proof);
        }
        // A valid frame with one corrupted byte chosen by the input.
        _ => {
            let Some((&at, body)) = rest.split_first() else {
                return;
            };
            let Ok(frame) = a.seal(
                task,
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
