//! The index's entries, one per path, sorted by path: sets of [`FileEntry`] ordered by
//! their own path, so that a path is held once. (A map from path to entry held each path
//! twice, as the key and in the entry: about 56 bytes more per path, 56 MB for a folder of
//! a million files.)
//!
//! The entries are kept in two sets, `packed` and `fresh`, holding different paths. A
//! B-tree filled one entry at a time leaves its nodes little more than half full (the
//! standard library's splits a full node in the middle): 150 bytes per entry of 80, where
//! a million files took 120 MB. New paths go into `fresh`; once it holds a sixteenth of
//! `packed`'s count, it is merged into `packed` by [`BTreeSet::append`], which builds full
//! nodes from the two sorted sets, freeing the old nodes as it goes. Each entry is moved
//! about seventeen times over a folder's first scan (a sum of 1 + 16/17 + (16/17)² ...);
//! lookups ask both sets.

use std::borrow::Borrow;
use std::collections::BTreeSet;
use std::iter::Peekable;
use std::ops::Bound;

use qsync_base::{FileEntry, RelPath};

/// The fewest entries `fresh` holds before it is packed.
const PACK_AT_LEAST: usize = 4096;

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
#[derive(Debug, Clone)]
pub(crate) struct Entries {
    /// Most entries, in full nodes.
    packed: BTreeSet<ByPath>,
    /// Entries of paths `packed` does not hold, added since it was last packed.
    fresh: BTreeSet<ByPath>,
    /// The fewest entries `fresh` holds before it is packed ([`PACK_AT_LEAST`]; fewer in
    /// tests).
    pack_at_least: usize,
}

impl Default for Entries {
    fn default() -> Self {
        Self::packing_at(PACK_AT_LEAST)
    }
}

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
    fn packing_at(pack_at_least: usize) -> Self {
        Self {
            packed: BTreeSet::new(),
            fresh: BTreeSet::new(),
            pack_at_least,
        }
    }

    /// The entry of `path`.
    pub(crate) fn get(&self, path: &RelPath) -> Option<&FileEntry> {
        self.packed
            .get(path.as_str())
            .or_else(|| self.fresh.get(path.as_str()))
            .map(|e| &e.0)
    }

    /// Whether `path` has an entry.
    pub(crate) fn contains_key(&self, path: &RelPath) -> bool {
        self.packed.contains(path.as_str()) || self.fresh.contains(path.as_str())
    }

    /// Every entry, sorted by path.
    pub(crate) fn values(&self) -> impl Iterator<Item = &FileEntry> {
        Merged::new(self.packed.iter(), self.fresh.iter())
    }

    /// Every path, sorted.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &RelPath> {
        self.values().map(|e| &e.path)
    }

    /// The entries from `start` on (in path order), with their paths.
    pub(crate) fn range_from<'a>(
        &'a self,
        start: &RelPath,
    ) -> impl Iterator<Item = (&'a RelPath, &'a FileEntry)> + 'a {
        let from = (Bound::Included(start.as_str()), Bound::Unbounded);
        Merged::new(
            self.packed.range::<str, _>(from),
            self.fresh.range::<str, _>(from),
        )
        .map(|e| (&e.path, e))
    }

    /// Every entry with its path, sorted by path.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&RelPath, &FileEntry)> {
        self.values().map(|e| (&e.path, e))
    }

    /// Forget the entry of `path`; it, if there was one.
    pub(crate) fn remove(&mut self, path: &RelPath) -> Option<FileEntry> {
        self.packed
            .take(path.as_str())
            .or_else(|| self.fresh.take(path.as_str()))
            .map(|e| e.0)
    }

    /// Set the entry of `path` (the entry is given that path).
    pub(crate) fn insert(&mut self, path: RelPath, mut entry: FileEntry) {
        entry.path = path;
        self.put(entry);
    }

    /// Set the entry of its path: in place if `packed` holds the path, else in `fresh`,
    /// which is packed once large enough.
    fn put(&mut self, entry: FileEntry) {
        if self.packed.contains(entry.path.as_str()) {
            self.packed.replace(ByPath(entry));
            return;
        }
        self.fresh.replace(ByPath(entry));
        if self.fresh.len() >= self.pack_at_least.max(self.packed.len() / 16) {
            self.pack();
        }
    }

    /// Move `fresh` into `packed`, building full nodes.
    fn pack(&mut self) {
        if self.packed.is_empty() {
            // (`append` to an empty set takes the other set's nodes as they are.)
            self.packed = std::mem::take(&mut self.fresh).into_iter().collect();
        } else {
            self.packed.append(&mut self.fresh);
        }
    }
}

