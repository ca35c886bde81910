//! QSync's wire protocol.
//!
//! Every frame on the wire is a 4-byte big-endian length followed by the frame itself. A
//! frame starts with the protocol version and a [`FrameKind`]:
//!
//! ```text
//! Hand   : version | 1 | Noise handshake message                      connection opening
//! Sealed : version | 3 | sender (32) | task (32) | counter (8, BE) | AES-256-GCM(postcard(Message)) | tag (16)
//! ```
//!
//! A device's [`DeviceId`] is the public half of its long-term X25519 key ([`Identity`]).
//! A connection starts with a Noise XX [`Handshake`] in which both sides prove their keys;
//! until it is done (and, on the daemon's side, until the peer is a linked device) frames
//! are at most [`PRE_AUTH_MAX_FRAME_LEN`] bytes. The handshake's split gives each direction
//! its own AES-256-GCM key, fresh for every connection (forward secrecy). Sealed frames carry
//! a per-direction counter starting at 0, which is also the AEAD nonce; the header is the
//! associated data. A [`Session`] accepts only the exact next counter, so a replayed,
//! reordered, dropped, truncated, tampered or foreign frame is rejected with a typed
//! [`WireError`], and after the first error the session refuses everything.
//!
//! Linking two devices ([`pairing`]) runs a PAKE with a short code inside a session.
//!
//! ```
//! use qsync_wire::{Handshake, Identity, Message, TaskId};
//!
//! let (alice, bob) = (Identity::generate()?, Identity::generate()?);
//! let (mut hs_a, first) = Handshake::initiate(&alice, Some(bob.device()))?;
//! let mut hs_b = Handshake::respond(&bob)?;
//! let second = hs_b.read(&first)?.expect("answer");
//! let third = hs_a.read(&second)?.expect("last");
//! hs_b.read(&third)?;
//! let (mut a, mut b) = (hs_a.into_session()?, hs_b.into_session()?);
//!
//! let task = TaskId::random();
//! let frame = a.seal(task, &Message::Hello { name: "laptop".into() })?;
//! let mut received = frame.to_vec(); // what the peer's FrameCodec hands over
//! let (got_task, msg) = b.open(&mut received)?;
//! assert_eq!(got_task, task);
//! assert_eq!(msg, Message::Hello { name: "laptop".into() });
//! # Ok::<(), qsync_wire::WireError>(())
//! ```

mod codec;
mod error;
mod frame;
mod handshake;
mod identity;
mod message;
pub mod pairing;
mod session;

#[doc(hidden)]
pub mod fuzzing;

pub use codec::{FrameCodec, MAX_FRAME_LEN, PRE_AUTH_MAX_FRAME_LEN};
pub use error::WireError;
pub use frame::{FrameKind, PROTOCOL_VERSION};
pub use handshake::{Handshake, NOISE_PARAMS};
pub use identity::{fingerprint, names_device, Identity};
pub use message::{Message, MAX_CHUNK_LEN, MAX_INLINE_PATCH, MAX_INLINE_PATCHES};
pub use pairing::PairingCode;
pub use qsync_base::{ContentHash, DeviceId, EntryKind, RelPath, TaskId, UpdateId};
pub use session::Session;
