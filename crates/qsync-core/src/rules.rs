//! The sync rules as pure functions: what to do with a version received from a peer, given
//! the version here, and the name of a conflict copy.
//!
//! - A version that has seen ours replaces it ([`Decision::Take`]); one ours has seen is
//!   old news ([`Decision::Keep`]).
//! - Two concurrent versions with the same content are not a conflict: the versions merge
//!   ([`Decision::Merge`]).
//! - Two concurrent versions that differ: the one higher in the conflict order keeps the
//!   name, on every device, whatever order they arrive in: a folder beats a file beats a
//!   symlink beats a deletion; between two of a kind, the larger hash (or link target, or
//!   mode) wins. The device that holds the losing content saves it beside the path as a
//!   conflict copy ([`Decision::TakeOver`]) and adopts the winner with the merged version;
//!   the device that holds the winner keeps it ([`Decision::KeepOurs`]) and gets the merged
//!   version back later. A deletion or a folder that loses leaves no copy: there is no
//!   content to save (a folder's content is its children, which keep their own records).
//!   A file that loses only on its permission bits is copied too: the bits may be a
//!   person's chmod. A conflict copy that loses is not copied again: the winner replaces
//!   it (the daemon keeps what it held as a version).
//! - A version that only moved a file's time (`touch`) holds no change of its own to save:
//!   against a concurrent change of the path made by a device that had its content, the
//!   change wins and no copy is made ([`Record::retimed`]).
//! - Two devices that settled the same set of conflicts in different orders may hold equal
//!   versions of different content; the same order settles them. The device that holds the
//!   winner announces it again ([`Decision::Reannounce`]): the other may never hear of it
//!   otherwise, since its record is not newer than the one it holds.
//! - A device is the only authority on its own counter. A version that claims more of this
//!   device's changes than it ever made ([`decide_as`]) was forged, or built on a forgery,
//!   by some linked device: it is never taken as newer than ours. Ours stays, or goes aside
//!   as a conflict copy when theirs has other content; the merged version keeps the claim,
//!   so this device's next change goes above it and the devices that took the forgery
//!   converge on ours.

use std::cmp::Ordering;

use qsync_base::{Causality, ContentHash, DeviceId, RelPath, VersionVector};

use crate::core::{MAX_COUNTER, MAX_VERSION_ENTRIES};

use crate::state::{Record, State};

/// What to do with a received version of a path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Ours has seen it (or is it): nothing to do.
    Keep,
    /// It has seen ours: it replaces ours.
    Take,
    /// Concurrent, same content: store the merged version; nothing changes on disk.
    Merge,
    /// Concurrent, theirs wins: save ours at `aside` (when ours is content worth saving),
    /// then take theirs with the merged version.
    TakeOver {
        /// Where our losing content goes.
        aside: Option<RelPath>,
    },
    /// Concurrent, ours wins: keep ours; the holder of theirs makes the conflict copy.
    KeepOurs,
    /// Theirs is a deletion built on a forged claim of our changes: ours stays, stored again
    /// as a change of ours over both versions, so that every device takes it back.
    Reassert,
    /// Theirs claims more of our changes than we made, and holds other content: ours is
    /// stored again as a change of ours above the claim ([`reclaimed`]), and theirs is kept
    /// as a rival, decided again against that version.
    Reclaim,
    /// Equal versions, ours wins: store ours again (same version) so that it is sent to the
    /// devices that hold the loser, which then take it over.
    Reannounce,
}

