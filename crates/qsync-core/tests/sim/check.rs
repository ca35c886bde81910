//! The invariants every settled run must hold.

use super::*;

impl World {
    // ----- checks --------------------------------------------------------------------------

    /// The disk as comparable states (modification times aside).
    pub fn tree(&self, d: usize) -> BTreeMap<String, State> {
        self.devices[d]
            .disk
            .iter()
            .map(|(p, n)| (p.clone(), n.state()))
            .collect()
    }

    pub fn conflict_copies(&self, d: usize) -> Vec<String> {
        self.devices[d]
            .disk
            .keys()
            .filter(|p| is_conflict_copy(&RelPath::new((*p).clone()).unwrap()))
            .cloned()
            .collect()
    }

    /// Every invariant; `Err` says which failed and how.
    pub fn check(&self) -> Result<(), String> {
        // Honest devices never refuse what honest devices send, nor doubt their claims.
        // (A claim above what a device made may come from an honest device that took it
        // from the hostile one: it is doubted, not refused.)
        let refused_honest = self
            .distrusts
            .iter()
            .find(|(_, from, report)| *from < self.devices.len() && report.why.refused());
        if let Some((d, from, report)) = refused_honest {
            return Err(format!("dev{d} distrusted honest dev{from}: {report:?}"));
        }
        // Convergence: every device has the same tree, and its ledger agrees with its disk.
        let first = self.tree(0);
        for d in 1..self.devices.len() {
            let tree = self.tree(d);
            if tree != first {
                let mut diff = String::new();
                for p in first.keys().chain(tree.keys()).collect::<BTreeSet<_>>() {
                    let (x, y) = (first.get(p), tree.get(p));
                    if x != y {
                        let _ = writeln!(
                            diff,
                            "  {p}: dev0 {:?} / dev{d} {:?}",
                            x.map(short),
                            y.map(short)
                        );
                    }
                }
                return Err(format!("dev0 and dev{d} differ:\n{diff}"));
            }
        }
        for (d, device) in self.devices.iter().enumerate() {
            for record in device.ledger.all(&self.task) {
                let on_disk = device
                    .disk
                    .get(record.path.as_str())
                    .map(Node::state)
                    .unwrap_or(State::Deleted);
                if on_disk != record.state {
                    return Err(format!(
                        "dev{d}'s ledger says {} is {:?}, its disk {:?}",
                        record.path,
                        short(&record.state),
                        short(&on_disk)
                    ));
                }
            }
            for path in device.disk.keys() {
                if device
                    .ledger
                    .get(&self.task, &RelPath::new(path.clone()).unwrap())
                    .is_none()
                {
                    return Err(format!("dev{d} has {path} on disk and no record of it"));
                }
            }
        }
        // Versions agree too, and what a time-only version keeps (a device that held
        // another `retimed` could decide a later change otherwise).
        let versions = |d: usize| -> BTreeMap<RelPath, (VersionVector, Option<VersionVector>)> {
            self.devices[d]
                .ledger
                .all(&self.task)
                .into_iter()
                .filter(|r| r.state.exists())
                .map(|r| (r.path, (r.version, r.retimed)))
                .collect()
        };
        let v0 = versions(0);
        for d in 1..self.devices.len() {
            let vd = versions(d);
            if vd != v0 {
                let differ: Vec<String> = v0
                    .iter()
                    .filter(|(p, v)| vd.get(*p) != Some(*v))
                    .map(|(p, v)| format!("{p}: {v:?} / {:?}", vd.get(p)))
                    .collect();
                return Err(format!(
                    "dev0 and dev{d} hold the same tree with different versions: {}",
                    differ.join("; ")
                ));
            }
        }
        // Nothing lost: each recorded write of content is still there (at its path or as a
        // conflict copy beside it) unless a later write made on top of it explains its absence.
        let honest: BTreeSet<DeviceId> = self
            .devices
            .iter()
            .flat_map(|d| match &d.core {
                Some(core) => core.counter_keys().to_vec(),
                None => vec![d.id],
            })
            .collect();
        for w in &self.writes {
            if w.device == HOSTILE || !matches!(w.state, State::File { .. } | State::Symlink { .. })
            {
                continue;
            }
            // A time moved alone wrote no content: what it kept is its predecessor's,
            // checked as that write (a change of the content made after it may replace it
            // without a copy).
            if w.state == w.before {
                continue;
            }
            // Seen: on every honest device's counter key. The hostile device's own entries
            // (and the devices it invents) count for nothing: a version cut to the bound
            // (`rules::join`) may have dropped them, and no honest change lies behind them.
            let saw = |known: &VersionVector| {
                w.version
                    .iter()
                    .filter(|(k, _)| honest.contains(*k))
                    .all(|(k, n)| known.get(k) >= n)
            };
            // The hostile device overwrote it with a version that had truly seen it (its
            // counters cut down to what each honest device had made then): a linked
            // device's right.
            let overwritten = self
                .hostile
                .as_ref()
                .is_some_and(|h| h.rightful.iter().any(|(p, v)| *p == w.path && saw(v)));
            if overwritten {
                continue;
            }
            // A later write on top of it, a person's change to a conflict copy of it, or a
            // person's deletion of it (on a device that had it).
            let seen_later = self.writes.iter().any(|l| {
                (l.path == w.path && saw(&l.base))
                    || (is_conflict_copy(&l.path) && l.before == w.state)
            }) || self
                .deleted
                .iter()
                .any(|(p, known, state)| *p == w.path && saw(known) && *state == w.state);
            if seen_later {
                continue;
            }
            let parent = w.path.parent().map(|p| p.as_str().to_owned());
            let same_place = |p: &String| {
                let rel = RelPath::new(p.clone()).unwrap();
                *p == w.path.as_str()
                    || (is_conflict_copy(&rel)
                        && rel.parent().map(|q| q.as_str().to_owned()) == parent)
            };
            // At its place, or a conflict copy's content that lost a conflict of its own
            // and was kept as a version (the winner replaced it: copies are not copied).
            let kept = first
                .iter()
                .chain(self.shelved.iter().map(|(p, s)| (p, s)))
                .any(|(p, s)| same_place(p) && *s == w.state);
            if !kept {
                return Err(format!(
                    "lost: dev{}'s write of {} ({:?} {:?}) is nowhere",
                    w.device,
                    w.path,
                    short(&w.state),
                    w.version
                ));
            }
        }
        // No conflict copy without two concurrent writers of the original: one whose write
        // is in the copy, and one who wrote the same path concurrently, or inside it while
        // it was a folder there. That may be the same person: a device brings a folder back
        // to hold a path in it that another device's deletion of the folder had not seen,
        // and that is its change, concurrent with a file the first person later saved at
        // the folder's name. (The copy may have been moved since by a rename, so only its
        // content is matched.)
        // The copy names a device of the run: the one whose version it holds, which is
        // the writer of its content or a device that moved or kept it since (a rename, a
        // folder kept: not among the writes recorded here, so any device of the run is
        // taken). The hostile device names whom it likes; a person's edit of a copy keeps
        // the copy's name.
        let names = |copy: &str, w: &Write| {
            w.device == HOSTILE
                || is_conflict_copy(&w.path)
                || self.devices.iter().any(|d| {
                    copy.contains(&format!("-{}", qsync_core::rules::device_in_name(&d.id)))
                })
        };
        for copy in self.conflict_copies(0) {
            let state = &first[&copy];
            let explained = self.writes.iter().any(|w| {
                w.state == *state
                    && names(&copy, w)
                    && self.writes.iter().any(|o| {
                        let hostile = o.device == HOSTILE || w.device == HOSTILE;
                        (o.path == w.path
                            && (hostile || o.version.compare(&w.version) == Causality::Concurrent))
                            || (o.path != w.path && o.path.starts_with(&w.path))
                    })
            });
            if !explained {
                return Err(format!(
                    "conflict copy {copy} without two concurrent writers, or not named after \
                     the device of the write it holds"
                ));
            }
        }
        // Messages per change stay bounded (no echo storms).
        let links = self.links.len() as u64;
        let ledger_size = self
            .devices
            .iter()
            .map(|d| d.ledger.all(&self.task).len() as u64)
            .max()
            .unwrap_or(0);
        let bound =
            (self.versions_made + 1) * links * 2 * 4 + self.reconnects * 2 * (ledger_size + 1);
        if self.records_sent > bound {
            return Err(format!(
                "{} records sent for {} versions over {links} links: over {bound}",
                self.records_sent, self.versions_made
            ));
        }
        Ok(())
    }
}
