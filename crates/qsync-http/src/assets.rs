//! The web UI's files, embedded in the binary (no build step: plain HTML, CSS and
//! JavaScript under `assets/`), and the headers every answer carries.

use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Response, StatusCode};

use crate::routes::{error, full, Body};

/// The UI.
pub(crate) const INDEX: &str = include_str!("../assets/index.html");
/// The login form.
pub(crate) const LOGIN: &str = include_str!("../assets/login.html");
/// The page's script, as ES modules.
const SCRIPTS: &[(&str, &str)] = &[
    ("app.js", include_str!("../assets/app.js")),
    ("api.js", include_str!("../assets/api.js")),
    ("folders.js", include_str!("../assets/folders.js")),
    ("lists.js", include_str!("../assets/lists.js")),
    ("feed.js", include_str!("../assets/feed.js")),
];
const STYLE_CSS: &str = include_str!("../assets/style.css");

/// An HTML page.
pub(crate) fn page(html: &'static str) -> Response<Body> {
    typed(html, "text/html; charset=utf-8")
}

/// `/assets/NAME`.
pub(crate) fn asset(name: &str) -> Response<Body> {
    if name == "style.css" {
        return typed(STYLE_CSS, "text/css; charset=utf-8");
    }
    match SCRIPTS.iter().find(|(file, _)| *file == name) {
        Some((_, script)) => typed(script, "text/javascript; charset=utf-8"),
        None => error(StatusCode::NOT_FOUND, "not_found", "no such file"),
    }
}

fn typed(text: &'static str, kind: &'static str) -> Response<Body> {
    let mut response = Response::new(full(text));
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(kind));
    response
}

/// The headers of every answer: only this server's own scripts and styles run on its
/// pages, no other site may frame them, nothing is cached or sniffed, and no address of
/// ours leaks in a `Referer`.
pub(crate) fn secure(headers: &mut HeaderMap) {
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'",
        ),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    headers
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
}