/// The decision for `remote`, received from a peer, when this device holds `local` (`None`:
/// it never knew the path).
pub fn decide(local: Option<&Record>, remote: &Record) -> Decision {
    let Some(local) = local else {
        return if remote.state.exists() {
            Decision::Take
        } else {
            // A deletion of something never seen here: only its version is worth keeping.
            Decision::Merge
        };
    };
    match remote.version.compare(&local.version) {
        // Two devices that settled the same conflicts in different orders can end with equal
        // versions of different content: the conflict order picks one, as for concurrent ones.
        // (Bumping a takeover's merged version would prevent them, but each device that
        // settles the conflict then makes a version of its own, and a person's next save
        // on a device that has not heard of one of those is concurrent with it: their save
        // became a conflict copy of content nobody had changed. The simulator found both:
        // 4 of 20,000 schedules with equal versions of two states, and seed 376,127 of the
        // 360,000 after it with the spurious copy once takeovers were bumped.)
        Causality::Equal if remote.state != local.state => {
            match conflict_order(&remote.state, &local.state) {
                Ordering::Greater => Decision::TakeOver {
                    aside: copy_unless_bits_unknown(local, remote),
                },
                _ => Decision::Reannounce,
            }
        }
        // The same version and state, keeping other versions' contents: merged, so that
        // every device keeps the same (see `merged_retimed`).
        Causality::Equal if remote.retimed != local.retimed => Decision::Merge,
        Causality::Equal | Causality::Before => Decision::Keep,
        Causality::After => Decision::Take,
        Causality::Concurrent => match change_after_retime(local, remote) {
            // Theirs changed what ours only moved the time of: theirs, no copy.
            Some(Ordering::Greater) => Decision::TakeOver { aside: None },
            Some(_) => Decision::KeepOurs,
            None => match conflict_order(&remote.state, &local.state) {
                Ordering::Equal => Decision::Merge,
                Ordering::Less => Decision::KeepOurs,
                Ordering::Greater => Decision::TakeOver {
                    aside: copy_unless_bits_unknown(local, remote),
                },
            },
        },
    }
}

/// What two versions of the same state merged keep ([`Record::retimed`]): the join of
/// both when both only moved the time (a join can only raise it), nothing otherwise. The
/// same on every device, whichever of the two it held.
pub fn merged_retimed(a: &Record, b: &Record) -> Option<VersionVector> {
    match (&a.retimed, &b.retimed) {
        (Some(x), Some(y)) => Some(join(x, y)),
        _ => None,
    }
}

/// What `remote`, taken over `local` with the merged version, keeps: when it won because
/// `local` only moved the time of an older content (`change_after_retime`), the merged
/// version holds `remote`'s content under more counters than `remote`'s own (the time
/// change's too), so it keeps `remote`'s content version, and a change made after
/// `remote` beats it without a copy as it beats `remote` itself. Otherwise, what `remote`
/// keeps.
pub fn retimed_after_takeover(local: &Record, remote: &Record) -> Option<VersionVector> {
    match change_after_retime(local, remote) {
        Some(Ordering::Greater) => Some(
            remote
                .retimed
                .clone()
                .unwrap_or_else(|| remote.version.clone()),
        ),
        _ => remote.retimed.clone(),
    }
}

/// Two concurrent versions of a path, at least one of which only moved a file's time
/// ([`Record::retimed`]): each holds the content (the state but for the time) of its
/// *content version* (what it keeps, or the version itself). When one content version
/// has seen the other, its side changed the path after the other's content, and wins, on
/// every device; the time alone made no conflict copy worth keeping (it held nothing a
/// person made that the winner does not have). `Greater`: `remote` wins; `Less`: `local`
/// does; `None`: the conflict order decides, as for any two changes.
fn change_after_retime(local: &Record, remote: &Record) -> Option<Ordering> {
    if local.state == remote.state || (local.retimed.is_none() && remote.retimed.is_none()) {
        return None;
    }
    fn content(r: &Record) -> &VersionVector {
        r.retimed.as_ref().unwrap_or(&r.version)
    }
    match content(remote).compare(content(local)) {
        Causality::After => Some(Ordering::Greater),
        Causality::Before => Some(Ordering::Less),
        Causality::Equal | Causality::Concurrent => None,
    }
}

