//! The connection handshake: Noise XX (`Noise_XX_25519_AESGCM_SHA256`, the `snow` crate),
//! sans-IO. Each side proves the private key behind its [`DeviceId`]; the keys of the
//! [`Session`] that follows come from fresh ephemeral keys, so a key stolen later does not
//! open traffic recorded today (forward secrecy).
//!
//! Three frames, `version | 1 | Noise message`, none over
//! [`PRE_AUTH_MAX_FRAME_LEN`](crate::PRE_AUTH_MAX_FRAME_LEN):
//!
//! ```text
//! initiator -> responder   e
//! responder -> initiator   e, ee, s, es      the initiator checks the responder's key here
//! initiator -> responder   s, se             and only then shows its own
//! ```
//!
//! ```
//! use qsync_wire::{Handshake, Identity, Message, TaskId};
//!
//! let (alice, bob) = (Identity::generate()?, Identity::generate()?);
//! // Alice dials Bob and expects Bob's id; Bob learns who called from the handshake.
//! let (mut dialer, first) = Handshake::initiate(&alice, Some(bob.device()))?;
//! let mut listener = Handshake::respond(&bob)?;
//! let second = listener.read(&first)?.expect("the responder answers");
//! let third = dialer.read(&second)?.expect("the initiator finishes");
//! assert!(listener.read(&third)?.is_none());
//! let (mut a, mut b) = (dialer.into_session()?, listener.into_session()?);
//! assert_eq!(b.peer(), alice.device());
//!
//! let mut frame = a.seal(TaskId::from_bytes([1; 32]), &Message::Hello { name: "laptop".into() })?.to_vec();
//! assert_eq!(b.open(&mut frame)?.1, Message::Hello { name: "laptop".into() });
//! # Ok::<(), qsync_wire::WireError>(())
//! ```

use bytes::Bytes;
use qsync_base::DeviceId;

use crate::frame::{FrameKind, PROTOCOL_VERSION};
use crate::{Identity, Session, WireError, PRE_AUTH_MAX_FRAME_LEN};

/// The Noise protocol name: pattern XX, X25519, AES-256-GCM, SHA-256.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_AESGCM_SHA256";

/// Bound into the handshake: a peer speaking another protocol or version fails it.
const PROLOGUE: &[u8] = b"qsync/2 connection";

fn noise_error(e: snow::Error) -> WireError {
    WireError::Handshake(match e {
        snow::Error::Decrypt => "the peer's handshake failed authentication",
        snow::Error::Dh => "the peer sent an unusable key",
        snow::Error::Input => "the handshake message has the wrong length",
        _ => "the handshake is out of step",
    })
}

/// One side of a connection's handshake. Send what [`initiate`](Self::initiate) and
/// [`read`](Self::read) return, feed in the peer's frames, then take the
/// [`Session`] once [`is_done`](Self::is_done).
pub struct Handshake {
    noise: Box<snow::HandshakeState>,
    identity: Identity,
    expect: Option<DeviceId>,
}

impl std::fmt::Debug for Handshake {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handshake")
            .field("local", &self.identity.device())
            .field("expect", &self.expect)
            .field("done", &self.is_done())
            .finish_non_exhaustive()
    }
}

impl Handshake {
    fn build(identity: &Identity, initiator: bool) -> Result<snow::HandshakeState, WireError> {
        let params = NOISE_PARAMS
            .parse()
            .map_err(|_| WireError::Crypto("unknown Noise parameters"))?;
        let private = identity.private_bytes();
        let builder = snow::Builder::new(params)
            .local_private_key(&private)
            .and_then(|b| b.prologue(PROLOGUE))
            .map_err(noise_error)?;
        if initiator {
            builder.build_initiator()
        } else {
            builder.build_responder()
        }
        .map_err(noise_error)
    }

    /// Dial as `identity`: the handshake and its first frame. With `expect`, a responder
    /// holding another key is refused before this side shows who it is.
    pub fn initiate(
        identity: &Identity,
        expect: Option<DeviceId>,
    ) -> Result<(Self, Bytes), WireError> {
        let mut this = Self {
            noise: Box::new(Self::build(identity, true)?),
            identity: identity.clone(),
            expect,
        };
        let first = this.write()?;
        Ok((this, first))
    }

    /// Answer a dialling device as `identity`.
    pub fn respond(identity: &Identity) -> Result<Self, WireError> {
        Ok(Self {
            noise: Box::new(Self::build(identity, false)?),
            identity: identity.clone(),
            expect: None,
        })
    }

    fn write(&mut self) -> Result<Bytes, WireError> {
        let mut frame = vec![0u8; PRE_AUTH_MAX_FRAME_LEN];
        frame[0] = PROTOCOL_VERSION;
        frame[1] = FrameKind::Hand as u8;
        let len = self
            .noise
            .write_message(&[], &mut frame[2..])
            .map_err(noise_error)?;
        frame.truncate(2 + len);
        Ok(Bytes::from(frame))
    }

    /// Take the peer's next handshake frame; returns the frame to send back, if any.
    pub fn read(&mut self, frame: &[u8]) -> Result<Option<Bytes>, WireError> {
        if self.is_done() || self.noise.is_my_turn() {
            return Err(WireError::Handshake("a handshake frame came out of turn"));
        }
        let message = crate::frame::check_kind(frame, FrameKind::Hand)?;
        // QSync's handshake carries no payload: anything more is refused, not parsed.
        let mut payload = [0u8; 64];
        let len = self
            .noise
            .read_message(message, &mut payload)
            .map_err(noise_error)?;
        if len != 0 {
            return Err(WireError::Handshake(
                "the handshake carried unexpected data",
            ));
        }
        if self
            .peer()
            .is_some_and(|peer| !self.identity.accepts(&peer))
        {
            return Err(WireError::Handshake(
                "the peer's key is of small order or not reduced: not a key anyone holds alone",
            ));
        }
        if let (Some(expected), Some(got)) = (self.expect, self.peer()) {
            if expected != got {
                return Err(WireError::UnexpectedPeer { expected, got });
            }
        }
        if !self.is_done() && self.noise.is_my_turn() {
            self.write().map(Some)
        } else {
            Ok(None)
        }
    }

    /// Whether both sides have proven their keys.
    pub fn is_done(&self) -> bool {
        self.noise.is_handshake_finished()
    }

    /// The peer's device id, once its key has been proven.
    pub fn peer(&self) -> Option<DeviceId> {
        let key: [u8; 32] = self.noise.get_remote_static()?.try_into().ok()?;
        Some(DeviceId::from_bytes(key))
    }

    /// The session, once the handshake is done.
    pub fn into_session(mut self) -> Result<Session, WireError> {
        let peer = self
            .peer()
            .filter(|_| self.is_done())
            .ok_or(WireError::Handshake("the handshake is not finished"))?;
        let hash: [u8; 32] = self
            .noise
            .get_handshake_hash()
            .try_into()
            .map_err(|_| WireError::Crypto("handshake hash of unexpected length"))?;
        let initiator = self.noise.is_initiator();
        let (to_responder, to_initiator) = self.noise.dangerously_get_raw_split();
        let (send, recv) = if initiator {
            (to_responder, to_initiator)
        } else {
            (to_initiator, to_responder)
        };
        Session::new(self.identity.device(), peer, &send, &recv, hash)
    }
}
