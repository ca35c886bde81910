//! What commands and link flows change across the daemon's parts: tasks added, set and
//! removed (their records, folders, watchers and walks), links made and undone, devices
//! forgotten, apps installed and removed. A [`Changes`] borrows exactly the parts these
//! touch; what the sync core must hear is fed to the driver, and the engine carries out
//! what the driver then reports.

use std::collections::HashSet;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use qsync_base::{DeviceId, TaskId};
use qsync_store::{AppRecord, FolderType as StoreType, Store};
use qsync_watch::{Filter, Index};
use qsync_wire::Message;

use super::folders::Folders;
use super::links::Links;
use super::peers::Peers;
use super::tasks::Tasks;
use super::views::app_info;
use super::{DaemonConfig, Surroundings};
use crate::control::{AppInfo, Command, FolderType, Reply};
use crate::net::LinkRequest;
use crate::sync::{SyncDriver, TaskFolder};
use crate::EngineError;

/// The parts a change touches (see the [module documentation](self)).
pub(super) struct Changes<'a> {
    pub(super) me: DeviceId,
    pub(super) config: &'a DaemonConfig,
    pub(super) store: &'a mut Store,
    pub(super) tasks: &'a mut Tasks,
    pub(super) sync: &'a mut SyncDriver,
    pub(super) peers: &'a mut Peers,
    pub(super) links: &'a mut Links,
    /// The connections this change closed (the engine tells `qsync events`).
    pub(super) closed: Vec<DeviceId>,
}

