//! The control protocol's words for a task's options (`qsync_control`) and the store's
//! (`qsync_store`), one into the other: the protocol is the front ends' contract, the
//! store's types are how this daemon keeps them, and each may change on its own.

use qsync_control as control;

/// A folder type as the store keeps it.
pub(super) fn folder_type_in(t: control::FolderType) -> qsync_store::FolderType {
    match t {
        control::FolderType::SendReceive => qsync_store::FolderType::SendReceive,
        control::FolderType::SendOnly => qsync_store::FolderType::SendOnly,
        control::FolderType::ReceiveOnly => qsync_store::FolderType::ReceiveOnly,
    }
}

/// A folder type as the protocol says it.
pub(super) fn folder_type_out(t: qsync_store::FolderType) -> control::FolderType {
    match t {
        qsync_store::FolderType::SendReceive => control::FolderType::SendReceive,
        qsync_store::FolderType::SendOnly => control::FolderType::SendOnly,
        qsync_store::FolderType::ReceiveOnly => control::FolderType::ReceiveOnly,
    }
}

/// A versions policy as the store keeps it.
pub(super) fn policy_in(p: control::VersionPolicy) -> qsync_store::VersionPolicy {
    let keep = match p.keep {
        control::Keep::Off => qsync_store::Keep::Off,
        control::Keep::Trash { days } => qsync_store::Keep::Trash { days },
        control::Keep::Staggered { days } => qsync_store::Keep::Staggered { days },
    };
    qsync_store::VersionPolicy { keep, cap: p.cap }
}

/// A versions policy as the protocol says it (a cap of `None`: the default, followed if
/// it changes).
pub(super) fn policy_out(p: qsync_store::VersionPolicy) -> control::VersionPolicy {
    let keep = match p.keep {
        qsync_store::Keep::Off => control::Keep::Off,
        qsync_store::Keep::Trash { days } => control::Keep::Trash { days },
        qsync_store::Keep::Staggered { days } => control::Keep::Staggered { days },
    };
    control::VersionPolicy { keep, cap: p.cap }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_go_both_ways_unchanged() {
        assert_eq!(control::DEFAULT_VERSIONS_CAP, qsync_store::DEFAULT_CAP);
        for t in [
            control::FolderType::SendReceive,
            control::FolderType::SendOnly,
            control::FolderType::ReceiveOnly,
        ] {
            assert_eq!(folder_type_out(folder_type_in(t)), t);
        }
        for keep in [
            control::Keep::Off,
            control::Keep::Trash { days: 3 },
            control::Keep::Staggered { days: 365 },
        ] {
            for cap in [None, Some(1 << 30)] {
                let p = control::VersionPolicy { keep, cap };
                assert_eq!(policy_out(policy_in(p)), p);
            }
        }
    }
}
