//! The command line: `qsync`'s subcommands, flags and arguments (clap), and the words of
//! the few options that map onto the control protocol's.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use qsync_engine::control;

/// QSync keeps folders in sync, in real time, between your own devices on the same network.
#[derive(Debug, Parser)]
#[command(version, about)]
pub(crate) struct Cli {
    /// More log output (-v: info, -vv: debug).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub(crate) verbose: u8,

    /// Where this device's state lives (default: the user's data folder).
    #[arg(long, global = true, env = "QSYNC_STATE_DIR")]
    pub(crate) state_dir: Option<PathBuf>,

    /// Print the daemon's replies as JSON, one object per line (for scripts and front ends).
    #[arg(long, global = true)]
    pub(crate) json: bool,

    /// The config file (default: qsync.toml in the state folder when --state-dir is given,
    /// else in the user's config folder).
    #[arg(long, global = true, env = "QSYNC_CONFIG")]
    pub(crate) config: Option<PathBuf>,

    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Run the sync daemon in the foreground (SIGTERM or `qsync stop` stops it, SIGHUP
    /// applies the config file's live settings).
    Daemon(crate::daemon::DaemonArgs),
    /// Stop the running daemon gracefully.
    Stop,
    /// The settings in the config file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Print a one-time address (valid two minutes) that opens the web UI logged in.
    Web,
    /// Run QSync as a systemd user service (from login to logout, restarted on failure).
    #[command(subcommand)]
    Service(crate::service::ServiceCommand),
    /// Print the shell completions of `qsync` (bash, zsh, fish, elvish, powershell).
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Print `qsync`'s manual page (roff; `qsync man | man -l -`).
    Man,
    /// Sync tasks.
    #[command(subcommand)]
    Task(TaskCommand),
    /// List the devices this one is linked with.
    Devices,
    /// Link another device (at HOST:PORT) to a task. Prints a code first: on the other
    /// device, its person answers the link question with that code and where the folder
    /// goes. Then shows the setup copy's progress until it is done.
    Link {
        /// The task id (from `qsync task list`).
        task: String,
        /// The other device: its daemon's HOST:PORT, or the name or fingerprint of a device
        /// mDNS finds (`qsync discover`).
        address: String,
        /// The device that must answer: its id or fingerprint (from `qsync discover`, or
        /// `qsync status` on it). Another device there is refused before anything is sent.
        #[arg(long)]
        expect: Option<String>,
        /// Return once linked, without following the setup copy.
        #[arg(long)]
        no_wait: bool,
    },
    /// A linked device.
    #[command(subcommand)]
    Device(DeviceCommand),
    /// Forget a device: unlink it from every task, on both sides, and drop its record.
    Forget {
        /// The device: its id, fingerprint or name.
        device: String,
    },
    /// Unlink a device from a task, on both sides.
    Unlink {
        /// The task id.
        task: String,
        /// The device: its id, fingerprint or name.
        device: String,
    },
    /// This device's id, its tasks, connections and pending updates; with --task, every
    /// path of that task not in sync here, and why.
    Status {
        /// The task.
        #[arg(long)]
        task: Option<String>,
    },
    /// Follow what the daemon does (connections, questions, applied changes, conflicts,
    /// deliveries), one line each, until interrupted.
    Events,
    /// The files that changes from other devices deleted or replaced here, kept as
    /// versions: number, when kept, size, why, by which device, path.
    Versions(crate::versions::VersionsArgs),
    /// Bring back a kept version (the newest unless --version): a new change of the
    /// file, which syncs to the other devices. A folder comes back whole.
    Restore(crate::versions::RestoreArgs),
    /// The conflict copies (the losing version of a file two devices changed at once,
    /// kept beside it), with both versions' sizes and times.
    Conflicts(crate::versions::ConflictsArgs),
    /// Settle a conflict: keep this version, the other (the copy), or both; the result
    /// syncs everywhere.
    Resolve(crate::versions::ResolveArgs),
    /// Undo a send-only task's drift: this device's versions win on every device over the
    /// changes of other devices it did not apply (files they added are deleted there).
    Revert {
        /// The task.
        task: String,
        /// Only list the paths it would change.
        #[arg(long)]
        dry_run: bool,
    },
    /// Pause a task here: its changes are recorded, and nothing of it is sent to or
    /// taken from the other devices until `qsync resume` (kept across restarts). With
    /// --device, pause a device instead: no connection with it, for any task.
    Pause {
        /// The task.
        #[arg(required_unless_present = "device", conflicts_with = "device")]
        task: Option<String>,
        /// A linked device.
        #[arg(long)]
        device: Option<String>,
    },
    /// Resume a paused task (or --device): what changed on either side meanwhile syncs.
    Resume {
        /// The task.
        #[arg(required_unless_present = "device", conflicts_with = "device")]
        task: Option<String>,
        /// A linked device.
        #[arg(long)]
        device: Option<String>,
    },
    /// How many updates a linked device still has to receive.
    Pending {
        /// The device: its id, fingerprint or name.
        device: String,
    },
    /// List questions the daemon is waiting to have answered (the back-to-front channel).
    Questions,
    /// Answer a question of the daemon.
    Answer {
        /// The question's id, as `qsync questions` prints it first.
        id: String,
        /// The answer.
        text: String,
    },
    /// Announce this device over mDNS and print the QSync devices found and lost, one per line
    /// (`me ID`, `found ID NAME ADDR,...`, `lost ID`).
    Discover {
        /// TCP port to announce and answer probes on.
        #[arg(long, default_value_t = 7878)]
        port: u16,
        /// Human name to announce.
        #[arg(long, default_value = "qsync")]
        name: String,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        seconds: Option<u64>,
        /// Seconds of silence after which a device is reported lost.
        #[arg(long, default_value_t = 30)]
        expiry: u64,
        /// Seconds between probes of known devices.
        #[arg(long, default_value_t = 10)]
        probe_interval: u64,
        /// Also probe this device by address (for networks without multicast); repeatable.
        #[arg(long = "peer")]
        peers: Vec<SocketAddr>,
    },
    /// The Magasin: list, search, install, uninstall and launch apps; serve a store.
    Store(crate::magasin::StoreArgs),
    /// Make a new random device id and print it.
    NewId,
    /// Print the version and the protocol version this build speaks.
    Version,
}

#[derive(Debug, Subcommand)]
pub(crate) enum ConfigCommand {
    /// Where the config file is.
    Path,
    /// Every setting, as the file holds it.
    Show,
    /// One setting's value.
    Get {
        /// The setting (see `qsync config show`).
        key: String,
    },
    /// Change one setting in the file (the running daemon takes it at `qsync config
    /// reload` when it can change live, or at its next start).
    Set {
        /// The setting.
        key: String,
        /// Its new value.
        value: String,
    },
    /// Apply the file's live settings to the running daemon (as SIGHUP does).
    Reload,
}

#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCommand {
    /// Reach a linked device at HOST:PORT from now on (it moved, or mDNS does not find
    /// it): dialled there now, and kept for later starts.
    Address {
        /// The device: its id, fingerprint or name.
        device: String,
        /// HOST:PORT, a name or an address.
        address: String,
    },
}

