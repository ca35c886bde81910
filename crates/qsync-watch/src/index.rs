//! The sans-IO heart of the watcher: what QSync believes is on disk, and the clean events
//! that fresh observations imply.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use crate::entries::Entries;

use qsync_base::{mtime_moved, ContentHash, EntryKind, FileEntry, RelPath};

/// A local change, ready for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LocalEvent {
    /// A new file, folder or symlink.
    Create(FileEntry),
    /// New content for an existing path (or a file's new modification time alone).
    Modify {
        /// The new state.
        entry: FileEntry,
        /// Hash of the content before.
        previous: Option<ContentHash>,
    },
    /// The path, and everything under it, is gone.
    Delete {
        /// What was deleted.
        path: RelPath,
        /// What it was.
        kind: EntryKind,
        /// Hash of its content before.
        previous: Option<ContentHash>,
    },
    /// The path, and everything under it, moved.
    Rename {
        /// Old path.
        from: RelPath,
        /// New path.
        to: RelPath,
    },
}

/// What QSync believes is on disk for one task, plus the writes it is itself making.
#[derive(Debug, Clone, Default)]
pub struct Index {
    entries: Entries,
    expected: HashMap<RelPath, Option<FileEntry>>,
    /// Expected removals of this path alone (see [`Index::expect_removed`]).
    alone: BTreeSet<RelPath>,
    /// The inode and status-change time of files the engine placed, as it saw them once
    /// in place (see [`Index::placed`]).
    placed: HashMap<RelPath, ((u64, u64), i64)>,
}

/// A file placed whose modification time is this close to its status change is hashed
/// again when it is next seen, like any file changed lately: a write right after the
/// placement, within one tick of the kernel's clock, would set its time to about its status
/// time (see [`Index::placed_hash`]). Ticks are 1 to 10 ms; on a file system that keeps
/// whole seconds (a status time without nanoseconds), the margin is
/// [`PLACED_MARGIN_COARSE_NS`].
pub const PLACED_MARGIN_NS: i64 = 50_000_000;

/// [`PLACED_MARGIN_NS`] on a file system whose times are whole seconds.
pub const PLACED_MARGIN_COARSE_NS: i64 = 2_000_000_000;

fn same_content(a: &FileEntry, b: &FileEntry) -> bool {
    let same_mode = a.mode == b.mode || a.mode == 0 || b.mode == 0;
    a.kind == b.kind
        && a.hash == b.hash
        && (a.kind == EntryKind::Folder || a.size == b.size)
        && same_mode
}

fn matches(expected: &Option<FileEntry>, observed: &Option<FileEntry>) -> bool {
    match (expected, observed) {
        (None, None) => true,
        (Some(e), Some(o)) => same_content(e, o),
        _ => false,
    }
}

impl Index {
    /// An index holding `entries` (typically a [`scan`](crate::scan) or the store's files).
    pub fn new(entries: Vec<FileEntry>) -> Self {
        Self {
            entries: entries.into_iter().collect(),
            expected: HashMap::new(),
            alone: BTreeSet::new(),
            placed: HashMap::new(),
        }
    }

    /// The believed state of a path.
    pub fn get(&self, path: &RelPath) -> Option<&FileEntry> {
        self.entries.get(path)
    }

    /// Every believed entry, sorted by path.
    pub fn entries(&self) -> impl Iterator<Item = &FileEntry> {
        self.entries.values()
    }

