//! Content this device holds already, staged from there before any is fetched: a file
//! removed here lately by a received delete (the other half of a rename or a move made
//! on the other side), a copy kept for the task (a base of patches), or a file of the
//! task whose recorded content is the same (a copy made on the other side). Every one is
//! checked against the hash as it is staged: a file changed behind the index's back is
//! not used, and the content is fetched instead.
//!
//! Finding the candidates ([`sources`]) only stats and opens files, on the engine thread.
//! Staging one reads it whole (to check it, and to copy it where there is no reflink):
//! a small content is staged at once, a large one by the [`Reuser`]'s thread, whose
//! answers the driver takes at its next turn ([`Reuser::finished`]), so that renaming a
//! film of 4 GiB does not stop the daemon for the seconds its check takes.
//!
//! Only this task's own data is searched: a content held for another task is never used,
//! so that nothing this device does for a peer (not asking for a content, say) tells
//! what another task holds.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, Sender};

use qsync_base::{ContentHash, EntryKind};

use super::folder::TaskFolder;
use crate::driver::place::Staging;
use crate::driver::root::TaskRoot;
use crate::exchange::{FetchKey, Want};

/// Files smaller than this are not looked for among the task's files: the search costs
/// more than they do on the wire.
const MIN_SEARCHED: u64 = 64 * 1024;

// Contents under the keeper's smallest base are left out of what a task has held
// (`Keeping::version`): none of them may be one searched for.
const _: () = assert!(MIN_SEARCHED >= crate::keeper::MIN_BASE);

/// The most files of the task with the same recorded content that are tried.
const MAX_TRIED: usize = 4;

/// Contents up to this size are staged at once, on the engine thread (a few
/// milliseconds); larger ones on the [`Reuser`]'s thread.
pub(super) const STAGED_AT_ONCE: u64 = 8 * 1024 * 1024;

/// Where a content held here may be staged from.
#[derive(Debug)]
pub(super) enum Source {
    /// The file a received delete removed here lately (`Staging::reuse_path`).
    Removed,
    /// A file opened for reading: a kept copy, or a file of the task.
    File(std::fs::File),
}

/// Where this device may hold `want`'s content, for its task `folder` (`kept`: where a
/// kept copy of a content is), best first; nothing read yet.
pub(super) fn sources(
    staging: &Staging,
    folder: Option<&TaskFolder>,
    kept: impl Fn(&ContentHash) -> Option<PathBuf>,
    want: &Want,
) -> Vec<Source> {
    let (hash, size) = (&want.hash, want.size);
    let mut found = Vec::new();
    if size == 0 {
        return found; // nothing to save
    }
    if staging.may_keep() && staging.reuse_path(&want.task, hash).exists() {
        found.push(Source::Removed);
    }
    let Some(folder) = folder else {
        return found;
    };
    if folder.held.contains(hash) {
        found.extend(
            kept(hash)
                .and_then(|p| std::fs::File::open(p).ok())
                .map(Source::File),
        );
    }
    // The index is searched only for a content the task has held (a new one is in none
    // of its files): a drop of ten thousand new files into a folder of a hundred thousand
    // does not read the index through for each.
    if size < MIN_SEARCHED || !folder.held.contains(hash) {
        return found;
    }
    let same: Vec<_> = folder
        .index
        .entries()
        .filter(|e| e.kind == EntryKind::File && e.size == size && e.hash == Some(*hash))
        .map(|e| (e.path.clone(), e.mtime_ns))
        .take(MAX_TRIED)
        .collect();
    if same.is_empty() {
        return found;
    }
    let Ok(root) = TaskRoot::open(&folder.root) else {
        return found;
    };
    for (path, mtime_ns) in same {
        // Not read when it changed since the index saw it (its size or time).
        let unchanged = root
            .stat(&path)
            .is_ok_and(|e| e.is_some_and(|e| e.size == size && e.mtime_ns == mtime_ns));
        // Beneath the root, never through a link, a regular file only.
        if let (true, Ok(file)) = (unchanged, root.open_file(&path)) {
            found.push(Source::File(file));
        }
    }
    found
}

/// Stage `want`'s content from the first of `sources` that holds it exactly: whether it
/// is staged now.
pub(super) fn stage(staging: &Staging, sources: Vec<Source>, want: &Want) -> bool {
    for source in sources {
        let staged = match source {
            Source::Removed => staging.take_reuse(&want.task, &want.hash, want.size),
            Source::File(file) => staging
                .copy_in(file, &want.hash, want.size)
                .unwrap_or_else(|e| {
                    tracing::warn!(path = %want.path, error = %e, "could not stage content held here");
                    false
                }),
        };
        if staged {
            tracing::debug!(path = %want.path, "content staged from what this device holds");
            return true;
        }
    }
    false
}

