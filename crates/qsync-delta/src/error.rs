use std::path::{Path, PathBuf};

use qsync_base::ContentHash;

/// What went wrong encoding or applying a patch.
#[derive(Debug, thiserror::Error)]
pub enum DeltaError {
    /// Reading or writing a file failed.
    #[error("could not {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which file.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// Writing the output failed.
    #[error("could not write the output: {0}")]
    Write(std::io::Error),
    /// Reading the new version failed.
    #[error("could not read the new version: {0}")]
    Read(std::io::Error),
    /// xdelta3 could not encode a chunk.
    #[error("xdelta3 failed to encode the {len} bytes at offset {offset}")]
    Encode {
        /// Offset of the chunk in the new file.
        offset: u64,
        /// Its length.
        len: usize,
    },
    /// The patch was made from another version than the one given.
    #[error("the patch applies to the version {expected} ({expected_len} bytes), but the file given is {found} ({found_len} bytes)")]
    WrongBase {
        /// Hash the patch expects.
        expected: ContentHash,
        /// Length the patch expects.
        expected_len: u64,
        /// Hash of the file given.
        found: ContentHash,
        /// Length of the file given.
        found_len: u64,
    },
    /// The rebuilt file does not have the hash the patch promised.
    #[error("the rebuilt file has hash {found} instead of {expected}; nothing was written")]
    ResultMismatch {
        /// Promised hash.
        expected: ContentHash,
        /// Hash of what was rebuilt.
        found: ContentHash,
    },
    /// The patch bytes are not a valid patch.
    #[error("not a valid QSync patch: {0}")]
    Malformed(String),
}

impl DeltaError {
    pub(crate) fn io(op: &'static str, path: &Path, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.to_owned(),
            source,
        }
    }

    pub(crate) fn write(source: std::io::Error) -> Self {
        Self::Write(source)
    }
}