/// The decision for `remote` on this device, whose counter keys are `keys` (see
/// [`counter_keys`]), as [`decide`], except that a version claiming more of this device's
/// changes than its own record holds is never taken as newer (see the
/// [module documentation](self)):
/// - the same content: the versions merge (nothing is lost either way);
/// - otherwise ours is claimed back ([`Decision::Reclaim`]): stored again with a counter of
///   ours above the claim ([`reclaimed`]), every other counter as ours had it. That version
///   is newer than the forged one where the forged one holds nothing ours had not seen,
///   and concurrent with it where it does (an edit made on top of the forgery): the
///   conflict rule then settles the two on every device, keeping both contents.
/// - with every key at [`MAX_COUNTER`] nothing is above the claim: ours yields as in a
///   conflict it loses (kept as a conflict copy), a deletion does not win over it, and a
///   folder stays.
pub fn decide_as(keys: &[DeviceId], local: Option<&Record>, remote: &Record) -> Decision {
    match local {
        Some(local) if claims_above(keys, local, remote) => {
            let room = keys
                .iter()
                .any(|k| local.version.get(k).max(remote.version.get(k)) < MAX_COUNTER);
            if remote.state == local.state {
                Decision::Merge
            } else if room {
                Decision::Reclaim
            } else if !remote.state.exists() || local.state.is_folder() {
                Decision::Reassert
            } else {
                Decision::TakeOver {
                    aside: copy_unless_bits_unknown(local, remote),
                }
            }
        }
        _ => decide(local, remote),
    }
}

/// Ours with this device's counters raised to `remote`'s claims of them, then one of them
/// above (see [`decide_as`]).
pub fn reclaimed(keys: &[DeviceId], ours: &VersionVector, remote: &VersionVector) -> VersionVector {
    let mut counters: Vec<(DeviceId, u64)> = ours.clone().into();
    counters.extend(keys.iter().map(|k| (*k, remote.get(k))));
    let claimed = VersionVector::from(counters).pruned(MAX_VERSION_ENTRIES);
    next_version(keys, &claimed)
}

/// Whether `remote` claims more of this device's changes (under any of its `keys`) than
/// it made to what it holds: it has a record of the path that exists, and a remote counter
/// of one of its keys is above its own. (A device that deleted or never had the path loses
/// nothing to such a claim.)
///
/// A conflict copy with the same bytes as ours is the one exception: a copy carries the
/// version of the content it copies (see `finish_placed`), so another device's copy of a
/// name can honestly claim more of this device's changes than its own record of that name
/// holds (a copy of a later version of the loser, differing in its permission bits, say),
/// and taking it costs no content. Any other claim on a copy is checked: exempt, a peer
/// could overwrite a conflict copy (the only place a losing edit lives) by naming our
/// counters high (`a_forged_counter_on_a_conflict_copy_does_not_erase_it` in the
/// simulator).
pub fn claims_above(keys: &[DeviceId], local: &Record, remote: &Record) -> bool {
    let same_copy = is_conflict_copy(&remote.path)
        && remote.state.hash().is_some()
        && remote.state.hash() == local.state.hash();
    local.state.exists()
        && keys
            .iter()
            .any(|k| remote.version.get(k) > local.version.get(k))
        && !same_copy
}

/// Two versions joined: the smallest version that has seen both, cut to
/// [`MAX_VERSION_ENTRIES`] devices (see [`VersionVector::pruned`]), so that no version a
/// device stores or sends is one its peers refuse.
pub fn join(a: &VersionVector, b: &VersionVector) -> VersionVector {
    a.merged(b).pruned(MAX_VERSION_ENTRIES)
}

/// How many spare counter keys a device has (see [`counter_keys`]).
pub const SPARE_KEYS: u8 = 8;

