//! Pairing: two devices agree on a [`LinkKey`] with X25519 and show the same short
//! [`ConfirmationCode`], which their people compare to rule out a device in the middle.
//!
//! ```
//! use qsync_wire::pairing::PairingSecret;
//! use qsync_wire::DeviceId;
//!
//! let (a, b) = (DeviceId::random(), DeviceId::random());
//! let (sa, sb) = (PairingSecret::generate().unwrap(), PairingSecret::generate().unwrap());
//! let (pa, pb) = (sa.public_key(), sb.public_key());
//! let (key_a, code_a) = sa.agree(a, b, &pb).unwrap();
//! let (key_b, code_b) = sb.agree(b, a, &pa).unwrap();
//! assert_eq!(key_a, key_b);
//! assert_eq!(code_a.to_string(), code_b.to_string());
//! ```

use std::fmt;

use bytes::Bytes;
use qsync_base::{DeviceId, TaskId};
use ring::agreement::{self, EphemeralPrivateKey, UnparsedPublicKey, X25519};
use ring::hkdf;
use ring::rand::SystemRandom;
use serde::{Deserialize, Serialize};

use crate::frame::{check_prefix, read32, write_prefix, FrameKind, PAIR_HEADER_LEN, PREFIX_LEN};
use crate::{WireError, MAX_FRAME_LEN};

/// The secret two linked devices share; stored by both, never sent.
#[derive(Clone, PartialEq, Eq)]
pub struct LinkKey([u8; 32]);

impl LinkKey {
    /// A key from its stored bytes.
    pub const fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's bytes, for storage.
    pub const fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for LinkKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LinkKey(..)")
    }
}

/// Six digits both devices show after pairing; the people check they match.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConfirmationCode(u32);

impl ConfirmationCode {
    /// The code as a number below 1,000,000.
    pub fn value(self) -> u32 {
        self.0
    }
}

impl fmt::Display for ConfirmationCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:03} {:03}", self.0 / 1000, self.0 % 1000)
    }
}

/// Pairing messages, sent in clear in `Pair` frames (there is no shared key yet).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum PairMessage {
    /// Ask the peer to pair, for the frame's task.
    Request {
        /// The asker's X25519 public key.
        public_key: [u8; 32],
        /// The asker's human name.
        name: String,
        /// The task's folder name on the asker, as a suggestion.
        folder_name: String,
        /// The port the asker's daemon listens on.
        listen_port: u16,
    },
    /// Accept, with the answerer's public key.
    Accept {
        /// The answerer's X25519 public key.
        public_key: [u8; 32],
        /// The answerer's human name.
        name: String,
        /// The port the answerer's daemon listens on.
        listen_port: u16,
    },
    /// Refuse.
    Refuse {
        /// Why, for the person.
        reason: String,
    },
}

/// Make a `Pair` frame.
pub fn seal_pair(
    sender: DeviceId,
    task: TaskId,
    message: &PairMessage,
) -> Result<Bytes, WireError> {
    let mut frame = Vec::with_capacity(PAIR_HEADER_LEN + 128);
    write_prefix(&mut frame, FrameKind::Pair, &sender);
    frame.extend_from_slice(task.as_bytes());
    let frame = postcard::to_extend(message, frame)?;
    if frame.len() > MAX_FRAME_LEN {
        return Err(WireError::TooLarge {
            len: frame.len(),
            max: MAX_FRAME_LEN,
        });
    }
    Ok(Bytes::from(frame))
}

/// Read a `Pair` frame: sender, task and message.
pub fn open_pair(frame: &[u8]) -> Result<(DeviceId, TaskId, PairMessage), WireError> {
    let sender = check_prefix(frame, FrameKind::Pair, PAIR_HEADER_LEN)?;
    let task = TaskId::from_bytes(read32(frame, PREFIX_LEN));
    let message = postcard::from_bytes(&frame[PAIR_HEADER_LEN..])?;
    Ok((sender, task, message))
}

