//! Unpacking an app archive (`.tar.gz` or `.zip`, told apart by their first bytes) into an
//! empty folder, refusing anything that could write outside it or grow without bound.
//!
//! Refused: absolute paths, `..` parts, symbolic and hard links (a link unpacked first could
//! redirect a later entry), devices and fifos, a file that appears twice, and anything over
//! the [`Limits`]: more entries, more bytes of content, or deeper paths than allowed.
//!
//! An archive is read twice (a tar.gz three times: its raw headers are looked at first, see
//! `check_tar_headers`). The first pass writes nothing: it checks every entry's name,
//! kind and depth, counts the entries and adds up the sizes the headers declare, so a
//! refused archive (a million empty files, a bomb whose header is honest) leaves nothing on
//! disk and costs only reading its headers. The second pass writes no more of a file than
//! its header declared, so a header that lies low cannot pass the byte limit either.

use std::collections::HashSet;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
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

/// How much an archive may unpack to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Entries (files and folders) in all.
    pub max_entries: u64,
    /// Bytes of file content in all.
    pub max_bytes: u64,
    /// Parts in an entry's path (`a/b/c` is 3).
    pub max_depth: usize,
}

impl Limits {
    /// The default limits with `max_bytes` of content.
    pub fn with_bytes(max_bytes: u64) -> Self {
        Self {
            max_bytes,
            ..Self::default()
        }
    }
}

impl Default for Limits {
    /// 100,000 entries, 4 GiB, 32 levels.
    fn default() -> Self {
        Self {
            max_entries: 100_000,
            max_bytes: 4 << 30,
            max_depth: 32,
        }
    }
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

/// Check `archive` against `limits` without writing anything: what [`unpack`] would write.
pub fn check(archive: &Path, limits: &Limits) -> Result<Unpacked, AppsError> {
    let mut out = Writer::new(archive, None, limits);
    out.run()?;
    Ok(out.done)
}

/// Unpack `archive` into `dest` (created if missing; should be empty). Nothing is written
/// unless the whole archive passes [`check`] first.
pub fn unpack(archive: &Path, dest: &Path, limits: &Limits) -> Result<Unpacked, AppsError> {
    check(archive, limits)?;
    fs::create_dir_all(dest).map_err(|e| AppsError::io("create", dest, e))?;
    let mut out = Writer::new(archive, Some(dest), limits);
    out.run()?;
    Ok(out.done)
}

/// One pass over an archive: checking only (`dest` is `None`) or writing.
struct Writer<'a> {
    archive: &'a Path,
    dest: Option<&'a Path>,
    limits: &'a Limits,
    entries: u64,
    /// Files met so far (checking pass only: the writing pass relies on `create_new`).
    files_seen: HashSet<PathBuf>,
    done: Unpacked,
}

impl<'a> Writer<'a> {
    fn new(archive: &'a Path, dest: Option<&'a Path>, limits: &'a Limits) -> Self {
        Self {
            archive,
            dest,
            limits,
            entries: 0,
            files_seen: HashSet::new(),
            done: Unpacked::default(),
        }
    }

    fn run(&mut self) -> Result<(), AppsError> {
        let file = File::open(self.archive).map_err(|e| AppsError::io("open", self.archive, e))?;
        match kind_of(self.archive)? {
            Kind::TarGz => {
                if self.dest.is_none() {
                    let again = File::open(self.archive)
                        .map_err(|e| AppsError::io("open", self.archive, e))?;
                    check_tar_headers(again, self)?;
                }
                unpack_tar(file, self)
            }
            Kind::Zip => unpack_zip(file, self),
        }
    }

    fn refuse(&self, problem: String) -> AppsError {
        AppsError::Archive {
            archive: self.archive.into(),
            problem,
        }
    }

