//! Initial mapping: a parallel walk of a task's root.

use std::collections::HashMap;
use std::fs::{self, Metadata};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::UNIX_EPOCH;

use ignore::gitignore::{Gitignore, GitignoreBuilder};
use qsync_base::{ContentHash, EntryKind, FileEntry, RelPath, MODE_BITS};

use crate::stream::WalkPlan;
use crate::WatchError;

/// Prefixes of the temporary files QSync itself writes inside a task (atomic writes).
const OWN_TEMP_PREFIXES: [&str; 2] = [".qsync-tmp-", ".qsync-part-"];

/// Whether a file name is one of QSync's own temporary files, never synced.
pub fn is_own_temp_file(name: &str) -> bool {
    OWN_TEMP_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// The file in a task's root that says which paths are not synced (gitignore syntax).
pub const IGNORE_FILE: &str = ".qsyncignore";

/// Which paths of a task are synced: everything but what the root's `.qsyncignore`
/// (gitignore syntax) excludes and QSync's own temporary files.
#[derive(Debug, Clone)]
pub struct Filter {
    ignore: Arc<Gitignore>,
    problems: Arc<Vec<String>>,
}

/// The largest `.qsyncignore` read; the rest of a longer one is left out (and reported).
pub const MAX_IGNORE_FILE: u64 = 1024 * 1024;

impl Filter {
    /// The filter for `root`, reading `root/.qsyncignore` if it exists. The file may come
    /// from another device: a line that is not a valid pattern (or not UTF-8) is skipped
    /// and reported ([`Filter::problems`], logged), and the other lines still apply; a
    /// `.qsyncignore` that is not a regular file (a link, a FIFO) is not read at all.
    /// Never fails over the file's content.
    pub fn for_root(root: &Path) -> Result<Self, WatchError> {
        let mut builder = GitignoreBuilder::new(root);
        let file = root.join(IGNORE_FILE);
        let mut problems = Vec::new();
        let text = match open_regular(&file) {
            Ok(Some(f)) => {
                use std::io::Read;
                let mut bytes = Vec::new();
                if let Err(e) = f.take(MAX_IGNORE_FILE + 1).read_to_end(&mut bytes) {
                    problems.push(format!("could not be read: {e}"));
                }
                if bytes.len() as u64 > MAX_IGNORE_FILE {
                    bytes.truncate(MAX_IGNORE_FILE as usize);
                    problems.push(format!(
                        "is longer than {MAX_IGNORE_FILE} bytes; the rest is not read"
                    ));
                }
                bytes
            }
            Ok(None) => {
                if fs::symlink_metadata(&file).is_ok() {
                    problems.push("is not a regular file; it is not read".into());
                }
                Vec::new()
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                problems.push(format!("could not be read: {e}"));
                Vec::new()
            }
        };
        for (n, line) in text.split(|b| *b == b'\n').enumerate() {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let Ok(line) = std::str::from_utf8(line) else {
                problems.push(format!("line {}: not UTF-8; skipped", n + 1));
                continue;
            };
            if let Err(e) = builder.add_line(Some(file.clone()), line) {
                problems.push(format!("line {}: {e}; skipped", n + 1));
            }
        }
        let ignore = match builder.build() {
            Ok(ignore) => ignore,
            Err(e) => {
                problems.push(format!("{e}; no pattern applies"));
                Gitignore::empty()
            }
        };
        // Logged once per file and problem (the filter is built again for each batch).
        static LOGGED: Mutex<Vec<(PathBuf, String)>> = Mutex::new(Vec::new());
        if let Ok(mut logged) = LOGGED.lock() {
            for problem in &problems {
                let key = (file.clone(), problem.clone());
                if !logged.contains(&key) {
                    tracing::warn!(file = %file.display(), "{IGNORE_FILE} {problem}");
                    if logged.len() < 1024 {
                        logged.push(key);
                    }
                }
            }
        }
        Ok(Self {
            ignore: Arc::new(ignore),
            problems: Arc::new(problems),
        })
    }

    /// What was wrong with the `.qsyncignore` (lines skipped), for `qsync status`.
    pub fn problems(&self) -> &[String] {
        &self.problems
    }

    /// Whether the path (relative to the root) is synced. The root's `.qsyncignore`
    /// always is, whatever its patterns say: one that ignored itself (a `*` line) could
    /// never be fixed from another device, since the fixed version would be ignored too.
    /// (Only the root's file is read; a `.qsyncignore` in a subfolder is an ordinary file.)
    pub fn includes(&self, path: &RelPath, is_dir: bool) -> bool {
        self.includes_lazy(path, || is_dir)
    }

    /// [`Filter::includes`], asking `is_dir` only when the answer depends on it (a
    /// `dir/` pattern that names the path): the watcher sees several events for every
    /// file written, and a `stat` for each was most of its work on a drop of many files.
    pub fn includes_lazy(&self, path: &RelPath, is_dir: impl FnOnce() -> bool) -> bool {
        if path.as_str().split('/').any(is_own_temp_file) {
            return false;
        }
        let as_file = self.includes_known(path, false);
        if as_file == self.includes_known(path, true) {
            return as_file;
        }
        self.includes_known(path, is_dir())
    }

    fn includes_known(&self, path: &RelPath, is_dir: bool) -> bool {
        if path.as_str() == IGNORE_FILE && !is_dir {
            return true;
        }
        !self
            .ignore
            .matched_path_or_any_parents(path.as_str(), is_dir)
            .is_ignore()
    }
}

pub(crate) fn mtime_ns(meta: &Metadata) -> i64 {
    meta.modified()
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// When `meta`'s status last changed, in nanoseconds since the epoch.
pub(crate) fn ctime_ns(meta: &Metadata) -> i64 {
    use std::os::unix::fs::MetadataExt;
    meta.ctime().saturating_mul(1_000_000_000) + meta.ctime_nsec()
}

/// How long after its last status change a file's hash may be reused (see `entry_from`).
const RACY_NS: i64 = 2_000_000_000;

/// The hash of `previous` if it may stand for a regular file now of `size` bytes, last
/// modified at `mtime_ns` and last changed status at `ctime_ns` (nanoseconds since the
/// epoch). Only when size and time match and the status has not changed lately: time
/// stamps are coarse (a few ms), so two versions of one size written in one tick look
/// alike, and QSync itself gives received files their sender's time. A file changed
/// (written, renamed over, given a time) in the last moments is hashed again.
pub fn reusable_hash(
    previous: Option<&FileEntry>,
    size: u64,
    mtime_ns: i64,
    ctime_ns: i64,
) -> Option<ContentHash> {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(i64::MAX, |d| {
            i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
        });
    let settled = ctime_ns < now_ns.saturating_sub(RACY_NS);
    previous
        .filter(|p| {
            settled && p.kind == EntryKind::File && p.size == size && p.mtime_ns == mtime_ns
        })
        .and_then(|p| p.hash)
}

/// The regular file at `local`, opened without following a link and without blocking (a
/// FIFO swapped in does not hang the scan); `None` if it is not a regular file.
fn open_regular(local: &Path) -> std::io::Result<Option<fs::File>> {
    use rustix::fs::OFlags;
    use std::os::unix::fs::OpenOptionsExt;
    let opened = fs::OpenOptions::new()
        .read(true)
        .custom_flags((OFlags::NOFOLLOW | OFlags::NONBLOCK).bits() as i32)
        .open(local);
    match opened {
        Ok(file) if file.metadata()?.is_file() => Ok(Some(file)),
        Ok(_) => Ok(None),
        // ELOOP: a link now stands there.
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::LOOP.raw_os_error()) => Ok(None),
        Err(e) => Err(e),
    }
}

/// The entry for one path, or `None` if it does not exist (or is not a file, folder or
/// symlink). The hash of `previous` is reused when size and mtime match and the file has
/// not changed status in the last two seconds.
pub fn stat_entry(
    root: &Path,
    path: &RelPath,
    previous: Option<&FileEntry>,
) -> Result<Option<FileEntry>, WatchError> {
    let local = path.to_local(root);
    let meta = match fs::symlink_metadata(&local) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WatchError::io("inspect", local, e)),
    };
    entry_from(root, path.clone(), &meta, previous)
}

