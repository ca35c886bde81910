//! Folded runs: a run of records that the receiver rebuilds from what it already holds,
//! sent as one small [`Fold`] instead of one record per path.
//!
//! Moving a folder of a thousand files makes a thousand and one deletions and as many new
//! paths on the device where it happened (`Core`'s `observed`), each a record of about a
//! hundred bytes on the wire. Yet the receiver holds every fact they carry: the new paths'
//! contents, permission bits and times are its own records of the old paths, and the
//! deletions' versions are those records' versions one change up. So the sender folds:
//! - [`Shape::Deleted`]: consecutive deletions, deepest first, of paths at or under one
//!   folder (the order in which a folder's deletion makes them), all with one time;
//! - [`Shape::Moved`]: consecutive new paths under `to`, in path order, each holding what
//!   the same path under `from` held (the other half of a folder moved: the deletions of
//!   `from`, then the paths of `to`).
//!
//! A fold carries the digest of the records it stands for. The receiver rebuilds them
//! ([`Fold::unfold`]) from its ledger, and, for a move, from what it remembers of the paths
//! a fold just deleted (their *pre-images*: by the time the new paths arrive, the old ones
//! may be deleted here already). It takes them only if they hash to the digest: the very
//! records the sender has, or none. When they do not (the receiver's view of the old
//! folder is not the sender's, or the run was no move at all), it asks for them in full
//! (`Message::Unfold`) and holds its acknowledgements at the run until they come. A fold
//! is never trusted more than the records it stands for: a peer could send those as well.

use std::collections::{BTreeMap, BTreeSet, VecDeque};

use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
use serde::{Deserialize, Serialize};

use crate::ledger::Ledger;
use crate::rules::next_version;
use crate::state::{Record, State};

/// The fewest records worth a fold: a fold costs about as much as two records.
pub const MIN_FOLD: usize = 2;

/// Which rule rebuilds a fold's records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Shape {
    /// Deletions of the paths at or under `root` that exist here, in reverse path order
    /// from the fold's `start`, each with `mtime_ns` and its version one change of the
    /// sender's up.
    Deleted {
        /// The folder the deleted paths are at or under.
        root: RelPath,
        /// The time every one of them carries.
        mtime_ns: i64,
    },
    /// New paths `to/x`, in path order from the fold's `start`, each holding what `from/x`
    /// held (state and time), its version one change of the sender's above what this
    /// device has of `to/x`.
    Moved {
        /// Where the paths were.
        from: RelPath,
        /// Where they are now.
        to: RelPath,
    },
}

/// A run of a peer's records, folded: the receiver rebuilds them from the records it holds
/// (the paths of a folder deleted, or of a folder moved), checked against a digest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fold {
    /// How to rebuild them.
    pub shape: Shape,
    /// The first record's path.
    pub start: RelPath,
    /// How many records (at most `RECORDS_PER_MESSAGE`).
    pub count: u32,
    /// The first record's sequence number; the others follow one by one.
    pub first_seq: u64,
    /// The hash of the records (postcard of the list, BLAKE3).
    pub digest: ContentHash,
}

impl Fold {
    /// The last record's sequence number (`None` for a fold of no records, or past the
    /// numbers: never made by an honest peer).
    pub fn last_seq(&self) -> Option<u64> {
        let count = u64::from(self.count).checked_sub(1)?;
        self.first_seq.checked_add(count)
    }

