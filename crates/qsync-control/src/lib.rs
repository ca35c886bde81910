//! The local control socket and its protocol: one [`Command`] in, one [`Reply`] out, each a
//! JSON object on one line. The CLI, the terminal menu and the daemon share these types,
//! so none of them builds or scrapes text. [`Command::Events`] keeps the connection open
//! and streams [`DaemonEvent`]s, one [`Reply::Event`] per line, for front ends that would
//! otherwise poll.
//!
//! ```
//! use qsync_control::{Command, Reply};
//!
//! let line = serde_json::to_string(&Command::TaskList)?;
//! assert_eq!(line, r#"{"command":"task_list"}"#);
//! let reply: Reply = serde_json::from_str(r#"{"reply":"pending","device":"aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa","count":3}"#)?;
//! assert_eq!(reply.to_string(), "3");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;
use std::path::PathBuf;

use qsync_base::{DeviceId, RelPath, TaskId};
use serde::{Deserialize, Serialize};

mod error;
pub use error::ControlError;

/// The README's examples, run as doc tests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// This device's id.
    Id,
    /// Counters: tasks, connections, pending updates, traffic.
    Status,
    /// Every path of a task that is not in sync here, and why.
    OutOfSync {
        /// The task.
        task: TaskId,
    },
    /// Sync the folder at `path` (absolute) as a new task.
    TaskAdd {
        /// The folder.
        path: PathBuf,
        /// A human name (default: the folder's name).
        name: Option<String>,
        /// Which way its changes go here (default: both ways).
        #[serde(default)]
        folder_type: Option<FolderType>,
    },
    /// Stop syncing a task here (its folder is untouched).
    TaskRemove {
        /// The task.
        task: TaskId,
    },
    /// Set options of a task on this device (`None`: unchanged), and see them all.
    TaskSet {
        /// The task.
        task: TaskId,
        /// Whether symlinks received from peers may point out of the task folder (off by
        /// default: they are not made, and `status` lists them as not synced).
        #[serde(default)]
        links_out: Option<bool>,
        /// How long files that received changes delete or replace are kept.
        #[serde(default)]
        versions: Option<VersionPolicy>,
        /// Paused (changes here are recorded, nothing is sent or taken), or resumed.
        #[serde(default)]
        paused: Option<bool>,
        /// Its folder type here.
        #[serde(default)]
        folder_type: Option<FolderType>,
    },
    /// Undo the drift of a task of a one-way folder type: for a send-only task, make this
    /// device's versions win on every device over the changes it did not apply.
    Revert {
        /// The task.
        task: TaskId,
    },
    /// The paths a [`Command::Revert`] of `task` would change, changing nothing. (A command
    /// of its own, not a flag of `Revert`: a daemon that does not know it refuses it,
    /// rather than revert.)
    RevertPreview {
        /// The task.
        task: TaskId,
    },
    /// The versions kept of a path (absolute: a file or a folder of a task), or of every
    /// task.
    Versions {
        /// The path.
        #[serde(default)]
        path: Option<PathBuf>,
        /// Only the newest this many (still listed oldest first; the reply's `total`
        /// says how many there are).
        #[serde(default)]
        newest: Option<u32>,
    },
    /// Bring back a kept version as a new change of the path (which then syncs).
    Restore {
        /// The path (absolute) it was at: a file, or a folder whose files all come back.
        path: PathBuf,
        /// Which version (`None`: the newest of each path).
        #[serde(default)]
        version: Option<i64>,
        /// The newest of each path kept at or before this time (nanoseconds since the
        /// Unix epoch) instead.
        #[serde(default)]
        at: Option<i64>,
        /// Where to put it instead (absolute, in the same task).
        #[serde(default)]
        to: Option<PathBuf>,
    },
    /// The conflict copies under a path (absolute: a file or a folder of a task), or in
    /// every task.
    Conflicts {
        /// The path.
        #[serde(default)]
        path: Option<PathBuf>,
    },
    /// Settle the conflict of a file (absolute: the copy, or the original of one or more
    /// copies): the result syncs everywhere.
    Resolve {
        /// The path.
        path: PathBuf,
        /// Which version stays.
        keep: KeepSide,
    },
    /// The tasks of this device.
    TaskList,
    /// The devices this one is linked with.
    Devices,
    /// Link `task` with the device listening at `address` (`HOST:PORT`). First answered
    /// with [`Reply::LinkCode`], the code to show this side's person, then with the
    /// outcome once the other side's person typed it and chose a folder (or refused).
    Link {
        /// The task.
        task: TaskId,
        /// The other device, `HOST:PORT` (a name or an address).
        address: String,
        /// The device that must answer there: its id or fingerprint, as `qsync discover`
        /// and `qsync status` print them (`None`: whichever device proves the code).
        expect: Option<String>,
    },
    /// Forget a device: unlink it from every task and drop its record.
    Forget {
        /// The device.
        device: DeviceId,
    },
    /// Pause a linked device (no connection with it, for any task, until resumed), or
    /// resume it.
    DevicePause {
        /// The device.
        device: DeviceId,
        /// Paused, or resumed.
        paused: bool,
    },
    /// Where to reach a linked device from now on (`HOST:PORT`): it is dialled there
    /// when not connected, and the address is kept for later starts.
    DeviceAddress {
        /// The device.
        device: DeviceId,
        /// `HOST:PORT`, a name or an address.
        address: String,
    },
    /// How many updates `device` still has to receive.
    Pending {
        /// The device.
        device: DeviceId,
    },
    /// Stop syncing `task` with `device`.
    Unlink {
        /// The task.
        task: TaskId,
        /// The device.
        device: DeviceId,
    },
    /// Record an installed app and sync its data folder as a new task.
    AppAdd {
        /// `grapin` or `tout-en-un`.
        kind: String,
        /// Its name (unique).
        name: String,
        /// Its data folder.
        folder: PathBuf,
        /// Where a tout-en-un app is installed.
        app_dir: Option<PathBuf>,
        /// Its JSON description.
        config: String,
    },
    /// One installed app.
    AppGet {
        /// Its name.
        name: String,
    },
    /// The installed apps.
    AppList,
    /// Forget an installed app and stop syncing its data folder (its files stay).
    AppRemove {
        /// Its name.
        name: String,
    },
    /// Stream what happens (connections, questions, conflicts, files) until the client
    /// hangs up.
    Events,
    /// The questions waiting for the person's answer.
    Questions,
    /// Answer a question (see [`Command::Questions`]).
    Answer {
        /// The question's id.
        id: String,
        /// The answer.
        text: String,
    },
    /// The QSync devices mDNS finds on the network now.
    Discovered,
    /// Apply settings that can change while the daemon runs (`None`: unchanged).
    Configure {
        /// Seconds between whole scans of every task's folder (0: never).
        #[serde(default)]
        rescan_every: Option<u64>,
    },
    /// Stop the daemon gracefully (what was placed is made durable, connections close).
    Shutdown,
}

