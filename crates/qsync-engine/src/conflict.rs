//! What to do with an incoming update, given what is on disk here: the conflict rules.
//!
//! Rule (decided, documented, tested): **the incoming version wins the name; a local
//! version that changed since the version the update was made from is kept beside it as
//! `name.sync-conflict-<YYYYMMDD-HHMMSS>-<device>.ext`.** Nothing is ever silently lost.

use qsync_base::{ContentHash, DeviceId, RelPath};

/// The decision for one incoming update.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Apply it.
    Apply,
    /// Keep the local version under `keep_as`, then apply.
    KeepLocalThenApply {
        /// Where the local version goes.
        keep_as: RelPath,
    },
    /// The result is already here: acknowledge without writing.
    AlreadyThere,
}

/// Decide for an update whose sender made it from `base` (None: the sender had nothing at
/// that path) and which produces `result` (None: a delete), when this device has `local`.
pub fn decide(
    base: Option<ContentHash>,
    result: Option<ContentHash>,
    local: Option<ContentHash>,
    path: &RelPath,
    from: DeviceId,
    now_unix: i64,
) -> Decision {
    if local == result {
        return Decision::AlreadyThere;
    }
    match local {
        None => Decision::Apply,
        Some(_) if local == base => Decision::Apply,
        Some(_) => Decision::KeepLocalThenApply {
            keep_as: conflict_name(path, from, now_unix),
        },
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
        let d = DeviceId::from_bytes([0; 32]);
        assert_eq!(
            decide(h(b"v1"), h(b"v2"), h(b"v1"), &p, d, 0),
            Decision::Apply
        );
        assert_eq!(decide(None, h(b"v1"), None, &p, d, 0), Decision::Apply);
        assert_eq!(
            decide(h(b"v1"), h(b"v2"), h(b"v2"), &p, d, 0),
            Decision::AlreadyThere
        );
        assert_eq!(
            decide(h(b"v1"), None, None, &p, d, 0),
            Decision::AlreadyThere
        );
        let Decision::KeepLocalThenApply { keep_as } =
            decide(h(b"v1"), h(b"v2"), h(b"mine"), &p, d, 1_764_000_000)
        else {
            panic!()
        };
        assert_eq!(
            keep_as.as_str(),
            "docs/report.final.sync-conflict-20251124-160000-aaaa.txt"
        );
        // A local edit to a file the peer deleted is kept too.
        assert!(matches!(
            decide(h(b"v1"), None, h(b"mine"), &p, d, 0),
            Decision::KeepLocalThenApply { .. }
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