    /// The records this fold stands for, rebuilt from `ledger` and `preimages` (the paths
    /// a fold deleted, as they were just before) as sent by `peer`, with the records they
    /// replace (the pre-images a [`Shape::Deleted`] fold makes); `None` if the rebuilt
    /// records are not the ones the sender folded.
    pub fn unfold<L: Ledger>(
        &self,
        task: &TaskId,
        peer: DeviceId,
        ledger: &L,
        preimages: &Preimages,
    ) -> Result<Option<Unfolded>, L::Error> {
        let count = self.count as usize;
        let Some(_) = self.last_seq() else {
            return Ok(None);
        };
        let unfolded = match &self.shape {
            Shape::Deleted { root, mtime_ns } => {
                let before = sources(ledger, task, root, &self.start, true, count)?;
                let records = before
                    .iter()
                    .zip(self.first_seq..)
                    .map(|(old, seq)| Record {
                        path: old.path.clone(),
                        state: State::Deleted,
                        version: next_version(&[peer], &old.version),
                        mtime_ns: *mtime_ns,
                        seq,
                        retimed: None,
                        by: Some(peer),
                    })
                    .collect();
                Unfolded { records, before }
            }
            Shape::Moved { from, to } => {
                let Some(start) = moved(&self.start, to, from) else {
                    return Ok(None);
                };
                let mut before: BTreeMap<RelPath, Record> =
                    sources(ledger, task, from, &start, false, count)?
                        .into_iter()
                        .map(|r| (r.path.clone(), r))
                        .collect();
                before.extend(
                    preimages
                        .from(&start, from)
                        .take(count)
                        .map(|r| (r.path.clone(), r.clone())),
                );
                let used: Vec<Record> = before.into_values().take(count).collect();
                let mut records = Vec::with_capacity(count);
                for (old, seq) in used.iter().zip(self.first_seq..) {
                    let Some(path) = moved(&old.path, from, to) else {
                        return Ok(None);
                    };
                    let base = ledger.record(task, &path)?.map(|r| r.version);
                    records.push(Record {
                        version: next_version(&[peer], &base.unwrap_or_default()),
                        path,
                        state: old.state.clone(),
                        mtime_ns: old.mtime_ns,
                        seq,
                        retimed: None,
                        by: Some(peer),
                    });
                }
                Unfolded {
                    records,
                    before: used,
                }
            }
        };
        let whole = unfolded.records.len() == count;
        Ok((whole && digest(&unfolded.records) == self.digest).then_some(unfolded))
    }
}

/// A fold's records, and the records the deletions among them replace.
#[derive(Debug)]
pub struct Unfolded {
    /// The records, in sequence order.
    pub records: Vec<Record>,
    /// What they were rebuilt from: for a [`Shape::Deleted`] fold, each deleted path as
    /// it was (what a later [`Shape::Moved`] fold rebuilds from); for a move, the old
    /// paths whose content moved.
    pub before: Vec<Record>,
}

/// The most bytes of pre-images a peer's stream keeps (about forty thousand paths).
const PREIMAGE_BYTES: usize = 8 << 20;

/// The paths a peer's folds deleted lately, each as it was just before (what the new
/// paths of a move are rebuilt from: by the time they arrive, the deletions may be placed
/// here already). At most [`PREIMAGE_BYTES`]: the oldest are forgotten first (a move of
/// more is then partly asked for in full).
#[derive(Debug, Default)]
pub struct Preimages {
    /// Each path's record, and when it was remembered.
    by_path: BTreeMap<RelPath, (Record, u64)>,
    /// Paths in the order they were remembered (one remembered again is here twice: only
    /// its latest entry counts).
    order: VecDeque<(u64, RelPath)>,
    /// How many were ever remembered (the stamp of the next), and their size now.
    stamps: u64,
    bytes: usize,
}

impl Preimages {
    /// Remember `records`, forgetting the oldest beyond the bound.
    pub fn remember(&mut self, records: Vec<Record>) {
        for record in records {
            self.stamps += 1;
            self.bytes += size_of(&record);
            self.order.push_back((self.stamps, record.path.clone()));
            let path = record.path.clone();
            if let Some((old, _)) = self.by_path.insert(path, (record, self.stamps)) {
                self.bytes -= size_of(&old);
            }
        }
        while self.bytes > PREIMAGE_BYTES {
            let Some((stamp, path)) = self.order.pop_front() else {
                break;
            };
            if self.by_path.get(&path).is_some_and(|(_, s)| *s == stamp) {
                if let Some((old, _)) = self.by_path.remove(&path) {
                    self.bytes -= size_of(&old);
                }
            }
        }
        // Entries of paths remembered again since, or forgotten, go once they are many.
        if self.order.len() > 2 * self.by_path.len() + 1024 {
            let by_path = &self.by_path;
            self.order
                .retain(|(stamp, path)| by_path.get(path).is_some_and(|(_, s)| s == stamp));
        }
    }

