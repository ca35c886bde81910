//! Where a store lives, and fetching from it.

use std::fs::File;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Index, MagasinError};

/// The largest index QSync reads.
const MAX_INDEX: u64 = 16 << 20;

/// A store: a web address or a local folder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `http(s)://host/path/` (its `index.json`), or the address of the index itself.
    Web {
        /// The index's address.
        index: String,
        /// What relative download addresses are relative to (ends with `/`).
        base: String,
    },
    /// A folder holding `index.json`, or the index file itself.
    Folder {
        /// The index file.
        index: PathBuf,
        /// The folder relative download paths start from.
        base: PathBuf,
    },
}

/// Where one download comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    /// A web address.
    Web(String),
    /// A local file.
    File(PathBuf),
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Web(url) => f.write_str(url),
            Location::File(path) => write!(f, "{}", path.display()),
        }
    }
}

fn is_web(s: &str) -> bool {
    s.starts_with("http://") || s.starts_with("https://")
}

impl Source {
    /// Read a store address: `http://…`, `https://…`, `file:///…` or a folder path. An
    /// address ending in `.json` names the index itself.
    pub fn parse(address: &str) -> Result<Self, MagasinError> {
        let address = address.trim();
        if is_web(address) {
            if address.ends_with(".json") {
                let cut = address.rfind('/').map_or(address.len(), |i| i + 1);
                return Ok(Source::Web {
                    index: address.to_owned(),
                    base: address[..cut].to_owned(),
                });
            }
            let base = format!("{}/", address.trim_end_matches('/'));
            return Ok(Source::Web {
                index: format!("{base}index.json"),
                base,
            });
        }
        let path = match address.strip_prefix("file://") {
            Some(path) => path,
            None if address.contains("://") || address.is_empty() => {
                return Err(MagasinError::Address(address.to_owned()))
            }
            None => address,
        };
        let path = PathBuf::from(path);
        if path.is_file() || path.extension().is_some_and(|e| e == "json") {
            let base = path
                .parent()
                .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
            Ok(Source::Folder { index: path, base })
        } else {
            Ok(Source::Folder {
                index: path.join("index.json"),
                base: path,
            })
        }
    }

    /// Where the index is, for messages.
    pub fn index_location(&self) -> Location {
        match self {
            Source::Web { index, .. } => Location::Web(index.clone()),
            Source::Folder { index, .. } => Location::File(index.clone()),
        }
    }

    /// Fetch and check the index.
    pub fn index(&self) -> Result<Index, MagasinError> {
        let at = self.index_location();
        let mut bytes = Vec::new();
        fetch(&at, &mut bytes, MAX_INDEX, &mut |_, _| {})?;
        let text = String::from_utf8(bytes).map_err(|_| MagasinError::Index {
            at: at.to_string(),
            problem: "it is not UTF-8 text".into(),
        })?;
        Index::parse(&text, &at.to_string())
    }

    /// Where an app's `AppDownloadUrl` points: absolute addresses as they are, relative ones
    /// from the index's folder.
    pub fn locate(&self, url: &str) -> Result<Location, MagasinError> {
        if is_web(url) {
            return Ok(Location::Web(url.to_owned()));
        }
        if let Some(path) = url.strip_prefix("file://") {
            return Ok(Location::File(PathBuf::from(path)));
        }
        if url.contains("://") {
            return Err(MagasinError::Address(url.to_owned()));
        }
        match self {
            Source::Web { base, .. } => {
                if let Some(rooted) = url.strip_prefix('/') {
                    // the same scheme and host, from the root
                    let host_end = base
                        .find("://")
                        .and_then(|s| base[s + 3..].find('/').map(|i| s + 3 + i))
                        .unwrap_or(base.len());
                    Ok(Location::Web(format!("{}/{rooted}", &base[..host_end])))
                } else {
                    Ok(Location::Web(format!("{base}{url}")))
                }
            }
            Source::Folder { base, .. } => Ok(Location::File(base.join(url))),
        }
    }

