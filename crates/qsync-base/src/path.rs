//! Paths relative to a sync task's root.

use std::fmt;
use std::path::{Path, PathBuf};

use compact_str::CompactString;
use serde::{Deserialize, Serialize};

/// Why a string is not a valid [`RelPath`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RelPathError {
    /// The path is empty.
    #[error("empty path: a synced path names at least one file or folder")]
    Empty,
    /// The path starts with `/`.
    #[error("`{0}` is absolute: synced paths are relative to the task's root")]
    Absolute(String),
    /// A component is empty, `.` or `..`.
    #[error("`{0}` has an empty, `.` or `..` component: it could point outside the task's root")]
    BadComponent(String),
    /// The path holds a NUL byte or a `\`.
    #[error(
        "`{0}` holds a NUL byte or a backslash, which no platform QSync syncs to accepts in a name"
    )]
    BadCharacter(String),
    /// The path is longer than [`MAX_PATH_LEN`] bytes, or a name in it longer than
    /// [`MAX_NAME_LEN`].
    #[error("a path of {len} bytes (or with a name over {MAX_NAME_LEN} bytes) is longer than any file system holds (at most {MAX_PATH_LEN})")]
    TooLong {
        /// Its length in bytes.
        len: usize,
    },
    /// A local path is not inside the root it was taken relative to, or is not UTF-8.
    #[error("`{path}` is not a UTF-8 path inside `{root}`")]
    OutsideRoot {
        /// The path given.
        path: PathBuf,
        /// The root it should have been inside.
        root: PathBuf,
    },
}

/// The longest [`RelPath`], in bytes (Linux's `PATH_MAX`): a longer one could not be
/// opened anyway, and a peer's record must not make the daemon build a hundred thousand
/// parent folders.
pub const MAX_PATH_LEN: usize = 4096;

/// The longest name (component) of a [`RelPath`], in bytes (`NAME_MAX`).
pub const MAX_NAME_LEN: usize = 255;

/// A path inside a sync task, relative to its root, with `/` as the separator on every
/// platform (the seed's rule).
///
/// A `RelPath` cannot be built invalid: it has no leading `/`, no empty, `.` or `..`
/// component, no NUL and no `\`, and is at most [`MAX_PATH_LEN`] bytes with names of at
/// most [`MAX_NAME_LEN`]. Joining it to a root therefore always stays under that
/// root (symlinks inside the root are a file-system matter the caller checks).
///
/// Its text is a [`CompactString`]: up to 24 bytes it is held inline, without an
/// allocation. A watched folder's index holds every path of it (a million paths for a
/// folder of a million files), and a small allocation costs 32 bytes whatever its length.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct RelPath(CompactString);

impl RelPath {
    /// Check `text` and make it a `RelPath`.
    pub fn new(text: impl Into<String>) -> Result<Self, RelPathError> {
        let text = text.into();
        if text.is_empty() {
            return Err(RelPathError::Empty);
        }
        if text.starts_with('/') {
            return Err(RelPathError::Absolute(text));
        }
        if text.contains(['\0', '\\']) {
            return Err(RelPathError::BadCharacter(text));
        }
        if text.len() > MAX_PATH_LEN || text.split('/').any(|c| c.len() > MAX_NAME_LEN) {
            return Err(RelPathError::TooLong { len: text.len() });
        }
        if text
            .split('/')
            .any(|c| c.is_empty() || c == "." || c == "..")
        {
            return Err(RelPathError::BadComponent(text));
        }
        Ok(Self(CompactString::from(text)))
    }

    /// The path of `path` relative to `root`, both local file-system paths.
    pub fn from_local(root: &Path, path: &Path) -> Result<Self, RelPathError> {
        let outside = || RelPathError::OutsideRoot {
            path: path.to_owned(),
            root: root.to_owned(),
        };
        let relative = path.strip_prefix(root).map_err(|_| outside())?;
        let mut parts = Vec::new();
        for component in relative.components() {
            match component {
                std::path::Component::Normal(part) => {
                    parts.push(part.to_str().ok_or_else(outside)?)
                }
                _ => return Err(outside()),
            }
        }
        Self::new(parts.join("/"))
    }

    /// The path as `/`-separated text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// This path under `root` on the local file system.
    pub fn to_local(&self, root: &Path) -> PathBuf {
        let mut out = root.to_owned();
        out.extend(self.0.split('/'));
        out
    }