    /// Forget `records`' paths (a move was rebuilt from them).
    pub fn forget(&mut self, records: &[Record]) {
        for record in records {
            if let Some((old, _)) = self.by_path.remove(&record.path) {
                self.bytes -= size_of(&old);
            }
        }
        if self.by_path.is_empty() {
            self.order.clear();
        }
    }

    /// The pre-images of paths at or under `root`, in path order from `start` on.
    fn from<'a>(&'a self, start: &RelPath, root: &'a RelPath) -> impl Iterator<Item = &'a Record> {
        self.by_path
            .range(start.clone()..)
            .take_while(move |(p, _)| p.as_str().starts_with(root.as_str()))
            .filter(move |(p, _)| p.starts_with(root))
            .map(|(_, (r, _))| r)
    }
}

/// About what a pre-image takes in memory.
fn size_of(record: &Record) -> usize {
    let target = match &record.state {
        State::Symlink { target } => target.len(),
        _ => 0,
    };
    160 + record.path.as_str().len() + target + 48 * record.version.iter().count()
}

/// The hash a fold of `records` carries.
pub fn digest(records: &[Record]) -> ContentHash {
    // postcard writes a record the same way on every device (it is the wire's encoding);
    // a record that cannot be written (never: no map, no float) makes a digest no fold has.
    let bytes = postcard::to_allocvec(records).unwrap_or_default();
    ContentHash::of(&bytes)
}

/// `path` (at or under `from`) at the same place under `to`; `None` if it is not under
/// `from` or would be too long a path.
fn moved(path: &RelPath, from: &RelPath, to: &RelPath) -> Option<RelPath> {
    if path == from {
        return Some(to.clone());
    }
    let rest = path
        .as_str()
        .strip_prefix(from.as_str())?
        .strip_prefix('/')?;
    RelPath::new(format!("{to}/{rest}")).ok()
}

/// Up to `count` records of paths at or under `root` that exist, in path order from
/// `start` (reversed when `descending`: `root` itself then comes last).
fn sources<L: Ledger>(
    ledger: &L,
    task: &TaskId,
    root: &RelPath,
    start: &RelPath,
    descending: bool,
    count: usize,
) -> Result<Vec<Record>, L::Error> {
    let own = || -> Result<Option<Record>, L::Error> {
        Ok(ledger.record(task, root)?.filter(|r| r.state.exists()))
    };
    let mut out = Vec::with_capacity(count.min(1024));
    if !descending && start == root {
        out.extend(own()?);
    }
    if !start.starts_with(root) {
        return Ok(Vec::new());
    }
    let left = count - out.len().min(count);
    out.extend(ledger.live_under(task, root, start, descending, left)?);
    if descending && out.len() < count {
        out.extend(own()?);
    }
    out.truncate(count);
    Ok(out)
}

/// One part of a message's worth of records, once folded.
#[derive(Debug)]
pub enum Piece {
    /// Records that go as they are.
    Records(Vec<Record>),
    /// A run that goes folded.
    Fold(Fold),
}

/// Where the last fold of a stream left off, for the next records (of the same message or
/// the next) to continue it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tail {
    /// The sequence number that continues it.
    next_seq: u64,
    /// What it was.
    kind: TailKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum TailKind {
    /// Deletions that ended with their folder `root`: new paths that follow at once may be
    /// that folder moved (the first is then the folder's new path).
    Deleted { root: RelPath },
    /// New paths of a folder moved from `from` to `to`.
    Moved { from: RelPath, to: RelPath },
}

