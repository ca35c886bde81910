use qsync_base::DeviceId;

/// Why a frame was refused or could not be made.
///
/// Every error on the receiving side poisons the [`Session`](crate::Session): the
/// connection should be closed and opened again.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The frame is shorter than its header.
    #[error("frame of {len} bytes is shorter than its {needed}-byte header")]
    Truncated {
        /// Bytes received.
        len: usize,
        /// Bytes the header needs.
        needed: usize,
    },
    /// The frame speaks a protocol version this build does not.
    #[error(
        "frame uses protocol version {got}, this QSync speaks version {ours}: update both devices"
    )]
    UnknownVersion {
        /// Version in the frame.
        got: u8,
        /// Version this build speaks.
        ours: u8,
    },
    /// The frame kind byte is unknown, or not the kind expected at this point.
    #[error("unexpected frame kind {got} (expected {expected})")]
    UnexpectedKind {
        /// The kind byte received.
        got: u8,
        /// What was expected.
        expected: &'static str,
    },
    /// The frame claims to come from another device than the one this session is with.
    #[error("frame claims to come from device {got}, but this connection is with {expected}")]
    ForeignSender {
        /// The peer of this session.
        expected: DeviceId,
        /// The sender named in the frame.
        got: DeviceId,
    },
    /// The frame's counter is not the next one: a replay, a reordering or a dropped frame.
    #[error(
        "frame counter {got} where {expected} was expected: replayed, reordered or dropped frame"
    )]
    OutOfOrder {
        /// The counter expected.
        expected: u64,
        /// The counter received.
        got: u64,
    },
    /// Authentication failed: the frame was altered, or sealed with another key.
    #[error(
        "frame from {sender} failed authentication: altered in transit or sealed with another key"
    )]
    Tampered {
        /// The claimed sender.
        sender: DeviceId,
    },
    /// The frame opened but its content is not a valid message.
    #[error("frame content is not a valid message: {0}")]
    Malformed(#[from] postcard::Error),
    /// A frame length over [`MAX_FRAME_LEN`](crate::MAX_FRAME_LEN).
    #[error("frame of {len} bytes is over the {max}-byte limit")]
    TooLarge {
        /// The announced or produced length.
        len: usize,
        /// The limit.
        max: usize,
    },
    /// An earlier error made this session untrusted.
    #[error("this connection already failed a check and is no longer trusted; reconnect")]
    Poisoned,
    /// The per-direction counter would wrap around.
    #[error("the frame counter is exhausted; reconnect to get fresh keys")]
    CounterExhausted,
    /// The Noise handshake failed: the peer could not prove a key, or sent something
    /// out of step.
    #[error("handshake failed: {0}")]
    Handshake(&'static str),
    /// The peer proved a key, but not the one of the device this side meant to reach.
    #[error("the device that answered is {got}, not the expected {expected}")]
    UnexpectedPeer {
        /// The device dialled.
        expected: DeviceId,
        /// The device that answered.
        got: DeviceId,
    },
    /// Pairing failed: a wrong code, or a malformed pairing message.
    #[error("pairing failed: {0}")]
    Pairing(&'static str),
    /// The operating system's random source or a key operation failed.
    #[error("cryptographic operation failed: {0}")]
    Crypto(&'static str),
    /// An I/O error from the underlying transport (codec use only).
    #[error("transport error: {0}")]
    Io(#[from] std::io::Error),
}
