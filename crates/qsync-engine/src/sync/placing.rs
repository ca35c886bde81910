//! The synced folders and the placements made into them. The core's `Place` orders are
//! begun at once (content written beside the file, checked against what the core
//! expects) and made durable together ([`Batch`]: one `fsync` pass for many files), and
//! each outcome is [`Settled`]: the core's input, what the daemon must look at when the
//! disk was not what the core believed, the change applied, content to ask whole again.

use std::collections::HashMap;
use std::time::Instant;

use qsync_base::{RelPath, TaskId};
use qsync_core::{Effect, Input, PlaceOutcome, Placement, State};

use super::{Applied, Report, TaskFolder};
use crate::driver::guard;
use crate::driver::place::{Batch, KeptVersion, Staging};
use crate::exchange::FetchKey;
use crate::EngineError;

/// The largest file copied to the versions when a placement replaces it (see
/// `driver/shelf.rs`): a larger one edited in place, or on another file system than the
/// state folder, keeps no version.
const COPY_AT_MOST: u64 = 64 << 20;

/// What follows a placement's outcome, for the driver to carry out.
pub(super) struct Settled {
    /// For the core.
    pub(super) input: Input,
    /// For the daemon: a look at the disk, a rescan, or the change applied.
    pub(super) report: Option<Report>,
    /// Content staged as edits this placement could not use: asked for whole next time.
    pub(super) ask_whole: Option<FetchKey>,
}

/// The folders of the tasks synced here and the placements under way.
#[derive(Default)]
pub(super) struct Folders {
    map: HashMap<TaskId, TaskFolder>,
    /// Placements begun, made durable together, and when the first of them began.
    batch: Batch,
    batch_since: Option<Instant>,
}

impl Folders {
    pub(super) fn insert(&mut self, task: TaskId, folder: TaskFolder) {
        self.map.insert(task, folder);
    }

    pub(super) fn remove(&mut self, task: &TaskId) -> Option<TaskFolder> {
        self.map.remove(task)
    }

    pub(super) fn get(&self, task: &TaskId) -> Option<&TaskFolder> {
        self.map.get(task)
    }

    pub(super) fn get_mut(&mut self, task: &TaskId) -> Option<&mut TaskFolder> {
        self.map.get_mut(task)
    }

    pub(super) fn iter(&self) -> impl Iterator<Item = (&TaskId, &TaskFolder)> {
        self.map.iter()
    }

    /// The task and path of a fetch or a placement for a path the task folder's rules
    /// exclude (see [`TaskFolder::excludes`]), or of a send-only folder.
    pub(super) fn excluded(&mut self, effect: &Effect) -> Option<(TaskId, RelPath)> {
        let (task, path, is_folder) = match effect {
            Effect::Fetch { task, path, .. } => (task, path, false),
            // (A folder removed is a folder to `dir/` rules too.)
            Effect::Place(p) => (
                &p.task,
                &p.path,
                p.target.is_folder() || p.expect.is_folder(),
            ),
            _ => return None,
        };
        let folder = self.map.get_mut(task)?;
        // A send-only folder takes nothing from other devices.
        (folder.send_only || folder.excludes(path, is_folder)).then(|| (*task, path.clone()))
    }

    /// A new round of the driver: each folder's rules are looked at again when next asked
    /// (see [`TaskFolder::new_round`]).
    pub(super) fn new_round(&mut self) {
        self.map.values_mut().for_each(TaskFolder::new_round);
    }

    /// Since when placements wait to be made durable, if any do.
    pub(super) fn batch_since(&self) -> Option<Instant> {
        self.batch_since.filter(|_| !self.batch.is_empty())
    }

    /// The core's order to place a change: begun now (its content taken from `staging`),
    /// made durable with the batch; the outcomes of what is settled already.
    pub(super) fn place(&mut self, staging: &Staging, placement: Placement) -> Vec<Settled> {
        let Some(folder) = self.map.get_mut(&placement.task) else {
            return Vec::new();
        };
        if self.batch.is_empty() {
            self.batch_since = Some(Instant::now());
        }
        // A copy (before an edit in place, or across file systems) is made on this thread:
        // only of files up to an eighth of the cap, and 64 MiB.
        let shelf = folder
            .versions_cap
            .map(|cap| (staging.shelf(), (cap / 8).min(COPY_AT_MOST)));
        let begun = self.batch.begin(
            &folder.root,
            staging,
            &placement,
            &mut folder.index,
            (folder.links_out, shelf),
        );
        match begun {
            Ok(None) if self.batch.is_full() => self.flush(staging),
            Ok(None) => Vec::new(),
            Ok(Some(outcome)) => vec![self.settle(staging, placement, Ok(outcome), None)],
            Err(e) => vec![self.settle(staging, placement, Err(e), None)],
        }
    }

