//! Well-known places of a home folder where a synced folder is dangerous, in one list for
//! every check that chooses a folder to sync (a grapin's data folder in `qsync-apps`, the
//! folder a person picks for a linked task in `qsync-engine`).
//!
//! Syncing a folder hands its files to every device linked to the task and takes theirs.
//! In a place of secrets ([`SECRETS`]: SSH and GnuPG keys, browser profiles, cloud
//! credentials...) that sends the secrets away, and lets the other devices put keys there
//! (`~/.ssh/authorized_keys`). In a place whose files start programs ([`STARTS_PROGRAMS`]:
//! autostart, systemd units, `~/.local/bin`...) another device could make programs run
//! here. [`places_touched`] says which of them a folder is, holds or sits inside; what to
//! do about it (refuse, or ask the person) is the caller's rule.
//!
//! ```
//! use qsync_base::places::{places_touched, Danger};
//!
//! let home = std::path::Path::new("/home/me");
//! let touched = places_touched(&home.join(".ssh"), home);
//! assert_eq!(touched[0].relative, ".ssh");
//! assert_eq!(touched[0].danger, Danger::Secrets);
//! assert!(places_touched(&home.join("Music"), home).is_empty());
//! ```

use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Well-known places holding secrets, relative to the home folder, with what they hold.
pub const SECRETS: &[(&str, &str)] = &[
    (".ssh", "SSH keys"),
    (".gnupg", "GnuPG keys"),
    (".password-store", "pass passwords"),
    (".local/share/keyrings", "the desktop keyring"),
    (".mozilla", "Firefox profiles (saved passwords, cookies)"),
    (
        "snap/firefox",
        "Firefox profiles (saved passwords, cookies)",
    ),
    (".thunderbird", "Thunderbird profiles (mail passwords)"),
    (
        ".config/google-chrome",
        "Chrome profiles (saved passwords, cookies)",
    ),
    (
        ".config/chromium",
        "Chromium profiles (saved passwords, cookies)",
    ),
    (
        ".config/BraveSoftware",
        "Brave profiles (saved passwords, cookies)",
    ),
    (
        ".config/microsoft-edge",
        "Edge profiles (saved passwords, cookies)",
    ),
    (
        ".config/vivaldi",
        "Vivaldi profiles (saved passwords, cookies)",
    ),
    (".aws", "AWS credentials"),
    (".azure", "Azure credentials"),
    (".config/gcloud", "Google Cloud credentials"),
    (".kube", "Kubernetes credentials"),
    (".docker", "Docker registry logins"),
    (".config/gh", "the GitHub CLI's token"),
    (".netrc", "saved logins"),
    (".git-credentials", "saved Git passwords"),
];

/// Places, relative to the home folder, whose files run by themselves or are run by name:
/// a linked device that could write there could run code here.
pub const STARTS_PROGRAMS: &[(&str, &str)] = &[
    (".config/autostart", "programs started at login"),
    (".config/systemd", "services started by systemd"),
    (".local/share/systemd", "services started by systemd"),
    (".config/environment.d", "the session's environment"),
    (".local/share/applications", "menu launchers"),
    (".local/share/dbus-1", "D-Bus services"),
    (".local/bin", "programs run by name"),
    ("bin", "programs run by name"),
];

/// What makes a place dangerous to sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Danger {
    /// It holds secrets ([`SECRETS`]).
    Secrets,
    /// Its files start programs ([`STARTS_PROGRAMS`]).
    StartsPrograms,
}

/// One well-known place a folder touches.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Place {
    /// Where it is on this machine (links followed as far as it exists).
    pub place: PathBuf,
    /// Where it is in the home folder (`.ssh`, say: `~/.ssh`).
    pub relative: &'static str,
    /// What it holds, in a person's words.
    pub holds: &'static str,
    /// Why it matters.
    pub danger: Danger,
}

/// Where `path` is, or will be once created: its nearest existing ancestor with links
/// followed, and the rest as given.
pub fn resolved(path: &Path) -> PathBuf {
    let mut rest: Vec<OsString> = Vec::new();
    let mut at = path.to_owned();
    loop {
        if let Ok(real) = std::fs::canonicalize(&at) {
            return rest.into_iter().rev().fold(real, |p, c| p.join(c));
        }
        match (at.file_name().map(ToOwned::to_owned), at.parent()) {
            (Some(name), Some(parent)) => {
                rest.push(name);
                at = parent.to_owned();
            }
            _ => return path.to_owned(),
        }
    }
}

/// The places of [`SECRETS`] and [`STARTS_PROGRAMS`] under `home` that `folder` is, sits
/// inside, or holds; both paths are taken as [`resolved`]. A place that starts programs
/// counts whether it exists yet or not (a linked device could create it); a place of
/// secrets that `folder` only holds counts once it exists (until then there is nothing to
/// send away, and nothing it holds runs anything).
pub fn places_touched(folder: &Path, home: &Path) -> Vec<Place> {
    let folder = resolved(folder);
    let home = resolved(home);
    let lists = [
        (STARTS_PROGRAMS, Danger::StartsPrograms),
        (SECRETS, Danger::Secrets),
    ];
    let mut found = Vec::new();
    for (list, danger) in lists {
        for (relative, holds) in list {
            let place = resolved(&home.join(relative));
            let inside = folder.starts_with(&place);
            let holds_it =
                place.starts_with(&folder) && (danger == Danger::StartsPrograms || place.exists());
            if inside || holds_it {
                found.push(Place {
                    place,
                    relative,
                    holds,
                    danger,
                });
            }
        }
    }
    found
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_folder_is_held_or_holds_a_place() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("me");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(home.join(".config/app")).unwrap();
        let touched = |folder: &str| -> Vec<&str> {
            places_touched(&home.join(folder), &home)
                .iter()
                .map(|p| p.relative)
                .collect()
        };
        // Empty or not, existing or not: the place itself, and inside it.
        assert_eq!(touched(".ssh"), [".ssh"]);
        assert_eq!(touched(".gnupg"), [".gnupg"]);
        assert_eq!(touched(".gnupg/private"), [".gnupg"]);
        assert_eq!(touched(".config/autostart"), [".config/autostart"]);
        // Holding one: a place that starts programs even before it exists; a place of
        // secrets once it exists.
        assert_eq!(
            touched(".config"),
            [
                ".config/autostart",
                ".config/systemd",
                ".config/environment.d"
            ]
        );
        assert!(touched(".config/app").is_empty());
        std::fs::create_dir_all(home.join(".config/gh")).unwrap();
        assert_eq!(touched(".config").last(), Some(&".config/gh"));
        assert!(touched("Music").is_empty());
    }

    /// A home folder reached through a link is the same home folder.
    #[test]
    fn links_are_followed() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("me");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::os::unix::fs::symlink(home.join(".ssh"), home.join("keys")).unwrap();
        let touched = places_touched(&home.join("keys"), &home);
        assert_eq!(touched.len(), 1);
        assert_eq!(touched[0].holds, "SSH keys");
    }
}
