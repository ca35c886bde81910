//! What the daemon's parts show, for the commands that only read: `qsync status`,
//! `qsync tasks`, `qsync devices`, `qsync pending`. An [`Overview`] borrows the parts; it
//! changes nothing.

use qsync_base::{DeviceId, TaskId};
use qsync_store::{AppRecord, Store};

use super::peers::Peers;
use super::tasks::Tasks;
use crate::control::{AppInfo, Command, DeviceInfo, Reply, ScanInfo, Status, TaskInfo};
use crate::sync::SyncDriver;
use crate::EngineError;

/// At most this many paths waiting for received changes are listed by `status --task`.
const LISTED_AT_MOST: usize = 1000;

/// The daemon's parts, read (see the [module documentation](self)).
pub(super) struct Overview<'a> {
    pub(super) me: DeviceId,
    pub(super) store: &'a Store,
    pub(super) tasks: &'a Tasks,
    pub(super) sync: &'a SyncDriver,
    pub(super) peers: &'a Peers,
}

impl Overview<'_> {
    /// The answer to a command that only reads.
    pub(super) fn read(&self, command: Command) -> Result<Reply, EngineError> {
        match command {
            Command::Id => Ok(Reply::Id { device: self.me }),
            Command::TaskList => self.task_list(),
            Command::Devices => self.device_list(),
            Command::Status => self.status().map(Reply::Status),
            Command::OutOfSync { task } => self.out_of_sync(task),
            Command::Pending { device } => self
                .pending(Some(device))
                .map(|count| Reply::Pending { device, count }),
            Command::Discovered => Ok(Reply::Discovered {
                devices: self.peers.nearby(),
            }),
            Command::AppList => self.apps(),
            Command::AppGet { name } => self.app(&name),
            other => Err(EngineError::State(format!(
                "{other:?} is not a command that reads"
            ))),
        }
    }

    /// How many of this device's records `device` (or every linked device) still lacks.
    pub(super) fn pending(&self, device: Option<DeviceId>) -> Result<u64, EngineError> {
        let mut pending = 0;
        for (task, state) in self.tasks.iter() {
            for peer in &state.links {
                if device.is_none_or(|d| d == *peer) {
                    pending += self.store.pending_for(*task, *peer)?;
                }
            }
        }
        Ok(pending)
    }

    /// What this device holds back of `task`: received content that does not fit on its
    /// disk, and the paths linked devices have that its rules exclude (a send-only task
    /// keeps all of the others' paths aside: its own line says so).
    fn held_back(
        &self,
        task: TaskId,
        folder_type: qsync_store::FolderType,
    ) -> Result<Vec<crate::control::NotInSync>, EngineError> {
        use crate::control::{NotInSync, NotInSyncWhy as W};
        let item = |path, why, detail: String| NotInSync {
            path,
            why,
            device: None,
            seconds: None,
            detail,
        };
        let mut out = Vec::new();
        if let Some(why) = self.sync.no_room_lately(&task) {
            out.push(item(None, W::NoSpace, why.to_owned()));
        }
        // (The rules read afresh: a status is rare. Other paths kept aside wait to be
        // decided again, or are of devices no longer linked.)
        let rules = match (folder_type, self.sync.folder(&task)) {
            (qsync_store::FolderType::SendOnly, _) | (_, None) => return Ok(out),
            (_, Some(folder)) => match qsync_watch::Filter::for_root(&folder.root) {
                Ok(rules) => rules,
                Err(_) => return Ok(out),
            },
        };
        for path in self.store.unrecorded_rivals(&task, LISTED_AT_MOST)? {
            if !(rules.includes(&path, false) && rules.includes(&path, true)) {
                out.push(item(Some(path), W::Ignored, String::new()));
            }
        }
        Ok(out)
    }

    /// What a one-way `task` (of type `folder_type` here) keeps from going one way: the
    /// task, and for a receive-only one, each path its person changed (its drift).
    fn one_way(
        &self,
        task: TaskId,
        folder_type: qsync_store::FolderType,
    ) -> Vec<crate::control::NotInSync> {
        use crate::control::{NotInSync, NotInSyncWhy as W};
        let item = |path, why, detail: &str| NotInSync {
            path,
            why,
            device: None,
            seconds: None,
            detail: detail.to_owned(),
        };
        match folder_type {
            qsync_store::FolderType::SendOnly => vec![item(None, W::FolderType, "send-only: the changes of other devices are not applied here; qsync revert makes this device's versions win")],
            qsync_store::FolderType::ReceiveOnly => {
                let task_item = item(None, W::FolderType, "receive-only: the changes made here are not sent; qsync revert puts the received versions back");
                let drift = self.sync.drift(&task).into_iter().take(LISTED_AT_MOST);
                let paths = drift.map(|(path, state)| {
                    let detail = if state.exists() { "" } else { "deleted here" };
                    item(Some(path), W::ChangedHere, detail)
                });
                std::iter::once(task_item).chain(paths).collect()
            }
            qsync_store::FolderType::SendReceive => Vec::new(),
        }
    }

    /// Every path of `task` not in sync here, and why (see [`Command::OutOfSync`]).
    ///
    /// [`Command::OutOfSync`]: crate::control::Command::OutOfSync
    pub(super) fn out_of_sync(&self, task: TaskId) -> Result<Reply, EngineError> {
        use crate::control::{NotInSync, NotInSyncWhy as W};
        let folder = self
            .sync
            .folder(&task)
            .ok_or_else(|| EngineError::State(format!("no task {task} here")))?;
        let names: std::collections::HashMap<DeviceId, String> = self
            .store
            .devices()?
            .into_iter()
            .map(|d| (d.id, d.name))
            .collect();
        let name = |device: DeviceId| {
            names
                .get(&device)
                .cloned()
                .unwrap_or_else(|| device.to_string())
        };
        let item =
            |path: Option<qsync_base::RelPath>, why, device, seconds, detail: String| NotInSync {
                path,
                why,
                device,
                seconds,
                detail,
            };
        let mut paths = Vec::new();
        let options = self.store.task_options(task)?;
        if options.paused {
            let detail = "changes made here wait; qsync resume sends them".to_owned();
            paths.push(item(None, W::Paused, None, None, detail));
        }
        paths.extend(self.one_way(task, options.folder_type));
        paths.extend(self.held_back(task, options.folder_type)?);
        let mut unsettled = self.unsettled(task, &name);
        if unsettled.len() > LISTED_AT_MOST {
            let more = unsettled.len() - LISTED_AT_MOST;
            unsettled.truncate(LISTED_AT_MOST);
            let detail = format!("and {more} more paths waiting for received changes");
            unsettled.push(item(None, W::WaitingTurn, None, None, detail));
        }
        paths.extend(unsettled);
        for (path, from, why) in folder.not_synced.entries() {
            paths.push(item(
                Some(path.clone()),
                W::Refused,
                Some(name(from)),
                None,
                why.to_owned(),
            ));
        }
        paths.extend(self.conflicts(&folder.root)?);
        let unsupported = self.tasks.get(&task).map_or(0, |t| t.unsupported);
        if unsupported > 0 {
            let detail = format!("{unsupported} paths; the daemon's log lists them");
            paths.push(item(None, W::Unsupported, None, None, detail));
        }
        for d in self.sync.distrust() {
            let detail = format!("refused {} doubted {}: {}", d.refused, d.doubted, d.last);
            paths.push(item(
                None,
                W::PeerRefused,
                Some(name(d.device)),
                None,
                detail,
            ));
        }
        Ok(Reply::OutOfSync { task, paths })
    }

    /// The conflict copies of the task folder at `root`, as not-in-sync items.
    fn conflicts(
        &self,
        root: &std::path::Path,
    ) -> Result<Vec<crate::control::NotInSync>, EngineError> {
        let settling = super::conflicts::Settling {
            shelving: super::versions::Shelving {
                store: self.store,
                sync: self.sync,
            },
        };
        let Reply::Conflicts { conflicts } = settling.list(Some(root))? else {
            return Ok(Vec::new());
        };
        let items = conflicts.into_iter().map(|c| crate::control::NotInSync {
            detail: format!("the other version is {}", c.copy),
            path: c.original.or(Some(c.copy)),
            why: crate::control::NotInSyncWhy::Conflict,
            device: None,
            seconds: None,
        });
        Ok(items.collect())
    }

    /// The received changes of `task` not carried out yet, as [`NotInSync`] items
    /// (`name`: a device's name).
    ///
    /// [`NotInSync`]: crate::control::NotInSync
    fn unsettled(
        &self,
        task: TaskId,
        name: &dyn Fn(DeviceId) -> String,
    ) -> Vec<crate::control::NotInSync> {
        use crate::control::{NotInSync, NotInSyncWhy as W};
        use qsync_core::Awaits;
        let now = std::time::Instant::now();
        let mut out = Vec::new();
        for u in self.sync.unsettled(&task) {
            let (why, mut detail) = match u.awaits {
                Awaits::Turn => (W::WaitingTurn, String::new()),
                Awaits::Content => (W::WaitingContent, String::new()),
                Awaits::Placement => (W::Placing, String::new()),
                Awaits::Children => (W::WaitingChildren, String::new()),
                Awaits::Retry { at, failures } => {
                    let next = at.saturating_duration_since(now).as_secs();
                    let detail = format!("{failures} failures in a row, next try in {next} s");
                    (W::Retrying, detail)
                }
            };
            if u.behind > 0 {
                let behind = format!("{} more changes of it behind", u.behind);
                detail = if detail.is_empty() {
                    behind
                } else {
                    format!("{detail}, {behind}")
                };
            }
            out.push(NotInSync {
                path: Some(u.path),
                why,
                device: Some(name(u.from)),
                seconds: u.since.map(|t| now.saturating_duration_since(t).as_secs()),
                detail,
            });
        }
        out
    }

    /// The tasks synced here, for `qsync tasks`.
    pub(super) fn task_list(&self) -> Result<Reply, EngineError> {
        let tasks = self.store.tasks()?;
        Ok(Reply::Tasks {
            tasks: tasks
                .into_iter()
                .map(|t| TaskInfo {
                    devices: self.tasks.get(&t.id).map_or(0, |s| s.links.len()),
                    paused: self.store.task_options(t.id).is_ok_and(|o| o.paused),
                    task: t.id,
                    name: t.name,
                    root: t.root,
                })
                .collect(),
        })
    }

    /// The devices linked with this one, for `qsync devices`.
    pub(super) fn device_list(&self) -> Result<Reply, EngineError> {
        let devices = self.store.devices()?;
        Ok(Reply::Devices {
            devices: devices
                .into_iter()
                .map(|d| DeviceInfo {
                    connected: self.peers.is_connected(&d.id),
                    paused: d.paused,
                    device: d.id,
                    name: d.name,
                    address: d.last_address,
                })
                .collect(),
        })
    }

    /// What `qsync status` shows.
    pub(super) fn status(&self) -> Result<Status, EngineError> {
        let counts = self.store.counts()?;
        let wire = &self.peers.net().wire;
        let relaxed = std::sync::atomic::Ordering::Relaxed;
        Ok(Status {
            device: self.me,
            tasks: self.tasks.len(),
            connected: self.peers.connected(),
            updates: counts.updates,
            pending: self.pending(None).unwrap_or(u64::MAX),
            // Patches are made when asked for, never stored.
            deltas: 0,
            sent: self.sync.counts().0,
            received: self.sync.counts().1,
            wire_sent: wire.sent.load(relaxed),
            wire_received: wire.received.load(relaxed),
            unsupported: self.tasks.iter().map(|(_, t)| t.unsupported).sum(),
            distrusted: self.sync.distrust(),
            transfers: self.sync.transfers(),
            paused: self
                .tasks
                .iter()
                .map(|(task, _)| *task)
                .filter(|task| self.store.task_options(*task).is_ok_and(|o| o.paused))
                .collect(),
            versions_bytes: {
                let shelf = self.sync.staging().shelf();
                self.sync.folders().map(|(task, _)| shelf.bytes(task)).sum()
            },
            scans: self
                .tasks
                .iter()
                .filter_map(|(task, state)| {
                    let scanning = state.scanning.as_ref()?;
                    Some(ScanInfo {
                        task: *task,
                        entries: scanning.entries,
                        seconds: scanning.since.elapsed().as_secs(),
                    })
                })
                .collect(),
            not_synced: self
                .sync
                .folders()
                .flat_map(|(task, folder)| folder.not_synced.lines(*task))
                .collect(),
            ignore_problems: self.ignore_problems(),
        })
    }

    /// The lines of the tasks' `.qsyncignore` files that are skipped, for `status`.
    fn ignore_problems(&self) -> Vec<String> {
        self.sync
            .folders()
            .flat_map(|(task, folder)| {
                let problems = qsync_watch::Filter::for_root(&folder.root)
                    .map(|f| f.problems().to_vec())
                    .unwrap_or_default();
                problems
                    .into_iter()
                    .map(move |p| format!("{task}: {} {p}", qsync_watch::IGNORE_FILE))
            })
            .collect()
    }

    /// The apps installed here, for `qsync app list`.
    pub(super) fn apps(&self) -> Result<Reply, EngineError> {
        let apps = self.store.apps()?;
        Ok(Reply::Apps {
            apps: apps.iter().map(app_info).collect(),
        })
    }

    /// The app named `name`, for `qsync app get`.
    pub(super) fn app(&self, name: &str) -> Result<Reply, EngineError> {
        match self.store.app(name)? {
            Some(app) => Ok(Reply::App(app_info(&app))),
            None => Err(EngineError::State(format!(
                "no app named {name} is installed"
            ))),
        }
    }
}

/// One installed app, as the control protocol describes it.
pub(super) fn app_info(app: &AppRecord) -> AppInfo {
    AppInfo {
        name: app.name.clone(),
        kind: app.kind.clone(),
        task: app.task,
        data_folder: app.data_folder.clone(),
        app_dir: app.app_dir.clone(),
        config: app.config.clone(),
    }
}
