//! The core's vocabulary with the outside: the [`Message`]s devices exchange, the facts a
//! driver feeds in ([`Input`]) and the orders it carries out ([`Effect`]).
//!
//! Content never passes through the core: it orders [`Effect::Fetch`] on the receiving
//! side (the driver asks the peer with a [`Message::Request`]) and [`Effect::Serve`] on the
//! sending side, the driver streams the bytes, and the receiving driver reports
//! [`Input::Fetched`] once the content is staged and its hash checked. Every order that changes the disk comes back
//! as an input saying how it went, and only then is it recorded: content is durable and in
//! place before its record, and the record before the peer's acknowledgement.

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
use serde::{Deserialize, Serialize};

use crate::core::Report;
use crate::fold::Fold;
use crate::state::{Record, State};

/// What devices say to each other about a task (content travels beside these).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Message {
    /// "Send me your records of `task` after your sequence number `after`": sent on
    /// connecting, with what this device has processed of the peer's sequence.
    Hello {
        /// The task.
        task: TaskId,
        /// The last of the peer's sequence numbers already processed here.
        after: u64,
        /// "Say Hello back": set when greeting, unset in the answer. A device links a
        /// task a moment after its peer; the peer's first Hello may come before and be
        /// dropped, and the answer to this device's own Hello replaces it.
        reply: bool,
    },
    /// Records of the sender's ledger, in the order of its sequence numbers, up to `upto`.
    /// Records the receiver is known to have (those it sent) are left out, so `upto` says
    /// how far the sender's sequence this message covers.
    Records {
        /// The task.
        task: TaskId,
        /// The records.
        records: Vec<Record>,
        /// The sender's sequence number this message goes up to (at least the last
        /// record's).
        upto: u64,
    },
    /// "I have processed your records up to `upto`": the sender's records after it are
    /// what this device still lacks (its pending updates).
    Ack {
        /// The task.
        task: TaskId,
        /// The last processed sequence number.
        upto: u64,
    },
    /// "Send me the content `hash` you have at `path`."
    Request {
        /// The task.
        task: TaskId,
        /// Where the sender announced it.
        path: RelPath,
        /// Which content.
        hash: ContentHash,
        /// Its size, as the record announced it (the most the asker accepts).
        size: u64,
        /// The content the asker has at `path` now, if a file: the peer may send the
        /// difference from it instead of the whole.
        base: Option<ContentHash>,
        /// Where to start: the asker holds the first `offset` bytes of the content already
        /// (a transfer cut short), and wants the rest, whole. 0: from the start.
        offset: u64,
        /// The checks of those first `offset` bytes (`qsync_base::PieceHasher::checks`,
        /// one per block of `check_block_len(offset)` bytes; none from 0): the peer
        /// compares them with its own copy and sends from the first block that differs.
        checks: Vec<ContentHash>,
    },
    /// A run of the sender's records folded (see [`Fold`]): the receiver rebuilds them from
    /// what it holds, or asks for them with [`Message::Unfold`].
    Fold {
        /// The task.
        task: TaskId,
        /// The run.
        fold: Fold,
        /// As for [`Message::Records`]: how far the sender's sequence this covers.
        upto: u64,
    },
    /// "Send me your records `first..=last` in full": a fold of them that could not be
    /// rebuilt here.
    Unfold {
        /// The task.
        task: TaskId,
        /// The fold's first sequence number.
        first: u64,
        /// Its last.
        last: u64,
    },
    /// The answer to [`Message::Unfold`]: the records of `first..=last` the sender still
    /// has (one replaced since by a later change is left out: that change follows).
    Unfolded {
        /// The task.
        task: TaskId,
        /// As asked.
        first: u64,
        /// As asked.
        last: u64,
        /// The records.
        records: Vec<Record>,
    },
}

