//! Checkpoints of the write-ahead log, on a thread of their own.
//!
//! In WAL mode SQLite appends every commit to the log, and copies the log back into the
//! database (a checkpoint, with its own `fsync`) once the log passes 1,000 pages, inside
//! the commit that passed it. The sync engine commits after each batch of its work, so
//! that copy ran on the engine's thread: an eighth of that thread's time while a folder of
//! a million files was recorded. Here the store's own connection never checkpoints
//! (`wal_autocheckpoint = 0`), and a [`Checkpointer`] with a second connection to the same
//! database runs a passive checkpoint (one that never waits for, nor blocks, the writer)
//! every [`PERIOD`]. Dropping the checkpointer stops its thread; closing the last
//! connection checkpoints what is left, as SQLite always does.

use std::path::Path;
use std::sync::mpsc::{channel, RecvTimeoutError, Sender};
use std::time::Duration;

use rusqlite::Connection;

use crate::StoreError;

/// How often the log is copied back.
pub(crate) const PERIOD: Duration = Duration::from_millis(500);

/// The thread that checkpoints one database (see the [module documentation](self)). Its
/// thread ends when this is dropped.
#[derive(Debug)]
pub(crate) struct Checkpointer {
    _stop: Sender<()>,
}

impl Checkpointer {
    /// Start checkpointing the database at `db`, in WAL mode already.
    pub(crate) fn start(db: &Path) -> Result<Self, StoreError> {
        let conn = Connection::open(db)?;
        conn.busy_timeout(Duration::from_secs(5))?;
        let (stop, stopped) = channel::<()>();
        std::thread::Builder::new()
            .name("qsync-checkpoint".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(PERIOD) {
                    // A checkpoint that fails (the disk is full, say) is tried again at
                    // the next period; the log keeps everything meanwhile.
                    if let Err(e) = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |_| Ok(()))
                    {
                        tracing::debug!(error = %e, "checkpoint of the store's log failed");
                    }
                }
            })
            .map_err(|e| StoreError::io("start a thread for", db, e))?;
        Ok(Self { _stop: stop })
    }
}
