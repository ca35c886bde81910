//! What one path is, in one version: the [`State`] (file, folder, symlink or deleted) and
//! the [`Record`] a device keeps of it (state, version vector, its own sequence number).

use qsync_base::{ContentHash, DeviceId, RelPath, VersionVector};
use serde::{Deserialize, Serialize};

/// The permission bits QSync carries (`rwx` for user, group and others).
pub const MODE_MASK: u32 = 0o777;

/// What a path holds in one version.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum State {
    /// Nothing: the path was deleted (a tombstone, so that the deletion has a version).
    Deleted,
    /// A regular file.
    File {
        /// Its content's hash.
        hash: ContentHash,
        /// Its length in bytes.
        size: u64,
        /// Permission bits (masked with [`MODE_MASK`]).
        mode: u32,
    },
    /// A folder (its content is the records of the paths under it).
    Folder {
        /// Permission bits (masked with [`MODE_MASK`]).
        mode: u32,
    },
    /// A symbolic link, kept as its target text (never followed).
    Symlink {
        /// Where the link points.
        target: String,
    },
}

impl State {
    /// Whether something exists at the path.
    pub fn exists(&self) -> bool {
        !matches!(self, State::Deleted)
    }

    /// Whether it is a folder.
    pub fn is_folder(&self) -> bool {
        matches!(self, State::Folder { .. })
    }

    /// The content hash, for files.
    pub fn hash(&self) -> Option<ContentHash> {
        match self {
            State::File { hash, .. } => Some(*hash),
            _ => None,
        }
    }

    /// The content's size, for files (0 otherwise).
    pub fn size(&self) -> u64 {
        match self {
            State::File { size, .. } => *size,
            _ => 0,
        }
    }

    /// The same state with its permission bits masked to what QSync carries.
    pub fn normalized(self) -> Self {
        match self {
            State::File { hash, size, mode } => State::File {
                hash,
                size,
                mode: mode & MODE_MASK,
            },
            State::Folder { mode } => State::Folder {
                mode: mode & MODE_MASK,
            },
            other => other,
        }
    }

    /// Rank in the conflict order: when two concurrent versions differ, the higher kind keeps
    /// the name. A folder outranks everything (moving a folder aside would move its whole
    /// subtree), and anything that exists outranks a deletion (an edit beats a delete).
    pub(crate) fn rank(&self) -> u8 {
        match self {
            State::Deleted => 0,
            State::Symlink { .. } => 1,
            State::File { .. } => 2,
            State::Folder { .. } => 3,
        }
    }
}

/// What a device knows of one path of a task: the state of its newest version there, that
/// version's vector, and the place of the record in this device's own change sequence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Record {
    /// The path, relative to the task's folder.
    pub path: RelPath,
    /// What the path holds in this version.
    pub state: State,
    /// Which changes this version has seen.
    pub version: VersionVector,
    /// Modification time of this version, nanoseconds since the Unix epoch (kept on the
    /// receiving side; names conflict copies).
    pub mtime_ns: i64,
    /// This device's sequence number for the record: every record a device stores (a local
    /// change or one received) gets the next number, so "everything after N" is what a
    /// peer that has seen up to N still lacks. Sent as is; meaningless on another device.
    pub seq: u64,
    /// For a version whose state (its content, bits, kind) is that of an earlier version:
    /// that version. A version that only moved a file's modification time (`touch`) keeps
    /// the content of the one it was made on (or of the first of such a run); a version
    /// that took over such a one keeps the content of the change that beat it. A
    /// concurrent version that has seen it changed the path after it, and wins without a
    /// conflict copy (see [`rules`](crate::rules)). `None` for every other version.
    pub retimed: Option<VersionVector>,
    /// The device whose person made this version's state (the change a version counts
    /// last), as its sender says: it names the device in a conflict copy's name and in the
    /// lists of versions and conflicts. A claim, like the time: a linked device could name
    /// another, so nothing is decided by it. `None` for records kept from before devices
    /// were named.
    pub by: Option<DeviceId>,
}
