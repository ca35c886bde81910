//! Content-addressed blobs: the newest full content of each synced file, outside the database.

use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use qsync_base::{ContentHash, ContentHasher};

use crate::direct::Appender;
use crate::StoreError;

/// How temporary files among the blobs are named.
const TEMP_PREFIX: &str = ".incoming-";

/// A folder of files named by the BLAKE3 hash of their content (`ab/cdef…`).
#[derive(Debug, Clone)]
pub struct Blobs {
    dir: PathBuf,
}

impl Blobs {
    pub(crate) fn open(dir: PathBuf) -> Result<Self, StoreError> {
        fs::create_dir_all(&dir).map_err(|e| StoreError::io("create", &dir, e))?;
        // Temporary files a crash left behind.
        for entry in fs::read_dir(&dir).map_err(|e| StoreError::io("list", &dir, e))? {
            let entry = entry.map_err(|e| StoreError::io("list", &dir, e))?;
            if entry.file_name().to_string_lossy().starts_with(TEMP_PREFIX) {
                let _ = fs::remove_file(entry.path());
            }
        }
        // The 256 fan-out folders exist from the start, so that storing a blob never has to
        // create one (a directory creation costs as much as a file's on ext4).
        for byte in 0..=255u8 {
            let sub = dir.join(format!("{byte:02x}"));
            if !sub.is_dir() {
                fs::create_dir(&sub).map_err(|e| StoreError::io("create", &sub, e))?;
            }
        }
        Ok(Self { dir })
    }

    /// Where the blob with this hash lives (whether or not it exists).
    pub fn path(&self, hash: &ContentHash) -> PathBuf {
        let hex = hash.to_hex();
        self.dir.join(&hex[..2]).join(&hex[2..])
    }

    /// Whether the blob is stored.
    pub fn contains(&self, hash: &ContentHash) -> bool {
        self.path(hash).is_file()
    }

    /// Store everything `content` yields; returns its hash. Written to a temporary file,
    /// synced, then renamed into place, so a blob is either whole or absent.
    pub fn put(&self, content: impl Read) -> Result<ContentHash, StoreError> {
        let (hash, staged) = self.stage(content)?;
        if let Some(staged) = staged {
            commit(staged)?;
        }
        Ok(hash)
    }

