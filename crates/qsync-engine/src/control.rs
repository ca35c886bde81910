//! The local control socket and its protocol: one [`Command`] in, one [`Reply`] out, each a
//! JSON object on one line. The CLI, the terminal menu and the daemon share these types,
//! so none of them builds or scrapes text. [`Command::Events`] keeps the connection open
//! and streams [`DaemonEvent`]s, one [`Reply::Event`] per line, for front ends that would
//! otherwise poll.
//!
//! ```
//! use qsync_engine::control::{Command, Reply};
//!
//! let line = serde_json::to_string(&Command::TaskList)?;
//! assert_eq!(line, r#"{"command":"task_list"}"#);
//! let reply: Reply = serde_json::from_str(r#"{"reply":"pending","device":"aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa-aaaa","count":3}"#)?;
//! assert_eq!(reply.to_string(), "3");
//! # Ok::<(), serde_json::Error>(())
//! ```

use std::fmt;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use qsync_base::{DeviceId, RelPath, TaskId};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, oneshot};

use crate::EngineError;

/// A request to the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum Command {
    /// This device's id.
    Id,
    /// Counters: tasks, connections, pending updates, traffic.
    Status,
    /// Sync the folder at `path` (absolute) as a new task.
    TaskAdd {
        /// The folder.
        path: PathBuf,
        /// A human name (default: the folder's name).
        name: Option<String>,
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
}

impl Command {
    /// Whether it only reads (so the daemon need not settle staged files first).
    pub fn reads_only(&self) -> bool {
        matches!(
            self,
            Command::Id
                | Command::Status
                | Command::Devices
                | Command::Pending { .. }
                | Command::TaskList
                | Command::AppList
                | Command::AppGet { .. }
                | Command::Events
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
    },
    /// A linked device's connection is gone.
    Disconnected {
        /// The device.
        device: DeviceId,
    },
    /// The daemon asks its person something (answer with `qsync answer FLAG TEXT`).
    Question {
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

/// Text from elsewhere (a device's name, a folder name from a pairing request) as it may
/// be shown on a terminal: control characters (escape sequences, newlines that would fake
/// another line) are shown escaped, never sent as they are.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            // Controls, and the invisible characters that reorder or hide text (a name
            // could otherwise fake the fingerprint printed next to it).
            let invisible = matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}');
            if c.is_control() || invisible {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A name with its spaces shown as `_`, so that a line keeps one word per field.
fn word(name: &str) -> String {
    printable(name).replace(' ', "_")
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task {} {} {} devices={}",
            self.task,
            word(&self.name),
            printable(&self.root.display().to_string()),
            self.devices
        )
    }
}

impl fmt::Display for DaemonEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonEvent::Connected { device } => write!(f, "connected {device}"),
            DaemonEvent::Disconnected { device } => write!(f, "disconnected {device}"),
            DaemonEvent::Question { flag, context } => {
                write!(f, "question {}: {}", printable(flag), printable(context))
            }
            DaemonEvent::Applied { task, from } => {
                write!(f, "applied a change from {from} (task {task})")
            }
            DaemonEvent::Conflict { task, kept_as } => {
                write!(
                    f,
                    "conflict: the other version is kept as {} (task {task})",
                    printable(kept_as.as_str())
                )
            }
            DaemonEvent::Delivered { device } => write!(f, "delivered an update to {device}"),
        }
    }
}

