//! What is done inside one open folder of a task: every call relative to its handle
//! (`*at`, never a name looked up again), nothing followed through a link; and the
//! temporary entries made there, removed unless renamed into place.

use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{self as rfs, AtFlags, FileType, Mode, OFlags, RenameFlags};
use rustix::io::Errno;

use super::{io_error, readable, Entry, Folder, RootError, MAX_LINK_TARGET};

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

    /// Set the modification time of the file `name` (nanoseconds since the epoch), never
    /// through a link (its access time stays).
    pub fn set_modified(&self, name: &str, mtime_ns: i64) -> Result<(), RootError> {
        let at = rfs::Timespec {
            tv_sec: mtime_ns.div_euclid(1_000_000_000) as _,
            tv_nsec: mtime_ns.rem_euclid(1_000_000_000) as _,
        };
        let times = rfs::Timestamps {
            last_access: rfs::Timespec {
                tv_sec: 0,
                tv_nsec: rfs::UTIME_OMIT,
            },
            last_modification: at,
        };
        rfs::utimensat(&self.fd, name, &times, AtFlags::SYMLINK_NOFOLLOW)
            .map_err(|e| io_error("set the time of", self.at(name), e))
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

    /// Rename `name` here to `to_name` here, over whatever file is there.
    pub fn rename_within(&self, name: &str, to_name: &str) -> Result<(), RootError> {
        rfs::renameat(&self.fd, name, &self.fd, to_name)
            .map_err(|e| io_error("rename", self.at(name), e))
    }

    /// Move the regular file `name` here out, to `to` (outside any task: the daemon's own
    /// staging), by a rename over whatever is there; false if it is not a regular file
    /// with one name, or cannot be moved so (another file system): it stays. What was
    /// moved is checked at its new name to be the file that was looked at (something
    /// swapped in meanwhile goes back).
    pub fn give_away(&self, name: &str, to: &Path) -> bool {
        let Ok(before) = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW) else {
            return false;
        };
        let regular = FileType::from_raw_mode(before.st_mode as _) == FileType::RegularFile;
        if !regular || before.st_nlink != 1 || rfs::renameat(&self.fd, name, rfs::CWD, to).is_err()
        {
            return false;
        }
        let moved = rfs::statat(rfs::CWD, to, AtFlags::SYMLINK_NOFOLLOW);
        let same = moved.is_ok_and(|m| (m.st_dev, m.st_ino) == (before.st_dev, before.st_ino));
        if !same {
            let _ = rfs::renameat_with(rfs::CWD, to, &self.fd, name, RenameFlags::NOREPLACE);
        }
        same
    }

    /// Give the regular file `name` here a second name at `to` (outside any task: the
    /// daemon's versions), by a hard link: `Ok(false)` when it is not a regular file or
    /// something is at `to` already, an error where no link can be made (another file
    /// system: `EXDEV`) or must not be (`EMLINK`: the file has other names already).
    /// Never through a symlink: `linkat` without `AT_SYMLINK_FOLLOW`.
    pub fn link_out(&self, name: &str, to: &Path) -> Result<bool, Errno> {
        let before = rfs::statat(&self.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        if FileType::from_raw_mode(before.st_mode as _) != FileType::RegularFile {
            return Ok(false);
        }
        if before.st_nlink != 1 {
            return Err(Errno::MLINK); // other names could change what `to` holds
        }
        match rfs::linkat(&self.fd, name, rfs::CWD, to, AtFlags::empty()) {
            Ok(()) => {}
            Err(Errno::EXIST) => return Ok(false),
            Err(e) => return Err(e),
        }
        // Something swapped in between the look and the link is not kept.
        let linked = rfs::statat(rfs::CWD, to, AtFlags::SYMLINK_NOFOLLOW);
        if linked.is_ok_and(|l| (l.st_dev, l.st_ino) == (before.st_dev, before.st_ino)) {
            Ok(true)
        } else {
            let _ = rfs::unlinkat(rfs::CWD, to, AtFlags::empty());
            Ok(false)
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
