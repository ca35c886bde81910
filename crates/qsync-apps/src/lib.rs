//! QSync's app add-ons, as files on disk: no network, no database, no daemon.
//!
//! - A **grapin** ([`Grapin`]) names where an existing app keeps its data on each platform, as
//!   a path template with `/` separators and the placeholders `~`, `%username%`, `%version%`
//!   and `%any%`. [`resolve`] turns a template into a real folder on this machine, saying
//!   which folder each placeholder picked; QSync then syncs that folder as a task.
//! - A **tout-en-un** app ([`ToutEnUn`]) is an app built on QSync: an archive to download, an
//!   optional installer, a launcher, an optional uninstaller and a data folder, all relative
//!   to the app's own folder. [`install::install`] unpacks an archive that is already on disk
//!   ([`archive::unpack`] refuses entries that would land outside the folder), runs the
//!   installer, and moves the result into place only if every step worked. [`archive::Limits`]
//!   bound the entries, bytes and depth an archive may unpack to, checked before anything is
//!   written.
//! - [`guard::check_data_folder`] refuses a grapin folder that is the root, the home folder or
//!   a system folder, and names the places of secrets (`~/.ssh`, browser profiles...) it
//!   touches, for the caller to ask about.
//!
//! Recording installed apps and creating their sync tasks belongs to the layers above
//! (`qsync-store`, `qsync-engine`); fetching archives and store indexes to `qsync-magasin`.
//!
//! ```
//! use qsync_apps::{resolve, Grapin, Platform, ResolveContext};
//!
//! let home = tempfile::tempdir()?;
//! std::fs::create_dir_all(home.path().join(".notes/profiles/b-work"))?;
//! std::fs::create_dir_all(home.path().join(".notes/profiles/a-main"))?;
//!
//! let grapin = Grapin::from_json(r#"{
//!     "AppName": "Notes",
//!     "AppSyncDataFolderPath": { "Linux": "~/.notes/profiles/%any%" },
//!     "NeedsFormat": true,
//!     "SupportedPlatforms": ["Linux"]
//! }"#)?;
//! let template = grapin.template(Platform::Linux).expect("declared above");
//! let ctx = ResolveContext { home: home.path().into(), username: "me".into() };
//! let found = resolve(template, &ctx)?;
//! assert_eq!(found.path, home.path().join(".notes/profiles/a-main"));
//! assert_eq!(found.choices[0].chosen, "a-main"); // sorted, the first one; the others are listed
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod archive;
mod config;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod install;
mod resolve;

pub use config::{AppFolderName, AppRelPath, Grapin, Platform, ToutEnUn};
pub use resolve::{current_username, resolve, Choice, ResolveContext, Resolved};

use std::path::PathBuf;

/// What went wrong with an app, its description or its files.
#[derive(Debug, thiserror::Error)]
pub enum AppsError {
    /// The JSON description is not JSON, or not of the expected shape.
    #[error("the {what} description is not valid JSON of the expected shape: {source}")]
    Json {
        /// "grapin" or "tout-en-un".
        what: &'static str,
        /// The parser's error (it names the line, column and field).
        source: serde_json::Error,
    },
    /// One field of a description has a value QSync cannot use.
    #[error("{app}: field {field} {problem}")]
    Field {
        /// The app's name (or `?` when the name itself is wrong).
        app: String,
        /// The field, as named in the JSON.
        field: String,
        /// What is wrong with it.
        problem: String,
    },
    /// A data folder template found no folder on this machine.
    #[error("no folder matches {template}: {problem}")]
    Unresolved {
        /// The template being resolved.
        template: String,
        /// Where the walk stopped.
        problem: String,
    },
    /// An archive is damaged, of an unknown kind, or holds an entry QSync refuses.
    #[error("archive {}: {problem}", archive.display())]
    Archive {
        /// The archive file.
        archive: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A file operation failed.
    #[error("could not {op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The system's error.
        source: std::io::Error,
    },
    /// A grapin's data folder QSync refuses to sync (the root, the home folder, a system
    /// folder).
    #[error("{} cannot be synced: it {problem}", folder.display())]
    DataFolder {
        /// The folder, links followed.
        folder: PathBuf,
        /// Why.
        problem: String,
    },
    /// A step of an install or uninstall failed (the installer exited with an error, the
    /// app is already installed, ...).
    #[error("{0}")]
    Install(String),
}

impl AppsError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn field(app: &str, field: impl Into<String>, problem: impl Into<String>) -> Self {
        Self::Field {
            app: app.to_owned(),
            field: field.into(),
            problem: problem.into(),
        }
    }
}