/// The human form, which the CLI prints without `--json` (one line per item).
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Id { device } => write!(f, "{device}"),
            Reply::Status(s) => write!(
                f,
                "device {}\nfingerprint {}\ntasks {}\nconnected {}\nupdates {} pending {} deltas {}\nsent {} received {}\nwire_sent {} wire_received {}\nunsupported {}{}",
                s.device, qsync_wire::fingerprint(&s.device), s.tasks, s.connected, s.updates, s.pending, s.deltas, s.sent, s.received, s.wire_sent, s.wire_received,
                s.unsupported,
                if s.unsupported > 0 { " (names QSync cannot carry are not synced; the daemon's log lists them)" } else { "" }
            )
            .and_then(|()| {
                s.not_synced
                    .iter()
                    .try_for_each(|p| write!(f, "\nnot_synced {}", printable(p)))
            })
            .and_then(|()| {
                s.ignore_problems
                    .iter()
                    .try_for_each(|p| write!(f, "\nignore_problem {}", printable(p)))
            })
            .and_then(|()| {
                s.distrusted.iter().try_for_each(|d| {
                    write!(f, "\ndistrusted {} refused {} doubted {} last {}", d.device, d.refused, d.doubted, printable(&d.last))
                })
            })
            .and_then(|()| {
                s.scans.iter().try_for_each(|scan| {
                    write!(f, "\nscanning {} {} entries {} s", scan.task, scan.entries, scan.seconds)
                })
            })
            .and_then(|()| {
                s.transfers.iter().try_for_each(|t| {
                    let path = printable(t.path.as_str());
                    if t.patch {
                        write!(f, "\npatch {} {path} from {} {} bytes of patch for {} bytes {} B/s", t.task, t.device, t.done, t.size, t.rate)
                    } else {
                        write!(f, "\nreceiving {} {path} from {} {} of {} bytes {} B/s", t.task, t.device, t.done, t.size, t.rate)
                    }
                })
            }),
            Reply::TaskAdded(t) => write!(f, "task {} {} {}", t.task, word(&t.name), printable(&t.root.display().to_string())),
            Reply::TaskRemoved { task } => write!(f, "removed task {task} (its folder is untouched)"),
            Reply::TaskOptions { task, links_out } => {
                let links = if *links_out { "allow" } else { "refuse" };
                write!(f, "task {task} links-out {links}")
            }
            Reply::Tasks { tasks } => {
                let lines: Vec<String> = tasks.iter().map(ToString::to_string).collect();
                f.write_str(&lines.join("\n"))
            }
            Reply::Devices { devices } => {
                let lines: Vec<String> = devices
                    .iter()
                    .map(|d| {
                        let state = if d.connected { "connected" } else { "disconnected" };
                        format!("device {} {} {} {state}", d.device, word(&d.name), d.address.as_deref().unwrap_or("-"))
                    })
                    .collect();
                f.write_str(&lines.join("\n"))
            }
            Reply::LinkCode {
                fingerprint, code, ..
            } => write!(
                f,
                "code {code}: the device that answered is {fingerprint}; on it, answer the link question with this code and a folder"
            ),
            Reply::Forgotten { device, tasks } => {
                write!(f, "forgot {device} (it was linked to {tasks} tasks)")
            }
            Reply::Linked {
                device,
                name,
                entries,
            } => write!(
                f,
                "linked {device} {} ({entries} entries to copy)",
                printable(name)
            ),
            Reply::Pending { count, .. } => write!(f, "{count}"),
            Reply::Unlinked { task, device } => write!(f, "unlinked {device} from {task}"),
            Reply::App(app) => write!(
                f,
                "{:<24} {:<10} task {} {}",
                printable(&app.name),
                printable(&app.kind),
                app.task.map_or_else(|| "-".to_owned(), |t| t.to_string()),
                printable(&app.data_folder.display().to_string())
            ),
            Reply::Apps { apps } => {
                let lines: Vec<String> = apps.iter().map(|a| Reply::App(a.clone()).to_string()).collect();
                f.write_str(&lines.join("\n"))
            }
            Reply::Event(event) => write!(f, "{event}"),
            Reply::Error { message } => write!(f, "error: {}", printable(message)),
        }
    }
}

/// The longest command line the daemon reads (an app's description included).
const MAX_LINE: usize = 1024 * 1024;

/// The control socket's path in a state folder.
pub fn control_socket(state_dir: &Path) -> PathBuf {
    state_dir.join("control.sock")
}

/// What the control socket hands to whoever serves commands (the daemon): a command with
/// where its answer goes.
#[derive(Debug)]
pub enum Request {
    /// A command; its one answer goes to the sender.
    Command(Command, oneshot::Sender<Reply>),
    /// [`Command::Link`]: `progress` hears the replies before the last one (the code to
    /// show while the other side's person types it), `reply` the last one.
    Link {
        /// The task.
        task: TaskId,
        /// `HOST:PORT` of the other device.
        address: String,
        /// The device expected there (id or fingerprint).
        expect: Option<String>,
        /// Replies before the last one.
        progress: tokio::sync::mpsc::UnboundedSender<Reply>,
        /// The last reply.
        reply: oneshot::Sender<Reply>,
    },
}

