//! The control socket: where it is, the daemon's side ([`serve`]: one task per client,
//! each command handed over as a [`Request`]), and the clients' side ([`request`],
//! [`request_steps`], [`follow`]).

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use qsync_base::TaskId;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{broadcast, oneshot};

use super::{Command, Reply};
use crate::{ControlError, EventFeed};

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

/// Where the socket of the state folder holding `path` goes in `$XDG_RUNTIME_DIR`, if it
/// is set (an absolute folder): `qsync/<16 hex digits of the state folder's hash>/`,
/// made 0700. `None`: no runtime folder, or it cannot be used.
fn runtime_place(path: &Path) -> Option<PathBuf> {
    use std::os::unix::fs::DirBuilderExt;
    let runtime = PathBuf::from(std::env::var_os("XDG_RUNTIME_DIR")?);
    if !runtime.is_absolute() || !runtime.is_dir() {
        return None;
    }
    let state = std::fs::canonicalize(path.parent()?).ok()?;
    let hash = qsync_base::ContentHash::of(state.as_os_str().as_encoded_bytes()).to_hex();
    let folder = runtime.join("qsync").join(&hash[..16]);
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&folder)
        .ok()?;
    // Ours alone: a folder made by someone else (another user's runtime folder is not
    // writable by us, but check) is not used.
    let meta = std::fs::symlink_metadata(&folder).ok()?;
    use std::os::unix::fs::MetadataExt;
    (meta.is_dir() && meta.mode() & 0o077 == 0).then(|| folder.join("control.sock"))
}

/// What a client is told when nobody serves commands any more.
const STOPPED: &str = "the daemon stopped";

/// Whether `line` is an event reply (of a kind this client may not know).
pub(super) fn is_event(line: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(line).is_ok_and(|v| v["reply"] == "event")
}

/// Serve the control socket at `path` (created 0600). Each command is handed to `deliver`
/// as a [`Request`] (`false`: nobody serves commands any more, and the client is told the
/// daemon stopped); [`Command::Events`] follows `feed`.
pub fn serve<D>(
    runtime: &tokio::runtime::Runtime,
    path: PathBuf,
    deliver: D,
    feed: EventFeed,
) -> Result<(), ControlError>
where
    D: Fn(Request) -> bool + Clone + Send + Sync + 'static,
{
    let _ = std::fs::remove_file(&path);
    // In the session's runtime folder when there is one (a tmpfs, emptied at logout),
    // found from the state folder by a link there; else in the state folder itself.
    let socket = match runtime_place(&path) {
        Some(socket) => {
            let _ = std::fs::remove_file(&socket);
            std::os::unix::fs::symlink(&socket, &path)
                .map_err(|e| ControlError::io("link the control socket at", &path, e))?;
            socket
        }
        None => path.clone(),
    };
    let listener = {
        let _guard = runtime.enter();
        UnixListener::bind(&socket)
            .map_err(|e| ControlError::io("create the control socket", &socket, e))?
    };
    std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| ControlError::io("restrict", &socket, e))?;
    runtime.spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(client(stream, deliver.clone(), feed.clone()));
        }
    });
    Ok(())
}

/// One client: its command read (one line), handed to `deliver`, answered.
async fn client<D>(stream: UnixStream, deliver: D, feed: EventFeed)
where
    D: Fn(Request) -> bool,
{
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
    match command {
        Command::Events => events(&mut write, feed.subscribe(None).live).await,
        Command::Link {
            task,
            address,
            expect,
        } => link(&mut write, &deliver, task, address, expect).await,
        command => {
            let (reply, answer) = oneshot::channel();
            if !deliver(Request::Command(command, reply)) {
                let _ = write_reply(&mut write, &Reply::error(STOPPED)).await;
                return;
            }
            let reply = answer.await.unwrap_or_else(|_| Reply::error(STOPPED));
            let _ = write_reply(&mut write, &reply).await;
        }
    }
}

/// [`Command::Events`]: what happens, one reply per line, until the client goes.
async fn events(
    write: &mut OwnedWriteHalf,
    mut feed: broadcast::Receiver<std::sync::Arc<crate::Numbered>>,
) {
    loop {
        let reply = match feed.recv().await {
            Ok(numbered) => Reply::Event(numbered.event.clone()),
            Err(broadcast::error::RecvError::Lagged(n)) => Reply::error(format!(
                "{n} events were dropped: this client read too slowly"
            )),
            Err(broadcast::error::RecvError::Closed) => return,
        };
        if write_reply(write, &reply).await.is_err() {
            return;
        }
    }
}

