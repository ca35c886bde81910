//! The sync core's ledger in SQLite: [`Store::ledger`] opens a transaction that implements
//! [`qsync_core::Ledger`]. A driver commits it after each `Core::handle` call and before it
//! carries out the call's effects, so every call's writes land whole or not at all.
//!
//! Tables (migration V4): `records` (one per path: state, version vector, sequence number;
//! V6 adds `origin`, the peer a record was taken from as is, never sent back to it),
//! `peer_progress` (how far each peer's sequence was processed here and how far it
//! acknowledged ours) and `rivals` (versions ours won against, decided again when ours
//! changes). Tasks and links are the store's `sync_tasks` and `task_links`.

use std::cell::{OnceCell, RefCell};
use std::collections::HashMap;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId, VersionVector};
use qsync_core::{Ledger, Record, State};
use rusqlite::{params, OptionalExtension, Row, ToSql, Transaction};

use crate::{corrupt, id32, opt_hash, rel_path, to_i64, Store, StoreError};

/// One transaction on the store, as the core's [`Ledger`]. Dropped without
/// [`commit`](Self::commit), it rolls back.
pub struct LedgerTx<'a> {
    tx: Transaction<'a>,
    /// What the core asks of the ledger for nearly every path, remembered for the
    /// transaction's length (a scan of a million files asked each of these once or twice
    /// per path: a fifth of the engine thread).
    seen: Seen,
}

/// What a [`LedgerTx`] remembers of its own reads. A transaction sees one snapshot of the
/// store, so only its own writes can change what it read: each is kept up to date, or
/// forgotten, by the writes that change it.
#[derive(Default)]
struct Seen {
    /// The tasks: no ledger call adds or removes one (the store does, in transactions of
    /// its own).
    tasks: OnceCell<Vec<TaskId>>,
    /// The last sequence number of each task read, raised by `put`.
    last_seq: RefCell<HashMap<TaskId, u64>>,
    /// The record of one path read last, until the next write to the records.
    record: RefCell<Option<(TaskId, Record)>>,
    /// The path of `record` when it had none.
    absent: RefCell<Option<(TaskId, RelPath)>>,
}

impl Seen {
    /// The records table was written to (for `path`, or any).
    fn records_changed(&self) {
        self.record.replace(None);
        self.absent.replace(None);
    }
}

/// The query of [`Ledger::records_after`], its limit written in: SQLite plans a `LIMIT` bound
/// to a parameter for the value bound, so binding another value (every call: rusqlite clears
/// a cached statement's bindings) made it compile the statement again, each time. That was a
/// fifth of the receiving engine's time while a folder of 10,000 files came in. The core asks
/// with one or two limits only, so a statement per limit stays in the cache.
fn records_after_sql(limit: usize) -> String {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    format!(
        "SELECT {COLUMNS}, origin FROM records WHERE task_id = ?1 AND seq > ?2 ORDER BY seq LIMIT {limit}"
    )
}