/// `records` (one message's worth, in sequence order) with their foldable runs folded.
/// `tail` carries a run over from one message to the next.
///
/// A folder moved is its deletions (deepest first, the folder last) and its new paths (the
/// folder first, then what it holds in path order), in either order: deletions first
/// when the watcher saw the rename, new paths first when a scan found the folder's new
/// name sorting before its old one. The moved folder's own record goes as it is (its time
/// may have changed with the move); what it holds is folded, paired with the deletions
/// that come just before it, or with deletions of the same names later in the message.
pub fn fold(records: Vec<Record>, tail: &mut Option<Tail>) -> Vec<Piece> {
    let deletions = deletions(&records);
    // What each piece is, decided on the records in place; then the records are moved
    // into their pieces (none copied).
    let mut plan: Vec<Result<Fold, usize>> = Vec::new();
    let mut i = 0;
    while i < records.len() {
        let rest = &records[i..];
        let run = match deleted_run(rest) {
            Some(run) => Some(run),
            None => tail.as_ref().and_then(|t| moved_run(rest, t)),
        };
        if let Some((fold, next)) = run {
            i += fold.count as usize;
            plan.push(Ok(fold));
            *tail = next;
            continue;
        }
        let record = &records[i];
        let from = match tail.take() {
            Some(Tail {
                next_seq,
                kind: TailKind::Deleted { root },
            }) if next_seq == record.seq => Some(root),
            _ => paired(&deletions, rest),
        };
        *tail = from.filter(|_| record.state.is_folder()).map(|from| Tail {
            next_seq: record.seq + 1,
            kind: TailKind::Moved {
                from,
                to: record.path.clone(),
            },
        });
        match plan.last_mut() {
            Some(Err(plain)) => *plain += 1,
            _ => plan.push(Err(1)),
        }
        i += 1;
    }
    let mut records = records.into_iter();
    plan.into_iter()
        .map(|piece| match piece {
            Ok(fold) => {
                records.by_ref().take(fold.count as usize).for_each(drop);
                Piece::Fold(fold)
            }
            Err(plain) => Piece::Records(records.by_ref().take(plain).collect()),
        })
        .collect()
}

/// The deletions of whole folders among `records`: each folder, with the paths deleted
/// at or under it, relative to it ("" for the folder itself).
fn deletions(records: &[Record]) -> Vec<(RelPath, BTreeSet<String>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < records.len() {
        match deletion_run(&records[i..]) {
            Some((n, root)) => {
                let run = &records[i..i + n];
                if run[n - 1].path == root {
                    let names = run
                        .iter()
                        .filter_map(|r| relative(&r.path, &root))
                        .collect();
                    out.push((root, names));
                }
                i += n;
            }
            None => i += 1,
        }
    }
    out
}

/// The folder whose deletion (among `deletions`) the new paths at the front of `records`
/// are the other half of: the first is a folder, the rest what it holds, every one a
/// name that the deletion had.
fn paired(deletions: &[(RelPath, BTreeSet<String>)], records: &[Record]) -> Option<RelPath> {
    let (folder, inside) = records.split_first()?;
    if !folder.state.is_folder() {
        return None;
    }
    let names: Vec<&str> = creation_run(inside, folder.seq + 1, &folder.path)
        .iter()
        .filter_map(|r| r.path.as_str().strip_prefix(folder.path.as_str()))
        .filter_map(|rest| rest.strip_prefix('/'))
        .collect();
    if names.len() < MIN_FOLD {
        return None;
    }
    deletions
        .iter()
        .find(|(_, had)| had.contains("") && names.iter().all(|n| had.contains(*n)))
        .map(|(root, _)| root.clone())
}

/// `path` relative to `root` ("" for `root` itself), if at or under it.
fn relative(path: &RelPath, root: &RelPath) -> Option<String> {
    if path == root {
        return Some(String::new());
    }
    let rest = path
        .as_str()
        .strip_prefix(root.as_str())?
        .strip_prefix('/')?;
    Some(rest.to_owned())
}

