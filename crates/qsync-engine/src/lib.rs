//! QSync's sync engine: the daemon that drives `qsync-core`'s rules. What other crates use:
//!
//! - [`run`] a daemon with a [`DaemonConfig`] (until the process ends);
//! - [`control`] (the `qsync-control` crate): the control socket's typed protocol (one
//!   JSON [`control::Command`] per line in, one [`control::Reply`] out; `Events` streams
//!   what happens), which the CLI, the terminal menu and any other front end speak; the
//!   daemon turns its words into the store's (`daemon/terms.rs`);
//! - [`btf`]: the back-to-front channel, through which the engine asks its person things;
//! - [`exchange`] (the `qsync-exchange` crate): the receiving side of the content
//!   exchange, a sans-IO state machine (which holder is asked for what, from which byte).
//!
//! Inside: `daemon` (the engine thread and the parts it routes between: peers, tasks,
//! links, the keeping of blobs), `sync` (the driver of the core: one ledger transaction
//! per batch of facts, orders carried out), `driver` (placements, transfers, the folder
//! guard), `net` (sessions, pairing, admission).
//!
//! ```no_run
//! let config = qsync_engine::DaemonConfig {
//!     state_dir: "/home/me/.local/share/qsync".into(),
//!     listen: "0.0.0.0:7878".parse().unwrap(),
//!     name: "laptop".into(),
//!     mdns: true,
//!     btf_dir: "/home/me/.local/share/qsync/btf".into(),
//!     answer_timeout: std::time::Duration::from_secs(300),
//!     rescan_every: std::time::Duration::from_secs(3600),
//!     base_share: 10,
//! };
//! qsync_engine::run(config).unwrap();
//! ```

pub mod btf;
pub use qsync_control as control;
mod daemon;
mod driver;
#[doc(hidden)]
pub mod fuzzing;
mod keeper;
mod net;
mod sync;

/// The receiving side of the content exchange (the `qsync-exchange` crate).
pub use qsync_exchange as exchange;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use daemon::{run, Daemon, DaemonConfig, DaemonHandle};
pub use driver::root::RootError;

/// What can stop the engine or one of its operations.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The state database.
    #[error(transparent)]
    Store(#[from] qsync_store::StoreError),
    /// Mapping or watching a folder.
    #[error(transparent)]
    Watch(#[from] qsync_watch::WatchError),
    /// Encoding or applying a delta.
    #[error(transparent)]
    Delta(#[from] qsync_delta::DeltaError),
    /// Discovery.
    #[error(transparent)]
    Discovery(#[from] qsync_discovery::DiscoveryError),
    /// A path of a task could not be used (unsafe, or the file system refused).
    #[error(transparent)]
    Root(#[from] driver::root::RootError),
    /// A named limit was reached (the update is refused or asked for again later; the
    /// daemon serves everything else).
    #[error("limit reached: {0}")]
    Limit(String),
    /// A file operation.
    #[error("could not {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The daemon could not listen.
    #[error("could not listen on {0}: {1} (is another daemon using that port? pick another with --port)")]
    Listen(SocketAddr, std::io::Error),
    /// The control socket.
    #[error(transparent)]
    Control(#[from] qsync_control::ControlError),
    /// Another daemon runs on this state folder.
    #[error("another QSync daemon{} runs on the state folder {}; stop it first, or give this one another --state-dir", .pid.map(|p| format!(" (pid {p})")).unwrap_or_default(), .state_dir.display())]
    AlreadyRunning {
        /// The state folder.
        state_dir: PathBuf,
        /// The running daemon's process id, as it wrote it.
        pid: Option<u32>,
    },
    /// A task this device does not have.
    #[error("no sync task {0} on this device")]
    UnknownTask(qsync_base::TaskId),
    /// Inconsistent state or input.
    #[error("{0}")]
    State(String),
}

impl EngineError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }
}