impl Store {
    /// A transaction for one call of the sync core.
    pub fn ledger(&mut self) -> Result<LedgerTx<'_>, StoreError> {
        Ok(LedgerTx {
            tx: self.conn.transaction()?,
            seen: Seen::default(),
        })
    }

    /// How many of this device's records of `task` `device` has not acknowledged yet: its
    /// pending updates.
    pub fn pending_for(&self, task: TaskId, device: DeviceId) -> Result<u64, StoreError> {
        let acked: i64 = self
            .conn
            .query_row(
                "SELECT acked_upto FROM peer_progress WHERE task_id = ?1 AND device_id = ?2",
                params![task.as_bytes(), device.as_bytes()],
                |row| row.get(0),
            )
            .optional()?
            .unwrap_or(0);
        // What came from that device is never sent back to it, so never pending there.
        let count: i64 = self.conn.query_row(
            "SELECT count(*) FROM records WHERE task_id = ?1 AND seq > ?2
             AND (origin IS NULL OR origin != ?3)",
            params![task.as_bytes(), acked, device.as_bytes()],
            |row| row.get(0),
        )?;
        u64::try_from(count).map_err(|_| corrupt("count", count))
    }

    /// The record of `path` in `task`, read outside any transaction (for views: what the
    /// sync core holds is read through [`Store::ledger`]).
    pub fn record_of(&self, task: &TaskId, path: &RelPath) -> Result<Option<Record>, StoreError> {
        let mut stmt = self.conn.prepare_cached(RECORD_OF)?;
        let raw = stmt
            .query_row(params![task.as_bytes(), path.as_str()], raw)
            .optional()?;
        raw.map(to_record).transpose()
    }

    /// Up to `limit` paths of `task` that peers hold and this device does not record (kept
    /// aside: its rules exclude them, or it applies nothing of the others), in path order.
    pub fn unrecorded_rivals(
        &self,
        task: &TaskId,
        limit: usize,
    ) -> Result<Vec<RelPath>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut stmt = self.conn.prepare_cached(
            "SELECT DISTINCT r.path FROM rivals r WHERE r.task_id = ?1 AND NOT EXISTS
             (SELECT 1 FROM records c WHERE c.task_id = r.task_id AND c.path = r.path)
             ORDER BY r.path LIMIT ?2",
        )?;
        let rows = stmt.query_map(params![task.as_bytes(), limit], |row| {
            row.get::<_, String>(0)
        })?;
        rows.map(|r| rel_path(r?)).collect()
    }

    /// Give every known path of `task` a first version made by `me`, from the older
    /// `files` table, when the task has no records yet (a store made before version
    /// vectors). Two devices that were in sync then hold concurrent versions of identical
    /// content, which the core merges without a conflict. Returns how many were made.
    pub fn seed_records(&mut self, task: TaskId, me: DeviceId) -> Result<usize, StoreError> {
        let version = VersionVector::new().bumped(me);
        let tx = self.conn.transaction()?;
        let existing: i64 = tx.query_row(
            "SELECT count(*) FROM records WHERE task_id = ?1",
            params![task.as_bytes()],
            |row| row.get(0),
        )?;
        if existing > 0 {
            return Ok(0);
        }
        let files = {
            let mut stmt = tx.prepare(
                "SELECT path, kind, size, mtime, hash FROM files WHERE task_id = ?1 ORDER BY path",
            )?;
            let rows = stmt.query_map(params![task.as_bytes()], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, i64>(2)?,
                    row.get::<_, i64>(3)?,
                    row.get::<_, Option<Vec<u8>>>(4)?,
                ))
            })?;
            rows.collect::<Result<Vec<_>, _>>()?
        };
        let mut ledger = LedgerTx {
            tx,
            seen: Seen::default(),
        };
        let count = files.len();
        for (seq, (path, kind, size, mtime_ns, hash)) in files.into_iter().enumerate() {
            let state = match kind {
                // The older table kept no mode bits: 0, unknown (the index matches it with
                // any mode, and equal bytes never make a conflict copy).
                0 => State::File {
                    hash: opt_hash(hash)?.ok_or_else(|| corrupt("file hash", "missing"))?,
                    size: u64::try_from(size).map_err(|_| corrupt("size", size))?,
                    mode: 0,
                },
                1 => State::Folder { mode: 0 },
                // Symlink targets were not kept either: the first scan records them.
                2 => continue,
                other => return Err(corrupt("file kind", other)),
            };
            let record = Record {
                path: rel_path(path)?,
                state,
                version: version.clone(),
                mtime_ns,
                seq: seq as u64 + 1,
                retimed: None,
                by: Some(me),
            };
            ledger.put(&task, record, None)?;
        }
        ledger.commit()?;
        Ok(count)
    }
}

impl LedgerTx<'_> {
    /// Make this call's writes durable.
    pub fn commit(self) -> Result<(), StoreError> {
        Ok(self.tx.commit()?)
    }
}

/// The columns a record is stored in, after its key.
const COLUMNS: &str = "path, seq, kind, hash, size, mode, target, mtime, version, retimed, made_by";

