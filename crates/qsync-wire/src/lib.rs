//! QSync's wire protocol.
//!
//! Every frame on the wire is a 4-byte big-endian length followed by the frame itself, at
//! most [`MAX_FRAME_LEN`] bytes (a bigger length is refused before anything is allocated).
//! A frame starts with the protocol version and a [`FrameKind`], then the sender's
//! [`DeviceId`] in clear, so the receiver can find the key it shares with that device:
//!
//! ```text
//! Open   : version | 1 | sender (32) | nonce (32)                        connection opening
//! Pair   : version | 2 | sender (32) | task (32) | postcard(PairMessage)  pairing, in clear
//! Sealed : version | 3 | sender (32) | task (32) | counter (8, BE) | AES-256-GCM(postcard(Message)) | tag (16)
//! ```
//!
//! A connection starts with each side sending an `Open` frame with a fresh random nonce
//! ([`Handshake`]). Each direction then gets its own AES-256-GCM key, derived with HKDF from
//! the [`LinkKey`] the two devices agreed when they were paired ([`pairing`]) and both
//! nonces. Sealed frames carry a per-direction counter starting at 0, which is also the AEAD
//! nonce; the header is the associated data. A [`Session`] accepts only the exact next
//! counter, so a replayed, reordered, dropped, truncated, tampered or foreign frame is
//! rejected with a typed [`WireError`], and after the first error the session refuses
//! everything: the connection is no longer trusted.
//!
//! ```
//! use qsync_wire::{DeviceId, Handshake, LinkKey, Message, TaskId};
//!
//! let (alice, bob) = (DeviceId::random(), DeviceId::random());
//! let key = LinkKey::from_bytes([7; 32]); // agreed at pairing time
//!
//! // Each side sends an Open frame and reads the other's.
//! let (hs_a, open_a) = Handshake::start(alice).unwrap();
//! let (hs_b, open_b) = Handshake::start(bob).unwrap();
//! let mut a = hs_a.finish(&open_b, &key).unwrap();
//! let mut b = hs_b.finish(&open_a, &key).unwrap();
//!
//! let task = TaskId::random();
//! let frame = a.seal(task, &Message::Hello { name: "laptop".into() }).unwrap();
//! let mut received = frame.to_vec(); // what the peer's FrameCodec hands over
//! let (got_task, msg) = b.open(&mut received).unwrap();
//! assert_eq!(got_task, task);
//! assert_eq!(msg, Message::Hello { name: "laptop".into() });
//! ```

mod codec;
mod error;
mod frame;
mod message;
pub mod pairing;
mod session;

#[doc(hidden)]
pub mod fuzzing;

pub use codec::{FrameCodec, MAX_FRAME_LEN};
pub use error::WireError;
pub use frame::{peek_sender, FrameKind, PROTOCOL_VERSION};
pub use message::{Message, Outcome, MAX_CHUNK_LEN};
pub use pairing::{ConfirmationCode, LinkKey, PairMessage};
pub use qsync_base::{ContentHash, DeviceId, EntryKind, RelPath, TaskId, UpdateId};
pub use session::{Handshake, Opening, Session};
