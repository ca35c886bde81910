//! The exchange's vocabulary with its driver: what the core wants ([`Want`]), what a
//! chunk carries ([`Chunk`]), what to do with it ([`Verdict`]), the orders to carry out
//! ([`Order`]) and what `status` shows ([`Transfer`]).

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};

#[cfg(doc)]
use crate::Exchange;
use crate::FetchKey;

/// What the core wants fetched (its `Effect::Fetch`), with what the driver found here.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Want {
    /// The peer whose record announced the content (the core hears `Fetched` naming it).
    pub from: DeviceId,
    /// The connected peers to ask, in order (`from` first when it is connected, then
    /// others that announced the same content).
    pub holders: Vec<DeviceId>,
    /// The task.
    pub task: TaskId,
    /// The path it is wanted for.
    pub path: RelPath,
    /// The content.
    pub hash: ContentHash,
    /// Its size as announced: the most taken.
    pub size: u64,
    /// The content this device has at the path: a patch from it may come instead.
    pub base: Option<ContentHash>,
    /// Bytes of this content kept here from a transfer cut short (its part file).
    pub kept: u64,
}

/// What a chunk carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk {
    /// Bytes of the content itself.
    Whole,
    /// Bytes of a patch from `base` to the content.
    Patch {
        /// The content the patch applies to.
        base: ContentHash,
    },
}

/// What the driver does with a chunk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Not for a fetch under way (late, repeated, from a device not asked): dropped.
    Ignore,
    /// Append its bytes (the driver opens the part file, or starts the patch, at the
    /// first); report a failure to write with [`Exchange::failed`].
    Write,
    /// The sender says the content is complete: append its bytes if it carries any (the
    /// last chunk may), check it (the hash; a patch: apply it) and stage it, then report
    /// with [`Exchange::finished`].
    Finish,
    /// Refused (out of order, past the size, over a limit): the fetch has ended, and its
    /// orders say so. The reason, for the log.
    Refuse(String),
}

/// An order for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Order {
    /// Send `to` a request for the content: whole from `offset`, or (offset 0) as a patch
    /// from `base` if it has one.
    Request {
        /// The peer asked.
        to: DeviceId,
        /// The task.
        task: TaskId,
        /// The path.
        path: RelPath,
        /// The content.
        hash: ContentHash,
        /// Its size as announced.
        size: u64,
        /// The content here a patch may start from.
        base: Option<ContentHash>,
        /// The bytes already here: send the rest.
        offset: u64,
    },
    /// Tell the core the fetch ended (`Input::Fetched`).
    Fetched {
        /// The task.
        task: TaskId,
        /// The path.
        path: RelPath,
        /// The content.
        hash: ContentHash,
        /// The peer the core named.
        from: DeviceId,
        /// Whether the content is staged.
        ok: bool,
    },
    /// Drop what is being received for `key` (close the part file, forget the patch);
    /// with `discard`, remove the part file too (its bytes are not to be trusted).
    Close {
        /// The fetch.
        key: FetchKey,
        /// Remove the bytes received as well.
        discard: bool,
    },
}

/// One transfer coming in, for `status`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transfer {
    /// The device sending it.
    pub device: DeviceId,
    /// The task.
    pub task: TaskId,
    /// The path.
    pub path: RelPath,
    /// Bytes here (of the content, or of the patch).
    pub done: u64,
    /// The content's size.
    pub size: u64,
    /// Whether a patch is coming rather than the content.
    pub patch: bool,
    /// Bytes per second since its first chunk.
    pub rate: u64,
}
