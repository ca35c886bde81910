//! Received edits written into the file they change, instead of a new copy renamed over it.
//!
//! A 1-byte edit of a 100 MiB file used to cost the receiver writing and syncing 100 MiB
//! (the new version in full, then renamed over the old one). When a patch keeps the length
//! and every unchanged byte at its place ([`qsync_delta::in_place_edits`]), the receiver
//! checks at once, in one pass over its file, that the file is the patch's base and that
//! the changed runs give the promised result, stages only those runs (`<hash>.edits` beside
//! the staged contents), and the placement writes them into the file:
//!
//! 1. the file is looked at again: the same inode, size and times as when the placement
//!    was checked, and [`editable`] (one name only: a file with other hard links, perhaps
//!    outside the task, is never written through; no executable bit; this user's);
//! 2. the runs' old and new bytes are written to the undo journal (`.in-place-undo` in the
//!    staging folder), which is made durable;
//! 3. the runs are written and made durable, then the file's mode and time set and made
//!    durable;
//! 4. the journal is emptied (made durable), and only then is the placement reported.
//!
//! A crash between 2 and 4 leaves a journal: the next start (`CoreSync::start`, before it
//! empties the staging folder) puts the old bytes, mode and time back, so the file is again
//! what the ledger says and the placement is made again; but only if the file is still as
//! the edits could have left it, which is decided by content: the same file and size, each
//! byte of the runs its old or its new value, and the whole file with the runs' old bytes
//! hashing to the version before. A file that hashes to the version after is left as it is
//! (the placement may have been reported); anything else (someone wrote to it since,
//! anywhere) is left too. Nobody's later write is ever undone. A reader of
//! the file while the edits are written may see some of them only, as with any program that
//! writes a file in place; the rename of a new copy is kept for everything else: new
//! lengths, moved bytes, files under [`IN_PLACE_MIN`], edits over [`max_edit_bytes`].

use std::fs::{self, File, OpenOptions};
use std::io::{Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileExt, MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, UNIX_EPOCH};

use qsync_base::{ContentHash, ContentHasher, RelPath, MODE_BITS};
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
    /// What the file held before the edits, and what it holds after them.
    hashes: (ContentHash, ContentHash),
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
        out.extend_from_slice(self.hashes.0.as_bytes());
        out.extend_from_slice(self.hashes.1.as_bytes());
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
        let hashes = (f.hash()?, f.hash()?);
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
            hashes,
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
    // The journal's name, and the staging folder's own (made afresh at each start).
    File::open(staging)
        .and_then(|d| d.sync_all())
        .map_err(io("sync", staging))?;
    match staging.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => File::open(parent)
            .and_then(|d| d.sync_all())
            .map_err(io("sync", parent)),
        _ => Ok(()),
    }
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
    /// Whether edits may be written into it (see [`editable`]).
    editable: bool,
}

/// Whether a file may take edits in place: one name only (another may be outside the
/// task), no executable bit (a running program maps its file), and this process's user's
/// (only its owner may set its time and mode; another user's file gets a new copy).
pub fn editable(meta: &fs::Metadata) -> bool {
    meta.nlink() == 1
        && meta.mode() & 0o111 == 0
        && meta.uid() == rustix::process::geteuid().as_raw()
}

impl Target {
    /// Open `name` in `folder` for writing (never through a link, a regular file with no
    /// other name and no executable bit: a running program maps its file); `None` if it is
    /// not such a file or cannot be opened for writing (read-only, busy, another owner's):
    /// a new copy renamed over it needs only the folder to be writable.
    pub fn open(folder: &super::root::Folder, name: &str) -> Option<Target> {
        Self::open_any(folder, name).filter(|t| t.editable)
    }

