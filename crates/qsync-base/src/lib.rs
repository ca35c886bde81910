//! Shared vocabulary types of QSync.
//!
//! Every other QSync crate speaks in these types: [`DeviceId`] and [`TaskId`] name who and
//! what, [`RelPath`] names a file inside a sync task without any way to escape its root,
//! [`ContentHash`] names a file's content ([`PieceHasher`] also checks a kept part of it
//! block by block), and [`VersionVector`] says which changes a version
//! of a path has seen. They are newtypes that cannot be built
//! invalid, including when deserialized from untrusted bytes. [`places`] names the places
//! of a home folder where a synced folder is dangerous (secrets, programs that start by
//! themselves), one list for every check.
//!
//! ```
//! use qsync_base::{ContentHash, DeviceId, RelPath};
//!
//! let me = DeviceId::random();
//! assert_eq!(me.to_string().parse::<DeviceId>().unwrap(), me);
//! assert!(RelPath::new("../etc/passwd").is_err());
//! assert_eq!(ContentHash::of(b"a"), ContentHash::of(b"a"));
//! ```

mod entry;
mod hash;
mod id;
mod path;
mod pieces;
pub mod places;
mod time;
mod version;

pub use entry::{mtime_moved, EntryKind, FileEntry, UpdateId, MODE_BITS, MTIME_SLACK_NS};
pub use hash::{ContentHash, ContentHasher};
pub use id::{DeviceId, IdParseError, TaskId};
pub use path::{RelPath, RelPathError, MAX_NAME_LEN, MAX_PATH_LEN};
pub use pieces::{check_block_len, check_count, PieceHasher, MAX_CHECKS, PIECE_LEN};
pub use time::format_utc;
pub use version::{Causality, VersionVector};