/// A fact for the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Input {
    /// `task` is synced with `peer` from now on (a completed link).
    Link {
        /// The task.
        task: TaskId,
        /// The linked device.
        peer: DeviceId,
    },
    /// An authenticated connection with `peer` is up.
    Connected {
        /// The peer.
        peer: DeviceId,
    },
    /// The connection with `peer` is gone.
    Disconnected {
        /// The peer.
        peer: DeviceId,
    },
    /// `task` is no longer synced with `peer` (the driver removed the link from the
    /// ledger): nothing more is sent to it or taken from it, at once.
    Unlink {
        /// The task.
        task: TaskId,
        /// The device unlinked.
        peer: DeviceId,
    },
    /// `task` is paused here (`paused`), or resumed: while paused, this device's changes
    /// of it are recorded and neither sent nor taken from peers (see `core/paused.rs`).
    /// Not remembered across starts: the driver says so again after each.
    Pause {
        /// The task.
        task: TaskId,
        /// Paused, or resumed.
        paused: bool,
    },
    /// Make this device's versions of `task` win everywhere over the peers' versions it
    /// kept without taking (rivals: a send-only task's, see the driver): each such path
    /// is stored again as a change of this device's that has seen them all (a path this
    /// device does not have, as a deletion), so every device takes it. Syncthing's
    /// "override changes".
    Override {
        /// The task.
        task: TaskId,
        /// The paths to override: those with rivals that this device syncs (the driver
        /// leaves out the paths its rules exclude: their rivals are not drift).
        paths: Vec<RelPath>,
    },
    /// `task` is receive-only here (`on`), or not any more: this device's changes of it
    /// are not recorded nor sent, but kept as drift (see `core/drift.rs`); turned off, the
    /// drift is recorded as this device's changes. Not remembered across starts: the
    /// driver says so again after each, before the first scan.
    ReceiveOnly {
        /// The task.
        task: TaskId,
        /// Receive-only, or not any more.
        on: bool,
    },
    /// Put the received versions of receive-only `task` back where this device's person
    /// changed them (its drift): each such path is placed again from its record (content
    /// fetched from a connected linked device when it is not on this disk); a path the
    /// person made is removed.
    Revert {
        /// The task.
        task: TaskId,
    },
    /// A message from a connected peer.
    Received {
        /// Who sent it.
        from: DeviceId,
        /// What it says.
        message: Message,
    },
    /// The driver saw `state` at `path` on disk (a watcher event or a scan); `Deleted`:
    /// nothing is there. Reporting an unchanged path is harmless.
    Observed {
        /// The task.
        task: TaskId,
        /// Where.
        path: RelPath,
        /// What is there now.
        state: State,
        /// Its modification time, nanoseconds since the Unix epoch.
        mtime_ns: i64,
    },
    /// This device does not sync `path` of `task` (its rules exclude it: `.qsyncignore`),
    /// answered to a [`Effect::Fetch`] or [`Effect::Place`] for it: what peers sent of it
    /// is acknowledged and kept as a rival in the ledger (across restarts), neither placed
    /// nor recorded, until the rules change ([`Input::RulesChanged`]; were the path synced
    /// again, what is on disk here then meets their versions as any concurrent change).
    Excluded {
        /// The task.
        task: TaskId,
        /// The path.
        path: RelPath,
    },
    /// The rules of what `task` syncs here changed (its `.qsyncignore` was placed or
    /// edited): what was [`Input::Excluded`] is decided again.
    RulesChanged {
        /// The task.
        task: TaskId,
    },
    /// Content asked of `from` arrived and is staged, its hash checked (`ok`), or could not
    /// be had (`!ok`: the peer no longer has it, or the transfer failed).
    Fetched {
        /// The task.
        task: TaskId,
        /// The path it was asked for.
        path: RelPath,
        /// The content.
        hash: ContentHash,
        /// Who sent it.
        from: DeviceId,
        /// Whether it is staged.
        ok: bool,
    },
    /// How an [`Effect::Place`] went.
    Placed {
        /// The task.
        task: TaskId,
        /// The placement's path.
        path: RelPath,
        /// The outcome.
        outcome: PlaceOutcome,
    },
}

