//! Making a store: `qsync store init`, `add` and `sign`.
//!
//! A store folder holds `index.json`, its signature `index.json.sig`, and the apps' archives.
//! The publisher's secret key is kept outside the folder (by default `DIR.key` beside it),
//! because the folder is what gets served or copied to a web server.
//!
//! - [`init_store`] makes the folder, an empty index and the key.
//! - [`add_app`] checks a description (and its archive: kind, limits, no links), copies the
//!   archive in, and puts the entry in the index, replacing one of the same name. The old
//!   signature is removed: an index being edited is unsigned, so clients refuse it rather
//!   than see half an update.
//! - [`sign_store`] pins every local archive's size and SHA-256 into its entry, makes the
//!   sequence one more than the last, refuses an index with an entry clients would reject,
//!   and writes the signature.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use qsync_apps::archive::{self, Limits};
use qsync_apps::{Grapin, ToutEnUn};
use serde_json::Value;

use crate::signed::{hex, PublicKey, PublisherKey, Signature};
use crate::{Index, MagasinError};

/// The signature's file name, beside `index.json`.
pub const SIGNATURE_FILE: &str = "index.json.sig";

const INDEX_FILE: &str = "index.json";

/// A description to add to a store.
#[derive(Debug, Clone)]
pub enum Described {
    /// A tout-en-un app's JSON and its archive.
    ToutEnUn {
        /// The description (`ToutEnUnConfig`).
        json: String,
        /// The archive file to publish.
        archive: PathBuf,
    },
    /// A grapin's JSON.
    Grapin {
        /// The description (`GrapinConfig`).
        json: String,
    },
}

/// What [`add_app`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Added {
    /// The app's name.
    pub name: String,
    /// Whether an entry of that name was replaced.
    pub replaced: bool,
    /// The archive's file name in the store, its size and SHA-256, for a tout-en-un app.
    pub archive: Option<(String, u64, String)>,
}

/// What [`sign_store`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Signed {
    /// The new index's sequence.
    pub sequence: u64,
    /// The key that signed.
    pub key: PublicKey,
    /// Entries in the index.
    pub entries: usize,
    /// The key of the signature replaced, when it was another one (clients that pinned it
    /// will refuse the new index).
    pub other_key_before: Option<PublicKey>,
}

fn publish(problem: impl Into<String>) -> MagasinError {
    MagasinError::Publish(problem.into())
}

/// The key file used for the store folder `dir` when none is named: in `keys` (the
/// publisher's own folder of keys, never served), named after the folder and a hash of its
/// real path, so two stores named alike get different keys.
pub fn default_key_path(keys: &Path, dir: &Path) -> PathBuf {
    let real = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
    let name: String = real
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "store".into())
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let hash = crate::sha256_hex(real.as_os_str().as_encoded_bytes());
    keys.join(format!("{name}-{}.key", &hash[..8]))
}

/// Refuse a key file inside the store folder (which is what gets served or published).
fn key_outside(dir: &Path, key: &Path) -> Result<(), MagasinError> {
    let real_dir = std::fs::canonicalize(dir).map_err(|e| MagasinError::io("read", dir, e))?;
    let key_parent = key
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let real_key_parent = std::fs::canonicalize(key_parent)
        .map_err(|e| MagasinError::io("find the folder of", key, e))?;
    if real_key_parent.starts_with(&real_dir) {
        return Err(publish(format!(
            "the key {} is inside the store folder, which is served: keep it outside",
            key.display()
        )));
    }
    Ok(())
}

/// Make the store folder `dir` (missing or empty) with an empty index, and a new publisher
/// key in `key` (which must not exist yet, nor be inside `dir`).
pub fn init_store(dir: &Path, key: &Path) -> Result<PublicKey, MagasinError> {
    if dir.exists() {
        let mut entries = std::fs::read_dir(dir).map_err(|e| MagasinError::io("read", dir, e))?;
        if entries.next().is_some() {
            return Err(publish(format!(
                "{} is not empty: a new store needs an empty or new folder",
                dir.display()
            )));
        }
    }
    std::fs::create_dir_all(dir).map_err(|e| MagasinError::io("create", dir, e))?;
    if let Some(parent) = key.parent().filter(|p| !p.as_os_str().is_empty()) {
        std::fs::create_dir_all(parent).map_err(|e| MagasinError::io("create", parent, e))?;
    }
    key_outside(dir, key)?;
    let pair = PublisherKey::create(key)?;
    write_index(
        dir,
        &serde_json::json!({"sequence": 0, "tout_en_un_configs": [], "grapin_configs": []}),
    )?;
    Ok(pair.public())
}

