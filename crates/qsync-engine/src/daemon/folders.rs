//! Where the folders a person chooses may go (for a linked task, or a task added here):
//! absolute, never `/` nor the home folder itself, never in or around QSync's own folders
//! (a peer could otherwise overwrite the state database) nor another task's folder, a
//! folder if it exists; checked again once made (a symlink may have been put in its way).

use std::fs;
use std::path::{Path, PathBuf};

use qsync_base::places::resolved;
use qsync_base::TaskId;

use super::DaemonConfig;
use crate::sync::SyncDriver;
use crate::EngineError;

/// The folder a person chose for a linked task: absolute once `~` is expanded (with
/// `home`), not `/` nor the home folder itself, not in or around QSync's `own` folders
/// (state, questions) or another task's folder, a folder if it exists. Returns where it
/// is (or will be), symlinks resolved.
pub(super) fn check_link_folder(
    answer: &str,
    home: Option<&Path>,
    own: &[&Path],
    tasks: &[&Path],
) -> Result<PathBuf, String> {
    let path = match (answer.strip_prefix('~'), home) {
        (Some(rest), Some(home)) if rest.is_empty() || rest.starts_with('/') => {
            home.join(rest.trim_start_matches('/'))
        }
        (Some(_), None) => return Err("`~` names no home folder here".into()),
        _ => PathBuf::from(answer),
    };
    check_folder(&path, home, own, tasks)
}

/// The checks of [`check_link_folder`] on a path already expanded (any bytes: a folder
/// added by its person need not be UTF-8).
pub(super) fn check_folder(
    path: &Path,
    home: Option<&Path>,
    own: &[&Path],
    tasks: &[&Path],
) -> Result<PathBuf, String> {
    if !path.is_absolute() {
        return Err(format!(
            "`{}` is not an absolute folder (start it with / or ~/)",
            path.display()
        ));
    }
    // `..` would make every check below a check of another folder than the one made.
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!(
            "`{}` goes up with `..`: name the folder directly",
            path.display()
        ));
    }
    let at = resolved(path);
    if at.parent().is_none() {
        return Err("the whole file system (/) cannot be a synced folder".into());
    }
    if home.map(resolved).is_some_and(|h| h == at) {
        return Err(
            "the home folder itself cannot be a synced folder: choose a folder in it".into(),
        );
    }
    for own in own {
        let own = resolved(own);
        if at.starts_with(&own) || own.starts_with(&at) {
            return Err(format!(
                "{} is in or around QSync's own folder {}",
                at.display(),
                own.display()
            ));
        }
    }
    for root in tasks {
        if at.starts_with(root) || root.starts_with(&at) {
            return Err(format!(
                "{} overlaps {}, a folder already synced here",
                at.display(),
                root.display()
            ));
        }
    }
    if at.exists() && !at.is_dir() {
        return Err(format!("{} is not a folder", at.display()));
    }
    Ok(at)
}

/// Where a person's link folders may not go: this daemon's own folders, and the tasks'
/// folders (with the home folder for the sensitive-place checks).
pub(super) struct Folders<'a> {
    state_dir: &'a Path,
    btf_dir: &'a Path,
    tasks: Vec<(TaskId, &'a Path)>,
}

impl<'a> Folders<'a> {
    /// The daemon's own folders (of `config`) and the folders `sync` syncs.
    pub(super) fn new(config: &'a DaemonConfig, sync: &'a SyncDriver) -> Self {
        Folders {
            state_dir: &config.state_dir,
            btf_dir: &config.btf_dir,
            tasks: sync
                .folders()
                .map(|(t, f)| (*t, f.root.as_path()))
                .collect(),
        }
    }

    fn roots(&self) -> Vec<&Path> {
        self.tasks.iter().map(|(_, root)| *root).collect()
    }

    /// The folder a person chose for a linked task, checked (see [`check_link_folder`]).
    pub(super) fn link_folder(&self, answer: &str) -> Result<PathBuf, String> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let own = [self.state_dir, self.btf_dir];
        check_link_folder(answer, home.as_deref(), &own, &self.roots())
    }

    /// A folder inside (or around) another task's would be synced twice: refused.
    pub(super) fn refuse_overlap(&self, root: &Path) -> Result<(), EngineError> {
        for (id, other) in &self.tasks {
            if root.starts_with(other) || other.starts_with(root) {
                return Err(EngineError::State(format!(
                    "{} overlaps {}, already synced by task {id}",
                    root.display(),
                    other.display()
                )));
            }
        }
        Ok(())
    }

    /// Make the folder `root` a person chose for a linked task, then check it again now
    /// that it exists: a task may have been added, or a symlink put in its way, since the
    /// person answered.
    pub(super) fn make_link_folder(&self, root: &Path) -> Result<(), EngineError> {
        self.refuse_overlap(root)?;
        fs::create_dir_all(root).map_err(|e| EngineError::io("create", root, e))?;
        let real = fs::canonicalize(root).map_err(|e| EngineError::io("find", root, e))?;
        let again = real
            .to_str()
            .ok_or_else(|| EngineError::State(format!("{} is not UTF-8", real.display())))
            .and_then(|text| self.link_folder(text).map_err(EngineError::State))?;
        if again != root {
            return Err(EngineError::State(format!(
                "{} now leads to {}: nothing was linked",
                root.display(),
                again.display()
            )));
        }
        Ok(())
    }

    /// A folder this device's person adds as a task, checked as a linked one is (see
    /// [`check_folder`]); one in `<state>/apps/` (tout-en-un apps' data) may be inside
    /// the state folder.
    pub(super) fn task_folder(&self, path: &Path) -> Result<PathBuf, String> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let apps = self.state_dir.join("apps");
        let apps = fs::canonicalize(&apps).unwrap_or(apps);
        let own = [self.state_dir, self.btf_dir];
        let own: &[&Path] = if path.starts_with(&apps) && path != apps {
            &[]
        } else {
            &own
        };
        check_folder(path, home.as_deref(), own, &self.roots())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_chosen_folder_must_be_absolute_and_apart_from_home_state_and_other_tasks() {
        let dir = tempfile::tempdir().unwrap();
        let base = fs::canonicalize(dir.path()).unwrap();
        let home = base.join("home");
        let state = home.join(".local/share/qsync");
        let task = home.join("Photos");
        for p in [&state, &task] {
            fs::create_dir_all(p).unwrap();
        }
        fs::write(home.join("notes.txt"), "x").unwrap();
        let check = |answer: &str| check_link_folder(answer, Some(&home), &[&state], &[&task]);
        assert_eq!(check("~/Music").unwrap(), home.join("Music"));
        assert_eq!(
            check(&format!("{}/Music", home.display())).unwrap(),
            home.join("Music")
        );
        for (answer, why) in [
            ("Music", "absolute"),
            ("~", "home folder itself"),
            ("~/", "home folder itself"),
            ("/", "whole file system"),
            ("~/.local/share/qsync/x", "own folder"),
            ("~/.local", "own folder"),
            ("~/Photos/2024", "overlaps"),
            ("~/notes.txt", "not a folder"),
            ("~someone/x", "absolute"),
            ("~/x/..", "goes up"),
            ("~/x/../.local/share/qsync", "goes up"),
            ("/nope/..", "goes up"),
        ] {
            let err = check(answer).unwrap_err();
            assert!(err.contains(why), "{answer}: {err}");
        }
        assert!(check_link_folder("~/x", None, &[], &[]).is_err());
    }
}
