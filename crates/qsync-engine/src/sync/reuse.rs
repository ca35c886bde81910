//! Content this device holds already, staged from there before any is fetched: a file
//! removed here lately by a received delete (the other half of a rename or a move made
//! on the other side), a copy kept for the task (a base of patches), or a file of the
//! task whose recorded content is the same (a copy made on the other side). Every one is
//! checked against the hash as it is staged: a file changed behind the index's back is
//! not used, and the content is fetched instead.
//!
//! Only this task's own data is searched: a content held for another task is never used,
//! so that nothing this device does for a peer (not asking for a content, say) tells
//! what another task holds.

use std::path::PathBuf;

use qsync_base::{ContentHash, EntryKind};

use super::folder::TaskFolder;
use crate::driver::place::Staging;
use crate::driver::root::TaskRoot;
use crate::exchange::Want;

/// Files smaller than this are not looked for among the task's files: the search costs
/// more than they do on the wire.
const MIN_SEARCHED: u64 = 64 * 1024;

/// The most files of the task with the same recorded content that are tried.
const MAX_TRIED: usize = 4;

/// Stage `want`'s content from what this device holds for its task `folder` (`kept`:
/// where a kept copy of a content is), if it holds it: whether it is staged now.
pub(super) fn stage_local(
    staging: &Staging,
    folder: Option<&TaskFolder>,
    kept: impl Fn(&ContentHash) -> Option<PathBuf>,
    want: &Want,
) -> bool {
    let (hash, size) = (&want.hash, want.size);
    if size == 0 {
        return false; // nothing to save
    }
    if staging.take_reuse(hash, size) {
        tracing::debug!(path = %want.path, "content staged from a file removed here");
        return true;
    }
    let Some(folder) = folder else {
        return false;
    };
    if folder.held.contains(hash) {
        if let Some(copy) = kept(hash).and_then(|p| std::fs::File::open(p).ok()) {
            if copied(staging, copy, want) {
                tracing::debug!(path = %want.path, "content staged from a copy kept here");
                return true;
            }
        }
    }
    if size < MIN_SEARCHED {
        return false;
    }
    let same: Vec<_> = folder
        .index
        .entries()
        .filter(|e| e.kind == EntryKind::File && e.size == size && e.hash == Some(*hash))
        .map(|e| e.path.clone())
        .take(MAX_TRIED)
        .collect();
    if same.is_empty() {
        return false;
    }
    let Ok(root) = TaskRoot::open(&folder.root) else {
        return false;
    };
    for path in same {
        // Beneath the root, never through a link, a regular file only.
        let Ok(file) = root.open_file(&path) else {
            continue;
        };
        if copied(staging, file, want) {
            tracing::debug!(path = %want.path, from = %path, "content staged from a file of the task");
            return true;
        }
    }
    false
}

/// Copy `from` into staging as `want`'s content, if it is that.
fn copied(staging: &Staging, from: std::fs::File, want: &Want) -> bool {
    staging
        .copy_in(from, &want.hash, want.size)
        .unwrap_or_else(|e| {
            tracing::warn!(path = %want.path, error = %e, "could not stage content held here");
            false
        })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use qsync_base::{DeviceId, FileEntry, RelPath, TaskId};
    use qsync_watch::Index;

    const SIZE: usize = 100_000;

    fn bytes(seed: u8) -> Vec<u8> {
        (0..SIZE).map(|i| (i as u8).wrapping_mul(seed)).collect()
    }

    fn want(path: &str, content: &[u8]) -> Want {
        let peer = DeviceId::from_bytes([1; 32]);
        Want {
            from: peer,
            holders: vec![peer],
            task: TaskId::from_bytes([2; 32]),
            path: RelPath::new(path).unwrap(),
            hash: ContentHash::of(content),
            size: content.len() as u64,
            base: None,
            kept: 0,
        }
    }

    /// A task folder whose index says `a.bin` holds `recorded`, a staging folder, and
    /// the temporary folder they are in.
    fn scene(recorded: &[u8], held: bool) -> (tempfile::TempDir, TaskFolder, Staging) {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("task");
        std::fs::create_dir(&root).unwrap();
        let entry = FileEntry {
            path: RelPath::new("a.bin").unwrap(),
            kind: EntryKind::File,
            size: recorded.len() as u64,
            mtime_ns: 1,
            hash: Some(ContentHash::of(recorded)),
            mode: 0o644,
        };
        let held = held.then(|| ContentHash::of(recorded));
        let folder = TaskFolder::new(root, Index::new(vec![entry]), held, false);
        let staging = Staging::open(dir.path().join("staging")).unwrap();
        (dir, folder, staging)
    }

    #[test]
    fn a_file_of_the_task_is_staged_only_if_it_holds_its_recorded_content() {
        let (right, other) = (bytes(3), bytes(5));
        let (_dir, folder, staging) = scene(&right, false);
        // Changed behind the index's back: same size, other bytes.
        std::fs::write(folder.root.join("a.bin"), &other).unwrap();
        let copy = want("copy.bin", &right);
        assert!(!stage_local(&staging, Some(&folder), |_| None, &copy));
        assert!(!staging.has(&copy.hash), "nothing wrong is staged");
        std::fs::write(folder.root.join("a.bin"), &right).unwrap();
        assert!(stage_local(&staging, Some(&folder), |_| None, &copy));
        assert_eq!(std::fs::read(staging.path_of(&copy.hash)).unwrap(), right);
    }

    #[test]
    fn a_removed_file_kept_for_reuse_is_staged_only_if_it_holds_the_content() {
        let content = bytes(7);
        let (_dir, folder, staging) = scene(&bytes(9), false);
        let moved = want("moved.bin", &content);
        std::fs::write(staging.reuse_path(&moved.hash), bytes(11)).unwrap();
        assert!(!stage_local(&staging, Some(&folder), |_| None, &moved));
        assert!(!staging.has(&moved.hash));
        assert!(
            !staging.reuse_path(&moved.hash).exists(),
            "a wrong one is removed"
        );
        std::fs::write(staging.reuse_path(&moved.hash), &content).unwrap();
        assert!(stage_local(&staging, Some(&folder), |_| None, &moved));
        assert_eq!(
            std::fs::read(staging.path_of(&moved.hash)).unwrap(),
            content
        );
        assert!(
            !staging.reuse_path(&moved.hash).exists(),
            "renamed, not copied"
        );
    }

    #[test]
    fn a_kept_copy_is_used_only_for_a_content_the_task_has_held() {
        let content = bytes(13);
        let outside = tempfile::tempdir().unwrap();
        let copy = outside.path().join("blob");
        std::fs::write(&copy, &content).unwrap();
        let kept = |_: &ContentHash| Some(copy.clone());
        let wanted = want("again.bin", &content);
        let (_dir, other_task, staging) = scene(&bytes(15), false);
        assert!(!stage_local(&staging, Some(&other_task), kept, &wanted));
        let (_dir, this_task, staging) = scene(&content, true);
        std::fs::remove_file(this_task.root.join("a.bin")).ok();
        assert!(stage_local(&staging, Some(&this_task), kept, &wanted));
        assert!(staging.has(&wanted.hash));
    }
}