impl Changes<'_> {
    /// Hand the core one fact (the engine carries out what the driver reports after).
    fn feed(&mut self, input: qsync_core::Input) {
        let mut around = Surroundings {
            store: self.store,
            peers: self.peers,
        };
        self.sync.feed(&mut around, input);
    }

    /// The connection with `device` was closed here: recorded, and the driver told.
    fn disconnected(&mut self, device: DeviceId) {
        let _ = self.store.set_connected(device, false, None);
        self.closed.push(device);
        let mut around = Surroundings {
            store: self.store,
            peers: self.peers,
        };
        self.sync.disconnected(&mut around, device);
    }

    /// Carry out a command of a front end that changes the daemon's state: tasks removed
    /// or set, versions of a task put back, devices moved, paused, unlinked or forgotten,
    /// apps added or removed (tasks are added by the engine: their answer waits for the
    /// walk).
    pub(super) fn command(&mut self, command: Command) -> Result<Reply, EngineError> {
        match command {
            Command::TaskRemove { task } => {
                self.task_remove(task).map(|()| Reply::TaskRemoved { task })
            }
            Command::TaskSet {
                task,
                links_out,
                versions,
                paused,
                folder_type,
            } => {
                let versions = versions.map(super::terms::policy_in);
                self.task_set(task, (links_out, paused, folder_type), versions)
            }
            Command::Revert { task } => self.revert(task, false),
            Command::RevertPreview { task } => self.revert(task, true),
            Command::DeviceAddress { device, address } => self.device_address(device, &address),
            Command::DevicePause { device, paused } => self.device_pause(device, paused),
            Command::Forget { device } => self.forget(device).map(|tasks| Reply::Forgotten {
                device,
                tasks: tasks.len(),
            }),
            Command::Unlink { task, device } => {
                // The device hears it first, while the connection is still there.
                self.peers.send(device, task, Message::Unlink);
                self.unlink(task, device)
                    .map(|()| Reply::Unlinked { task, device })
            }
            Command::AppAdd {
                kind,
                name,
                folder,
                app_dir,
                config,
            } => self
                .app_add(&kind, &name, &folder, app_dir, config)
                .map(Reply::App),
            Command::AppRemove { name } => self.app_remove(&name).map(Reply::App),
            other => Err(EngineError::State(format!(
                "{other:?} is not a command that changes the daemon's state"
            ))),
        }
    }

    pub(super) fn load(&mut self) -> Result<(), EngineError> {
        for device in self.store.devices()? {
            let addr = device.last_address.as_deref().and_then(|a| a.parse().ok());
            self.peers.link(device.id, addr);
            self.peers.pause(device.id, device.paused);
            self.store.set_connected(device.id, false, None)?;
        }
        for task in self.store.tasks()? {
            self.start_task(task.id, task.root)?;
        }
        Ok(())
    }

    /// Start watching a task and fold in what changed while the daemon was not running.
    fn start_task(&mut self, task: TaskId, root: PathBuf) -> Result<(), EngineError> {
        fs::create_dir_all(&root).map_err(|e| EngineError::io("create", &root, e))?;
        // Transfers cut short by a crash leave only temporary files: remove them.
        let stale = crate::driver::root::TaskRoot::open(&root)
            .map(|r| r.remove_stale(crate::driver::place::PART_PREFIX))
            .unwrap_or(0);
        if stale > 0 {
            tracing::info!(%task, count = stale, "removed unfinished transfers");
        }
        let mut index = Index::new(super::known(self.store, self.me, task)?);
        // Every content recorded for the task, ignored paths' too (see `held.rs`), but
        // those too small to keep a copy of (never a base: see `Keeping::version`).
        let held: Vec<_> = index
            .entries()
            .filter(|e| e.size >= crate::keeper::MIN_BASE)
            .filter_map(|e| e.hash)
            .collect();
        // Paths `.qsyncignore` excludes now (a pattern added while the daemon was stopped)
        // stop syncing; the scan below must not take their absence for deletions.
        let filter = Filter::for_root(&root)?;
        let ignored = index.forget_where(|path, is_folder| !filter.includes(path, is_folder));
        if !ignored.is_empty() {
            tracing::info!(%task, count = ignored.len(), "paths now ignored stop syncing; nothing is deleted anywhere");
        }
        let links: HashSet<DeviceId> = self.store.linked_devices(task)?.into_iter().collect();
        let options = self.store.task_options(task)?;
        // What changed while the daemon was not running: the whole folder is walked.
        let walk = qsync_watch::WalkPlan::new(&index, None, filter);
        self.tasks.start(task, &root, links, walk)?;
        let mut folder = TaskFolder::new(root, index, held, options.links_out);
        folder.send_only = options.folder_type == StoreType::SendOnly;
        let policy = self.store.versions().policy(task)?;
        folder.versions_cap = (policy.keep != qsync_store::Keep::Off).then(|| policy.cap_bytes());
        if folder.versions_cap.is_some() {
            self.sync.staging().shelf().ready(&task);
        }
        self.sync.add_folder(task, folder);
        if options.paused {
            // Said before any connection: the core remembers no pause across starts.
            self.feed(qsync_core::Input::Pause { task, paused: true });
        }
        if options.folder_type == StoreType::ReceiveOnly {
            // Said before the first walk reports what its person changed (drift).
            self.feed(qsync_core::Input::ReceiveOnly { task, on: true });
        }
        Ok(())
    }

    pub(super) fn linked(
        &mut self,
        task: TaskId,
        device: DeviceId,
        name: &str,
        addr: SocketAddr,
    ) -> Result<(), EngineError> {
        self.store.add_link(task, device, name)?;
        self.store
            .set_connected(device, false, Some(&addr.to_string()))?;
        self.peers.link(device, Some(addr));
        if let Some(state) = self.tasks.get_mut(&task) {
            state.links.insert(device);
        }
        Ok(())
    }

    pub(super) fn task_add(
        &mut self,
        path: &Path,
        name: &str,
        folder_type: Option<StoreType>,
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
        let folders = Folders::new(self.config, self.sync);
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
        if let Some(folder_type) = folder_type {
            // Chosen before the first scan, which records (or, receive-only, does not).
            let mut options = self.store.task_options(task)?;
            options.folder_type = folder_type;
            self.store.set_task_options(task, options)?;
        }
        // The first scan records every path as a change of this device (and keeps a copy
        // of each file, the base of the patches of its next versions).
        self.start_task(task, root.clone())?;
        Ok((task, name, root))
    }

    /// Stop syncing `task` here: unlink its devices and forget it (its folder is untouched).
    pub(super) fn task_remove(&mut self, task: TaskId) -> Result<(), EngineError> {
        let links = self.store.linked_devices(task)?;
        for device in &links {
            self.peers.send(*device, task, Message::Unlink);
        }
        for device in links {
            self.feed(qsync_core::Input::Unlink { task, peer: device });
        }
        // A paused task is resumed as it goes (nothing of its peers is held any more): the
        // same task linked again later starts unpaused.
        self.feed(qsync_core::Input::Pause {
            task,
            paused: false,
        });
        self.tasks.remove(&task); // drops its watcher
        self.sync.remove_folder(&task);
        self.store.remove_task(task)?;
        // Nor is it receive-only any more (said once the task is gone: its drift, which the
        // core would otherwise record, is dropped with it).
        self.feed(qsync_core::Input::ReceiveOnly { task, on: false });
        // Its versions' rows went with it: their bytes go too.
        self.sync.staging().shelf().forget(&task);
        Ok(())
    }

    /// Reach `device` (linked) at `address` from now on: kept, and dialled now unless it
    /// is connected. A name is resolved once, here.
    pub(super) fn device_address(
        &mut self,
        device: DeviceId,
        address: &str,
    ) -> Result<Reply, EngineError> {
        use std::net::ToSocketAddrs;
        if self.store.device(device)?.is_none() {
            return Err(EngineError::State(format!(
                "{device} is not a linked device"
            )));
        }
        let addr = address
            .to_socket_addrs()
            .ok()
            .and_then(|mut addrs| addrs.next())
            .ok_or_else(|| {
                EngineError::State(format!(
                    "{address} is not a HOST:PORT this device can reach"
                ))
            })?;
        let connected = self.peers.is_connected(&device);
        self.store
            .set_connected(device, connected, Some(&addr.to_string()))?;
        self.peers.link(device, Some(addr));
        self.peers.dial(device);
        tracing::info!(%device, %addr, "address set by the person");
        Ok(Reply::DeviceAddressSet {
            device,
            address: addr.to_string(),
        })
    }

    /// Pause `device` (its connection closed, none made until resumed: it keeps what
    /// changed here and there until then), or resume it (dialled now).
    pub(super) fn device_pause(
        &mut self,
        device: DeviceId,
        paused: bool,
    ) -> Result<Reply, EngineError> {
        self.store.set_device_paused(device, paused)?;
        if self.peers.pause(device, paused) {
            let _ = self.store.set_connected(device, false, None);
            self.disconnected(device);
        }
        if !paused {
            self.peers.dial(device);
        }
        tracing::info!(%device, paused, "device paused or resumed");
        Ok(Reply::DevicePaused { device, paused })
    }

    /// Set a task's options here (see [`Command::TaskSet`]); a symlink refused before is
    /// made at the core's next try of it (within 16 s).
    pub(super) fn task_set(
        &mut self,
        task: TaskId,
        (links_out, paused, folder_type): (Option<bool>, Option<bool>, Option<FolderType>),
        versions: Option<qsync_store::VersionPolicy>,
    ) -> Result<Reply, EngineError> {
        let mut options = self.store.task_options(task)?;
        if let Some(links_out) = links_out {
            options.links_out = links_out;
        }
        let was = options.folder_type;
        if let Some(folder_type) = folder_type {
            options.folder_type = super::terms::folder_type_in(folder_type);
        }
        let now = options.folder_type;
        let pause = paused.filter(|p| *p != options.paused);
        if let Some(paused) = paused {
            options.paused = paused;
        }
        self.store.set_task_options(task, options)?;
        if let Some(paused) = pause {
            tracing::info!(%task, paused, "task paused or resumed");
            self.feed(qsync_core::Input::Pause { task, paused });
        }
        if let Some(folder) = self.sync.folder_mut(&task) {
            folder.send_only = now == StoreType::SendOnly;
        }
        if was == StoreType::SendOnly && now != StoreType::SendOnly {
            // What other devices sent meanwhile, kept without taking it, is decided again.
            self.feed(qsync_core::Input::RulesChanged { task });
        }
        if (was == StoreType::ReceiveOnly) != (now == StoreType::ReceiveOnly) {
            // Turned off, what its person changed meanwhile is recorded and sent now.
            let on = now == StoreType::ReceiveOnly;
            self.feed(qsync_core::Input::ReceiveOnly { task, on });
        }
        if let Some(policy) = versions {
            self.store.versions().set_policy(task, policy)?;
        }
        let policy = self.store.versions().policy(task)?;
        if let Some(folder) = self.sync.folder_mut(&task) {
            folder.links_out = options.links_out;
            folder.versions_cap =
                (policy.keep != qsync_store::Keep::Off).then(|| policy.cap_bytes());
            if folder.versions_cap.is_some() {
                self.sync.staging().shelf().ready(&task);
            }
        }
        tracing::info!(%task, links_out = options.links_out, ?policy, "task options set");
        Ok(Reply::TaskOptions {
            task,
            links_out: options.links_out,
            versions: super::terms::policy_out(policy),
            paused: options.paused,
            folder_type: super::terms::folder_type_out(options.folder_type),
        })
    }

    /// Undo a one-way task's drift, or only say which paths that changes (`dry_run`; see
    /// [`Command::Revert`]).
    pub(super) fn revert(&mut self, task: TaskId, dry_run: bool) -> Result<Reply, EngineError> {
        let paths = match self.store.task_options(task)?.folder_type {
            StoreType::SendOnly => self.drifted(task)?,
            StoreType::ReceiveOnly => self.sync.drift(&task).into_iter().map(|(p, _)| p).collect(),
            StoreType::SendReceive => {
                return Err(EngineError::State(format!(
                    "task {task} syncs both ways: nothing to revert (only a send-only or receive-only task drifts)"
                )))
            }
        };
        const LISTED: usize = 1000;
        let reply = Reply::Reverted {
            task,
            paths: paths.iter().take(LISTED).cloned().collect(),
            more: paths.len().saturating_sub(LISTED),
            dry_run,
        };
        if dry_run {
            return Ok(reply);
        }
        if self.store.task_options(task)?.folder_type == StoreType::ReceiveOnly {
            tracing::info!(%task, paths = paths.len(), "putting the received versions back over the changes made here");
            self.feed(qsync_core::Input::Revert { task });
        } else {
            tracing::info!(%task, paths = paths.len(), "overriding the changes of other devices");
            self.feed(qsync_core::Input::Override { task, paths });
        }
        Ok(reply)
    }

    /// The paths of `task` whose peers' versions were left aside and that this device
    /// syncs: not excluded by its rules (an ignored path's rivals are not drift: they are
    /// never overridden), and, for a file recorded here, one the folder holds as recorded
    /// (this device can serve what it announces).
    fn drifted(&mut self, task: TaskId) -> Result<Vec<qsync_base::RelPath>, EngineError> {
        use qsync_core::Ledger;
        let mut candidates = Vec::new();
        {
            let tx = self.store.ledger()?;
            for path in tx.rival_paths(&task)? {
                let ours = tx.record(&task, &path)?;
                candidates.push((path, ours));
            }
        } // read only: rolled back
        let Some(folder) = self.sync.folder_mut(&task) else {
            return Ok(Vec::new());
        };
        let mut paths = Vec::new();
        for (path, ours) in candidates {
            if folder.excludes(&path, false) || folder.excludes(&path, true) {
                continue;
            }
            let recorded = ours.as_ref().and_then(|r| r.state.hash());
            let held = folder.index.get(&path).and_then(|e| e.hash);
            let is_file = ours
                .as_ref()
                .is_some_and(|r| matches!(r.state, qsync_core::State::File { .. }));
            if is_file && recorded != held {
                continue;
            }
            paths.push(path);
        }
        Ok(paths)
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
        let (task, _, root) = self.task_add(folder, name, None)?;
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
            self.peers.send(device, *task, Message::Unlink);
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

    pub(super) fn record_incoming(
        &mut self,
        request: &LinkRequest,
        root: Option<PathBuf>,
    ) -> Result<(), EngineError> {
        let task = request.task;
        match root {
            Some(root) => {
                if self.tasks.contains(&task) {
                    return Err(EngineError::State(
                        "that task was added here meanwhile".into(),
                    ));
                }
                Folders::new(self.config, self.sync).make_link_folder(&root)?;
                self.store.add_task(task, &root, &request.folder_name)?;
                self.linked(task, request.device, &request.name, request.addr)?;
                if let Err(e) = self.start_task(task, root) {
                    let _ = self.store.remove_task(task);
                    return Err(e);
                }
            }
            None => self.linked(task, request.device, &request.name, request.addr)?,
        }
        self.feed(qsync_core::Input::Link {
            task,
            peer: request.device,
        });
        Ok(())
    }
}
