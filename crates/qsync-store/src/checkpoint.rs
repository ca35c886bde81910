//! Checkpoints of the write-ahead log, on a thread of their own.
//!
//! In WAL mode SQLite appends every commit to the log, and copies the log back into the
//! database (a checkpoint, with its own `fsync`) once the log passes 1,000 pages, inside
//! the commit that passed it. The sync engine commits after each batch of its work, so
//! that copy ran on the engine's thread: an eighth of that thread's time while a folder of
//! a million files was recorded. Here the store's own connection never checkpoints
//! (`wal_autocheckpoint = 0`), and a [`Checkpointer`] with a second connection to the same
//! database runs a passive checkpoint (one that never waits for, nor blocks, the writer)
//! every [`PERIOD`]. While the engine commits without a pause the log may not be copied
//! back whole, and SQLite only starts it over once it is: past [`LOG_PAGES_AT_MOST`] the
//! committing connection checkpoints it itself, as before (a backstop, not the rule).
//! Dropping the checkpointer stops its thread and waits for it; the store's connection,
//! closed last, checkpoints what is left, as SQLite always does.

use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;

/// Pages of log past which the writing connection checkpoints it itself (32 MiB).
pub(crate) const LOG_PAGES_AT_MOST: u32 = 8192;

/// The size the log file is cut back to after it was started over, in bytes.
pub(crate) const LOG_BYTES_KEPT: i64 = 8 << 20;

/// How often the log is copied back.
pub(crate) const PERIOD: Duration = Duration::from_millis(500);

/// The thread that checkpoints one database (see the [module documentation](self)). Its
/// thread is stopped, and waited for, when this is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

impl Checkpointer {
    /// Start checkpointing the database at `db`, in WAL mode already.
    pub(crate) fn start(db: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(db)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (stop, stopped) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("qsync-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PERIOD) {
                    // A checkpoint that fails (the disk is full, say) is tried again at
                    // the next period; the log keeps everything meanwhile.
                    let done = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()));
                    if let Err(e) = done {
                        tracing::debug!(error = %e, "checkpoint of the store's log failed");
                    }
                }
            })
            .map_err(|e| StoreError::io("start a thread for", db, e))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }
}

impl Drop for Checkpointer {
    /// Stop the thread and wait for it: its connection is closed when this returns, so
    /// the store's own connection, closed after, is the last and checkpoints what is
    /// left (commits are made durable by checkpoints, with `synchronous = NORMAL`).
    fn drop(&mut self) {
        drop(self.stop.take());
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use qsync_base::TaskId;

    use crate::{Store, DB_FILE};

    /// A store closed leaves its database whole and no log behind: the checkpointer's
    /// thread is gone before the store's own connection closes, which copies the rest.
    #[test]
    fn a_closed_store_leaves_no_log() {
        let dir = tempfile::tempdir().unwrap();
        let task = TaskId::from_bytes([3; 32]);
        {
            let mut store = Store::open(dir.path()).unwrap();
            store.add_task(task, dir.path(), "t").unwrap();
        }
        let log = dir.path().join(format!("{DB_FILE}-wal"));
        assert!(!log.exists(), "the log is removed at the last close");
        let store = Store::open(dir.path()).unwrap();
        assert!(store.task(task).unwrap().is_some());
    }
}
