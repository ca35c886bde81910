//! Who sent wrong bytes of which content, and how often: those are asked after the
//! others for it, the most suspected last, and a slow transfer never moves to one of them.

use std::collections::HashMap;

use qsync_base::{ContentHash, DeviceId};

/// The most contents with suspects remembered: beyond, the memory starts afresh.
const MAX_CONTENTS: usize = 4096;

/// Suspected senders, by content, with how many times each was among those to blame.
#[derive(Debug, Default)]
pub(crate) struct Suspects(HashMap<ContentHash, HashMap<DeviceId, u32>>);

impl Suspects {
    /// `device` sent bytes of `hash` that were not it (or was among those that did).
    pub(crate) fn add(&mut self, hash: ContentHash, device: DeviceId) {
        if self.0.len() >= MAX_CONTENTS {
            self.0.clear();
        }
        *self.0.entry(hash).or_default().entry(device).or_default() += 1;
    }

    /// Whether `device` ever sent wrong bytes of `hash`.
    pub(crate) fn of(&self, hash: ContentHash, device: &DeviceId) -> bool {
        self.0.get(&hash).is_some_and(|s| s.contains_key(device))
    }

    /// Order `holders` of `hash`: the unsuspected first, the most suspected last, the
    /// order kept among equals.
    pub(crate) fn rank(&self, hash: ContentHash, holders: &mut [DeviceId]) {
        if let Some(suspects) = self.0.get(&hash) {
            holders.sort_by_key(|h| suspects.get(h).copied().unwrap_or(0));
        }
    }
}
