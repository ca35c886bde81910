//! File operations on the receiving side: never outside the task's root, never half-written.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use qsync_base::RelPath;

/// Why a path from a peer was refused.
#[derive(Debug, thiserror::Error)]
pub enum PathError {
    /// An existing folder on the way is a symlink: writing through it could leave the root.
    #[error("`{path}` goes through the symlink `{}`; refusing to write outside the task's folder", through.display())]
    ThroughSymlink {
        /// The path asked for.
        path: RelPath,
        /// The symlink on the way.
        through: PathBuf,
    },
    /// An existing file stands where a folder is needed.
    #[error("`{path}` needs `{}` to be a folder, but it is a file", at.display())]
    NotAFolder {
        /// The path asked for.
        path: RelPath,
        /// The file in the way.
        at: PathBuf,
    },
    /// The file system refused.
    #[error("could not inspect {}: {source}", at.display())]
    Io {
        /// Where.
        at: PathBuf,
        /// The system's error.
        source: io::Error,
    },
}

/// `path` under `root`, checked for writing: every folder on the way that exists is a real
/// folder, not a symlink. ([`RelPath`] already excludes `..` and absolute paths.)
pub fn safe_target(root: &Path, path: &RelPath) -> Result<PathBuf, PathError> {
    let mut at = root.to_owned();
    if let Some(parent) = path.parent() {
        for part in parent.as_str().split('/') {
            at.push(part);
            match fs::symlink_metadata(&at) {
                Ok(meta) if meta.file_type().is_symlink() => {
                    return Err(PathError::ThroughSymlink {
                        path: path.clone(),
                        through: at,
                    })
                }
                Ok(meta) if !meta.is_dir() => {
                    return Err(PathError::NotAFolder {
                        path: path.clone(),
                        at,
                    })
                }
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(source) => return Err(PathError::Io { at, source }),
            }
        }
    }
    Ok(path.to_local(root))
}

/// [`safe_target`], with the folders on the way created.
pub fn prepare_target(root: &Path, path: &RelPath) -> Result<PathBuf, PathError> {
    let target = safe_target(root, path)?;
    if let Some(parent) = target.parent() {
        fs::create_dir_all(parent).map_err(|source| PathError::Io {
            at: parent.to_owned(),
            source,
        })?;
    }
    // Check again: a symlink could have been planted while creating.
    safe_target(root, path)
}

/// Remove a file, symlink or folder tree; nothing there is fine.
pub fn remove_any(target: &Path) -> io::Result<()> {
    match fs::symlink_metadata(target) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(target),
        Ok(_) => fs::remove_file(target),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// A temporary file for incoming content, in the folder of `target` (so the final rename
/// is atomic), named so the watcher ignores it.
pub fn incoming_file(target: &Path) -> io::Result<tempfile::NamedTempFile> {
    let dir = target.parent().unwrap_or(Path::new("."));
    tempfile::Builder::new()
        .prefix(".qsync-part-")
        .tempfile_in(dir)
}

/// Make everything written so far on the file systems holding `folders` durable: one
/// `syncfs` per file system (folders on the same one are synced once). This is how a batch
/// of received files costs one flush instead of an fsync each.
pub fn sync_file_systems(folders: &[&Path]) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let mut done = Vec::new();
    for folder in folders {
        let dir = fs::File::open(folder)?;
        let device = dir.metadata()?.dev();
        if !done.contains(&device) {
            rustix::fs::syncfs(&dir)?;
            done.push(device);
        }
    }
    Ok(())
}

/// Remove `.qsync-part-*` files (transfers a crash cut short) anywhere under `root`.
pub fn remove_stale_parts(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            remove_stale_parts(&entry.path());
        } else if entry
            .file_name()
            .to_string_lossy()
            .starts_with(".qsync-part-")
        {
            tracing::info!(path = %entry.path().display(), "removing an unfinished transfer");
            let _ = fs::remove_file(entry.path());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn refuses_to_write_through_a_symlink_out_of_the_root() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("escape")).unwrap();
        let evil = RelPath::new("escape/passwd").unwrap();
        assert!(matches!(
            prepare_target(root.path(), &evil),
            Err(PathError::ThroughSymlink { .. })
        ));
        let fine = RelPath::new("a/b/c").unwrap();
        assert_eq!(
            prepare_target(root.path(), &fine).unwrap(),
            root.path().join("a/b/c")
        );
        assert!(root.path().join("a/b").is_dir());
        fs::write(root.path().join("file"), "x").unwrap();
        assert!(matches!(
            safe_target(root.path(), &RelPath::new("file/x").unwrap()),
            Err(PathError::NotAFolder { .. })
        ));
    }
}
