//! Installing, launching and uninstalling a tout-en-un app on disk.
//!
//! [`install`] works in a hidden staging folder beside the final one: unpack, check that the
//! launcher (and installer) exist, run the installer there, create the data folder, then
//! rename the staging folder into place and write the launcher shortcut. Any failure removes
//! the staging folder (and the app folder, if the shortcut could not be written): a failed
//! install leaves nothing behind.
//!
//! Programs run with their folder as working directory and two variables:
//! `QSYNC_APP_DIR` (the app's folder) and `QSYNC_APP_DATA` (its synced data folder).

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use crate::archive::{self, loosen, Limits};
use crate::{AppRelPath, AppsError, ToutEnUn};

/// Where apps and their shortcuts go.
#[derive(Debug, Clone)]
pub struct Layout {
    /// The folder holding one folder per app (`<qsync root>/apps`).
    pub apps_root: PathBuf,
    /// Where to write `.desktop` launcher files (`~/.local/share/applications`), if anywhere.
    pub shortcuts: Option<PathBuf>,
}

impl Layout {
    /// The folder of the app named `name`.
    pub fn app_dir(&self, name: &str) -> PathBuf {
        self.apps_root.join(name)
    }

    /// The launcher shortcut of the app named `name`, if shortcuts are written. Names that
    /// are not plain ASCII letters, digits and `-` get a hash of the name too, so that two
    /// apps never share a shortcut (`a b` and `a_b`).
    pub fn shortcut(&self, name: &str) -> Option<PathBuf> {
        let plain = |c: char| c.is_ascii_alphanumeric() || c == '-';
        let mut file: String = name
            .chars()
            .map(|c| if plain(c) { c } else { '_' })
            .collect();
        if !name.chars().all(plain) {
            // FNV-1a: stable across builds and platforms, enough to tell names apart
            let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
                (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
            });
            file.push_str(&format!("-{:08x}", hash as u32));
        }
        self.shortcuts
            .as_ref()
            .map(|d| d.join(format!("qsync-{file}.desktop")))
    }
}

/// An installed app's places.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    /// The app's folder.
    pub dir: PathBuf,
    /// Its data folder (to sync).
    pub data: PathBuf,
    /// The shortcut written, if any.
    pub shortcut: Option<PathBuf>,
}

/// Removes a folder when dropped, unless disarmed.
struct Cleanup(Option<PathBuf>);

impl Cleanup {
    fn disarm(mut self) {
        self.0 = None;
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(dir) = self.0.take() {
            loosen(&dir);
            let _ = fs::remove_dir_all(&dir);
        }
    }
}

/// Install `app` from `archive` (already downloaded and checked against the size and hash
/// its store pinned). `limits` bound what the archive may unpack to.
pub fn install(
    app: &ToutEnUn,
    archive: &Path,
    layout: &Layout,
    limits: &Limits,
) -> Result<Installed, AppsError> {
    let name = app.name().as_str();
    let dir = layout.app_dir(name);
    if dir.exists() {
        return Err(AppsError::Install(format!(
            "{name} is already installed in {}; uninstall it first",
            dir.display()
        )));
    }
    fs::create_dir_all(&layout.apps_root)
        .map_err(|e| AppsError::io("create", &layout.apps_root, e))?;
    let staging = layout
        .apps_root
        .join(format!(".installing-{name}-{}", std::process::id()));
    if staging.exists() {
        loosen(&staging);
        fs::remove_dir_all(&staging).map_err(|e| AppsError::io("remove", &staging, e))?;
    }
    let staged = Cleanup(Some(staging.clone()));
    archive::unpack(archive, &staging, limits)?;
    let root = app_root(app, &staging);

    for program in [Some(app.launcher()), app.installer(), app.uninstaller()]
        .into_iter()
        .flatten()
    {
        make_executable(app, &root, program)?;
    }
    if let Some(installer) = app.installer() {
        let data = app.data_folder().under(&root);
        let output = Command::new(installer.under(&root))
            .current_dir(&root)
            .env("QSYNC_APP_DIR", &root)
            .env("QSYNC_APP_DATA", &data)
            .stdin(Stdio::null())
            .output()
            .map_err(|e| AppsError::io("run the installer", installer.under(&root), e))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            return Err(AppsError::Install(format!(
                "{name}'s installer {} failed ({}): {}",
                installer.as_str(),
                output.status,
                stderr.trim()
            )));
        }
    }
    let data_in_staging = app.data_folder().under(&root);
    fs::create_dir_all(&data_in_staging)
        .map_err(|e| AppsError::io("create", &data_in_staging, e))?;
    // The installer may have left the data folder (or a folder on its way) as a link,
    // say to the home folder, which would then be synced: only real folders inside.
    let mut on_the_way = root.clone();
    for part in app.data_folder().as_str().split('/') {
        on_the_way.push(part);
        let real = fs::symlink_metadata(&on_the_way).is_ok_and(|m| m.file_type().is_dir());
        if !real {
            return Err(AppsError::Install(format!(
                "{name}'s data folder {} is not a real folder after its installer ran",
                app.data_folder().as_str()
            )));
        }
    }

    fs::rename(&root, &dir).map_err(|e| AppsError::io("move into place", &dir, e))?;
    let placed = Cleanup(Some(dir.clone()));
    drop(staged); // removes what is left of the staging folder (nothing, or a wrapper folder)
    let data = app.data_folder().under(&dir);
    let shortcut = match layout.shortcut(name) {
        Some(path) => {
            write_shortcut(app, &dir, &path)?;
            Some(path)
        }
        None => None,
    };
    placed.disarm();
    Ok(Installed {
        dir,
        data,
        shortcut,
    })
}