/// The entries of two sets holding different paths, in path order.
struct Merged<'a, A: Iterator<Item = &'a ByPath>, B: Iterator<Item = &'a ByPath>> {
    a: Peekable<A>,
    b: Peekable<B>,
}

impl<'a, A: Iterator<Item = &'a ByPath>, B: Iterator<Item = &'a ByPath>> Merged<'a, A, B> {
    fn new(a: A, b: B) -> Self {
        Self {
            a: a.peekable(),
            b: b.peekable(),
        }
    }
}

impl<'a, A: Iterator<Item = &'a ByPath>, B: Iterator<Item = &'a ByPath>> Iterator
    for Merged<'a, A, B>
{
    type Item = &'a FileEntry;

    fn next(&mut self) -> Option<&'a FileEntry> {
        let next = match (self.a.peek(), self.b.peek()) {
            (Some(a), Some(b)) if b < a => self.b.next(),
            (Some(_), _) => self.a.next(),
            (None, _) => self.b.next(),
        };
        next.map(|e| &e.0)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;
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

    /// A path: one of a few folders, one of many names (so that runs of paths under one
    /// folder come and go).
    fn path() -> impl Strategy<Value = RelPath> {
        (0..4u8, 0..64u16).prop_map(|(d, f)| RelPath::new(format!("d{d}/f{f}")).unwrap())
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(RelPath, u64),
        Remove(RelPath),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            3 => (path(), any::<u64>()).prop_map(|(p, s)| Op::Insert(p, s)),
            1 => path().prop_map(Op::Remove),
        ]
    }

    proptest! {
        /// Whatever is inserted and removed, and however often the fresh entries are
        /// packed, the entries answer as one sorted map would.
        #[test]
        fn entries_answer_as_a_sorted_map(
            ops in proptest::collection::vec(op(), 0..400),
            pack_at_least in 1usize..40,
            from in path(),
        ) {
            let mut entries = Entries::packing_at(pack_at_least);
            let mut model = std::collections::BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(p, size) => {
                        entries.insert(p.clone(), entry("ignored", size));
                        model.insert(p, size);
                    }
                    Op::Remove(p) => {
                        let removed = entries.remove(&p).map(|e| e.size);
                        prop_assert_eq!(removed, model.remove(&p));
                    }
                }
                prop_assert!(entries.packed.iter().all(|e| !entries.fresh.contains(e)));
            }
            let all: Vec<(RelPath, u64)> =
                entries.iter().map(|(p, e)| (p.clone(), e.size)).collect();
            let expected: Vec<(RelPath, u64)> =
                model.iter().map(|(p, s)| (p.clone(), *s)).collect();
            prop_assert_eq!(all, expected);
            let tail: Vec<&RelPath> = entries.range_from(&from).map(|(p, _)| p).collect();
            let expected: Vec<&RelPath> = model.range(from.clone()..).map(|(p, _)| p).collect();
            prop_assert_eq!(tail, expected);
            for (p, size) in &model {
                prop_assert_eq!(entries.get(p).map(|e| e.size), Some(*size));
                prop_assert_eq!(&entries.get(p).unwrap().path, p);
            }
        }
    }
}
