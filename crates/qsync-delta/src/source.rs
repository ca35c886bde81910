//! Random access to the bytes of a version, in memory or in a file.

use std::borrow::Cow;
use std::fs::File;
use std::os::unix::fs::FileExt;
use std::path::Path;

use crate::DeltaError;

pub(crate) trait Source {
    fn len(&self) -> u64;
    /// `len` bytes at `offset`; the caller keeps ranges within `len()`.
    fn read_range(&self, offset: u64, len: u64) -> Result<Cow<'_, [u8]>, DeltaError>;
}

impl Source for [u8] {
    fn len(&self) -> u64 {
        <[u8]>::len(self) as u64
    }

    fn read_range(&self, offset: u64, len: u64) -> Result<Cow<'_, [u8]>, DeltaError> {
        if len == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        let start = usize::try_from(offset)
            .map_err(|_| DeltaError::Malformed("offset too large".into()))?;
        let end = start
            .checked_add(
                usize::try_from(len)
                    .map_err(|_| DeltaError::Malformed("length too large".into()))?,
            )
            .filter(|end| *end <= <[u8]>::len(self))
            .ok_or_else(|| {
                DeltaError::Malformed(format!("range {offset}+{len} is outside the source"))
            })?;
        Ok(Cow::Borrowed(&self[start..end]))
    }
}

pub(crate) struct FileSource<'f> {
    file: &'f File,
    path: &'f Path,
    len: u64,
}

impl<'f> FileSource<'f> {
    pub(crate) fn new(file: &'f File, path: &'f Path) -> Result<Self, DeltaError> {
        let len = file
            .metadata()
            .map_err(|e| DeltaError::io("stat", path, e))?
            .len();
        Ok(Self { file, path, len })
    }
}

impl Source for FileSource<'_> {
    fn len(&self) -> u64 {
        self.len
    }

    fn read_range(&self, offset: u64, len: u64) -> Result<Cow<'_, [u8]>, DeltaError> {
        if len == 0 {
            return Ok(Cow::Borrowed(&[]));
        }
        if offset.checked_add(len).is_none_or(|end| end > self.len) {
            return Err(DeltaError::Malformed(format!(
                "range {offset}+{len} is outside the source"
            )));
        }
        let mut buf = vec![
            0u8;
            usize::try_from(len)
                .map_err(|_| DeltaError::Malformed("length too large".into()))?
        ];
        self.file
            .read_exact_at(&mut buf, offset)
            .map_err(|e| DeltaError::io("read", self.path, e))?;
        Ok(Cow::Owned(buf))
    }
}
