use std::path::PathBuf;

/// What went wrong with QSync's state.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite refused or failed.
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A schema migration failed.
    #[error("could not bring the database schema up to date: {0}")]
    Migration(#[from] refinery::Error),
    /// A file operation in the state directory failed.
    #[error("could not {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The database holds a value no QSync writes (edited by hand, or a bug).
    #[error("the database holds an invalid {what}: {detail}")]
    Corrupt {
        /// Which kind of value.
        what: &'static str,
        /// Details.
        detail: String,
    },
    /// An operation named a task this device does not have.
    #[error("no sync task {0} on this device")]
    UnknownTask(qsync_base::TaskId),
    /// An operation named a device this device is not linked with.
    #[error("device {0} is not linked with this device")]
    UnknownDevice(qsync_base::DeviceId),
}

impl StoreError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
