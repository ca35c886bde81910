//! The update log of the rules before version vectors (the seed's `retard`): each local
//! change an update, with a pending row for every device that must still receive it and
//! its delta. The daemon no longer writes it (the sync core's ledger, `ledger.rs`, replaced
//! it); it stays readable for stores made before, and goes with the old tables.

use qsync_base::{ContentHash, DeviceId, FileEntry, RelPath, TaskId, UpdateId};
use rusqlite::{params, OptionalExtension, Row, Transaction};

use crate::{corrupt, hash_bytes, id32, opt_hash, rel_path, to_i64, Store, StoreError};

/// A local change to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A new path.
    Create(FileEntry),
    /// New content for a file; `delta` goes from the previous version (hash `base`) to this
    /// one, `None` when the whole file must be sent.
    Modify {
        /// The new metadata.
        entry: FileEntry,
        /// Hash of the previous version.
        base: Option<ContentHash>,
        /// Encoded delta from `base`.
        delta: Option<Vec<u8>>,
    },
    /// The path (and everything under it) was deleted.
    Delete(RelPath),
    /// The path moved.
    Rename {
        /// Old path.
        from: RelPath,
        /// New path.
        to: RelPath,
    },
}

/// The seed's modification types.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModType {
    /// `c`
    Create,
    /// `p`
    Patch,
    /// `d`
    Delete,
    /// `r`
    Rename,
}

impl ModType {
    fn code(self) -> &'static str {
        match self {
            Self::Create => "c",
            Self::Patch => "p",
            Self::Delete => "d",
            Self::Rename => "r",
        }
    }

    fn from_code(code: &str) -> Option<Self> {
        match code {
            "c" => Some(Self::Create),
            "p" => Some(Self::Patch),
            "d" => Some(Self::Delete),
            "r" => Some(Self::Rename),
            _ => None,
        }
    }
}

/// An update some device has not received yet (the seed's `retard` row).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingUpdate {
    /// Its id; updates are listed in id order, which is the order they happened.
    pub update: UpdateId,
    /// The task.
    pub task: TaskId,
    /// The path changed.
    pub path: RelPath,
    /// The path's version after this change.
    pub version: u64,
    /// What kind of change.
    pub mod_type: ModType,
    /// For renames: the new path.
    pub new_path: Option<RelPath>,
    /// For patches: the version the delta applies to.
    pub base_hash: Option<ContentHash>,
    /// For creates and patches: the resulting content.
    pub result_hash: Option<ContentHash>,
}