/// What a stat of a path says without reading the file: its entry, or a regular file
/// whose content must be read to know its hash.
#[derive(Debug)]
pub(crate) enum Seen {
    /// Settled by the stat (a link's target read too): `None` if the path is not synced
    /// (a socket, a FIFO, a device).
    Entry(Option<FileEntry>),
    /// A regular file whose recorded hash cannot stand for it: its entry, without a hash.
    Unhashed(FileEntry),
}

/// The entry of `path`, whose stat is `meta`, with its content hashed unless the hash of
/// `previous` may be reused (see [`reusable_hash`]). On the thread that may read files.
pub(crate) fn entry_from(
    root: &Path,
    path: RelPath,
    meta: &Metadata,
    previous: Option<&FileEntry>,
) -> Result<Option<FileEntry>, WatchError> {
    match seen_from(root, path, meta, previous, None)? {
        Seen::Entry(entry) => Ok(entry),
        Seen::Unhashed(entry) => hash_file(root, entry),
    }
}

/// What `meta` (a stat of `path`) says without reading the file: a folder, a link (its
/// target read), a regular file whose hash is `placed` (the engine's own placement, see
/// [`Index::placed`](crate::Index::placed)) or that `previous` holds (see
/// [`reusable_hash`]), or a regular file to read ([`Seen::Unhashed`]).
pub(crate) fn seen_from(
    root: &Path,
    path: RelPath,
    meta: &Metadata,
    previous: Option<&FileEntry>,
    placed: Option<ContentHash>,
) -> Result<Seen, WatchError> {
    let file_type = meta.file_type();
    let (kind, size) = if file_type.is_symlink() {
        (EntryKind::Symlink, meta.len())
    } else if file_type.is_dir() {
        (EntryKind::Folder, 0)
    } else if file_type.is_file() {
        (EntryKind::File, meta.len())
    } else {
        return Ok(Seen::Entry(None)); // sockets, fifos, devices: not synced
    };
    let mtime_ns = mtime_ns(meta);
    let hash = match kind {
        EntryKind::Folder => None,
        EntryKind::Symlink => {
            let local = path.to_local(root);
            let target =
                fs::read_link(&local).map_err(|e| WatchError::io("read the link", &local, e))?;
            Some(ContentHash::of(target.as_os_str().as_encoded_bytes()))
        }
        EntryKind::File => {
            placed.or_else(|| reusable_hash(previous, size, mtime_ns, ctime_ns(meta)))
        }
    };
    let mode = match kind {
        EntryKind::Symlink => 0,
        _ => {
            use std::os::unix::fs::PermissionsExt;
            meta.permissions().mode() & MODE_BITS
        }
    };
    let entry = FileEntry {
        path,
        kind,
        size,
        mtime_ns,
        hash,
        mode,
    };
    Ok(match (kind, hash) {
        (EntryKind::File, None) => Seen::Unhashed(entry),
        _ => Seen::Entry(Some(entry)),
    })
}

