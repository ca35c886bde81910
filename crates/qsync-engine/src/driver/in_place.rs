//! Received edits written into the file they change, instead of a new copy renamed over it.
//!
//! A 1-byte edit of a 100 MiB file used to cost the receiver writing and syncing 100 MiB
//! (the new version in full, then renamed over the old one). When a patch keeps the length
//! and every unchanged byte at its place ([`qsync_delta::in_place_edits`]), the receiver
//! checks the result's hash against the old file at once, stages only the changed runs
//! (`<hash>.edits` beside the staged contents) and the placement writes them into the file:
//!
//! 1. the file is looked at again (the same inode, size and times as when the placement
//!    was checked, one name only: a file with other hard links, perhaps outside the task,
//!    is never written through);
//! 2. the bytes the edits replace are written to the undo journal (`.in-place-undo` in the
//!    staging folder), which is made durable;
//! 3. the edits are written, the file's time and mode set, the file made durable;
//! 4. the journal is emptied (made durable), and only then is the placement reported.
//!
//! A crash between 2 and 4 leaves a journal: the next start puts the old bytes back
//! ([`Staging::open`](super::place::Staging::open)), so the file is again what the ledger
//! says and the placement is made again; but only if the file is still as the edits could
//! have left it: the same size, each run holding its old or its new bytes, and a time the
//! edits gave it (the old one, the new one, or one within [`CRASH_WINDOW`] of the journal,
//! when the machine stopped between a write and the setting of the time). A person's
//! later save is never undone. A reader of
//! the file while the edits are written may see some of them only, as with any program that
//! writes a file in place; the rename of a new copy is kept for everything else: new
//! lengths, moved bytes, files under [`IN_PLACE_MIN`], edits over [`max_edit_bytes`].

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use qsync_base::{ContentHash, RelPath, MODE_BITS};
use qsync_delta::{Header, InPlace};

use super::root::TaskRoot;
use crate::EngineError;

/// Files smaller than this get a new copy: rewriting them costs little.
pub const IN_PLACE_MIN: u64 = 1024 * 1024;

/// The most bytes edits in place may write into a file of `size` bytes: a sixteenth of it,
/// at most 16 MiB (more, and writing them twice, journal and file, nears a new copy).
pub fn max_edit_bytes(size: u64) -> u64 {
    (size / 16).min(16 * 1024 * 1024)
}

/// How soon after the journal's own time a file's time must be to be taken for one the
/// edits left (a write changes the time before the edits set theirs; the journal's own
/// sync comes in between).
pub const CRASH_WINDOW: Duration = Duration::from_secs(60);

/// The undo journal's name in the staging folder.
pub const UNDO_JOURNAL: &str = ".in-place-undo";

const EDITS_MAGIC: &[u8; 4] = b"QSE1";
const UNDO_MAGIC: &[u8; 4] = b"QSU1";

fn io<'p>(op: &'static str, path: &'p Path) -> impl FnOnce(std::io::Error) -> EngineError + 'p {
    move |e| EngineError::io(op, path, e)
}

/// Reads the little-endian fields of a journal or an edits file; `None` once it ends early.
struct Fields<'a>(&'a [u8]);

impl<'a> Fields<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u32(&mut self) -> Option<u32> {
        self.take(4)?.try_into().ok().map(u32::from_le_bytes)
    }
    fn u64(&mut self) -> Option<u64> {
        self.take(8)?.try_into().ok().map(u64::from_le_bytes)
    }
    fn hash(&mut self) -> Option<ContentHash> {
        let bytes: [u8; 32] = self.take(32)?.try_into().ok()?;
        Some(ContentHash::from_bytes(bytes))
    }
    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.u32()?).ok()?;
        self.take(n)
    }
}

fn put_bytes(out: &mut Vec<u8>, bytes: &[u8]) {
    out.extend_from_slice(&(bytes.len() as u32).to_le_bytes());
    out.extend_from_slice(bytes);
}

