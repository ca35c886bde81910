//! Connection handshake and the sealed-frame session: the sans-IO heart of the wire layer.

use bytes::Bytes;
use qsync_base::{DeviceId, TaskId};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};

use crate::frame::{
    check_prefix, read32, write_prefix, FrameKind, OPEN_LEN, PAIR_HEADER_LEN, PREFIX_LEN,
    SEALED_HEADER_LEN,
};
use crate::{LinkKey, Message, WireError, MAX_FRAME_LEN};

const TAG_LEN: usize = 16;

/// The peer's `Open` frame, parsed: who it claims to be and its fresh nonce.
///
/// A listener parses it first to learn which device is calling, looks up the [`LinkKey`]
/// it shares with that device, then calls [`Handshake::finish_opening`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Opening {
    sender: DeviceId,
    nonce: [u8; 32],
}

impl Opening {
    /// Parse an `Open` frame.
    pub fn parse(frame: &[u8]) -> Result<Self, WireError> {
        let sender = check_prefix(frame, FrameKind::Open, OPEN_LEN)?;
        if frame.len() != OPEN_LEN {
            return Err(WireError::UnexpectedKind {
                got: FrameKind::Open as u8,
                expected: "an Open frame of exactly 66 bytes",
            });
        }
        Ok(Self {
            sender,
            nonce: read32(frame, PREFIX_LEN),
        })
    }

    /// The device that sent it.
    pub fn sender(&self) -> DeviceId {
        self.sender
    }
}

/// One side of the connection opening. Send the frame [`Handshake::start`] returns, read
/// the peer's, and [`finish`](Handshake::finish) with the key shared with that peer.
#[derive(Debug)]
pub struct Handshake {
    local: DeviceId,
    nonce: [u8; 32],
}

impl Handshake {
    /// Start a connection as `local`: returns the handshake and the `Open` frame to send.
    pub fn start(local: DeviceId) -> Result<(Self, Bytes), WireError> {
        let mut nonce = [0u8; 32];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| WireError::Crypto("the system random source failed"))?;
        Ok(Self::with_nonce(local, nonce))
    }

    /// A handshake with a chosen nonce. Only for tests and fuzzing: a nonce must never be
    /// reused with the same key.
    #[doc(hidden)]
    pub fn with_nonce(local: DeviceId, nonce: [u8; 32]) -> (Self, Bytes) {
        let mut frame = Vec::with_capacity(OPEN_LEN);
        write_prefix(&mut frame, FrameKind::Open, &local);
        frame.extend_from_slice(&nonce);
        (Self { local, nonce }, Bytes::from(frame))
    }

    /// Finish with the peer's `Open` frame and the key shared with it.
    pub fn finish(self, peer_open: &[u8], key: &LinkKey) -> Result<Session, WireError> {
        let opening = Opening::parse(peer_open)?;
        self.finish_opening(&opening, key)
    }

    /// Finish with an already parsed `Open` frame.
    pub fn finish_opening(self, peer: &Opening, key: &LinkKey) -> Result<Session, WireError> {
        let send = direction_key(key, &self.local, &peer.sender, &self.nonce, &peer.nonce)?;
        let recv = direction_key(key, &peer.sender, &self.local, &peer.nonce, &self.nonce)?;
        Ok(Session {
            local: self.local,
            peer: peer.sender,
            send,
            recv,
            send_counter: 0,
            recv_counter: 0,
            poisoned: false,
        })
    }
}

fn direction_key(
    key: &LinkKey,
    sender: &DeviceId,
    receiver: &DeviceId,
    sender_nonce: &[u8; 32],
    receiver_nonce: &[u8; 32],
) -> Result<LessSafeKey, WireError> {
    let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"qsync/v1 session").extract(key.as_bytes());
    let info: [&[u8]; 5] = [
        b"qsync/v1 direction",
        sender.as_bytes(),
        receiver.as_bytes(),
        sender_nonce,
        receiver_nonce,
    ];
    let okm = prk
        .expand(&info, &AES_256_GCM)
        .map_err(|_| WireError::Crypto("key derivation failed"))?;
    Ok(LessSafeKey::new(UnboundKey::from(okm)))
}

fn nonce_for(counter: u64) -> Nonce {
    let mut bytes = [0u8; 12];
    bytes[4..].copy_from_slice(&counter.to_be_bytes());
    Nonce::assume_unique_for_key(bytes)
}

/// An established, authenticated connection between two devices: seals outgoing messages
/// and opens incoming frames, in order.
///
/// It does no I/O: feed it the frames a [`FrameCodec`](crate::FrameCodec) cuts from the
/// stream, and write out the frames it returns.
pub struct Session {
    local: DeviceId,
    peer: DeviceId,
    send: LessSafeKey,
    recv: LessSafeKey,
    send_counter: u64,
    recv_counter: u64,
    poisoned: bool,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("local", &self.local)
            .field("peer", &self.peer)
            .field("send_counter", &self.send_counter)
            .field("recv_counter", &self.recv_counter)
            .field("poisoned", &self.poisoned)
            .finish_non_exhaustive()
    }
}

