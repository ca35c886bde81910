//! Versions: what a change from another device deleted or replaced here (and what a
//! restore replaced), kept so that a person can bring it back. This module holds their
//! rows and the policy of each task, and decides which versions a policy lets go
//! ([`VersionPolicy::to_drop`], a pure function of the rows and the time: no clock, no
//! disk). Their bytes are the daemon's: one file per content in the state folder's
//! `versions/<task>/<hash>`, shared by the rows of the same content.
//!
//! ```
//! use qsync_base::{ContentHash, RelPath, TaskId};
//! use qsync_store::{NewVersion, Store, VersionPolicy};
//!
//! let dir = tempfile::tempdir()?;
//! let mut store = Store::open(dir.path())?;
//! let task = TaskId::random();
//! store.add_task(task, "/home/me/Notes".as_ref(), "Notes")?;
//! let kept = NewVersion { path: RelPath::new("todo.txt")?, hash: ContentHash::of(b"milk"),
//!     size: 4, mtime_ns: 0, kept_ns: 1_000, by: None, why: "deleted".into() };
//! store.versions().add(task, &kept)?;
//! assert_eq!(store.versions().list(task, None)?.len(), 1);
//! assert_eq!(store.versions().policy(task)?, VersionPolicy::default());
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use std::collections::HashSet;

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{corrupt, id32, rel_path, to_i64, StoreError};

const NS_PER_SEC: i64 = 1_000_000_000;
const HOUR: i64 = 3600 * NS_PER_SEC;
const DAY: i64 = 24 * HOUR;

/// How long a task keeps versions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "keep", rename_all = "snake_case")]
pub enum Keep {
    /// None (a removed file is still kept a minute, for a rename seen as a delete and a
    /// create: see the engine's staging).
    Off,
    /// Every version, for `days` days.
    Trash {
        /// Days.
        days: u32,
    },
    /// Syncthing's schedule: per path, one version per 30 seconds for the first hour, one
    /// per hour for the first day, one per day for the first 30 days, one per week after
    /// that, none past `days` days.
    Staggered {
        /// Days.
        days: u32,
    },
}

/// What a task keeps, and how much disk its versions may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionPolicy {
    /// How long.
    #[serde(flatten)]
    pub keep: Keep,
    /// Bytes all versions of the task may take (`None`: [`DEFAULT_CAP`]). The oldest go
    /// first when they take more.
    pub cap: Option<u64>,
}

/// The default cap of a task's versions: 2 GiB.
pub const DEFAULT_CAP: u64 = 2 << 30;

/// At most this many versions per task, whatever their size (a peer deleting a million
/// empty files makes a row each).
pub const MAX_ROWS: usize = 100_000;

/// What a version counts at least against the cap: a file system block.
const BLOCK: u64 = 4096;

impl Default for VersionPolicy {
    /// Staggered for a year, within [`DEFAULT_CAP`].
    fn default() -> Self {
        Self {
            keep: Keep::Staggered { days: 365 },
            cap: None,
        }
    }
}

/// A version to record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewVersion {
    /// Where it was, in its task folder.
    pub path: RelPath,
    /// Its content (its bytes are under this name in the task's versions folder).
    pub hash: ContentHash,
    /// Its size.
    pub size: u64,
    /// Its modification time.
    pub mtime_ns: i64,
    /// When it was kept.
    pub kept_ns: i64,
    /// The device whose person made it, as its record said (`None`: not known, as for a
    /// version kept before an edit made here or a restore).
    pub by: Option<DeviceId>,
    /// Why it was kept, in a word: `deleted`, `replaced`, `edited`, `restored-over`.
    pub why: String,
}

/// A recorded version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Version {
    /// Its number, for `qsync restore --version`.
    pub id: i64,
    /// The rest.
    pub kept: NewVersion,
}

impl VersionPolicy {
    /// The cap in bytes.
    pub fn cap_bytes(&self) -> u64 {
        self.cap.unwrap_or(DEFAULT_CAP)
    }