/// Stage `edits` at `path` (written to a temporary name, then renamed: never half there).
/// Not made durable: lost in a crash, the content is fetched again.
pub fn put_edits(path: &Path, edits: &InPlace) -> Result<(), EngineError> {
    let h = &edits.header;
    let mut out = Vec::with_capacity(128 + edits.len() as usize);
    out.extend_from_slice(EDITS_MAGIC);
    out.extend_from_slice(&h.source_len.to_le_bytes());
    out.extend_from_slice(h.source_hash.as_bytes());
    out.extend_from_slice(&h.target_len.to_le_bytes());
    out.extend_from_slice(h.target_hash.as_bytes());
    out.extend_from_slice(&(edits.edits.len() as u32).to_le_bytes());
    for (at, bytes) in &edits.edits {
        out.extend_from_slice(&at.to_le_bytes());
        put_bytes(&mut out, bytes);
    }
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut temp = tempfile::Builder::new()
        .prefix(".edits-")
        .tempfile_in(dir)
        .map_err(io("create a file in", dir))?;
    temp.write_all(&out).map_err(io("write", temp.path()))?;
    temp.persist(path)
        .map_err(|e| EngineError::io("name", path, e.error))?;
    Ok(())
}

/// The edits staged at `path` that make `hash` from `base`, if any (and well formed).
pub fn edits_at(path: &Path, hash: &ContentHash, base: Option<ContentHash>) -> Option<InPlace> {
    let bytes = fs::read(path).ok()?;
    let mut f = Fields(&bytes);
    if f.take(4)? != EDITS_MAGIC {
        return None;
    }
    let header = Header {
        source_len: f.u64()?,
        source_hash: f.hash()?,
        target_len: f.u64()?,
        target_hash: f.hash()?,
    };
    if header.target_hash != *hash || Some(header.source_hash) != base {
        return None;
    }
    let count = f.u32()?;
    let mut edits = Vec::new();
    for _ in 0..count {
        let at = f.u64()?;
        let run = f.bytes()?;
        let end = at.checked_add(run.len() as u64)?;
        if end > header.target_len {
            return None;
        }
        edits.push((at, run.to_vec()));
    }
    Some(InPlace { header, edits })
}

/// What the undo journal holds: where, what the file was like, the bytes to put back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Undo {
    root: PathBuf,
    path: RelPath,
    /// The file's device and inode: the journal is about that file only.
    id: (u64, u64),
    size: u64,
    /// The file's modification time and permission bits before the edits, and after.
    before: (i64, u32),
    after: (i64, u32),
    /// When the journal was written (the system's clock).
    at_ns: i64,
    /// Each run: where, its old bytes, its new ones (as long).
    runs: Vec<(u64, Vec<u8>, Vec<u8>)>,
}

impl Undo {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(UNDO_MAGIC);
        put_bytes(&mut out, self.root.as_os_str().as_bytes());
        put_bytes(&mut out, self.path.as_str().as_bytes());
        for n in [self.id.0, self.id.1, self.size] {
            out.extend_from_slice(&n.to_le_bytes());
        }
        for (time, mode) in [self.before, self.after] {
            out.extend_from_slice(&time.to_le_bytes());
            out.extend_from_slice(&mode.to_le_bytes());
        }
        out.extend_from_slice(&self.at_ns.to_le_bytes());
        out.extend_from_slice(&(self.runs.len() as u32).to_le_bytes());
        for (at, old, new) in &self.runs {
            out.extend_from_slice(&at.to_le_bytes());
            put_bytes(&mut out, old);
            put_bytes(&mut out, new);
        }
        // A journal cut short by the crash is known by its checksum (then the edits had not
        // begun: the journal is made durable before them).
        let sum = ContentHash::of(&out);
        out.extend_from_slice(sum.as_bytes());
        out
    }

    fn decode(bytes: &[u8]) -> Option<Undo> {
        let body = bytes.get(..bytes.len().checked_sub(32)?)?;
        if ContentHash::of(body).as_bytes()[..] != bytes[body.len()..] {
            return None;
        }
        let mut f = Fields(body);
        if f.take(4)? != UNDO_MAGIC {
            return None;
        }
        let root = PathBuf::from(std::ffi::OsStr::from_bytes(f.bytes()?));
        let path = RelPath::new(std::str::from_utf8(f.bytes()?).ok()?).ok()?;
        let id = (f.u64()?, f.u64()?);
        let size = f.u64()?;
        let before = (f.u64()? as i64, f.u32()?);
        let after = (f.u64()? as i64, f.u32()?);
        let at_ns = f.u64()? as i64;
        let count = f.u32()?;
        let mut runs = Vec::new();
        for _ in 0..count {
            let at = f.u64()?;
            let old = f.bytes()?.to_vec();
            let new = f.bytes()?.to_vec();
            if old.len() != new.len() {
                return None;
            }
            runs.push((at, old, new));
        }
        Some(Undo {
            root,
            path,
            id,
            size,
            before,
            after,
            at_ns,
            runs,
        })
    }
}