    /// Count one more entry named `name`; its path relative to the destination (`None` for
    /// the destination itself), or an error if it would land anywhere else, is too deep, or
    /// is one entry too many.
    fn entry(&mut self, name: &Path) -> Result<Option<PathBuf>, AppsError> {
        self.entries += 1;
        if self.entries > self.limits.max_entries {
            return Err(self.refuse(format!(
                "holds more than {} entries",
                self.limits.max_entries
            )));
        }
        let mut relative = PathBuf::new();
        let mut depth = 0;
        for part in name.components() {
            match part {
                Component::Normal(p) => {
                    relative.push(p);
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
        if depth > self.limits.max_depth {
            return Err(self.refuse(format!(
                "entry `{}` is more than {} folders deep",
                name.display(),
                self.limits.max_depth
            )));
        }
        Ok((depth > 0).then_some(relative))
    }

    fn folder(&mut self, name: &Path) -> Result<(), AppsError> {
        let Some(relative) = self.entry(name)? else {
            return Ok(());
        };
        if let Some(dest) = self.dest {
            let target = dest.join(relative);
            fs::create_dir_all(&target).map_err(|e| AppsError::io("create", &target, e))?;
        }
        self.done.folders += 1;
        Ok(())
    }

    fn too_large(&self) -> AppsError {
        self.refuse(format!(
            "holds more than {} bytes once unpacked",
            self.limits.max_bytes
        ))
    }

    /// A file entry: `declared` is the size its header gives, `content` its bytes (read only
    /// by the writing pass).
    fn file(
        &mut self,
        name: &Path,
        executable: bool,
        declared: u64,
        content: &mut dyn Read,
    ) -> Result<(), AppsError> {
        let Some(relative) = self.entry(name)? else {
            return Err(self.refuse("a file entry has an empty name".into()));
        };
        let left = self.limits.max_bytes.saturating_sub(self.done.bytes);
        let Some(dest) = self.dest else {
            if declared > left {
                return Err(self.too_large());
            }
            if !self.files_seen.insert(relative) {
                return Err(self.refuse(format!("entry `{}` appears twice", name.display())));
            }
            self.done.bytes += declared;
            self.done.files += 1;
            return Ok(());
        };
        let target = dest.join(relative);
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
        // No more than the header declared (the checking pass added those up), so a
        // header that lies low cannot unpack more than was checked.
        let cap = left.min(declared);
        let written = io::copy(&mut content.take(cap.saturating_add(1)), &mut file)
            .map_err(|e| AppsError::io("unpack into", &target, e))?;
        if written > declared {
            return Err(self.refuse(format!(
                "entry `{}` holds more than the {declared} bytes its header says",
                name.display()
            )));
        }
        if written > left {
            return Err(self.too_large());
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
                let declared = entry.size();
                out.file(&name, mode & 0o111 != 0, declared, &mut entry)?
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

/// The most bytes a tar metadata entry (a GNU long name or link, a PAX header) may hold.
/// The tar reader buffers these whole before it hands out the entry they describe.
const MAX_TAR_METADATA: u64 = 64 << 10;

/// A first look at a tar's raw entries, before the tar reader is let loose on it: metadata
/// entries must be small (else a 4 GiB long name of zeros, 4 MB compressed, would be read
/// into memory), and the entries they describe are counted.
fn check_tar_headers(file: File, out: &Writer<'_>) -> Result<(), AppsError> {
    let archive_err = |e: io::Error| AppsError::io("read the archive", out.archive, e);
    let mut tar = tar::Archive::new(flate2::read::GzDecoder::new(io::BufReader::new(file)));
    let mut entries = 0u64;
    for entry in tar.entries().map_err(archive_err)?.raw(true) {
        let entry = entry.map_err(archive_err)?;
        match entry.header().entry_type() {
            tar::EntryType::GNULongName
            | tar::EntryType::GNULongLink
            | tar::EntryType::XHeader
            | tar::EntryType::XGlobalHeader => {
                if entry.size() > MAX_TAR_METADATA {
                    return Err(out.refuse(format!(
                        "has a metadata header of {} bytes (at most {MAX_TAR_METADATA})",
                        entry.size()
                    )));
                }
            }
            _ => {
                entries += 1;
                if entries > out.limits.max_entries {
                    return Err(out.refuse(format!(
                        "holds more than {} entries",
                        out.limits.max_entries
                    )));
                }
            }
        }
    }
    Ok(())
}

/// How many central directory headers (`PK\x01\x02`) `file` holds anywhere. The zip reader
/// loads every entry of the central directory into memory before handing out the first,
/// and each loaded entry starts with this signature: so this bounds what it can load,
/// whatever the end records say (they can lie, be duplicated, or hide behind junk).
fn zip_directory_headers(file: &mut File) -> io::Result<u64> {
    const SIGNATURE: [u8; 4] = [b'P', b'K', 1, 2];
    file.seek(SeekFrom::Start(0))?;
    let mut buf = vec![0u8; 1 << 20];
    let mut kept = 0; // bytes carried over from the last read (a signature cut in two)
    let mut count = 0u64;
    loop {
        let n = file.read(&mut buf[kept..])?;
        if n == 0 {
            break;
        }
        let filled = kept + n;
        count += buf[..filled].windows(4).filter(|w| *w == SIGNATURE).count() as u64;
        kept = filled.min(3);
        buf.copy_within(filled - kept..filled, 0);
    }
    Ok(count)
}

fn unpack_zip(mut file: File, out: &mut Writer<'_>) -> Result<(), AppsError> {
    let zip_err = |out: &Writer<'_>, e: zip::result::ZipError| out.refuse(format!("{e}"));
    let headers = zip_directory_headers(&mut file)
        .map_err(|e| AppsError::io("read the archive", out.archive, e))?;
    if headers > out.limits.max_entries {
        return Err(out.refuse(format!(
            "holds more than {} entries",
            out.limits.max_entries
        )));
    }
    file.seek(SeekFrom::Start(0))
        .map_err(|e| AppsError::io("read the archive", out.archive, e))?;
    let mut zip = zip::ZipArchive::new(io::BufReader::new(file)).map_err(|e| zip_err(out, e))?;
    for i in 0..zip.len() {
        // The checking pass reads headers only: no decompression.
        let mut entry = if out.dest.is_some() {
            zip.by_index(i)
        } else {
            zip.by_index_raw(i)
        }
        .map_err(|e| zip_err(out, e))?;
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
            let declared = entry.size();
            out.file(&name, mode & 0o111 != 0, declared, &mut entry)?;
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
            let done = unpack(&archive, &dest, &Limits::with_bytes(1 << 20)).unwrap();
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
                let err = unpack(
                    &archive,
                    &dir.path().join("out"),
                    &Limits::with_bytes(1 << 20),
                );
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
        let err = unpack(&path, &dir.path().join("out"), &Limits::with_bytes(1 << 20))
            .unwrap_err()
            .to_string();
        assert!(err.contains("is a link"), "{err}");
    }

    #[test]
    fn size_limit_and_unknown_kinds() {
        for make in MAKERS {
            let dir = tempfile::tempdir().unwrap();
            let archive = make(dir.path(), &[("big", &[0u8; 5000], 0o644)]);
            let err = unpack(&archive, &dir.path().join("out"), &Limits::with_bytes(4096))
                .unwrap_err()
                .to_string();
            assert!(err.contains("more than 4096 bytes"), "{err}");
        }
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk");
        fs::write(&junk, b"hello").unwrap();
        let err = unpack(&junk, &dir.path().join("out"), &Limits::with_bytes(10))
            .unwrap_err()
            .to_string();
        assert!(err.contains("neither"), "{err}");
    }

    #[test]
    fn entry_count_and_depth_are_bounded_and_nothing_is_written() {
        for make in MAKERS {
            let dir = tempfile::tempdir().unwrap();
            let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
            let entries: Vec<(&str, &[u8], u32)> = names
                .iter()
                .map(|n| (n.as_str(), &b""[..], 0o644))
                .collect();
            let archive = make(dir.path(), &entries);
            let limits = Limits {
                max_entries: 19,
                ..Limits::default()
            };
            let out = dir.path().join("out");
            let err = unpack(&archive, &out, &limits).unwrap_err().to_string();
            assert!(err.contains("more than 19 entries"), "{err}");
            assert!(!out.exists(), "a refused archive wrote something");
            let fits = Limits {
                max_entries: 20,
                ..Limits::default()
            };
            assert_eq!(check(&archive, &fits).unwrap().files, 20);

            let deep = make(dir.path(), &[("a/b/c/d", b"x", 0o644)]);
            let shallow = Limits {
                max_depth: 3,
                ..Limits::default()
            };
            let err = unpack(&deep, &out, &shallow).unwrap_err().to_string();
            assert!(err.contains("more than 3 folders deep"), "{err}");
            assert!(!out.exists());
        }
    }

    #[test]
    fn a_zip_whose_end_record_understates_its_entries_is_still_counted() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..20).map(|i| format!("f{i}")).collect();
        let entries: Vec<(&str, &[u8], u32)> = names
            .iter()
            .map(|n| (n.as_str(), &b""[..], 0o644))
            .collect();
        let archive = zip_file(dir.path(), &entries);
        // The end record says 1 entry on this disk and 1 in all; junk follows it.
        let mut bytes = fs::read(&archive).unwrap();
        let end = bytes.windows(4).rposition(|w| w == b"PK\x05\x06").unwrap();
        bytes[end + 8..end + 12].copy_from_slice(&[1, 0, 1, 0]);
        bytes.extend(std::iter::repeat_n(0u8, 70_000));
        fs::write(&archive, bytes).unwrap();
        let limits = Limits {
            max_entries: 19,
            ..Limits::default()
        };
        let err = check(&archive, &limits).unwrap_err().to_string();
        assert!(err.contains("more than 19 entries"), "{err}");
    }

    #[test]
    fn a_huge_tar_long_name_is_refused_before_it_is_read() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("long.tar.gz");
        let mut tar = tar::Builder::new(flate2::write::GzEncoder::new(
            File::create(&path).unwrap(),
            flate2::Compression::fast(),
        ));
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::GNULongName);
        header.set_size(1 << 20);
        header.set_path("././@LongLink").unwrap();
        header.set_cksum();
        tar.append(&header, io::repeat(b'a').take(1 << 20)).unwrap();
        let mut file = tar::Header::new_gnu();
        file.set_size(0);
        file.set_path("short").unwrap();
        file.set_cksum();
        tar.append(&file, io::empty()).unwrap();
        tar.into_inner().unwrap().finish().unwrap();
        let err = check(&path, &Limits::default()).unwrap_err().to_string();
        assert!(err.contains("metadata header of 1048576 bytes"), "{err}");
    }

    #[test]
    fn an_honest_bomb_is_refused_from_its_headers() {
        // 64 MiB of zeros declared in the header: refused by the checking pass, nothing
        // written, without inflating it.
        let dir = tempfile::tempdir().unwrap();
        let zeros = vec![0u8; 64 << 20];
        let archive = zip_file(dir.path(), &[("zeros", &zeros, 0o644)]);
        let out = dir.path().join("out");
        let err = unpack(&archive, &out, &Limits::with_bytes(1 << 20))
            .unwrap_err()
            .to_string();
        assert!(err.contains("more than 1048576 bytes"), "{err}");
        assert!(!out.exists());
    }

    #[test]
    fn a_duplicate_entry_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = tar_gz(dir.path(), &[("a", b"1", 0o644), ("a", b"2", 0o644)]);
        let err = unpack(&archive, &dir.path().join("out"), &Limits::with_bytes(100))
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
                let _ = unpack(&archive, &out, &Limits::with_bytes(1 << 20)); // an error or a partial tree, never a panic
            }
        }
    }
}
