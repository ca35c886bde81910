//! The Magasin, QSync's app store.
//!
//! A store is a folder (or a web address) holding `index.json`:
//!
//! ```json
//! { "tout_en_un_configs": [ { "AppName": "Hello", "AppDownloadUrl": "hello.tar.gz", ... } ],
//!   "grapin_configs":     [ { "AppName": "Notes", "AppSyncDataFolderPath": "~/.notes", ... } ] }
//! ```
//!
//! beside the archives its apps download (a relative `AppDownloadUrl` is relative to the
//! index). [`Index::parse`] checks every entry with `qsync-apps` and keeps the ones that fail
//! aside with their error, so one bad entry does not hide a whole store. [`Source`] reads an
//! index from `http(s)://`, `file://` or a plain folder, and [`Source::download`] fetches an
//! archive with a size limit and a progress callback. [`serve`] is the small HTTP server
//! behind `qsync store serve DIR`.
//!
//! ```
//! use qsync_magasin::{Index, Source};
//!
//! let dir = tempfile::tempdir()?;
//! std::fs::write(dir.path().join("index.json"), r#"{
//!   "grapin_configs": [{ "AppName": "Notes", "AppSyncDataFolderPath": "~/.notes",
//!                        "SupportedPlatforms": ["Linux"] },
//!                      { "AppName": "Broken" }]
//! }"#)?;
//! let index: Index = Source::parse(&dir.path().display().to_string())?.index()?;
//! assert_eq!(index.search("note").count(), 1);
//! assert_eq!(index.rejected.len(), 1); // named, with the reason, not silently dropped
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[doc(hidden)]
pub mod fuzzing;
mod index;
mod server;
mod source;

pub use index::{Entry, Index, Rejected};
pub use server::serve;
pub use source::{Location, Source};

use std::path::PathBuf;

/// What went wrong talking to a store.
#[derive(Debug, thiserror::Error)]
pub enum MagasinError {
    /// The index is not JSON of the expected shape.
    #[error("the store index {at} is not valid: {problem}")]
    Index {
        /// Where the index came from.
        at: String,
        /// What is wrong.
        problem: String,
    },
    /// A store address QSync cannot use.
    #[error("`{0}` is not a store address (use http://, https://, file:// or a folder)")]
    Address(String),
    /// The download failed (connection, HTTP status, ...).
    #[error("could not download {url}: {problem}")]
    Download {
        /// What was being downloaded.
        url: String,
        /// Why it failed.
        problem: String,
    },
    /// The download is larger than allowed.
    #[error("{url} is larger than the limit of {limit} bytes")]
    TooLarge {
        /// What was being downloaded.
        url: String,
        /// The limit.
        limit: u64,
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
}

impl MagasinError {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        Self::Io {
            op,
            path: path.into(),
            source,
        }
    }
}
