//! Which folders a grapin may have QSync sync.
//!
//! A grapin comes from a store, and syncing a folder hands its content to every device
//! linked to the task, and takes theirs. So a grapin may never name the whole system, a
//! system folder, or the home folder itself (or a folder holding it), and a folder that is,
//! holds or sits inside a well-known place of secrets (SSH and GnuPG keys, browser profiles,
//! cloud credentials...) is synced only after the person is told so and agrees.
//! [`check_data_folder`] sorts a resolved folder into these cases; asking is the caller's job.
//! Places whose files start programs (autostart, systemd units, `~/.local/bin`...), existing
//! or not, and QSync's own state folder are refused outright: a linked device that could
//! write there could run code here. Both lists are `qsync_base::places`, shared with the
//! check of the folder a person picks for a linked task.

use std::path::{Path, PathBuf};

use qsync_base::places::{places_touched, Danger};

use crate::AppsError;

/// Top folders of the system that no grapin may sync any part of.
const SYSTEM: &[&str] = &[
    "/bin", "/boot", "/dev", "/etc", "/lib", "/lib32", "/lib64", "/proc", "/root", "/run", "/sbin",
    "/sys", "/usr",
];

/// A place of secrets a data folder is, holds or sits inside.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sensitive {
    /// The place (`~/.ssh`, say), as found on this machine.
    pub place: PathBuf,
    /// What it holds.
    pub holds: &'static str,
}

/// The real path of `path` (links followed) if it exists, else `path` as given.
fn real(path: &Path) -> PathBuf {
    std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
}

/// Check `folder`, a grapin's data folder resolved on this machine, against `home`, the
/// person's home folder. Links are followed first, so a harmless-looking folder that is a
/// link to the home folder is seen as the home folder.
///
/// `protected` are folders no grapin may touch at all: QSync's own state folder, where the
/// pins of trusted stores, the device's identity and the installed apps live.
///
/// An error says why the folder is refused outright. Otherwise the places of secrets it
/// touches, which the person must be told about (none: nothing known to worry about).
pub fn check_data_folder(
    folder: &Path,
    home: &Path,
    protected: &[PathBuf],
) -> Result<Vec<Sensitive>, AppsError> {
    let folder = real(folder);
    let home = real(home);
    let refuse = |problem: &str| AppsError::DataFolder {
        folder: folder.clone(),
        problem: problem.to_owned(),
    };
    if folder.parent().is_none() || folder.components().count() < 2 {
        return Err(refuse("is the root of the file system"));
    }
    if folder == home {
        return Err(refuse("is your home folder itself"));
    }
    if home.starts_with(&folder) {
        return Err(refuse("holds your home folder"));
    }
    if folder.components().count() == 2 {
        // `/srv`, `/opt`, `/var`, `/tmp` and the like: a whole top folder of the system
        return Err(refuse("is a top folder of the system"));
    }
    // (a home folder may itself sit in one of them: `/root`)
    if !folder.starts_with(&home) && SYSTEM.iter().any(|top| folder.starts_with(top)) {
        return Err(refuse("is inside a system folder"));
    }
    let touches = |place: &Path| place.starts_with(&folder) || folder.starts_with(place);
    for place in protected {
        if touches(&real(place)) {
            return Err(refuse(&format!(
                "touches QSync's own state folder {}",
                place.display()
            )));
        }
    }
    let touched = places_touched(&folder, &home);
    if let Some(runs) = touched.iter().find(|p| p.danger == Danger::StartsPrograms) {
        return Err(refuse(&format!(
            "touches ~/{} ({}): a linked device could make programs run here",
            runs.relative, runs.holds
        )));
    }
    Ok(touched
        .into_iter()
        .map(|p| Sensitive {
            place: p.place,
            holds: p.holds,
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_system_and_the_home_folder_are_refused() {
        let base = tempfile::tempdir().unwrap();
        let home = base.path().join("home/me");
        std::fs::create_dir_all(home.join(".notes")).unwrap();
        let state = home.join(".local/share/qsync");
        std::fs::create_dir_all(&state).unwrap();
        let refused = |folder: &Path| {
            check_data_folder(folder, &home, std::slice::from_ref(&state))
                .map(|_| ())
                .unwrap_err()
                .to_string()
        };
        assert!(refused(Path::new("/")).contains("root"));
        assert!(refused(&home).contains("home folder itself"));
        assert!(refused(&base.path().join("home")).contains("holds your home"));
        assert!(refused(Path::new("/etc/ssh")).contains("system folder"));
        assert!(refused(Path::new("/opt")).contains("top folder"));
        // a link to the home folder is the home folder
        std::os::unix::fs::symlink(&home, home.join(".notes/all")).unwrap();
        assert!(refused(&home.join(".notes/all")).contains("home folder itself"));
        assert!(refused(&home.join(".local/share")).contains("own state"));
        assert!(refused(&state.join("apps")).contains("own state"));
        assert!(refused(&home.join(".config/autostart")).contains("programs started at login"));
        assert!(refused(&home.join(".local/bin")).contains("could make programs run here"));
        // whether the place exists yet or not: a linked device could create it
        assert!(refused(&home.join(".config")).contains("~/.config/autostart"));
        assert_eq!(
            check_data_folder(&home.join(".notes"), &home, &[]).unwrap(),
            []
        );
    }

    #[test]
    fn places_of_secrets_are_named() {
        let base = tempfile::tempdir().unwrap();
        let home = base.path().join("me");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        std::fs::create_dir_all(home.join(".config/google-chrome/Default")).unwrap();
        std::fs::create_dir_all(home.join(".config/app")).unwrap();
        let holds = |folder: &str| -> Vec<&str> {
            check_data_folder(&home.join(folder), &home, &[])
                .unwrap()
                .iter()
                .map(|s| s.holds)
                .collect()
        };
        assert_eq!(holds(".ssh"), ["SSH keys"]);
        assert_eq!(holds(".config/google-chrome/Default").len(), 1);
        assert_eq!(holds(".config/google-chrome").len(), 1);
        assert_eq!(holds(".config/app"), Vec::<&str>::new());
    }
}
