//! The driver of `qsync-core`: what turns the core's orders into disk and network work and
//! the world's facts into the core's inputs. The daemon's run loop (`daemon/sync.rs`) ties
//! these pieces to the network, the SQLite ledger (`qsync_store::LedgerTx`, one
//! transaction per core call) and the control socket.
//!
//! - [`place`]: a [`qsync_core::Placement`] carried out on a real folder, all or nothing,
//!   durable before it is reported (in batches), announced to the watcher's index first.
//! - [`transfer`]: content for the core's fetches, served in chunks and vouched for only if
//!   it still hashes to what was asked, received in order within its size and staged once
//!   checked.
//! - [`in_place`]: a received edit that keeps the file's length written into the file,
//!   through an undo journal, instead of a new copy.
//! - [`staging`]: fetched content waiting for its placement.
//! - [`shelf`]: the bytes of kept versions (files that received changes replaced).
//! - [`guard`]: what a peer's record may make here: modes masked by the umask, no link
//!   out of the task folder.
//! - [`root`]: the one way into a task folder for work done for a peer: beneath the
//!   root, never through a symlink, content only from regular files.
//! - [`observed`]: the watcher's clean events as the core's [`qsync_core::Input::Observed`]
//!   facts (the same translation the simulator in `qsync-core/tests/sim` uses).

pub mod guard;
pub mod in_place;
pub mod place;
pub mod root;
pub mod shelf;
pub mod staging;
pub mod transfer;

use std::path::Path;

use qsync_base::{RelPath, TaskId};
use qsync_core::{Input, State};
use qsync_watch::{Index, LocalEvent};

use crate::EngineError;

/// The watcher's `events` for `task` (already folded into `index`) as the core's facts:
/// what is at each path they name now. A rename is the old path gone and every path of the
/// new subtree there.
pub fn observed(
    task: TaskId,
    root: &Path,
    index: &Index,
    events: Vec<LocalEvent>,
) -> Result<Vec<Input>, EngineError> {
    let mut inputs = Vec::new();
    let root = root::TaskRoot::open(root)?;
    let at = |path: RelPath| -> Result<Input, EngineError> {
        let (state, mtime_ns) = match index.get(&path) {
            Some(entry) => (place::state_of(&root, entry)?, entry.mtime_ns),
            None => (State::Deleted, 0),
        };
        Ok(Input::Observed {
            task,
            path,
            state,
            mtime_ns,
        })
    };
    // One path that cannot be read now (a link gone since, one through a link) is left
    // out, not the whole batch: the index has taken every event in already.
    let at = |path: RelPath, inputs: &mut Vec<Input>| match at(path.clone()) {
        Ok(input) => inputs.push(input),
        Err(e) => tracing::warn!(%task, %path, error = %e, "could not look at a change"),
    };
    for event in events {
        match event {
            LocalEvent::Create(entry) | LocalEvent::Modify { entry, .. } => {
                at(entry.path, &mut inputs)
            }
            LocalEvent::Delete { path, .. } => inputs.push(Input::Observed {
                task,
                path,
                state: State::Deleted,
                mtime_ns: 0,
            }),
            LocalEvent::Rename { from, to } => {
                inputs.push(Input::Observed {
                    task,
                    path: from,
                    state: State::Deleted,
                    mtime_ns: 0,
                });
                let moved: Vec<RelPath> = index
                    .entries()
                    .filter(|e| e.path.starts_with(&to))
                    .map(|e| e.path.clone())
                    .collect();
                for path in moved {
                    at(path, &mut inputs);
                }
            }
        }
    }
    Ok(inputs)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use std::fs;

    #[test]
    fn a_renamed_folder_is_the_old_path_gone_and_the_new_subtree_there() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        fs::create_dir_all(root.join("new/sub")).unwrap();
        fs::write(root.join("new/sub/f"), b"x").unwrap();
        std::os::unix::fs::symlink("../elsewhere", root.join("new/link")).unwrap();
        let index = Index::new(qsync_watch::scan(root, &Default::default()).unwrap());
        let task = TaskId::from_bytes([1; 32]);
        let events = vec![LocalEvent::Rename {
            from: RelPath::new("old").unwrap(),
            to: RelPath::new("new").unwrap(),
        }];
        let inputs = observed(task, root, &index, events).unwrap();
        let seen: Vec<(String, String)> = inputs
            .iter()
            .map(|i| match i {
                Input::Observed { path, state, .. } => (
                    path.to_string(),
                    format!("{state:?}")
                        .split(' ')
                        .next()
                        .unwrap_or("")
                        .to_owned(),
                ),
                _ => unreachable!(),
            })
            .collect();
        assert_eq!(seen[0], ("old".into(), "Deleted".into()));
        let paths: Vec<&str> = seen[1..].iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(paths, ["new", "new/link", "new/sub", "new/sub/f"]);
        assert!(inputs.iter().any(|i| matches!(i, Input::Observed { state: State::Symlink { target }, .. } if target == "../elsewhere")));
    }
}
