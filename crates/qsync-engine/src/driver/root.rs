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
use std::io;
use std::os::fd::OwnedFd;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use qsync_base::RelPath;
use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, ResolveFlags};
use rustix::io::Errno;

/// The longest symlink target carried (what Linux allows in a link: `PATH_MAX`).
pub use qsync_core::MAX_LINK_TARGET;

mod folder;
pub use folder::TempEntry;

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

#[cfg(test)]
mod tests;