/// The folder holding the app: the staging folder, or the one folder inside it when the
/// archive wraps everything in a top folder and the launcher is not at the top.
fn app_root(app: &ToutEnUn, staging: &Path) -> PathBuf {
    if app.launcher().under(staging).exists() {
        return staging.to_path_buf();
    }
    let children: Vec<_> = fs::read_dir(staging)
        .map(|d| d.flatten().map(|e| e.path()).collect())
        .unwrap_or_default();
    match children.as_slice() {
        [only] if only.is_dir() && app.launcher().under(only).exists() => only.clone(),
        _ => staging.to_path_buf(),
    }
}

fn make_executable(app: &ToutEnUn, root: &Path, program: &AppRelPath) -> Result<(), AppsError> {
    use std::os::unix::fs::PermissionsExt;
    let path = program.under(root);
    let meta = fs::metadata(&path).map_err(|_| {
        AppsError::Install(format!(
            "{}'s archive has no {} (named by the app's description)",
            app.name(),
            program.as_str()
        ))
    })?;
    if !meta.is_file() {
        return Err(AppsError::Install(format!(
            "{}: {} is not a file",
            app.name(),
            program.as_str()
        )));
    }
    let mode = meta.permissions().mode();
    if mode & 0o111 == 0 {
        fs::set_permissions(&path, fs::Permissions::from_mode(mode | 0o755))
            .map_err(|e| AppsError::io("make executable", &path, e))?;
    }
    Ok(())
}

/// A `.desktop` value of type string or localestring: backslash, newline, tab and carriage
/// return escaped as the Desktop Entry Specification says; other control characters dropped.
fn desktop_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}

/// The `Exec` value that runs `program` with no argument. The path is one quoted argument
/// (`"`, `` ` ``, `$` and `\` escaped inside the quotes), `%` is doubled so that no part of
/// the path is taken for a field code such as `%f`, and then the whole is escaped as a string:
/// the specification applies the string rule before the quoting rule.
fn desktop_exec(program: &Path) -> String {
    let mut quoted = String::from("\"");
    for c in program.to_string_lossy().chars() {
        match c {
            '"' | '`' | '$' | '\\' => {
                quoted.push('\\');
                quoted.push(c);
            }
            '%' => quoted.push_str("%%"),
            c => quoted.push(c),
        }
    }
    quoted.push('"');
    desktop_string(&quoted)
}

fn write_shortcut(app: &ToutEnUn, dir: &Path, path: &Path) -> Result<(), AppsError> {
    let text = format!(
        "[Desktop Entry]\nType=Application\nName={}\nComment={}\nExec={}\nPath={}\nTerminal=false\nCategories=Utility;\n",
        desktop_string(app.name().as_str()),
        desktop_string(app.description().unwrap_or("A QSync app")),
        desktop_exec(&app.launcher().under(dir)),
        desktop_string(&dir.to_string_lossy()),
    );
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).map_err(|e| AppsError::io("create", parent, e))?;
    }
    let partial = path.with_extension("desktop.part");
    fs::write(&partial, text).map_err(|e| AppsError::io("write", &partial, e))?;
    fs::rename(&partial, path).map_err(|e| AppsError::io("write", path, e))
}

