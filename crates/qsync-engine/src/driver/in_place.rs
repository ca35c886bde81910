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

/// How close to the journal's own time a file's time must be to be taken for one the
/// edits left (the write changes the time before the edits set theirs).
pub const CRASH_WINDOW: Duration = Duration::from_secs(5);

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
#[derive(Debug, PartialEq, Eq)]
struct Undo {
    root: PathBuf,
    path: RelPath,
    size: u64,
    /// The file's modification time before the edits, and the one they give it.
    before_ns: i64,
    after_ns: i64,
    /// When the journal was written (the system's clock).
    at_ns: i64,
    /// Each run: where, its old bytes, its new ones.
    runs: Vec<(u64, Vec<u8>, Vec<u8>)>,
}

impl Undo {
    fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        out.extend_from_slice(UNDO_MAGIC);
        put_bytes(&mut out, self.root.as_os_str().as_encoded_bytes());
        put_bytes(&mut out, self.path.as_str().as_bytes());
        out.extend_from_slice(&self.size.to_le_bytes());
        out.extend_from_slice(&self.before_ns.to_le_bytes());
        out.extend_from_slice(&self.after_ns.to_le_bytes());
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
        let root = PathBuf::from(std::str::from_utf8(f.bytes()?).ok()?);
        let path = RelPath::new(std::str::from_utf8(f.bytes()?).ok()?).ok()?;
        let size = f.u64()?;
        let before_ns = f.u64()? as i64;
        let after_ns = f.u64()? as i64;
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
            size,
            before_ns,
            after_ns,
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
}

