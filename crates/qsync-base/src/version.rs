//! Version vectors: which changes of which devices a version of a path has seen.
//!
//! Every version of a path carries one. Each device counts its own changes to the path; a
//! version's vector holds, per device, the newest of that device's changes it includes.
//! Comparing two vectors says whether one version was made knowing the other (it is newer),
//! or neither (they were made concurrently: a conflict). This is what lets devices agree on
//! "newer" whatever order changes reach them in.
//!
//! ```
//! use qsync_base::{Causality, DeviceId, VersionVector};
//!
//! let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
//! let base = VersionVector::new().bumped(a);          // A writes
//! let edit_on_a = base.bumped(a);                      // A edits again
//! let edit_on_b = base.bumped(b);                      // B edits what it got
//! assert_eq!(edit_on_a.compare(&base), Causality::After);
//! assert_eq!(edit_on_a.compare(&edit_on_b), Causality::Concurrent);
//! let merged = edit_on_a.merged(&edit_on_b);
//! assert!(merged.dominates(&edit_on_a) && merged.dominates(&edit_on_b));
//! ```

use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};

use crate::DeviceId;

/// How two versions relate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Causality {
    /// The same version.
    Equal,
    /// This version is older: the other one has seen it.
    Before,
    /// This version is newer: it has seen the other one.
    After,
    /// Neither has seen the other.
    Concurrent,
}

/// Per device, how many of its changes a version includes. Devices at zero are not stored,
/// so two equal vectors are equal as values (and when serialized).
#[derive(Clone, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(from = "Vec<(DeviceId, u64)>", into = "Vec<(DeviceId, u64)>")]
pub struct VersionVector(BTreeMap<DeviceId, u64>);

impl VersionVector {
    /// The empty vector: the version of a path nobody has changed.
    pub fn new() -> Self {
        Self::default()
    }

    /// Whether no device has a change in it.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// `device`'s counter (0 when absent).
    pub fn get(&self, device: &DeviceId) -> u64 {
        self.0.get(device).copied().unwrap_or(0)
    }

    /// The counters, by device.
    pub fn iter(&self) -> impl Iterator<Item = (&DeviceId, u64)> {
        self.0.iter().map(|(d, c)| (d, *c))
    }

    /// The version of a change `device` makes on top of this one.
    pub fn bumped(&self, device: DeviceId) -> Self {
        let mut next = self.clone();
        let counter = next.0.entry(device).or_insert(0);
        *counter = counter.saturating_add(1);
        next
    }

    /// The smallest version that has seen both.
    pub fn merged(&self, other: &Self) -> Self {
        let mut out = self.clone();
        for (device, counter) in other.iter() {
            let mine = out.0.entry(*device).or_insert(0);
            *mine = (*mine).max(counter);
        }
        out
    }

    /// This version cut to at most `n` devices: the `n` with the largest counters (the
    /// larger device id first among equal counters), the same on every device.
    ///
    /// Cutting keeps what matters for deciding: when `other` names at most `n` devices and
    /// this version has seen it, the cut version is never older than `other` (it is newer,
    /// equal, or concurrent, and the sync rules settle equal and concurrent versions
    /// without losing either content). Only versions a linked device filled with made-up
    /// devices ever need it.
    pub fn pruned(mut self, n: usize) -> Self {
        if self.0.len() > n {
            let mut entries: Vec<(DeviceId, u64)> = self.0.into_iter().collect();
            entries.sort_by(|(da, ca), (db, cb)| cb.cmp(ca).then_with(|| db.cmp(da)));
            entries.truncate(n);
            self.0 = entries.into_iter().collect();
        }
        self
    }

    /// How this version relates to `other`.
    pub fn compare(&self, other: &Self) -> Causality {
        let mut ordering = Ordering::Equal;
        let devices = self.0.keys().chain(other.0.keys());
        for device in devices {
            match (self.get(device).cmp(&other.get(device)), ordering) {
                (Ordering::Equal, _) => {}
                (o, Ordering::Equal) => ordering = o,
                (o, current) if o != current => return Causality::Concurrent,
                _ => {}
            }
        }
        match ordering {
            Ordering::Equal => Causality::Equal,
            Ordering::Less => Causality::Before,
            Ordering::Greater => Causality::After,
        }
    }

    /// Whether this version has seen `other` (newer or equal).
    pub fn dominates(&self, other: &Self) -> bool {
        matches!(self.compare(other), Causality::Equal | Causality::After)
    }
}

impl From<Vec<(DeviceId, u64)>> for VersionVector {
    fn from(counters: Vec<(DeviceId, u64)>) -> Self {
        let mut map = BTreeMap::new();
        for (device, counter) in counters {
            if counter > 0 {
                let slot = map.entry(device).or_insert(0);
                *slot = counter.max(*slot);
            }
        }
        Self(map)
    }
}

impl From<VersionVector> for Vec<(DeviceId, u64)> {
    fn from(vector: VersionVector) -> Self {
        vector.0.into_iter().collect()
    }
}

impl fmt::Debug for VersionVector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (device, counter)) in self.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{}:{counter}", device.short())?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use proptest::prelude::*;

    fn vector() -> impl Strategy<Value = VersionVector> {
        proptest::collection::vec((0u8..4, 0u64..4), 0..5).prop_map(|pairs| {
            pairs
                .into_iter()
                .map(|(d, c)| (DeviceId::from_bytes([d; 32]), c))
                .collect::<Vec<_>>()
                .into()
        })
    }

    proptest! {
        #[test]
        fn compare_is_antisymmetric_and_merge_is_the_least_upper_bound(a in vector(), b in vector(), c in vector()) {
            let flipped = match a.compare(&b) {
                Causality::Before => Causality::After,
                Causality::After => Causality::Before,
                other => other,
            };
            prop_assert_eq!(b.compare(&a), flipped);
            prop_assert_eq!(a.compare(&b) == Causality::Equal, a == b);
            let m = a.merged(&b);
            prop_assert!(m.dominates(&a) && m.dominates(&b));
            prop_assert_eq!(m.clone(), b.merged(&a));
            if c.dominates(&a) && c.dominates(&b) {
                prop_assert!(c.dominates(&m));
            }
            let d = DeviceId::from_bytes([9; 32]);
            prop_assert_eq!(a.bumped(d).compare(&a), Causality::After);
        }

        #[test]
        fn a_cut_version_is_never_older_than_one_it_had_seen(a in vector(), b in vector(), n in 1usize..4) {
            let a = a.pruned(n);
            let newer = a.merged(&b).pruned(n);
            prop_assert!(newer.iter().count() <= n);
            prop_assert_ne!(newer.compare(&a), Causality::Before);
            // Cutting again changes nothing, and the cut of a join is the same whatever order.
            prop_assert_eq!(newer.clone().pruned(n), newer.clone());
            prop_assert_eq!(b.pruned(n).merged(&a).pruned(n), newer);
        }

        #[test]
        fn serialization_round_trips_and_drops_zeros(a in vector()) {
            let bytes = postcard::to_allocvec(&a).unwrap();
            prop_assert_eq!(postcard::from_bytes::<VersionVector>(&bytes).unwrap(), a);
        }
    }
}
