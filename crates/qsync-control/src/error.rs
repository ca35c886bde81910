//! What can go wrong on either end of the control socket.

use std::path::{Path, PathBuf};

/// An error of the control socket: no daemon there, the socket failed, or what came over
/// it was not the protocol.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No daemon answers on the control socket.
    #[error("no QSync daemon is running for {} ({source}); start one with `qsync daemon`", .socket.display())]
    NoDaemon {
        /// The control socket tried.
        socket: PathBuf,
        /// Why it did not answer.
        source: std::io::Error,
    },
    /// A file or socket operation.
    #[error("could not {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// What came over the socket is not the protocol (or could not be said in it).
    #[error("{0}")]
    Protocol(String),
}

impl ControlError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}
