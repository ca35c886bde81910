//! The one way into a task folder for work done on a peer's behalf: every path a peer
//! names is resolved beneath the task's root without following a symlink, and every
//! change is made relative to an open folder handle, never by a name looked up again.
//!
//! Why: a linked device chooses the paths and can make any of them a symlink (links are
//! synced as links). Opening `root/a/b` by name follows `a` if it is a link, and opening a
//! file named `b` follows `b`; either could reach outside the folder (read `/etc/shadow`
//! as a patch's base, write through `a -> /home/me`). So:
//!
//! - A folder is reached with `openat2(RESOLVE_BENEATH | RESOLVE_NO_SYMLINKS)` from the
//!   root's handle (Linux 5.6 and later), or, where that call is missing or forbidden (old
//!   kernels, some sandboxes), one component at a time with `O_NOFOLLOW`. Either way a
//!   symlink anywhere on the way is refused ([`RootError::Escapes`]).
//! - The last name is then used only through that folder's handle (`*at` calls):
//!   `fstatat(AT_SYMLINK_NOFOLLOW)`, `openat(O_NOFOLLOW)`, `renameat2`, `unlinkat`,
//!   `mkdirat`, `symlinkat`, `readlinkat`.
//! - Content is read only from a regular file opened `O_NOFOLLOW | O_NONBLOCK` and checked
//!   with `fstat` on the open descriptor ([`RootError::NotRegular`]): not a link, a FIFO
//!   (which would block), a device (`/dev/zero` never ends) or a folder.
//! - A link's target is read only up to [`MAX_LINK_TARGET`] bytes.
//! - Temporary files are created `O_CREAT | O_EXCL | O_NOFOLLOW` under random names and
//!   removed if they are not renamed into place ([`TempEntry`]).
//!
//! The task root itself is the person's choice and is opened by its path (following a
//! link there is what the person asked for). This module is Linux-only, as the daemon is.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};

use qsync_base::RelPath;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags, ResolveFlags};
use rustix::io::Errno;

/// The longest symlink target carried (what Linux allows in a link: `PATH_MAX`).
pub use qsync_core::MAX_LINK_TARGET;

/// Why a path of a task could not be used.
#[derive(Debug, thiserror::Error)]
pub enum RootError {
    /// A symlink (or something that is not a folder) is on the way: the path would leave
    /// the task folder, or reach something other than what it names.
    #[error("`{path}` goes through a symlink; refusing to leave the task folder")]
    Escapes {
        /// The path, relative to the task folder.
        path: String,
    },
    /// Content was asked of something that is not a regular file.
    #[error("`{path}` is not a regular file")]
    NotRegular {
        /// The path, relative to the task folder.
        path: String,
    },
    /// A symlink's target is longer than [`MAX_LINK_TARGET`].
    #[error("the link `{path}` points to a target longer than {MAX_LINK_TARGET} bytes")]
    LinkTooLong {
        /// The path, relative to the task folder.
        path: String,
    },
    /// The file system refused.
    #[error("could not {op} {}: {source}", at.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// Where (for the local log only: never sent to a peer).
        at: PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

impl RootError {
    /// Whether this is the file system saying it is full (or over quota).
    pub fn is_disk_full(&self) -> bool {
        matches!(self, RootError::Io { source, .. }
            if matches!(source.raw_os_error(), Some(code) if code == Errno::NOSPC.raw_os_error() || code == Errno::DQUOT.raw_os_error()))
    }
}

/// What `fstatat` says of one entry (never following a link).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Entry {
    /// File, folder, link or something else.
    pub kind: FileType,
    /// Size in bytes.
    pub size: u64,
    /// The permission bits.
    pub mode: u32,
    /// Modification time, nanoseconds since the epoch.
    pub mtime_ns: i64,
    /// Status change time, nanoseconds since the epoch.
    pub ctime_ns: i64,
    /// Device and inode: together, which file this is.
    pub dev: u64,
    /// See `dev`.
    pub ino: u64,
}

