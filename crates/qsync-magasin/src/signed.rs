//! Signed indexes: a publisher's key, the signature beside `index.json`, and checking it.
//!
//! A store's `index.json` is signed as the exact bytes served, so nothing has to agree on a
//! canonical JSON form. The signature lives beside it in `index.json.sig`, a small JSON
//! object:
//!
//! ```json
//! { "format": "qsync-store-signature/1",
//!   "key": "<the publisher's Ed25519 public key, base64>",
//!   "signature": "<Ed25519 signature, base64>" }
//! ```
//!
//! The signed message is [`CONTEXT`] followed by the index's bytes, so a signature made for
//! something else with the same key can never pass for an index's. The key in the file only
//! says which key signed: whether that key is the store's is decided by the client's pins
//! (`trust.rs`), never by the file.

use std::fmt;
use std::path::Path;

use data_encoding::BASE64;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair, UnparsedPublicKey, ED25519};
use serde::{Deserialize, Serialize};

use crate::{Index, MagasinError};

/// What is signed before the index's bytes.
pub const CONTEXT: &[u8] = b"qsync-store-index/1\n";

/// The `format` of a signature file.
const SIGNATURE_FORMAT: &str = "qsync-store-signature/1";

/// The first line of a publisher's key file.
const KEY_HEADER: &str = "qsync-store-key/1";

/// The largest signature file read.
pub(crate) const MAX_SIGNATURE: u64 = 4096;

/// A publisher's Ed25519 public key.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PublicKey([u8; 32]);

impl PublicKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        Self(bytes)
    }

    /// The key's 32 bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// The key in base64, as written in signature and trust files.
    pub fn to_base64(&self) -> String {
        BASE64.encode(&self.0)
    }

    /// Read a key written in base64.
    pub fn from_base64(text: &str) -> Option<Self> {
        let bytes = BASE64.decode(text.trim().as_bytes()).ok()?;
        Some(Self(bytes.try_into().ok()?))
    }

    /// What a person compares: the first 16 bytes of the key's SHA-256, in hexadecimal,
    /// in groups of four digits (`3f2a 9c01 …`, 39 characters).
    pub fn fingerprint(&self) -> String {
        let digest = ring::digest::digest(&ring::digest::SHA256, &self.0);
        let hex: Vec<String> = digest.as_ref()[..16]
            .chunks(2)
            .map(|pair| format!("{:02x}{:02x}", pair[0], pair[1]))
            .collect();
        hex.join(" ")
    }

    /// Whether `text` (spaces, colons and case ignored) is this key's fingerprint.
    pub fn matches_fingerprint(&self, text: &str) -> bool {
        let given: String = text
            .chars()
            .filter(|c| !c.is_whitespace() && *c != ':')
            .collect::<String>()
            .to_ascii_lowercase();
        given == self.fingerprint().replace(' ', "")
    }

    /// Whether `signature` is this key's signature of an index made of `index` bytes.
    pub fn verifies(&self, index: &[u8], signature: &[u8]) -> bool {
        let mut message = Vec::with_capacity(CONTEXT.len() + index.len());
        message.extend_from_slice(CONTEXT);
        message.extend_from_slice(index);
        UnparsedPublicKey::new(&ED25519, &self.0)
            .verify(&message, signature)
            .is_ok()
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.fingerprint())
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fingerprint())
    }
}

/// A signature file's content, parsed (its signature not yet checked).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signature {
    /// The key that says it signed.
    pub key: PublicKey,
    /// The signature's 64 bytes.
    pub signature: Vec<u8>,
}

#[derive(Serialize, Deserialize)]
struct RawSignature {
    format: String,
    key: String,
    signature: String,
}

impl Signature {
    /// Parse a signature file; `at` names it, for errors.
    pub fn parse(bytes: &[u8], at: &str) -> Result<Self, MagasinError> {
        let invalid = |problem: &str| MagasinError::Signature {
            at: at.to_owned(),
            problem: problem.to_owned(),
        };
        let raw: RawSignature = serde_json::from_slice(bytes)
            .map_err(|e| invalid(&format!("it is not a signature file: {e}")))?;
        if raw.format != SIGNATURE_FORMAT {
            return Err(invalid(&format!(
                "its format is `{}`, not {SIGNATURE_FORMAT}",
                raw.format.chars().take(40).collect::<String>()
            )));
        }
        let key = PublicKey::from_base64(&raw.key)
            .ok_or_else(|| invalid("its key is not 32 bytes of base64"))?;
        let signature = BASE64
            .decode(raw.signature.trim().as_bytes())
            .ok()
            .filter(|s| s.len() == 64)
            .ok_or_else(|| invalid("its signature is not 64 bytes of base64"))?;
        Ok(Self { key, signature })
    }

    /// The signature file's text.
    pub fn to_json(&self) -> String {
        let raw = RawSignature {
            format: SIGNATURE_FORMAT.to_owned(),
            key: self.key.to_base64(),
            signature: BASE64.encode(&self.signature),
        };
        let mut text = serde_json::to_string_pretty(&raw).unwrap_or_default();
        text.push('\n');
        text
    }
}

/// A publisher's secret key (an Ed25519 key pair).
pub struct PublisherKey(Ed25519KeyPair);

impl fmt::Debug for PublisherKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublisherKey({})", self.public().fingerprint())
    }
}

