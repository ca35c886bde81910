//! QSync's persistent state, crash-safe.
//!
//! One SQLite database (bundled, WAL mode, schema migrations with refinery) holds the sync
//! tasks, the linked devices, and the sync core's ledger (`ledger.rs`: [`Store::ledger`]
//! opens one transaction per core call). The update log of the rules before version
//! vectors (`updates.rs`, below) is kept readable for stores made then. The newest full content of each
//! file is kept outside the database as content-addressed [`Blobs`]. Every multi-row change
//! is one transaction: after a crash the database holds either all of it or none of it.
//!
//! The lifecycle of an update (the seed's `retard` table, here `pending`):
//! [`Store::record_changes`] stores a local change with a pending row for every device
//! that must still receive it, and its delta if it is a modification;
//! [`Store::missing_for`] lists what one device is missing, oldest first;
//! [`Store::mark_done`] removes that device's row, and once no device needs an update any
//! more its row and delta are deleted.
//!
//! ```
//! use qsync_base::{DeviceId, EntryKind, FileEntry, RelPath, TaskId, ContentHash};
//! use qsync_store::{Change, Store};
//!
//! let dir = tempfile::tempdir()?;
//! let mut store = Store::open(dir.path())?;
//! let (task, laptop) = (TaskId::random(), DeviceId::random());
//! store.add_task(task, "/home/me/Photos".as_ref(), "Photos")?;
//! store.add_link(task, laptop, "laptop")?;
//!
//! let entry = FileEntry {
//!     path: RelPath::new("cat.jpg")?,
//!     kind: EntryKind::File,
//!     size: 3,
//!     mtime_ns: 0,
//!     hash: Some(ContentHash::of(b"cat")),
//!     mode: 0o644,
//! };
//! let done = store.record_changes(task, vec![Change::Create(entry)], &[laptop])?;
//! assert_eq!(store.missing_for(laptop)?.len(), 1);
//! store.mark_done(laptop, done[0].update)?;
//! assert!(store.missing_for(laptop)?.is_empty());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod apps;
mod blobs;
mod checkpoint;
pub mod direct;
mod error;
mod ledger;
mod updates;
mod versions;

use std::collections::HashSet;
use std::fs::{self, OpenOptions};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use qsync_base::{ContentHash, DeviceId, EntryKind, FileEntry, RelPath, TaskId};
use rusqlite::{params, Connection, OptionalExtension, Row};

pub use apps::AppRecord;
pub use blobs::{Blobs, StagedBlob, StoredBlob};
pub use error::StoreError;
pub use ledger::LedgerTx;
use updates::collect_garbage;
pub use updates::{Change, Counts, ModType, PendingUpdate};
pub use versions::{Keep, NewVersion, Version, VersionPolicy, Versions, DEFAULT_CAP};

mod embedded {
    refinery::embed_migrations!("migrations");
}

/// File name of the database inside the state directory.
pub const DB_FILE: &str = "qsync.db";

/// A sync task on this device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskRecord {
    /// The task id shared by every linked device (the seed's `secure_id`).
    pub id: TaskId,
    /// Where the task's folder is on this device.
    pub root: PathBuf,
    /// A human name.
    pub name: String,
}

/// What the person of this device chose for one task (defaults: the safe choice).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TaskOptions {
    /// Symlinks received from peers may point out of the task folder (an absolute target,
    /// or one that climbs above the folder). Off: they are not made, and `status` lists
    /// them as not synced.
    pub links_out: bool,
    /// Paused here: its changes are recorded, nothing of it is sent or taken.
    pub paused: bool,
    /// Which way changes go, here.
    pub folder_type: FolderType,
}

/// Which way a task's changes go on this device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum FolderType {
    /// Both ways (the default).
    #[default]
    SendReceive,
    /// This device's changes are sent; the changes of other devices are not applied.
    SendOnly,
    /// The changes of other devices are applied; this device's are not sent.
    ReceiveOnly,
}

impl FolderType {
    /// Its name, as stored and as people type it.
    pub fn as_str(self) -> &'static str {
        match self {
            FolderType::SendReceive => "send-receive",
            FolderType::SendOnly => "send-only",
            FolderType::ReceiveOnly => "receive-only",
        }
    }
}

