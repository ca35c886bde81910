//! Received changes a task's folder does not take (a symlink whose target leaves the
//! folder: see `driver/guard.rs`), kept for `qsync status` beside the names QSync cannot
//! carry, and logged once each with the peer that sent them. The core tries such a
//! placement again now and then (waiting up to 16 s); it is listed and logged only the
//! first time, and leaves the list when another version of its path is placed.

use std::collections::BTreeMap;

use qsync_base::{DeviceId, RelPath, TaskId};
use qsync_core::Placement;

use crate::control::printable;

/// At most this many paths are listed per task; more are logged, at the debug level after
/// the first one past the limit.
const MAX_LISTED: usize = 256;

/// One task's refused changes.
#[derive(Debug, Default)]
pub(crate) struct NotSynced {
    /// By path: the peer it came from and why it is refused.
    paths: BTreeMap<RelPath, (DeviceId, &'static str)>,
    /// Whether some were left out of `paths` (it was full).
    more: bool,
}

impl NotSynced {
    /// `p` was handed to the driver; `refused` says why it was not carried out, if it was
    /// refused.
    pub(crate) fn placed(&mut self, task: TaskId, p: &Placement, refused: Option<&'static str>) {
        let Some(why) = refused else {
            self.paths.remove(&p.path);
            return;
        };
        if self.paths.get(&p.path) == Some(&(p.from, why)) {
            return;
        }
        let path = printable(p.path.as_str());
        if self.paths.len() < MAX_LISTED || self.paths.contains_key(&p.path) {
            self.paths.insert(p.path.clone(), (p.from, why));
            tracing::warn!(%task, %path, from = %p.from, "not synced: {why}");
        } else if !self.more {
            self.more = true;
            tracing::warn!(%task, %path, from = %p.from, "not synced: {why} (more such paths are logged at the debug level only)");
        } else {
            tracing::debug!(%task, %path, from = %p.from, "not synced: {why}");
        }
    }

    /// The paths listed: each with the peer it came from and why it is refused.
    pub(crate) fn entries(&self) -> impl Iterator<Item = (&RelPath, DeviceId, &'static str)> {
        self.paths
            .iter()
            .map(|(path, (from, why))| (path, *from, *why))
    }

    /// One line per listed path, `TASK PATH: why (from DEVICE)`, and a last one if some
    /// were left out (shown through [`printable`] by the status's display).
    pub(crate) fn lines(&self, task: TaskId) -> impl Iterator<Item = String> + '_ {
        let listed = self
            .paths
            .iter()
            .map(move |(path, (from, why))| format!("{task} {path}: {why} (from {from})"));
        let more = self
            .more
            .then(|| format!("{task}: more than {MAX_LISTED} paths; the daemon's log lists them"));
        listed.chain(more)
    }
}