impl Entry {
    // The field types of `stat` differ between architectures: casts that are no-ops here
    // are not on others.
    #[allow(clippy::unnecessary_cast)]
    fn of(stat: &rfs::Stat) -> Self {
        let ns = |s: i64, n: i64| s.saturating_mul(1_000_000_000).saturating_add(n);
        Self {
            kind: FileType::from_raw_mode(stat.st_mode as _),
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mode: stat.st_mode as u32 & 0o7777,
            mtime_ns: ns(stat.st_mtime as i64, stat.st_mtime_nsec as i64),
            ctime_ns: ns(stat.st_ctime as i64, stat.st_ctime_nsec as i64),
            dev: stat.st_dev as u64,
            ino: stat.st_ino as u64,
        }
    }
}

/// An open task folder. See the [module documentation](self).
#[derive(Debug)]
pub struct TaskRoot {
    fd: OwnedFd,
    path: PathBuf,
}

/// An open folder beneath a task root, reached without following a symlink. Names given
/// to its methods are single components (no `/`), used relative to this handle.
#[derive(Debug)]
pub struct Folder {
    fd: OwnedFd,
    /// Where it is, for messages in the local log.
    shown: PathBuf,
}

/// `openat2` turned out to be missing or forbidden here: walk instead.
static NO_OPENAT2: AtomicBool = AtomicBool::new(false);

fn io_error(op: &'static str, at: PathBuf, errno: Errno) -> RootError {
    RootError::Io {
        op,
        at,
        source: errno.into(),
    }
}

impl TaskRoot {
    /// Open the task folder at `path`.
    pub fn open(path: &Path) -> Result<Self, RootError> {
        let fd = rfs::open(
            path,
            OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| io_error("open the task folder", path.to_owned(), e))?;
        Ok(Self {
            fd,
            path: path.to_owned(),
        })
    }

    /// The task folder's path (for the local log).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The root itself as a [`Folder`].
    pub fn top(&self) -> Result<Folder, RootError> {
        let fd = self.fd.try_clone().map_err(|e| RootError::Io {
            op: "open the task folder",
            at: self.path.clone(),
            source: e,
        })?;
        Ok(Folder {
            fd,
            shown: self.path.clone(),
        })
    }

    /// The folder `path` (the root for `None`); `Ok(None)` when it does not exist or a file
    /// stands on the way, [`RootError::Escapes`] when a symlink does.
    pub fn folder(&self, path: Option<&RelPath>) -> Result<Option<Folder>, RootError> {
        let Some(path) = path else {
            return self.top().map(Some);
        };
        match self.beneath(path.as_str()) {
            Ok(fd) => Ok(Some(Folder {
                fd,
                shown: path.to_local(&self.path),
            })),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) => Ok(None),
            Err(Errno::LOOP) | Err(Errno::XDEV) => Err(RootError::Escapes {
                path: path.to_string(),
            }),
            Err(e) => Err(io_error("open the folder", path.to_local(&self.path), e)),
        }
    }

    /// The folder holding `path` and its last name; `Ok(None)` as for [`TaskRoot::folder`].
    pub fn parent<'p>(&self, path: &'p RelPath) -> Result<Option<(Folder, &'p str)>, RootError> {
        let parent = path.parent();
        Ok(self
            .folder(parent.as_ref())?
            .map(|folder| (folder, path.file_name())))
    }

    /// What is at `path`, never following a link; `None` if nothing (or a parent is
    /// missing or a file).
    pub fn stat(&self, path: &RelPath) -> Result<Option<Entry>, RootError> {
        match self.parent(path)? {
            Some((folder, name)) => folder.stat(name),
            None => Ok(None),
        }
    }

    /// The regular file at `path`, open for reading (see [`Folder::open_file`]).
    pub fn open_file(&self, path: &RelPath) -> Result<File, RootError> {
        match self.parent(path)? {
            Some((folder, name)) => folder.open_file(name),
            None => Err(io_error("open", path.to_local(&self.path), Errno::NOENT)),
        }
    }

    /// The target of the symlink at `path` (see [`Folder::read_link`]).
    pub fn read_link(&self, path: &RelPath) -> Result<String, RootError> {
        match self.parent(path)? {
            Some((folder, name)) => folder.read_link(name),
            None => Err(io_error(
                "read the link",
                path.to_local(&self.path),
                Errno::NOENT,
            )),
        }
    }

    /// Make everything written on the root's file system durable (one `syncfs`).
    pub fn sync_file_system(&self) -> Result<(), RootError> {
        let fail = |e| io_error("sync the file system of", self.path.clone(), e);
        let dir = readable(&self.fd).map_err(fail)?;
        rfs::syncfs(&dir).map_err(fail)
    }

    /// Remove the temporary files of transfers a crash cut short (`prefix*` regular files)
    /// anywhere beneath the root, never following a link. Returns how many.
    pub fn remove_stale(&self, prefix: &str) -> usize {
        match self.top() {
            Ok(top) => remove_stale_in(&top, prefix, 0),
            Err(_) => 0,
        }
    }

    /// The folder at `rel`, reached without a symlink anywhere on the way.
    fn beneath(&self, rel: &str) -> Result<OwnedFd, Errno> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC;
        if !NO_OPENAT2.load(Ordering::Relaxed) {
            // RESOLVE_NO_SYMLINKS covers the last component too: a link there is ELOOP.
            let resolve =
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS | ResolveFlags::NO_MAGICLINKS;
            for _ in 0..8 {
                match rfs::openat2(&self.fd, rel, flags, Mode::empty(), resolve) {
                    // A rename elsewhere on the file system raced the lookup: try again.
                    Err(Errno::AGAIN) => continue,
                    Err(Errno::NOSYS) | Err(Errno::PERM) => {
                        NO_OPENAT2.store(true, Ordering::Relaxed);
                        break;
                    }
                    other => return other,
                }
            }
            if !NO_OPENAT2.load(Ordering::Relaxed) {
                return Err(Errno::AGAIN);
            }
        }
        walk(&self.fd, rel, flags | OFlags::NOFOLLOW)
    }
}