impl Store {
    /// Record local changes of `task`, in order, in one transaction: the files table is
    /// updated, and each change gets an update with a pending row for each of `devices`
    /// (every device that must still receive it; the engine passes all linked devices and
    /// marks them done as they acknowledge). Deltas are stored only if some device needs them.
    pub fn record_changes(
        &mut self,
        task: TaskId,
        changes: Vec<Change>,
        devices: &[DeviceId],
    ) -> Result<Vec<PendingUpdate>, StoreError> {
        let tx = self.conn.transaction()?;
        let known: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sync_tasks WHERE task_id = ?1)",
            [&task.as_bytes()[..]],
            |r| r.get(0),
        )?;
        if !known {
            return Err(StoreError::UnknownTask(task));
        }
        let mut out = Vec::with_capacity(changes.len());
        for change in changes {
            out.push(record_one(&tx, task, change, devices)?);
        }
        collect_garbage_of(&tx, out.iter().map(|u| u.update))?;
        tx.commit()?;
        Ok(out)
    }

    /// What `device` has not received yet, oldest first.
    pub fn missing_for(&self, device: DeviceId) -> Result<Vec<PendingUpdate>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.update_id, u.task_id, u.path, u.version, u.mod_type, u.new_path, u.base_hash, u.result_hash
             FROM pending p JOIN updates u ON u.update_id = p.update_id
             WHERE p.device_id = ?1 ORDER BY u.update_id",
        )?;
        let rows = stmt.query_map([&device.as_bytes()[..]], raw_update)?;
        rows.map(|row| to_pending_update(row?)).collect()
    }

    /// One update by id, if some device still needs it.
    pub fn update(&self, update: UpdateId) -> Result<Option<PendingUpdate>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT update_id, task_id, path, version, mod_type, new_path, base_hash, result_hash
             FROM updates WHERE update_id = ?1",
        )?;
        let mut rows = stmt.query_map([to_i64(update.0, "update id")?], raw_update)?;
        rows.next().transpose()?.map(to_pending_update).transpose()
    }

    /// Queue a full copy of `task` for `device` (the seed's setup): a create update for
    /// every current path, folders before what they hold, pending for that device only.
    pub fn queue_setup(
        &mut self,
        task: TaskId,
        device: DeviceId,
    ) -> Result<Vec<PendingUpdate>, StoreError> {
        let files = self.files(task)?;
        let tx = self.conn.transaction()?;
        let mut out = Vec::with_capacity(files.len());
        for file in files {
            let path = file.entry.path.clone();
            tx.prepare_cached(
                "INSERT INTO updates (task_id, path, version, mod_type, result_hash) VALUES (?1, ?2, ?3, 'c', ?4)",
            )?
            .execute(params![
                &task.as_bytes()[..],
                path.as_str(),
                to_i64(file.version, "version")?,
                hash_bytes(&file.entry.hash)
            ])?;
            let id = tx.last_insert_rowid();
            tx.prepare_cached("INSERT INTO pending (update_id, device_id) VALUES (?1, ?2)")?
                .execute(params![id, &device.as_bytes()[..]])?;
            out.push(PendingUpdate {
                update: UpdateId(u64::try_from(id).map_err(|_| corrupt("update id", id))?),
                task,
                path,
                version: file.version,
                mod_type: ModType::Create,
                new_path: None,
                base_hash: None,
                result_hash: file.entry.hash,
            });
        }
        tx.commit()?;
        Ok(out)
    }

    /// The creates and patches of `path` that `device` still has to receive, recorded
    /// after `after`: what a full-content send of the newest version makes redundant.
    pub fn later_content_updates(
        &self,
        device: DeviceId,
        task: TaskId,
        path: &RelPath,
        after: UpdateId,
    ) -> Result<Vec<UpdateId>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT u.update_id FROM updates u JOIN pending p ON p.update_id = u.update_id
             WHERE u.task_id = ?1 AND u.path = ?2 AND u.update_id > ?3 AND p.device_id = ?4
               AND u.mod_type IN ('c', 'p')
             ORDER BY u.update_id",
        )?;
        let rows = stmt.query_map(
            params![
                &task.as_bytes()[..],
                path.as_str(),
                to_i64(after.0, "update id")?,
                &device.as_bytes()[..]
            ],
            |r| r.get::<_, i64>(0),
        )?;
        rows.map(|id| {
            let id = id?;
            Ok(UpdateId(
                u64::try_from(id).map_err(|_| corrupt("update id", id))?,
            ))
        })
        .collect()
    }

    /// The delta stored for an update, if any.
    pub fn delta(&self, update: UpdateId) -> Result<Option<Vec<u8>>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT delta FROM deltas WHERE update_id = ?1",
                [to_i64(update.0, "update id")?],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// `device` received `update` (and applied it or kept a conflict copy): its pending row
    /// goes, and the update and its delta go too once no device needs them.
    pub fn mark_done(&mut self, device: DeviceId, update: UpdateId) -> Result<(), StoreError> {
        self.mark_many_done(device, &[update])
    }

    /// [`mark_done`](Self::mark_done) for several updates in one transaction.
    pub fn mark_many_done(
        &mut self,
        device: DeviceId,
        updates: &[UpdateId],
    ) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        {
            let mut stmt =
                tx.prepare_cached("DELETE FROM pending WHERE device_id = ?1 AND update_id = ?2")?;
            for update in updates {
                stmt.execute(params![
                    &device.as_bytes()[..],
                    to_i64(update.0, "update id")?
                ])?;
            }
        }
        collect_garbage_of(&tx, updates.iter().copied())?;
        tx.commit()?;
        Ok(())
    }

    /// How many pending rows and stored deltas there are (for status and tests).
    pub fn counts(&self) -> Result<Counts, StoreError> {
        let count = |sql: &str| -> Result<u64, StoreError> {
            let n: i64 = self.conn.query_row(sql, [], |r| r.get(0))?;
            Ok(u64::try_from(n).unwrap_or(0))
        };
        Ok(Counts {
            updates: count("SELECT COUNT(*) FROM updates")?,
            pending: count("SELECT COUNT(*) FROM pending")?,
            deltas: count("SELECT COUNT(*) FROM deltas")?,
        })
    }
}