/// The keys a device counts its changes under, in the order it uses them: its own id, then
/// [`SPARE_KEYS`] spare keys derived from `seed` (a secret of the device, so that no peer
/// can name them before the device uses them). A forged claim can push a device's counter
/// for a path to [`MAX_COUNTER`]; its next change there then counts under the next key
/// instead, so it is still newer than every version before it ("re-based"), and no
/// version it makes is one its peers refuse.
pub fn counter_keys(me: &DeviceId, seed: &[u8; 32]) -> Vec<DeviceId> {
    let mut keys = vec![*me];
    for n in 1..=SPARE_KEYS {
        let mut input = b"qsync spare counter key".to_vec();
        input.extend_from_slice(seed);
        input.push(n);
        keys.push(DeviceId::from_bytes(*ContentHash::of(&input).as_bytes()));
    }
    keys
}

/// The version of a change this device (counting under `keys`) makes on top of `base`:
/// the first of its keys below [`MAX_COUNTER`] one up. A version naming
/// [`MAX_VERSION_ENTRIES`] devices already (only a peer that made devices up gets one
/// there) drops its smallest other counter for it: the result is then concurrent with
/// `base` rather than newer, and the conflict rule keeps both contents. Only when a forged
/// claim has put every key at the bound does the change keep `base`'s version (settled by
/// the rule for equal versions, the winner announced again).
pub fn next_version(keys: &[DeviceId], base: &VersionVector) -> VersionVector {
    let Some(key) = keys.iter().find(|k| base.get(k) < MAX_COUNTER) else {
        return base.clone();
    };
    let bumped = base.bumped(*key);
    if bumped.iter().count() <= MAX_VERSION_ENTRIES {
        return bumped;
    }
    let mut counters: Vec<(DeviceId, u64)> = bumped.into();
    let smallest = counters
        .iter()
        .filter(|(d, _)| d != key)
        .min_by(|(da, ca), (db, cb)| ca.cmp(cb).then_with(|| da.cmp(db)))
        .map(|(d, _)| *d);
    counters.retain(|(d, _)| Some(*d) != smallest);
    VersionVector::from(counters)
}

/// The loser's copy. Two files with the same bytes and other permission bits are still two
/// changes: the losing bits are kept in the copy, since they may be a person's chmod (one
/// that a version settled elsewhere beat, say). Only bits that are unknown (0, from the
/// store before modes were kept) make no copy: they hold nothing a person chose.
///
/// A conflict copy that loses a conflict is not copied again (no
/// `x.sync-conflict-….sync-conflict-…`, which would pile up at every round of a quarrel
/// over a copy): the winner replaces it, and the daemon keeps the losing content among the
/// task's versions, as it keeps every file a change from another device replaces.
fn copy_unless_bits_unknown(local: &Record, remote: &Record) -> Option<RelPath> {
    if is_conflict_copy(&local.path) {
        return None;
    }
    match (&local.state, &remote.state) {
        (
            State::File {
                hash: a, mode: ma, ..
            },
            State::File {
                hash: b, mode: mb, ..
            },
        ) if a == b && (*ma == 0 || *mb == 0) => None,
        _ => loser_copy(local),
    }
}

/// The total order that picks a conflict's winner: kind first, then content.
pub fn conflict_order(a: &State, b: &State) -> Ordering {
    a.rank().cmp(&b.rank()).then_with(|| match (a, b) {
        (
            State::File {
                hash: ha, mode: ma, ..
            },
            State::File {
                hash: hb, mode: mb, ..
            },
        ) => ha.as_bytes().cmp(hb.as_bytes()).then(ma.cmp(mb)),
        (State::Folder { mode: ma }, State::Folder { mode: mb }) => ma.cmp(mb),
        (State::Symlink { target: ta }, State::Symlink { target: tb }) => ta.cmp(tb),
        _ => Ordering::Equal,
    })
}

/// Where the losing `record` is saved, if it holds content (a file or a symlink).
pub fn loser_copy(record: &Record) -> Option<RelPath> {
    loser_copy_nth(record, 0)
}

