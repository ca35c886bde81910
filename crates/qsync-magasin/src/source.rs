//! Where a store lives, and fetching from it under a [`Policy`].
//!
//! Every index is read with its signature ([`Source::signed_index`]); every archive is
//! downloaded against the size and SHA-256 its signed entry pins ([`Source::download`]), into
//! a file that is removed unless both match. Plain http is refused unless the policy allows
//! it, also after a redirect; redirects are bounded and a whole download has a deadline.

use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::signed::{hex, SignedIndex, MAX_SIGNATURE};
use crate::MagasinError;

/// The largest index QSync reads.
const MAX_INDEX: u64 = 16 << 20;

/// The most redirects followed for one request.
const MAX_REDIRECTS: u32 = 3;

/// What a client accepts from stores.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Policy {
    /// Whether plain `http://` stores and archives are allowed (`--insecure-http`).
    pub insecure_http: bool,
    /// The longest one whole download (index or archive) may take.
    pub timeout: Duration,
}

impl Default for Policy {
    /// https only; 30 minutes per download.
    fn default() -> Self {
        Self {
            insecure_http: false,
            timeout: Duration::from_secs(30 * 60),
        }
    }
}

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

/// `scheme://host[:port]` of a web address.
fn origin(url: &str) -> &str {
    let host_end = url
        .find("://")
        .and_then(|s| url[s + 3..].find('/').map(|i| s + 3 + i))
        .unwrap_or(url.len());
    &url[..host_end]
}

