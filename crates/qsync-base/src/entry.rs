//! What QSync knows about one path: the record the watcher produces, the store keeps and
//! the wire announces.

use serde::{Deserialize, Serialize};

use crate::{ContentHash, RelPath};

/// What a path is on disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum EntryKind {
    /// A regular file.
    File,
    /// A folder.
    Folder,
    /// A symbolic link; its "content" is the link target.
    Symlink,
}

impl EntryKind {
    /// A stable small number, for storage.
    pub fn code(self) -> u8 {
        match self {
            Self::File => 0,
            Self::Folder => 1,
            Self::Symlink => 2,
        }
    }

    /// The kind with this [`code`](Self::code).
    pub fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(Self::File),
            1 => Some(Self::Folder),
            2 => Some(Self::Symlink),
            _ => None,
        }
    }
}

/// One path of a sync task with its metadata.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Where, relative to the task's root.
    pub path: RelPath,
    /// File, folder or symlink.
    pub kind: EntryKind,
    /// Content length in bytes (0 for folders).
    pub size: u64,
    /// Modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
    /// Hash of the content (the link target for symlinks); `None` for folders.
    pub hash: Option<ContentHash>,
    /// Permission bits (`rwx` for user, group and others; 0 for symlinks). 0 also means
    /// "unknown" (a record made before QSync kept them), which matches any mode.
    #[serde(default)]
    pub mode: u32,
}

/// The permission bits QSync keeps of a file or folder.
pub const MODE_BITS: u32 = 0o777;

/// Modification times of a file closer than this (in nanoseconds) are the same time:
/// file systems keep times to different precisions (FAT to 2 s), and a time placed on one
/// and read back on another must not look like a change.
pub const MTIME_SLACK_NS: i64 = 2_000_000_000;

/// Whether two modification times of a file (nanoseconds since the epoch) differ, beyond
/// what file systems round ([`MTIME_SLACK_NS`]): a `touch -d` does, a copy across file
/// systems does not.
pub fn mtime_moved(a: i64, b: i64) -> bool {
    a.abs_diff(b) >= MTIME_SLACK_NS.unsigned_abs()
}

/// Names one update (one local change, in the order changes happened on the device that
/// made it); a device acknowledges updates by this id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct UpdateId(pub u64);