    /// The entries at and under `start` (`None`: every entry), sorted by path.
    pub fn entries_under<'a>(
        &'a self,
        start: Option<&'a RelPath>,
    ) -> impl Iterator<Item = &'a FileEntry> + 'a {
        let range: Box<dyn Iterator<Item = (&RelPath, &FileEntry)>> = match start {
            None => Box::new(self.entries.iter()),
            Some(s) => Box::new(
                self.entries
                    .range_from(s)
                    .take_while(move |(p, _)| p.as_str().starts_with(s.as_str()))
                    .filter(move |(p, _)| p.starts_with(s)),
            ),
        };
        range.map(|(_, e)| e)
    }

    /// The writes the engine announced ([`Index::expect`]) at and under `start` and not
    /// seen yet, with the state each is to have.
    pub fn expected_under<'a>(
        &'a self,
        start: Option<&'a RelPath>,
    ) -> impl Iterator<Item = (&'a RelPath, Option<&'a FileEntry>)> + 'a {
        self.expected
            .iter()
            .filter(move |(p, _)| start.is_none_or(|s| p.starts_with(s)))
            .map(|(p, e)| (p, e.as_ref()))
    }

    /// The entries as a map, for [`scan`](crate::scan)'s hash cache.
    pub fn to_map(&self) -> HashMap<RelPath, FileEntry> {
        self.entries
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    /// Forget, without any event, every path `excluded` picks (given the path and whether it
    /// is a folder), what is under it, and what the engine said it would write there: used
    /// when `.qsyncignore` now excludes paths that were synced. A path that becomes ignored
    /// simply stops syncing; treating it as deleted would delete it on every other device.
    /// Returns the forgotten paths.
    pub fn forget_where(&mut self, excluded: impl Fn(&RelPath, bool) -> bool) -> Vec<RelPath> {
        let is_folder = |e: &FileEntry| e.kind == EntryKind::Folder;
        self.expected
            .retain(|path, state| !excluded(path, state.as_ref().is_some_and(is_folder)));
        let expected = &self.expected;
        self.alone.retain(|path| expected.contains_key(path));
        let roots: Vec<RelPath> = self
            .entries
            .values()
            .filter(|e| excluded(&e.path, is_folder(e)))
            .map(|e| e.path.clone())
            .collect();
        let mut forgotten = Vec::new();
        for root in roots {
            for path in self.subtree(&root) {
                if self.entries.remove(&path).is_some() {
                    forgotten.push(path);
                }
            }
        }
        forgotten
    }

    /// The engine is about to make `path` be `state` (`None`: delete it) while applying a
    /// remote update. A later observation of exactly that state is absorbed without an event;
    /// anything else is a genuine local change and is reported.
    pub fn expect(&mut self, path: RelPath, state: Option<FileEntry>) {
        self.alone.remove(&path);
        self.placed.remove(&path);
        self.expected.insert(path, state);
    }

    /// The paths the engine announced ([`expect`](Self::expect)) and the watcher has not
    /// reported yet: what [`entries`](Self::entries) will hold of them a moment later.
    pub fn announced(&self) -> impl Iterator<Item = &RelPath> {
        self.expected.keys()
    }

    /// The file the engine announced at `path` ([`expect`](Self::expect)) is in place, as
    /// inode `id` (device and inode numbers) whose status last changed at `ctime_ns` (read from the placed file after
    /// its rename). Until the watcher's look at it, a look that finds that inode with that
    /// change time, and the size and time announced, takes the announced hash without
    /// reading the file: the receiver of a drop of new files read each one again to hash
    /// it, because a file changed lately may not be known by its times alone
    /// ([`crate::reusable_hash`]). A file written since has a new modification time: its
    /// own, not the one placed (which the margin keeps a tick away from any write).
    pub fn placed(&mut self, path: RelPath, id: (u64, u64), ctime_ns: i64) {
        if self.expected.contains_key(&path) {
            self.placed.insert(path, (id, ctime_ns));
        }
        // Stamps whose announcement went another way (folded into a rename, a deleted
        // folder, a rescan) are dropped now and then: never more than twice the announced.
        if self.placed.len() > 2 * self.expected.len() + 1024 {
            let expected = &self.expected;
            self.placed.retain(|p, _| expected.contains_key(p));
        }
    }

    /// The hash announced for `path` if the file there now (`id`, `size`, `mtime_ns`,
    /// `ctime_ns`) is the one the engine placed and nothing changed it since (see
    /// [`Index::placed`]).
    pub fn placed_hash(
        &self,
        path: &RelPath,
        id: (u64, u64),
        size: u64,
        mtime_ns: i64,
        ctime_ns: i64,
    ) -> Option<ContentHash> {
        let (placed_id, placed_ctime) = self.placed.get(path)?;
        let Some(Some(entry)) = self.expected.get(path) else {
            return None;
        };
        let untouched = *placed_id == id
            && *placed_ctime == ctime_ns
            && entry.kind == EntryKind::File
            && entry.size == size
            && entry.mtime_ns == mtime_ns;
        let margin = if ctime_ns % 1_000_000_000 == 0 {
            PLACED_MARGIN_COARSE_NS
        } else {
            PLACED_MARGIN_NS
        };
        let apart = ctime_ns.abs_diff(mtime_ns) > margin.unsigned_abs();
        untouched.then_some(entry.hash).flatten().filter(|_| apart)
    }

    /// Take back what was said with [`expect`](Self::expect) or
    /// [`expect_removed`](Self::expect_removed) for `path`: the engine's write failed, so
    /// nothing of it will be seen (and its absence is no deletion).
    pub fn withdraw(&mut self, path: &RelPath) {
        self.expected.remove(path);
        self.placed.remove(path);
        self.alone.remove(path);
    }

    /// The engine is about to remove `path` alone (a file, or a folder it saw empty).
    /// Unlike `expect(path, None)`, which covers everything under `path`, anything the index
    /// still holds under it when the removal is seen went some other way (the person moved
    /// it out first) and is reported as deleted.
    pub fn expect_removed(&mut self, path: RelPath) {
        self.expected.insert(path.clone(), None);
        self.alone.insert(path);
    }

    /// Whether writes announced with [`expect`](Self::expect) are still unobserved.
    pub fn has_expectations(&self) -> bool {
        !self.expected.is_empty()
    }

    /// `path` and every known path under it.
    fn subtree(&self, path: &RelPath) -> Vec<RelPath> {
        self.entries
            .range_from(path)
            .take_while(|(p, _)| p.as_str().starts_with(path.as_str()))
            .filter(|(p, _)| p.starts_with(path))
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// The outermost known paths strictly under `path`.
    fn outermost_below(&self, path: &RelPath) -> Vec<RelPath> {
        let mut out: Vec<RelPath> = Vec::new();
        for p in self.subtree(path) {
            if p != *path && !out.iter().any(|o| p.starts_with(o)) {
                out.push(p);
            }
        }
        out
    }

    fn remove_tree(&mut self, path: &RelPath) {
        for p in self.subtree(path) {
            self.entries.remove(&p);
        }
    }

    fn move_tree(&mut self, from: &RelPath, to: &RelPath) {
        self.remove_tree(to);
        for old in self.subtree(from) {
            if let Some(mut entry) = self.entries.remove(&old) {
                let suffix = &old.as_str()[from.as_str().len()..];
                if let Ok(new) = RelPath::new(format!("{}{suffix}", to.as_str())) {
                    entry.path = new.clone();
                    self.entries.insert(new, entry);
                }
            }
        }
    }

    /// Fold fresh observations into the index and return the events they imply.
    ///
    /// `observed` holds the current state of every touched path (`None`: it does not exist);
    /// `renames` are the renames the system reported, as hints.
    pub fn observe(
        &mut self,
        renames: &[(RelPath, RelPath)],
        observed: Vec<(RelPath, Option<FileEntry>)>,
    ) -> Vec<LocalEvent> {
        let observed: BTreeMap<RelPath, Option<FileEntry>> = observed.into_iter().collect();
        let mut events = Vec::new();

        for (from, to) in renames {
            let (Some(old), Some(Some(new))) = (self.entries.get(from), observed.get(to)) else {
                continue;
            };
            let gone = matches!(observed.get(from), Some(None) | None);
            if !gone || old.kind != new.kind {
                continue;
            }
            let (exp_from, exp_to) = (self.expected.get(from), self.expected.get(to));
            if matches!(exp_from, Some(None))
                && exp_to.is_some_and(|e| matches(e, &Some(new.clone())))
            {
                // The engine's own remote rename: follow it silently.
                self.move_tree(from, to);
                self.expected.remove(from);
                self.expected.remove(to);
                continue;
            }
            if exp_from.is_some() || exp_to.is_some() || self.entries.contains_key(to) {
                // Mixed with an engine write, or onto a known path: compare path by path,
                // which always converges, rather than trust the hint.
                continue;
            }
            self.move_tree(from, to);
            events.push(LocalEvent::Rename {
                from: from.clone(),
                to: to.clone(),
            });
        }

        let mut deleted: BTreeSet<RelPath> = BTreeSet::new();
        for (path, state) in observed {
            self.placed.remove(&path);
            if deleted.iter().any(|d| path.starts_with(d)) {
                // Gone with its folder: what the engine meant to write there is moot (it
                // must not later absorb something the person makes at that path).
                self.expected.remove(&path);
                self.alone.remove(&path);
                continue;
            }
            if let Some(expected) = self.expected.remove(&path) {
                let absorbed = matches(&expected, &state);
                // What the engine wrote is what the peers have: a local change made since is
                // measured against it, not against the state before the engine's write.
                match expected {
                    Some(entry) => {
                        self.entries.insert(path.clone(), entry);
                    }
                    None => {
                        // A folder the engine removed as empty: what the index still held
                        // under it (and the engine did not expect to go) left some other
                        // way, before; it is reported as deleted.
                        if !self.alone.remove(&path) {
                            self.remove_tree(&path);
                        } else if absorbed {
                            for orphan in self.outermost_below(&path) {
                                if self.expected.contains_key(&orphan) {
                                    continue;
                                }
                                if let Some(old) = self.entries.get(&orphan).cloned() {
                                    self.remove_tree(&orphan);
                                    events.push(LocalEvent::Delete {
                                        path: orphan.clone(),
                                        kind: old.kind,
                                        previous: old.hash,
                                    });
                                }
                            }
                            self.entries.remove(&path);
                        } else {
                            // Something else is there now: what was under the path is
                            // compared as usual (this path alone was expected to go).
                            self.entries.remove(&path);
                        }
                    }
                }
                if absorbed {
                    if let Some(entry) = state {
                        self.entries.insert(path, entry);
                    }
                    continue;
                }
            }
            match (self.entries.get(&path).cloned(), state) {
                (None, None) => {}
                (None, Some(entry)) => {
                    self.entries.insert(path, entry.clone());
                    events.push(LocalEvent::Create(entry));
                }
                (Some(old), None) => {
                    self.remove_tree(&path);
                    self.expected.retain(|p, _| !p.starts_with(&path));
                    self.alone.retain(|p| !p.starts_with(&path));
                    events.push(LocalEvent::Delete {
                        path: path.clone(),
                        kind: old.kind,
                        previous: old.hash,
                    });
                    deleted.insert(path);
                }
                (Some(old), Some(entry)) if old.kind != entry.kind => {
                    self.remove_tree(&path);
                    events.push(LocalEvent::Delete {
                        path: path.clone(),
                        kind: old.kind,
                        previous: old.hash,
                    });
                    self.entries.insert(path, entry.clone());
                    events.push(LocalEvent::Create(entry));
                }
                (Some(old), Some(entry)) => {
                    // A file's time alone is a change too (`touch -d`): it is carried.
                    let retimed =
                        entry.kind == EntryKind::File && mtime_moved(old.mtime_ns, entry.mtime_ns);
                    let changed = !same_content(&old, &entry) || retimed;
                    self.entries.insert(path, entry.clone());
                    if changed {
                        events.push(LocalEvent::Modify {
                            entry,
                            previous: old.hash,
                        });
                    }
                }
            }
        }
        events
    }

    /// Fold a full rescan into the index: every path not in `scan` is gone, including paths
    /// the engine said it would write and that were not seen yet (written, then deleted
    /// before any event about them: forgetting them would hide the deletion).
    pub fn reconcile(&mut self, scan: Vec<FileEntry>) -> Vec<LocalEvent> {
        let present: BTreeSet<RelPath> = scan.iter().map(|e| e.path.clone()).collect();
        let gone: BTreeSet<RelPath> = self
            .entries
            .keys()
            .chain(self.expected.keys())
            .filter(|p| !present.contains(*p))
            .cloned()
            .collect();
        let mut observed: Vec<(RelPath, Option<FileEntry>)> =
            gone.into_iter().map(|p| (p, None)).collect();
        observed.extend(scan.into_iter().map(|e| (e.path.clone(), Some(e))));
        self.observe(&[], observed)
    }
}