fn read_index(dir: &Path) -> Result<Value, MagasinError> {
    let path = dir.join(INDEX_FILE);
    let text = std::fs::read_to_string(&path).map_err(|e| MagasinError::io("read", &path, e))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| MagasinError::Index {
        at: path.display().to_string(),
        problem: e.to_string(),
    })?;
    if !value.is_object() {
        return Err(MagasinError::Index {
            at: path.display().to_string(),
            problem: "it must be a JSON object".into(),
        });
    }
    Ok(value)
}

/// Write `bytes` to `path` whole or not at all.
fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), MagasinError> {
    // Hidden, so that the server never serves a half-written file.
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let partial = path.with_file_name(format!(".{name}.part"));
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::File::create(&partial)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&partial, path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&partial);
        MagasinError::io("write", path, e)
    })
}

fn write_index(dir: &Path, value: &Value) -> Result<Vec<u8>, MagasinError> {
    let mut text = serde_json::to_string_pretty(value).unwrap_or_default();
    text.push('\n');
    write_atomically(&dir.join(INDEX_FILE), text.as_bytes())?;
    Ok(text.into_bytes())
}

fn remove_signature(dir: &Path) -> Result<(), MagasinError> {
    let path = dir.join(SIGNATURE_FILE);
    match std::fs::remove_file(&path) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
            Err(MagasinError::io("remove", &path, e))
        }
        _ => Ok(()),
    }
}

/// The size and SHA-256 of the file at `path`.
fn measure(path: &Path) -> Result<(u64, String), MagasinError> {
    let mut file = std::fs::File::open(path).map_err(|e| MagasinError::io("open", path, e))?;
    let mut hash = ring::digest::Context::new(&ring::digest::SHA256);
    let mut buf = vec![0u8; 256 << 10];
    let mut size = 0u64;
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| MagasinError::io("read", path, e))?;
        if n == 0 {
            break;
        }
        hash.update(&buf[..n]);
        size += n as u64;
    }
    Ok((size, hex(hash.finish().as_ref())))
}

/// The list of `kind` entries in an index value, created if missing.
fn list<'a>(index: &'a mut Value, kind: &str) -> Result<&'a mut Vec<Value>, MagasinError> {
    let object = index
        .as_object_mut()
        .ok_or_else(|| publish("the index is not a JSON object"))?;
    object
        .entry(kind)
        .or_insert_with(|| Value::Array(Vec::new()))
        .as_array_mut()
        .ok_or_else(|| publish(format!("the index's {kind} is not a list")))
}

/// Put `entry` in the `kind` list, replacing the entry named `name` (any case) in either
/// list. Returns whether one was replaced.
fn put(index: &mut Value, kind: &str, name: &str, entry: Value) -> Result<bool, MagasinError> {
    let mut replaced = false;
    for other in ["tout_en_un_configs", "grapin_configs"] {
        let entries = list(index, other)?;
        let before = entries.len();
        entries.retain(|e| {
            !e.get("AppName")
                .and_then(Value::as_str)
                .is_some_and(|n| n.eq_ignore_ascii_case(name))
        });
        replaced |= entries.len() != before;
    }
    list(index, kind)?.push(entry);
    Ok(replaced)
}

/// Whether `name` may be an archive's file name in a store folder.
fn archive_name_ok(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('.')
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && name != INDEX_FILE
        && name != SIGNATURE_FILE
}

/// The app whose entry downloads `file_name`, if any.
fn archive_owner(index: &Value, file_name: &str) -> Option<String> {
    index
        .get("tout_en_un_configs")?
        .as_array()?
        .iter()
        .find(|e| e.get("AppDownloadUrl").and_then(Value::as_str) == Some(file_name))
        .and_then(|e| e.get("AppName")?.as_str().map(str::to_owned))
}