/// An order for the driver.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send `message` to `to`.
    Send {
        /// The peer.
        to: DeviceId,
        /// The message.
        message: Message,
    },
    /// Get the content `hash` of `path`, announced by `from`'s record, from one of
    /// `holders` (the driver sends them a [`Message::Request`] with these fields, in turn
    /// until one serves it, or finds the content staged already); answered by
    /// [`Input::Fetched`] naming `from`.
    Fetch {
        /// The peer whose record announced it.
        from: DeviceId,
        /// The connected peers holding it, never empty: `from` first when it is
        /// connected, then those whose records of `path` announce the same content.
        holders: Vec<DeviceId>,
        /// The task.
        task: TaskId,
        /// Where the peer announced it.
        path: RelPath,
        /// Which content.
        hash: ContentHash,
        /// Its size as announced: the most to accept.
        size: u64,
        /// The content this device has at `path` now, if a file: the peer may send the
        /// difference from it instead of the whole.
        base: Option<ContentHash>,
    },
    /// Send `to` the content at `path` if it still hashes to `hash`; otherwise tell it the
    /// content is unavailable (its driver then reports `Fetched { ok: false }`).
    Serve {
        /// The peer.
        to: DeviceId,
        /// The task.
        task: TaskId,
        /// Where the content is.
        path: RelPath,
        /// Which content.
        hash: ContentHash,
        /// The content the peer has at `path` (from its request): the difference from it
        /// may be sent instead of the whole.
        base: Option<ContentHash>,
        /// The peer has the first `offset` bytes already: send the rest (whole)...
        offset: u64,
        /// ...if they are the ones here: their checks (see [`Message::Request`]).
        checks: Vec<ContentHash>,
    },
    /// Tell `to` the content `hash` of `path` is not served here now (the task is paused:
    /// see `core/paused.rs`): it asks another holder, or again later.
    Unavailable {
        /// The peer.
        to: DeviceId,
        /// The task.
        task: TaskId,
        /// Where it asked for it.
        path: RelPath,
        /// Which content.
        hash: ContentHash,
    },
    /// Change the disk; answered by [`Input::Placed`].
    Place(Placement),
    /// `from` sent something refused or not trusted as it stood: log it with the peer, and
    /// count it in the peer's status. Nothing to answer.
    Distrust {
        /// The peer.
        from: DeviceId,
        /// The task.
        task: TaskId,
        /// What, why, how many.
        report: Report,
    },
}

/// Make `path` hold `target`, but only if it holds `expect` now: a path changed on disk
/// since the core last heard of it is left alone ([`PlaceOutcome::Diverged`]), and the
/// watcher reports the change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    /// The task.
    pub task: TaskId,
    /// Where.
    pub path: RelPath,
    /// What must be there now (`Deleted`: nothing).
    pub expect: State,
    /// What must be there after. A file's content comes from the staged content with its
    /// hash, or is already at `path` (a change of mode only). `Deleted` removes the path;
    /// a folder is removed only when empty.
    pub target: State,
    /// Modification time to give the result.
    pub mtime_ns: i64,
    /// First move what is at `path` here (a conflict copy). If this name already holds the
    /// same content (another device made the same copy), what is at `path` is removed
    /// instead; if it holds anything else, nothing is done ([`PlaceOutcome::Diverged`]).
    pub aside: Option<RelPath>,
    /// Folders to create first, outermost first (one that is a folder already is used:
    /// the placement of that folder may be under way).
    pub parents: Vec<RelPath>,
    /// The peer the version comes from (for the driver's reports).
    pub from: DeviceId,
    /// The devices that made the version placed and the one it replaces (their
    /// [`Record::by`](crate::Record::by), for the driver's reports: a version kept of what
    /// is replaced names its maker).
    pub makers: (Option<DeviceId>, Option<DeviceId>),
}

/// How a [`Placement`] went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlaceOutcome {
    /// Done and durable.
    Done,
    /// The disk did not hold what was expected (at the path, the aside name or a parent):
    /// nothing was changed.
    Diverged,
    /// The folder to remove is not empty: nothing was changed.
    NotEmpty,
    /// The staged content is gone: nothing was changed.
    NoContent,
    /// The disk refused (full, no permission, a path that is not safe to use): nothing was
    /// changed. Tried again later, waiting longer after each failure in a row.
    Failed,
}
