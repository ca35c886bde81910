//! The messages two linked devices exchange inside sealed frames.

use bytes::Bytes;
use qsync_base::{ContentHash, EntryKind, RelPath, UpdateId};
use serde::{Deserialize, Serialize};

/// The largest `data` a [`Message::Chunk`] carries. Content bigger than this travels as a
/// stream of chunks, so no frame ever holds a whole large file.
pub const MAX_CHUNK_LEN: usize = 1024 * 1024;

/// How the receiver fared with an update.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    /// Applied.
    Applied,
    /// Applied, and the receiver's own diverging version was kept under `kept_as`.
    Conflict {
        /// Where the receiver kept its local version.
        kept_as: RelPath,
    },
    /// Not applied; the sender should keep the update pending and may send the full file.
    Failed {
        /// What went wrong, for the sender's log.
        reason: String,
    },
}

/// A message between two linked devices, sealed in one frame.
///
/// The seed's flags map onto these variants: `Hello`, file events (`Create`, `Patch`,
/// `Delete`, `Rename`), `ModificationDone` (releases the sender's per-device lock),
/// `LinkDevice`, `UnlinkDevice` and the setup copy (`SetupRequest`, `SetupDone`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// First message after the handshake, and the greeting when a device reappears.
    Hello {
        /// The sender's human name.
        name: String,
    },
    /// Answer to `Hello`.
    HelloAck {
        /// The answering device's human name.
        name: String,
    },
    /// A new file, folder or symlink. For a file of non-zero size, `size` bytes of content
    /// follow as [`Message::Chunk`]s with the same `update`.
    Create {
        /// The update this belongs to.
        update: UpdateId,
        /// Where, in the task.
        path: RelPath,
        /// What it is.
        kind: EntryKind,
        /// Content length in bytes.
        size: u64,
        /// Hash of the whole content once received.
        hash: ContentHash,
        /// Hash of the version this content replaces on the sender's side, when it is sent
        /// whole in place of a patch (`None` for a new path).
        base: Option<ContentHash>,
        /// Modification time, nanoseconds since the Unix epoch.
        mtime_ns: i64,
    },
    /// A change to a file as a binary delta from the version with hash `base`. The delta's
    /// `delta_len` bytes follow as [`Message::Chunk`]s.
    Patch {
        /// The update this belongs to.
        update: UpdateId,
        /// The file changed.
        path: RelPath,
        /// Hash of the version the delta applies to.
        base: ContentHash,
        /// Hash of the result.
        result: ContentHash,
        /// Length of the delta in bytes.
        delta_len: u64,
        /// Modification time of the result, nanoseconds since the Unix epoch.
        mtime_ns: i64,
    },
    /// A piece of the content announced by a `Create` or `Patch`.
    Chunk {
        /// The update this belongs to.
        update: UpdateId,
        /// Where in the content these bytes go.
        offset: u64,
        /// At most [`MAX_CHUNK_LEN`] bytes.
        data: Bytes,
    },
    /// A file or folder (with everything in it) was deleted.
    Delete {
        /// The update.
        update: UpdateId,
        /// What was deleted.
        path: RelPath,
        /// Hash of the version the sender deleted, if a file, so the receiver can keep a
        /// version it changed meanwhile.
        base: Option<ContentHash>,
    },
    /// A file or folder moved inside the task.
    Rename {
        /// The update.
        update: UpdateId,
        /// Old path.
        from: RelPath,
        /// New path.
        to: RelPath,
    },
    /// The receiver finished with an update: the sender may send the next one.
    ModificationDone {
        /// The update answered.
        update: UpdateId,
        /// How it went.
        outcome: Outcome,
    },
    /// Ask the peer to join the task named by the frame's task id.
    LinkDevice {
        /// The task's folder name on the asking device, as a suggestion.
        folder_name: String,
    },
    /// The peer accepted the link and put the task's folder where its person chose.
    LinkAccepted,
    /// The peer refused the link.
    LinkRefused {
        /// Why, for the person.
        reason: String,
    },
    /// Remove the link between the two devices for the frame's task.
    UnlinkDevice,
    /// Ask for a full copy of the task (the seed's setup).
    SetupRequest,
    /// The setup copy is complete.
    SetupDone {
        /// Files sent.
        files: u64,
        /// Content bytes sent.
        bytes: u64,
    },
    /// A message of the sync core (`qsync_core::Message`), postcard-encoded: the wire
    /// carries it without knowing it. (Variants from here on serve the core's driver;
    /// a daemon that does not know them ignores them.)
    Sync {
        /// The encoded core message.
        body: Bytes,
    },
    /// Part of the content asked for by a core `Request`, in order from `offset`; a last
    /// message with `last: true` (and no data) says it is complete and matched its hash.
    Content {
        /// The path it was asked for.
        path: RelPath,
        /// The content's hash.
        hash: ContentHash,
        /// Where `data` starts in the file.
        offset: u64,
        /// At most [`MAX_CHUNK_LEN`] bytes.
        data: Bytes,
        /// Complete (the sender's hash check passed).
        last: bool,
    },
    /// The content asked for is not here any more (changed or gone); what was sent of it
    /// is to be dropped.
    Unavailable {
        /// The path it was asked for.
        path: RelPath,
        /// The content's hash.
        hash: ContentHash,
    },
    /// The content asked for as a patch (qsync-delta's VCDIFF) from the content `base` the
    /// asker said it has, in order from `offset`; `last: true` (no data) ends it. The
    /// asker applies it to its `base` and checks the result against `hash`.
    Delta {
        /// The path it was asked for.
        path: RelPath,
        /// The content's hash.
        hash: ContentHash,
        /// The content the patch applies to.
        base: ContentHash,
        /// Where `data` starts in the patch.
        offset: u64,
        /// At most [`MAX_CHUNK_LEN`] bytes.
        data: Bytes,
        /// Complete.
        last: bool,
    },
}

impl Message {
    /// Decode a message from its postcard bytes (the opened body of a sealed frame).
    pub fn decode(body: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(body)
    }
}
