//! The daemon's answers to the control socket's commands (tasks, links, apps, status):
//! what each [`Command`] does to the engine's state, and its [`Reply`].

use qsync_base::{EntryKind, TaskId};
use tokio::sync::oneshot;

use super::{Engine, Event};
use crate::control::{Command, Reply, TaskInfo};
use crate::{net, EngineError};

/// The task a command changes, if any: front ends showing tasks hear of changes made
/// through any of them.
fn touched(command: &Command) -> Option<TaskId> {
    match command {
        Command::TaskRemove { task }
        | Command::TaskSet { task, .. }
        | Command::Unlink { task, .. }
        | Command::Revert { task } => Some(*task),
        _ => None,
    }
}

impl Engine {
    /// Carry out a command of the control socket: its answer, with the sender to answer
    /// on (none when the answer comes later: a task added is answered once walked).
    pub(super) fn control(
        &mut self,
        command: Command,
        reply: oneshot::Sender<Reply>,
    ) -> Option<(Reply, oneshot::Sender<Reply>)> {
        let touched = touched(&command);
        let answer = match command {
            Command::TaskAdd {
                path,
                name,
                folder_type,
            } => {
                let answered = self.task_add(&path, (name, folder_type), reply);
                return answered
                    .map(|(answer, reply)| (answer.unwrap_or_else(Reply::error), reply));
            }
            command @ (Command::TaskRemove { .. }
            | Command::TaskSet { .. }
            | Command::Revert { .. }
            | Command::RevertPreview { .. }
            | Command::DeviceAddress { .. }
            | Command::DevicePause { .. }
            | Command::Forget { .. }
            | Command::Unlink { .. }
            | Command::AppAdd { .. }
            | Command::AppRemove { .. }) => self.change(|c| c.command(command)),
            command @ (Command::Versions { .. }
            | Command::Restore { .. }
            | Command::Conflicts { .. }
            | Command::Resolve { .. }) => self.safety_command(command),
            command @ (Command::Id
            | Command::TaskList
            | Command::Devices
            | Command::Status
            | Command::OutOfSync { .. }
            | Command::Pending { .. }
            | Command::Discovered
            | Command::AppList
            | Command::AppGet { .. }) => self.overview().read(command),
            // Streams, which the control socket carries itself (a link shows its code
            // while it runs, through `Request::Link`): never sent here.
            Command::Link { .. } | Command::Events => Err(EngineError::State(
                "links and events are streams: ask for them through the control socket".into(),
            )),
            Command::Questions => self.links.questions(),
            Command::Answer { id, text } => self.links.answer(id, &text),
            Command::Configure { rescan_every } => Ok(self.tasks.configure(rescan_every)),
            Command::Shutdown => {
                tracing::info!("stopping: a front end asked for it");
                self.stopping = true;
                Ok(Reply::ShuttingDown)
            }
        };
        if let (Some(task), Ok(_)) = (touched, &answer) {
            self.tell(crate::control::DaemonEvent::TaskChanged { task });
        }
        Some((answer.unwrap_or_else(Reply::error), reply))
    }

    /// Add the task of the folder at `path`: answered at once if that failed, otherwise
    /// once the folder is walked whole (`None`: `reply` waits with the task; the daemon
    /// answers other commands meanwhile, and `status` shows the walk's progress).
    fn task_add(
        &mut self,
        path: &std::path::Path,
        (name, folder_type): (Option<String>, Option<crate::control::FolderType>),
        reply: oneshot::Sender<Reply>,
    ) -> Option<(Result<Reply, EngineError>, oneshot::Sender<Reply>)> {
        let name = name.as_deref().unwrap_or("");
        match self.change(|c| c.task_add(path, name, folder_type.map(super::terms::folder_type_in)))
        {
            Ok((task, name, root)) => {
                self.tell(crate::control::DaemonEvent::TaskChanged { task });
                let added = Reply::TaskAdded(TaskInfo {
                    task,
                    name,
                    root,
                    devices: 0,
                    paused: false,
                });
                match self.tasks.get_mut(&task) {
                    Some(state) => {
                        state.added.push((added, reply));
                        None
                    }
                    None => Some((Ok(added), reply)),
                }
            }
            Err(e) => Some((Err(e), reply)),
        }
    }

    /// The commands of the safety nets that read or put back what is kept: versions and
    /// conflicts.
    fn safety_command(&mut self, command: Command) -> Result<Reply, EngineError> {
        match command {
            Command::Versions { path, newest } => self.shelving().list(path.as_deref(), newest),
            Command::Conflicts { path } => self.settling().list(path.as_deref()),
            Command::Resolve { path, keep } => self.settling().resolve(&path, keep),
            Command::Restore {
                path,
                version,
                at,
                to,
            } => self.shelving().restore(&path, (version, at), to.as_deref()),
            _ => Err(EngineError::State(
                "not a command about versions or conflicts".into(),
            )),
        }
    }

    /// Link `task` with the device at `address` (`HOST:PORT`, a name or an address): the
    /// pairing runs on the network runtime; `progress` hears the code to show, and the
    /// outcome comes back as `Event::Paired`.
    pub(super) fn start_link(
        &mut self,
        task: TaskId,
        address: String,
        expect: Option<String>,
        progress: tokio::sync::mpsc::UnboundedSender<Reply>,
        reply: oneshot::Sender<Reply>,
    ) {
        let Some(folder) = self.sync.folder(&task) else {
            let _ = reply.send(Reply::error(format!("no task {task} here")));
            return;
        };
        let folder_name = folder
            .root
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let (files, bytes) = folder
            .index
            .entries()
            .filter(|e| e.kind != EntryKind::Folder)
            .fold((0u64, 0u64), |(n, b), e| (n + 1, b + e.size));
        let plan = net::LinkPlan {
            task,
            folder_name,
            files,
            bytes,
            expect,
        };
        let events = self.events.clone();
        self.peers.pair(address, plan, progress, move |result| {
            let _ = events.send(Event::Paired(task, result, reply));
        });
    }
}