    /// Make the placements begun durable; their outcomes.
    pub(super) fn flush(&mut self, staging: &Staging) -> Vec<Settled> {
        let placed = self.batch.flush(&mut self.map, |folder| &mut folder.index);
        placed
            .into_iter()
            .map(|(placement, outcome, kept)| self.settle(staging, placement, outcome, kept))
            .collect()
    }

    /// A placement's outcome: what the core, the daemon and the exchange hear of it.
    fn settle(
        &mut self,
        staging: &Staging,
        placement: Placement,
        outcome: Result<PlaceOutcome, EngineError>,
        kept: Option<KeptVersion>,
    ) -> Settled {
        let mut rescan = false;
        let outcome = outcome.unwrap_or_else(|e| {
            // Tried again later (waiting longer after each failure in a row: a full disk),
            // decided anew against what the disk holds (looked at again whole: the failure
            // may come from a change the watcher missed).
            tracing::warn!(task = %placement.task, path = %placement.path, error = %e, "could not place a received change; it is tried again later");
            rescan = true;
            PlaceOutcome::Failed
        });
        let folder = self.map.get_mut(&placement.task);
        let links_out = folder.as_ref().is_some_and(|f| f.links_out);
        let refused =
            guard::refusal(&placement, links_out).filter(|_| outcome == PlaceOutcome::Failed);
        if let Some(folder) = folder {
            folder
                .not_synced
                .placed(placement.task, &placement, refused);
        }
        let mut ask_whole = None;
        if let (PlaceOutcome::NoContent, State::File { hash, .. }) = (&outcome, &placement.target) {
            // Staged as edits that this placement cannot use (it moves a conflicting copy
            // aside, or the file cannot be written in place): asked for whole, or the core
            // would be told at once that the content is here, again and again.
            if staging.edits_for(hash, placement.expect.hash()).is_some() {
                staging.remove(hash);
                ask_whole = Some((placement.task, placement.path.clone(), *hash));
            }
        }
        let report = if rescan {
            Some(Report::Rescan(placement.task))
        } else if outcome != PlaceOutcome::Done && refused.is_none() {
            tracing::debug!(task = %placement.task, path = %placement.path, ?outcome, "a placement was not made");
            Some(Report::LookAt(placement.task, involved(&placement)))
        } else if outcome == PlaceOutcome::Done {
            Some(Report::Applied(applied(&placement, kept)))
        } else {
            None
        };
        Settled {
            input: Input::Placed {
                task: placement.task,
                path: placement.path,
                outcome,
            },
            report,
            ask_whole,
        }
    }
}

/// The paths a placement involves: the disk is not what the core believes there. Usually
/// the watcher has just not reported it yet, but it may have missed it: they are looked
/// at now, so the placement's retry decides on the truth.
fn involved(placement: &Placement) -> Vec<qsync_base::RelPath> {
    let mut paths = vec![placement.path.clone()];
    paths.extend(placement.aside.iter().cloned());
    paths.extend(placement.parents.iter().cloned());
    let mut at = placement.path.parent();
    while let Some(parent) = at {
        at = parent.parent();
        paths.push(parent);
    }
    paths
}

/// A placement that was made, as the daemon hears of it.
fn applied(placement: &Placement, kept: Option<KeptVersion>) -> Applied {
    Applied {
        kept: kept.map(Box::new),
        task: placement.task,
        from: placement.from,
        path: placement.path.clone(),
        content: match &placement.target {
            State::File { hash, size, .. } => Some((*hash, *size)),
            _ => None,
        },
        replaces: match &placement.expect {
            State::File { hash, .. } => Some(*hash),
            _ => None,
        },
        aside: placement.aside.clone(),
        deleted: matches!(placement.target, State::Deleted),
        replaced_by: placement.makers.1,
    }
}