    /// [`Target::open`] whatever its links and mode.
    fn open_any(folder: &super::root::Folder, name: &str) -> Option<Target> {
        let file = folder.open_file_rw(name).ok()?;
        let meta = file.metadata().ok()?;
        Some(Target {
            editable: editable(&meta),
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
    let journal = staging.join(UNDO_JOURNAL);
    if fs::metadata(&journal).is_ok_and(|m| m.len() > 0) {
        // An earlier edit whose failure could not be put back: tried again now, and its
        // journal is never written over while it holds something.
        undo_cut_short(staging)?;
    }
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
        hashes: (edits.header.source_hash, edits.header.target_hash),
        runs,
    };
    write_journal(&journal, &undo.encode())?;
    let written = (|| {
        write_runs(&target.file, &undo.runs, Bytes::New, &shown)?;
        // The bytes durable before the mode (which may take the write permission away).
        target.file.sync_data().map_err(io("sync", &shown))?;
        finish_file(&target.file, undo.after, &shown)
    })();
    if let Err(e) = written {
        // Put back through the same descriptor, whatever part was written.
        let back = write_runs(&target.file, &undo.runs, Bytes::Old, &shown)
            .and_then(|()| finish_file(&target.file, undo.before, &shown));
        match back {
            Ok(()) => write_journal(&journal, &[])?,
            // The journal stays: the next edit in place, or the next start, tries again.
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

/// Which bytes of the journal's runs to write.
#[derive(Clone, Copy)]
enum Bytes {
    Old,
    New,
}

/// Write each run's old or new bytes into `file` at its offset.
fn write_runs(
    file: &File,
    runs: &[(u64, Vec<u8>, Vec<u8>)],
    which: Bytes,
    shown: &Path,
) -> Result<(), EngineError> {
    for (at, old, new) in runs {
        let bytes = match which {
            Bytes::Old => old,
            Bytes::New => new,
        };
        file.write_all_at(bytes, *at).map_err(io("write", shown))?;
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
    /// The file holds what the edits make: the edit was whole.
    Whole,
    /// The file with the runs' old bytes holds what it held before: cut short (or not
    /// begun), and nothing else changed.
    CutShort,
    /// Anything else: changed since by someone else (anywhere in it), or another file.
    Other,
}

/// How much of the file is hashed at once.
const PIECE: usize = 4 * 1024 * 1024;

/// Decided by content, read whole: each byte of the runs old or new, and the file as it is
/// against the result's hash, or with the runs' old bytes written over it against the
/// base's.
fn left(undo: &Undo, file: &File, id: (u64, u64), size: u64) -> Left {
    if id != undo.id || size != undo.size {
        return Left::Other;
    }
    // In the runs, each byte is its old or its new value (what the hash below cannot see
    // there, the runs' old bytes being written over them).
    for (at, old, new) in &undo.runs {
        let mut there = vec![0u8; old.len()];
        if file.read_exact_at(&mut there, *at).is_err() {
            return Left::Other;
        }
        let ours = there
            .iter()
            .zip(old)
            .zip(new)
            .all(|((t, o), n)| t == o || t == n);
        if !ours {
            return Left::Other;
        }
    }
    let (mut now, mut before) = (ContentHasher::new(), ContentHasher::new());
    let mut buf = vec![0u8; PIECE];
    let mut at = 0u64;
    while at < size {
        let n = (size - at).min(PIECE as u64) as usize;
        if file.read_exact_at(&mut buf[..n], at).is_err() {
            return Left::Other;
        }
        now.update(&buf[..n]);
        let end = at + n as u64;
        for (run_at, old, _) in &undo.runs {
            let run_end = run_at + old.len() as u64;
            if *run_at < end && run_end > at {
                let from = (*run_at).max(at);
                let to = run_end.min(end);
                let (b, o) = ((from - at) as usize, (from - run_at) as usize);
                let len = (to - from) as usize;
                buf[b..b + len].copy_from_slice(&old[o..o + len]);
            }
        }
        before.update(&buf[..n]);
        at = end;
    }
    if now.finish() == undo.hashes.1 {
        Left::Whole
    } else if before.finish() == undo.hashes.0 {
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
    // Looked at through a descriptor for reading (the edits may have taken the write
    // permission away: then they were whole, the bytes being durable before the mode).
    let Ok(file) = folder.open_file(name) else {
        return Ok(None);
    };
    let Ok(meta) = file.metadata() else {
        return Ok(None);
    };
    match left(undo, &file, (meta.dev(), meta.ino()), meta.len()) {
        // Left as it is: either the placement was reported (the ledger has the new
        // version) or, if it was not, the scan finds the same content the peer's record
        // names, and the two versions merge.
        Left::Whole | Left::Other => return Ok(None),
        Left::CutShort => {}
    }
    let Some(target) = Target::open_any(&folder, name).filter(|t| t.id == undo.id) else {
        return Ok(None);
    };
    write_runs(&target.file, &undo.runs, Bytes::Old, &shown)?;
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
mod tests;