#[derive(Debug, Subcommand)]
pub(crate) enum TaskCommand {
    /// Sync the folder at PATH.
    Add {
        /// The folder.
        path: PathBuf,
        /// A name for the task (default: the folder's name).
        #[arg(long)]
        name: Option<String>,
        /// Which way its changes go here: `send-receive` (the default), `send-only` or
        /// `receive-only` (changeable later with `task set --type`).
        #[arg(long = "type", value_enum)]
        folder_type: Option<Kind>,
    },
    /// List the tasks and their ids.
    List,
    /// Stop syncing a task here. No file is touched; the other devices keep syncing it
    /// among themselves.
    Remove {
        /// The task.
        task: String,
    },
    /// Set options of a task on this device, and print them all.
    Set {
        /// The task.
        task: String,
        /// Symlinks received from other devices that point out of the task's folder (an
        /// absolute target, or one climbing above the folder): `refuse` (the default: not
        /// made, listed in `status` as not synced) or `allow`.
        #[arg(long, value_enum)]
        links_out: Option<LinksOut>,
        /// Versions of files that changes from other devices delete or replace: `off`,
        /// `trash` (every one, for --keep-days) or `staggered` (the default: one per 30 s
        /// for an hour, per hour for a day, per day for 30 days, per week after, none past
        /// --keep-days).
        #[arg(long, value_enum)]
        versions: Option<KeepVersions>,
        /// Days versions are kept (default: 365 for staggered, 30 for trash).
        #[arg(long)]
        keep_days: Option<u32>,
        /// Disk all of the task's versions may take, in MiB (default: 2048); the oldest go
        /// first.
        #[arg(long)]
        versions_cap_mib: Option<u64>,
        /// `send-receive` (the default) or `send-only`: the changes of other devices are
        /// not applied here (`qsync revert TASK` makes this device's versions win).
        #[arg(long = "type", value_enum)]
        folder_type: Option<Kind>,
    },
}

/// A task's folder type.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum Kind {
    /// Send changes and apply the others'.
    SendReceive,
    /// Send changes, apply none.
    SendOnly,
    /// Apply the others' changes, send none.
    ReceiveOnly,
}

impl Kind {
    pub(crate) fn folder_type(self) -> control::FolderType {
        match self {
            Kind::SendReceive => control::FolderType::SendReceive,
            Kind::SendOnly => control::FolderType::SendOnly,
            Kind::ReceiveOnly => control::FolderType::ReceiveOnly,
        }
    }
}

/// How a task keeps versions.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum KeepVersions {
    /// None.
    Off,
    /// Every one, for a number of days.
    Trash,
    /// Fewer as they age.
    Staggered,
}

/// What to do with received symlinks that point out of a task's folder.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub(crate) enum LinksOut {
    /// Make them as they are.
    Allow,
    /// Do not make them (the default).
    Refuse,
}