/// `rel` beneath `root` one component at a time, each opened `O_NOFOLLOW | O_DIRECTORY`
/// relative to the one before: a symlink on the way fails (`ENOTDIR` or `ELOOP`).
/// ([`RelPath`] holds no `.`, `..` or empty component.)
fn walk(root: &OwnedFd, rel: &str, flags: OFlags) -> Result<OwnedFd, Errno> {
    let mut at: Option<OwnedFd> = None;
    for part in rel.split('/') {
        let from = at.as_ref().unwrap_or(root);
        if let Ok(stat) = rfs::statat(from, part, AtFlags::SYMLINK_NOFOLLOW) {
            if FileType::from_raw_mode(stat.st_mode as _) == FileType::Symlink {
                return Err(Errno::LOOP);
            }
        }
        at = Some(rfs::openat(from, part, flags, Mode::empty())?);
    }
    at.ok_or(Errno::NOENT)
}

/// The folder of the `O_PATH` handle `fd` opened again for reading (to list it, or to
/// sync it: neither works on an `O_PATH` descriptor).
fn readable(fd: &OwnedFd) -> Result<OwnedFd, Errno> {
    rfs::openat(
        fd,
        ".",
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
}

fn remove_stale_in(folder: &Folder, prefix: &str, depth: usize) -> usize {
    // Deeper than any path QSync carries (each component takes at least two bytes of a
    // path of at most a few KiB): stop rather than recurse without end.
    if depth > 2048 {
        return 0;
    }
    let Ok(names) = folder.names() else {
        return 0;
    };
    let mut removed = 0;
    for (name, kind) in names {
        if kind == FileType::Directory {
            if let Ok(Some(sub)) = folder.sub(&name) {
                removed += remove_stale_in(&sub, prefix, depth + 1);
            }
        } else if kind == FileType::RegularFile && name.starts_with(prefix) {
            tracing::info!(path = %folder.shown.join(&name).display(), "removing an unfinished transfer");
            if rfs::unlinkat(&folder.fd, name.as_str(), AtFlags::empty()).is_ok() {
                removed += 1;
            }
        }
    }
    removed
}

impl Folder {
    /// Where this folder is (for the local log).
    pub fn shown(&self) -> &Path {
        &self.shown
    }

    fn at(&self, name: &str) -> PathBuf {
        self.shown.join(name)
    }

    /// The folder `name` in this one (not through a link); `None` if it is not a folder.
    pub fn sub(&self, name: &str) -> Result<Option<Folder>, RootError> {
        let flags = OFlags::PATH | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        match self.stat(name)? {
            Some(e) if e.kind == FileType::Directory => {}
            _ => return Ok(None),
        }
        match rfs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => Ok(Some(Folder {
                fd,
                shown: self.at(name),
            })),
            Err(Errno::NOENT) | Err(Errno::NOTDIR) | Err(Errno::LOOP) => Ok(None),
            Err(e) => Err(io_error("open the folder", self.at(name), e)),
        }
    }

    /// What is at `name`, never following a link; `None` if nothing.
    pub fn stat(&self, name: &str) -> Result<Option<Entry>, RootError> {
        match rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(stat) => Ok(Some(Entry::of(&stat))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => Err(io_error("inspect", self.at(name), e)),
        }
    }

    /// The regular file `name`, open for reading: opened `O_NOFOLLOW | O_NONBLOCK` (a link
    /// is refused, a FIFO does not block) and checked on the open descriptor.
    pub fn open_file(&self, name: &str) -> Result<File, RootError> {
        self.open_regular(name, OFlags::RDONLY)
    }

    /// [`Folder::open_file`], open for reading and writing (an edit made in place).
    pub fn open_file_rw(&self, name: &str) -> Result<File, RootError> {
        self.open_regular(name, OFlags::RDWR)
    }

    fn open_regular(&self, name: &str, access: OFlags) -> Result<File, RootError> {
        let flags = access | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
        let not_regular = || RootError::NotRegular {
            path: self.at(name).display().to_string(),
        };
        let fd = match rfs::openat(&self.fd, name, flags, Mode::empty()) {
            Ok(fd) => fd,
            Err(Errno::LOOP) => return Err(not_regular()),
            Err(e) => return Err(io_error("open", self.at(name), e)),
        };
        let stat = rfs::fstat(&fd).map_err(|e| io_error("inspect", self.at(name), e))?;
        if FileType::from_raw_mode(stat.st_mode as _) != FileType::RegularFile {
            return Err(not_regular());
        }
        Ok(File::from(fd))
    }

    /// The target of the link `name`, at most [`MAX_LINK_TARGET`] bytes (a name that is
    /// not UTF-8 is carried lossily).
    pub fn read_link(&self, name: &str) -> Result<String, RootError> {
        let target = rfs::readlinkat(&self.fd, name, Vec::new())
            .map_err(|e| io_error("read the link", self.at(name), e))?;
        let bytes = target.as_bytes();
        if bytes.len() > MAX_LINK_TARGET {
            return Err(RootError::LinkTooLong {
                path: self.at(name).display().to_string(),
            });
        }
        Ok(String::from_utf8_lossy(bytes).into_owned())
    }

    /// Whether the folder `name` holds anything.
    pub fn has_entries(&self, name: &str) -> Result<bool, RootError> {
        match self.sub(name)? {
            Some(sub) => Ok(!sub.names()?.is_empty()),
            None => Ok(false),
        }
    }

    /// The names in this folder (without `.` and `..`) and their kinds.
    pub fn names(&self) -> Result<Vec<(String, FileType)>, RootError> {
        let fail = |e| io_error("read the folder", self.shown.clone(), e);
        let fd = readable(&self.fd).map_err(fail)?;
        let dir = rfs::Dir::new(fd).map_err(fail)?;
        let mut names = Vec::new();
        for entry in dir {
            let entry = entry.map_err(fail)?;
            let name = entry.file_name().to_bytes();
            if name == b"." || name == b".." {
                continue;
            }
            names.push((
                String::from_utf8_lossy(name).into_owned(),
                entry.file_type(),
            ));
        }
        Ok(names)
    }

    /// Make a folder `name` with exactly `mode` (the umask does not apply).
    pub fn create_dir(&self, name: &str, mode: u32) -> Result<(), RootError> {
        rfs::mkdirat(&self.fd, name, Mode::from_raw_mode(0o700))
            .map_err(|e| io_error("create the folder", self.at(name), e))?;
        self.set_mode(name, mode)
    }

    /// Make a symlink `name` pointing to `target` (at most [`MAX_LINK_TARGET`] bytes).
    pub fn symlink(&self, target: &str, name: &str) -> Result<(), RootError> {
        if target.len() > MAX_LINK_TARGET || target.is_empty() || target.contains('\0') {
            return Err(RootError::LinkTooLong {
                path: self.at(name).display().to_string(),
            });
        }
        rfs::symlinkat(target, &self.fd, name)
            .map_err(|e| io_error("create the link", self.at(name), e))
    }

    /// Give `name` the permission bits `mode` (0: unknown, left as is). A link has none:
    /// left as is. Never follows a link: the entry is opened `O_PATH | O_NOFOLLOW` and its
    /// mode set through that descriptor.
    pub fn set_mode(&self, name: &str, mode: u32) -> Result<(), RootError> {
        if mode == 0 {
            return Ok(());
        }
        let fail = |e| io_error("set the permissions of", self.at(name), e);
        let fd = rfs::openat(
            &self.fd,
            name,
            OFlags::PATH | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(fail)?;
        let stat = rfs::fstat(&fd).map_err(fail)?;
        if FileType::from_raw_mode(stat.st_mode as _) == FileType::Symlink {
            return Ok(());
        }
        let mode = Mode::from_raw_mode((mode & qsync_base::MODE_BITS) as _);
        // `fchmod` refuses an `O_PATH` descriptor; its /proc name reaches the same inode.
        let by_fd = format!("/proc/self/fd/{}", std::os::fd::AsRawFd::as_raw_fd(&fd));
        match rfs::chmod(by_fd.as_str(), mode) {
            Err(Errno::NOENT) => {
                // No /proc: through a descriptor opened without following a link (a file
                // this user cannot read cannot be opened: its mode stays).
                let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
                let fd = rfs::openat(&self.fd, name, flags, Mode::empty()).map_err(fail)?;
                rfs::fchmod(&fd, mode).map_err(fail)
            }
            other => other.map_err(fail),
        }
    }

    /// Remove the file, link or empty folder `name`; nothing there is fine.
    pub fn remove(&self, name: &str) -> Result<(), RootError> {
        let flags = match self.stat(name)? {
            None => return Ok(()),
            Some(e) if e.kind == FileType::Directory => AtFlags::REMOVEDIR,
            Some(_) => AtFlags::empty(),
        };
        match rfs::unlinkat(&self.fd, name, flags) {
            Ok(()) | Err(Errno::NOENT) => Ok(()),
            Err(e) => Err(io_error("remove", self.at(name), e)),
        }
    }

    /// Rename `name` here to `to_name` in `to`, never over something there (a file system
    /// without the flag: checked just before, as well as it can be).
    pub fn rename_noreplace(
        &self,
        name: &str,
        to: &Folder,
        to_name: &str,
    ) -> Result<(), RootError> {
        let fail = |e| io_error("move aside", self.at(name), e);
        match rfs::renameat_with(&self.fd, name, &to.fd, to_name, RenameFlags::NOREPLACE) {
            Err(Errno::INVAL) if matches!(to.stat(to_name), Ok(None)) => {
                rfs::renameat(&self.fd, name, &to.fd, to_name).map_err(fail)
            }
            other => other.map_err(fail),
        }
    }

    /// Move the file at `from` (outside any task: the daemon's own staging) to a new
    /// temporary name here; `None` if that cannot be done by a rename (another file
    /// system, or one without the flag).
    pub fn adopt(&self, from: &Path, prefix: &str) -> Option<TempEntry> {
        for _ in 0..16 {
            let name = random_name(prefix);
            match rfs::renameat_with(
                rfs::CWD,
                from,
                &self.fd,
                name.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                Ok(()) => {
                    let temp = TempEntry {
                        folder: self.try_clone().ok()?,
                        name,
                        kept: false,
                    };
                    return Some(temp);
                }
                Err(Errno::EXIST) => continue,
                Err(_) => return None,
            }
        }
        None
    }

    /// A new empty file here under a random name starting with `prefix`, created
    /// `O_EXCL | O_NOFOLLOW` (never an existing file, never through a link), open for
    /// writing; removed again unless [`TempEntry::persist`] names it.
    pub fn create_temp(&self, prefix: &str) -> Result<(TempEntry, File), RootError> {
        let flags =
            OFlags::RDWR | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        loop {
            let name = random_name(prefix);
            match rfs::openat(&self.fd, name.as_str(), flags, Mode::from_raw_mode(0o600)) {
                Ok(fd) => {
                    let folder = self.try_clone()?;
                    return Ok((
                        TempEntry {
                            folder,
                            name,
                            kept: false,
                        },
                        File::from(fd),
                    ));
                }
                Err(Errno::EXIST) => continue,
                Err(e) => return Err(io_error("create a file in", self.shown.clone(), e)),
            }
        }
    }

    /// Make the names in this folder durable (`fsync` of the folder).
    pub fn sync(&self) -> Result<(), RootError> {
        let fail = |e| io_error("sync", self.shown.clone(), e);
        let dir = readable(&self.fd).map_err(fail)?;
        rfs::fsync(&dir).map_err(fail)
    }

    pub(crate) fn try_clone(&self) -> Result<Folder, RootError> {
        Ok(Folder {
            fd: self.fd.try_clone().map_err(|e| RootError::Io {
                op: "open the folder",
                at: self.shown.clone(),
                source: e,
            })?,
            shown: self.shown.clone(),
        })
    }
}

/// A temporary entry in a folder, removed when dropped unless [`TempEntry::persist`]
/// renamed it into place.
#[derive(Debug)]
pub struct TempEntry {
    folder: Folder,
    name: String,
    kept: bool,
}

impl TempEntry {
    /// The folder it is in.
    pub fn folder(&self) -> &Folder {
        &self.folder
    }

    /// Its temporary name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The entry opened for reading and writing (to set its time, to sync it), never
    /// through a link.
    pub fn open(&self) -> Result<File, RootError> {
        let flags = OFlags::RDWR | OFlags::NOFOLLOW | OFlags::CLOEXEC;
        rfs::openat(&self.folder.fd, self.name.as_str(), flags, Mode::empty())
            .map(File::from)
            .map_err(|e| io_error("open", self.folder.at(&self.name), e))
    }

    /// Give it the permission bits `mode`.
    pub fn set_mode(&self, mode: u32) -> Result<(), RootError> {
        self.folder.set_mode(&self.name, mode)
    }

    /// Rename it to `name` in its folder only if nothing is there (false if something
    /// is: it is then left, and removed when dropped).
    pub fn persist_new(mut self, name: &str) -> Result<bool, RootError> {
        let renamed = rfs::renameat_with(
            &self.folder.fd,
            self.name.as_str(),
            &self.folder.fd,
            name,
            RenameFlags::NOREPLACE,
        );
        match renamed {
            Ok(()) => {
                self.kept = true;
                Ok(true)
            }
            Err(Errno::EXIST) => Ok(false),
            // A file system without the flag: checked just before, as well as it can be.
            Err(Errno::INVAL) if matches!(self.folder.stat(name), Ok(None)) => {
                self.persist(name).map(|()| true)
            }
            Err(e) => Err(io_error("rename into place", self.folder.at(name), e)),
        }
    }

    /// Rename it over `name` in its folder.
    pub fn persist(mut self, name: &str) -> Result<(), RootError> {
        rfs::renameat(&self.folder.fd, self.name.as_str(), &self.folder.fd, name)
            .map_err(|e| io_error("rename into place", self.folder.at(name), e))?;
        self.kept = true;
        Ok(())
    }
}

impl Drop for TempEntry {
    fn drop(&mut self) {
        if !self.kept {
            let _ = rfs::unlinkat(&self.folder.fd, self.name.as_str(), AtFlags::empty());
        }
    }
}

/// `prefix` and 16 hex digits no other process can guess (the standard library's random
/// hasher keys come from the system's random source), distinct within this process.
fn random_name(prefix: &str) -> String {
    static COUNT: AtomicU64 = AtomicU64::new(0);
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(COUNT.fetch_add(1, Ordering::Relaxed));
    format!("{prefix}{:016x}", hasher.finish())
}

#[cfg(test)]
mod tests;