/// `entry` (a regular file's, without its hash) with the hash of the file's content: the
/// one place a synced file is read to be hashed. `None` if the path no longer holds a
/// regular file (gone, or replaced by a link to `/dev/zero` or a FIFO: the next event
/// about it says what it is now).
fn hash_file(root: &Path, mut entry: FileEntry) -> Result<Option<FileEntry>, WatchError> {
    let local = entry.path.to_local(root);
    let file = match open_regular(&local) {
        Ok(Some(file)) => file,
        Ok(None) => return Ok(None),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(WatchError::io("open", &local, e)),
    };
    entry.hash = Some(ContentHash::of_reader(file).map_err(|e| WatchError::io("read", &local, e))?);
    Ok(Some(entry))
}

/// Walk `root` in parallel and return every synced entry, sorted by path. Hashes of
/// `previous` entries are reused when size and mtime are unchanged. Paths whose names QSync
/// cannot carry are left out, and logged ([`scan_reporting`] also returns them).
pub fn scan(
    root: &Path,
    previous: &HashMap<RelPath, FileEntry>,
) -> Result<Vec<FileEntry>, WatchError> {
    scan_reporting(root, previous).map(|scan| scan.entries)
}

/// What a scan found.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// Every synced entry, sorted by path.
    pub entries: Vec<FileEntry>,
    /// Paths QSync cannot carry to other devices: names that are not UTF-8 or that hold a
    /// backslash (a separator on Windows). They are not synced, never silently: each is
    /// logged, and the daemon's `status` counts them.
    pub unsupported: Vec<PathBuf>,
}