/// Write `bytes` as the whole journal and make it durable.
fn write_journal(journal: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(journal)
        .map_err(io("open", journal))?;
    file.write_all(bytes).map_err(io("write", journal))?;
    file.sync_all().map_err(io("sync", journal))
}

/// Make sure the journal exists (empty) and its name is durable, so that writing it later
/// needs only its own sync.
pub fn prepare_journal(staging: &Path) -> Result<(), EngineError> {
    let journal = staging.join(UNDO_JOURNAL);
    if journal.exists() {
        return Ok(());
    }
    write_journal(&journal, &[])?;
    File::open(staging)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", staging))
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

fn time_of(ns: i64) -> std::time::SystemTime {
    UNIX_EPOCH + Duration::from_nanos(ns.max(0).unsigned_abs())
}

/// The file a placement edits, open for writing, with what it looked like when opened.
#[derive(Debug)]
pub struct Target {
    pub(super) file: File,
    /// Device and inode, to check that the name still leads to this file.
    pub(super) id: (u64, u64),
    pub(super) size: u64,
    pub(super) mtime_ns: i64,
    /// Its permission bits.
    pub(super) mode: u32,
    /// How many names it has.
    links: u64,
}

impl Target {
    /// Open `name` in `folder` for writing (never through a link, a regular file with no
    /// other name and no executable bit: a running program maps its file); `None` if it is
    /// not such a file or cannot be opened for writing (read-only, busy, another owner's):
    /// a new copy renamed over it needs only the folder to be writable.
    pub fn open(folder: &super::root::Folder, name: &str) -> Option<Target> {
        Self::open_any(folder, name).filter(|t| t.links == 1 && t.mode & 0o111 == 0)
    }

    /// [`Target::open`] whatever its links and mode.
    fn open_any(folder: &super::root::Folder, name: &str) -> Option<Target> {
        let file = folder.open_file_rw(name).ok()?;
        let meta = file.metadata().ok()?;
        Some(Target {
            links: meta.nlink(),
            id: (meta.dev(), meta.ino()),
            size: meta.len(),
            mtime_ns: meta
                .mtime()
                .saturating_mul(1_000_000_000)
                .saturating_add(meta.mtime_nsec()),
            mode: meta.mode() & MODE_BITS,
            file,
        })
    }
}

/// Write `edits` into `target` (the file at `path` of the task folder `root`), giving it the
/// time `mtime_ns` and the permission bits `mode`, through the undo journal in `staging`
/// (see the module's documentation). On an error after the journal was written, what was
/// written is put back at once through the same descriptor.
pub fn write(
    staging: &Path,
    root: &Path,
    path: &RelPath,
    target: &Target,
    edits: &InPlace,
    mtime_ns: i64,
    mode: u32,
) -> Result<(), EngineError> {
    let shown = path.to_local(root);
    let mut runs = Vec::with_capacity(edits.edits.len());
    for (at, bytes) in &edits.edits {
        let mut old = vec![0u8; bytes.len()];
        target
            .file
            .read_exact_at(&mut old, *at)
            .map_err(io("read", &shown))?;
        runs.push((*at, old, bytes.clone()));
    }
    let mode = if mode == 0 {
        target.mode
    } else {
        mode & MODE_BITS
    };
    let undo = Undo {
        root: root.to_owned(),
        path: path.clone(),
        id: target.id,
        size: target.size,
        before: (target.mtime_ns, target.mode),
        after: (mtime_ns, mode),
        at_ns: now_ns(),
        runs,
    };
    let journal = staging.join(UNDO_JOURNAL);
    write_journal(&journal, &undo.encode())?;
    let written = (|| {
        for (at, _, new) in &undo.runs {
            target
                .file
                .write_all_at(new, *at)
                .map_err(io("write", &shown))?;
        }
        finish_file(&target.file, undo.after, &shown)
    })();
    if let Err(e) = written {
        // Put back through the same descriptor, whatever part was written.
        let back = (|| {
            for (at, old, _) in &undo.runs {
                target
                    .file
                    .write_all_at(old, *at)
                    .map_err(io("write", &shown))?;
            }
            finish_file(&target.file, undo.before, &shown)
        })();
        match back {
            Ok(()) => write_journal(&journal, &[])?,
            // The journal stays: the next start tries again.
            Err(back) => {
                tracing::error!(path = %shown.display(), error = %back, "could not put back what an edit in place replaced");
            }
        }
        return Err(e);
    }
    if let Err(e) = write_journal(&journal, &[]) {
        // The edit is whole and durable: a journal left behind is found complete at the
        // next start and left as it is (see `put_back`).
        tracing::error!(error = %e, "could not empty the journal of edits in place");
        let _ = fs::remove_file(&journal);
    }
    Ok(())
}

/// Give `file` the time and permission bits `(mtime_ns, mode)`, then make it durable.
fn finish_file(file: &File, (mtime_ns, mode): (i64, u32), shown: &Path) -> Result<(), EngineError> {
    if mode != 0 {
        file.set_permissions(fs::Permissions::from_mode(mode))
            .map_err(io("set the permissions of", shown))?;
    }
    file.set_modified(time_of(mtime_ns))
        .map_err(io("set the time of", shown))?;
    file.sync_all().map_err(io("sync", shown))
}

/// Put back what edits in place cut short by a crash replaced (see the module's
/// documentation), then empty the journal. Returns the file put back, if one was.
pub fn undo_cut_short(staging: &Path) -> Result<Option<PathBuf>, EngineError> {
    let journal = staging.join(UNDO_JOURNAL);
    let mut bytes = Vec::new();
    match File::open(&journal) {
        Ok(mut f) => {
            f.read_to_end(&mut bytes).map_err(io("read", &journal))?;
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(EngineError::io("open", &journal, e)),
    }
    if bytes.is_empty() {
        return Ok(None);
    }
    let put_back = match Undo::decode(&bytes) {
        // Cut short itself: the edits had not begun.
        None => None,
        Some(undo) => put_back(&undo)?,
    };
    write_journal(&journal, &[])?;
    Ok(put_back)
}

/// What a crash left of the edits `undo` describes, in the file as it is now.
#[derive(Debug, PartialEq, Eq)]
enum Left {
    /// Every run holds its new bytes, with the new time and mode: the edit was whole.
    Whole,
    /// Each byte of the runs holds its old or its new value, at a time the edits could
    /// have left: cut short.
    CutShort,
    /// Anything else: changed since by someone else, or not the same file.
    Other,
}

fn left(undo: &Undo, target: &Target) -> Left {
    if target.id != undo.id || target.size != undo.size {
        return Left::Other;
    }
    let mut all_new = true;
    for (at, old, new) in &undo.runs {
        let mut there = vec![0u8; old.len()];
        if target.file.read_exact_at(&mut there, *at).is_err() {
            return Left::Other;
        }
        for ((t, o), n) in there.iter().zip(old).zip(new) {
            if t != o && t != n {
                return Left::Other;
            }
        }
        all_new &= there == *new;
    }
    let time = target.mtime_ns;
    if all_new && (time, target.mode) == undo.after {
        return Left::Whole;
    }
    let window = i64::try_from(CRASH_WINDOW.as_nanos()).unwrap_or(i64::MAX);
    // (File times come from a coarser clock, a tick behind the one the journal read.)
    let since = time.saturating_sub(undo.at_ns);
    let ours =
        time == undo.before.0 || time == undo.after.0 || (-1_000_000_000..=window).contains(&since);
    if ours {
        Left::CutShort
    } else {
        Left::Other
    }
}

fn put_back(undo: &Undo) -> Result<Option<PathBuf>, EngineError> {
    let shown = undo.path.to_local(&undo.root);
    let Ok(root) = TaskRoot::open(&undo.root) else {
        return Ok(None); // the task folder is gone
    };
    let Some((folder, name)) = root.parent(&undo.path)? else {
        return Ok(None);
    };
    // As it is, whatever its mode now (the edits may have set one that `open` refuses).
    let Some(target) = Target::open_any(&folder, name) else {
        return Ok(None);
    };
    match left(undo, &target) {
        // Left as it is: either the placement was reported (the ledger has the new
        // version) or, if it was not, the scan finds the same content the peer's record
        // names, and the two versions merge.
        Left::Whole | Left::Other => return Ok(None),
        Left::CutShort => {}
    }
    for (at, old, _) in &undo.runs {
        target
            .file
            .write_all_at(old, *at)
            .map_err(io("write", &shown))?;
    }
    finish_file(&target.file, undo.before, &shown)?;
    tracing::warn!(path = %shown.display(), "an edit in place was cut short; the file is as it was before it");
    Ok(Some(shown))
}

/// For tests elsewhere: a 2 MiB file `big.bin` in `root`, and the journal in `staging` of
/// an edit of it that a crash cut short (half of it written). Returns the file's content
/// before the edit.
#[cfg(test)]
pub(crate) fn cut_short_for_test(root: &Path, staging: &Path) -> Vec<u8> {
    let (old, undo) = tests::journaled_in(root, staging);
    tests::edit(root, 100, b"ED");
    let _ = undo;
    old
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_reads_back_and_a_torn_one_is_nothing() {
        let undo = Undo {
            // A task folder's name need not be UTF-8.
            root: PathBuf::from(std::ffi::OsStr::from_bytes(b"/data/t\xffsk")),
            path: RelPath::new("a/b.bin").unwrap(),
            id: (7, 1234),
            size: 1 << 20,
            before: (1_700_000_000_000_000_000, 0o644),
            after: (1_700_000_001_000_000_000, 0o600),
            at_ns: 1_700_000_001_500_000_000,
            runs: vec![
                (10, b"old".to_vec(), b"new".to_vec()),
                (5000, vec![7; 300], vec![8; 300]),
            ],
        };
        let bytes = undo.encode();
        assert_eq!(Undo::decode(&bytes), Some(undo));
        for cut in [0, 1, 4, bytes.len() / 2, bytes.len() - 1] {
            assert_eq!(Undo::decode(&bytes[..cut]), None, "cut at {cut}");
        }
        let mut flipped = bytes.clone();
        flipped[20] ^= 1;
        assert_eq!(Undo::decode(&flipped), None);
    }

    /// A 2 MiB file in a task folder, and the journal `write` makes before editing it at
    /// two places (to mode 0o600 and the time 42).
    fn journaled() -> (tempfile::TempDir, PathBuf, PathBuf, Vec<u8>, Undo) {
        let dir = tempfile::tempdir().unwrap();
        let (root, staging) = (dir.path().join("task"), dir.path().join("staging"));
        let (old, undo) = journaled_in(&root, &staging);
        (dir, root, staging, old, undo)
    }

    pub(super) fn journaled_in(root: &Path, staging: &Path) -> (Vec<u8>, Undo) {
        let root = root.to_owned();
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(staging).unwrap();
        let old: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
        fs::write(root.join("big.bin"), &old).unwrap();
        fs::set_permissions(root.join("big.bin"), fs::Permissions::from_mode(0o644)).unwrap();
        let folder = TaskRoot::open(&root).unwrap().top().unwrap();
        let target = Target::open(&folder, "big.bin").unwrap();
        let undo = Undo {
            root: root.clone(),
            path: RelPath::new("big.bin").unwrap(),
            id: target.id,
            size: target.size,
            before: (target.mtime_ns, 0o644),
            after: (42, 0o600),
            at_ns: now_ns(),
            runs: vec![
                (100, old[100..104].to_vec(), b"EDIT".to_vec()),
                (900_000, old[900_000..900_002].to_vec(), b"ED".to_vec()),
            ],
        };
        write_journal(&staging.join(UNDO_JOURNAL), &undo.encode()).unwrap();
        (old, undo)
    }

    pub(super) fn edit(root: &Path, at: u64, bytes: &[u8]) {
        let file = OpenOptions::new()
            .write(true)
            .open(root.join("big.bin"))
            .unwrap();
        file.write_all_at(bytes, at).unwrap();
    }

    /// A crash after the journal and part of the edits (half of a run, before the time and
    /// mode were set): the next start puts the old bytes, time and mode back, and empties
    /// the journal.
    #[test]
    fn a_cut_short_edit_is_undone_at_the_next_start() {
        let (_dir, root, staging, old, undo) = journaled();
        edit(&root, 100, b"ED");
        fs::set_permissions(root.join("big.bin"), fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            undo_cut_short(&staging).unwrap(),
            Some(root.join("big.bin"))
        );
        assert!(fs::read(root.join("big.bin")).unwrap() == old, "put back");
        let meta = fs::metadata(root.join("big.bin")).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o644);
        assert_eq!(
            meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            undo.before.0
        );
        assert_eq!(
            undo_cut_short(&staging).unwrap(),
            None,
            "the journal is empty"
        );
    }

    /// An edit that was whole (its journal not emptied yet) stays: the placement may have
    /// been reported, and undoing it would look like a person's revert. A person's save
    /// after the crash stays too, whether the edited bytes or only its time show it.
    #[test]
    fn a_whole_edit_or_a_later_save_is_left_as_it_is() {
        let (_dir, root, staging, old, undo) = journaled();
        edit(&root, 100, b"EDIT");
        edit(&root, 900_000, b"ED");
        let file = OpenOptions::new()
            .write(true)
            .open(root.join("big.bin"))
            .unwrap();
        finish_file(&file, undo.after, &root).unwrap();
        let whole = fs::read(root.join("big.bin")).unwrap();
        assert_eq!(undo_cut_short(&staging).unwrap(), None);
        assert!(fs::read(root.join("big.bin")).unwrap() == whole);

        for (journal_at, run) in [(now_ns(), b"EPIT"), (0, b"EDIT")] {
            fs::write(root.join("big.bin"), &old).unwrap();
            let folder = TaskRoot::open(&root).unwrap().top().unwrap();
            let target = Target::open(&folder, "big.bin").unwrap();
            let undo = Undo {
                id: target.id,
                before: (target.mtime_ns, 0o644),
                at_ns: journal_at,
                ..undo.clone()
            };
            write_journal(&staging.join(UNDO_JOURNAL), &undo.encode()).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let mut saved = old.clone();
            saved[100..104].copy_from_slice(run);
            fs::write(root.join("big.bin"), &saved).unwrap();
            assert_eq!(undo_cut_short(&staging).unwrap(), None);
            assert!(fs::read(root.join("big.bin")).unwrap() == saved);
        }
    }

    #[test]
    fn staged_edits_read_back_only_for_their_base_and_hash() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.edits");
        let (base, hash) = (ContentHash::of(b"base"), ContentHash::of(b"new"));
        let edits = InPlace {
            header: Header {
                source_len: 1000,
                source_hash: base,
                target_len: 1000,
                target_hash: hash,
            },
            edits: vec![(3, b"abc".to_vec()), (997, b"xyz".to_vec())],
        };
        put_edits(&path, &edits).unwrap();
        assert_eq!(edits_at(&path, &hash, Some(base)), Some(edits));
        assert_eq!(edits_at(&path, &hash, Some(hash)), None, "another base");
        assert_eq!(edits_at(&path, &base, Some(base)), None, "another content");
        assert_eq!(edits_at(&path, &hash, None), None);
    }
}
