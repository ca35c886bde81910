//! What a peer's record may make in a task folder, whatever the peer sends. Two rules:
//!
//! - **Permission bits are masked by this process's umask.** A record carries the mode the
//!   file or folder has on the sending device; it is placed here as `mode & !umask`, as if
//!   a program of this device had made it (a peer's 0777 becomes 0755 under umask 022).
//!   The execute bits travel, masked the same way. The record itself keeps the peer's
//!   mode, so a mode on disk that is exactly the record's mode masked stands for the
//!   record's mode ([`as_recorded`]): the daemon reports it so to the core, and a
//!   placement finds it as expected. Without that, a masked mode would look like a change
//!   made here and go back to every device as a new version (spreading this device's
//!   umask, and racing the sender's next edit into a conflict). This cannot loop:
//!   masking a masked mode changes nothing. The price: a person who changes a received
//!   0777 file to exactly 0755 here (what was placed) makes no new version.
//! - **A symlink whose target leaves the task folder is not made** ([`refusal`]): an
//!   absolute target, or a relative one that, read name by name from the link's own
//!   folder, climbs above the task folder. The placement fails (the core tries it again
//!   later, waiting up to 16 s); the daemon lists it in `status` and logs it once, with the
//!   peer it came from. Links the person makes here are synced as they are. The task's
//!   person may allow such links for one task (`qsync task set TASK --links-out allow`,
//!   the store's `TaskOptions::links_out`): a link refused before is then made at the
//!   core's next try. Turned off again, the links made stay; new ones are refused.

use std::sync::OnceLock;

use qsync_base::{RelPath, MODE_BITS};
use qsync_core::{Placement, State};

/// Why a received symlink whose target leaves the task folder is not made.
pub const LINK_LEAVES: &str = "symlink target leaves the folder";

/// This process's umask, read once (the daemon does not change it).
pub fn umask() -> u32 {
    static UMASK: OnceLock<u32> = OnceLock::new();
    *UMASK.get_or_init(|| {
        // `umask(2)` is only read by setting it: the old value is put back at once. A file
        // another thread creates in between gets 0077's bits removed: more private, never
        // less.
        let old = rustix::process::umask(rustix::fs::Mode::from_raw_mode(0o077));
        rustix::process::umask(old);
        old.bits() & MODE_BITS
    })
}

/// The permission bits a peer's `mode` gets here (0, unknown, stays 0).
pub fn masked(mode: u32) -> u32 {
    masked_by(mode, umask())
}

fn masked_by(mode: u32, umask: u32) -> u32 {
    mode & MODE_BITS & !umask
}

/// `state` as this device places it: a file's or folder's mode masked.
pub fn as_placed(state: &State) -> State {
    match state {
        State::File { hash, size, mode } => State::File {
            hash: *hash,
            size: *size,
            mode: masked(*mode),
        },
        State::Folder { mode } => State::Folder {
            mode: masked(*mode),
        },
        other => other.clone(),
    }
}

/// What is seen on disk (`seen`), with the mode of the record there (`recorded`) when the
/// disk's mode is exactly that mode masked by the umask: the disk then holds the record's
/// mode as this device places it. Anything else is returned as seen.
pub fn as_recorded(seen: State, recorded: &State) -> State {
    as_recorded_by(seen, recorded, umask())
}

fn as_recorded_by(seen: State, recorded: &State, umask: u32) -> State {
    let stands_for = |mode: u32, theirs: u32| mode != theirs && mode == masked_by(theirs, umask);
    match (seen, recorded) {
        (State::File { hash, size, mode }, State::File { mode: theirs, .. })
            if stands_for(mode, *theirs) =>
        {
            State::File {
                hash,
                size,
                mode: *theirs,
            }
        }
        (State::Folder { mode }, State::Folder { mode: theirs }) if stands_for(mode, *theirs) => {
            State::Folder { mode: *theirs }
        }
        (seen, _) => seen,
    }
}

/// Why `p` is not carried out at all, if it is not: a symlink whose target is absolute or
/// climbs above the task folder, unless the task allows such links (`links_out`; see the
/// module's documentation).
pub fn refusal(p: &Placement, links_out: bool) -> Option<&'static str> {
    match &p.target {
        State::Symlink { target } if !links_out && link_leaves(&p.path, target) => {
            Some(LINK_LEAVES)
        }
        _ => None,
    }
}

/// Whether a link at `path` pointing to `target` leads out of the task folder, read name by
/// name without looking at the disk: absolute, or more `..` than folders above it.
fn link_leaves(path: &RelPath, target: &str) -> bool {
    if target.starts_with('/') {
        return true;
    }
    // The folders between the task folder and the link.
    let mut depth = path.as_str().split('/').count() - 1;
    for name in target.split('/') {
        match name {
            "" | "." => {}
            ".." => match depth.checked_sub(1) {
                Some(up) => depth = up,
                None => return true,
            },
            _ => depth += 1,
        }
    }
    false
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use qsync_base::ContentHash;

    #[test]
    fn a_peers_0777_is_placed_0755_under_umask_022_and_stands_for_0777() {
        assert_eq!(masked_by(0o777, 0o022), 0o755);
        assert_eq!(masked_by(0o640, 0o022), 0o640);
        assert_eq!(masked_by(0o4777, 0o022), 0o755, "no set-id bits");
        let hash = ContentHash::of(b"x");
        let file = |mode| State::File {
            hash,
            size: 1,
            mode,
        };
        assert_eq!(
            as_recorded_by(file(0o755), &file(0o777), 0o022),
            file(0o777)
        );
        // A mode the umask cannot have made is a change of the person's.
        assert_eq!(
            as_recorded_by(file(0o700), &file(0o777), 0o022),
            file(0o700)
        );
        assert_eq!(
            as_recorded_by(file(0o755), &file(0o775), 0o002),
            file(0o755)
        );
        let folder = |mode| State::Folder { mode };
        assert_eq!(
            as_recorded_by(folder(0o755), &folder(0o777), 0o022),
            folder(0o777)
        );
        assert_eq!(
            as_recorded_by(folder(0o755), &file(0o777), 0o022),
            folder(0o755)
        );
    }

    #[test]
    fn links_that_climb_out_or_start_at_the_root_leave_the_folder() {
        let at = |p: &str, target: &str| link_leaves(&RelPath::new(p).unwrap(), target);
        assert!(at("notes", "/home/me/.ssh/id_ed25519"));
        assert!(at("notes", "../x"));
        assert!(at("a/b/notes", "../../../x"));
        assert!(at("a/notes", "b/../../../x"));
        assert!(at("a/notes", "./../.."));
        assert!(!at("a/b/notes", "../../x"));
        assert!(!at("link", "sub/target"));
        assert!(!at("a/link", "../sub//./target"));
        assert!(!at("a/link", ".."));
    }
}