/// A record's row: its task, [`COLUMNS`], and the peer it was taken from as is (`NULL`:
/// made here or merged). Written out rather than formatted: this runs once per path.
const INSERT_RECORD: &str = "INSERT OR REPLACE INTO records
    (task_id, path, seq, kind, hash, size, mode, target, mtime, version, retimed, made_by, origin)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

/// The rivals of one path: [`COLUMNS`], then the device.
const RIVALS_OF: &str = "SELECT path, seq, kind, hash, size, mode, target, mtime, version, retimed,
    made_by, device_id FROM rivals WHERE task_id = ?1 AND path = ?2 ORDER BY device_id";

/// The record of one path: [`COLUMNS`].
const RECORD_OF: &str = "SELECT path, seq, kind, hash, size, mode, target, mtime, version, retimed,
    made_by FROM records WHERE task_id = ?1 AND path = ?2";

/// A rival's row: its task and device, then [`COLUMNS`].
const INSERT_RIVAL: &str = "INSERT OR REPLACE INTO rivals
    (task_id, device_id, path, seq, kind, hash, size, mode, target, mtime, version, retimed, made_by)
    VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13)";

fn state_columns(state: &State) -> (i64, Option<&[u8]>, u64, u32, Option<&str>) {
    match state {
        State::Deleted => (0, None, 0, 0, None),
        State::File { hash, size, mode } => (1, Some(&hash.as_bytes()[..]), *size, *mode, None),
        State::Folder { mode } => (2, None, 0, *mode, None),
        State::Symlink { target } => (3, None, 0, 0, Some(target.as_str())),
    }
}

type RawRecord = (
    String,
    i64,
    i64,
    Option<Vec<u8>>,
    i64,
    i64,
    Option<String>,
    i64,
    Vec<u8>,
    Option<Vec<u8>>,
    Option<Vec<u8>>,
);

fn raw(row: &Row<'_>) -> rusqlite::Result<RawRecord> {
    Ok((
        row.get(0)?,
        row.get(1)?,
        row.get(2)?,
        row.get(3)?,
        row.get(4)?,
        row.get(5)?,
        row.get(6)?,
        row.get(7)?,
        row.get(8)?,
        row.get(9)?,
        row.get(10)?,
    ))
}

fn to_record(raw: RawRecord) -> Result<Record, StoreError> {
    let (path, seq, kind, hash, size, mode, target, mtime_ns, version, retimed, by) = raw;
    let mode = u32::try_from(mode).map_err(|_| corrupt("mode", mode))?;
    let state = match kind {
        0 => State::Deleted,
        1 => State::File {
            hash: ContentHash::from_bytes(id32(
                hash.ok_or_else(|| corrupt("file hash", "missing"))?,
                "hash",
            )?),
            size: u64::try_from(size).map_err(|_| corrupt("size", size))?,
            mode,
        },
        2 => State::Folder { mode },
        3 => State::Symlink {
            target: target.ok_or_else(|| corrupt("symlink target", "missing"))?,
        },
        other => return Err(corrupt("record kind", other)),
    };
    Ok(Record {
        path: rel_path(path)?,
        state,
        version: postcard::from_bytes(&version).map_err(|e| corrupt("version vector", e))?,
        mtime_ns,
        seq: u64::try_from(seq).map_err(|_| corrupt("sequence number", seq))?,
        retimed: match retimed {
            Some(bytes) => {
                Some(postcard::from_bytes(&bytes).map_err(|e| corrupt("version vector", e))?)
            }
            None => None,
        },
        by: match by {
            Some(bytes) => Some(DeviceId::from_bytes(id32(bytes, "made by")?)),
            None => None,
        },
    })
}

fn version_bytes(version: &VersionVector) -> Result<Vec<u8>, StoreError> {
    postcard::to_allocvec(version).map_err(|e| corrupt("version vector", e))
}