/// A device this one is linked with. Its id is its public key: nothing secret is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceRecord {
    /// Its id.
    pub id: DeviceId,
    /// Its human name.
    pub name: String,
    /// Where it was last seen (`host:port`).
    pub last_address: Option<String>,
    /// Whether it is reachable now.
    pub is_connected: bool,
    /// Paused by this device's person: not connected with, for any task.
    pub paused: bool,
}

/// A path's newest known state, with its version number.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileRecord {
    /// The metadata.
    pub entry: FileEntry,
    /// Bumped by every change of this path.
    pub version: u64,
}

/// The state directory: the database and the blobs.
#[derive(Debug)]
pub struct Store {
    /// Copies the log back into the database, off the thread that writes. Dropped (its
    /// thread stopped and waited for) before `conn`, which, closed last, checkpoints what
    /// is left.
    _checkpointer: checkpoint::Checkpointer,
    conn: Connection,
    blobs: Blobs,
}

fn corrupt(what: &'static str, detail: impl ToString) -> StoreError {
    StoreError::Corrupt {
        what,
        detail: detail.to_string(),
    }
}

fn id32(bytes: Vec<u8>, what: &'static str) -> Result<[u8; 32], StoreError> {
    bytes
        .try_into()
        .map_err(|b: Vec<u8>| corrupt(what, format!("{} bytes instead of 32", b.len())))
}

fn rel_path(text: String) -> Result<RelPath, StoreError> {
    RelPath::new(text).map_err(|e| corrupt("path", e))
}

fn opt_hash(bytes: Option<Vec<u8>>) -> Result<Option<ContentHash>, StoreError> {
    bytes
        .map(|b| id32(b, "hash").map(ContentHash::from_bytes))
        .transpose()
}

fn hash_bytes(hash: &Option<ContentHash>) -> Option<&[u8]> {
    hash.as_ref().map(|h| &h.as_bytes()[..])
}

fn to_i64(n: u64, what: &'static str) -> Result<i64, StoreError> {
    i64::try_from(n).map_err(|_| corrupt(what, format!("{n} does not fit the database")))
}

/// A `files` row as SQLite gives it: path, version, kind, size, mtime, hash, mode.
type RawFile = (String, i64, i64, i64, i64, Option<Vec<u8>>, i64);

fn file_record(row: &Row<'_>) -> rusqlite::Result<RawFile> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
    ))
}

fn to_file_record(raw: RawFile) -> Result<FileRecord, StoreError> {
    let (path, version, kind, size, mtime_ns, hash, mode) = raw;
    Ok(FileRecord {
        entry: FileEntry {
            path: rel_path(path)?,
            kind: u8::try_from(kind)
                .ok()
                .and_then(EntryKind::from_code)
                .ok_or_else(|| corrupt("file kind", kind))?,
            size: u64::try_from(size).map_err(|_| corrupt("size", size))?,
            mtime_ns,
            hash: opt_hash(hash)?,
            mode: u32::try_from(mode).map_err(|_| corrupt("mode", mode))?,
        },
        version: u64::try_from(version).map_err(|_| corrupt("version", version))?,
    })
}