/// [`scan`], with the paths it had to leave out.
pub fn scan_reporting(
    root: &Path,
    previous: &HashMap<RelPath, FileEntry>,
) -> Result<Scan, WatchError> {
    let plan = WalkPlan::of_root(previous, Filter::for_root(root)?);
    let found = Mutex::new(Vec::new());
    let end = plan.run(root, &|chunk| {
        if let Ok(mut found) = found.lock() {
            found.extend(chunk.into_iter().map(|w| w.entry));
        }
        true
    })?;
    let mut entries = found.into_inner().unwrap_or_default();
    entries.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Scan {
        entries,
        unsupported: end.unsupported,
    })
}

/// Log a path QSync cannot carry.
pub(crate) fn report_unsupported(path: &Path) {
    tracing::warn!(
        path = %path.display(),
        "not synced: the name is not UTF-8 or holds a backslash, which other devices may not be able to use; rename it to sync it"
    );
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_qsyncignore_that_ignores_everything_never_ignores_itself() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(
            dir.path().join(IGNORE_FILE),
            "*\n.qsyncignore\n/.qsyncignore\n",
        )
        .unwrap();
        fs::write(dir.path().join("other.txt"), "x").unwrap();
        let filter = Filter::for_root(dir.path()).unwrap();
        let path = |p: &str| RelPath::new(p).unwrap();
        assert!(filter.includes(&path(IGNORE_FILE), false));
        assert!(!filter.includes(&path("other.txt"), false));
        // Only the root's file is special.
        assert!(!filter.includes(&path("sub/.qsyncignore"), false));
        let names: Vec<String> = scan(dir.path(), &HashMap::new())
            .unwrap()
            .into_iter()
            .map(|e| e.path.to_string())
            .collect();
        assert_eq!(names, [IGNORE_FILE]);
    }

    #[test]
    fn whether_a_path_is_a_folder_is_asked_only_when_a_folder_pattern_names_it() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(IGNORE_FILE), "build/\n*.tmp\n").unwrap();
        let filter = Filter::for_root(dir.path()).unwrap();
        let path = |p: &str| RelPath::new(p).unwrap();
        let never = || -> bool { panic!("asked whether it is a folder") };
        assert!(filter.includes_lazy(&path("src/main.rs"), never));
        assert!(!filter.includes_lazy(&path("x.tmp"), never));
        assert!(!filter.includes_lazy(&path(".qsync-part-0123456789abcdef"), never));
        // `build/` excludes a folder and what is in it, not a file of that name.
        assert!(!filter.includes_lazy(&path("build"), || true));
        assert!(filter.includes_lazy(&path("build"), || false));
        assert!(!filter.includes_lazy(&path("build/out.o"), never));
    }
}