/// How many records at the front of `records` are one run of deletions (consecutive
/// numbers, one time, deepest first, all at or under one folder), and that folder.
fn deletion_run(records: &[Record]) -> Option<(usize, RelPath)> {
    let first = records.first()?;
    if first.state.exists() {
        return None;
    }
    let mut root = first.path.clone();
    let mut n = 1;
    for (prev, next) in records.iter().zip(&records[1..]) {
        let follows = !next.state.exists()
            && next.seq == prev.seq + 1
            && next.mtime_ns == first.mtime_ns
            && next.path < prev.path;
        match common(&root, &next.path) {
            Some(joined) if follows => root = joined,
            _ => break,
        }
        n += 1;
    }
    Some((n, root))
}

/// The records at the front of `records` that are new paths strictly under `to`, numbered
/// one by one from `seq`, in path order.
fn creation_run<'a>(records: &'a [Record], seq: u64, to: &RelPath) -> &'a [Record] {
    let mut n = 0;
    for (i, record) in records.iter().enumerate() {
        let in_order = i == 0 || record.path > records[i - 1].path;
        let inside = record.state.exists() && record.path.starts_with(to) && record.path != *to;
        if record.seq != seq + i as u64 || !in_order || !inside {
            break;
        }
        n += 1;
    }
    &records[..n]
}

/// A run of deletions at the front of `records`, folded, if there is one worth folding.
fn deleted_run(records: &[Record]) -> Option<(Fold, Option<Tail>)> {
    let (n, root) = deletion_run(records)?;
    if n < MIN_FOLD {
        return None;
    }
    let run = &records[..n];
    let (first, last) = (&run[0], &run[n - 1]);
    let fold = Fold {
        shape: Shape::Deleted {
            root: root.clone(),
            mtime_ns: first.mtime_ns,
        },
        start: first.path.clone(),
        count: n as u32,
        first_seq: first.seq,
        digest: digest(run),
    };
    // Only deletions that end with their folder can be the first half of a move.
    let tail = (last.path == root).then(|| Tail {
        next_seq: last.seq + 1,
        kind: TailKind::Deleted { root },
    });
    Some((fold, tail))
}

/// A run of new paths at the front of `records` continuing the move `tail` names, folded.
fn moved_run(records: &[Record], tail: &Tail) -> Option<(Fold, Option<Tail>)> {
    let TailKind::Moved { from, to } = &tail.kind else {
        return None;
    };
    let run = creation_run(records, tail.next_seq, to);
    let n = run.len();
    if n < MIN_FOLD {
        return None;
    }
    let fold = Fold {
        shape: Shape::Moved {
            from: from.clone(),
            to: to.clone(),
        },
        start: run[0].path.clone(),
        count: n as u32,
        first_seq: run[0].seq,
        digest: digest(run),
    };
    let next = Tail {
        next_seq: run[n - 1].seq + 1,
        kind: tail.kind.clone(),
    };
    Some((fold, Some(next)))
}

