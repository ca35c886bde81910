//! What the daemon's replies describe: tasks, versions, conflicts, devices, apps, the
//! counters of `status`, transfers, and the questions and nearby devices front ends show.

use std::path::PathBuf;

use qsync_base::{DeviceId, RelPath, TaskId};
use serde::{Deserialize, Serialize};

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

/// Which version a settled conflict keeps (see [`Command::Resolve`](crate::Command::Resolve)).
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

/// Why a path (or a whole task) is not in sync here (see [`Command::OutOfSync`](crate::Command::OutOfSync)).
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

/// A path of a task not in sync here, and why (see [`Command::OutOfSync`](crate::Command::OutOfSync)).
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

/// A question of the daemon to its person (see [`Command::Questions`](crate::Command::Questions)).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QuestionInfo {
    /// Its id, for [`Command::Answer`](crate::Command::Answer).
    pub id: String,
    /// What kind of question: `CHOOSELINKPATH`, `CONFIRMJOIN`, `CONFIRMSEND`,
    /// `CONFIRMSENSITIVE`.
    pub flag: String,
    /// The line the person reads.
    pub context: String,
}

/// A QSync device that mDNS found on the network (see [`Command::Discovered`](crate::Command::Discovered)).
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
