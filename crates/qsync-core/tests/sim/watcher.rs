//! The simulated watcher: debounced rescans through the real `qsync_watch::Index`, turned
//! into the core's facts as a driver would, with every local version logged for the checks.

use super::*;

impl World {
    // ----- the watcher ---------------------------------------------------------------------

    pub(super) fn touch(&mut self, d: usize) {
        if self.devices[d].dirty_since.is_none() {
            self.devices[d].dirty_since = Some(self.now);
        }
    }

    /// Report to device `d`'s core every difference between its disk and its ledger.
    pub fn scan(&mut self, d: usize) {
        self.devices[d].dirty_since = None;
        if self.devices[d].core.is_none() {
            return;
        }
        let task = self.task;
        let entries: Vec<FileEntry> = self.devices[d]
            .disk
            .iter()
            .map(|(path, node)| file_entry(path, node))
            .collect();
        let events = self.devices[d].index.reconcile(entries);
        if std::env::var_os("QSYNC_SIM_DEBUG").is_some() {
            self.log(format!("dev{d} watcher: {events:?}"));
        }
        // What a driver does with the watcher's events: each becomes the state now on disk
        // at the paths it names (a rename: the old path is gone, the new subtree is there).
        let mut observed: Vec<(RelPath, State, i64)> = Vec::new();
        for event in events {
            match event {
                LocalEvent::Create(entry) | LocalEvent::Modify { entry, .. } => {
                    observed.push(self.on_disk(d, &entry.path));
                }
                LocalEvent::Delete { path, .. } => {
                    observed.push((path, State::Deleted, self.mtime))
                }
                LocalEvent::Rename { from, to } => {
                    observed.push((from, State::Deleted, self.mtime));
                    let moved: Vec<RelPath> = self.devices[d]
                        .index
                        .entries()
                        .filter(|e| e.path.starts_with(&to))
                        .map(|e| e.path.clone())
                        .collect();
                    for path in moved {
                        observed.push(self.on_disk(d, &path));
                    }
                }
            }
        }
        for (path, state, mtime_ns) in observed {
            let before = self.subtree_records(d, &path);
            self.input(
                d,
                Input::Observed {
                    task,
                    path: path.clone(),
                    state: state.clone(),
                    mtime_ns,
                },
            );
            // The local versions this observation made: the path's own (the version it
            // replaced, bumped by this device, read before anything else the same call may
            // have done, such as settling a conflict on it), and, for a folder that went, the
            // deletions of what was under it.
            let me = self.devices[d].id;
            let mut made: Vec<(RelPath, State)> = Vec::new();
            let own_before = before
                .get(&path)
                .map(|b| b.state.clone())
                .unwrap_or(State::Deleted);
            if own_before != state {
                made.push((path.clone(), state.clone()));
            }
            // A folder that went (or became something else) takes what was under it: the
            // core deletes each of those on top of its version.
            let gone_folder =
                before.get(&path).is_some_and(|b| b.state.is_folder()) && !state.is_folder();
            if gone_folder {
                for (p, old) in &before {
                    if *p != path && old.state.exists() {
                        made.push((p.clone(), State::Deleted));
                    }
                }
            }
            for (p, new_state) in made {
                let old = before.get(&p);
                let base = old.map(|b| b.version.clone()).unwrap_or_default();
                let before_state = old.map(|b| b.state.clone()).unwrap_or(State::Deleted);
                let keys = self.devices[d]
                    .core
                    .as_ref()
                    .map(|c| c.counter_keys().to_vec())
                    .unwrap_or_else(|| vec![me]);
                let version = qsync_core::rules::next_version(&keys, &base);
                self.versions_made += 1;
                self.log(format!(
                    "dev{d} noticed {p} = {:?} {version:?}",
                    short(&new_state)
                ));
                self.writes.push(Write {
                    device: d,
                    path: p,
                    base,
                    version,
                    state: new_state,
                    before: before_state,
                });
            }
        }
    }

    /// What is at `path` on device `d`'s disk now, as a driver would read it (stat, readlink).
    pub(super) fn on_disk(&self, d: usize, path: &RelPath) -> (RelPath, State, i64) {
        match self.devices[d].disk.get(path.as_str()) {
            Some(node) => (path.clone(), node.state(), node.mtime()),
            None => (path.clone(), State::Deleted, self.mtime),
        }
    }

    /// The ledger's records of `path` and of every path under it.
    pub(super) fn subtree_records(
        &self,
        d: usize,
        path: &RelPath,
    ) -> BTreeMap<RelPath, qsync_core::Record> {
        self.devices[d]
            .ledger
            .all(&self.task)
            .into_iter()
            .filter(|r| r.path.starts_with(path))
            .map(|r| (r.path.clone(), r))
            .collect()
    }
}