/// Add (or replace) an app in the store folder `dir`. The index is left unsigned: run
/// [`sign_store`] once every change is in.
pub fn add_app(dir: &Path, described: Described) -> Result<Added, MagasinError> {
    let mut index = read_index(dir)?;
    let invalid = |e: qsync_apps::AppsError| publish(e.to_string());
    let added = match described {
        Described::Grapin { json } => {
            let grapin = Grapin::from_json(&json).map_err(invalid)?;
            let name = grapin.name().as_str().to_owned();
            let entry: Value =
                serde_json::from_str(&grapin.to_json()).map_err(|e| publish(e.to_string()))?;
            let replaced = put(&mut index, "grapin_configs", &name, entry)?;
            Added {
                name,
                replaced,
                archive: None,
            }
        }
        Described::ToutEnUn { json, archive } => {
            let app = ToutEnUn::from_json(&json).map_err(invalid)?;
            let name = app.name().as_str().to_owned();
            // Clients refuse what does not pass these checks: refuse it here first.
            archive::check(&archive, &Limits::default()).map_err(invalid)?;
            let file_name = archive
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| archive_name_ok(n))
                .ok_or_else(|| {
                    publish(format!(
                        "{}: an archive's file name may hold only letters, digits, `.`, `_` and `-`, may not start with a dot, and may not be the index's",
                        archive.display()
                    ))
                })?
                .to_owned();
            if let Some(owner) = archive_owner(&index, &file_name) {
                if !owner.eq_ignore_ascii_case(&name) {
                    return Err(publish(format!(
                        "{file_name} is already {owner}'s archive in this store: rename the file"
                    )));
                }
            }
            let target = dir.join(&file_name);
            let same = std::fs::canonicalize(&archive).ok() == std::fs::canonicalize(&target).ok();
            if !same {
                let partial = dir.join(format!(".{file_name}.part"));
                std::fs::copy(&archive, &partial)
                    .and_then(|_| std::fs::File::open(&partial)?.sync_all())
                    .and_then(|()| std::fs::rename(&partial, &target))
                    .map_err(|e| {
                        let _ = std::fs::remove_file(&partial);
                        MagasinError::io("copy the archive to", &target, e)
                    })?;
            }
            let (size, sha256) = measure(&target)?;
            let app = app
                .with_archive(&file_name, size, &sha256)
                .map_err(invalid)?;
            let entry: Value =
                serde_json::from_str(&app.to_json()).map_err(|e| publish(e.to_string()))?;
            let replaced = put(&mut index, "tout_en_un_configs", &name, entry)?;
            Added {
                name,
                replaced,
                archive: Some((file_name, size, sha256)),
            }
        }
    };
    remove_signature(dir)?;
    write_index(dir, &index)?;
    Ok(added)
}

/// Whether a download address names a file of the store folder, and which.
fn local_archive(dir: &Path, url: &str) -> Option<PathBuf> {
    if url.contains("://") || url.starts_with('/') {
        return None;
    }
    let parts: Vec<&str> = url.split('/').collect();
    if parts
        .iter()
        .any(|p| p.is_empty() || *p == "." || *p == ".." || p.starts_with('.'))
    {
        return None;
    }
    Some(parts.iter().fold(dir.to_path_buf(), |d, p| d.join(p)))
}