/// Row counts of the update tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    /// Updates some device still needs.
    pub updates: u64,
    /// (update, device) pairs still to deliver.
    pub pending: u64,
    /// Stored deltas.
    pub deltas: u64,
}

/// An `updates` row as SQLite gives it.
type RawUpdate = (
    i64,
    Vec<u8>,
    String,
    i64,
    String,
    Option<String>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

fn raw_update(r: &Row<'_>) -> rusqlite::Result<RawUpdate> {
    Ok((
        r.get(0)?,
        r.get(1)?,
        r.get(2)?,
        r.get(3)?,
        r.get(4)?,
        r.get(5)?,
        r.get(6)?,
        r.get(7)?,
    ))
}

fn to_pending_update(raw: RawUpdate) -> Result<PendingUpdate, StoreError> {
    let (id, task, path, version, mod_type, new_path, base, result) = raw;
    Ok(PendingUpdate {
        update: UpdateId(u64::try_from(id).map_err(|_| corrupt("update id", id))?),
        task: TaskId::from_bytes(id32(task, "task id")?),
        path: rel_path(path)?,
        version: u64::try_from(version).map_err(|_| corrupt("version", version))?,
        mod_type: ModType::from_code(&mod_type).ok_or_else(|| corrupt("mod type", &mod_type))?,
        new_path: new_path.map(rel_path).transpose()?,
        base_hash: opt_hash(base)?,
        result_hash: opt_hash(result)?,
    })
}

fn record_one(
    tx: &Transaction<'_>,
    task: TaskId,
    change: Change,
    devices: &[DeviceId],
) -> Result<PendingUpdate, StoreError> {
    let t = &task.as_bytes()[..];
    let current_version = |path: &RelPath| -> Result<u64, StoreError> {
        let v: Option<i64> = tx
            .query_row(
                "SELECT version FROM files WHERE task_id = ?1 AND path = ?2",
                params![t, path.as_str()],
                |r| r.get(0),
            )
            .optional()?;
        Ok(v.map_or(0, |v| u64::try_from(v).unwrap_or(0)))
    };
    let upsert = |entry: &FileEntry, version: u64| -> Result<(), StoreError> {
        tx.prepare_cached(
            "INSERT INTO files (task_id, path, version, kind, size, mtime, hash, mode) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (task_id, path) DO UPDATE SET version = excluded.version, kind = excluded.kind,
               size = excluded.size, mtime = excluded.mtime, hash = excluded.hash, mode = excluded.mode",
        )?
        .execute(params![
            t,
            entry.path.as_str(),
            to_i64(version, "version")?,
            entry.kind.code(),
            to_i64(entry.size, "size")?,
            entry.mtime_ns,
            hash_bytes(&entry.hash),
            entry.mode
        ])?;
        Ok(())
    };

    let (path, mod_type, new_path, base_hash, result_hash, delta, version) = match change {
        Change::Create(entry) => {
            let version = current_version(&entry.path)? + 1;
            upsert(&entry, version)?;
            (
                entry.path,
                ModType::Create,
                None,
                None,
                entry.hash,
                None,
                version,
            )
        }
        Change::Modify { entry, base, delta } => {
            let version = current_version(&entry.path)? + 1;
            upsert(&entry, version)?;
            (
                entry.path,
                ModType::Patch,
                None,
                base,
                entry.hash,
                delta,
                version,
            )
        }
        Change::Delete(path) => {
            let version = current_version(&path)? + 1;
            let previous: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT hash FROM files WHERE task_id = ?1 AND path = ?2",
                    params![t, path.as_str()],
                    |r| r.get(0),
                )
                .optional()?
                .flatten();
            let base = opt_hash(previous)?;
            tx.execute(
                "DELETE FROM files WHERE task_id = ?1 AND (path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/')",
                params![t, path.as_str()],
            )?;
            (path, ModType::Delete, None, base, None, None, version)
        }
        Change::Rename { from, to } => {
            let version = current_version(&from)? + 1;
            tx.execute(
                "DELETE FROM files WHERE task_id = ?1 AND (path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/')",
                params![t, to.as_str()],
            )?;
            tx.execute(
                "UPDATE files SET path = ?3 || substr(path, length(?2) + 1), version = version + 1
                 WHERE task_id = ?1 AND (path = ?2 OR substr(path, 1, length(?2) + 1) = ?2 || '/')",
                params![t, from.as_str(), to.as_str()],
            )?;
            (from, ModType::Rename, Some(to), None, None, None, version)
        }
    };

    tx.prepare_cached(
        "INSERT INTO updates (task_id, path, version, mod_type, new_path, base_hash, result_hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
    )?
    .execute(params![
        t,
        path.as_str(),
        to_i64(version, "version")?,
        mod_type.code(),
        new_path.as_ref().map(RelPath::as_str),
        hash_bytes(&base_hash),
        hash_bytes(&result_hash)
    ])?;
    let id = tx.last_insert_rowid();
    {
        let mut stmt = tx.prepare_cached(
            "INSERT OR IGNORE INTO pending (update_id, device_id) VALUES (?1, ?2)",
        )?;
        for d in devices {
            stmt.execute(params![id, &d.as_bytes()[..]])?;
        }
    }
    if let Some(delta) = delta.filter(|_| !devices.is_empty()) {
        tx.prepare_cached("INSERT INTO deltas (update_id, delta) VALUES (?1, ?2)")?
            .execute(params![id, delta])?;
    }
    Ok(PendingUpdate {
        update: UpdateId(u64::try_from(id).map_err(|_| corrupt("update id", id))?),
        task,
        path,
        version,
        mod_type,
        new_path,
        base_hash,
        result_hash,
    })
}

/// Remove those of `updates` that no device needs any more (their deltas go with them).
/// Only the rows just settled are looked at: a sweep of the whole table for each
/// acknowledgement made a setup copy of n files cost O(n²).
fn collect_garbage_of(
    tx: &Transaction<'_>,
    updates: impl IntoIterator<Item = UpdateId>,
) -> Result<(), StoreError> {
    let mut stmt = tx.prepare_cached(
        "DELETE FROM updates WHERE update_id = ?1 AND NOT EXISTS (SELECT 1 FROM pending p WHERE p.update_id = ?1)",
    )?;
    for update in updates {
        stmt.execute([to_i64(update.0, "update id")?])?;
    }
    Ok(())
}

/// Remove every update no device needs any more.
pub(crate) fn collect_garbage(tx: &Transaction<'_>) -> Result<(), StoreError> {
    tx.execute(
        "DELETE FROM updates WHERE NOT EXISTS (SELECT 1 FROM pending p WHERE p.update_id = updates.update_id)",
        [],
    )?;
    Ok(())
}
