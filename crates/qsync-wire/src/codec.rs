//! Length-delimited framing over a byte stream.

use bytes::{Bytes, BytesMut};
use tokio_util::codec::{Decoder, Encoder, LengthDelimitedCodec};

use crate::WireError;

/// The largest frame, in bytes. A bigger announced length is refused before any buffer
/// for it is allocated.
pub const MAX_FRAME_LEN: usize = 16 * 1024 * 1024;

/// Splits a byte stream into frames (4-byte big-endian length prefix) and back.
///
/// Use it with `tokio_util::codec::Framed` over a TCP stream; hand each decoded frame to
/// [`Session::open`](crate::Session::open) and send what
/// [`Session::seal`](crate::Session::seal) returns.
#[derive(Debug)]
pub struct FrameCodec(LengthDelimitedCodec);

impl Default for FrameCodec {
    fn default() -> Self {
        Self(
            LengthDelimitedCodec::builder()
                .length_field_type::<u32>()
                .max_frame_length(MAX_FRAME_LEN)
                .new_codec(),
        )
    }
}

impl FrameCodec {
    /// A codec with the protocol's limits.
    pub fn new() -> Self {
        Self::default()
    }
}

fn map_io(e: std::io::Error) -> WireError {
    if e.kind() == std::io::ErrorKind::InvalidData {
        // LengthDelimitedCodec reports an over-long frame as InvalidData.
        WireError::TooLarge {
            len: usize::MAX,
            max: MAX_FRAME_LEN,
        }
    } else {
        WireError::Io(e)
    }
}

impl Decoder for FrameCodec {
    type Item = BytesMut;
    type Error = WireError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
        self.0.decode(src).map_err(map_io)
    }

    fn decode_eof(&mut self, src: &mut BytesMut) -> Result<Option<BytesMut>, WireError> {
        self.0.decode_eof(src).map_err(map_io)
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
        self.0.encode(frame, dst).map_err(map_io)
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
