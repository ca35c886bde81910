//! Unpacking an app archive (`.tar.gz` or `.zip`, told apart by their first bytes) into an
//! empty folder, refusing anything that could write outside it.
//!
//! Refused: absolute paths, `..` parts, symbolic and hard links (a link unpacked first could
//! redirect a later entry), devices and fifos, an entry that appears twice, and more than
//! `max_bytes` of content in all (counted while writing, not trusted from headers).

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Component, Path, PathBuf};

use crate::AppsError;

/// The kinds of archive QSync unpacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A gzip-compressed tar archive.
    TarGz,
    /// A zip archive.
    Zip,
}

/// What [`unpack`] wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Unpacked {
    /// Files written.
    pub files: u64,
    /// Folders created.
    pub folders: u64,
    /// Bytes of content written.
    pub bytes: u64,
}

/// Tell the kind of `archive` from its first bytes.
pub fn kind_of(archive: &Path) -> Result<Kind, AppsError> {
    let mut magic = [0u8; 4];
    let mut file = File::open(archive).map_err(|e| AppsError::io("open", archive, e))?;
    let n = file
        .read(&mut magic)
        .map_err(|e| AppsError::io("read", archive, e))?;
    match &magic[..n] {
        [0x1f, 0x8b, ..] => Ok(Kind::TarGz),
        [b'P', b'K', 3, 4] | [b'P', b'K', 5, 6] => Ok(Kind::Zip),
        _ => Err(AppsError::Archive {
            archive: archive.into(),
            problem: "is neither a .tar.gz nor a .zip archive".into(),
        }),
    }
}

/// Unpack `archive` into `dest` (created if missing; should be empty).
pub fn unpack(archive: &Path, dest: &Path, max_bytes: u64) -> Result<Unpacked, AppsError> {
    fs::create_dir_all(dest).map_err(|e| AppsError::io("create", dest, e))?;
    let mut out = Writer {
        archive,
        dest,
        max_bytes,
        done: Unpacked::default(),
    };
    let file = File::open(archive).map_err(|e| AppsError::io("open", archive, e))?;
    match kind_of(archive)? {
        Kind::TarGz => unpack_tar(file, &mut out)?,
        Kind::Zip => unpack_zip(file, &mut out)?,
    }
    Ok(out.done)
}

struct Writer<'a> {
    archive: &'a Path,
    dest: &'a Path,
    max_bytes: u64,
    done: Unpacked,
}

impl Writer<'_> {
    fn refuse(&self, problem: String) -> AppsError {
        AppsError::Archive {
            archive: self.archive.into(),
            problem,
        }
    }

    /// `name` under `dest`, or an error if it would land anywhere else.
    fn target(&self, name: &Path) -> Result<Option<PathBuf>, AppsError> {
        let mut target = self.dest.to_path_buf();
        let mut depth = 0;
        for part in name.components() {
            match part {
                Component::Normal(p) => {
                    target.push(p);
                    depth += 1;
                }
                Component::CurDir => {}
                Component::ParentDir | Component::RootDir | Component::Prefix(_) => {
                    return Err(self.refuse(format!(
                        "entry `{}` would land outside the app's folder",
                        name.display()
                    )))
                }
            }
        }
        Ok((depth > 0).then_some(target))
    }

    fn folder(&mut self, name: &Path) -> Result<(), AppsError> {
        if let Some(target) = self.target(name)? {
            fs::create_dir_all(&target).map_err(|e| AppsError::io("create", &target, e))?;
            self.done.folders += 1;
        }
        Ok(())
    }

    fn file(
        &mut self,
        name: &Path,
        executable: bool,
        content: &mut dyn Read,
    ) -> Result<(), AppsError> {
        let Some(target) = self.target(name)? else {
            return Err(self.refuse("a file entry has an empty name".into()));
        };
        if let Some(parent) = target.parent() {
            fs::create_dir_all(parent).map_err(|e| AppsError::io("create", parent, e))?;
        }
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(if executable { 0o755 } else { 0o644 })
            .open(&target)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => {
                    self.refuse(format!("entry `{}` appears twice", name.display()))
                }
                _ => AppsError::io("create", &target, e),
            })?;
        let left = self.max_bytes.saturating_sub(self.done.bytes);
        let written = io::copy(&mut content.take(left.saturating_add(1)), &mut file)
            .map_err(|e| AppsError::io("unpack into", &target, e))?;
        if written > left {
            return Err(self.refuse(format!(
                "holds more than {} bytes once unpacked",
                self.max_bytes
            )));
        }
        file.flush()
            .map_err(|e| AppsError::io("write", &target, e))?;
        self.done.bytes += written;
        self.done.files += 1;
        Ok(())
    }
}

