//! The daemon's answers to the control socket's commands (tasks, links, apps, status):
//! what each [`Command`] does to the engine's state, and its [`Reply`].

use std::fs;
use std::path::{Path, PathBuf};

use qsync_base::{DeviceId, EntryKind, TaskId};
use qsync_store::AppRecord;
use qsync_wire::Message;
use tokio::sync::oneshot;

use super::views::app_info;
use super::{Engine, Event};
use crate::control::{AppInfo, Command, Reply, TaskInfo};
use crate::{net, EngineError};

impl Engine {
    /// Carry out a command of the control socket: its answer, with the sender to answer
    /// on (none when the answer comes later: a task added is answered once walked).
    pub(super) fn control(
        &mut self,
        command: Command,
        reply: oneshot::Sender<Reply>,
    ) -> Option<(Reply, oneshot::Sender<Reply>)> {
        let answer = match command {
            Command::Id => Ok(Reply::Id { device: self.me }),
            Command::TaskAdd { path, name } => {
                match self.task_add(&path, name.as_deref().unwrap_or("")) {
                    Ok((task, name, root)) => {
                        let added = Reply::TaskAdded(TaskInfo {
                            task,
                            name,
                            root,
                            devices: 0,
                        });
                        // Answered once the folder is walked whole (the daemon answers
                        // other commands meanwhile; `status` shows the walk's progress).
                        if let Some(state) = self.tasks.get_mut(&task) {
                            state.added.push((added, reply));
                            return None;
                        }
                        Ok(added)
                    }
                    Err(e) => Err(e),
                }
            }
            Command::TaskRemove { task } => {
                self.task_remove(task).map(|()| Reply::TaskRemoved { task })
            }
            Command::TaskSet { task, links_out } => self.task_set(task, links_out),
            command @ (Command::AppAdd { .. }
            | Command::AppList
            | Command::AppGet { .. }
            | Command::AppRemove { .. }) => self.app_command(command),
            Command::TaskList => self.overview().task_list(),
            Command::Devices => self.overview().device_list(),
            Command::Status => self.overview().status().map(Reply::Status),
            Command::Link {
                task,
                address,
                expect,
            } => {
                // The control socket sends links as `Request::Link`, with a progress channel
                // for the code; without it nobody could see the code.
                let _ = (task, address, expect);
                Err(EngineError::State(
                    "a link shows a code while it runs: ask for it through the control socket's link flow".into(),
                ))
            }
            Command::Forget { device } => self.forget(device).map(|tasks| Reply::Forgotten {
                device,
                tasks: tasks.len(),
            }),
            Command::Pending { device } => self
                .overview()
                .pending(Some(device))
                .map(|count| Reply::Pending { device, count }),
            Command::Unlink { task, device } => {
                self.send(device, task, Message::Unlink);
                self.unlink(task, device)
                    .map(|()| Reply::Unlinked { task, device })
            }
            // The control socket streams events itself; it never sends this here.
            Command::Events => Err(EngineError::State(
                "events are streamed by the control socket".into(),
            )),
        };
        Some((answer.unwrap_or_else(Reply::error), reply))
    }