    /// Download `location` into the file `dest` (created or truncated), at most `limit`
    /// bytes; `progress(done, total)` is called as bytes arrive. On error `dest` is removed.
    pub fn download(
        location: &Location,
        dest: &Path,
        limit: u64,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<u64, MagasinError> {
        let mut file = File::create(dest).map_err(|e| MagasinError::io("create", dest, e))?;
        let result = fetch(location, &mut file, limit, progress).and_then(|n| {
            file.sync_all()
                .map_err(|e| MagasinError::io("write", dest, e))?;
            Ok(n)
        });
        if result.is_err() {
            let _ = std::fs::remove_file(dest);
        }
        result
    }
}

/// Copy `location` into `out`, at most `limit` bytes.
fn fetch(
    location: &Location,
    out: &mut dyn Write,
    limit: u64,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<u64, MagasinError> {
    let too_large = || MagasinError::TooLarge {
        url: location.to_string(),
        limit,
    };
    let failed = |problem: String| MagasinError::Download {
        url: location.to_string(),
        problem,
    };
    match location {
        Location::File(path) => {
            let file = File::open(path).map_err(|e| MagasinError::io("open", path, e))?;
            let total = file.metadata().ok().map(|m| m.len());
            if total.is_some_and(|t| t > limit) {
                return Err(too_large());
            }
            copy_capped(file, out, limit, total, progress)
                .map_err(|e| e.map_or_else(too_large, |e| failed(e.to_string())))
        }
        Location::Web(url) => {
            let config = ureq::Agent::config_builder()
                .timeout_connect(Some(Duration::from_secs(15)))
                .timeout_per_read(Some(Duration::from_secs(60)))
                .max_redirects(5)
                .build();
            let agent = ureq::Agent::new_with_config(config);
            let mut response = agent.get(url).call().map_err(|e| failed(e.to_string()))?;
            let total = response.body().content_length();
            if total.is_some_and(|t| t > limit) {
                return Err(too_large());
            }
            let reader = response.body_mut().as_reader();
            copy_capped(reader, out, limit, total, progress)
                .map_err(|e| e.map_or_else(too_large, |e| failed(e.to_string())))
        }
    }
}

/// Copy with a byte cap. `Err(None)` means the cap was passed.
fn copy_capped(
    mut from: impl Read,
    out: &mut dyn Write,
    limit: u64,
    total: Option<u64>,
    progress: &mut dyn FnMut(u64, Option<u64>),
) -> Result<u64, Option<io::Error>> {
    let mut buf = vec![0u8; 256 << 10];
    let mut done = 0u64;
    loop {
        let n = match from.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(Some(e)),
        };
        done += n as u64;
        if done > limit {
            return Err(None);
        }
        out.write_all(&buf[..n]).map_err(Some)?;
        progress(done, total);
    }
    if total.is_some_and(|t| t != done) {
        return Err(Some(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("got {done} bytes of {}", total.unwrap_or(0)),
        )));
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_and_relative_downloads() {
        let web = Source::parse("http://127.0.0.1:8080/store").unwrap();
        assert_eq!(
            web.index_location(),
            Location::Web("http://127.0.0.1:8080/store/index.json".into())
        );
        assert_eq!(
            web.locate("a.tar.gz").unwrap(),
            Location::Web("http://127.0.0.1:8080/store/a.tar.gz".into())
        );
        assert_eq!(
            web.locate("/x/a.zip").unwrap(),
            Location::Web("http://127.0.0.1:8080/x/a.zip".into())
        );
        assert_eq!(
            web.locate("https://e.org/a.zip").unwrap(),
            Location::Web("https://e.org/a.zip".into())
        );
        let named = Source::parse("https://h/s/apps.json").unwrap();
        assert_eq!(
            named.locate("a.zip").unwrap(),
            Location::Web("https://h/s/a.zip".into())
        );
        let folder = Source::parse("file:///srv/store").unwrap();
        assert_eq!(
            folder.locate("a.zip").unwrap(),
            Location::File("/srv/store/a.zip".into())
        );
        assert!(Source::parse("ftp://x").is_err());
        assert!(web.locate("ftp://x/a").is_err());
    }

    #[test]
    fn downloads_stop_at_the_limit_and_leave_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        std::fs::write(&src, vec![1u8; 1000]).unwrap();
        let dest = dir.path().join("dest");
        let err =
            Source::download(&Location::File(src.clone()), &dest, 999, &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, MagasinError::TooLarge { .. }), "{err}");
        assert!(!dest.exists());
        let mut calls = 0;
        let n =
            Source::download(&Location::File(src), &dest, 1000, &mut |_, _| calls += 1).unwrap();
        assert_eq!((n, calls > 0), (1000, true));
        // a stream that lies about nothing but is longer than the cap
        let err = copy_capped(
            io::repeat(0).take(5000),
            &mut io::sink(),
            4096,
            None,
            &mut |_, _| {},
        );
        assert!(matches!(err, Err(None)));
    }
}