impl PublisherKey {
    /// Make a new key and write it to `path`, readable by its owner only. An existing file
    /// is never overwritten: losing a publisher key means every client must trust a new one.
    pub fn create(path: &Path) -> Result<Self, MagasinError> {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let failed = || MagasinError::Key {
            at: path.to_owned(),
            problem: "the system's random source failed".into(),
        };
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).map_err(|_| failed())?;
        let pair = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).map_err(|_| failed())?;
        let text = format!("{KEY_HEADER}\n{}\n", BASE64.encode(pkcs8.as_ref()));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(path)
            .map_err(|e| MagasinError::io("create the key file", path, e))?;
        file.write_all(text.as_bytes())
            .and_then(|()| file.sync_all())
            .map_err(|e| MagasinError::io("write the key file", path, e))?;
        Ok(Self(pair))
    }

    /// Read the key written by [`PublisherKey::create`].
    pub fn load(path: &Path) -> Result<Self, MagasinError> {
        let invalid = |problem: &str| MagasinError::Key {
            at: path.to_owned(),
            problem: problem.to_owned(),
        };
        let text = std::fs::read_to_string(path)
            .map_err(|e| MagasinError::io("read the key file", path, e))?;
        let mut lines = text.lines();
        if lines.next() != Some(KEY_HEADER) {
            return Err(invalid("it is not a QSync store key"));
        }
        let pkcs8 = lines
            .next()
            .and_then(|l| BASE64.decode(l.trim().as_bytes()).ok())
            .ok_or_else(|| invalid("its key is not base64"))?;
        let pair = Ed25519KeyPair::from_pkcs8(&pkcs8)
            .map_err(|_| invalid("its key is not an Ed25519 key"))?;
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(path)
            .map_err(|e| MagasinError::io("read the key file", path, e))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            return Err(invalid(&format!(
                "others can read it (mode {:o}): anyone who can sign as you can ship code to your store's users; `chmod 600` it",
                mode & 0o777
            )));
        }
        Ok(Self(pair))
    }

    /// The public half, which clients pin.
    pub fn public(&self) -> PublicKey {
        let mut bytes = [0u8; 32];
        bytes.copy_from_slice(self.0.public_key().as_ref());
        PublicKey(bytes)
    }

    /// Sign the index made of `index` bytes.
    pub fn sign(&self, index: &[u8]) -> Signature {
        let mut message = Vec::with_capacity(CONTEXT.len() + index.len());
        message.extend_from_slice(CONTEXT);
        message.extend_from_slice(index);
        Signature {
            key: self.public(),
            signature: self.0.sign(&message).as_ref().to_vec(),
        }
    }
}

/// An index whose signature verified: the index, and the key that signed it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SignedIndex {
    /// The index, checked.
    pub index: Index,
    /// The key that signed it (whether it is the store's is for the pins to say).
    pub key: PublicKey,
}

impl SignedIndex {
    /// Check `index` bytes against the bytes of their signature file (`None`: there is
    /// none), then parse the index. `at` names the index, for errors. Nothing of the index
    /// is parsed before its signature verified.
    pub fn verify(index: &[u8], signature: Option<&[u8]>, at: &str) -> Result<Self, MagasinError> {
        let signature = signature.ok_or_else(|| MagasinError::Unsigned { at: at.to_owned() })?;
        let signature = Signature::parse(signature, &format!("{at}.sig"))?;
        if !signature.key.verifies(index, &signature.signature) {
            return Err(MagasinError::Signature {
                at: at.to_owned(),
                problem: format!(
                    "the index does not verify with the key its signature file names ({}): it was changed after it was signed, or the signature is forged",
                    signature.key.fingerprint()
                ),
            });
        }
        let text = std::str::from_utf8(index).map_err(|_| MagasinError::Index {
            at: at.to_owned(),
            problem: "it is not UTF-8 text".into(),
        })?;
        Ok(Self {
            index: Index::parse(text, at)?,
            key: signature.key,
        })
    }
}

/// The SHA-256 of `bytes` in lower-case hexadecimal.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Lower-case hexadecimal.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_verifies_only_its_index_and_key() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let key = PublisherKey::create(&path).unwrap();
        assert!(PublisherKey::create(&path).is_err(), "never overwritten");
        let again = PublisherKey::load(&path).unwrap();
        assert_eq!(again.public(), key.public());

        let index = br#"{"sequence":1}"#;
        let signature = key.sign(index);
        let parsed = Signature::parse(signature.to_json().as_bytes(), "t").unwrap();
        assert_eq!(parsed, signature);
        assert!(parsed.key.verifies(index, &parsed.signature));
        assert!(!parsed.key.verifies(br#"{"sequence":2}"#, &parsed.signature));
        let other = PublisherKey::create(&dir.path().join("k2")).unwrap();
        assert!(!other.public().verifies(index, &parsed.signature));
        // the index's bytes signed without the context do not pass
        let text = std::fs::read_to_string(&path).unwrap();
        let pkcs8 = BASE64
            .decode(text.lines().nth(1).unwrap().as_bytes())
            .unwrap();
        let bare = Ed25519KeyPair::from_pkcs8(&pkcs8).unwrap().sign(index);
        assert!(!parsed.key.verifies(index, bare.as_ref()));
    }

    #[test]
    fn fingerprints_read_as_people_write_them() {
        let key = PublicKey::from_bytes([7; 32]);
        let fp = key.fingerprint();
        assert_eq!(fp.len(), 39);
        assert!(key.matches_fingerprint(&fp.to_uppercase().replace(' ', ":")));
        assert!(!key.matches_fingerprint(&fp[..30]));
        assert_eq!(PublicKey::from_base64(&key.to_base64()), Some(key));
    }

    #[test]
    fn broken_signature_files_are_errors() {
        for text in [
            "",
            "{}",
            r#"{"format":"x","key":"","signature":""}"#,
            r#"{"format":"qsync-store-signature/1","key":"AAAA","signature":""}"#,
        ] {
            assert!(Signature::parse(text.as_bytes(), "t").is_err(), "{text}");
        }
    }
}