    /// The commands about tout-en-un apps and grapins.
    fn app_command(&mut self, command: Command) -> Result<Reply, EngineError> {
        match command {
            Command::AppAdd {
                kind,
                name,
                folder,
                app_dir,
                config,
            } => self
                .app_add(&kind, &name, &folder, app_dir, config)
                .map(Reply::App),
            Command::AppList => self.overview().apps(),
            Command::AppGet { name } => self.overview().app(&name),
            Command::AppRemove { name } => self.app_remove(&name).map(Reply::App),
            _ => Err(EngineError::State("not a command about apps".into())),
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

    /// Stop syncing `task` with `device` here (asked by the person, or by the device): the
    /// link leaves the store, the core stops the stream at once, and the connection closes
    /// when no task is left in common.
    pub(super) fn unlink(&mut self, task: TaskId, device: DeviceId) -> Result<(), EngineError> {
        if let Some(t) = self.tasks.get_mut(&task) {
            t.links.remove(&device);
        }
        let removed = self.store.remove_link(task, device);
        self.feed(qsync_core::Input::Unlink { task, peer: device });
        removed?;
        let in_common = self.tasks.iter().any(|(_, t)| t.links.contains(&device));
        if !in_common && self.peers.close(device) {
            tracing::info!(%device, "closed the connection: no task left in common");
            self.disconnected(device);
        }
        Ok(())
    }

    /// Forget `device`: unlink it from every task, on both sides where it is connected,
    /// and drop its record. Returns the tasks it was linked to.
    pub(super) fn forget(&mut self, device: DeviceId) -> Result<Vec<TaskId>, EngineError> {
        if self.store.device(device)?.is_none() {
            return Err(EngineError::State(format!(
                "{device} is not a device linked with this one (see `qsync devices`)"
            )));
        }
        let tasks = self.store.forget_device(device)?;
        for task in &tasks {
            self.send(device, *task, Message::Unlink);
            if let Some(t) = self.tasks.get_mut(task) {
                t.links.remove(&device);
            }
        }
        let was_connected = self.peers.forget(device);
        // Its requests waiting here go too.
        self.links.drop_device(device, "the device was forgotten");
        if was_connected {
            self.disconnected(device);
        }
        Ok(tasks)
    }

    /// Stop syncing `task` here: unlink its devices and forget it (its folder is untouched).
    pub(super) fn task_remove(&mut self, task: TaskId) -> Result<(), EngineError> {
        let links = self.store.linked_devices(task)?;
        for device in &links {
            self.send(*device, task, Message::Unlink);
        }
        for device in links {
            self.feed(qsync_core::Input::Unlink { task, peer: device });
        }
        self.tasks.remove(&task); // drops its watcher
        self.sync.remove_folder(&task);
        self.store.remove_task(task)?;
        Ok(())
    }

    /// Record an installed app and create the sync task of its data folder.
    pub(super) fn app_add(
        &mut self,
        kind: &str,
        name: &str,
        folder: &Path,
        app_dir: Option<PathBuf>,
        config: String,
    ) -> Result<AppInfo, EngineError> {
        if kind != "grapin" && kind != "tout-en-un" {
            return Err(EngineError::State(format!(
                "`{kind}` is not an app kind (grapin or tout-en-un)"
            )));
        }
        if self.store.app(name)?.is_some() {
            return Err(EngineError::State(format!(
                "an app named {name} is already installed"
            )));
        }
        let (task, _, root) = self.task_add(folder, name)?;
        let installed_at = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let record = AppRecord {
            name: name.to_owned(),
            kind: kind.to_owned(),
            task: Some(task),
            data_folder: root,
            app_dir,
            config,
            installed_at,
        };
        if let Err(e) = self.store.add_app(&record) {
            let _ = self.task_remove(task);
            return Err(e.into());
        }
        Ok(app_info(&record))
    }

    /// Forget an installed app and remove its sync task (never its files).
    pub(super) fn app_remove(&mut self, name: &str) -> Result<AppInfo, EngineError> {
        let Some(app) = self.store.app(name)? else {
            return Err(EngineError::State(format!(
                "no app named {name} is installed"
            )));
        };
        if let Some(task) = app.task {
            if self.tasks.contains(&task) {
                self.task_remove(task)?;
            }
        }
        self.store.remove_app(name)?;
        Ok(app_info(&app))
    }

    /// Set a task's options here (see [`Command::TaskSet`]); a symlink refused before is
    /// made at the core's next try of it (within 16 s).
    fn task_set(&mut self, task: TaskId, links_out: Option<bool>) -> Result<Reply, EngineError> {
        let mut options = self.store.task_options(task)?;
        if let Some(links_out) = links_out {
            options.links_out = links_out;
        }
        self.store.set_task_options(task, options)?;
        if let Some(folder) = self.sync.folder_mut(&task) {
            folder.links_out = options.links_out;
        }
        tracing::info!(%task, links_out = options.links_out, "task options set");
        Ok(Reply::TaskOptions {
            task,
            links_out: options.links_out,
        })
    }

    pub(super) fn task_add(
        &mut self,
        path: &Path,
        name: &str,
    ) -> Result<(TaskId, String, PathBuf), EngineError> {
        let root = fs::canonicalize(path).map_err(|e| EngineError::io("find", path, e))?;
        if !root.is_dir() {
            return Err(EngineError::State(format!(
                "{} is not a folder",
                root.display()
            )));
        }
        // The same rules as for a linked folder: never `/` nor the home folder itself, never
        // in or around QSync's own folders (a peer could otherwise overwrite the state
        // database), never overlapping another task. Grapins come through here too.
        let folders = self.folders();
        folders.task_folder(&root).map_err(EngineError::State)?;
        folders.refuse_overlap(&root)?;
        let name = if name.is_empty() {
            root.file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "task".into())
        } else {
            name.to_owned()
        };
        let task = TaskId::random();
        self.store.add_task(task, &root, &name)?;
        // The first scan records every path as a change of this device (and keeps a copy
        // of each file, the base of the patches of its next versions).
        self.start_task(task, root.clone())?;
        Ok((task, name, root))
    }
}
