//! Raw bindings to xdelta3, the VCDIFF (RFC 3284) delta library by Joshua MacDonald.
//!
//! The C source (xdelta3 3.0.12, Apache-2.0) is vendored in `xdelta3/` and compiled by the
//! build script with the `cc` crate, so building needs a C compiler and nothing else: no
//! libclang, no system package. The bindings in `src/bindings.rs` are generated ahead of
//! time (`just bindings` regenerates them with bindgen) and cover the two in-memory calls.
//!
//! These are raw `unsafe` functions; `qsync-delta` wraps them safely. A direct use:
//!
//! ```
//! use xdelta3_sys::{xd3_decode_memory, xd3_encode_memory, usize_t};
//!
//! let source = b"the quick brown fox jumps over the lazy dog".repeat(20);
//! let mut target = source.clone();
//! target[100..103].copy_from_slice(b"CAT");
//!
//! let mut patch = vec![0u8; target.len()];
//! let mut patch_len: usize_t = 0;
//! // SAFETY: every pointer is valid for the length given with it, and `patch_len` is a
//! // valid place for the output size.
//! let rc = unsafe {
//!     xd3_encode_memory(
//!         target.as_ptr(), target.len() as usize_t,
//!         source.as_ptr(), source.len() as usize_t,
//!         patch.as_mut_ptr(), &mut patch_len, patch.len() as usize_t, 0,
//!     )
//! };
//! assert_eq!(rc, 0);
//! patch.truncate(patch_len as usize);
//!
//! let mut rebuilt = vec![0u8; target.len()];
//! let mut rebuilt_len: usize_t = 0;
//! // SAFETY: as above.
//! let rc = unsafe {
//!     xd3_decode_memory(
//!         patch.as_ptr(), patch.len() as usize_t,
//!         source.as_ptr(), source.len() as usize_t,
//!         rebuilt.as_mut_ptr(), &mut rebuilt_len, rebuilt.len() as usize_t, 0,
//!     )
//! };
//! assert_eq!(rc, 0);
//! assert_eq!(&rebuilt[..rebuilt_len as usize], &target[..]);
//! ```
//!
//! Both calls return 0 on success and an errno value or a negative `XD3_*` code otherwise;
//! `ENOSPC` means the output did not fit in `avail_output` bytes.

#![allow(non_camel_case_types)]

// Generated; what the two calls do is said in xdelta3/xdelta3.h and in the crate doc above.
#[allow(missing_docs)]
mod bindings;

pub use bindings::{usize_t, xd3_decode_memory, xd3_encode_memory};

/// Path of the reference `xdelta3` command-line program built from the same vendored
/// source (feature `reference-cli`), for tests that check our output against it:
/// `xdelta3 -d -s SOURCE PATCH OUT` decodes a VCDIFF stream.
#[cfg(feature = "reference-cli")]
pub const REFERENCE_CLI: &str = env!("XDELTA3_SYS_REFERENCE_CLI");