impl Session {
    /// The device at the other end.
    pub fn peer(&self) -> DeviceId {
        self.peer
    }

    /// Whether an incoming frame has failed a check: the connection should be closed.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// Seal `message` for task `task` into a frame ready for [`FrameCodec`](crate::FrameCodec).
    pub fn seal(&mut self, task: TaskId, message: &Message) -> Result<Bytes, WireError> {
        let hint = match message {
            Message::Chunk { data, .. } => data.len() + 64,
            _ => 256,
        };
        let mut frame = Vec::with_capacity(SEALED_HEADER_LEN + hint + TAG_LEN);
        self.write_header(&mut frame, task);
        let frame = postcard::to_extend(message, frame)?;
        self.seal_frame(frame)
    }

    /// Seal arbitrary body bytes (fuzzing and tests of the receiver's parser).
    #[doc(hidden)]
    pub fn seal_raw(&mut self, task: TaskId, body: &[u8]) -> Result<Bytes, WireError> {
        let mut frame = Vec::with_capacity(SEALED_HEADER_LEN + body.len() + TAG_LEN);
        self.write_header(&mut frame, task);
        frame.extend_from_slice(body);
        self.seal_frame(frame)
    }

    fn write_header(&self, frame: &mut Vec<u8>, task: TaskId) {
        write_prefix(frame, FrameKind::Sealed, &self.local);
        frame.extend_from_slice(task.as_bytes());
        frame.extend_from_slice(&self.send_counter.to_be_bytes());
    }

    fn seal_frame(&mut self, mut frame: Vec<u8>) -> Result<Bytes, WireError> {
        if frame.len() + TAG_LEN > MAX_FRAME_LEN {
            return Err(WireError::TooLarge {
                len: frame.len() + TAG_LEN,
                max: MAX_FRAME_LEN,
            });
        }
        let next = self
            .send_counter
            .checked_add(1)
            .ok_or(WireError::CounterExhausted)?;
        let (header, body) = frame.split_at_mut(SEALED_HEADER_LEN);
        let tag = self
            .send
            .seal_in_place_separate_tag(nonce_for(self.send_counter), Aad::from(&*header), body)
            .map_err(|_| WireError::Crypto("sealing failed"))?;
        frame.extend_from_slice(tag.as_ref());
        self.send_counter = next;
        Ok(Bytes::from(frame))
    }

    /// Open a sealed frame, decrypting it in place. Returns the task it is about and the
    /// message. Any error poisons the session.
    pub fn open(&mut self, frame: &mut [u8]) -> Result<(TaskId, Message), WireError> {
        let (task, body) = self.open_raw(frame)?;
        match Message::decode(body) {
            Ok(message) => Ok((task, message)),
            Err(e) => {
                self.poisoned = true;
                Err(e.into())
            }
        }
    }

    /// Open a sealed frame and return its body bytes without decoding them.
    pub fn open_raw<'f>(&mut self, frame: &'f mut [u8]) -> Result<(TaskId, &'f [u8]), WireError> {
        if self.poisoned {
            return Err(WireError::Poisoned);
        }
        match self.open_checked(frame) {
            Ok(found) => Ok(found),
            Err(e) => {
                self.poisoned = true;
                Err(e)
            }
        }
    }

    fn open_checked<'f>(&mut self, frame: &'f mut [u8]) -> Result<(TaskId, &'f [u8]), WireError> {
        let sender = check_prefix(frame, FrameKind::Sealed, SEALED_HEADER_LEN + TAG_LEN)?;
        if sender != self.peer {
            return Err(WireError::ForeignSender {
                expected: self.peer,
                got: sender,
            });
        }
        let task = TaskId::from_bytes(read32(frame, PREFIX_LEN));
        let mut counter = [0u8; 8];
        counter.copy_from_slice(&frame[PAIR_HEADER_LEN..SEALED_HEADER_LEN]);
        let counter = u64::from_be_bytes(counter);
        if counter != self.recv_counter {
            return Err(WireError::OutOfOrder {
                expected: self.recv_counter,
                got: counter,
            });
        }
        let (header, body) = frame.split_at_mut(SEALED_HEADER_LEN);
        let plain = self
            .recv
            .open_in_place(nonce_for(counter), Aad::from(&*header), body)
            .map_err(|_| WireError::Tampered { sender })?;
        self.recv_counter = self.recv_counter.saturating_add(1);
        Ok((task, plain))
    }
}
