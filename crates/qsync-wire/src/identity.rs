//! A device's long-term identity: an X25519 key pair whose public half *is* its
//! [`DeviceId`]. Whoever shows a device id in a handshake must hold the private half, so an
//! id can be printed, announced over mDNS and typed by people, but not used by anyone else.
//!
//! ```
//! use qsync_wire::{fingerprint, Identity};
//!
//! let me = Identity::generate()?;
//! let again = Identity::from_private_bytes(me.private_bytes())?;
//! assert_eq!(me.device(), again.device()); // the id is derived from the key
//! assert_eq!(fingerprint(&me.device()).len(), 19); // four groups of four, for people
//! # Ok::<(), qsync_wire::WireError>(())
//! ```

use std::fmt;

use qsync_base::DeviceId;
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};

use crate::WireError;

/// This device's key pair. The private half never leaves it (the daemon keeps it in a
/// 0600 file of its state folder); [`Debug`] does not show it.
#[derive(Clone)]
pub struct Identity {
    private: [u8; 32],
    device: DeviceId,
}

impl fmt::Debug for Identity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Identity")
            .field("device", &self.device)
            .finish_non_exhaustive()
    }
}

fn dh() -> Result<Box<dyn snow::types::Dh>, WireError> {
    DefaultResolver
        .resolve_dh(&DHChoice::Curve25519)
        .ok_or(WireError::Crypto("X25519 is not available"))
}

impl Identity {
    /// A fresh key pair from the system's random source.
    pub fn generate() -> Result<Self, WireError> {
        let mut private = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut private)
            .map_err(|_| WireError::Crypto("the system random source failed"))?;
        Self::from_private_bytes(private)
    }

    /// The identity of a stored private key.
    pub fn from_private_bytes(private: [u8; 32]) -> Result<Self, WireError> {
        let mut dh = dh()?;
        dh.set(&private);
        let public: [u8; 32] = dh
            .pubkey()
            .try_into()
            .map_err(|_| WireError::Crypto("X25519 public key of unexpected length"))?;
        Ok(Self {
            private,
            device: DeviceId::from_bytes(public),
        })
    }

    /// The private key's bytes, to store (and nothing else).
    pub fn private_bytes(&self) -> [u8; 32] {
        self.private
    }

    /// This device's id: its public key.
    pub fn device(&self) -> DeviceId {
        self.device
    }

    /// Whether `peer` is a key only its holder can use: the canonical encoding of a point
    /// that is not of small order. A small-order point gives the same Diffie-Hellman result
    /// whatever the private key (a handshake could pass without one), and a non-canonical
    /// encoding would let one key appear as several device ids.
    pub(crate) fn accepts(&self, peer: &DeviceId) -> bool {
        let bytes = peer.as_bytes();
        // The top bit is not part of the coordinate; values from 2^255 - 19 up are not
        // reduced (little-endian: 0xed.. then 0xff.. then 0x7f).
        let top_bit = bytes[31] & 0x80 != 0;
        let unreduced =
            bytes[31] == 0x7f && bytes[1..31].iter().all(|b| *b == 0xff) && bytes[0] >= 0xed;
        if top_bit || unreduced {
            return false;
        }
        let Ok(mut dh) = dh() else { return false };
        dh.set(&self.private);
        let mut shared = [0u8; 32];
        dh.dh(bytes, &mut shared).is_ok() && shared != [0u8; 32]
    }
}

/// A short form of a device id for people to compare and type: its first 80 bits, as four
/// groups of four base32 letters (`abcd-efgh-ijkl-mnop`), the start of the id as printed.
/// Finding another key with the same fingerprint takes about 2⁸⁰ key generations.
pub fn fingerprint(device: &DeviceId) -> String {
    device.fingerprint()
}

/// Whether `text` (a whole id or a fingerprint, as people type them) names `device`.
pub fn names_device(text: &str, device: &DeviceId) -> bool {
    let clean = |s: &str| -> String {
        s.chars()
            .filter(|c| c.is_ascii_alphanumeric())
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let wanted = clean(text);
    let full = clean(&device.to_string());
    // At least the fingerprint's 16 letters: a shorter prefix is too easy to find.
    wanted.len() >= 16 && full.starts_with(&wanted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fingerprint_or_the_whole_id_names_a_device_and_a_short_prefix_does_not() {
        let me = Identity::generate().unwrap().device();
        let other = Identity::generate().unwrap().device();
        assert!(names_device(&fingerprint(&me), &me));
        assert!(names_device(&me.to_string(), &me));
        assert!(names_device(&fingerprint(&me).to_uppercase(), &me));
        assert!(!names_device(&fingerprint(&other), &me));
        assert!(!names_device(&me.to_string()[..9], &me));
        assert!(!names_device("", &me));
    }

    #[test]
    fn small_order_and_unreduced_keys_are_not_accepted() {
        let me = Identity::generate().unwrap();
        assert!(me.accepts(&Identity::generate().unwrap().device()));
        let zero = DeviceId::from_bytes([0; 32]);
        let mut one = [0u8; 32];
        one[0] = 1;
        let mut p_minus_1 = [0xff; 32];
        p_minus_1[0] = 0xec;
        p_minus_1[31] = 0x7f;
        let mut top = me.device().as_bytes().to_owned();
        top[31] |= 0x80;
        for bad in [
            zero,
            DeviceId::from_bytes(one),
            DeviceId::from_bytes(p_minus_1),
            DeviceId::from_bytes(top),
        ] {
            assert!(!me.accepts(&bad), "{bad}");
        }
    }
}