/// The deepest folder that `a` and `b` are both at or under, if any.
fn common(a: &RelPath, b: &RelPath) -> Option<RelPath> {
    let mut shared = 0;
    let mut len = 0;
    for (x, y) in a.as_str().split('/').zip(b.as_str().split('/')) {
        if x != y {
            break;
        }
        len += x.len() + usize::from(shared > 0);
        shared += 1;
    }
    (shared > 0)
        .then(|| RelPath::new(&a.as_str()[..len]).ok())
        .flatten()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use qsync_base::VersionVector;

    fn path(p: &str) -> RelPath {
        RelPath::new(p).unwrap()
    }

    fn deleted(p: &str, seq: u64) -> Record {
        Record {
            path: path(p),
            state: State::Deleted,
            version: VersionVector::new(),
            mtime_ns: 7,
            seq,
            retimed: None,
            by: None,
        }
    }

    fn made(p: &str, seq: u64, folder: bool) -> Record {
        let state = match folder {
            true => State::Folder { mode: 0o755 },
            false => State::File {
                hash: ContentHash::of(p.as_bytes()),
                size: 1,
                mode: 0o644,
            },
        };
        Record {
            path: path(p),
            state,
            version: VersionVector::new(),
            mtime_ns: 1,
            seq,
            retimed: None,
            by: None,
        }
    }

    fn shapes(pieces: &[Piece]) -> Vec<String> {
        pieces
            .iter()
            .map(|p| match p {
                Piece::Records(r) => format!("{} records", r.len()),
                Piece::Fold(f) => format!("{:?} from {} x{}", f.shape, f.start, f.count),
            })
            .collect()
    }

    #[test]
    fn the_deepest_shared_folder() {
        assert_eq!(common(&path("a/b/c"), &path("a/b/d")), Some(path("a/b")));
        assert_eq!(common(&path("a/b"), &path("a/b/d")), Some(path("a/b")));
        assert_eq!(common(&path("ab/c"), &path("a/c")), None);
        assert_eq!(common(&path("a"), &path("b")), None);
    }

    #[test]
    fn a_path_moves_under_its_new_folder_or_not_at_all() {
        let (from, to) = (path("photos"), path("archive/photos"));
        assert_eq!(
            moved(&path("photos/x/y"), &from, &to),
            Some(path("archive/photos/x/y"))
        );
        assert_eq!(moved(&from, &from, &to), Some(to.clone()));
        assert_eq!(moved(&path("photos2/x"), &from, &to), None);
        let deep = path(&format!("photos/{}", ["n"; 2000].join("/")));
        assert_eq!(moved(&deep, &from, &path(&"t/".repeat(100)[..199])), None);
    }

    #[test]
    fn a_folder_moved_after_its_deletion_is_two_folds_and_its_folder() {
        let mut records = vec![
            deleted("d/c", 10),
            deleted("d/b", 11),
            deleted("d/a", 12),
            deleted("d", 13),
        ];
        records.push(made("e", 14, true));
        records.extend(
            ["e/a", "e/b", "e/c"]
                .iter()
                .zip(15..)
                .map(|(p, s)| made(p, s, false)),
        );
        let mut tail = None;
        let pieces = fold(records, &mut tail);
        assert_eq!(
            shapes(&pieces),
            [
                "Deleted { root: RelPath(\"d\"), mtime_ns: 7 } from d/c x4",
                "1 records",
                "Moved { from: RelPath(\"d\"), to: RelPath(\"e\") } from e/a x3",
            ]
        );
    }

    #[test]
    fn a_folder_moved_before_its_deletion_pairs_with_the_deletion_later_in_the_message() {
        let mut records = vec![
            made("a", 1, true),
            made("a/x", 2, false),
            made("a/y", 3, false),
        ];
        records.extend([deleted("b/y", 4), deleted("b/x", 5), deleted("b", 6)]);
        let pieces = fold(records, &mut None);
        assert_eq!(
            shapes(&pieces),
            [
                "1 records",
                "Moved { from: RelPath(\"b\"), to: RelPath(\"a\") } from a/x x2",
                "Deleted { root: RelPath(\"b\"), mtime_ns: 7 } from b/y x3",
            ]
        );
    }

    #[test]
    fn a_move_split_over_messages_goes_on_folding_in_the_next() {
        let first = vec![
            deleted("d/b", 1),
            deleted("d/a", 2),
            deleted("d", 3),
            made("e", 4, true),
        ];
        let mut tail = None;
        let _ = fold(first, &mut tail);
        let second = vec![
            made("e/a", 5, false),
            made("e/b", 6, false),
            made("f", 7, false),
        ];
        let pieces = fold(second, &mut tail);
        assert_eq!(
            shapes(&pieces),
            [
                "Moved { from: RelPath(\"d\"), to: RelPath(\"e\") } from e/a x2",
                "1 records"
            ]
        );
    }

    #[test]
    fn new_paths_that_no_deletion_had_go_as_they_are() {
        let records = vec![
            made("a", 1, true),
            made("a/x", 2, false),
            made("a/y", 3, false),
            deleted("b/x", 4),
            deleted("b", 5),
        ];
        let pieces = fold(records, &mut None);
        assert_eq!(
            shapes(&pieces),
            [
                "3 records",
                "Deleted { root: RelPath(\"b\"), mtime_ns: 7 } from b/x x2"
            ]
        );
    }
}
