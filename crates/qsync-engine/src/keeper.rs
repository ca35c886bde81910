//! Blobs of new file versions (received, or changed here), kept off the critical path.
//!
//! The store keeps the newest full content of every file as a blob, to make a delta
//! against when the file changes. Neither a received file's acknowledgement nor a local
//! change's announcement needs that copy, so the daemon owes it instead, and hands what it
//! owes to this thread once it has been quiet for a moment. The keeper reads each file through a hasher into
//! a temporary blob and keeps it only if the hash is still the one received: the file may
//! have changed since, and then there is nothing to keep (its next edit goes whole rather
//! than as a delta, which the sender already does whenever a blob is missing). A blob is
//! named by the hash of what was actually read, so a stored blob is always what its name
//! says. Each batch is made durable with one `syncfs`, then named.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Sender};

use qsync_base::{ContentHash, RelPath};
use qsync_store::Blobs;

use crate::driver::root::TaskRoot;
use crate::fsops::sync_file_systems;

/// A file version whose blob is still to be kept.
#[derive(Debug, Clone)]
pub(crate) struct Owed {
    /// The task folder it is in...
    pub(crate) root: PathBuf,
    /// ...and its path there (read through [`TaskRoot`]: never through a link).
    pub(crate) path: RelPath,
    /// What it held when it was received or seen.
    pub(crate) hash: ContentHash,
}

/// How many blobs are staged (each an open temporary file) before one flush.
const BATCH: usize = 64;

/// The thread that keeps owed blobs.
pub(crate) struct Keeper {
    tx: Sender<Vec<Owed>>,
}

impl Keeper {
    /// Start the thread; it ends when the keeper is dropped and its work is done.
    pub(crate) fn start(blobs: Blobs) -> Keeper {
        let (tx, rx) = channel::<Vec<Owed>>();
        std::thread::Builder::new()
            .name("qsync-keeper".into())
            .spawn(move || {
                for owed in rx {
                    for batch in owed.chunks(BATCH) {
                        keep(&blobs, batch);
                    }
                }
            })
            .map_or_else(
                |e| tracing::warn!(error = %e, "could not start the blob keeper; received files will not be kept as blobs"),
                |_| (),
            );
        Keeper { tx }
    }

    /// Keep these blobs, in the background.
    pub(crate) fn keep(&self, owed: Vec<Owed>) {
        if !owed.is_empty() {
            let _ = self.tx.send(owed);
        }
    }
}

/// Stage the blobs of `owed` whose files still hold what was received, make them durable
/// together, then name them.
fn keep(blobs: &Blobs, owed: &[Owed]) {
    let mut staged = Vec::with_capacity(owed.len());
    for o in owed {
        if blobs.contains(&o.hash) {
            continue;
        }
        let Ok(file) = TaskRoot::open(&o.root).and_then(|r| r.open_file(&o.path)) else {
            continue;
        };
        match blobs.stage(file) {
            Ok((hash, Some(blob))) if hash == o.hash => staged.push(blob),
            Ok(_) => {}
            Err(e) => {
                tracing::debug!(error = %e, path = %o.path, "could not keep a blob")
            }
        }
    }
    if staged.is_empty() {
        return;
    }
    if let Err(e) = sync_file_systems(&[blobs.dir()]) {
        tracing::warn!(error = %e, "could not make blobs durable; they are not kept");
        return;
    }
    for blob in staged {
        if let Err(e) = blob.publish() {
            tracing::warn!(error = %e, "could not keep a blob");
        }
    }
}
