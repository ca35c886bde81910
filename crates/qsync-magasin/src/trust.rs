//! The stores this device trusts: for each store, the publisher key pinned the first time it
//! was used (after the person confirmed its fingerprint, or was given it), and the newest
//! index sequence seen from it.
//!
//! [`Trust::admit`] is the whole rule: an index signed by another key than the pinned one is
//! refused (the store's key changed, or someone in the middle re-signed it), and so is an
//! index older than one already seen (someone serving a stale index, with an app version
//! since fixed). A store never used before is [`Admission::FirstUse`]: the caller asks the
//! person, then [`Trust::pin`]s.
//!
//! The file is JSON, written whole to a temporary file and renamed, so a crash leaves the old
//! pins or the new ones. A file that cannot be read is an error, never taken for "no pins":
//! silently forgetting pins would turn every store back into a first use.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::signed::{PublicKey, SignedIndex};
use crate::MagasinError;

/// One trusted store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Pin {
    /// The publisher key, base64.
    key: String,
    /// The newest index sequence seen.
    sequence: u64,
}

#[derive(Debug, Default, Serialize, Deserialize)]
struct TrustFile {
    #[serde(default)]
    stores: BTreeMap<String, Pin>,
}

/// What [`Trust::admit`] decided about an index whose signature verified.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admission {
    /// Signed by the pinned key, and not older than what was seen before.
    Pinned,
    /// No key is pinned for this store yet: ask the person about the key's fingerprint.
    FirstUse,
}

/// The pins of this device, read from and saved to one file.
#[derive(Debug)]
pub struct Trust {
    path: PathBuf,
    file: TrustFile,
}

impl Trust {
    /// Read the pins in `path` (none if the file does not exist yet).
    pub fn load(path: &Path) -> Result<Self, MagasinError> {
        let file = match std::fs::read(path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| MagasinError::Trust {
                at: path.to_owned(),
                problem: format!("it is not a trust file ({e}); fix or remove it"),
            })?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => TrustFile::default(),
            Err(e) => return Err(MagasinError::io("read", path, e)),
        };
        Ok(Self {
            path: path.to_owned(),
            file,
        })
    }

    /// Write the pins back.
    pub fn save(&self) -> Result<(), MagasinError> {
        use std::io::Write;
        if let Some(parent) = self.path.parent() {
            std::fs::create_dir_all(parent).map_err(|e| MagasinError::io("create", parent, e))?;
        }
        let partial = self.path.with_extension("json.part");
        let text = serde_json::to_string_pretty(&self.file).unwrap_or_default();
        let write = || -> std::io::Result<()> {
            let mut file = std::fs::File::create(&partial)?;
            file.write_all(text.as_bytes())?;
            file.sync_all()?;
            std::fs::rename(&partial, &self.path)
        };
        write().map_err(|e| MagasinError::io("write", &self.path, e))
    }

    /// The key pinned for `store`, and the newest sequence seen from it.
    pub fn pinned(&self, store: &str) -> Option<(PublicKey, u64)> {
        let pin = self.file.stores.get(store)?;
        Some((PublicKey::from_base64(&pin.key)?, pin.sequence))
    }

    /// The stores trusted, by name, with their key.
    pub fn stores(&self) -> Vec<(String, Option<PublicKey>)> {
        self.file
            .stores
            .iter()
            .map(|(name, pin)| (name.clone(), PublicKey::from_base64(&pin.key)))
            .collect()
    }

    /// Decide about `signed`, an index of `store` whose signature verified.
    pub fn admit(&self, store: &str, signed: &SignedIndex) -> Result<Admission, MagasinError> {
        let Some(pin) = self.file.stores.get(store) else {
            return Ok(Admission::FirstUse);
        };
        let pinned = PublicKey::from_base64(&pin.key).ok_or_else(|| MagasinError::Trust {
            at: self.path.clone(),
            problem: format!("the key pinned for {store} is not a key; fix or remove it"),
        })?;
        if pinned != signed.key {
            return Err(MagasinError::KeyChanged {
                store: store.to_owned(),
                pinned: pinned.fingerprint(),
                now: signed.key.fingerprint(),
            });
        }
        if signed.index.sequence < pin.sequence {
            return Err(MagasinError::Rollback {
                store: store.to_owned(),
                seen: pin.sequence,
                got: signed.index.sequence,
            });
        }
        Ok(Admission::Pinned)
    }

    /// Pin `key` for `store` (replacing any pin), with `sequence` seen.
    pub fn pin(&mut self, store: &str, key: &PublicKey, sequence: u64) {
        self.file.stores.insert(
            store.to_owned(),
            Pin {
                key: key.to_base64(),
                sequence,
            },
        );
    }

    /// Record that `signed`, admitted as [`Admission::Pinned`], was seen: its sequence is now
    /// the oldest one accepted. Returns whether anything changed (then save).
    pub fn saw(&mut self, store: &str, signed: &SignedIndex) -> bool {
        match self.file.stores.get_mut(store) {
            Some(pin) if pin.sequence < signed.index.sequence => {
                pin.sequence = signed.index.sequence;
                true
            }
            _ => false,
        }
    }

    /// Forget `store`'s pin. Returns whether there was one.
    pub fn forget(&mut self, store: &str) -> bool {
        self.file.stores.remove(store).is_some()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Index, PublisherKey};

    fn signed(key: &PublicKey, sequence: u64) -> SignedIndex {
        SignedIndex {
            index: Index {
                sequence,
                ..Index::default()
            },
            key: *key,
        }
    }

    #[test]
    fn pins_hold_keys_and_sequences_across_saves() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted.json");
        let key = PublisherKey::create(&dir.path().join("a"))
            .unwrap()
            .public();
        let other = PublisherKey::create(&dir.path().join("b"))
            .unwrap()
            .public();
        let mut trust = Trust::load(&path).unwrap();
        assert_eq!(
            trust.admit("s", &signed(&key, 3)).unwrap(),
            Admission::FirstUse
        );
        trust.pin("s", &key, 3);
        trust.save().unwrap();

        let mut trust = Trust::load(&path).unwrap();
        assert_eq!(trust.pinned("s"), Some((key, 3)));
        assert_eq!(
            trust.admit("s", &signed(&key, 3)).unwrap(),
            Admission::Pinned
        );
        let err = trust
            .admit("s", &signed(&other, 9))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&key.fingerprint()) && err.contains(&other.fingerprint()),
            "{err}"
        );
        let err = trust.admit("s", &signed(&key, 2)).unwrap_err();
        assert!(
            matches!(
                err,
                MagasinError::Rollback {
                    seen: 3,
                    got: 2,
                    ..
                }
            ),
            "{err}"
        );
        assert!(trust.saw("s", &signed(&key, 5)));
        assert!(!trust.saw("s", &signed(&key, 4)));
        assert!(trust.admit("s", &signed(&key, 4)).is_err());
        assert!(trust.forget("s"));
        assert_eq!(
            trust.admit("s", &signed(&other, 1)).unwrap(),
            Admission::FirstUse
        );
    }

    #[test]
    fn a_damaged_trust_file_is_an_error_not_a_blank_slate() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("trusted.json");
        std::fs::write(&path, "{ not json").unwrap();
        let err = Trust::load(&path).unwrap_err().to_string();
        assert!(err.contains("not a trust file"), "{err}");
    }
}