impl Store {
    /// Open (or create) the state in `dir`: the folder is made private (0700), the database
    /// file is created 0600, migrations run, and leftovers of an interrupted run (blobs no
    /// file refers to, half-written blobs) are removed.
    pub fn open(dir: &Path) -> Result<Self, StoreError> {
        fs::create_dir_all(dir).map_err(|e| StoreError::io("create", dir, e))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| StoreError::io("restrict permissions of", dir, e))?;
        let db_path = dir.join(DB_FILE);
        OpenOptions::new()
            .create(true)
            .append(true)
            .mode(0o600)
            .open(&db_path)
            .map_err(|e| StoreError::io("create", &db_path, e))?;
        let mut conn = Connection::open(&db_path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        // Checkpoints are the checkpointer's, this connection's only past a backstop (see
        // `checkpoint.rs`).
        conn.pragma_update(None, "wal_autocheckpoint", checkpoint::LOG_PAGES_AT_MOST)?;
        conn.pragma_update(None, "journal_size_limit", checkpoint::LOG_BYTES_KEPT)?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        // The ledger's statements run once per record (and several per placement): each is
        // compiled once and kept, rather than parsed again every time (SQLite's code
        // generator showed in the receiving engine's profile with 100,000 new files).
        conn.set_prepared_statement_cache_capacity(64);
        embedded::migrations::runner().run(&mut conn)?;
        // Updates nobody needs are removed as they are settled (see `collect_garbage_of`);
        // one full sweep at start catches anything an older version left.
        let tx = conn.transaction()?;
        collect_garbage(&tx)?;
        tx.commit()?;
        let store = Self {
            _checkpointer: checkpoint::Checkpointer::start(&db_path)?,
            conn,
            blobs: Blobs::open(dir.join("blobs"))?,
        };
        store.sweep_blobs()?;
        Ok(store)
    }

    /// The blob folder holding the newest full content of every file.
    pub fn blobs(&self) -> &Blobs {
        &self.blobs
    }

