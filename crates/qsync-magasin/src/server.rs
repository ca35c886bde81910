//! `qsync store serve DIR`: a small HTTP/1.1 server for a store folder.
//!
//! `GET /` answers the folder's `index.json`; `GET /<path>` a file under the folder, streamed.
//! Only regular files inside the folder are served: no `..`, no hidden files, no listings,
//! and no symbolic link anywhere on the way (a link could point out of the folder), no FIFO
//! or device (opening a FIFO would hang). Connections are capped, a request's headers must
//! arrive within a timeout, and a connection lives at most a bounded time, so slow or
//! numerous clients cannot hold the server.

use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, io::Error>;

/// Bounds on what clients may hold of the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServeLimits {
    /// Connections served at once; more wait to be accepted.
    pub max_connections: usize,
    /// The longest a client may take to send a request's headers.
    pub header_timeout: Duration,
    /// The longest one connection is kept, whatever it does.
    pub connection_timeout: Duration,
}

impl Default for ServeLimits {
    /// 64 connections, 10 s for headers, 10 minutes per connection.
    fn default() -> Self {
        Self {
            max_connections: 64,
            header_timeout: Duration::from_secs(10),
            connection_timeout: Duration::from_secs(600),
        }
    }
}

/// Serve the store folder `dir` on `listener` with the default limits, until the task is
/// dropped.
pub async fn serve(dir: PathBuf, listener: TcpListener) -> io::Result<()> {
    serve_with(dir, listener, ServeLimits::default()).await
}

/// Serve the store folder `dir` on `listener` within `limits`.
pub async fn serve_with(
    dir: PathBuf,
    listener: TcpListener,
    limits: ServeLimits,
) -> io::Result<()> {
    let slots = Arc::new(tokio::sync::Semaphore::new(limits.max_connections.max(1)));
    loop {
        // Wait for a free slot before accepting: extra clients wait in the kernel's queue.
        let Ok(slot) = Arc::clone(&slots).acquire_owned().await else {
            return Ok(());
        };
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // A client that went away before being accepted, or no file descriptor left
            // for a moment: not a reason to stop serving.
            Err(e) if is_transient(&e) => {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        let dir = dir.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| respond(dir.clone(), req));
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(limits.header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service);
            let _ = tokio::time::timeout(limits.connection_timeout, connection).await;
            drop(slot);
        });
    }
}

fn is_transient(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
            | io::ErrorKind::WouldBlock
    ) || e.raw_os_error() == Some(24) // EMFILE
        || e.raw_os_error() == Some(23) // ENFILE
}

