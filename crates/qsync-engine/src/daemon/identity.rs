//! This device's key pair on disk: `identity.key` in the state folder, 32 bytes, mode 0600,
//! made on first start. Its public half is the device id (`qsync_wire::Identity`).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

use qsync_wire::Identity;

use crate::EngineError;

/// What loading found.
#[derive(Debug)]
pub struct Loaded {
    /// The key pair.
    pub identity: Identity,
    /// The state folder was made by an older QSync (random device ids, link keys): this
    /// device has a new id now, and its old links were dropped.
    pub upgraded: bool,
}

/// Read this device's key pair from `state_dir`, making one on first start.
///
/// A key file readable by others is refused, as ssh refuses such a key: whoever reads it
/// can be this device.
pub fn load(state_dir: &Path) -> Result<Loaded, EngineError> {
    let path = state_dir.join("identity.key");
    match fs::read(&path) {
        Ok(bytes) => {
            let mode = fs::metadata(&path)
                .map_err(|e| EngineError::io("inspect", &path, e))?
                .permissions()
                .mode();
            if mode & 0o077 != 0 {
                return Err(EngineError::State(format!(
                    "{} is readable by other users (mode {:o}): whoever reads it can act as this device. Run `chmod 600 {}`",
                    path.display(),
                    mode & 0o777,
                    path.display()
                )));
            }
            let private: [u8; 32] = bytes.try_into().map_err(|b: Vec<u8>| {
                EngineError::State(format!(
                    "{} holds {} bytes, a QSync key has 32: the file is damaged",
                    path.display(),
                    b.len()
                ))
            })?;
            let identity = Identity::from_private_bytes(private)
                .map_err(|e| EngineError::State(format!("{}: {e}", path.display())))?;
            Ok(Loaded {
                identity,
                upgraded: false,
            })
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            fs::create_dir_all(state_dir).map_err(|e| EngineError::io("create", state_dir, e))?;
            let identity = Identity::generate()
                .map_err(|e| EngineError::State(format!("could not make a key: {e}")))?;
            // Written whole under another name, then renamed: never half a key.
            let temp = state_dir.join(".identity.key.tmp");
            let _ = fs::remove_file(&temp);
            let mut file = fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&temp)
                .map_err(|e| EngineError::io("create", &temp, e))?;
            file.write_all(&identity.private_bytes())
                .and_then(|()| file.sync_all())
                .map_err(|e| EngineError::io("write", &temp, e))?;
            fs::rename(&temp, &path).map_err(|e| EngineError::io("rename", &temp, e))?;
            let old = state_dir.join("device_id");
            let upgraded = old.exists();
            if upgraded {
                let _ = fs::remove_file(&old);
            }
            Ok(Loaded { identity, upgraded })
        }
        Err(e) => Err(EngineError::io("read", &path, e)),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_key_is_made_once_kept_private_and_refused_when_others_can_read_it() {
        let dir = tempfile::tempdir().unwrap();
        let first = load(dir.path()).unwrap();
        assert!(!first.upgraded);
        let path = dir.path().join("identity.key");
        assert_eq!(
            fs::metadata(&path).unwrap().permissions().mode() & 0o777,
            0o600
        );
        let again = load(dir.path()).unwrap();
        assert_eq!(first.identity.device(), again.identity.device());

        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let err = load(dir.path()).unwrap_err().to_string();
        assert!(err.contains("chmod 600"), "{err}");
    }

    #[test]
    fn a_state_folder_of_an_older_build_gets_a_key_and_says_so() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("device_id"), "aaaa\n").unwrap();
        let loaded = load(dir.path()).unwrap();
        assert!(loaded.upgraded);
        assert!(!dir.path().join("device_id").exists());
    }
}