    /// The last component.
    pub fn file_name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The folder holding this path, or `None` at the top of the task.
    pub fn parent(&self) -> Option<RelPath> {
        self.0
            .rsplit_once('/')
            .map(|(parent, _)| Self(CompactString::from(parent)))
    }

    /// Whether `self` is `other` or lies inside it.
    pub fn starts_with(&self, other: &RelPath) -> bool {
        self.0 == other.0
            || (self.0.starts_with(other.0.as_str())
                && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }

    /// `self` with `child` appended.
    pub fn join(&self, child: &RelPath) -> RelPath {
        Self(compact_str::format_compact!("{}/{}", self.0, child.0))
    }
}

impl TryFrom<String> for RelPath {
    type Error = RelPathError;
    fn try_from(text: String) -> Result<Self, Self::Error> {
        Self::new(text)
    }
}

impl TryFrom<&str> for RelPath {
    type Error = RelPathError;
    fn try_from(text: &str) -> Result<Self, Self::Error> {
        Self::new(text)
    }
}

impl From<RelPath> for String {
    fn from(path: RelPath) -> Self {
        path.0.into()
    }
}

impl fmt::Display for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for RelPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RelPath({:?})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn accepts_ordinary_paths() {
        for ok in ["a", "a/b", "dir/.hidden", "a/b/c.txt", "..a", "a..", "é/ü"] {
            assert!(RelPath::new(ok).is_ok(), "{ok}");
        }
    }

    #[test]
    fn paths_and_names_are_bounded() {
        assert!(RelPath::new("n".repeat(MAX_NAME_LEN)).is_ok());
        assert!(matches!(
            RelPath::new("n".repeat(MAX_NAME_LEN + 1)),
            Err(RelPathError::TooLong { .. })
        ));
        let deep = vec!["a"; MAX_PATH_LEN / 2].join("/");
        assert!(RelPath::new(deep.clone()).is_ok());
        assert!(matches!(
            RelPath::new(format!("{deep}/bb")),
            Err(RelPathError::TooLong { .. })
        ));
    }

    #[test]
    fn rejects_escapes() {
        assert_eq!(RelPath::new(""), Err(RelPathError::Empty));
        assert!(matches!(
            RelPath::new("/etc"),
            Err(RelPathError::Absolute(_))
        ));
        for bad in ["..", "a/../b", "./a", "a//b", "a/", "a/."] {
            assert!(
                matches!(RelPath::new(bad), Err(RelPathError::BadComponent(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            RelPath::new("a\\..\\b"),
            Err(RelPathError::BadCharacter(_))
        ));
        assert!(matches!(
            RelPath::new("a\0b"),
            Err(RelPathError::BadCharacter(_))
        ));
    }

    #[test]
    fn deserializing_checks_too() {
        let evil = postcard::to_stdvec("../../etc/passwd").unwrap();
        assert!(postcard::from_bytes::<RelPath>(&evil).is_err());
    }

    #[test]
    fn local_round_trip() {
        let root = Path::new("/tmp/root");
        let p = RelPath::new("a/b/c").unwrap();
        let local = p.to_local(root);
        assert_eq!(local, Path::new("/tmp/root/a/b/c"));
        assert_eq!(RelPath::from_local(root, &local).unwrap(), p);
        assert!(RelPath::from_local(root, Path::new("/tmp/other/x")).is_err());
        assert!(RelPath::from_local(root, root).is_err());
    }

    #[test]
    fn family() {
        let p = RelPath::new("a/b/c.txt").unwrap();
        assert_eq!(p.file_name(), "c.txt");
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert!(p.starts_with(&RelPath::new("a/b").unwrap()));
        assert!(!p.starts_with(&RelPath::new("a/b/c").unwrap()));
        assert!(RelPath::new("top").unwrap().parent().is_none());
    }

    proptest! {
        #[test]
        fn a_valid_path_never_leaves_its_root(text in "[a-z./\\\\]{0,24}") {
            if let Ok(path) = RelPath::new(text) {
                let root = Path::new("/root");
                let local = path.to_local(root);
                prop_assert!(local.starts_with(root));
                prop_assert!(local.components().all(|c| matches!(c, std::path::Component::Normal(_) | std::path::Component::RootDir)));
            }
        }
    }
}
