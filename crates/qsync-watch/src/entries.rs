//! The index's entries, one per path, sorted by path: a set of [`FileEntry`] ordered by
//! their own path, so that a path is held once. (A map from path to entry held each path
//! twice, as the key and in the entry: about 56 bytes more per path, 56 MB for a folder of
//! a million files.)

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::ops::Bound;

use qsync_base::{FileEntry, RelPath};

/// An entry, compared and looked up by its path alone.
#[derive(Debug, Clone)]
struct ByPath(FileEntry);

impl PartialEq for ByPath {
    fn eq(&self, other: &Self) -> bool {
        self.0.path == other.0.path
    }
}

impl Eq for ByPath {}

impl PartialOrd for ByPath {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ByPath {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.path.as_str().cmp(other.0.path.as_str())
    }
}

/// Looked up by the path's text: [`RelPath`] orders as its text does, so the set's order
/// and a lookup by `str` agree (what `Borrow` requires).
impl Borrow<str> for ByPath {
    fn borrow(&self) -> &str {
        self.0.path.as_str()
    }
}

/// The entries of an index (see the [module documentation](self)).
#[derive(Debug, Clone, Default)]
pub(crate) struct Entries(BTreeSet<ByPath>);

impl FromIterator<FileEntry> for Entries {
    fn from_iter<I: IntoIterator<Item = FileEntry>>(entries: I) -> Self {
        // A later entry of a path replaces an earlier one, as a map's would.
        let mut set = Entries::default();
        for entry in entries {
            set.put(entry);
        }
        set
    }
}

impl Entries {
    /// The entry of `path`.
    pub(crate) fn get(&self, path: &RelPath) -> Option<&FileEntry> {
        self.0.get(path.as_str()).map(|e| &e.0)
    }

    /// Whether `path` has an entry.
    pub(crate) fn contains_key(&self, path: &RelPath) -> bool {
        self.0.contains(path.as_str())
    }

    /// Every entry, sorted by path.
    pub(crate) fn values(&self) -> impl Iterator<Item = &FileEntry> {
        self.0.iter().map(|e| &e.0)
    }

    /// Every path, sorted.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &RelPath> {
        self.0.iter().map(|e| &e.0.path)
    }

    /// The entries from `start` on (in path order), with their paths.
    pub(crate) fn range_from<'a>(
        &'a self,
        start: &RelPath,
    ) -> impl Iterator<Item = (&'a RelPath, &'a FileEntry)> + 'a {
        self.0
            .range::<str, _>((Bound::Included(start.as_str()), Bound::Unbounded))
            .map(|e| (&e.0.path, &e.0))
    }

    /// Every entry with its path, sorted by path.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&RelPath, &FileEntry)> {
        self.0.iter().map(|e| (&e.0.path, &e.0))
    }

    /// Forget the entry of `path`; it, if there was one.
    pub(crate) fn remove(&mut self, path: &RelPath) -> Option<FileEntry> {
        self.0.take(path.as_str()).map(|e| e.0)
    }

    /// Set the entry of `path` (the entry is given that path).
    pub(crate) fn insert(&mut self, path: RelPath, mut entry: FileEntry) {
        entry.path = path;
        self.put(entry);
    }

    /// Set the entry of its path.
    fn put(&mut self, entry: FileEntry) {
        self.0.replace(ByPath(entry));
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use qsync_base::EntryKind;

    fn entry(path: &str, size: u64) -> FileEntry {
        FileEntry {
            path: RelPath::new(path).unwrap(),
            kind: EntryKind::File,
            size,
            mtime_ns: 0,
            hash: None,
            mode: 0o644,
        }
    }

    #[test]
    fn a_path_has_one_entry_found_by_its_path_in_path_order() {
        let mut entries: Entries = [entry("b", 1), entry("a/x", 2), entry("b", 3)]
            .into_iter()
            .collect();
        let p = |s: &str| RelPath::new(s).unwrap();
        assert_eq!(
            entries.get(&p("b")).unwrap().size,
            3,
            "the later one stands"
        );
        entries.insert(p("a"), entry("ignored", 4));
        assert_eq!(entries.get(&p("a")).unwrap().path, p("a"));
        let order: Vec<&str> = entries.keys().map(RelPath::as_str).collect();
        assert_eq!(order, ["a", "a/x", "b"]);
        let from: Vec<&str> = entries
            .range_from(&p("a/w"))
            .map(|(k, _)| k.as_str())
            .collect();
        assert_eq!(from, ["a/x", "b"]);
        assert_eq!(entries.remove(&p("a/x")).unwrap().size, 2);
        assert!(!entries.contains_key(&p("a/x")));
    }
}
