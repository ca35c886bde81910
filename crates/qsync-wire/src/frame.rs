//! Frame header layout: every frame starts with the protocol version and its kind.

use qsync_base::{DeviceId, TaskId};

use crate::WireError;

/// The protocol version this build speaks; the first byte of every frame. Version 2 is
/// the Noise handshake with device ids that are public keys (version 1 had random ids and
/// keys agreed at pairing; the two do not talk). Version 3 adds the block signatures of
/// the rsync exchange ([`Message::SignatureWanted`](crate::Message::SignatureWanted)): a
/// version 2 daemon could not decode them, so the two do not talk either (discovery skips
/// the other version, and a dial fails its handshake with an error that names both).
/// Version 4 adds the checks of a resumed request and [`Message::Resend`](crate::Message::Resend).
/// Version 5 adds folded runs of records (`qsync_core::Fold`: a folder moved costs a few
/// hundred bytes, not a record per path); version 6, the version a time-only change keeps
/// the content of (`qsync_core::Record::retimed`); version 7, a content's or a patch's last
/// chunk that carries its last bytes (a version 6 receiver takes only an empty one);
/// version 8, records that carry their patches ([`Message::SyncPatched`](crate::Message::SyncPatched));
/// version 9, the device that made a version (`qsync_core::Record::by`, named in conflict
/// copies).
pub const PROTOCOL_VERSION: u8 = 9;

/// The second byte of every frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum FrameKind {
    /// A Noise handshake message ([`Handshake`](crate::Handshake)).
    Hand = 1,
    /// A message sealed with the session keys.
    Sealed = 3,
}

impl FrameKind {
    fn name(self) -> &'static str {
        match self {
            Self::Hand => "a handshake frame",
            Self::Sealed => "a sealed frame",
        }
    }
}

pub(crate) const PREFIX_LEN: usize = 2 + DeviceId::LEN;
pub(crate) const TASK_END: usize = PREFIX_LEN + TaskId::LEN;
pub(crate) const SEALED_HEADER_LEN: usize = TASK_END + 8;

/// Check the version and kind bytes; the bytes after them.
pub(crate) fn check_kind(frame: &[u8], kind: FrameKind) -> Result<&[u8], WireError> {
    if frame.len() < 2 {
        return Err(WireError::Truncated {
            len: frame.len(),
            needed: 2,
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
    Ok(&frame[2..])
}

/// Check a frame's length, version and kind; the sender id it claims.
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
    check_kind(frame, kind)?;
    Ok(DeviceId::from_bytes(read32(frame, 2)))
}

pub(crate) fn write_prefix(out: &mut Vec<u8>, kind: FrameKind, sender: &DeviceId) {
    out.push(PROTOCOL_VERSION);
    out.push(kind as u8);
    out.extend_from_slice(sender.as_bytes());
}

/// 32 bytes at `at`; the caller has checked the length.
pub(crate) fn read32(frame: &[u8], at: usize) -> [u8; 32] {
    let mut out = [0u8; 32];
    out.copy_from_slice(&frame[at..at + 32]);
    out
}
