//! The one place qsync-delta calls C: safe wrappers around xdelta3's in-memory encoder and
//! decoder (`xdelta3-sys`, built from vendored source).
//!
//! Both calls write into a buffer of a size we choose and the library refuses (`ENOSPC`) to
//! write past it, so memory is bounded by the caller: the encoder gets no more room than
//! the bytes it replaces (a bigger VCDIFF is worthless), the decoder exactly the length the
//! patch's header promised (a segment that decodes to more is malformed).

#![allow(unsafe_code)]

use std::sync::Once;

use xdelta3_sys::{usize_t, xd3_decode_memory, xd3_encode_memory};

use crate::MAX_SEGMENT_LEN;

/// xdelta3 builds a shared static code table on first use, without a lock: one small call
/// under a `Once` builds it before any two threads can race on it.
static WARM_UP: Once = Once::new();

/// Which of the two calls to make.
#[derive(Clone, Copy)]
enum Direction {
    Encode,
    Decode,
}

/// Encode `target` as a VCDIFF stream against `source`, if one fits in fewer than
/// `target.len()` bytes. `None` when it would not be smaller (or the inputs are too short
/// for VCDIFF to help, or larger than xdelta3's 32-bit lengths).
pub(crate) fn encode(target: &[u8], source: &[u8]) -> Option<Vec<u8>> {
    run(
        Direction::Encode,
        target,
        source,
        target.len().checked_sub(1)?,
    )
}

/// Decode a VCDIFF stream against `source`; `None` unless it decodes cleanly to at most
/// `target_len` bytes (the caller checks the exact length).
pub(crate) fn decode(vcdiff: &[u8], source: &[u8], target_len: usize) -> Option<Vec<u8>> {
    run(Direction::Decode, vcdiff, source, target_len)
}

fn run(direction: Direction, input: &[u8], source: &[u8], room: usize) -> Option<Vec<u8>> {
    WARM_UP.call_once(|| {
        let sample = [7u8; 64];
        let _ = call(Direction::Encode, &sample, &sample, sample.len());
    });
    // The library checks `written + next > room` in 32 bits; segments are far below the
    // point where that could wrap, and anything larger is refused here.
    if room > MAX_SEGMENT_LEN || input.len() > MAX_SEGMENT_LEN || source.len() > MAX_SEGMENT_LEN {
        return None;
    }
    call(direction, input, source, room)
}

fn call(direction: Direction, input: &[u8], source: &[u8], room: usize) -> Option<Vec<u8>> {
    let input_len = usize_t::try_from(input.len()).ok()?;
    let source_len = usize_t::try_from(source.len()).ok()?;
    let avail = usize_t::try_from(room).ok()?;
    let mut out: Vec<u8> = Vec::with_capacity(room);
    let mut written: usize_t = 0;
    let call = match direction {
        Direction::Encode => xd3_encode_memory,
        Direction::Decode => xd3_decode_memory,
    };
    // SAFETY: `input` and `source` are valid for reads of their lengths (converted above
    // without loss); `out` has room for `avail` bytes, and xd3_process_stream checks
    // `written + next > avail` before each copy, returning ENOSPC instead of writing past
    // it; `written` is a valid place for the length. The library keeps no pointer after
    // returning (xd3_process_memory frees its stream before it returns).
    let rc = unsafe {
        call(
            input.as_ptr(),
            input_len,
            source.as_ptr(),
            source_len,
            out.as_mut_ptr(),
            &mut written,
            avail,
            0,
        )
    };
    let written = usize::try_from(written).ok()?;
    if rc != 0 || written > room {
        return None;
    }
    // SAFETY: the library initialised the first `written` bytes (it returned success and
    // reports that length), and `written <= room` = the capacity.
    unsafe { out.set_len(written) };
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bounds() {
        let source = b"the quick brown fox jumps over the lazy dog. ".repeat(200);
        let mut target = source.clone();
        target[4000..4010].copy_from_slice(b"0123456789");
        let vcdiff = encode(&target, &source).unwrap_or_default();
        assert!(!vcdiff.is_empty() && vcdiff.len() < 100, "{}", vcdiff.len());
        assert_eq!(decode(&vcdiff, &source, target.len()), Some(target.clone()));
        // One byte less room than the target needs: refused, nothing written past it.
        assert_eq!(decode(&vcdiff, &source, target.len() - 1), None);
        // Garbage is refused.
        assert_eq!(decode(b"not a vcdiff stream", &source, 100), None);
        // Nothing to gain: random bytes against an unrelated source.
        let mut seed = 0x9E37_79B9_7F4A_7C15u64;
        let noise: Vec<u8> = (0..4096)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                (seed >> 24) as u8
            })
            .collect();
        assert_eq!(encode(&noise, b"unrelated"), None);
        assert_eq!(encode(b"", &source), None);
    }
}