/// Serve the control socket at `path` (created 0600). Each command is handed to `deliver`
/// as a [`Request`] (`false`: nobody serves commands any more, and the client is told the
/// daemon stopped); [`Command::Events`] subscribes to `notify`.
pub fn serve<D>(
    runtime: &tokio::runtime::Runtime,
    path: PathBuf,
    deliver: D,
    notify: broadcast::Sender<DaemonEvent>,
) -> Result<(), EngineError>
where
    D: Fn(Request) -> bool + Clone + Send + Sync + 'static,
{
    let _ = std::fs::remove_file(&path);
    let listener = {
        let _guard = runtime.enter();
        UnixListener::bind(&path)
            .map_err(|e| EngineError::io("create the control socket", &path, e))?
    };
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| EngineError::io("restrict", &path, e))?;
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let deliver = deliver.clone();
            let notify = notify.clone();
            tokio::spawn(async move {
                let (read, mut write) = stream.into_split();
                let mut line = String::new();
                let mut reader = BufReader::new(read.take(MAX_LINE as u64));
                if reader.read_line(&mut line).await.is_err() {
                    return;
                }
                let command = match serde_json::from_str::<Command>(line.trim()) {
                    Ok(command) => command,
                    Err(e) => {
                        let reply = Reply::error(format!("not a command the daemon knows: {e}"));
                        let _ = write_reply(&mut write, &reply).await;
                        return;
                    }
                };
                if command == Command::Events {
                    let mut feed = notify.subscribe();
                    loop {
                        let reply = match feed.recv().await {
                            Ok(event) => Reply::Event(event),
                            Err(broadcast::error::RecvError::Lagged(n)) => Reply::error(format!(
                                "{n} events were dropped: this client read too slowly"
                            )),
                            Err(broadcast::error::RecvError::Closed) => return,
                        };
                        if write_reply(&mut write, &reply).await.is_err() {
                            return;
                        }
                    }
                }
                let (reply, mut answer) = oneshot::channel();
                if let Command::Link {
                    task,
                    address,
                    expect,
                } = command
                {
                    // Replies before the last one (the code to show) are written as they come.
                    let (progress, mut shown) = tokio::sync::mpsc::unbounded_channel();
                    let link = Request::Link {
                        task,
                        address,
                        expect,
                        progress,
                        reply,
                    };
                    if !deliver(link) {
                        return;
                    }
                    loop {
                        tokio::select! {
                            Some(step) = shown.recv() => {
                                if write_reply(&mut write, &step).await.is_err() {
                                    return;
                                }
                            }
                            last = &mut answer => {
                                let last = last.unwrap_or_else(|_| Reply::error("the daemon stopped"));
                                let _ = write_reply(&mut write, &last).await;
                                return;
                            }
                        }
                    }
                }
                if !deliver(Request::Command(command, reply)) {
                    return;
                }
                let reply = answer
                    .await
                    .unwrap_or_else(|_| Reply::error("the daemon stopped"));
                let _ = write_reply(&mut write, &reply).await;
            });
        }
    });
    Ok(())
}

async fn write_reply(
    write: &mut tokio::net::unix::OwnedWriteHalf,
    reply: &Reply,
) -> std::io::Result<()> {
    let mut line = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await
}

async fn connect(state_dir: &Path, command: &Command) -> Result<UnixStream, EngineError> {
    let path = control_socket(state_dir);
    let mut stream = UnixStream::connect(&path)
        .await
        .map_err(|source| EngineError::NoDaemon {
            socket: path.clone(),
            source,
        })?;
    let mut line = serde_json::to_string(command)
        .map_err(|e| EngineError::State(format!("could not encode a command: {e}")))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|e| EngineError::io("talk to the daemon at", &path, e))?;
    Ok(stream)
}

fn parse_reply(line: &str, state_dir: &Path) -> Result<Reply, EngineError> {
    serde_json::from_str(line.trim()).map_err(|e| {
        EngineError::State(format!(
            "the daemon for {} answered something this qsync does not understand ({e}); is it another version?",
            state_dir.display()
        ))
    })
}

fn runtime(state_dir: &Path) -> Result<tokio::runtime::Runtime, EngineError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| EngineError::io("start a runtime for", &control_socket(state_dir), e))
}

/// Send one command to the daemon whose state is in `state_dir`; returns its reply (which
/// may be [`Reply::Error`]).
pub fn request(state_dir: &Path, command: &Command) -> Result<Reply, EngineError> {
    runtime(state_dir)?.block_on(async {
        let stream = connect(state_dir, command).await?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .await
            .map_err(|e| {
                EngineError::io("read the daemon's answer at", &control_socket(state_dir), e)
            })?;
        parse_reply(&line, state_dir)
    })
}