/// The `n`th choice of name for the losing `record`'s copy: the first one is
/// [`conflict_name`]; later ones (`…-<hash>-2.ext`, …) serve when that name already holds
/// something else (such as the same content with other permissions).
pub fn loser_copy_nth(record: &Record, n: u32) -> Option<RelPath> {
    let id = match &record.state {
        State::File { hash, .. } => *hash,
        State::Symlink { target } => ContentHash::of(target.as_bytes()),
        State::Deleted | State::Folder { .. } => return None,
    };
    Some(numbered_conflict_name(
        &record.path,
        (record.mtime_ns, &id, record.by.as_ref()),
        n,
    ))
}

/// The longest file name most file systems take, in bytes.
pub const NAME_MAX: usize = 255;

/// How many characters of a device's id a conflict copy's name holds ([`DeviceId`]'s
/// displayed form, lowercase base32: safe in any file system's names, 35 bits).
pub const DEVICE_IN_NAME: usize = 7;

/// `dir/name.sync-conflict-<YYYYMMDD-HHMMSS>-<8 hex of id>-<device>.ext` for
/// `dir/name.ext`, from the losing version's modification time, content and maker (the
/// first [`DEVICE_IN_NAME`] characters of its id; no `-<device>` when the version names no
/// maker, as records from before devices were named). The same on every device. The name
/// is shortened (the stem first, at a character boundary) to fit in [`NAME_MAX`] bytes.
pub fn conflict_name(
    path: &RelPath,
    mtime_ns: i64,
    id: &ContentHash,
    by: Option<&DeviceId>,
) -> RelPath {
    numbered_conflict_name(path, (mtime_ns, id, by), 0)
}

/// The first [`DEVICE_IN_NAME`] characters of `device`'s displayed id, as conflict copies'
/// names hold them.
pub fn device_in_name(device: &DeviceId) -> String {
    device
        .to_string()
        .chars()
        .filter(|c| *c != '-')
        .take(DEVICE_IN_NAME)
        .collect()
}