fn plain(status: StatusCode, text: &'static str) -> Response<Body> {
    let mut response = Response::new(
        Full::new(Bytes::from_static(text.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *response.status_mut() = status;
    response
}

/// The parts of the path a request names, if it is one the server may give (`[]` is the
/// index).
fn parts_for(path: &str) -> Option<Vec<String>> {
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let parts: Vec<String> = path
        .split('/')
        .filter(|p| !p.is_empty())
        .map(str::to_owned)
        .collect();
    if parts
        .iter()
        .any(|p| p.starts_with('.') || p.contains('\\') || p.contains('\0'))
    {
        return None;
    }
    Some(parts)
}

/// The file a request path names, if it is one the server may give (for tests: the server
/// itself opens with [`open_inside`]).
#[cfg(test)]
fn file_for(dir: &Path, path: &str) -> Option<PathBuf> {
    let parts = parts_for(path)?;
    if parts.is_empty() {
        return Some(dir.join("index.json"));
    }
    Some(parts.iter().fold(dir.to_path_buf(), |d, p| d.join(p)))
}

/// Open the regular file `parts` names under `dir`, or `None`. Each folder on the way is
/// opened relative to the one before, refusing links (`O_NOFOLLOW | O_DIRECTORY`), so a
/// folder swapped for a link between two requests, or during one, cannot lead outside. The
/// last part is opened the same way and without blocking (a FIFO would otherwise wait for a
/// writer), then checked to be a regular file.
fn open_inside(dir: &Path, parts: &[String]) -> Option<std::fs::File> {
    use rustix::fs::{Mode, OFlags, CWD};
    let (last, folders) = match parts.split_last() {
        Some((last, folders)) => (last.as_str(), folders),
        None => ("index.json", &[][..]),
    };
    let folder = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC;
    let mut at = rustix::fs::openat(CWD, dir, folder, Mode::empty()).ok()?;
    for part in folders {
        at = rustix::fs::openat(&at, part.as_str(), folder | OFlags::NOFOLLOW, Mode::empty())
            .ok()?;
    }
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let file = std::fs::File::from(rustix::fs::openat(&at, last, flags, Mode::empty()).ok()?);
    file.metadata().ok()?.file_type().is_file().then_some(file)
}

async fn respond(dir: PathBuf, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n"));
    }
    let Some(parts) = parts_for(req.uri().path()) else {
        return Ok(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    let is_json = parts.last().is_none_or(|p| p.ends_with(".json"));
    let opened = tokio::task::spawn_blocking(move || open_inside(&dir, &parts)).await;
    let Ok(Some(file)) = opened else {
        return Ok(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    let file = tokio::fs::File::from_std(file);
    let len = match file.metadata().await {
        Ok(meta) => meta.len(),
        Err(_) => return Ok(plain(StatusCode::NOT_FOUND, "not found\n")),
    };
    let body: Body = if head {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        let frames = tokio_util::io::ReaderStream::new(file).map_ok(Frame::data);
        BodyExt::boxed(StreamBody::new(frames))
    };
    let kind = if is_json {
        "application/json"
    } else {
        "application/octet-stream"
    };
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_LENGTH, len.into());
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(kind));
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Described, Location, Policy, Source};
    use std::io::{Read, Write};
    use std::time::Instant;

    #[test]
    fn paths_stay_in_the_folder() {
        let dir = Path::new("/store");
        assert_eq!(file_for(dir, "/"), Some(dir.join("index.json")));
        assert_eq!(file_for(dir, "/a%20b.zip"), Some(dir.join("a b.zip")));
        assert_eq!(file_for(dir, "/../etc/passwd"), None);
        assert_eq!(file_for(dir, "/%2e%2e/etc/passwd"), None);
        assert_eq!(file_for(dir, "/.hidden"), None);
        assert_eq!(file_for(dir, "/%zz"), Some(dir.join("%zz"))); // not an escape: taken as is
    }

    fn runtime() -> tokio::runtime::Runtime {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap()
    }

    fn start(
        rt: &tokio::runtime::Runtime,
        dir: &Path,
        limits: ServeLimits,
    ) -> std::net::SocketAddr {
        let listener = rt.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        rt.spawn(serve_with(dir.into(), listener, limits));
        addr
    }

    /// The status line of a GET of `path`.
    fn get(addr: std::net::SocketAddr, path: &str) -> String {
        let mut stream = std::net::TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        answer.lines().next().unwrap_or("").to_owned()
    }

    #[test]
    fn a_signed_store_downloads_over_loopback() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("store");
        let key = base.path().join("store.key");
        crate::init_store(&dir, &key).unwrap();
        let archive = base.path().join("app.zip");
        let mut zip = zip::ZipWriter::new(std::fs::File::create(&archive).unwrap());
        zip.start_file("run", zip::write::SimpleFileOptions::default())
            .unwrap();
        let blob: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        zip.write_all(&blob).unwrap();
        zip.finish().unwrap();
        let json = r#"{"AppName":"App","AppDownloadUrl":"x","AppLauncherPath":"run","AppSyncDataFolderPath":"data"}"#;
        crate::add_app(
            &dir,
            Described::ToutEnUn {
                json: json.into(),
                archive: archive.clone(),
            },
        )
        .unwrap();
        crate::sign_store(&dir, &key).unwrap();

        let rt = runtime();
        let addr = start(&rt, &dir, ServeLimits::default());
        let source = Source::parse(&format!("http://{addr}/")).unwrap();
        let policy = Policy {
            insecure_http: true,
            ..Policy::default()
        };
        let signed = source.signed_index(&policy).unwrap();
        let Some(crate::Entry::ToutEnUn(app)) = signed.index.find("App") else {
            panic!("no app in {signed:?}");
        };
        let (size, sha) = app.pinned_archive().unwrap();
        let location = source.locate(app.download_url(), &policy).unwrap();
        let out = base.path().join("got");
        let mut last = (0, None);
        let n = Source::download(&location, &out, size, sha, &policy, &mut |done, total| {
            last = (done, total)
        })
        .unwrap();
        assert_eq!(last, (n, Some(n)));
        assert_eq!(
            std::fs::read(&out).unwrap(),
            std::fs::read(&archive).unwrap()
        );
        let missing = Location::Web(format!("http://{addr}/nope.zip"));
        let err = Source::download(
            &missing,
            &base.path().join("none"),
            10,
            sha,
            &policy,
            &mut |_, _| {},
        )
        .unwrap_err();
        assert!(matches!(err, crate::MagasinError::Missing { .. }), "{err}");
    }

    #[test]
    fn links_fifos_and_hidden_files_are_not_served() {
        let base = tempfile::tempdir().unwrap();
        let dir = base.path().join("store");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(base.path().join("secret"), "outside").unwrap();
        std::fs::write(dir.join("sub/ok.zip"), "fine").unwrap();
        std::os::unix::fs::symlink(base.path().join("secret"), dir.join("link.zip")).unwrap();
        std::os::unix::fs::symlink(base.path(), dir.join("up")).unwrap();
        std::fs::write(dir.join(".hidden"), "no").unwrap();
        rustix::fs::mknodat(
            rustix::fs::CWD,
            dir.join("fifo.zip"),
            rustix::fs::FileType::Fifo,
            rustix::fs::Mode::from_raw_mode(0o644),
            0,
        )
        .unwrap();
        let rt = runtime();
        let addr = start(&rt, &dir, ServeLimits::default());
        assert!(get(addr, "/sub/ok.zip").contains("200"));
        for path in [
            "/link.zip",
            "/up/secret",
            "/.hidden",
            "/fifo.zip",
            "/sub",
            "/",
        ] {
            let started = Instant::now();
            let status = get(addr, path);
            assert!(status.contains("404"), "{path}: {status}");
            assert!(started.elapsed() < Duration::from_secs(5), "{path} hung");
        }
    }

    #[test]
    fn idle_connections_are_dropped_and_capped() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("a.zip"), "x").unwrap();
        let rt = runtime();
        let limits = ServeLimits {
            max_connections: 1,
            header_timeout: Duration::from_millis(500),
            connection_timeout: Duration::from_secs(5),
        };
        let addr = start(&rt, dir.path(), limits);
        // A client that connects and says nothing holds the only slot...
        let mut idle = std::net::TcpStream::connect(addr).unwrap();
        idle.set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        std::thread::sleep(Duration::from_millis(100));
        // ...until its header timeout closes it; then the next client is served.
        let started = Instant::now();
        assert!(get(addr, "/a.zip").contains("200"));
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(300),
            "the cap let a second connection in: {waited:?}"
        );
        assert!(waited < Duration::from_secs(5), "{waited:?}");
        let mut rest = Vec::new();
        let _ = idle.read_to_end(&mut rest); // closed by the server (maybe with a 408)
    }
}
