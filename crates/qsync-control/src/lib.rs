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

/// A sync task, as the daemon describes it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// Its id.
    pub task: TaskId,
    /// Its human name.
    pub name: String,
    /// Its folder here.
    pub root: PathBuf,
    /// How many devices it is linked with.
    pub devices: usize,
    /// Whether it is paused here.
    #[serde(default)]
    pub paused: bool,
}

/// A kept version of a file (see `qsync versions`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    /// Its number, for `qsync restore --version`.
    pub id: i64,
    /// Its task.
    pub task: TaskId,
    /// Where it was.
    pub path: RelPath,
    /// Its size.
    pub size: u64,
    /// When it was kept (nanoseconds since the Unix epoch).
    pub kept_ns: i64,
    /// Its modification time.
    pub mtime_ns: i64,
    /// The device whose person made it, as its record said: `this device`, a linked
    /// device's name, or the start of its id (`None`: not known, as for the version before
    /// an edit made here).
    pub device: Option<String>,
    /// `deleted`, `replaced`, `edited` or `restored-over`.
    pub why: String,
}

/// What a task's folder does with changes, on this device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum FolderType {
    /// Sends its changes, applies the others' (the default).
    #[default]
    SendReceive,
    /// Sends its changes, does not apply the others' (`qsync revert` makes its versions
    /// win everywhere).
    SendOnly,
    /// Applies the others' changes, does not send its own (`status --task` lists them;
    /// `qsync revert` puts the received versions back).
    ReceiveOnly,
}

/// How long a task keeps versions (the store's `qsync_store::Keep`, as the protocol says it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keep", rename_all = "snake_case")]
pub enum Keep {
    /// None.
    Off,
    /// Every version, for `days` days.
    Trash {
        /// Days.
        days: u32,
    },
    /// Syncthing's schedule: per path, one version per 30 seconds for the first hour, one
    /// per hour for the first day, one per day for the first 30 days, one per week after
    /// that, none past `days` days.
    Staggered {
        /// Days.
        days: u32,
    },
}

/// The cap a daemon gives a task's versions when none is set (`VersionPolicy::cap` of
/// `None`): 2 GiB.
pub const DEFAULT_VERSIONS_CAP: u64 = 2 << 30;

/// What a task keeps, and how much disk its versions may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionPolicy {
    /// How long.
    #[serde(flatten)]
    pub keep: Keep,
    /// Bytes all versions of the task may take (`None`: [`DEFAULT_VERSIONS_CAP`], followed
    /// if it changes).
    pub cap: Option<u64>,
}

/// Which version a settled conflict keeps (see [`Command::Resolve`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KeepSide {
    /// The file at the original path; the copy goes.
    This,
    /// The copy, which takes the original path.
    Other,
    /// Both: the copy stays under a plain name.
    Both,
}

/// A conflict copy and the file it was made beside (see `qsync conflicts`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConflictInfo {
    /// Its task.
    pub task: TaskId,
    /// The copy: the version that lost.
    pub copy: RelPath,
    /// Its size.
    pub copy_size: u64,
    /// Its modification time.
    pub copy_mtime_ns: i64,
    /// The path it was made beside (`None`: its name was shortened or changed).
    pub original: Option<RelPath>,
    /// The size of the file there now, if any.
    pub original_size: Option<u64>,
    /// Its modification time.
    pub original_mtime_ns: Option<i64>,
    /// The device that made the copy's version, as its record says: `this device`, a
    /// linked device's name, or the start of its id (`None`: not recorded yet, or recorded
    /// before devices were named).
    #[serde(default)]
    pub copy_device: Option<String>,
    /// The device that made the original's version, shown the same way.
    #[serde(default)]
    pub original_device: Option<String>,
}

/// Why a path (or a whole task) is not in sync here (see [`Command::OutOfSync`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NotInSyncWhy {
    /// The task is paused here.
    Paused,
    /// The task's folder type here keeps changes from going one way.
    FolderType,
    /// A received change waits for its turn (another change it needs first).
    WaitingTurn,
    /// A received change waits for its content from the peers that hold it.
    WaitingContent,
    /// A received change is being written.
    Placing,
    /// A received deletion of a folder waits for what is left in it.
    WaitingChildren,
    /// A received change is tried again later (content not had, the disk refused: full,
    /// or the file changed meanwhile).
    Retrying,
    /// Two versions of a file: the other is kept in a conflict copy.
    Conflict,
    /// A received change this device does not make (a link out of the folder).
    Refused,
    /// Names QSync cannot carry (not UTF-8, a backslash): listed in the daemon's log.
    Unsupported,
    /// A linked device sent what this device refused or doubted.
    PeerRefused,
    /// Changed here and not sent: the task is receive-only here.
    ChangedHere,
    /// A linked device has it; this device's rules (`.qsyncignore`) exclude it.
    Ignored,
    /// Received content does not fit on this device's disk.
    NoSpace,
}