    /// Which of a task's `versions` this policy lets go at `now_ns`: those past its age,
    /// those its schedule thins out, then the oldest until the rest fit the cap (bytes are
    /// counted once per content, rows of one content sharing a file, and at least a block
    /// each) and [`MAX_ROWS`].
    pub fn to_drop(&self, versions: &[Version], now_ns: i64) -> Vec<i64> {
        let mut by_path: std::collections::BTreeMap<&RelPath, Vec<&Version>> =
            std::collections::BTreeMap::new();
        for v in versions {
            by_path.entry(&v.kept.path).or_default().push(v);
        }
        let mut dropped = HashSet::new();
        for mut of_path in by_path.into_values() {
            // Newest first.
            of_path.sort_by_key(|v| (std::cmp::Reverse(v.kept.kept_ns), std::cmp::Reverse(v.id)));
            let mut last_kept: Option<i64> = None;
            for v in of_path {
                let age = now_ns.saturating_sub(v.kept.kept_ns).max(0);
                let keep = match self.keep {
                    Keep::Off => false,
                    Keep::Trash { days } => age <= i64::from(days) * DAY,
                    Keep::Staggered { days } => {
                        age <= i64::from(days) * DAY
                            && last_kept.is_none_or(|last| last - v.kept.kept_ns >= spacing(age))
                    }
                };
                if keep {
                    last_kept = Some(v.kept.kept_ns);
                } else {
                    dropped.insert(v.id);
                }
            }
        }
        // The cap: the oldest go first.
        let mut left: Vec<&Version> = versions
            .iter()
            .filter(|v| !dropped.contains(&v.id))
            .collect();
        left.sort_by_key(|v| (v.kept.kept_ns, v.id));
        // A file takes at least a block of the file system.
        let mut uses: std::collections::HashMap<ContentHash, (usize, u64)> = Default::default();
        for v in &left {
            let e = uses
                .entry(v.kept.hash)
                .or_insert((0, v.kept.size.max(BLOCK)));
            e.0 += 1;
        }
        let mut rows = left.len();
        let mut bytes: u64 = uses.values().map(|(_, size)| size).sum();
        for v in left {
            if bytes <= self.cap_bytes() && rows <= MAX_ROWS {
                break;
            }
            dropped.insert(v.id);
            rows -= 1;
            if let Some(e) = uses.get_mut(&v.kept.hash) {
                e.0 -= 1;
                if e.0 == 0 {
                    bytes -= e.1;
                }
            }
        }
        let mut out: Vec<i64> = dropped.into_iter().collect();
        out.sort_unstable();
        out
    }
}

/// The smallest time between two versions of a path kept by the staggered schedule, for
/// the older one's `age`.
fn spacing(age: i64) -> i64 {
    if age < HOUR {
        30 * NS_PER_SEC
    } else if age < DAY {
        HOUR
    } else if age < 30 * DAY {
        DAY
    } else {
        7 * DAY
    }
}

/// The versions of the store's tasks (see [`crate::Store::versions`]).
pub struct Versions<'s> {
    pub(crate) conn: &'s Connection,
}

/// Columns of a `versions` row as SQLite gives them.
type RawVersion = (i64, String, Vec<u8>, i64, i64, i64, Option<Vec<u8>>, String);