impl Source {
    /// Read a store address: `http://…`, `https://…`, `file:///…` or a folder path. An
    /// address ending in `.json` names the index itself.
    pub fn parse(address: &str) -> Result<Self, MagasinError> {
        let address = address.trim();
        if is_web(address) && address.contains(['?', '#']) {
            return Err(MagasinError::Address(address.to_owned()));
        }
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

    /// The name a store's key is pinned under: its index's address without the scheme,
    /// with the host in lower case and no default port (so `http://H:80/s/` and
    /// `https://h/s/index.json` are one store, with one pin), or the index file's real path.
    pub fn id(&self) -> String {
        match self {
            Source::Web { index, .. } => {
                let rest = index.split_once("://").map_or(index.as_str(), |(_, r)| r);
                let (host, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
                let host = host.to_ascii_lowercase();
                let host = host
                    .strip_suffix(":443")
                    .or_else(|| host.strip_suffix(":80"))
                    .unwrap_or(&host);
                format!("{host}{path}")
            }
            Source::Folder { index, .. } => std::fs::canonicalize(index)
                .unwrap_or_else(|_| index.clone())
                .display()
                .to_string(),
        }
    }

    fn signature_location(&self) -> Location {
        match self {
            Source::Web { index, .. } => Location::Web(format!("{index}.sig")),
            Source::Folder { index, .. } => {
                let mut name = index.clone().into_os_string();
                name.push(".sig");
                Location::File(name.into())
            }
        }
    }

    /// Fetch the index and its signature, and check the signature. Whether the key that
    /// signed is the store's is for [`crate::Trust::admit`] to say.
    pub fn signed_index(&self, policy: &Policy) -> Result<SignedIndex, MagasinError> {
        let at = self.index_location();
        let mut index = Vec::new();
        fetch(&at, &mut index, MAX_INDEX, policy, &mut |_, _| {})?;
        let mut signature = Vec::new();
        let signature = match fetch(
            &self.signature_location(),
            &mut signature,
            MAX_SIGNATURE,
            policy,
            &mut |_, _| {},
        ) {
            Ok(_) => Some(signature),
            Err(MagasinError::Missing { .. }) => None,
            Err(e) => return Err(e),
        };
        SignedIndex::verify(&index, signature.as_deref(), &at.to_string())
    }

    /// Where an app's `AppDownloadUrl` points: absolute addresses as they are, relative ones
    /// from the index's folder. A store on the web may not send a client to a file of its
    /// machine; plain http needs the policy's consent.
    pub fn locate(&self, url: &str, policy: &Policy) -> Result<Location, MagasinError> {
        let located = self.resolve(url)?;
        if let (Source::Web { .. }, Location::File(_)) = (self, &located) {
            return Err(MagasinError::Refused {
                url: url.to_owned(),
                problem: "a store on the web may not point at a file of this machine".into(),
            });
        }
        if let Location::Web(web) = &located {
            if web.starts_with("http://") && !policy.insecure_http {
                return Err(MagasinError::Insecure { url: web.clone() });
            }
        }
        Ok(located)
    }

    fn resolve(&self, url: &str) -> Result<Location, MagasinError> {
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
            Source::Web { base, .. } => match url.strip_prefix('/') {
                // the same scheme and host, from the root
                Some(rooted) => Ok(Location::Web(format!("{}/{rooted}", origin(base)))),
                None => Ok(Location::Web(format!("{base}{url}"))),
            },
            Source::Folder { base, .. } => Ok(Location::File(base.join(url))),
        }
    }

    /// Download `location` into the file `dest` (created or truncated). It must be exactly
    /// `size` bytes whose SHA-256 is `sha256` (hex): the download stops past `size`, and
    /// `dest` is removed on any failure, a wrong hash included. `progress(done, total)` is
    /// called as bytes arrive.
    pub fn download(
        location: &Location,
        dest: &Path,
        size: u64,
        sha256: &str,
        policy: &Policy,
        progress: &mut dyn FnMut(u64, Option<u64>),
    ) -> Result<u64, MagasinError> {
        // A new file only: never through a link or into a file someone left there.
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(dest)
            .map_err(|e| MagasinError::io("create", dest, e))?;
        let mut hashing = Hashing {
            out: &mut file,
            hash: ring::digest::Context::new(&ring::digest::SHA256),
        };
        let fetched = fetch(location, &mut hashing, size, policy, progress);
        let got = hex(hashing.hash.finish().as_ref());
        let result = fetched.and_then(|n| {
            if n != size {
                return Err(MagasinError::Tampered {
                    url: location.to_string(),
                    problem: format!("it is {n} bytes, the index says {size}"),
                });
            }
            if got != sha256 {
                return Err(MagasinError::Tampered {
                    url: location.to_string(),
                    problem: format!("its SHA-256 is {got}, the index says {sha256}"),
                });
            }
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

/// A writer that hashes what goes through it.
struct Hashing<'a> {
    out: &'a mut dyn Write,
    hash: ring::digest::Context,
}

impl Write for Hashing<'_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.out.write(buf)?;
        self.hash.update(&buf[..n]);
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.out.flush()
    }
}

/// Copy `location` into `out`, at most `limit` bytes.
fn fetch(
    location: &Location,
    out: &mut dyn Write,
    limit: u64,
    policy: &Policy,
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
    let missing = || MagasinError::Missing {
        url: location.to_string(),
    };
    match location {
        Location::File(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            // Not blocking: a FIFO would otherwise wait forever for a writer.
            let file = match std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(rustix::fs::OFlags::NONBLOCK.bits() as i32)
                .open(path)
            {
                Ok(file) => file,
                Err(e) if e.kind() == io::ErrorKind::NotFound => return Err(missing()),
                Err(e) => return Err(MagasinError::io("open", path, e)),
            };
            let meta = file
                .metadata()
                .map_err(|e| MagasinError::io("read", path, e))?;
            if !meta.is_file() {
                return Err(failed("it is not a regular file".into()));
            }
            let total = Some(meta.len());
            if total.is_some_and(|t| t > limit) {
                return Err(too_large());
            }
            copy_capped(file, out, limit, total, progress)
                .map_err(|e| e.map_or_else(too_large, |e| failed(e.to_string())))
        }
        Location::Web(url) => {
            if url.starts_with("http://") && !policy.insecure_http {
                return Err(MagasinError::Insecure { url: url.clone() });
            }
            let config = ureq::Agent::config_builder()
                .https_only(!policy.insecure_http)
                .max_redirects(MAX_REDIRECTS)
                .timeout_global(Some(policy.timeout))
                .timeout_connect(Some(Duration::from_secs(15)))
                .timeout_per_read(Some(Duration::from_secs(60)))
                .build();
            let agent = ureq::Agent::new_with_config(config);
            let mut response = match agent.get(url).call() {
                Ok(response) => response,
                Err(ureq::Error::StatusCode(404)) => return Err(missing()),
                Err(e) => return Err(failed(e.to_string())),
            };
            let total = response.body().content_length();
            if total.is_some_and(|t| t > limit) {
                return Err(too_large());
            }
            let reader = response
                .body_mut()
                .with_config()
                .limit(limit.saturating_add(1))
                .reader();
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

    fn open() -> Policy {
        Policy {
            insecure_http: true,
            ..Policy::default()
        }
    }

    #[test]
    fn addresses_and_relative_downloads() {
        let web = Source::parse("http://127.0.0.1:8080/store").unwrap();
        assert_eq!(
            web.index_location(),
            Location::Web("http://127.0.0.1:8080/store/index.json".into())
        );
        assert_eq!(
            web.locate("a.tar.gz", &open()).unwrap(),
            Location::Web("http://127.0.0.1:8080/store/a.tar.gz".into())
        );
        assert_eq!(
            web.locate("/x/a.zip", &open()).unwrap(),
            Location::Web("http://127.0.0.1:8080/x/a.zip".into())
        );
        assert_eq!(
            web.locate("https://e.org/a.zip", &open()).unwrap(),
            Location::Web("https://e.org/a.zip".into())
        );
        let named = Source::parse("https://h/s/apps.json").unwrap();
        assert_eq!(
            named.locate("a.zip", &Policy::default()).unwrap(),
            Location::Web("https://h/s/a.zip".into())
        );
        let folder = Source::parse("file:///srv/store").unwrap();
        assert_eq!(
            folder.locate("a.zip", &Policy::default()).unwrap(),
            Location::File("/srv/store/a.zip".into())
        );
        assert!(Source::parse("ftp://x").is_err());
        assert!(Source::parse("https://h/s/?x=1").is_err());
        // one store, one pin, however its address is written
        let ids: Vec<String> = [
            "https://H.example/s/",
            "http://h.example:80/s",
            "https://h.example:443/s/index.json",
        ]
        .iter()
        .map(|a| Source::parse(a).unwrap().id())
        .collect();
        assert!(
            ids.iter().all(|id| id == "h.example/s/index.json"),
            "{ids:?}"
        );
        assert!(web.locate("ftp://x/a", &open()).is_err());
    }

    #[test]
    fn a_web_store_cannot_name_local_files_nor_plain_http_without_consent() {
        let web = Source::parse("https://h/store/").unwrap();
        let err = web.locate("file:///etc/passwd", &open()).unwrap_err();
        assert!(matches!(err, MagasinError::Refused { .. }), "{err}");
        let err = web
            .locate("http://h/a.zip", &Policy::default())
            .unwrap_err();
        assert!(matches!(err, MagasinError::Insecure { .. }), "{err}");
        let plain = Source::parse("http://127.0.0.1:1/").unwrap();
        let err = plain.signed_index(&Policy::default()).unwrap_err();
        assert!(matches!(err, MagasinError::Insecure { .. }), "{err}");
    }

    #[test]
    fn downloads_are_checked_against_size_and_hash_and_leave_nothing_otherwise() {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("src");
        let content = vec![1u8; 1000];
        std::fs::write(&src, &content).unwrap();
        let sha = crate::sha256_hex(&content);
        let dest = dir.path().join("dest");
        let at = Location::File(src.clone());
        let policy = Policy::default();
        let err = Source::download(&at, &dest, 999, &sha, &policy, &mut |_, _| {}).unwrap_err();
        assert!(matches!(err, MagasinError::TooLarge { .. }), "{err}");
        assert!(!dest.exists());
        let err = Source::download(&at, &dest, 1001, &sha, &policy, &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("1000 bytes"), "{err}");
        assert!(!dest.exists());
        let wrong = crate::sha256_hex(b"other");
        let err = Source::download(&at, &dest, 1000, &wrong, &policy, &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("SHA-256"), "{err}");
        assert!(!dest.exists());
        let mut calls = 0;
        let n = Source::download(&at, &dest, 1000, &sha, &policy, &mut |_, _| calls += 1).unwrap();
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
