//! QSync's file-system mapper and watcher.
//!
//! - [`scan`] walks a task's root in parallel and returns every entry (relative
//!   `/`-separated path, kind, size, mtime, BLAKE3 hash), skipping what the root's
//!   `.qsyncignore` says (gitignore syntax) and QSync's own temporary files. Hashes are
//!   reused from a previous scan when size and mtime are unchanged. Symlinks are recorded
//!   (their content is the link target) and never followed.
//! - [`Index`] is a sans-IO state machine: it holds what QSync believes is on disk and turns
//!   fresh observations of touched paths into clean [`LocalEvent`]s. Notifications are only
//!   hints; what is reported is the difference between the index and the disk. So an editor's
//!   save through a temporary file and a rename comes out as one `Modify` of the real file.
//! - Echo suppression: before the engine writes a remote update it calls [`Index::expect`]
//!   with the state it is about to write. An observation matching it is absorbed silently,
//!   and one that differs (a genuine local edit made meanwhile) is reported as usual.
//! - Walks stream: [`WalkPlan::run`] hands a folder's entries over in bounded chunks as
//!   it goes, [`fold_walked`] folds each into the index (each path looked at again, as the
//!   walk ran on other threads), [`look_again`] settles what the walk did not find. The
//!   daemon walks on its own thread this way; [`observe`] and [`scan`] walk at once.
//! - Files are hashed away from the index: whoever holds it only stats. A file whose
//!   recorded hash no longer stands comes back as a [`ToHash`] (from [`observe_deferred`],
//!   [`fold_walked`], [`look_again`]); [`ToHash::hash`] reads it on another thread and
//!   [`fold_hashed`] folds the result in, looking again first (a file written while it
//!   was hashed is hashed again). [`observe`] and [`hash_now`] hash at once.
//! - [`TaskWatcher`] watches the root (notify) and delivers [`WatchBatch`]es once each path
//!   is quiet (a file closed after writing: at once): touched paths and renames, or a
//!   rescan request when the kernel queue overflowed.
//!
//! ```no_run
//! use qsync_watch::{scan, Index, TaskWatcher};
//! use std::time::Duration;
//!
//! let root = std::path::Path::new("/home/me/Notes");
//! let mut index = Index::new(scan(root, &Default::default())?);
//! let (_watcher, batches) = TaskWatcher::start(root, Duration::from_millis(200))?;
//! for batch in batches {
//!     for event in qsync_watch::observe(root, &mut index, &batch)? {
//!         println!("{event:?}");
//!     }
//! }
//! # Ok::<(), qsync_watch::WatchError>(())
//! ```

mod entries;
mod hashing;
mod index;
mod scan;
mod stream;
mod watcher;

pub use hashing::{fold_hashed, hash_now, Folded, Hashed, ToHash, HASH_TRIES};
pub use index::{Index, LocalEvent};
pub use scan::{
    is_own_temp_file, reusable_hash, scan, scan_reporting, stat_entry, Filter, Scan, IGNORE_FILE,
};
pub use stream::{
    fold_walked, look_again, walk_now, WalkEnd, WalkPlan, Walked, CHUNK_AGE, CHUNK_ENTRIES,
};
pub use watcher::{
    observe, observe_deferred, Observed, TaskWatcher, WatchBatch, OPEN_AT_MOST, UNCLOSED_QUIET,
};

use std::path::PathBuf;

/// What went wrong mapping or watching a folder.
#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    /// A file operation failed.
    #[error("could not {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// The `.qsyncignore` file is not valid.
    #[error("invalid ignore rules in {}: {message}", path.display())]
    Ignore {
        /// The ignore file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A walk was stopped before its end (whoever took its entries stopped listening).
    #[error("the walk was stopped before its end")]
    Stopped,
    /// The system watcher could not be started or extended.
    #[error("could not watch {}: {message} (on Linux, raising fs.inotify.max_user_watches may help)", path.display())]
    Watch {
        /// The root.
        path: PathBuf,
        /// notify's message.
        message: String,
    },
}

impl WatchError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