impl Versions<'_> {
    /// Record a version of `task`; its number.
    pub fn add(&self, task: TaskId, v: &NewVersion) -> Result<i64, StoreError> {
        insert(self.conn, task, v)
    }

    /// Record many versions in one transaction (a received deletion of a folder of
    /// 100,000 files keeps as many).
    pub fn add_all(&self, versions: &[(TaskId, NewVersion)]) -> Result<(), StoreError> {
        let tx = self.conn.unchecked_transaction()?;
        for (task, v) in versions {
            insert(&tx, *task, v)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The versions of `task`, oldest first: all of them, or those of `under` (that path,
    /// or anything beneath it when it is a folder).
    pub fn list(&self, task: TaskId, under: Option<&RelPath>) -> Result<Vec<Version>, StoreError> {
        let mut stmt = self.conn.prepare_cached(
            "SELECT id, path, hash, size, mtime_ns, kept_ns, by, why FROM versions
             WHERE task_id = ?1 ORDER BY kept_ns, id",
        )?;
        let rows = stmt.query_map([&task.as_bytes()[..]], |r| {
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
        })?;
        let mut out = Vec::new();
        for row in rows {
            let v = to_version(row?)?;
            if under.is_none_or(|u| &v.kept.path == u || v.kept.path.starts_with(u)) {
                out.push(v);
            }
        }
        Ok(out)
    }

    /// One version of `task`, by its number.
    pub fn get(&self, task: TaskId, id: i64) -> Result<Option<Version>, StoreError> {
        Ok(self.list(task, None)?.into_iter().find(|v| v.id == id))
    }

    /// Forget versions by their numbers.
    pub fn remove(&self, ids: &[i64]) -> Result<(), StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("DELETE FROM versions WHERE id = ?1")?;
        for id in ids {
            stmt.execute([id])?;
        }
        Ok(())
    }

    /// The contents `task`'s versions still refer to.
    pub fn hashes(&self, task: TaskId) -> Result<HashSet<ContentHash>, StoreError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT hash FROM versions WHERE task_id = ?1")?;
        let rows = stmt.query_map([&task.as_bytes()[..]], |r| r.get::<_, Vec<u8>>(0))?;
        let mut out = HashSet::new();
        for row in rows {
            out.insert(ContentHash::from_bytes(id32(row?, "hash")?));
        }
        Ok(out)
    }

    /// The policy of `task` (the default unless its person chose one).
    pub fn policy(&self, task: TaskId) -> Result<VersionPolicy, StoreError> {
        let row = self
            .conn
            .query_row(
                "SELECT keep, days, cap FROM version_policies WHERE task_id = ?1",
                [&task.as_bytes()[..]],
                |r| {
                    Ok((
                        r.get::<_, String>(0)?,
                        r.get::<_, i64>(1)?,
                        r.get::<_, Option<i64>>(2)?,
                    ))
                },
            )
            .optional()?;
        let Some((keep, days, cap)) = row else {
            return Ok(VersionPolicy::default());
        };
        let days = u32::try_from(days).map_err(|_| corrupt("version days", days))?;
        let keep = match keep.as_str() {
            "off" => Keep::Off,
            "trash" => Keep::Trash { days },
            "staggered" => Keep::Staggered { days },
            other => return Err(corrupt("version policy", other)),
        };
        let cap = cap
            .map(|c| u64::try_from(c).map_err(|_| corrupt("version cap", c)))
            .transpose()?;
        Ok(VersionPolicy { keep, cap })
    }

    /// Set the policy of `task`.
    pub fn set_policy(&self, task: TaskId, policy: VersionPolicy) -> Result<(), StoreError> {
        let (keep, days) = match policy.keep {
            Keep::Off => ("off", 0),
            Keep::Trash { days } => ("trash", days),
            Keep::Staggered { days } => ("staggered", days),
        };
        let cap = policy.cap.map(|c| to_i64(c, "version cap")).transpose()?;
        let n = self.conn.execute(
            "INSERT INTO version_policies (task_id, keep, days, cap)
             SELECT task_id, ?2, ?3, ?4 FROM sync_tasks WHERE task_id = ?1
             ON CONFLICT (task_id) DO UPDATE SET keep = ?2, days = ?3, cap = ?4",
            params![&task.as_bytes()[..], keep, days, cap],
        )?;
        if n == 0 {
            return Err(StoreError::UnknownTask(task));
        }
        Ok(())
    }
}

fn insert(conn: &Connection, task: TaskId, v: &NewVersion) -> Result<i64, StoreError> {
    let mut stmt = conn.prepare_cached(
        "INSERT INTO versions (task_id, path, hash, size, mtime_ns, kept_ns, by, why)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
    )?;
    stmt.execute(params![
        &task.as_bytes()[..],
        v.path.as_str(),
        &v.hash.as_bytes()[..],
        to_i64(v.size, "size")?,
        v.mtime_ns,
        v.kept_ns,
        v.by.as_ref().map(|d| d.as_bytes().to_vec()),
        v.why,
    ])?;
    Ok(conn.last_insert_rowid())
}

