//! The sealed-frame session: what a finished handshake gives, the sans-IO heart of the
//! wire layer. Each direction has its own AES-256-GCM key; the frame counter is the nonce
//! and the header the associated data.

use bytes::Bytes;
use qsync_base::{DeviceId, TaskId};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM};

use crate::frame::{
    check_prefix, read32, write_prefix, FrameKind, PREFIX_LEN, SEALED_HEADER_LEN, TASK_END,
};
use crate::{Message, WireError, MAX_FRAME_LEN};

const TAG_LEN: usize = 16;

impl Session {
    /// A session from the keys a finished [`Handshake`](crate::Handshake) split off:
    /// `send` seals this side's frames, `recv` opens the peer's.
    pub(crate) fn new(
        local: DeviceId,
        peer: DeviceId,
        send: &[u8; 32],
        recv: &[u8; 32],
        handshake_hash: [u8; 32],
    ) -> Result<Self, WireError> {
        let key = |bytes: &[u8; 32]| {
            UnboundKey::new(&AES_256_GCM, bytes)
                .map(LessSafeKey::new)
                .map_err(|_| WireError::Crypto("bad session key"))
        };
        Ok(Session {
            local,
            peer,
            send: key(send)?,
            recv: key(recv)?,
            send_counter: 0,
            recv_counter: 0,
            poisoned: false,
            handshake_hash,
        })
    }

    /// The Noise handshake hash: the same on both ends of this connection and on no other.
    /// Pairing binds its proof to it, so a proof made on one connection is worthless on
    /// another (a relay in the middle holds two connections).
    pub fn handshake_hash(&self) -> &[u8; 32] {
        &self.handshake_hash
    }

    /// This side's device.
    pub fn local(&self) -> DeviceId {
        self.local
    }
}

/// The AEAD nonce of frame `counter`: 32 zero bits and the counter, big-endian, as in
/// Noise's own AES-GCM transport.
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
    handshake_hash: [u8; 32],
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
        let hint = match message.data_len() {
            0 => 256,
            n => n + 128,
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
        counter.copy_from_slice(&frame[TASK_END..SEALED_HEADER_LEN]);
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