/// Stage `want`'s content at once from what this device holds for its task, if it does
/// (tests; the driver goes through [`sources`] and [`stage`]).
#[cfg(test)]
fn stage_local(
    staging: &Staging,
    folder: Option<&TaskFolder>,
    kept: impl Fn(&ContentHash) -> Option<PathBuf>,
    want: &Want,
) -> bool {
    stage(staging, sources(staging, folder, kept, want), want)
}

/// What wakes the daemon's engine thread when an answer is ready.
pub(crate) type Wake = std::sync::Arc<dyn Fn() + Send + Sync>;

/// A job for the [`Reuser`]'s thread.
struct Job {
    staging: Staging,
    want: Want,
    sources: Vec<Source>,
}

/// The thread that stages large contents from what this device holds, and its answers.
#[derive(Default)]
pub(super) struct Reuser {
    jobs: Option<Sender<Job>>,
    done: Option<Receiver<(Want, bool)>>,
    /// The fetches whose content is being staged here (asked for again meanwhile, they
    /// wait for that).
    pending: HashSet<FetchKey>,
    /// Called when an answer is ready (the daemon wakes its engine thread).
    wake: Option<Wake>,
}

impl Reuser {
    /// Call `wake` whenever an answer is ready.
    pub(super) fn set_wake(&mut self, wake: Wake) {
        self.wake = Some(wake);
    }

    /// Whether `key`'s content is being staged here.
    pub(super) fn is_pending(&self, key: &FetchKey) -> bool {
        self.pending.contains(key)
    }

