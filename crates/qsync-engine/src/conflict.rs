//! What to do with an incoming update, given what is on disk here: the conflict rules.
//!
//! Rule (decided, documented, tested): when the local file changed since the version the
//! incoming update was made from, **both versions are kept; the version made by the device
//! with the larger id keeps the name, the other is kept beside it as
//! `name.sync-conflict-<YYYYMMDD-HHMMSS>-<device>.ext`**, where the date is that version's
//! modification time and the device is the one that made it. Both sides of a conflict
//! reach the same decision and the same names, so the two trees converge. Nothing is ever
//! silently lost.

use qsync_base::{ContentHash, DeviceId, RelPath};

/// One side of a possible conflict: who made the version, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Author {
    /// The device that made the version.
    pub device: DeviceId,
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

/// Decide for an update made from `base` (None: the sender had nothing at that path) that
/// produces `result`, when this device has `local` at `path`.
pub fn decide(
    base: Option<ContentHash>,
    result: Option<ContentHash>,
    local: Option<ContentHash>,
    path: &RelPath,
    incoming: Author,
    here: Author,
) -> Decision {
    if local == result {
        return Decision::AlreadyThere;
    }
    if local.is_none() || local == base {
        return Decision::Apply;
    }
    if incoming.device > here.device {
        Decision::KeepLocalThenApply {
            keep_as: conflict_name(path, here.device, here.mtime_ns.div_euclid(1_000_000_000)),
        }
    } else {
        Decision::KeepIncomingAside {
            keep_as: conflict_name(
                path,
                incoming.device,
                incoming.mtime_ns.div_euclid(1_000_000_000),
            ),
        }
    }
}

/// `dir/name.sync-conflict-<date>-<device>.ext` for `dir/name.ext`.
pub fn conflict_name(path: &RelPath, from: DeviceId, now_unix: i64) -> RelPath {
    let name = path.file_name();
    let (stem, ext) = match name.rfind('.') {
        Some(i) if i > 0 => (&name[..i], &name[i..]),
        _ => (name, ""),
    };
    let stamp = format_utc(now_unix);
    let file = format!("{stem}.sync-conflict-{stamp}-{}{ext}", from.short());
    let full = match path.parent() {
        Some(parent) => format!("{parent}/{file}"),
        None => file,
    };
    // The pieces come from a valid RelPath and fixed ASCII, so this cannot fail; fall back
    // to the original path rather than panic if it ever did.
    RelPath::new(full).unwrap_or_else(|_| path.clone())
}

/// `YYYYMMDD-HHMMSS` in UTC, from seconds since the Unix epoch (civil-from-days).
fn format_utc(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (h, m, s) = (rem / 3600, rem % 3600 / 60, rem % 60);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!("{year:04}{month:02}{d:02}-{h:02}{m:02}{s:02}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(b: &[u8]) -> Option<ContentHash> {
        Some(ContentHash::of(b))
    }

    #[test]
    fn rules() {
        let p = RelPath::new("docs/report.final.txt").unwrap();
        let small = Author {
            device: DeviceId::from_bytes([0; 32]),
            mtime_ns: 1_764_000_000_000_000_000,
        };
        let large = Author {
            device: DeviceId::from_bytes([1; 32]),
            mtime_ns: 0,
        };
        assert_eq!(
            decide(h(b"v1"), h(b"v2"), h(b"v1"), &p, small, large),
            Decision::Apply
        );
        assert_eq!(
            decide(None, h(b"v1"), None, &p, small, large),
            Decision::Apply
        );
        assert_eq!(
            decide(h(b"v1"), h(b"v2"), h(b"v2"), &p, small, large),
            Decision::AlreadyThere
        );
        assert_eq!(
            decide(h(b"v1"), None, None, &p, small, large),
            Decision::AlreadyThere
        );
        // Both edited: the larger device's version keeps the name, on both sides.
        let on_large = decide(h(b"v1"), h(b"small's"), h(b"large's"), &p, small, large);
        let on_small = decide(h(b"v1"), h(b"large's"), h(b"small's"), &p, large, small);
        let name =
            RelPath::new("docs/report.final.sync-conflict-20251124-160000-aaaa.txt").unwrap();
        assert_eq!(
            on_large,
            Decision::KeepIncomingAside {
                keep_as: name.clone()
            }
        );
        assert_eq!(on_small, Decision::KeepLocalThenApply { keep_as: name });
        // A local edit to a file the peer deleted is kept too.
        assert!(!matches!(
            decide(h(b"v1"), None, h(b"mine"), &p, small, large),
            Decision::Apply | Decision::AlreadyThere
        ));
    }

    #[test]
    fn names_without_extension_or_hidden() {
        let d = DeviceId::from_bytes([0; 32]);
        assert_eq!(
            conflict_name(&RelPath::new("Makefile").unwrap(), d, 0).as_str(),
            "Makefile.sync-conflict-19700101-000000-aaaa"
        );
        assert_eq!(
            conflict_name(&RelPath::new(".bashrc").unwrap(), d, 0).as_str(),
            ".bashrc.sync-conflict-19700101-000000-aaaa"
        );
    }
}