impl Command {
    /// Whether it only reads (so the daemon need not settle staged files first).
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Id
                | Command::Status
                | Command::OutOfSync { .. }
                | Command::Devices
                | Command::Pending { .. }
                | Command::TaskList
                | Command::AppList
                | Command::AppGet { .. }
                | Command::Versions { .. }
                | Command::RevertPreview { .. }
                | Command::Conflicts { .. }
                | Command::Events
                | Command::Questions
                | Command::Discovered
        )
    }
}

/// The daemon's answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// For [`Command::Id`].
    Id {
        /// This device.
        device: DeviceId,
    },
    /// For [`Command::Status`].
    Status(Status),
    /// For [`Command::TaskAdd`].
    TaskAdded(TaskInfo),
    /// For [`Command::TaskRemove`].
    TaskRemoved {
        /// The task.
        task: TaskId,
    },
    /// For [`Command::TaskSet`]: the task's options now.
    TaskOptions {
        /// The task.
        task: TaskId,
        /// Whether symlinks received from peers may point out of the task folder.
        links_out: bool,
        /// How long versions are kept.
        versions: VersionPolicy,
        /// Whether it is paused here.
        #[serde(default)]
        paused: bool,
        /// Its folder type here.
        #[serde(default)]
        folder_type: FolderType,
    },
    /// For [`Command::Revert`] and [`Command::RevertPreview`].
    Reverted {
        /// The task.
        task: TaskId,
        /// The paths it changes (or, for a preview, would change): the first thousand.
        #[serde(default)]
        paths: Vec<RelPath>,
        /// How many more there are.
        #[serde(default)]
        more: usize,
        /// Nothing was changed: a dry run.
        #[serde(default)]
        dry_run: bool,
    },
    /// For [`Command::Versions`] and [`Command::Restore`]: versions kept, or brought back.
    Versions {
        /// Oldest first.
        versions: Vec<VersionInfo>,
        /// How many there are in all (more than listed when `newest` cut the list).
        #[serde(default)]
        total: u64,
    },
    /// For [`Command::Conflicts`] and [`Command::Resolve`]: the copies listed, or settled.
    Conflicts {
        /// By path.
        conflicts: Vec<ConflictInfo>,
    },
    /// For [`Command::OutOfSync`]: nothing when the task is in sync here.
    OutOfSync {
        /// The task.
        task: TaskId,
        /// What is not in sync, and why.
        paths: Vec<NotInSync>,
    },
    /// For [`Command::TaskList`].
    Tasks {
        /// The tasks.
        tasks: Vec<TaskInfo>,
    },
    /// For [`Command::Devices`].
    Devices {
        /// The devices.
        devices: Vec<DeviceInfo>,
    },
    /// For [`Command::Link`], first: the device that answered and the code to show.
    LinkCode {
        /// The device that answered (its key was proven).
        device: DeviceId,
        /// Its fingerprint.
        fingerprint: String,
        /// The code its person types.
        code: String,
    },
    /// For [`Command::DevicePause`].
    DevicePaused {
        /// The device.
        device: DeviceId,
        /// Whether it is paused now.
        paused: bool,
    },
    /// For [`Command::DeviceAddress`].
    DeviceAddressSet {
        /// The device.
        device: DeviceId,
        /// The address it is reached at from now on.
        address: String,
    },
    /// For [`Command::Forget`].
    Forgotten {
        /// The device.
        device: DeviceId,
        /// How many tasks it was linked to.
        tasks: usize,
    },
    /// For [`Command::Link`], last.
    Linked {
        /// The other device.
        device: DeviceId,
        /// Its name.
        name: String,
        /// How many entries the setup copy sends.
        entries: usize,
    },
    /// For [`Command::Pending`].
    Pending {
        /// The device.
        device: DeviceId,
        /// How many updates it still has to receive.
        count: u64,
    },
    /// For [`Command::Unlink`].
    Unlinked {
        /// The task.
        task: TaskId,
        /// The device.
        device: DeviceId,
    },
    /// For [`Command::AppAdd`], [`Command::AppGet`] and [`Command::AppRemove`].
    App(AppInfo),
    /// For [`Command::AppList`].
    Apps {
        /// The apps.
        apps: Vec<AppInfo>,
    },
    /// One event of [`Command::Events`].
    Event(DaemonEvent),
    /// For [`Command::Questions`]: oldest first.
    Questions {
        /// The questions.
        questions: Vec<QuestionInfo>,
    },
    /// For [`Command::Answer`].
    Answered {
        /// The question.
        id: String,
    },
    /// For [`Command::Configure`]: the live settings now.
    Configured {
        /// Seconds between whole scans (0: never).
        rescan_every: u64,
    },
    /// For [`Command::Shutdown`].
    ShuttingDown,
    /// For [`Command::Discovered`].
    Discovered {
        /// The devices, by id.
        devices: Vec<NearbyInfo>,
    },
    /// The command failed.
    Error {
        /// Why, for a person.
        message: String,
    },
}

impl Reply {
    /// A failure reply.
    pub fn error(message: impl fmt::Display) -> Self {
        Reply::Error {
            message: message.to_string(),
        }
    }
}

mod events;
mod human;
mod info;
mod socket;
#[cfg(test)]
mod tests;

pub use events::{DaemonEvent, EventFeed, Numbered, Subscription, EVENT_HISTORY};
pub use human::printable;
pub use info::{
    AppInfo, ConflictInfo, DeviceInfo, FolderType, Keep, KeepSide, NearbyInfo, NotInSync,
    NotInSyncWhy, PeerDistrust, QuestionInfo, ScanInfo, Status, TaskInfo, TransferInfo,
    VersionInfo, VersionPolicy, DEFAULT_VERSIONS_CAP,
};
pub use socket::{control_socket, follow, request, request_steps, serve, Request};
