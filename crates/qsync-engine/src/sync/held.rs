//! The contents one task has held: the only bases a peer of that task may have a patch made
//! from.
//!
//! Blobs are shared by every task (one copy per content, see `keeper.rs`), so "is this blob
//! stored?" would tell a peer linked to one task whether this device holds some content in
//! another task it was never linked to: the answer would be a patch (the blob is here) or a
//! request for the asker's signature (it is not). So a base a peer names is used only if
//! its task has held that content: a file version recorded for the task when the daemon
//! started (the only blobs left after a start, see `Store::sweep_blobs`), or seen or placed
//! in its folder since. Any other base is treated exactly like a content this device never
//! had.
//!
//! The set only grows while the daemon runs (one entry per file version), so once it has
//! doubled since it was last trimmed, the contents whose blob is gone are dropped: it stays
//! within twice the blobs kept (and never trims below [`TRIM_FLOOR`] entries).

use std::collections::HashSet;

use qsync_base::ContentHash;

/// The set is never trimmed while it holds fewer entries than this (about 200 KiB).
const TRIM_FLOOR: usize = 4096;

/// The contents a task has held (see the module's documentation).
#[derive(Debug)]
pub(crate) struct Held {
    hashes: HashSet<ContentHash>,
    /// Trim when the set reaches this size.
    trim_at: usize,
}

impl Held {
    /// The contents recorded for the task at start.
    pub(crate) fn new(recorded: impl IntoIterator<Item = ContentHash>) -> Self {
        let hashes: HashSet<ContentHash> = recorded.into_iter().collect();
        let trim_at = (hashes.len() * 2).max(TRIM_FLOOR);
        Self { hashes, trim_at }
    }

    /// A content the task now holds. When the set has doubled, the contents for which
    /// `kept` says no blob is left are dropped (a content dropped while its blob was still
    /// on its way to the keeper has its next patch made from the asker's signature: slower,
    /// never wrong).
    pub(crate) fn insert(&mut self, hash: ContentHash, kept: impl Fn(&ContentHash) -> bool) {
        self.hashes.insert(hash);
        if self.hashes.len() >= self.trim_at {
            self.hashes.retain(|h| *h == hash || kept(h));
            self.trim_at = (self.hashes.len() * 2).max(TRIM_FLOOR);
        }
    }

    /// Whether the task has held `hash`.
    pub(crate) fn contains(&self, hash: &ContentHash) -> bool {
        self.hashes.contains(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn h(n: u32) -> ContentHash {
        ContentHash::of(&n.to_le_bytes())
    }

    #[test]
    fn only_what_the_task_held_is_held() {
        let mut held = Held::new([h(1)]);
        held.insert(h(2), |_| true);
        assert!(held.contains(&h(1)) && held.contains(&h(2)));
        assert!(!held.contains(&h(3)));
    }

    #[test]
    fn contents_whose_blob_is_gone_are_trimmed_once_the_set_doubled() {
        let mut held = Held::new([]);
        // Only even contents keep a blob.
        let even: HashSet<ContentHash> = (0..TRIM_FLOOR as u32).step_by(2).map(h).collect();
        let kept = |x: &ContentHash| even.contains(x);
        for n in 0..TRIM_FLOOR as u32 - 1 {
            held.insert(h(n), |_| true);
        }
        assert_eq!(held.hashes.len(), TRIM_FLOOR - 1);
        held.insert(h(TRIM_FLOOR as u32 - 1), kept);
        // The odd ones went, but the newest stays whatever its blob.
        assert_eq!(held.hashes.len(), TRIM_FLOOR / 2 + 1);
        assert!(held.contains(&h(0)) && !held.contains(&h(1)));
        assert!(held.contains(&h(TRIM_FLOOR as u32 - 1)));
        assert_eq!(held.trim_at, 2 * held.hashes.len());
    }
}