impl LedgerTx<'_> {
    fn records(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Record>, StoreError> {
        let mut stmt = self.tx.prepare_cached(sql)?;
        let rows = stmt.query_map(args, raw)?;
        rows.map(|r| to_record(r?)).collect()
    }

    /// Records read by `sql`, which selects [`COLUMNS`] then `origin`, each with its origin.
    fn records_with_origin(
        &self,
        sql: &str,
        args: impl rusqlite::Params,
    ) -> Result<Vec<(Record, Option<DeviceId>)>, StoreError> {
        let mut stmt = self.tx.prepare_cached(sql)?;
        let rows = stmt.query_map(args, |row| {
            Ok((raw(row)?, row.get::<_, Option<Vec<u8>>>(11)?))
        })?;
        rows.map(|row| {
            let (raw, origin) = row?;
            let origin = match origin {
                Some(bytes) => Some(DeviceId::from_bytes(id32(bytes, "origin")?)),
                None => None,
            };
            Ok((to_record(raw)?, origin))
        })
        .collect()
    }

    fn devices(&self, sql: &str, args: impl rusqlite::Params) -> Result<Vec<Vec<u8>>, StoreError> {
        let mut stmt = self.tx.prepare_cached(sql)?;
        let rows = stmt.query_map(args, |row| row.get::<_, Vec<u8>>(0))?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Store `record` with `sql` ([`INSERT_RECORD`] or [`INSERT_RIVAL`]), which takes the
    /// `before` values, then [`COLUMNS`], then the `after` values, replacing the row it
    /// replaces.
    fn insert(
        &self,
        sql: &str,
        (before, after): (&[&dyn ToSql], &[&dyn ToSql]),
        record: &Record,
    ) -> Result<(), StoreError> {
        let (kind, hash, size, mode, target) = state_columns(&record.state);
        let path = record.path.as_str();
        let (seq, size, version) = (
            to_i64(record.seq, "sequence number")?,
            to_i64(size, "size")?,
            version_bytes(&record.version)?,
        );
        let retimed = match &record.retimed {
            Some(kept) => Some(version_bytes(kept)?),
            None => None,
        };
        let by = record.by.as_ref().map(|d| &d.as_bytes()[..]);
        let columns: [&dyn ToSql; 11] = [
            &path,
            &seq,
            &kind,
            &hash,
            &size,
            &mode,
            &target,
            &record.mtime_ns,
            &version,
            &retimed,
            &by,
        ];
        let values: Vec<&dyn ToSql> = before
            .iter()
            .chain(columns.iter())
            .chain(after.iter())
            .copied()
            .collect();
        self.tx.prepare_cached(sql)?.execute(values.as_slice())?;
        Ok(())
    }

    fn progress(&self, column: &str, task: &TaskId, peer: &DeviceId) -> Result<u64, StoreError> {
        let sql =
            format!("SELECT {column} FROM peer_progress WHERE task_id = ?1 AND device_id = ?2");
        let value: Option<i64> = self
            .tx
            .prepare_cached(&sql)?
            .query_row(params![task.as_bytes(), peer.as_bytes()], |row| row.get(0))
            .optional()?;
        let value = value.unwrap_or(0);
        u64::try_from(value).map_err(|_| corrupt("sequence number", value))
    }

    fn set_progress(
        &self,
        column: &str,
        task: &TaskId,
        peer: &DeviceId,
        seq: u64,
    ) -> Result<(), StoreError> {
        let sql = format!(
            "INSERT INTO peer_progress (task_id, device_id, {column}) VALUES (?1, ?2, ?3)
             ON CONFLICT (task_id, device_id) DO UPDATE SET {column} = excluded.{column}"
        );
        self.tx.prepare_cached(&sql)?.execute(params![
            task.as_bytes(),
            peer.as_bytes(),
            to_i64(seq, "sequence number")?
        ])?;
        Ok(())
    }
}

impl Ledger for LedgerTx<'_> {
    type Error = StoreError;

    fn tasks(&self) -> Result<Vec<TaskId>, StoreError> {
        if let Some(tasks) = self.seen.tasks.get() {
            return Ok(tasks.clone());
        }
        let tasks: Vec<TaskId> = self
            .devices("SELECT task_id FROM sync_tasks ORDER BY task_id", [])?
            .into_iter()
            .map(|b| id32(b, "task id").map(TaskId::from_bytes))
            .collect::<Result<_, _>>()?;
        Ok(self.seen.tasks.get_or_init(|| tasks).clone())
    }

    fn peers(&self, task: &TaskId) -> Result<Vec<DeviceId>, StoreError> {
        self.devices(
            "SELECT device_id FROM task_links WHERE task_id = ?1 ORDER BY device_id",
            params![task.as_bytes()],
        )?
        .into_iter()
        .map(|b| id32(b, "device id").map(DeviceId::from_bytes))
        .collect()
    }

    fn link(&mut self, task: &TaskId, peer: &DeviceId) -> Result<(), StoreError> {
        self.tx.execute(
            "INSERT OR IGNORE INTO task_links (task_id, device_id) VALUES (?1, ?2)",
            params![task.as_bytes(), peer.as_bytes()],
        )?;
        Ok(())
    }

    fn record(&self, task: &TaskId, path: &RelPath) -> Result<Option<Record>, StoreError> {
        if let Some((t, record)) = &*self.seen.record.borrow() {
            if t == task && record.path == *path {
                return Ok(Some(record.clone()));
            }
        }
        if self
            .seen
            .absent
            .borrow()
            .as_ref()
            .is_some_and(|(t, p)| t == task && p == path)
        {
            return Ok(None);
        }
        let found = self
            .records(RECORD_OF, params![task.as_bytes(), path.as_str()])?
            .pop();
        match &found {
            Some(record) => {
                self.seen.record.replace(Some((*task, record.clone())));
            }
            None => {
                self.seen.absent.replace(Some((*task, path.clone())));
            }
        }
        Ok(found)
    }

    fn put(
        &mut self,
        task: &TaskId,
        record: Record,
        origin: Option<DeviceId>,
    ) -> Result<(), StoreError> {
        self.seen.records_changed();
        let origin = origin.as_ref().map(|o| &o.as_bytes()[..]);
        self.insert(
            INSERT_RECORD,
            (&[&&task.as_bytes()[..]], &[&origin]),
            &record,
        )?;
        if let Some(last) = self.seen.last_seq.borrow_mut().get_mut(task) {
            *last = (*last).max(record.seq);
        }
        Ok(())
    }

    fn records_after(
        &self,
        task: &TaskId,
        after: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Option<DeviceId>)>, StoreError> {
        let args = params![task.as_bytes(), to_i64(after, "sequence number")?];
        self.records_with_origin(&records_after_sql(limit), args)
    }

    fn records_under(&self, task: &TaskId, folder: &RelPath) -> Result<Vec<Record>, StoreError> {
        // Paths under `folder` sort between "folder/" and "folder0" ('0' follows '/').
        let sql = format!(
            "SELECT {COLUMNS} FROM records WHERE task_id = ?1 AND path > ?2 AND path < ?3 ORDER BY path"
        );
        let (low, high) = (format!("{folder}/"), format!("{folder}0"));
        self.records(&sql, params![task.as_bytes(), low, high])
    }

    fn live_under(
        &self,
        task: &TaskId,
        folder: &RelPath,
        start: &RelPath,
        descending: bool,
        limit: usize,
    ) -> Result<Vec<Record>, StoreError> {
        // The first records there, tombstones included (a bounded walk of the primary
        // key), then those that exist.
        let scan = i64::try_from(qsync_core::live_scan_bound(limit)).unwrap_or(i64::MAX);
        let (from, order) = match descending {
            true => ("<=", "DESC"),
            false => (">=", "ASC"),
        };
        let sql = format!(
            "SELECT {COLUMNS} FROM records WHERE task_id = ?1 AND path > ?2 AND path < ?3
             AND path {from} ?4 ORDER BY path {order} LIMIT {scan}"
        );
        let (low, high) = (format!("{folder}/"), format!("{folder}0"));
        let found = self.records(&sql, params![task.as_bytes(), low, high, start.as_str()])?;
        Ok(found
            .into_iter()
            .filter(|r| r.state.exists())
            .take(limit)
            .collect())
    }

    fn last_seq(&self, task: &TaskId) -> Result<u64, StoreError> {
        if let Some(last) = self.seen.last_seq.borrow().get(task) {
            return Ok(*last);
        }
        let last: Option<i64> = self
            .tx
            .prepare_cached(
                "SELECT max(coalesce((SELECT max(seq) FROM records WHERE task_id = ?1), 0),
                            coalesce((SELECT seq FROM forgotten_tombstones WHERE task_id = ?1), 0))",
            )?
            .query_row(params![task.as_bytes()], |row| row.get(0))?;
        let last = last.unwrap_or(0);
        let last = u64::try_from(last).map_err(|_| corrupt("sequence number", last))?;
        self.seen.last_seq.borrow_mut().insert(*task, last);
        Ok(last)
    }

    fn tombstones(
        &self,
        task: &TaskId,
        after: u64,
        upto: u64,
        limit: usize,
    ) -> Result<Vec<(Record, Option<DeviceId>)>, StoreError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {COLUMNS}, origin FROM records WHERE task_id = ?1 AND kind = 0
             AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT {limit}"
        );
        let after = to_i64(after, "sequence number")?;
        let upto = to_i64(upto, "sequence number")?;
        self.records_with_origin(&sql, params![task.as_bytes(), after, upto])
    }

    fn forget_tombstone(&mut self, task: &TaskId, path: &RelPath) -> Result<(), StoreError> {
        let Some(tombstone) = self.record(task, path)?.filter(|r| !r.state.exists()) else {
            return Ok(());
        };
        self.seen.records_changed();
        self.tx
            .prepare_cached("DELETE FROM records WHERE task_id = ?1 AND path = ?2")?
            .execute(params![task.as_bytes(), path.as_str()])?;
        self.tx
            .prepare_cached(
                "INSERT INTO forgotten_tombstones (task_id, seq) VALUES (?1, ?2)
                 ON CONFLICT (task_id) DO UPDATE SET seq = max(seq, ?2)",
            )?
            .execute(params![
                task.as_bytes(),
                to_i64(tombstone.seq, "sequence number")?
            ])?;
        Ok(())
    }

    fn rivals(&self, task: &TaskId, path: &RelPath) -> Result<Vec<(DeviceId, Record)>, StoreError> {
        let mut stmt = self.tx.prepare_cached(RIVALS_OF)?;
        let rows = stmt.query_map(params![task.as_bytes(), path.as_str()], |row| {
            Ok((raw(row)?, row.get::<_, Vec<u8>>(11)?))
        })?;
        rows.map(|r| {
            let (record, device) = r?;
            Ok((
                DeviceId::from_bytes(id32(device, "device id")?),
                to_record(record)?,
            ))
        })
        .collect()
    }

    fn rival_paths(&self, task: &TaskId) -> Result<Vec<RelPath>, StoreError> {
        let mut stmt = self
            .tx
            .prepare_cached("SELECT DISTINCT path FROM rivals WHERE task_id = ?1 ORDER BY path")?;
        let rows = stmt.query_map(params![task.as_bytes()], |row| row.get::<_, String>(0))?;
        rows.map(|r| rel_path(r?)).collect()
    }

    fn set_rival(
        &mut self,
        task: &TaskId,
        path: &RelPath,
        peer: &DeviceId,
        rival: Option<Record>,
    ) -> Result<(), StoreError> {
        let Some(record) = rival else {
            self.tx.execute(
                "DELETE FROM rivals WHERE task_id = ?1 AND path = ?2 AND device_id = ?3",
                params![task.as_bytes(), path.as_str(), peer.as_bytes()],
            )?;
            return Ok(());
        };
        let record = Record {
            path: path.clone(),
            ..record
        };
        let key: [&dyn ToSql; 2] = [&&task.as_bytes()[..], &&peer.as_bytes()[..]];
        self.insert(INSERT_RIVAL, (&key, &[]), &record)
    }

    fn received_upto(&self, task: &TaskId, peer: &DeviceId) -> Result<u64, StoreError> {
        self.progress("received_upto", task, peer)
    }

    fn set_received_upto(
        &mut self,
        task: &TaskId,
        peer: &DeviceId,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.set_progress("received_upto", task, peer, seq)
    }

    fn acked_upto(&self, task: &TaskId, peer: &DeviceId) -> Result<u64, StoreError> {
        self.progress("acked_upto", task, peer)
    }

    fn set_acked_upto(
        &mut self,
        task: &TaskId,
        peer: &DeviceId,
        seq: u64,
    ) -> Result<(), StoreError> {
        self.set_progress("acked_upto", task, peer, seq)
    }

    fn forget_peer(&mut self, task: &TaskId, peer: &DeviceId) -> Result<(), StoreError> {
        self.seen.records_changed();
        self.tx.execute(
            "DELETE FROM peer_progress WHERE task_id = ?1 AND device_id = ?2",
            params![task.as_bytes(), peer.as_bytes()],
        )?;
        self.tx.execute(
            "UPDATE records SET origin = NULL WHERE task_id = ?1 AND origin = ?2",
            params![task.as_bytes(), peer.as_bytes()],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rusqlite::StatementStatus;

    /// The statements written out in full name [`COLUMNS`] as they are.
    #[test]
    fn written_out_statements_name_the_columns() {
        for sql in [INSERT_RECORD, INSERT_RIVAL, RIVALS_OF, RECORD_OF] {
            let flat = sql.split_whitespace().collect::<Vec<_>>().join(" ");
            assert!(flat.contains(COLUMNS), "{sql}");
        }
    }

    /// What a transaction remembers follows its own writes: a record read, then replaced,
    /// is read as replaced; the last sequence number rises with a record put.
    #[test]
    fn a_transaction_reads_its_own_writes() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut store = Store::open(dir.path())?;
        let task = TaskId::from_bytes([7; 32]);
        store.add_task(task, dir.path(), "a")?;
        let mut ledger = store.ledger()?;
        let path = RelPath::new("a")?;
        assert_eq!(ledger.record(&task, &path)?, None);
        assert_eq!(ledger.last_seq(&task)?, 0);
        let record = |seq: u64, size: u64| Record {
            path: path.clone(),
            state: State::File {
                hash: ContentHash::of(b"a"),
                size,
                mode: 0o644,
            },
            version: VersionVector::new(),
            mtime_ns: 1,
            seq,
            retimed: None,
            by: None,
        };
        ledger.put(&task, record(1, 1), None)?;
        assert_eq!(ledger.record(&task, &path)?, Some(record(1, 1)));
        assert_eq!(ledger.last_seq(&task)?, 1);
        ledger.put(&task, record(2, 2), Some(DeviceId::from_bytes([9; 32])))?;
        assert_eq!(ledger.record(&task, &path)?, Some(record(2, 2)));
        assert_eq!(ledger.last_seq(&task)?, 2);
        assert_eq!(
            ledger.records_after(&task, 0, 10)?[0].1,
            Some(DeviceId::from_bytes([9; 32]))
        );
        ledger.put(&task, record(3, 3), None)?;
        assert_eq!(ledger.records_after(&task, 0, 10)?[0].1, None);
        Ok(())
    }

    /// Reading the records after one number, then after another, uses the statement
    /// compiled the first time: SQLite does not compile it again for the new bindings.
    #[test]
    fn records_after_is_compiled_once() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let mut store = Store::open(dir.path())?;
        let task = TaskId::from_bytes([7; 32]);
        let ledger = store.ledger()?;
        for after in 0..5 {
            ledger.records_after(&task, after, 256)?;
        }
        let stmt = ledger.tx.prepare_cached(&records_after_sql(256))?;
        assert_eq!(stmt.get_status(StatementStatus::RePrepare), 0);
        Ok(())
    }
}