    /// The versions kept of the tasks' files, and each task's policy (see [`Versions`]).
    pub fn versions(&self) -> Versions<'_> {
        Versions { conn: &self.conn }
    }

    // ---- tasks ----

    /// Add a sync task whose folder on this device is `root`.
    pub fn add_task(&mut self, task: TaskId, root: &Path, name: &str) -> Result<(), StoreError> {
        let root = root
            .to_str()
            .ok_or_else(|| corrupt("task root", format!("{} is not UTF-8", root.display())))?;
        self.conn.execute(
            "INSERT INTO sync_tasks (task_id, root, name) VALUES (?1, ?2, ?3)",
            params![&task.as_bytes()[..], root, name],
        )?;
        Ok(())
    }

    /// Remove a task and everything recorded for it (never the files in its folder).
    pub fn remove_task(&mut self, task: TaskId) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let n = tx.execute(
            "DELETE FROM sync_tasks WHERE task_id = ?1",
            [&task.as_bytes()[..]],
        )?;
        tx.commit()?;
        if n == 0 {
            return Err(StoreError::UnknownTask(task));
        }
        self.sweep_blobs()
    }

    /// Every task, by name.
    pub fn tasks(&self) -> Result<Vec<TaskRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT task_id, root, name FROM sync_tasks ORDER BY name")?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
            ))
        })?;
        rows.map(|row| {
            let (id, root, name) = row?;
            Ok(TaskRecord {
                id: TaskId::from_bytes(id32(id, "task id")?),
                root: PathBuf::from(root),
                name,
            })
        })
        .collect()
    }

    /// One task.
    pub fn task(&self, task: TaskId) -> Result<Option<TaskRecord>, StoreError> {
        Ok(self.tasks()?.into_iter().find(|t| t.id == task))
    }

    /// The options of `task` on this device.
    pub fn task_options(&self, task: TaskId) -> Result<TaskOptions, StoreError> {
        self.conn
            .query_row(
                "SELECT links_out, paused, folder_type FROM sync_tasks WHERE task_id = ?1",
                [&task.as_bytes()[..]],
                |r| {
                    Ok((
                        r.get::<_, bool>(0)?,
                        r.get::<_, bool>(1)?,
                        r.get::<_, String>(2)?,
                    ))
                },
            )
            .optional()?
            .map(|(links_out, paused, folder_type)| TaskOptions {
                links_out,
                paused,
                folder_type: match folder_type.as_str() {
                    "send-only" => FolderType::SendOnly,
                    "receive-only" => FolderType::ReceiveOnly,
                    _ => FolderType::SendReceive,
                },
            })
            .ok_or(StoreError::UnknownTask(task))
    }

    /// Set the options of `task` on this device.
    pub fn set_task_options(
        &mut self,
        task: TaskId,
        options: TaskOptions,
    ) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE sync_tasks SET links_out = ?2, paused = ?3, folder_type = ?4 WHERE task_id = ?1",
            params![
                &task.as_bytes()[..],
                options.links_out,
                options.paused,
                options.folder_type.as_str()
            ],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownTask(task));
        }
        Ok(())
    }

    // ---- devices and links ----

    /// Link `device` to `task`, recording the device if it is new (its id is its key,
    /// so a known device is only renamed, never re-keyed).
    pub fn add_link(
        &mut self,
        task: TaskId,
        device: DeviceId,
        name: &str,
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT INTO linked_devices (device_id, name) VALUES (?1, ?2)
             ON CONFLICT (device_id) DO UPDATE SET name = excluded.name",
            params![&device.as_bytes()[..], name],
        )?;
        let known: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sync_tasks WHERE task_id = ?1)",
            [&task.as_bytes()[..]],
            |r| r.get(0),
        )?;
        if !known {
            return Err(StoreError::UnknownTask(task));
        }
        tx.execute(
            "INSERT OR IGNORE INTO task_links (task_id, device_id) VALUES (?1, ?2)",
            params![&task.as_bytes()[..], &device.as_bytes()[..]],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Unlink `device` from `task`: its pending updates for the task are dropped (and
    /// deltas nobody needs any more with them). The device is forgotten when it is linked
    /// to no task any more.
    pub fn remove_link(&mut self, task: TaskId, device: DeviceId) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        let (t, d) = (&task.as_bytes()[..], &device.as_bytes()[..]);
        tx.execute(
            "DELETE FROM task_links WHERE task_id = ?1 AND device_id = ?2",
            params![t, d],
        )?;
        tx.execute(
            "DELETE FROM pending WHERE device_id = ?2 AND update_id IN (SELECT update_id FROM updates WHERE task_id = ?1)",
            params![t, d],
        )?;
        tx.execute(
            "DELETE FROM linked_devices WHERE device_id = ?1 AND NOT EXISTS (SELECT 1 FROM task_links WHERE device_id = ?1)",
            [d],
        )?;
        collect_garbage(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Forget `device` entirely: every link it has, what it still had to receive, and the
    /// device itself. Returns the tasks it was linked to.
    pub fn forget_device(&mut self, device: DeviceId) -> Result<Vec<TaskId>, StoreError> {
        let tasks: Vec<TaskId> = self
            .tasks()?
            .into_iter()
            .map(|t| t.id)
            .filter(|t| self.linked_devices(*t).is_ok_and(|d| d.contains(&device)))
            .collect();
        let tx = self.conn.transaction()?;
        let d = &device.as_bytes()[..];
        tx.execute("DELETE FROM task_links WHERE device_id = ?1", [d])?;
        tx.execute("DELETE FROM pending WHERE device_id = ?1", [d])?;
        tx.execute("DELETE FROM peer_progress WHERE device_id = ?1", [d])?;
        tx.execute("DELETE FROM linked_devices WHERE device_id = ?1", [d])?;
        collect_garbage(&tx)?;
        tx.commit()?;
        Ok(tasks)
    }

    /// Every linked device.
    pub fn devices(&self) -> Result<Vec<DeviceRecord>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT device_id, name, last_address, is_connected, paused FROM linked_devices ORDER BY name",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, Vec<u8>>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                (r.get::<_, bool>(3)?, r.get::<_, bool>(4)?),
            ))
        })?;
        rows.map(|row| {
            let (id, name, last_address, (is_connected, paused)) = row?;
            Ok(DeviceRecord {
                id: DeviceId::from_bytes(id32(id, "device id")?),
                name,
                last_address,
                is_connected,
                paused,
            })
        })
        .collect()
    }

    /// Pause `device` (no connection with it, for any task), or resume it.
    pub fn set_device_paused(&mut self, device: DeviceId, paused: bool) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE linked_devices SET paused = ?2 WHERE device_id = ?1",
            params![&device.as_bytes()[..], paused],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownDevice(device));
        }
        Ok(())
    }

    /// One linked device.
    pub fn device(&self, device: DeviceId) -> Result<Option<DeviceRecord>, StoreError> {
        Ok(self.devices()?.into_iter().find(|d| d.id == device))
    }

    /// The devices linked to `task`.
    pub fn linked_devices(&self, task: TaskId) -> Result<Vec<DeviceId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT device_id FROM task_links WHERE task_id = ?1 ORDER BY device_id")?;
        let rows = stmt.query_map([&task.as_bytes()[..]], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|id| Ok(DeviceId::from_bytes(id32(id?, "device id")?)))
            .collect()
    }

    /// The tasks `device` is linked to.
    pub fn tasks_of(&self, device: DeviceId) -> Result<Vec<TaskId>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT task_id FROM task_links WHERE device_id = ?1 ORDER BY task_id")?;
        let rows = stmt.query_map([&device.as_bytes()[..]], |r| r.get::<_, Vec<u8>>(0))?;
        rows.map(|id| Ok(TaskId::from_bytes(id32(id?, "task id")?)))
            .collect()
    }

    /// Record whether `device` is reachable, and where.
    pub fn set_connected(
        &mut self,
        device: DeviceId,
        connected: bool,
        address: Option<&str>,
    ) -> Result<(), StoreError> {
        let n = self.conn.execute(
            "UPDATE linked_devices SET is_connected = ?2, last_address = COALESCE(?3, last_address) WHERE device_id = ?1",
            params![&device.as_bytes()[..], connected, address],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownDevice(device));
        }
        Ok(())
    }

    /// Mark `device` as applying (or done applying) an update of `task` from us.
    pub fn set_receiving_update(
        &mut self,
        task: TaskId,
        device: DeviceId,
        receiving: bool,
    ) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE task_links SET receiving_update = ?3 WHERE task_id = ?1 AND device_id = ?2",
            params![&task.as_bytes()[..], &device.as_bytes()[..], receiving],
        )?;
        Ok(())
    }

    // ---- files ----

    /// Forget `paths` of `task` (they became ignored): their rows in `files` go, with no
    /// update for any device, so nothing is deleted elsewhere.
    pub fn forget_files(&mut self, task: TaskId, paths: &[RelPath]) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare("DELETE FROM files WHERE task_id = ?1 AND path = ?2")?;
            for path in paths {
                stmt.execute(params![task.as_bytes(), path.as_str()])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Record the initial mapping of a task's folder: every entry at version 1 (or its
    /// version bumped if already known), in one transaction.
    pub fn record_mapping(
        &mut self,
        task: TaskId,
        entries: &[FileEntry],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO files (task_id, path, version, kind, size, mtime, hash, mode) VALUES (?1, ?2, 1, ?3, ?4, ?5, ?6, ?7)
                 ON CONFLICT (task_id, path) DO UPDATE SET version = version + 1, kind = excluded.kind,
                   size = excluded.size, mtime = excluded.mtime, hash = excluded.hash, mode = excluded.mode",
            )?;
            for e in entries {
                stmt.execute(params![
                    &task.as_bytes()[..],
                    e.path.as_str(),
                    e.kind.code(),
                    to_i64(e.size, "size")?,
                    e.mtime_ns,
                    hash_bytes(&e.hash),
                    e.mode
                ])?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// The newest known state of one path.
    pub fn file(&self, task: TaskId, path: &RelPath) -> Result<Option<FileRecord>, StoreError> {
        self.conn
            .query_row(
                "SELECT path, version, kind, size, mtime, hash, mode FROM files WHERE task_id = ?1 AND path = ?2",
                params![&task.as_bytes()[..], path.as_str()],
                file_record,
            )
            .optional()?
            .map(to_file_record)
            .transpose()
    }

    /// Every path of a task, sorted.
    pub fn files(&self, task: TaskId) -> Result<Vec<FileRecord>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT path, version, kind, size, mtime, hash, mode FROM files WHERE task_id = ?1 ORDER BY path")?;
        let rows = stmt.query_map([&task.as_bytes()[..]], file_record)?;
        rows.map(|r| to_file_record(r?)).collect()
    }

    /// Run SQLite's integrity check; `Ok(())` if the database is sound.
    pub fn check_integrity(&self) -> Result<(), StoreError> {
        let result: String = self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get(0))?;
        if result != "ok" {
            return Err(corrupt("database", result));
        }
        let orphans: i64 = self.conn.query_row(
            "SELECT COUNT(*) FROM pending p LEFT JOIN updates u ON u.update_id = p.update_id WHERE u.update_id IS NULL",
            [],
            |r| r.get(0),
        )?;
        if orphans != 0 {
            return Err(corrupt(
                "pending row",
                format!("{orphans} rows name missing updates"),
            ));
        }
        Ok(())
    }

    /// Remove blobs that no file refers to (done at open; call after deleting a folder): no
    /// current record of the sync core, nor a row of the older `files` table.
    pub fn sweep_blobs(&self) -> Result<(), StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT DISTINCT hash FROM files WHERE hash IS NOT NULL
             UNION SELECT DISTINCT hash FROM records WHERE kind = 1 AND hash IS NOT NULL",
        )?;
        let referenced: HashSet<Vec<u8>> = stmt
            .query_map([], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<Result<_, _>>()?;
        for hash in self.blobs.list()? {
            if !referenced.contains(&hash.as_bytes()[..]) {
                self.blobs.remove(&hash)?;
            }
        }
        Ok(())
    }

    /// Remove the blob with this hash if no file refers to it any more. Call after a change
    /// that replaced or deleted content.
    pub fn release_blob(&self, hash: &ContentHash) -> Result<(), StoreError> {
        let used: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM files WHERE hash = ?1)",
            [&hash.as_bytes()[..]],
            |r| r.get(0),
        )?;
        if !used {
            self.blobs.remove(hash)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A task's options are off until its person sets them, and kept across opens.
    #[test]
    fn task_options_default_off_and_persist() {
        let dir = tempfile::tempdir().unwrap();
        let task = TaskId::from_bytes([4; 32]);
        {
            let mut store = Store::open(dir.path()).unwrap();
            store.add_task(task, "/data/t".as_ref(), "t").unwrap();
            assert_eq!(store.task_options(task).unwrap(), TaskOptions::default());
            store
                .set_task_options(
                    task,
                    TaskOptions {
                        links_out: true,
                        paused: true,
                        folder_type: FolderType::ReceiveOnly,
                    },
                )
                .unwrap();
        }
        let mut store = Store::open(dir.path()).unwrap();
        assert!(store.task_options(task).unwrap().links_out);
        assert!(store.task_options(task).unwrap().paused);
        assert_eq!(
            store.task_options(task).unwrap().folder_type,
            FolderType::ReceiveOnly
        );
        let unknown = TaskId::from_bytes([5; 32]);
        assert!(store.task_options(unknown).is_err());
        assert!(store
            .set_task_options(unknown, TaskOptions::default())
            .is_err());
    }

    /// A state folder of a build before device ids were keys: its links (and their keys)
    /// are dropped when it is opened, its tasks stay.
    #[test]
    fn links_of_a_store_from_before_keys_were_ids_are_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let task = TaskId::from_bytes([1; 32]);
        {
            let mut conn = Connection::open(dir.path().join(DB_FILE)).unwrap();
            embedded::migrations::runner()
                .set_target(refinery::Target::Version(6))
                .run(&mut conn)
                .unwrap();
            conn.execute(
                "INSERT INTO sync_tasks (task_id, root, name) VALUES (?1, '/data/photos', 'photos')",
                [&task.as_bytes()[..]],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO linked_devices (device_id, name, link_key) VALUES (?1, 'old', ?2)",
                params![&[2u8; 32][..], &[3u8; 32][..]],
            )
            .unwrap();
            conn.execute(
                "INSERT INTO task_links (task_id, device_id) VALUES (?1, ?2)",
                params![&task.as_bytes()[..], &[2u8; 32][..]],
            )
            .unwrap();
        }
        let store = Store::open(dir.path()).unwrap();
        assert!(store.devices().unwrap().is_empty());
        assert!(store.linked_devices(task).unwrap().is_empty());
        assert_eq!(store.tasks().unwrap().len(), 1, "tasks are kept");
    }
}
