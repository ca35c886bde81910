//! Length-delimited framing over a byte stream.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::WireError;

/// The largest frame, in bytes. A bigger announced length is refused before any buffer
/// for it is allocated.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// The largest frame a connection takes before its peer is known and linked: handshake
/// and pairing messages are a few hundred bytes, so a stranger cannot make the daemon
/// buffer more than this per connection.
pub const PRE_AUTH_MAX_FRAME_LEN: usize = 4 * 1024;

/// Splits a byte stream into frames (4-byte big-endian length prefix) and back.
///
/// Use it with `tokio_util::codec::Framed` over a TCP stream; hand each decoded frame to
/// [`Session::open`](crate::Session::open) and send what
/// [`Session::seal`](crate::Session::seal) returns.
#[derive(Debug)]
pub struct FrameCodec {
    inner: LengthDelimitedCodec,
    max: usize,
}

impl Default for FrameCodec {
    fn default() -> Self {
        Self::with_max(MAX_FRAME_LEN)
    }
}

impl FrameCodec {
    /// A codec taking frames up to [`MAX_FRAME_LEN`]: for a linked peer.
    pub fn new() -> Self {
        Self::default()
    }

    /// A codec taking frames up to [`PRE_AUTH_MAX_FRAME_LEN`]: for a connection whose
    /// peer has not proven to be a linked device yet.
    pub fn pre_auth() -> Self {
        Self::with_max(PRE_AUTH_MAX_FRAME_LEN)
    }

    fn with_max(max: usize) -> Self {
        Self {
            inner: LengthDelimitedCodec::builder()
                .length_field_type::<u32>()
                .max_frame_length(max)
                .new_codec(),
            max,
        }
    }

    /// Change the largest frame taken (at most [`MAX_FRAME_LEN`]): raised once the peer
    /// is known to be linked.
    pub fn set_max_frame_len(&mut self, max: usize) {
        self.max = max.min(MAX_FRAME_LEN);
        self.inner.set_max_frame_length(self.max);
    }

    /// The largest frame taken now.
    pub fn max_frame_len(&self) -> usize {
        self.max
    }
}

fn map_io(e: std::io::Error, max: usize) -> WireError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        // LengthDelimitedCodec reports an over-long frame as InvalidData.
        WireError::TooLarge {
            len: usize::MAX,
            max,
        }
    } else {
        WireError::Io(e)
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
        let max = self.max;
        self.inner.decode(src).map_err(|e| map_io(e, max))
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
        let max = self.max;
        self.inner.decode_eof(src).map_err(|e| map_io(e, max))
    }
}

impl Encoder<Bytes> for FrameCodec {
    type Error = WireError;

    fn encode(&mut self, frame: Bytes, dst: &mut BytesMut) -> Result<(), WireError> {
        if frame.len() > MAX_FRAME_LEN {
            return Err(WireError::TooLarge {
                len: frame.len(),
                max: MAX_FRAME_LEN,
            });
        }
        self.inner
            .encode(frame, dst)
            .map_err(|e| map_io(e, MAX_FRAME_LEN))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_huge_length_before_allocating() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::from(&[0xff, 0xff, 0xff, 0xff, 1, 2, 3][..]);
        assert!(matches!(
            codec.decode(&mut buf),
            Err(WireError::TooLarge { .. })
        ));
        assert!(buf.capacity() < 1024);
    }

    #[test]
    fn before_authentication_only_small_frames_are_taken() {
        let mut codec = FrameCodec::pre_auth();
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(PRE_AUTH_MAX_FRAME_LEN as u32 + 1).to_be_bytes());
        assert!(matches!(
            codec.decode(&mut buf),
            Err(WireError::TooLarge {
                max: PRE_AUTH_MAX_FRAME_LEN,
                ..
            })
        ));
        let mut codec = FrameCodec::pre_auth();
        codec.set_max_frame_len(MAX_FRAME_LEN);
        let mut buf = BytesMut::new();
        buf.extend_from_slice(&(PRE_AUTH_MAX_FRAME_LEN as u32 + 1).to_be_bytes());
        assert!(codec.decode(&mut buf).unwrap().is_none());
    }

    #[test]
    fn round_trips_and_waits_for_more() {
        let mut codec = FrameCodec::new();
        let mut buf = BytesMut::new();
        codec
            .encode(Bytes::from_static(b"hello"), &mut buf)
            .unwrap();
        let mut partial = buf.split_to(6);
        assert!(codec.decode(&mut partial).unwrap().is_none());
        partial.extend_from_slice(&buf);
        assert_eq!(&codec.decode(&mut partial).unwrap().unwrap()[..], b"hello");
    }
}