/// [`Command::Link`]: the replies before the last one (the code to show) are written as
/// they come, then the last one.
async fn link(
    write: &mut OwnedWriteHalf,
    deliver: &impl Fn(Request) -> bool,
    task: TaskId,
    address: String,
    expect: Option<String>,
) {
    let (reply, mut answer) = oneshot::channel();
    let (progress, mut shown) = tokio::sync::mpsc::unbounded_channel();
    let link = Request::Link {
        task,
        address,
        expect,
        progress,
        reply,
    };
    if !deliver(link) {
        let _ = write_reply(write, &Reply::error(STOPPED)).await;
        return;
    }
    loop {
        tokio::select! {
            Some(step) = shown.recv() => {
                if write_reply(write, &step).await.is_err() {
                    return;
                }
            }
            last = &mut answer => {
                let last = last.unwrap_or_else(|_| Reply::error(STOPPED));
                let _ = write_reply(write, &last).await;
                return;
            }
        }
    }
}

async fn write_reply(write: &mut OwnedWriteHalf, reply: &Reply) -> std::io::Result<()> {
    let mut line = serde_json::to_string(reply).map_err(std::io::Error::other)?;
    line.push('\n');
    write.write_all(line.as_bytes()).await
}

async fn connect(state_dir: &Path, command: &Command) -> Result<UnixStream, ControlError> {
    let path = control_socket(state_dir);
    let mut stream = UnixStream::connect(&path)
        .await
        .map_err(|source| ControlError::NoDaemon {
            socket: path.clone(),
            source,
        })?;
    let mut line = serde_json::to_string(command)
        .map_err(|e| ControlError::Protocol(format!("could not encode a command: {e}")))?;
    line.push('\n');
    stream
        .write_all(line.as_bytes())
        .await
        .map_err(|e| ControlError::io("talk to the daemon at", &path, e))?;
    Ok(stream)
}

fn parse_reply(line: &str, state_dir: &Path) -> Result<Reply, ControlError> {
    serde_json::from_str(line.trim()).map_err(|e| {
        ControlError::Protocol(format!(
            "the daemon for {} answered something this qsync does not understand ({e}); is it another version?",
            state_dir.display()
        ))
    })
}

fn runtime(state_dir: &Path) -> Result<tokio::runtime::Runtime, ControlError> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| ControlError::io("start a runtime for", &control_socket(state_dir), e))
}

/// Send one command to the daemon whose state is in `state_dir`; returns its reply (which
/// may be [`Reply::Error`]).
pub fn request(state_dir: &Path, command: &Command) -> Result<Reply, ControlError> {
    runtime(state_dir)?.block_on(async {
        let stream = connect(state_dir, command).await?;
        let mut line = String::new();
        BufReader::new(stream)
            .read_line(&mut line)
            .await
            .map_err(|e| {
                ControlError::io("read the daemon's answer at", &control_socket(state_dir), e)
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
) -> Result<Reply, ControlError> {
    runtime(state_dir)?.block_on(async {
        let stream = connect(state_dir, command).await?;
        let mut lines = BufReader::new(stream).lines();
        let path = control_socket(state_dir);
        loop {
            let line = lines
                .next_line()
                .await
                .map_err(|e| ControlError::io("read the daemon's answer at", &path, e))?
                .ok_or_else(|| {
                    ControlError::Protocol("the daemon hung up without an answer".into())
                })?;
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
pub fn follow(state_dir: &Path, mut each: impl FnMut(Reply) -> bool) -> Result<(), ControlError> {
    runtime(state_dir)?.block_on(async {
        let stream = connect(state_dir, &Command::Events).await?;
        let mut lines = BufReader::new(stream).lines();
        let path = control_socket(state_dir);
        while let Some(line) = lines
            .next_line()
            .await
            .map_err(|e| ControlError::io("read the daemon's events at", &path, e))?
        {
            // An event of a newer daemon that this client does not know is skipped: the
            // stream goes on (new kinds of events never break older front ends).
            let reply = match parse_reply(&line, state_dir) {
                Ok(reply) => reply,
                Err(_) if is_event(&line) => continue,
                Err(e) => return Err(e),
            };
            if !each(reply) {
                break;
            }
        }
        Ok(())
    })
}