impl Target {
    /// Open `name` in `folder` for writing (never through a link, a regular file with no
    /// other name); `None` if it is not such a file.
    pub fn open(folder: &super::root::Folder, name: &str) -> Result<Option<Target>, EngineError> {
        let file = match folder.open_file_rw(name) {
            Ok(file) => file,
            Err(super::root::RootError::NotRegular { .. }) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let meta = file
            .metadata()
            .map_err(io("inspect", &folder.shown().join(name)))?;
        if meta.nlink() != 1 {
            return Ok(None);
        }
        Ok(Some(Target {
            id: (meta.dev(), meta.ino()),
            size: meta.len(),
            mtime_ns: meta.mtime() * 1_000_000_000 + meta.mtime_nsec(),
            file,
        }))
    }
}

/// Write `edits` into `target` (the file at `path` of the task folder `root`), giving it the
/// time `mtime_ns` and the permission bits `mode`, through the undo journal in `staging`
/// (see the module's documentation). On an error after the journal was written the old
/// bytes are put back at once, as a start would.
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
    let undo = Undo {
        root: root.to_owned(),
        path: path.clone(),
        size: target.size,
        before_ns: target.mtime_ns,
        after_ns: mtime_ns,
        at_ns: now_ns(),
        runs,
    };
    let journal = staging.join(UNDO_JOURNAL);
    write_journal(&journal, &undo.encode())?;
    let written = (|| {
        for (at, bytes) in &edits.edits {
            target
                .file
                .write_all_at(bytes, *at)
                .map_err(io("write", &shown))?;
        }
        if mode != 0 {
            let perms = fs::Permissions::from_mode(mode & MODE_BITS);
            target
                .file
                .set_permissions(perms)
                .map_err(io("set the permissions of", &shown))?;
        }
        target
            .file
            .set_modified(time_of(mtime_ns))
            .map_err(io("set the time of", &shown))?;
        target.file.sync_all().map_err(io("sync", &shown))
    })();
    if let Err(e) = written {
        if let Err(undo_error) = undo_cut_short(staging) {
            tracing::error!(path = %shown.display(), error = %undo_error, "could not put back what an edit in place replaced");
        }
        return Err(e);
    }
    write_journal(&journal, &[])
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

fn put_back(undo: &Undo) -> Result<Option<PathBuf>, EngineError> {
    let shown = undo.path.to_local(&undo.root);
    let Ok(root) = TaskRoot::open(&undo.root) else {
        return Ok(None); // the task folder is gone
    };
    let Some((folder, name)) = root.parent(&undo.path)? else {
        return Ok(None);
    };
    let Some(target) = Target::open(&folder, name)? else {
        return Ok(None);
    };
    let window = i64::try_from(CRASH_WINDOW.as_nanos()).unwrap_or(i64::MAX);
    let our_time = [undo.before_ns, undo.after_ns].contains(&target.mtime_ns)
        || target.mtime_ns.abs_diff(undo.at_ns) <= window.unsigned_abs();
    let mut our_bytes = target.size == undo.size;
    for (at, old, new) in &undo.runs {
        let mut there = vec![0u8; old.len()];
        if !our_bytes || target.file.read_exact_at(&mut there, *at).is_err() {
            our_bytes = false;
            break;
        }
        our_bytes = there == *old || there == *new;
    }
    if !our_time || !our_bytes {
        // Changed since by someone else: theirs stays, the scan sees it.
        return Ok(None);
    }
    for (at, old, _) in &undo.runs {
        target
            .file
            .write_all_at(old, *at)
            .map_err(io("write", &shown))?;
    }
    target
        .file
        .set_modified(time_of(undo.before_ns))
        .map_err(io("set the time of", &shown))?;
    target.file.sync_all().map_err(io("sync", &shown))?;
    tracing::warn!(path = %shown.display(), "an edit in place was cut short; the file is as it was before it");
    Ok(Some(shown))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_reads_back_and_a_torn_one_is_nothing() {
        let undo = Undo {
            root: PathBuf::from("/data/task"),
            path: RelPath::new("a/b.bin").unwrap(),
            size: 1 << 20,
            before_ns: 1_700_000_000_000_000_000,
            after_ns: 1_700_000_001_000_000_000,
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

    /// A crash after the journal and some of the edits: the next start puts the old bytes
    /// and time back; a file a person changed since is left alone.
    #[test]
    fn a_cut_short_edit_is_undone_at_the_next_start_unless_changed_since() {
        let dir = tempfile::tempdir().unwrap();
        let (root, staging) = (dir.path().join("task"), dir.path().join("staging"));
        fs::create_dir_all(&root).unwrap();
        fs::create_dir_all(&staging).unwrap();
        let old: Vec<u8> = (0..2u32 << 20).map(|i| (i % 251) as u8).collect();
        fs::write(root.join("big.bin"), &old).unwrap();
        let task = TaskRoot::open(&root).unwrap();
        let folder = task.top().unwrap();
        let target = Target::open(&folder, "big.bin").unwrap().unwrap();
        let path = RelPath::new("big.bin").unwrap();
        // What `write` leaves if the machine stops after the first edit, before the time
        // was set.
        let undo = Undo {
            root: root.clone(),
            path: path.clone(),
            size: target.size,
            before_ns: target.mtime_ns,
            after_ns: 42,
            at_ns: now_ns(),
            runs: vec![
                (100, old[100..104].to_vec(), b"EDIT".to_vec()),
                (900_000, old[900_000..900_002].to_vec(), b"ED".to_vec()),
            ],
        };
        write_journal(&staging.join(UNDO_JOURNAL), &undo.encode()).unwrap();
        target.file.write_all_at(b"EDIT", 100).unwrap();
        drop(target);

        assert_eq!(
            undo_cut_short(&staging).unwrap(),
            Some(root.join("big.bin"))
        );
        assert!(fs::read(root.join("big.bin")).unwrap() == old, "put back");
        assert_eq!(
            undo_cut_short(&staging).unwrap(),
            None,
            "the journal is empty now"
        );

        // The same, but a person saved the file after the crash: their save stays, whether
        // it changed the edited bytes or only its time says so.
        for (journal_at, run) in [(now_ns(), b"EPIT"), (0, b"EDIT")] {
            let undo = Undo {
                at_ns: journal_at,
                ..undo_like(&undo)
            };
            write_journal(&staging.join(UNDO_JOURNAL), &undo.encode()).unwrap();
            std::thread::sleep(Duration::from_millis(20));
            let mut written = old.clone();
            written[100..104].copy_from_slice(run);
            fs::write(root.join("big.bin"), &written).unwrap();
            assert_eq!(undo_cut_short(&staging).unwrap(), None);
            assert!(fs::read(root.join("big.bin")).unwrap() == written);
        }
    }

    fn undo_like(u: &Undo) -> Undo {
        Undo {
            root: u.root.clone(),
            path: u.path.clone(),
            runs: u.runs.clone(),
            ..*u
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