/// Sign the store folder `dir` with the key in `key`.
pub fn sign_store(dir: &Path, key: &Path) -> Result<Signed, MagasinError> {
    key_outside(dir, key)?;
    let pair = PublisherKey::load(key)?;
    let mut index = read_index(dir)?;
    for entry in list(&mut index, "tout_en_un_configs")?.iter_mut() {
        let name = entry
            .get("AppName")
            .and_then(Value::as_str)
            .unwrap_or("?")
            .to_owned();
        let url = entry
            .get("AppDownloadUrl")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_owned();
        match local_archive(dir, &url) {
            Some(path) if path.is_file() => {
                let (size, sha256) = measure(&path)?;
                let recorded = (
                    entry.get("AppDownloadSize").and_then(Value::as_u64),
                    entry.get("AppDownloadSHA256").and_then(Value::as_str),
                );
                // What `add` recorded is what the publisher checked: a file changed since
                // (by anyone who can write to the folder) is not signed unseen.
                match recorded {
                    (Some(s), Some(h)) if s == size && h.eq_ignore_ascii_case(&sha256) => {}
                    (None, None) => {}
                    _ => {
                        return Err(publish(format!(
                            "{name}'s archive {} changed since `qsync store add` recorded it: add it again if the change is yours",
                            path.display()
                        )))
                    }
                }
                archive::check(&path, &Limits::default())
                    .map_err(|e| publish(format!("{name}: {e}")))?;
                if let Some(object) = entry.as_object_mut() {
                    object.insert("AppDownloadSize".into(), size.into());
                    object.insert("AppDownloadSHA256".into(), sha256.into());
                }
            }
            Some(path) => {
                return Err(publish(format!(
                    "{name}'s archive {} is not in the store folder",
                    path.display()
                )))
            }
            None if entry.get("AppDownloadSHA256").is_none() => {
                return Err(publish(format!(
                    "{name}'s archive {url} is not in the store folder: write its AppDownloadSize and AppDownloadSHA256 in the entry"
                )))
            }
            None => {}
        }
    }
    let sequence = match index.get("sequence") {
        None => Some(1),
        Some(value) => value.as_u64().and_then(|n| n.checked_add(1)),
    }
    .ok_or_else(|| publish("the index's sequence is not a number below 2^64 - 1"))?;
    if let Some(object) = index.as_object_mut() {
        object.insert("sequence".into(), sequence.into());
    }
    let mut text = serde_json::to_string_pretty(&index).unwrap_or_default();
    text.push('\n');
    let checked = Index::parse(&text, &dir.join(INDEX_FILE).display().to_string())?;
    if !checked.rejected.is_empty() {
        let problems: Vec<String> = checked
            .rejected
            .iter()
            .map(|r| format!("{}: {}", r.at, r.problem))
            .collect();
        return Err(publish(format!(
            "not signed: clients would skip these entries; fix or remove them first:\n  {}",
            problems.join("\n  ")
        )));
    }
    let before = std::fs::read(dir.join(SIGNATURE_FILE))
        .ok()
        .and_then(|b| Signature::parse(&b, SIGNATURE_FILE).ok())
        .map(|s| s.key);
    // The index first, then its signature: in between, clients see a signature that does
    // not match and refuse, never a signed index that is not the one written.
    let bytes = write_index(dir, &index)?;
    let signature = pair.sign(&bytes);
    write_atomically(&dir.join(SIGNATURE_FILE), signature.to_json().as_bytes())?;
    Ok(Signed {
        sequence,
        key: pair.public(),
        entries: checked.entries.len(),
        other_key_before: before.filter(|k| *k != pair.public()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::SignedIndex;

    fn zip(dir: &Path) -> PathBuf {
        let path = dir.join("hello.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&path).unwrap());
        zip.start_file("run", zip::write::SimpleFileOptions::default())
            .unwrap();
        zip.write_all(b"#!/bin/sh\n").unwrap();
        zip.finish().unwrap();
        path
    }

    const HELLO: &str = r#"{"AppName":"Hello","AppDownloadUrl":"ignored.zip","AppLauncherPath":"run","AppSyncDataFolderPath":"data"}"#;
    const NOTES: &str =
        r#"{"AppName":"Notes","AppSyncDataFolderPath":"~/.notes","SupportedPlatforms":["Linux"]}"#;

    #[test]
    fn init_add_sign_makes_an_index_clients_accept() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("store");
        let key = default_key_path(&base.path().join("keys"), &dir);
        assert!(
            key.starts_with(base.path().join("keys")),
            "{}",
            key.display()
        );
        let public = init_store(&dir, &key).unwrap();
        assert!(
            init_store(&dir, &base.path().join("k2")).is_err(),
            "not empty"
        );

        let added = add_app(
            &dir,
            Described::ToutEnUn {
                json: HELLO.into(),
                archive: zip(base.path()),
            },
        )
        .unwrap();
        let (file, size, _) = added.archive.clone().unwrap();
        assert_eq!(file, "hello.zip");
        assert_eq!(std::fs::metadata(dir.join(&file)).unwrap().len(), size);
        add_app(&dir, Described::Grapin { json: NOTES.into() }).unwrap();
        assert!(!dir.join(SIGNATURE_FILE).exists());

        let signed = sign_store(&dir, &key).unwrap();
        assert_eq!((signed.sequence, signed.entries), (1, 2));
        assert_eq!(signed.key, public);
        let index = std::fs::read(dir.join("index.json")).unwrap();
        let sig = std::fs::read(dir.join(SIGNATURE_FILE)).unwrap();
        let verified = SignedIndex::verify(&index, Some(&sig), "t").unwrap();
        assert_eq!(verified.key, public);
        assert_eq!(verified.index.sequence, 1);
        assert_eq!(verified.index.entries.len(), 2);

        // replacing an entry; signing again moves the sequence on
        let again = add_app(&dir, Described::Grapin { json: NOTES.into() }).unwrap();
        assert!(again.replaced);
        assert_eq!(sign_store(&dir, &key).unwrap().sequence, 2);
        // another key: said so
        let other = base.path().join("other.key");
        PublisherKey::create(&other).unwrap();
        assert!(sign_store(&dir, &other).unwrap().other_key_before.is_some());
    }

    #[test]
    fn what_clients_would_refuse_is_refused_first() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("s");
        let key = base.path().join("s.key");
        init_store(&dir, &key).unwrap();
        let err = init_store(&base.path().join("t"), &base.path().join("t/k")).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        assert!(!base.path().join("t/k").exists());
        std::fs::copy(&key, dir.join("copied.key")).unwrap();
        let err = sign_store(&dir, &dir.join("copied.key")).unwrap_err();
        assert!(err.to_string().contains("outside"), "{err}");
        std::fs::remove_file(dir.join("copied.key")).unwrap();
        let junk = base.path().join("junk.zip");
        std::fs::write(&junk, b"not an archive").unwrap();
        let err = add_app(
            &dir,
            Described::ToutEnUn {
                json: HELLO.into(),
                archive: junk,
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("neither"), "{err}");
        let err = add_app(&dir, Described::Grapin { json: "{}".into() }).unwrap_err();
        assert!(err.to_string().contains("grapin"), "{err}");
        // names that would clobber the store's own files, or not download
        for bad in ["index.json", "a b.zip", "50%.zip", ".hidden.zip"] {
            let archive = base.path().join(bad);
            std::fs::copy(zip(base.path()), &archive).unwrap();
            let err = add_app(
                &dir,
                Described::ToutEnUn {
                    json: HELLO.into(),
                    archive,
                },
            )
            .unwrap_err();
            assert!(err.to_string().contains("file name"), "{bad}: {err}");
        }
        // an archive changed in the folder after `add`: not signed unseen
        add_app(
            &dir,
            Described::ToutEnUn {
                json: HELLO.into(),
                archive: zip(base.path()),
            },
        )
        .unwrap();
        std::fs::write(dir.join("hello.zip"), b"PK\x03\x04 swapped").unwrap();
        let err = sign_store(&dir, &key).unwrap_err();
        assert!(err.to_string().contains("changed since"), "{err}");
        assert!(!dir.join(SIGNATURE_FILE).exists());
        let other = "{\"AppName\":\"Other\",\"AppDownloadUrl\":\"x\",\"AppLauncherPath\":\"run\",\"AppSyncDataFolderPath\":\"data\"}";
        let err = add_app(
            &dir,
            Described::ToutEnUn {
                json: other.into(),
                archive: zip(base.path()),
            },
        )
        .unwrap_err();
        assert!(err.to_string().contains("already Hello's archive"), "{err}");
        let mut index = read_index(&dir).unwrap();
        list(&mut index, "tout_en_un_configs").unwrap().clear();
        write_index(&dir, &index).unwrap();
        // an entry written by hand, its archive missing: not signed
        let mut index = read_index(&dir).unwrap();
        list(&mut index, "tout_en_un_configs")
            .unwrap()
            .push(serde_json::from_str(HELLO).unwrap());
        write_index(&dir, &index).unwrap();
        let err = sign_store(&dir, &key).unwrap_err();
        assert!(err.to_string().contains("not in the store folder"), "{err}");
        assert!(!dir.join(SIGNATURE_FILE).exists());
    }
}