    /// Write everything `content` yields to a temporary file, hashing it on the way; the
    /// blob is named by that hash only when [`StagedBlob::publish`] is called, which the
    /// caller does once the content is durable (many staged blobs are made durable at once
    /// by [`crate::direct::sync_each`] of their [`StagedBlob::file`]s). A content of a
    /// whole read buffer or more is written straight to the disk (`direct.rs`): no page of
    /// it waits in the cache. `None` when that blob is already stored.
    pub fn stage(
        &self,
        mut content: impl Read,
    ) -> Result<(ContentHash, Option<StagedBlob>), StoreError> {
        let temp = self.temp_file()?;
        let shown = || temp.path().to_owned();
        let mut out: Option<Appender> = None;
        let mut hasher = ContentHasher::new();
        let mut buf = vec![0u8; 256 * 1024];
        loop {
            let n = match content.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(StoreError::io("read content for", &self.dir, e)),
            };
            hasher.update(&buf[..n]);
            if out.is_none() {
                // Directly when the first read filled the buffer: a small blob goes
                // through the page cache (a padded block and a cut would cost more).
                let file = temp.as_file().try_clone();
                let file = file.map_err(|e| StoreError::io("open", shown(), e))?;
                let direct = n == buf.len();
                let opened = Appender::new(file, 0, direct);
                out = Some(opened.map_err(|e| StoreError::io("write", shown(), e))?);
            }
            if let Some(out) = &mut out {
                out.write(&buf[..n])
                    .map_err(|e| StoreError::io("write", shown(), e))?;
            }
        }
        if let Some(out) = out {
            out.finish()
                .map_err(|e| StoreError::io("write", shown(), e))?;
        }
        let hash = hasher.finish();
        let dest = self.path(&hash);
        if dest.is_file() {
            return Ok((hash, None));
        }
        Ok((hash, Some(StagedBlob { temp, dest })))
    }

    /// [`Blobs::stage`] of an open file by a reflink (`FICLONE`): on a file system that
    /// shares extents (btrfs, xfs) the blob costs no space while the file is unchanged, and
    /// no write. The clone is then read and hashed (it is a snapshot: its hash is what the
    /// blob holds, whatever the file does meanwhile). `Ok(None)` when the file systems
    /// cannot clone (ext4, or the file on another file system): stage a copy instead.
    pub fn stage_clone(
        &self,
        file: &fs::File,
    ) -> Result<Option<(ContentHash, Option<StagedBlob>)>, StoreError> {
        let temp = self.temp_file()?;
        #[cfg(target_os = "linux")]
        let cloned = rustix::fs::ioctl_ficlone(temp.as_file(), file).is_ok();
        #[cfg(not(target_os = "linux"))]
        let cloned = {
            let _ = file;
            false
        };
        if !cloned {
            return Ok(None);
        }
        let hash = ContentHash::of_reader(temp.as_file())
            .map_err(|e| StoreError::io("read", temp.path().to_owned(), e))?;
        let dest = self.path(&hash);
        if dest.is_file() {
            return Ok(Some((hash, None)));
        }
        Ok(Some((hash, Some(StagedBlob { temp, dest }))))
    }

    /// Store a copy of the file at `path`, whose content the caller has already checked to
    /// hash to `hash` (and that nobody else writes to). The copy is made by the kernel
    /// (`copy_file_range`, a reflink on file systems that share extents), never read back.
    pub fn put_verified_copy(&self, path: &Path, hash: &ContentHash) -> Result<(), StoreError> {
        let dest = self.path(hash);
        if dest.is_file() {
            return Ok(());
        }
        let temp = self.temp_file()?;
        fs::copy(path, temp.path()).map_err(|e| StoreError::io("copy", path, e))?;
        commit(StagedBlob { temp, dest })
    }

    /// The folder the blobs live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// A new temporary file among the blobs (removed when the store next opens if a crash
    /// leaves it behind).
    fn temp_file(&self) -> Result<tempfile::NamedTempFile, StoreError> {
        tempfile::Builder::new()
            .prefix(TEMP_PREFIX)
            .tempfile_in(&self.dir)
            .map_err(|e| StoreError::io("create a temporary file in", &self.dir, e))
    }

    /// Store a copy of the file at `path`.
    pub fn put_file(&self, path: &Path) -> Result<ContentHash, StoreError> {
        let file = fs::File::open(path).map_err(|e| StoreError::io("open", path, e))?;
        self.put(file)
    }

    /// Open a stored blob.
    pub fn open_blob(&self, hash: &ContentHash) -> Result<fs::File, StoreError> {
        let path = self.path(hash);
        fs::File::open(&path).map_err(|e| StoreError::io("open blob", path, e))
    }

    pub(crate) fn remove(&self, hash: &ContentHash) -> Result<(), StoreError> {
        let path = self.path(hash);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(StoreError::io("remove blob", path, e)),
        }
    }

    /// Every stored blob's hash.
    pub(crate) fn list(&self) -> Result<Vec<ContentHash>, StoreError> {
        self.visit(|hash, _| Some(hash))
    }

    /// Every stored blob, with its size and when it was kept: for a budget on the space
    /// blobs take (see [`Blobs::evict`]).
    pub fn stored(&self) -> Result<Vec<StoredBlob>, StoreError> {
        self.visit(|hash, path| {
            let meta = fs::metadata(path).ok()?;
            Some(StoredBlob {
                hash,
                size: meta.len(),
                kept: meta.modified().ok()?,
            })
        })
    }

    /// Remove a blob to make room (the file it is the base of then has its next edit sent
    /// whole); nothing if it is already gone.
    pub fn evict(&self, hash: &ContentHash) -> Result<(), StoreError> {
        self.remove(hash)
    }

    /// `each` of every stored blob's hash and path, keeping what it returns.
    fn visit<T>(
        &self,
        mut each: impl FnMut(ContentHash, &Path) -> Option<T>,
    ) -> Result<Vec<T>, StoreError> {
        let mut out = Vec::new();
        let entries = fs::read_dir(&self.dir).map_err(|e| StoreError::io("list", &self.dir, e))?;
        for entry in entries {
            let entry = entry.map_err(|e| StoreError::io("list", &self.dir, e))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with(TEMP_PREFIX) {
                // Being written (the daemon's blob keeper works beside the engine).
                continue;
            }
            if name.len() != 2 || !entry.path().is_dir() {
                continue;
            }
            let sub =
                fs::read_dir(entry.path()).map_err(|e| StoreError::io("list", entry.path(), e))?;
            for blob in sub {
                let blob = blob.map_err(|e| StoreError::io("list", entry.path(), e))?;
                let hex = format!("{name}{}", blob.file_name().to_string_lossy());
                let mut bytes = [0u8; 32];
                if hex.len() == 64 && decode_hex(&hex, &mut bytes) {
                    if let Some(found) = each(ContentHash::from_bytes(bytes), &blob.path()) {
                        out.push(found);
                    }
                }
            }
        }
        Ok(out)
    }
}

/// One stored blob, as [`Blobs::stored`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredBlob {
    /// Its content's hash (its name).
    pub hash: ContentHash,
    /// Its size in bytes.
    pub size: u64,
    /// When it was kept.
    pub kept: std::time::SystemTime,
}

/// A blob written by [`Blobs::stage`], not yet durable and not yet named. Dropped
/// unpublished, it is removed.
#[derive(Debug)]
pub struct StagedBlob {
    temp: tempfile::NamedTempFile,
    dest: PathBuf,
}

/// Make a written temporary blob durable, then give it its name: a blob is either whole
/// or absent.
fn commit(staged: StagedBlob) -> Result<(), StoreError> {
    staged.sync()?;
    staged.publish()
}

impl StagedBlob {
    /// The blob's temporary file (to make many durable at once:
    /// [`crate::direct::sync_each`], before [`StagedBlob::publish`]).
    pub fn file(&self) -> &fs::File {
        self.temp.as_file()
    }

    /// Make the blob's content durable (before [`StagedBlob::publish`]).
    pub fn sync(&self) -> Result<(), StoreError> {
        self.temp
            .as_file()
            .sync_all()
            .map_err(|e| StoreError::io("sync", self.temp.path().to_owned(), e))
    }

    /// Give the blob its name. Call it only once the content is durable (after a `fsync`
    /// of the blobs' file system, say), so that a named blob is always whole.
    pub fn publish(self) -> Result<(), StoreError> {
        let dest = self.dest;
        if let Some(parent) = dest.parent() {
            fs::create_dir_all(parent).map_err(|e| StoreError::io("create", parent, e))?;
        }
        self.temp
            .persist(&dest)
            .map_err(|e| StoreError::io("store blob", dest, e.error))?;
        Ok(())
    }
}

fn decode_hex(hex: &str, out: &mut [u8; 32]) -> bool {
    for (i, pair) in hex.as_bytes().chunks(2).enumerate() {
        let Ok(text) = std::str::from_utf8(pair) else {
            return false;
        };
        match u8::from_str_radix(text, 16) {
            Ok(b) => out[i] = b,
            Err(_) => return false,
        }
    }
    true
}