fn unpack_tar(file: File, out: &mut Writer<'_>) -> Result<(), AppsError> {
    let archive_err = |e: io::Error| AppsError::io("read the archive", out.archive, e);
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let entries = tar.entries().map_err(archive_err)?;
    for entry in entries {
        let mut entry = entry.map_err(|e| AppsError::io("read the archive", out.archive, e))?;
        let name = entry
            .path()
            .map_err(|e| AppsError::io("read the archive", out.archive, e))?
            .into_owned();
        let kind = entry.header().entry_type();
        let mode = entry.header().mode().unwrap_or(0o644);
        match kind {
            tar::EntryType::Directory => out.folder(&name)?,
            tar::EntryType::Regular | tar::EntryType::Continuous => {
                out.file(&name, mode & 0o111 != 0, &mut entry)?
            }
            tar::EntryType::XGlobalHeader => {}
            tar::EntryType::Symlink | tar::EntryType::Link => {
                return Err(out.refuse(format!(
                    "entry `{}` is a link; app archives may hold only files and folders",
                    name.display()
                )))
            }
            other => {
                return Err(out.refuse(format!(
                    "entry `{}` is of a kind QSync does not unpack ({other:?})",
                    name.display()
                )))
            }
        }
    }
    Ok(())
}

fn unpack_zip(file: File, out: &mut Writer<'_>) -> Result<(), AppsError> {
    let zip_err = |out: &Writer<'_>, e: zip::result::ZipError| out.refuse(format!("{e}"));
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| zip_err(out, e))?;
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| zip_err(out, e))?;
        let name = PathBuf::from(entry.name());
        if entry.enclosed_name().is_none() {
            return Err(out.refuse(format!(
                "entry `{}` would land outside the app's folder",
                name.display()
            )));
        }
        let mode = entry.unix_mode().unwrap_or(0o644);
        if mode & 0o170000 == 0o120000 {
            return Err(out.refuse(format!(
                "entry `{}` is a link; app archives may hold only files and folders",
                name.display()
            )));
        }
        if entry.is_dir() {
            out.folder(&name)?;
        } else {
            out.file(&name, mode & 0o111 != 0, &mut entry)?;
        }
    }
    Ok(())
}