/// Start the app's launcher; it keeps running after this returns.
pub fn launch(app: &ToutEnUn, dir: &Path) -> Result<Child, AppsError> {
    let launcher = app.launcher().under(dir);
    Command::new(&launcher)
        .current_dir(dir)
        .env("QSYNC_APP_DIR", dir)
        .env("QSYNC_APP_DATA", app.data_folder().under(dir))
        .stdin(Stdio::null())
        .spawn()
        .map_err(|e| AppsError::io("start", launcher, e))
}

/// Run `app`'s uninstaller, if it has one and is still in place. Run it while its data
/// folder is still synced, then [`remove`] the app.
pub fn run_uninstaller(app: &ToutEnUn, layout: &Layout) -> Result<(), AppsError> {
    let name = app.name().as_str();
    let dir = layout.app_dir(name);
    if let (Some(uninstaller), true) = (app.uninstaller(), dir.exists()) {
        let output = Command::new(uninstaller.under(&dir))
            .current_dir(&dir)
            .env("QSYNC_APP_DIR", &dir)
            .env("QSYNC_APP_DATA", app.data_folder().under(&dir))
            .stdin(Stdio::null())
            .output()
            .map_err(|e| AppsError::io("run the uninstaller", uninstaller.under(&dir), e))?;
        if !output.status.success() {
            return Err(AppsError::Install(format!(
                "{name}'s uninstaller failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
    }
    Ok(())
}

/// Remove `app`'s files and shortcut. Its data folder, if it holds anything, is moved to
/// `keep_data` rather than deleted; returns where it went.
pub fn remove(
    app: &ToutEnUn,
    layout: &Layout,
    keep_data: &Path,
) -> Result<Option<PathBuf>, AppsError> {
    let name = app.name().as_str();
    let dir = layout.app_dir(name);
    let data = app.data_folder().under(&dir);
    let has_data = fs::read_dir(&data).is_ok_and(|mut d| d.next().is_some());
    let kept = if has_data {
        if let Some(parent) = keep_data.parent() {
            fs::create_dir_all(parent).map_err(|e| AppsError::io("create", parent, e))?;
        }
        fs::rename(&data, keep_data)
            .map_err(|e| AppsError::io("keep the data in", keep_data, e))?;
        Some(keep_data.to_path_buf())
    } else {
        None
    };
    // (and the name earlier versions gave it: the name with `_` for other characters)
    let legacy = layout.shortcuts.as_ref().map(|d| {
        let file: String = name
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '-' {
                    c
                } else {
                    '_'
                }
            })
            .collect();
        d.join(format!("qsync-{file}.desktop"))
    });
    for shortcut in [layout.shortcut(name), legacy].into_iter().flatten() {
        match fs::remove_file(&shortcut) {
            Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                return Err(AppsError::io("remove", &shortcut, e))
            }
            _ => {}
        }
    }
    if dir.exists() {
        loosen(&dir);
        fs::remove_dir_all(&dir).map_err(|e| AppsError::io("remove", &dir, e))?;
    }
    Ok(kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn app(extra: &str) -> ToutEnUn {
        ToutEnUn::from_json(&format!(
            r#"{{"AppName":"Hello App","AppDownloadUrl":"x.tar.gz","AppLauncherPath":"bin/run.sh",
                "AppSyncDataFolderPath":"data"{extra}}}"#
        ))
        .unwrap()
    }

    fn archive(dir: &Path, files: &[(&str, &str)]) -> PathBuf {
        let path = dir.join("app.zip");
        let mut zip = zip::ZipWriter::new(fs::File::create(&path).unwrap());
        for (name, text) in files {
            let options = zip::write::SimpleFileOptions::default().unix_permissions(0o755);
            zip.start_file(*name, options).unwrap();
            zip.write_all(text.as_bytes()).unwrap();
        }
        zip.finish().unwrap();
        path
    }

    fn layout(dir: &Path) -> Layout {
        Layout {
            apps_root: dir.join("apps"),
            shortcuts: Some(dir.join("applications")),
        }
    }

    #[test]
    fn install_launch_uninstall() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(
            r#","NeedsInstaller":true,"AppInstallerPath":"install.sh","AppUninstallerPath":"uninstall.sh""#,
        );
        let archive = archive(
            dir.path(),
            &[
                (
                    "hello/bin/run.sh",
                    "#!/bin/sh\necho ran > \"$QSYNC_APP_DATA/marker\"\n",
                ),
                (
                    "hello/install.sh",
                    "#!/bin/sh\necho installed > installed.txt\n",
                ),
                (
                    "hello/uninstall.sh",
                    "#!/bin/sh\necho bye > \"$QSYNC_APP_DATA/bye\"\n",
                ),
            ],
        );
        let layout = layout(dir.path());
        let done = install(&app, &archive, &layout, &Limits::with_bytes(1 << 20)).unwrap();
        assert_eq!(done.dir, dir.path().join("apps/Hello App"));
        assert!(
            done.dir.join("installed.txt").exists(),
            "installer ran in the app folder"
        );
        assert!(done.data.is_dir());
        let shortcut = fs::read_to_string(done.shortcut.as_ref().unwrap()).unwrap();
        assert!(
            shortcut.contains("Exec=\"") && shortcut.contains("Hello App/bin/run.sh\""),
            "{shortcut}"
        );
        assert!(!fs::read_dir(&layout.apps_root)
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with(".installing")));

        let status = launch(&app, &done.dir).unwrap().wait().unwrap();
        assert!(status.success());
        assert_eq!(
            fs::read_to_string(done.data.join("marker")).unwrap(),
            "ran\n"
        );

        let again = install(&app, &archive, &layout, &Limits::with_bytes(1 << 20))
            .unwrap_err()
            .to_string();
        assert!(again.contains("already installed"), "{again}");

        let keep = dir.path().join("kept/Hello App");
        run_uninstaller(&app, &layout).unwrap();
        let kept = remove(&app, &layout, &keep).unwrap();
        assert_eq!(kept.as_deref(), Some(keep.as_path()));
        assert_eq!(
            fs::read_to_string(keep.join("bye")).unwrap(),
            "bye\n",
            "uninstaller ran, data kept"
        );
        assert!(!done.dir.exists());
        assert!(!done.shortcut.unwrap().exists());
    }

    #[test]
    fn shortcut_values_are_escaped() {
        // A folder name may hold `%`, quotes and `$`: none of them may become a field code,
        // end the quoted argument, or expand.
        let exec = desktop_exec(Path::new("/a/50% \"off\" $HOME\\x/run"));
        assert_eq!(exec, r#""/a/50%% \\"off\\" \\$HOME\\\\x/run""#);
        assert_eq!(desktop_string("two\nlines\\"), r"two\nlines\\");
        let dir = tempfile::tempdir().unwrap();
        let app = ToutEnUn::from_json(
            r#"{"AppName":"100% $x","AppDownloadUrl":"x.zip","AppLauncherPath":"run",
                "AppSyncDataFolderPath":"data","AppDescription":"line\nExec=evil"}"#,
        )
        .unwrap();
        let path = dir.path().join("x.desktop");
        write_shortcut(&app, Path::new("/apps/100% $x"), &path).unwrap();
        let text = fs::read_to_string(&path).unwrap();
        let exec: Vec<&str> = text.lines().filter(|l| l.starts_with("Exec=")).collect();
        assert_eq!(exec, [r#"Exec="/apps/100%% \\$x/run""#], "{text}");
        assert!(text.contains(r"Comment=line\nExec=evil"), "{text}");
    }

    #[test]
    fn a_failed_installer_leaves_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let app = app(r#","NeedsInstaller":true,"AppInstallerPath":"install.sh""#);
        let archive = archive(
            dir.path(),
            &[
                ("bin/run.sh", "#!/bin/sh\n"),
                ("install.sh", "#!/bin/sh\necho no disk >&2\nexit 3\n"),
            ],
        );
        let layout = layout(dir.path());
        let err = install(&app, &archive, &layout, &Limits::with_bytes(1 << 20))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("installer") && err.contains("no disk"),
            "{err}"
        );
        assert_eq!(fs::read_dir(&layout.apps_root).unwrap().count(), 0);
        assert!(!dir.path().join("applications").exists());
    }

    #[test]
    fn a_missing_launcher_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let archive = archive(dir.path(), &[("bin/other.sh", "#!/bin/sh\n")]);
        let layout = layout(dir.path());
        let err = install(&app(""), &archive, &layout, &Limits::with_bytes(1 << 20))
            .unwrap_err()
            .to_string();
        assert!(err.contains("bin/run.sh"), "{err}");
        assert_eq!(fs::read_dir(&layout.apps_root).unwrap().count(), 0);
    }
}
