//! The Magasin, QSync's app store: making signed stores, serving them, and reading them
//! without trusting anything that was not proven.
//!
//! A store is a folder (or a web address) holding `index.json`, its signature
//! `index.json.sig`, and the archives its apps download:
//!
//! ```json
//! { "sequence": 3,
//!   "tout_en_un_configs": [ { "AppName": "Hello", "AppDownloadUrl": "hello.tar.gz",
//!                             "AppDownloadSize": 1234, "AppDownloadSHA256": "…", ... } ],
//!   "grapin_configs":     [ { "AppName": "Notes", "AppSyncDataFolderPath": "~/.notes", ... } ] }
//! ```
//!
//! - Publishing ([`init_store`], [`add_app`], [`sign_store`]): an Ed25519 publisher key
//!   (kept outside the folder), archives pinned by size and SHA-256, the index signed as its
//!   exact bytes ([`signed`](crate::Signature) for the file format), a sequence that grows
//!   with each signing.
//! - Reading ([`Source::signed_index`]): the signature must verify before the index is even
//!   parsed; [`Trust::admit`] then holds it against the key pinned for the store (first use:
//!   the caller asks the person) and the newest sequence seen. [`Index::parse`] checks each
//!   entry with `qsync-apps` and keeps failures aside with their reason.
//! - Downloading ([`Source::download`]): https unless the [`Policy`] allows plain http,
//!   bounded redirects, a deadline, and the file removed unless its size and hash match.
//! - Serving ([`serve`]): regular files inside the folder only, connections capped, headers
//!   timed out.
//!
//! ```
//! use qsync_magasin::{add_app, init_store, sign_store, Admission, Described, MagasinError,
//!                     Policy, Source, Trust};
//!
//! let base = tempfile::tempdir()?;
//! let dir = base.path().join("store");
//! let key = base.path().join("store.key");
//! let publisher = init_store(&dir, &key)?;
//! add_app(&dir, Described::Grapin { json: r#"{ "AppName": "Notes",
//!     "AppSyncDataFolderPath": "~/.notes", "SupportedPlatforms": ["Linux"] }"#.into() })?;
//! sign_store(&dir, &key)?;
//!
//! let source = Source::parse(&dir.display().to_string())?;
//! let signed = source.signed_index(&Policy::default())?;
//! let mut trust = Trust::load(&base.path().join("trusted.json"))?;
//! assert_eq!(trust.admit(&source.id(), &signed)?, Admission::FirstUse);
//! assert_eq!(signed.key, publisher); // the person compares `publisher.fingerprint()`
//! trust.pin(&source.id(), &signed.key, signed.index.sequence);
//! assert_eq!(signed.index.search("note").count(), 1);
//!
//! // One byte of the index changed: refused before it is read.
//! let index = dir.join("index.json");
//! let text = std::fs::read_to_string(&index)?.replace("notes", "n0tes");
//! std::fs::write(&index, text)?;
//! let err = source.signed_index(&Policy::default()).unwrap_err();
//! assert!(matches!(err, MagasinError::Signature { .. }));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#[doc(hidden)]
pub mod fuzzing;
mod index;
mod publish;
mod server;
mod signed;
mod source;
mod trust;

pub use index::{Entry, Index, Rejected};
pub use publish::{
    add_app, default_key_path, init_store, sign_store, Added, Described, Signed, SIGNATURE_FILE,
};
pub use server::{serve, serve_with, ServeLimits};
pub use signed::{sha256_hex, PublicKey, PublisherKey, Signature, SignedIndex, CONTEXT};
pub use source::{Location, Policy, Source};
pub use trust::{Admission, Trust};

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
    /// A signature file that is not one, or a signature that does not verify.
    #[error("the store index {at} cannot be trusted: {problem}")]
    Signature {
        /// The index or its signature file.
        at: String,
        /// What is wrong.
        problem: String,
    },
    /// The store's index has no signature beside it.
    #[error("the store index {at} is not signed (no {at}.sig): QSync installs only from signed stores; its publisher signs it with `qsync store sign`")]
    Unsigned {
        /// The index.
        at: String,
    },
    /// The index is signed by another key than the one pinned for the store.
    #[error("the store {store} is now signed by another key: pinned {pinned}, this index {now}. Someone may be in the middle, or the publisher changed keys; only if the publisher tells you so, run `qsync store forget {store}`, then `qsync store trust` for it again")]
    KeyChanged {
        /// The store.
        store: String,
        /// The pinned key's fingerprint.
        pinned: String,
        /// The fingerprint of the key that signed this index.
        now: String,
    },
    /// The index is older than one already seen from the store.
    #[error("the store {store} served an older index (sequence {got}) than one seen before ({seen}): someone may be replaying an old index; refused")]
    Rollback {
        /// The store.
        store: String,
        /// The newest sequence seen before.
        seen: u64,
        /// This index's sequence.
        got: u64,
    },
    /// A publisher key file that cannot be used.
    #[error("the publisher key {} cannot be used: {problem}", at.display())]
    Key {
        /// The key file.
        at: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The trust file (pinned keys) cannot be used.
    #[error("the trusted stores file {} cannot be used: {problem}", at.display())]
    Trust {
        /// The file.
        at: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// A plain-http address, not allowed without `--insecure-http`.
    #[error("{url} is plain http: anyone on the way could change what it sends. Use https, or pass --insecure-http if you must")]
    Insecure {
        /// The address.
        url: String,
    },
    /// An address the store may not send the client to.
    #[error("{url} is refused: {problem}")]
    Refused {
        /// The address.
        url: String,
        /// Why.
        problem: String,
    },
    /// A download that is not what the signed index says.
    #[error("{url} is not the archive the store signed: {problem}; nothing was installed")]
    Tampered {
        /// What was downloaded.
        url: String,
        /// What differs.
        problem: String,
    },
    /// Nothing at this address (HTTP 404, no such file).
    #[error("{url} does not exist")]
    Missing {
        /// The address.
        url: String,
    },
    /// A publishing step refused (an invalid description, an archive that does not unpack...).
    #[error("{0}")]
    Publish(String),
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