/// A path of a task not in sync here, and why (see [`Command::OutOfSync`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NotInSync {
    /// The path (`None`: the whole task, or several paths).
    pub path: Option<RelPath>,
    /// Why.
    pub why: NotInSyncWhy,
    /// The device concerned (its name when known).
    pub device: Option<String>,
    /// For how long, in seconds, when known.
    pub seconds: Option<u64>,
    /// More, in words.
    pub detail: String,
}

/// A linked device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceInfo {
    /// Its id.
    pub device: DeviceId,
    /// Its human name.
    pub name: String,
    /// Where it was last reached.
    pub address: Option<String>,
    /// Whether a connection is up.
    pub connected: bool,
    /// Whether this device's person paused it.
    #[serde(default)]
    pub paused: bool,
}

/// An installed app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppInfo {
    /// Its name.
    pub name: String,
    /// `grapin` or `tout-en-un`.
    pub kind: String,
    /// The sync task of its data folder, if it still exists.
    pub task: Option<TaskId>,
    /// Its data folder.
    pub data_folder: PathBuf,
    /// Where a tout-en-un app is installed.
    pub app_dir: Option<PathBuf>,
    /// Its JSON description.
    pub config: String,
}

/// The daemon's counters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Status {
    /// This device.
    pub device: DeviceId,
    /// Tasks synced here.
    pub tasks: usize,
    /// Devices connected now.
    pub connected: usize,
    /// Updates some device still needs.
    pub updates: u64,
    /// (update, device) pairs still to deliver.
    pub pending: u64,
    /// Stored deltas.
    pub deltas: u64,
    /// Updates sent.
    pub sent: u64,
    /// Updates received.
    pub received: u64,
    /// Bytes sent on the wire.
    pub wire_sent: u64,
    /// Bytes received on the wire.
    pub wire_received: u64,
    /// Paths not synced because QSync cannot carry their names (not UTF-8, or holding a
    /// backslash), as found when the tasks were mapped; each is in the daemon's log.
    pub unsupported: usize,
    /// Received changes not carried out here, each as `TASK PATH: why (from DEVICE)`: a
    /// symlink whose target leaves the task folder (see `driver/guard.rs`).
    #[serde(default)]
    pub not_synced: Vec<String>,
    /// Lines of the tasks' `.qsyncignore` files that are skipped (broken patterns, not
    /// UTF-8), each as `TASK: what`.
    #[serde(default)]
    pub ignore_problems: Vec<String>,
    /// Walks of whole task folders under way (a task just added, a daemon just started).
    #[serde(default)]
    pub scans: Vec<ScanInfo>,
    /// Linked devices that sent what this device refused or did not trust, since it started.
    #[serde(default)]
    pub distrusted: Vec<PeerDistrust>,
    /// Content coming in now, a transfer each (the first 100, by task and path).
    #[serde(default)]
    pub transfers: Vec<TransferInfo>,
    /// Bytes the tasks' kept versions take on disk.
    #[serde(default)]
    pub versions_bytes: u64,
    /// Tasks paused here: their changes are recorded, nothing is sent or taken.
    #[serde(default)]
    pub paused: Vec<TaskId>,
}

/// Content on its way in from a peer, for `status`: how far it is, and how fast it goes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransferInfo {
    /// The peer sending it.
    pub device: DeviceId,
    /// The task.
    pub task: TaskId,
    /// Where it goes.
    pub path: RelPath,
    /// Bytes received: of the file, or of the patch when `patch` is set.
    pub done: u64,
    /// The file's size.
    pub size: u64,
    /// Whether it comes as a patch from the version this device has (`done` counts the
    /// patch's bytes, which are far fewer than the file's).
    pub patch: bool,
    /// Bytes a second since its first byte came.
    pub rate: u64,
}

