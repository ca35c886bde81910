//! `qsync store serve DIR`: a small HTTP/1.1 server for a store folder.
//!
//! `GET /` answers the folder's `index.json`; `GET /<path>` a file under the folder, streamed.
//! Only plain files inside the folder are served: no `..`, no hidden files, no listings.

use std::convert::Infallible;
use std::io;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use futures::TryStreamExt;
use http_body_util::{combinators::BoxBody, BodyExt, Empty, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{header, Method, Request, Response, StatusCode};
use tokio::net::TcpListener;

type Body = BoxBody<Bytes, io::Error>;

/// Serve the store folder `dir` on `listener` until the task is dropped.
pub async fn serve(dir: PathBuf, listener: TcpListener) -> io::Result<()> {
    loop {
        let (stream, _) = listener.accept().await?;
        let dir = dir.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| respond(dir.clone(), req));
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
        });
    }
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

/// The file a request path names, if it is one the server may give.
fn file_for(dir: &Path, path: &str) -> Option<PathBuf> {
    let path = percent_encoding::percent_decode_str(path)
        .decode_utf8()
        .ok()?;
    let parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if parts.is_empty() {
        return Some(dir.join("index.json"));
    }
    if parts
        .iter()
        .any(|p| p.starts_with('.') || p.contains('\\') || p.contains('\0'))
    {
        return None;
    }
    Some(parts.iter().fold(dir.to_path_buf(), |d, p| d.join(p)))
}

async fn respond(dir: PathBuf, req: Request<Incoming>) -> Result<Response<Body>, Infallible> {
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return Ok(plain(StatusCode::METHOD_NOT_ALLOWED, "only GET\n"));
    }
    let Some(path) = file_for(&dir, req.uri().path()) else {
        return Ok(plain(StatusCode::NOT_FOUND, "not found\n"));
    };
    let file = match tokio::fs::File::open(&path).await {
        Ok(file) => file,
        Err(_) => return Ok(plain(StatusCode::NOT_FOUND, "not found\n")),
    };
    let len = match file.metadata().await {
        Ok(meta) if meta.is_file() => meta.len(),
        _ => return Ok(plain(StatusCode::NOT_FOUND, "not found\n")),
    };
    let body: Body = if head {
        Empty::new().map_err(|never| match never {}).boxed()
    } else {
        let frames = tokio_util::io::ReaderStream::new(file).map_ok(Frame::data);
        BodyExt::boxed(StreamBody::new(frames))
    };
    let kind = if path.extension().is_some_and(|e| e == "json") {
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
    use crate::{Location, Source};

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

    #[test]
    fn a_served_store_downloads_over_loopback() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.json"),
            r#"{"grapin_configs":[{"AppName":"Notes","AppSyncDataFolderPath":"~/.n","SupportedPlatforms":["Linux"]}]}"#,
        )
        .unwrap();
        let blob: Vec<u8> = (0..300_000u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(dir.path().join("app.tar.gz"), &blob).unwrap();

        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let listener = runtime.block_on(TcpListener::bind("127.0.0.1:0")).unwrap();
        let addr = listener.local_addr().unwrap();
        runtime.spawn(serve(dir.path().into(), listener));

        let source = Source::parse(&format!("http://{addr}/")).unwrap();
        let index = source.index().unwrap();
        assert_eq!(index.entries.len(), 1);

        let out = dir.path().join("got");
        let location = source.locate("app.tar.gz").unwrap();
        let mut last = (0, None);
        let n = Source::download(&location, &out, 1 << 20, &mut |done, total| {
            last = (done, total)
        })
        .unwrap();
        assert_eq!(n, blob.len() as u64);
        assert_eq!(last, (n, Some(n)));
        assert_eq!(std::fs::read(&out).unwrap(), blob);

        let err = Source::download(&location, &out, 1000, &mut |_, _| {}).unwrap_err();
        assert!(err.to_string().contains("larger than"), "{err}");
        let missing = Source::download(
            &source.locate("nope.zip").unwrap(),
            &out,
            1000,
            &mut |_, _| {},
        );
        assert!(missing.unwrap_err().to_string().contains("404"));
        assert!(matches!(source.locate("x").unwrap(), Location::Web(_)));
    }
}
