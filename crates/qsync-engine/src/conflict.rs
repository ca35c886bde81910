//! What to do with an incoming update, given what is on disk here: the conflict rules.
//!
//! Rule (decided, documented, tested): when the local file changed since the version the
//! incoming update was made from, **both versions are kept. The version with the larger
//! content hash keeps the name; the other is kept beside it as
//! `name.sync-conflict-<YYYYMMDD-HHMMSS>-<hash>.ext`**, with that version's modification
//! time (received files keep their sender's mtime) and the first 8 hex digits of its hash.
//! The decision depends only on the two versions, so every device, however many are
//! linked, reaches the same result and the trees converge. Nothing is ever silently lost.

use qsync_base::{ContentHash, FileEntry, RelPath};

/// One version of a file in a possible conflict.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Version {
    /// Its content hash.
    pub hash: ContentHash,
    /// Its modification time, nanoseconds since the Unix epoch.
    pub mtime_ns: i64,
}

/// The decision for one incoming update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Apply it.
    Apply,
    /// The incoming version wins the name: move the local version to `keep_as`, then apply.
    KeepLocalThenApply {
        /// Where the local version goes.
        keep_as: RelPath,
    },
    /// The local version keeps the name: write the incoming version to `keep_as` instead.
    KeepIncomingAside {
        /// Where the incoming version goes.
        keep_as: RelPath,
    },
    /// The result is already here: acknowledge without writing.
    AlreadyThere,
}

/// Decide for an update made from `base` (None: the sender had nothing at that path)
/// that produces `incoming`, when this device has `local` at `path`.
pub fn decide(
    base: Option<ContentHash>,
    incoming: Version,
    local: Option<Version>,
    path: &RelPath,
) -> Decision {
    let Some(local) = local else {
        return Decision::Apply;
    };
    if local.hash == incoming.hash {
        return Decision::AlreadyThere;
    }
    if Some(local.hash) == base {
        return Decision::Apply;
    }
    if incoming.hash > local.hash {
        Decision::KeepLocalThenApply {
            keep_as: conflict_name(path, &local),
        }
    } else {
        Decision::KeepIncomingAside {
            keep_as: conflict_name(path, &incoming),
        }
    }
}

/// `dir/name.sync-conflict-<date>-<hash>.ext` for `dir/name.ext` and the given version,
/// shortened to fit the file system's name limit (the one naming rule, in `qsync-core`).
pub fn conflict_name(path: &RelPath, version: &Version) -> RelPath {
    qsync_core::rules::conflict_name(path, version.mtime_ns, &version.hash)
}

/// When another device deletes a folder, whether a file in it must stay here: it does if it
/// changed here since that device last heard of it, that is if an update of it is still
/// pending for that device, or if what is on disk (`here`) differs from what was last
/// recorded (or was never recorded).
pub fn keep_on_remote_folder_delete(
    here: Option<&FileEntry>,
    recorded: Option<&FileEntry>,
    pending_for_deleter: bool,
) -> bool {
    let unchanged = match (here, recorded) {
        (Some(here), Some(recorded)) => here.kind == recorded.kind && here.hash == recorded.hash,
        (None, _) => return false, // already gone
        (Some(_), None) => false,
    };
    pending_for_deleter || !unchanged
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(content: &[u8], mtime_ns: i64) -> Version {
        Version {
            hash: ContentHash::of(content),
            mtime_ns,
        }
    }

    #[test]
    fn rules() {
        let p = RelPath::new("docs/report.final.txt").unwrap();
        let h = |b: &[u8]| Some(ContentHash::of(b));
        assert_eq!(
            decide(h(b"v1"), v(b"v2", 0), Some(v(b"v1", 0)), &p),
            Decision::Apply
        );
        assert_eq!(decide(None, v(b"v1", 0), None, &p), Decision::Apply);
        assert_eq!(
            decide(h(b"v1"), v(b"v2", 0), Some(v(b"v2", 5)), &p),
            Decision::AlreadyThere
        );
        // Both edited: the same version keeps the name whichever side decides.
        let (x, y) = (v(b"x's edit", 1_764_000_000_000_000_000), v(b"y's edit", 0));
        let on_x = decide(h(b"v1"), y, Some(x), &p);
        let on_y = decide(h(b"v1"), x, Some(y), &p);
        let (winner, loser) = if x.hash > y.hash { (x, y) } else { (y, x) };
        let name = conflict_name(&p, &loser);
        let expected_on = |here: Version| {
            if here == winner {
                Decision::KeepIncomingAside {
                    keep_as: name.clone(),
                }
            } else {
                Decision::KeepLocalThenApply {
                    keep_as: name.clone(),
                }
            }
        };
        assert_eq!(on_x, expected_on(x));
        assert_eq!(on_y, expected_on(y));
    }

    #[test]
    fn names() {
        let version = v(b"content", 1_764_000_000_000_000_000);
        let hex = &version.hash.to_hex()[..8];
        let named = |p: &str| conflict_name(&RelPath::new(p).unwrap(), &version).to_string();
        assert_eq!(
            named("docs/report.final.txt"),
            format!("docs/report.final.sync-conflict-20251124-160000-{hex}.txt")
        );
        assert_eq!(
            named("Makefile"),
            format!("Makefile.sync-conflict-20251124-160000-{hex}")
        );
        assert_eq!(
            named(".bashrc"),
            format!(".bashrc.sync-conflict-20251124-160000-{hex}")
        );
    }

    #[test]
    fn a_remote_folder_delete_keeps_only_what_changed_here() {
        use qsync_base::EntryKind;
        let file = |content: &[u8]| FileEntry {
            path: RelPath::new("d/f").unwrap(),
            kind: EntryKind::File,
            size: content.len() as u64,
            mtime_ns: 0,
            hash: Some(ContentHash::of(content)),
            mode: 0,
        };
        let (old, new) = (file(b"old"), file(b"new"));
        assert!(!keep_on_remote_folder_delete(Some(&old), Some(&old), false));
        assert!(
            keep_on_remote_folder_delete(Some(&old), Some(&old), true),
            "pending"
        );
        assert!(
            keep_on_remote_folder_delete(Some(&new), Some(&old), false),
            "edited, unrecorded"
        );
        assert!(
            keep_on_remote_folder_delete(Some(&new), None, false),
            "new here"
        );
        assert!(
            !keep_on_remote_folder_delete(None, Some(&old), true),
            "already gone"
        );
    }
}
