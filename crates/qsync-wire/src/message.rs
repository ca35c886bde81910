//! The messages two linked devices exchange inside sealed frames.

use bytes::Bytes;
use qsync_base::{ContentHash, RelPath};
use serde::{Deserialize, Serialize};

/// The largest `data` a [`Message::Content`], [`Message::Delta`] or [`Message::Signature`] carries: content
/// bigger than this travels as a stream of messages, so no frame holds a whole large file.
pub const MAX_CHUNK_LEN: usize = 1024 * 1024;

/// The largest patch a record carries ([`Message::SyncPatched`]); a larger one waits for
/// the receiver's request, as a content does.
pub const MAX_INLINE_PATCH: usize = 16 * 1024;

/// The most patches one [`Message::SyncPatched`] carries (a receiver takes no more).
pub const MAX_INLINE_PATCHES: usize = 16;

/// A message between two devices, sealed in one frame.
///
/// The seed's flags map onto these variants: `Hello`; the link flow (`LinkRequest`,
/// `LinkAnswer`, `LinkConfirm`, `LinkDone`, `LinkRefused`: a PAKE run inside the
/// connection, see [`pairing`](crate::pairing)); `Unlink`; and the sync core's messages,
/// which carry file events, setup copies and catching up.
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
    /// Are you still there? (Sent when mDNS says the peer left: a goodbye anyone can
    /// forge must not end a session the peer can still answer on.)
    Ping {
        /// Echoed in the `Pong`.
        nonce: u64,
    },
    /// The answer to a `Ping`.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
    /// Ask the peer to link the task named by the frame's task id (pairing, step 1).
    LinkRequest {
        /// The asker's human name.
        name: String,
        /// The task's folder name on the asker, as a suggestion.
        folder_name: String,
        /// The port the asker's daemon listens on.
        listen_port: u16,
        /// Files the asker will send.
        files: u64,
        /// Their bytes.
        bytes: u64,
        /// The asker's SPAKE2 message, made with the code it shows its person.
        spake: Bytes,
    },
    /// The answerer's person typed the code and chose a folder (pairing, step 2).
    LinkAnswer {
        /// The answerer's human name.
        name: String,
        /// The port the answerer's daemon listens on.
        listen_port: u16,
        /// The answerer's SPAKE2 message, made with the code typed.
        spake: Bytes,
        /// Proof that the answerer derived the same key.
        confirm: [u8; 32],
    },
    /// The asker's proof (pairing, step 3): the answerer may record the link.
    LinkConfirm {
        /// Proof that the asker derived the same key.
        confirm: [u8; 32],
    },
    /// The answerer recorded the link (pairing, step 4): the asker records it too.
    LinkDone,
    /// The link is refused, at any step.
    LinkRefused {
        /// Why, for the person.
        reason: String,
    },
    /// Remove the link between the two devices for the frame's task.
    Unlink,
    /// A message of the sync core (`qsync_core::Message`), postcard-encoded: the wire
    /// carries it without knowing it.
    Sync {
        /// The encoded core message.
        body: Bytes,
    },
    /// Part of the content asked for by a core `Request`, in order from `offset`; a last
    /// message with `last: true` (carrying the last bytes, or none) says it is complete and
    /// matched its hash.
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
    /// asker said it has, in order from `offset`; `last: true` (on the last bytes) ends it. The
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
    /// The answer to a `Request` with a `base` that the server no longer keeps a copy of:
    /// "describe your `base` of `path` to me" (a [`Message::Signature`]), so that a patch
    /// can be made without it (rsync's exchange, see `qsync_delta::Signature`).
    SignatureWanted {
        /// The path asked for.
        path: RelPath,
        /// The content asked for.
        hash: ContentHash,
        /// The content the asker said it has.
        base: ContentHash,
    },
    /// The asker's block signature of its `base`, in order from `offset`; `last: true` (no
    /// data) ends it. A last message at offset 0 says "no signature: send it whole" (the
    /// file here no longer holds `base`, say).
    Signature {
        /// The path asked for.
        path: RelPath,
        /// The content asked for.
        hash: ContentHash,
        /// The content described.
        base: ContentHash,
        /// Where `data` starts in the encoded signature.
        offset: u64,
        /// At most [`MAX_CHUNK_LEN`] bytes.
        data: Bytes,
        /// Complete.
        last: bool,
    },
    /// The answer to a `Request` for the rest of a content from `asked`, whose checks of
    /// the asker's first bytes differ from this copy's from the block at `from` on: the
    /// asker drops its bytes from there, and the content follows from `from`.
    Resend {
        /// The path asked for.
        path: RelPath,
        /// The content asked for.
        hash: ContentHash,
        /// The offset the request asked from.
        asked: u64,
        /// Where the content now follows from (a block's start, before `asked`).
        from: u64,
    },
    /// A message of the sync core (as [`Message::Sync`]) whose records carry the content
    /// of some of them as patches: each a qsync-delta patch from the version before (its
    /// header names that base and the result), made by the sender of its own edit and sent
    /// with its record, so that a receiver holding the base needs no request (a 1-byte
    /// edit of a large file is one message and its acknowledgement). A receiver without
    /// the base, or whose patch does not apply, asks for the content as for any record.
    SyncPatched {
        /// The encoded core message.
        body: Bytes,
        /// The patches: each with the index of its record in the message's records, at
        /// most [`MAX_INLINE_PATCH`] bytes, at most [`MAX_INLINE_PATCHES`] of them taken.
        patches: Vec<(u32, Bytes)>,
    },
}

impl Message {
    /// The bytes of file data it carries (a chunk of content, of a patch or of a
    /// signature), 0 for every other message: what flow control counts.
    pub fn data_len(&self) -> usize {
        match self {
            Message::Content { data, .. }
            | Message::Delta { data, .. }
            | Message::Signature { data, .. } => data.len(),
            // Its records are charged too: a large body with a tiny patch is no cheaper.
            Message::SyncPatched { body, patches } => {
                body.len() + patches.iter().map(|(_, d)| d.len()).sum::<usize>()
            }
            _ => 0,
        }
    }

    /// The bytes of served content this message carries (a chunk of a content, a patch
    /// or a signature): what a connection's queue of served content counts.
    pub fn served_len(&self) -> usize {
        match self {
            Message::Content { data, .. }
            | Message::Delta { data, .. }
            | Message::Signature { data, .. } => data.len(),
            _ => 0,
        }
    }

    /// Decode a message from its postcard bytes (the opened body of a sealed frame).
    pub fn decode(body: &[u8]) -> Result<Self, postcard::Error> {
        postcard::from_bytes(body)
    }
}