fn numbered_conflict_name(
    path: &RelPath,
    (mtime_ns, id, by): (i64, &ContentHash, Option<&DeviceId>),
    n: u32,
) -> RelPath {
    let name = path.file_name();
    let (stem, ext) = match name.rfind('.') {
        // A very long "extension" is part of the name, not a type: it may be shortened.
        Some(i) if i > 0 && name.len() - i <= 32 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let stamp = format_utc(mtime_ns.div_euclid(1_000_000_000));
    let hex = id.to_hex();
    let number = if n == 0 {
        String::new()
    } else {
        format!("-{}", n + 1)
    };
    let device = by
        .map(|d| format!("-{}", device_in_name(d)))
        .unwrap_or_default();
    let suffix = format!(".sync-conflict-{stamp}-{}{device}{number}{ext}", &hex[..8]);
    let mut room = NAME_MAX.saturating_sub(suffix.len()).min(stem.len());
    while !stem.is_char_boundary(room) {
        room -= 1;
    }
    let file = format!("{}{suffix}", &stem[..room]);
    let full = match path.parent() {
        Some(parent) => format!("{parent}/{file}"),
        None => file,
    };
    // Built from a valid path's pieces and plain ASCII: cannot be invalid; keep the original
    // rather than panic if it ever were.
    RelPath::new(full).unwrap_or_else(|_| path.clone())
}

pub use qsync_base::format_utc;

/// Whether `path` is a conflict copy's name.
pub fn is_conflict_copy(path: &RelPath) -> bool {
    path.file_name().contains(".sync-conflict-")
}

/// The path a conflict copy was made of (the inverse of [`conflict_name`]), `None` when
/// `copy` is not a copy's name as [`conflict_name`] makes them. A name shortened to fit
/// [`NAME_MAX`] gives the shortened original.
pub fn conflict_original(copy: &RelPath) -> Option<RelPath> {
    let name = copy.file_name();
    let at = name.find(".sync-conflict-")?;
    let (stem, rest) = (&name[..at], &name[at + ".sync-conflict-".len()..]);
    // `YYYYMMDD-HHMMSS-` then 8 hex digits, `-N` when numbered, then the extension.
    let (stamp, rest) = (rest.get(..16)?, rest.get(16..)?);
    if !stamp.is_ascii() {
        return None; // (a name from a disk or a peer: never sliced inside a character)
    }
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !(digits(&stamp[..8]) && &stamp[8..9] == "-" && digits(&stamp[9..15]) && &stamp[15..] == "-")
    {
        return None;
    }
    let (hex, mut ext) = (rest.get(..8)?, rest.get(8..)?);
    if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    // `-<device>`: DEVICE_IN_NAME base32 characters, then the end, a number or the
    // extension (a number is never that long: at most 64 names are tried).
    let base32 = |b: u8| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b);
    if let Some(device) = ext.strip_prefix('-').and_then(|e| e.get(..DEVICE_IN_NAME)) {
        let after = &ext[1 + DEVICE_IN_NAME..];
        if device.bytes().all(base32) && (after.is_empty() || after.starts_with(['.', '-'])) {
            ext = after;
        }
    }
    if let Some(numbered) = ext.strip_prefix('-') {
        let end = numbered.find('.').unwrap_or(numbered.len());
        if !digits(&numbered[..end]) {
            return None;
        }
        ext = &numbered[end..];
    }
    if !(ext.is_empty() || ext.starts_with('.')) || stem.is_empty() {
        return None;
    }
    let file = format!("{stem}{ext}");
    let full = match copy.parent() {
        Some(parent) => format!("{parent}/{file}"),
        None => file,
    };
    RelPath::new(full).ok()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use qsync_base::{DeviceId, VersionVector};

    fn rec(path: &str, state: State, version: VersionVector) -> Record {
        Record {
            path: RelPath::new(path).unwrap(),
            state,
            version,
            mtime_ns: 1_764_000_000_000_000_000,
            seq: 0,
            retimed: None,
            by: None,
        }
    }

    fn file(content: &[u8]) -> State {
        State::File {
            hash: ContentHash::of(content),
            size: content.len() as u64,
            mode: 0o644,
        }
    }

    #[test]
    fn newer_older_concurrent() {
        let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
        let v1 = VersionVector::new().bumped(a);
        let ours = rec("x", file(b"1"), v1.clone());
        assert_eq!(
            decide(Some(&ours), &rec("x", file(b"2"), v1.bumped(b))),
            Decision::Take
        );
        assert_eq!(
            decide(Some(&ours), &rec("x", file(b"0"), VersionVector::new())),
            Decision::Keep
        );
        let theirs_same = rec("x", file(b"1"), VersionVector::new().bumped(b));
        assert_eq!(decide(Some(&ours), &theirs_same), Decision::Merge);
        // Concurrent and different: exactly one side wins, the same on both devices.
        let theirs = rec("x", file(b"2"), VersionVector::new().bumped(b));
        let here = decide(Some(&ours), &theirs);
        let there = decide(Some(&theirs), &ours);
        let outcomes = [here, there];
        assert!(outcomes.contains(&Decision::KeepOurs));
        assert!(outcomes
            .iter()
            .any(|d| matches!(d, Decision::TakeOver { aside: Some(_) })));
        // An edit beats a delete, and the delete leaves no copy.
        let deleted = rec("x", State::Deleted, VersionVector::new().bumped(b));
        assert_eq!(
            decide(Some(&deleted), &ours),
            Decision::TakeOver { aside: None }
        );
        assert_eq!(decide(Some(&ours), &deleted), Decision::KeepOurs);
        // A folder beats a file; the file is the one saved aside.
        let folder = rec(
            "x",
            State::Folder { mode: 0o755 },
            VersionVector::new().bumped(b),
        );
        assert!(matches!(
            decide(Some(&ours), &folder),
            Decision::TakeOver { aside: Some(_) }
        ));
    }

    #[test]
    fn a_conflict_copy_that_loses_is_replaced_not_copied_again() {
        let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
        let doc = RelPath::new("doc.txt").unwrap();
        let copy = conflict_name(&doc, 0, &ContentHash::of(b"x"), Some(&a));
        let ours = rec(copy.as_str(), file(b"1"), VersionVector::new().bumped(a));
        let theirs = rec(copy.as_str(), file(b"2"), VersionVector::new().bumped(b));
        let outcomes = [decide(Some(&ours), &theirs), decide(Some(&theirs), &ours)];
        assert!(outcomes.contains(&Decision::KeepOurs), "{outcomes:?}");
        assert!(
            outcomes.contains(&Decision::TakeOver { aside: None }),
            "{outcomes:?}"
        );
    }

    #[test]
    fn permission_bits_that_lose_are_kept_in_a_copy_unless_unknown() {
        let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
        let with_mode = |mode| State::File {
            hash: ContentHash::of(b"same"),
            size: 4,
            mode,
        };
        let exec = rec("run.sh", with_mode(0o755), VersionVector::new().bumped(a));
        let plain = rec("run.sh", with_mode(0o644), VersionVector::new().bumped(b));
        assert!(matches!(
            decide(Some(&plain), &exec),
            Decision::TakeOver { aside: Some(_) }
        ));
        assert_eq!(decide(Some(&exec), &plain), Decision::KeepOurs);
        // Bits the older store never knew (0) are nothing a person chose: no copy.
        let unknown = rec("run.sh", with_mode(0), VersionVector::new().bumped(b));
        assert_eq!(
            decide(Some(&unknown), &exec),
            Decision::TakeOver { aside: None }
        );
    }

    #[test]
    fn a_copys_name_gives_back_its_original() {
        let id = ContentHash::of(b"x");
        for path in ["docs/report.final.txt", "notes", "a/b/.hidden", "photo.JPG"] {
            let path = RelPath::new(path).unwrap();
            // Digits and letters both, as base32 ids hold them; and no device named.
            let devices = [
                DeviceId::from_bytes([0x11; 32]),
                DeviceId::from_bytes([0xff; 32]),
            ];
            for by in devices.iter().map(Some).chain([None]) {
                for n in [0, 1, 12] {
                    let stamped = (1_764_000_000_000_000_000, &id, by);
                    let copy = numbered_conflict_name(&path, stamped, n);
                    assert_eq!(conflict_original(&copy), Some(path.clone()), "{copy}");
                }
            }
        }
        for not_a_copy in [
            "x.sync-conflict-.txt",
            "x.sync-conflict-2025-160000-abcdefgh.txt",
            "x.txt",
        ] {
            assert_eq!(
                conflict_original(&RelPath::new(not_a_copy).unwrap()),
                None,
                "{not_a_copy}"
            );
        }
    }

    #[test]
    fn names_fit_the_file_system() {
        let id = ContentHash::of(b"x");
        let hex = &id.to_hex()[..8];
        let device = DeviceId::from_bytes([0; 32]);
        let short = conflict_name(
            &RelPath::new("docs/report.final.txt").unwrap(),
            1_764_000_000_000_000_000,
            &id,
            Some(&device),
        );
        assert_eq!(
            short.as_str(),
            format!("docs/report.final.sync-conflict-20251124-160000-{hex}-aaaaaaa.txt")
        );
        let long = "é".repeat(120); // 240 bytes
        let path = RelPath::new(format!("d/{long}.txt")).unwrap();
        let name = conflict_name(&path, 0, &id, Some(&device));
        assert!(
            name.file_name().len() <= NAME_MAX,
            "{}",
            name.file_name().len()
        );
        assert!(name.file_name().ends_with(&format!("-{hex}-aaaaaaa.txt")));
        assert!(is_conflict_copy(&name));
    }
}
