//! Where fetched content waits, named by its hash, until a placement uses it: whole
//! (`<hash>`), or as edits of the version a file holds (`<hash>.edits`, see
//! [`super::in_place`]). The folder also holds the undo journal of edits in place.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qsync_base::ContentHash;
use qsync_delta::InPlace;

use super::in_place;
use crate::EngineError;

/// Where fetched content waits, named by its hash, until a placement uses it.
#[derive(Debug, Clone)]
pub struct Staging {
    dir: PathBuf,
}

impl Staging {
    /// The staging folder `dir` (made if missing). An edit in place that a crash cut
    /// short is undone first (see [`super::in_place`]).
    pub fn open(dir: PathBuf) -> Result<Self, EngineError> {
        fs::create_dir_all(&dir).map_err(|e| EngineError::io("create", &dir, e))?;
        in_place::undo_cut_short(&dir)?;
        in_place::prepare_journal(&dir)?;
        Ok(Self { dir })
    }

    /// The staging folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Where the content `hash` is (or goes) once fetched and checked.
    pub fn path_of(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(hash.to_hex())
    }

    /// Whether the content `hash` is here.
    pub fn has(&self, hash: &ContentHash) -> bool {
        self.path_of(hash).is_file()
    }

    /// Where the edits in place that make `hash` wait (see [`super::in_place`]).
    fn edits_path(&self, hash: &ContentHash) -> PathBuf {
        self.dir.join(format!("{}.edits", hash.to_hex()))
    }

    /// Stage the edits that make `edits.header.target_hash` from its base in place.
    pub fn put_edits(&self, edits: &InPlace) -> Result<(), EngineError> {
        in_place::put_edits(&self.edits_path(&edits.header.target_hash), edits)
    }

    /// The edits staged that make `hash` from `base`, if any.
    pub fn edits_for(&self, hash: &ContentHash, base: Option<ContentHash>) -> Option<InPlace> {
        in_place::edits_at(&self.edits_path(hash), hash, base)
    }

    /// Whether the content `hash` can be placed over `base`: staged whole, or as edits of
    /// `base`.
    pub fn has_for(&self, hash: &ContentHash, base: Option<ContentHash>) -> bool {
        self.has(hash) || self.edits_for(hash, base).is_some()
    }

    /// Remove staged content older than `age` (fetched for records that were replaced or
    /// whose placement waits): a placement that still wanted it finds it gone and has it
    /// fetched again. Returns how many.
    pub fn sweep(&self, age: Duration) -> usize {
        let Ok(entries) = fs::read_dir(&self.dir) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if name.to_string_lossy().starts_with('.') {
                continue; // a transfer under way (`.incoming-*`)
            }
            let old = entry
                .metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t.elapsed().is_ok_and(|e| e > age));
            if old && fs::remove_file(entry.path()).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// Forget the content `hash` (once placed, or no longer wanted), whole or as edits.
    pub fn remove(&self, hash: &ContentHash) {
        let _ = fs::remove_file(self.path_of(hash));
        let _ = fs::remove_file(self.edits_path(hash));
    }
}