fn to_version(raw: RawVersion) -> Result<Version, StoreError> {
    let (id, path, hash, size, mtime_ns, kept_ns, by, why) = raw;
    Ok(Version {
        id,
        kept: NewVersion {
            path: rel_path(path)?,
            hash: ContentHash::from_bytes(id32(hash, "hash")?),
            size: u64::try_from(size).map_err(|_| corrupt("size", size))?,
            mtime_ns,
            kept_ns,
            by: by
                .map(|b| id32(b, "device").map(DeviceId::from_bytes))
                .transpose()?,
            why,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: i64 = 60 * NS_PER_SEC;

    fn version(id: i64, path: &str, kept_ns: i64, size: u64) -> Version {
        Version {
            id,
            kept: NewVersion {
                path: RelPath::new(path).unwrap(),
                hash: ContentHash::of(&id.to_le_bytes()),
                size,
                mtime_ns: 0,
                kept_ns,
                by: None,
                why: "replaced".into(),
            },
        }
    }

    fn staggered() -> VersionPolicy {
        VersionPolicy {
            keep: Keep::Staggered { days: 365 },
            cap: None,
        }
    }

    #[test]
    fn staggered_keeps_one_per_30_seconds_in_the_first_hour() {
        let now = 10 * DAY;
        // A version every 10 s for the last 5 minutes: one in three stays.
        let versions: Vec<Version> = (0..30)
            .map(|i| version(i, "a", now - i * 10 * NS_PER_SEC, 1))
            .collect();
        let dropped = staggered().to_drop(&versions, now);
        let kept: Vec<i64> = (0..30).filter(|i| !dropped.contains(i)).collect();
        assert_eq!(kept, (0..30).step_by(3).collect::<Vec<_>>());
    }

    #[test]
    fn staggered_keeps_a_version_every_30_seconds_of_ten_made_10_seconds_apart() {
        let now = 10 * DAY;
        let versions: Vec<Version> = (0..10)
            .map(|i| version(i, "a", now - 65 * NS_PER_SEC - i * 10 * NS_PER_SEC, 1))
            .collect();
        let dropped = staggered().to_drop(&versions, now);
        let kept: Vec<i64> = (0..10).filter(|i| !dropped.contains(i)).collect();
        assert_eq!(kept, vec![0, 3, 6, 9]);
    }

    #[test]
    fn staggered_thins_older_versions_to_hours_days_and_weeks() {
        let now = 400 * DAY;
        // One version every 10 minutes over the last 2 days: the first hour keeps all six
        // (10 min > 30 s), then one per hour until a day (the first an hour after the
        // last of the first hour's), then one per day.
        let versions: Vec<Version> = (0..288)
            .map(|i| version(i, "a", now - i * 10 * MIN, 1))
            .collect();
        let dropped = staggered().to_drop(&versions, now);
        let kept: Vec<i64> = (0..288).filter(|i| !dropped.contains(i)).collect();
        assert_eq!(&kept[..7], &[0, 1, 2, 3, 4, 5, 11]);
        // Between an hour and a day old: six versions an hour apart each.
        let between: Vec<&i64> = kept
            .iter()
            .filter(|i| **i * 10 * MIN >= HOUR && **i * 10 * MIN < DAY)
            .collect();
        assert!(
            between.windows(2).all(|w| (w[1] - w[0]) * 10 * MIN >= HOUR),
            "{between:?}"
        );
        assert_eq!(between.len(), 23);
        // Past a day: one a day.
        let older: Vec<&i64> = kept.iter().filter(|i| **i * 10 * MIN >= DAY).collect();
        assert!(older.len() <= 2, "{older:?}");
        // Past the policy's age: none; weeks apart past 30 days.
        let old = vec![
            version(1, "b", now - 40 * DAY, 1),
            version(2, "b", now - 42 * DAY, 1),
            version(3, "b", now - 48 * DAY, 1),
            version(4, "b", now - 366 * DAY, 1),
        ];
        assert_eq!(staggered().to_drop(&old, now), vec![2, 4]);
    }

    #[test]
    fn trash_keeps_everything_for_its_days_and_off_nothing() {
        let now = 100 * DAY;
        let versions = vec![
            version(1, "a", now - 2 * DAY, 1),
            version(2, "a", now - DAY / 2, 1),
        ];
        let trash = VersionPolicy {
            keep: Keep::Trash { days: 1 },
            cap: None,
        };
        assert_eq!(trash.to_drop(&versions, now), vec![1]);
        let off = VersionPolicy {
            keep: Keep::Off,
            cap: None,
        };
        assert_eq!(off.to_drop(&versions, now), vec![1, 2]);
    }

    #[test]
    fn the_cap_lets_the_oldest_go_and_counts_a_content_once() {
        let now = DAY;
        let mut versions = vec![
            version(1, "a", now - 300 * NS_PER_SEC, 40),
            version(2, "b", now - 200 * NS_PER_SEC, 40),
            version(3, "c", now - 100 * NS_PER_SEC, 40),
        ];
        // The third is the second's content again: two blocks in all.
        versions[2].kept.hash = versions[1].kept.hash;
        let cap = |bytes| VersionPolicy {
            keep: Keep::Trash { days: 30 },
            cap: Some(bytes),
        };
        assert_eq!(cap(2 * BLOCK).to_drop(&versions, now), Vec::<i64>::new());
        assert_eq!(cap(BLOCK + 100).to_drop(&versions, now), vec![1]);
        assert_eq!(cap(10).to_drop(&versions, now), vec![1, 2, 3]);
        // Rows count too, whatever their size.
        let rows = MAX_ROWS as i64 + 5;
        let mut many: Vec<Version> = (0..rows)
            .map(|i| version(i, "a", now - rows + i, 0))
            .collect();
        let hash = many[0].kept.hash;
        many.iter_mut().for_each(|v| v.kept.hash = hash);
        let trash = VersionPolicy {
            keep: Keep::Trash { days: 30 },
            cap: None,
        };
        assert_eq!(trash.to_drop(&many, now), vec![0, 1, 2, 3, 4]);
    }
}