/// What one linked device sent that this device refused or did not trust, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerDistrust {
    /// The device.
    pub device: DeviceId,
    /// Records and greetings refused: not stored, never acknowledged (see the engine's
    /// README, "Bounds on what a peer may cost").
    pub refused: u64,
    /// Records that claimed more of this device's changes than it made: kept as
    /// concurrent with this device's version, never as newer.
    pub doubted: u64,
    /// The last one, in words.
    pub last: String,
}

/// A walk of a whole task folder under way, for `status`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScanInfo {
    /// The task.
    pub task: TaskId,
    /// Entries found so far.
    pub entries: u64,
    /// Seconds since it began.
    pub seconds: u64,
}

/// Something that happened, for [`Command::Events`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DaemonEvent {
    /// A linked device is connected.
    Connected {
        /// The device.
        device: DeviceId,
        /// Its name, when known.
        #[serde(default)]
        name: Option<String>,
    },
    /// A linked device's connection is gone.
    Disconnected {
        /// The device.
        device: DeviceId,
        /// Its name, when known.
        #[serde(default)]
        name: Option<String>,
    },
    /// The daemon asks its person something (answer with `qsync answer ID TEXT`, or
    /// [`Command::Answer`]).
    Question {
        /// The question's id, for the answer.
        #[serde(default)]
        id: String,
        /// The question's flag, such as `CHOOSELINKPATH`.
        flag: String,
        /// What it is about.
        context: String,
    },
    /// A change from another device was applied here.
    Applied {
        /// The task.
        task: TaskId,
        /// The device it came from.
        from: DeviceId,
        /// That device's name, when known.
        #[serde(default)]
        name: Option<String>,
        /// The path changed.
        #[serde(default)]
        path: Option<RelPath>,
        /// Whether the change deleted it.
        #[serde(default)]
        deleted: bool,
    },
    /// More changes from other devices were applied here than are named one by one (at
    /// most 64 a second are): how many, in one task, since the last such event.
    AppliedMore {
        /// The task.
        task: TaskId,
        /// How many.
        count: u64,
    },
    /// Both sides changed a file: the other version was kept beside it.
    Conflict {
        /// The task.
        task: TaskId,
        /// Where the other version is.
        kept_as: RelPath,
    },
    /// A device acknowledged one of our updates.
    Delivered {
        /// The device.
        device: DeviceId,
    },
    /// A transfer coming in, as it goes (once a second while it does, for each listener).
    Transfer(TransferInfo),
    /// A link this device asked for (over the HTTP API) ended.
    LinkEnded {
        /// The task.
        task: TaskId,
        /// Whether the devices are linked now.
        ok: bool,
        /// How it ended, in words.
        message: String,
    },
    /// A change made on this device was found in a task's folder (and goes to the linked
    /// devices). A batch of many changes names the first ones, then says how many more.
    Changed {
        /// The task.
        task: TaskId,
        /// The path (`None`: the `more` changes of a large batch).
        path: Option<RelPath>,
        /// Whether it was deleted.
        #[serde(default)]
        deleted: bool,
        /// How many more changes the batch held, unnamed.
        #[serde(default)]
        more: u64,
    },
    /// A task was added, removed, paused, resumed or set otherwise.
    TaskChanged {
        /// The task.
        task: TaskId,
    },
}

/// A question of the daemon to its person (see [`Command::Questions`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionInfo {
    /// Its id, for [`Command::Answer`].
    pub id: String,
    /// What kind of question: `CHOOSELINKPATH`, `CONFIRMJOIN`, `CONFIRMSEND`,
    /// `CONFIRMSENSITIVE`.
    pub flag: String,
    /// The line the person reads.
    pub context: String,
}

/// A QSync device that mDNS found on the network (see [`Command::Discovered`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NearbyInfo {
    /// The id it announces (a claim: linking proves it).
    pub device: DeviceId,
    /// The name it announces.
    pub name: String,
    /// Where it says it listens.
    pub addresses: Vec<String>,
    /// Whether it is a linked device.
    pub linked: bool,
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
mod socket;
#[cfg(test)]
mod tests;

pub use events::{EventFeed, Numbered, Subscription, EVENT_HISTORY};
pub use human::printable;
pub use socket::{control_socket, follow, request, request_steps, serve, Request};
