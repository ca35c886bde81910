//! Frame header layout.

use qsync_base::{DeviceId, TaskId};

use crate::WireError;

/// The protocol version this build speaks; the first byte of every frame.
pub const PROTOCOL_VERSION: u8 = 1;

/// The second byte of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// Connection opening: sender id and a fresh random nonce, in clear.
    Open = 1,
    /// Pairing message, in clear (no key exists yet).
    Pair = 2,
    /// A message sealed with the session keys.
    Sealed = 3,
}

impl FrameKind {
    fn from_byte(byte: u8) -> Option<Self> {
        match byte {
            1 => Some(Self::Open),
            2 => Some(Self::Pair),
            3 => Some(Self::Sealed),
            _ => None,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Self::Open => "Open",
            Self::Pair => "Pair",
            Self::Sealed => "Sealed",
        }
    }
}

pub(crate) const PREFIX_LEN: usize = 2 + DeviceId::LEN;
pub(crate) const OPEN_LEN: usize = PREFIX_LEN + 32;
pub(crate) const PAIR_HEADER_LEN: usize = PREFIX_LEN + TaskId::LEN;
pub(crate) const SEALED_HEADER_LEN: usize = PAIR_HEADER_LEN + 8;

/// Check version and kind, and return the sender.
pub(crate) fn check_prefix(
    frame: &[u8],
    kind: FrameKind,
    min_len: usize,
) -> Result<DeviceId, WireError> {
    if frame.len() < min_len {
        return Err(WireError::Truncated {
            len: frame.len(),
            needed: min_len,
        });
    }
    if frame[0] != PROTOCOL_VERSION {
        return Err(WireError::UnknownVersion {
            got: frame[0],
            ours: PROTOCOL_VERSION,
        });
    }
    if frame[1] != kind as u8 {
        return Err(WireError::UnexpectedKind {
            got: frame[1],
            expected: kind.name(),
        });
    }
    Ok(DeviceId::from_bytes(read32(frame, 2)))
}

pub(crate) fn write_prefix(out: &mut Vec<u8>, kind: FrameKind, sender: &DeviceId) {
    out.push(PROTOCOL_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(sender.as_bytes());
}

pub(crate) fn read32(frame: &[u8], at: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&frame[at..at + 32]);
    out
}

/// The kind and claimed sender of a frame, without checking anything else: what a
/// listener needs to pick the key before it opens the frame.
pub fn peek_sender(frame: &[u8]) -> Result<(FrameKind, DeviceId), WireError> {
    if frame.len() < PREFIX_LEN {
        return Err(WireError::Truncated {
            len: frame.len(),
            needed: PREFIX_LEN,
        });
    }
    if frame[0] != PROTOCOL_VERSION {
        return Err(WireError::UnknownVersion {
            got: frame[0],
            ours: PROTOCOL_VERSION,
        });
    }
    let kind = FrameKind::from_byte(frame[1]).ok_or(WireError::UnexpectedKind {
        got: frame[1],
        expected: "Open, Pair or Sealed",
    })?;
    Ok((kind, DeviceId::from_bytes(read32(frame, 2))))
}