/// Make every file under `dir` readable and writable by its owner again, so that it can be
/// removed (an installer may have made some read-only).
pub(crate) fn loosen(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if let Ok(meta) = fs::symlink_metadata(&path) {
            if meta.is_dir() {
                let _ = fs::set_permissions(&path, fs::Permissions::from_mode(0o755));
                loosen(&path);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_gz(dir: &Path, entries: &[(&str, &[u8], u32)]) -> PathBuf {
        let path = dir.join("a.tar.gz");
        let file = File::create(&path).unwrap();
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            file,
            flate2::Compression::fast(),
        ));
        for (name, content, mode) in entries {
            let mut header = tar::Header::new_gnu();
            header.set_size(content.len() as u64);
            header.set_mode(*mode);
            header.set_entry_type(tar::EntryType::Regular);
            // set_path refuses `..`; write the raw name like a hostile archive would
            let raw = &mut header.as_old_mut().name;
            raw[..name.len()].copy_from_slice(name.as_bytes());
            header.set_cksum();
            tar.append(&header, *content).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        path
    }

    fn zip_file(dir: &Path, entries: &[(&str, &[u8], u32)]) -> PathBuf {
        let path = dir.join("a.zip");
        let mut zip = zip::ZipWriter::new(File::create(&path).unwrap());
        for (name, content, mode) in entries {
            let options = zip::write::SimpleFileOptions::default().unix_permissions(*mode);
            zip.start_file(*name, options).unwrap();
            zip.write_all(content).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    type Maker = fn(&Path, &[(&str, &[u8], u32)]) -> PathBuf;
    const MAKERS: [Maker; 2] = [tar_gz, zip_file];

    #[test]
    fn files_folders_and_exec_bits_come_out() {
        for make in MAKERS {
            let dir = tempfile::tempdir().unwrap();
            let archive = make(
                dir.path(),
                &[
                    ("bin/run.sh", b"#!/bin/sh\n", 0o755),
                    ("data/readme", b"hi", 0o644),
                ],
            );
            let dest = dir.path().join("out");
            let done = unpack(&archive, &dest, 1 << 20).unwrap();
            assert_eq!(done.files, 2);
            assert_eq!(fs::read(dest.join("data/readme")).unwrap(), b"hi");
            let mode = fs::metadata(dest.join("bin/run.sh"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o111, 0o111, "{archive:?}");
        }
    }

    #[test]
    fn escaping_entries_are_refused() {
        for make in MAKERS {
            for name in ["../evil", "a/../../evil", "/tmp/evil"] {
                let dir = tempfile::tempdir().unwrap();
                let archive = make(dir.path(), &[(name, b"x", 0o644)]);
                let err = unpack(&archive, &dir.path().join("out"), 1 << 20);
                let err = err.map(|_| ()).unwrap_err().to_string();
                assert!(err.contains("outside"), "{name}: {err}");
                assert!(!dir.path().join("evil").exists());
            }
        }
    }

    #[test]
    fn links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l.tar.gz");
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Symlink);
        header.set_size(0);
        tar.append_link(&mut header, "etc", "/etc").unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let err = unpack(&path, &dir.path().join("out"), 1 << 20)
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a link"), "{err}");
    }

    #[test]
    fn size_limit_and_unknown_kinds() {
        for make in MAKERS {
            let dir = tempfile::tempdir().unwrap();
            let archive = make(dir.path(), &[("big", &[0u8; 5000], 0o644)]);
            let err = unpack(&archive, &dir.path().join("out"), 4096)
                .unwrap_err()
                .to_string();
            assert!(err.contains("more than 4096 bytes"), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        fs::write(&junk, b"hello").unwrap();
        let err = unpack(&junk, &dir.path().join("out"), 10)
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither"), "{err}");
    }

    #[test]
    fn a_duplicate_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = tar_gz(dir.path(), &[("a", b"1", 0o644), ("a", b"2", 0o644)]);
        let err = unpack(&archive, &dir.path().join("out"), 100)
            .unwrap_err()
            .to_string();
        assert!(err.contains("twice"), "{err}");
    }

    #[test]
    fn truncated_archives_fail_cleanly() {
        for make in MAKERS {
            let dir = tempfile::tempdir().unwrap();
            let archive = make(dir.path(), &[("f", &[7u8; 3000], 0o644)]);
            let bytes = fs::read(&archive).unwrap();
            for cut in [10, bytes.len() / 2, bytes.len() - 1] {
                fs::write(&archive, &bytes[..cut]).unwrap();
                let out = dir.path().join(format!("out{cut}"));
                let _ = unpack(&archive, &out, 1 << 20); // an error or a partial tree, never a panic
            }
        }
    }
}