    /// Stage `want`'s content from `sources` on the thread (started on first use); false
    /// if the thread could not be started.
    pub(super) fn start(&mut self, staging: Staging, want: Want, sources: Vec<Source>) -> bool {
        if self.jobs.is_none() {
            let (jobs, inbox) = channel::<Job>();
            let (answers, done) = channel();
            let wake = self.wake.clone();
            let spawned = std::thread::Builder::new()
                .name("qsync-reuse".into())
                .spawn(move || {
                    for job in inbox {
                        let ok = stage(&job.staging, job.sources, &job.want);
                        if answers.send((job.want, ok)).is_err() {
                            return;
                        }
                        if let Some(wake) = &wake {
                            wake();
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::warn!(error = %e, "could not start the thread that stages held content");
                return false;
            }
            (self.jobs, self.done) = (Some(jobs), Some(done));
        }
        let key = (want.task, want.path.clone(), want.hash);
        let job = Job {
            staging,
            want,
            sources,
        };
        let sent = self
            .jobs
            .as_ref()
            .is_some_and(|jobs| jobs.send(job).is_ok());
        if sent {
            self.pending.insert(key);
        }
        sent
    }

    /// The answers ready: each fetch, and whether its content is staged now.
    pub(super) fn finished(&mut self) -> Vec<(Want, bool)> {
        let Some(done) = &self.done else {
            return Vec::new();
        };
        let answers: Vec<(Want, bool)> = done.try_iter().collect();
        for (want, _) in &answers {
            self.pending
                .remove(&(want.task, want.path.clone(), want.hash));
        }
        answers
    }
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

    /// Write `content` at `a.bin` of `folder` with the time its index entry says.
    fn write_as_indexed(folder: &TaskFolder, content: &[u8]) {
        let path = folder.root.join("a.bin");
        std::fs::write(&path, content).unwrap();
        let indexed = std::time::UNIX_EPOCH + std::time::Duration::from_nanos(1);
        let file = std::fs::File::options().write(true).open(&path).unwrap();
        file.set_modified(indexed).unwrap();
    }

    #[test]
    fn a_file_of_the_task_is_staged_only_if_it_holds_its_recorded_content() {
        let (right, other) = (bytes(3), bytes(5));
        let (_dir, folder, staging) = scene(&right, true);
        let copy = want("copy.bin", &right);
        // Changed behind the index's back: same size, same time, other bytes.
        write_as_indexed(&folder, &other);
        assert!(!stage_local(&staging, Some(&folder), |_| None, &copy));
        assert!(!staging.has(&copy.hash), "nothing wrong is staged");
        // Right bytes, but another time than the index saw: not even read.
        std::fs::write(folder.root.join("a.bin"), &right).unwrap();
        assert!(!stage_local(&staging, Some(&folder), |_| None, &copy));
        write_as_indexed(&folder, &right);
        assert!(stage_local(&staging, Some(&folder), |_| None, &copy));
        assert_eq!(std::fs::read(staging.path_of(&copy.hash)).unwrap(), right);
    }

    #[test]
    fn a_removed_file_kept_for_reuse_is_staged_only_if_it_holds_the_content() {
        let content = bytes(7);
        let (_dir, folder, staging) = scene(&bytes(9), false);
        let moved = want("moved.bin", &content);
        std::fs::write(staging.reuse_path(&moved.task, &moved.hash), bytes(11)).unwrap();
        assert!(!stage_local(&staging, Some(&folder), |_| None, &moved));
        assert!(!staging.has(&moved.hash));
        assert!(
            !staging.reuse_path(&moved.task, &moved.hash).exists(),
            "a wrong one is removed"
        );
        std::fs::write(staging.reuse_path(&moved.task, &moved.hash), &content).unwrap();
        assert!(stage_local(&staging, Some(&folder), |_| None, &moved));
        assert_eq!(
            std::fs::read(staging.path_of(&moved.hash)).unwrap(),
            content
        );
        assert!(
            !staging.reuse_path(&moved.task, &moved.hash).exists(),
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

    #[test]
    fn a_large_content_is_staged_on_the_reuse_thread_and_its_answer_wakes_the_engine() {
        let content = bytes(23);
        let (_dir, folder, staging) = scene(&bytes(25), false);
        let moved = want("moved.bin", &content);
        std::fs::write(staging.reuse_path(&moved.task, &moved.hash), &content).unwrap();
        let wrong = want("wrong.bin", &bytes(27));
        std::fs::write(staging.reuse_path(&wrong.task, &wrong.hash), bytes(29)).unwrap();
        let (woken, wakes) = std::sync::mpsc::channel();
        let mut reuser = Reuser::default();
        reuser.set_wake(std::sync::Arc::new(move || {
            let _ = woken.send(());
        }));
        for want in [&moved, &wrong] {
            let found = sources(&staging, Some(&folder), |_| None, want);
            assert!(reuser.start(staging.clone(), want.clone(), found));
        }
        let key = |w: &Want| (w.task, w.path.clone(), w.hash);
        assert!(reuser.is_pending(&key(&moved)));
        let mut answers = Vec::new();
        while answers.len() < 2 {
            wakes
                .recv_timeout(std::time::Duration::from_secs(10))
                .unwrap();
            answers.extend(reuser.finished());
        }
        let staged: Vec<(String, bool)> = answers
            .iter()
            .map(|(w, ok)| (w.path.to_string(), *ok))
            .collect();
        assert_eq!(
            staged,
            [("moved.bin".into(), true), ("wrong.bin".into(), false)]
        );
        assert!(!reuser.is_pending(&key(&moved)));
        assert!(staging.has(&moved.hash) && !staging.has(&wrong.hash));
    }

    #[test]
    fn a_fifo_or_a_link_at_the_reuse_name_is_never_read() {
        let content = bytes(17);
        let (dir, folder, staging) = scene(&bytes(19), false);
        let moved = want("moved.bin", &content);
        let at = staging.reuse_path(&moved.task, &moved.hash);
        rustix::fs::mknodat(
            rustix::fs::CWD,
            &at,
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        assert!(
            !stage_local(&staging, Some(&folder), |_| None, &moved),
            "a FIFO"
        );
        let target = dir.path().join("elsewhere");
        std::fs::write(&target, &content).unwrap();
        std::os::unix::fs::symlink(&target, &at).unwrap();
        assert!(
            !stage_local(&staging, Some(&folder), |_| None, &moved),
            "a link"
        );
        assert!(!staging.has(&moved.hash));
    }

    #[test]
    fn only_a_regular_file_with_one_name_is_kept_for_reuse() {
        let (dir, folder, _staging) = scene(&bytes(21), false);
        let top = TaskRoot::open(&folder.root).unwrap().top().unwrap();
        let to = dir.path().join("kept");
        std::fs::write(folder.root.join("linked.bin"), b"two names").unwrap();
        std::fs::hard_link(
            folder.root.join("linked.bin"),
            dir.path().join("other-name"),
        )
        .unwrap();
        assert!(!top.give_away("linked.bin", &to), "a file with two names");
        std::os::unix::fs::symlink("linked.bin", folder.root.join("link")).unwrap();
        assert!(!top.give_away("link", &to), "a link");
        std::fs::write(folder.root.join("one.bin"), b"one name").unwrap();
        assert!(top.give_away("one.bin", &to));
        assert_eq!(std::fs::read(&to).unwrap(), b"one name");
        assert!(!folder.root.join("one.bin").exists());
    }
}