/// This device's one-use X25519 secret for one pairing.
pub struct PairingSecret {
    private: EphemeralPrivateKey,
    public: [u8; 32],
}

impl fmt::Debug for PairingSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PairingSecret")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

impl PairingSecret {
    /// A fresh secret.
    pub fn generate() -> Result<Self, WireError> {
        let rng = SystemRandom::new();
        let private = EphemeralPrivateKey::generate(&agreement::X25519, &rng)
            .map_err(|_| WireError::Crypto("X25519 key generation failed"))?;
        let public_key = private
            .compute_public_key()
            .map_err(|_| WireError::Crypto("X25519 public key computation failed"))?;
        let mut public = [0u8; 32];
        public.copy_from_slice(public_key.as_ref());
        Ok(Self { private, public })
    }

    /// The public key to send to the peer.
    pub fn public_key(&self) -> [u8; 32] {
        self.public
    }

    /// Agree with the peer's public key: the link key and the code to show.
    /// Both sides get the same results whichever of them calls first.
    pub fn agree(
        self,
        me: DeviceId,
        peer: DeviceId,
        peer_public: &[u8; 32],
    ) -> Result<(LinkKey, ConfirmationCode), WireError> {
        let mine = (me, self.public);
        let theirs = (peer, *peer_public);
        let (lo, hi) = if mine <= theirs {
            (mine, theirs)
        } else {
            (theirs, mine)
        };
        agreement::agree_ephemeral(
            self.private,
            &UnparsedPublicKey::new(&X25519, peer_public),
            |shared| {
                let prk = hkdf::Salt::new(hkdf::HKDF_SHA256, b"qsync/v1 pairing").extract(shared);
                let mut key = [0u8; 32];
                let mut code = [0u8; 4];
                for (label, out) in [
                    (&b"link"[..], &mut key[..]),
                    (&b"confirm"[..], &mut code[..]),
                ] {
                    let info: [&[u8]; 5] = [label, lo.0.as_bytes(), &lo.1, hi.0.as_bytes(), &hi.1];
                    prk.expand(&info, Len(out.len()))
                        .and_then(|okm| okm.fill(out))
                        .map_err(|_| WireError::Crypto("pairing key derivation failed"))?;
                }
                Ok((
                    LinkKey(key),
                    ConfirmationCode(u32::from_be_bytes(code) % 1_000_000),
                ))
            },
        )
        .map_err(|_| WireError::Crypto("X25519 agreement failed: bad peer public key"))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_sides_agree_and_a_third_key_does_not() {
        let (a, b) = (DeviceId::random(), DeviceId::random());
        let (sa, sb, sm) = (
            PairingSecret::generate().unwrap(),
            PairingSecret::generate().unwrap(),
            PairingSecret::generate().unwrap(),
        );
        let (pa, pb, pm) = (sa.public_key(), sb.public_key(), sm.public_key());
        let (ka, ca) = sa.agree(a, b, &pm).unwrap(); // a talks to a man in the middle
        let (kb, cb) = sb.agree(b, a, &pa).unwrap();
        let _ = pb;
        assert_ne!(ka, kb);
        // Codes differ with overwhelming probability (1 in a million).
        assert!(ca != cb || ka != kb);
        assert_eq!(format!("{}", ConfirmationCode(42)), "000 042");
    }

    #[test]
    fn pair_frames_round_trip_and_reject_garbage() {
        let (d, t) = (DeviceId::random(), TaskId::random());
        let msg = PairMessage::Refuse {
            reason: "no".into(),
        };
        let frame = seal_pair(d, t, &msg).unwrap();
        assert_eq!(open_pair(&frame).unwrap(), (d, t, msg));
        assert!(open_pair(&frame[..10]).is_err());
        assert!(open_pair(&frame[..frame.len() - 1]).is_err());
    }
}