/// Send `command` and read its replies: `each` sees every one before the last (the code
/// of a [`Command::Link`]); the last is returned.
pub fn request_steps(
    state_dir: &Path,
    command: &Command,
    mut each: impl FnMut(&Reply),
) -> Result<Reply, EngineError> {
    runtime(state_dir)?.block_on(async {
        let stream = connect(state_dir, command).await?;
        let mut lines = BufReader::new(stream).lines();
        let path = control_socket(state_dir);
        loop {
            let line = lines
                .next_line()
                .await
                .map_err(|e| EngineError::io("read the daemon's answer at", &path, e))?
                .ok_or_else(|| EngineError::State("the daemon hung up without an answer".into()))?;
            let reply = parse_reply(&line, state_dir)?;
            if matches!(reply, Reply::LinkCode { .. }) {
                each(&reply);
            } else {
                return Ok(reply);
            }
        }
    })
}

/// Follow the daemon's events, calling `each` for every one until it returns `false` or
/// the daemon stops.
pub fn follow(state_dir: &Path, mut each: impl FnMut(Reply) -> bool) -> Result<(), EngineError> {
    runtime(state_dir)?.block_on(async {
        let stream = connect(state_dir, &Command::Events).await?;
        let mut lines = BufReader::new(stream).lines();
        let path = control_socket(state_dir);
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| EngineError::io("read the daemon's events at", &path, e))?
        {
            if !each(parse_reply(&line, state_dir)?) {
                break;
            }
        }
        Ok(())
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn id() -> impl Strategy<Value = [u8; 32]> {
        any::<[u8; 32]>()
    }

    proptest! {
        /// Every command survives the line protocol (one line of JSON), paths with spaces,
        /// newlines and any Unicode included.
        #[test]
        fn commands_survive_one_line(task in id(), device in id(), path in ".{0,40}", name in proptest::option::of(".{0,20}")) {
            let (task, device) = (TaskId::from_bytes(task), DeviceId::from_bytes(device));
            for command in [
                Command::TaskAdd { path: PathBuf::from(&path), name: name.clone() },
                Command::Unlink { task, device },
                Command::TaskSet { task, links_out: name.as_ref().map(|n| n.len() % 2 == 0) },
                Command::AppAdd { kind: "grapin".into(), name: path.clone(), folder: path.clone().into(), app_dir: None, config: "{\"a\": 1}\n".into() },
            ] {
                let line = serde_json::to_string(&command).unwrap();
                prop_assert!(!line.contains('\n'));
                prop_assert_eq!(serde_json::from_str::<Command>(&line).unwrap(), command);
            }
        }
    }

    #[test]
    fn text_from_the_network_cannot_drive_the_terminal() {
        let event = DaemonEvent::Question {
            flag: "CHOOSELINKPATH".into(),
            context: "evil\u{1b}[2J\nconnected aaaa".into(),
        };
        let shown = event.to_string();
        assert!(
            !shown.contains('\u{1b}') && !shown.contains('\n'),
            "{shown}"
        );
    }

    #[test]
    fn status_shows_transfers_under_way_and_reads_older_replies_without_them() {
        let device = DeviceId::from_bytes([3; 32]);
        let task = TaskId::from_bytes([4; 32]);
        let mut status = Status {
            device,
            tasks: 1,
            connected: 1,
            updates: 0,
            pending: 0,
            deltas: 0,
            sent: 0,
            received: 0,
            wire_sent: 0,
            wire_received: 0,
            unsupported: 0,
            not_synced: Vec::new(),
            ignore_problems: Vec::new(),
            scans: Vec::new(),
            distrusted: Vec::new(),
            transfers: vec![TransferInfo {
                device,
                task,
                path: RelPath::new("films/a\u{1b}[2J.mkv").unwrap(),
                done: 600,
                size: 1000,
                patch: false,
                rate: 300,
            }],
        };
        let shown = Reply::Status(status.clone()).to_string();
        let line = shown.lines().last().unwrap();
        assert!(
            line.starts_with(&format!("receiving {task} films/a")),
            "{line}"
        );
        assert!(
            line.ends_with(&format!("from {device} 600 of 1000 bytes 300 B/s")),
            "{line}"
        );
        assert!(!shown.contains('\u{1b}'), "{shown}");
        // A reply of an older daemon, without transfers, still reads.
        status.transfers.clear();
        let mut json = serde_json::to_value(Reply::Status(status.clone())).unwrap();
        json.as_object_mut().unwrap().remove("transfers");
        let read: Reply = serde_json::from_value(json).unwrap();
        assert_eq!(read, Reply::Status(status));
    }

    #[test]
    fn the_human_form_of_a_failure_says_error() {
        assert_eq!(
            Reply::error("no such task").to_string(),
            "error: no such task"
        );
        let line = serde_json::to_string(&Reply::error("x")).unwrap();
        assert_eq!(line, r#"{"reply":"error","message":"x"}"#);
    }
}
