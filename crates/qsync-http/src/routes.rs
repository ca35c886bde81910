//! The routes: the pages (login, the UI and its assets), then `/rest/`, where each call is
//! checked (host, caller, CSRF) and becomes one command to the daemon.

use std::convert::Infallible;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{self, HeaderMap, HeaderValue};
use hyper::{Method, Request as HttpRequest, Response, StatusCode};
use qsync_base::TaskId;
use qsync_control::{Command, DaemonEvent, FolderType, KeepSide, Reply, Request};
use serde::Deserialize;
use tokio::sync::oneshot;

use crate::auth::Caller;
use crate::{assets, sse, Shared};

pub(crate) type Body = BoxBody<Bytes, Infallible>;

/// The largest request body read (a JSON command).
const MAX_BODY: usize = 1 << 20;

/// The largest login form read (before anyone is known).
const MAX_LOGIN_BODY: usize = 4096;

/// The longest a request's body may take to come.
const BODY_TIME: std::time::Duration = std::time::Duration::from_secs(10);

/// One request, answered; every answer carries the security headers.
pub(crate) async fn respond(
    shared: Arc<Shared>,
    request: HttpRequest<Incoming>,
) -> Result<Response<Body>, Infallible> {
    let mut response = route(&shared, request).await;
    assets::secure(response.headers_mut());
    Ok(response)
}

async fn route(shared: &Arc<Shared>, request: HttpRequest<Incoming>) -> Response<Body> {
    if !shared
        .gate
        .host_allowed(text(request.headers(), header::HOST))
    {
        return error(
            StatusCode::MISDIRECTED_REQUEST,
            "host",
            "this server does not answer to that host name",
        );
    }
    let path = request.uri().path().to_owned();
    match (request.method().clone(), path.as_str()) {
        (Method::GET, "/") => match caller(shared, request.headers()) {
            Some(Caller::Session(_)) => assets::page(assets::INDEX),
            _ => redirect("/login", None),
        },
        (Method::GET, "/login") => match query(request.uri().query(), "token") {
            Some(token) if shared.gate.use_login_token(&token) => login(shared),
            Some(_) => redirect("/login?expired=1", None),
            None => assets::page(assets::LOGIN),
        },
        (Method::POST, "/login") => login_form(shared, request).await,
        (Method::POST, "/logout") => logout(shared, request.headers()),
        (Method::GET, asset) if asset.starts_with("/assets/") => assets::asset(&asset[8..]),
        (_, rest) if rest.starts_with("/rest/") => api(shared, request).await,
        _ => error(StatusCode::NOT_FOUND, "not_found", "no such page"),
    }
}

/// `/rest/...`: the caller proven, a change's CSRF token and origin checked, then the call.
async fn api(shared: &Arc<Shared>, request: HttpRequest<Incoming>) -> Response<Body> {
    let headers = request.headers();
    let Some(who) = caller(shared, headers) else {
        return error(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "give the API key in X-API-Key, or log in",
        );
    };
    let changes = request.method() != Method::GET && request.method() != Method::HEAD;
    if changes && !shared.gate.origin_allowed(text(headers, header::ORIGIN)) {
        return error(
            StatusCode::FORBIDDEN,
            "origin",
            "a request from another site",
        );
    }
    // A session's every call carries its page token (an event stream, which cannot set
    // headers, in the query).
    if let Caller::Session(session) = &who {
        let in_query = query(request.uri().query(), "csrf");
        let given = text(headers, "x-csrf-token")
            .or(in_query.as_deref())
            .unwrap_or_default();
        if !crate::auth::same(given, &session.csrf) {
            return error(
                StatusCode::FORBIDDEN,
                "csrf",
                "missing or wrong X-CSRF-Token",
            );
        }
    }
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path["/rest/".len()..].split('/').collect();
    let query_since = query(request.uri().query(), "since");
    match (method, segments.as_slice()) {
        (Method::GET, ["session"]) => session(shared, &who),
        (Method::POST, ["login-token"]) => login_token(shared, &who),
        (Method::GET, ["events"]) => {
            // The browser's reconnect says where it was; a first connection may say it
            // in the query.
            let since = text(request.headers(), "last-event-id")
                .map(str::to_owned)
                .or(query_since)
                .and_then(|s| s.trim().parse().ok());
            let session = match who {
                Caller::Key => None,
                Caller::Session(_) => cookie(request.headers(), &shared.gate.cookie),
            };
            sse::stream(shared, since, session)
        }
        (Method::GET, _) => match read_command(&segments, request.uri().query()) {
            Ok(command) => ask(shared, command).await,
            Err(fail) => fail.response(),
        },
        (method, _) => {
            let body = match body(request, MAX_BODY).await {
                Ok(body) => body,
                Err(fail) => return fail.response(),
            };
            match change_command(&method, &segments, &body) {
                Ok(Call::Command(command))
                    if matches!(who, Caller::Session(_)) && !browser_may(&command) =>
                {
                    error(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        "this command needs the API key",
                    )
                }
                Ok(Call::Command(command)) => ask(shared, command).await,
                Ok(Call::Link(link)) => start_link(shared, link).await,
                Err(fail) => fail.response(),
            }
        }
    }
}

/// The command a `GET /rest/...` reads with.
fn read_command(segments: &[&str], q: Option<&str>) -> Result<Command, Fail> {
    Ok(match segments {
        ["status"] => Command::Status,
        ["tasks"] => Command::TaskList,
        ["devices"] => Command::Devices,
        ["conflicts"] => Command::Conflicts { path: None },
        ["versions"] => Command::Versions {
            path: None,
            newest: match query(q, "newest") {
                Some(n) => Some(n.parse().map_err(|_| {
                    let why = "newest: a count of versions".into();
                    Fail(StatusCode::BAD_REQUEST, "bad_request", why)
                })?),
                None => None,
            },
        },
        ["questions"] => Command::Questions,
        ["discovered"] => Command::Discovered,
        ["apps"] => Command::AppList,
        ["tasks", task, "out-of-sync"] => Command::OutOfSync {
            task: task_id(task)?,
        },
        _ => {
            return Err(Fail(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such call".into(),
            ))
        }
    })
}

/// Whether a browser session may send `command` (`POST /rest/command`): not those that
/// stop the daemon, change its settings or install apps, which need the API key.
fn browser_may(command: &Command) -> bool {
    !matches!(
        command,
        Command::Shutdown
            | Command::Configure { .. }
            | Command::AppAdd { .. }
            | Command::AppRemove { .. }
    )
}

/// What a change asks for: one command, or a link (which answers with its code first).
enum Call {
    Command(Command),
    Link(LinkBody),
}

#[derive(Deserialize)]
struct TaskAddBody {
    path: std::path::PathBuf,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    folder_type: Option<FolderType>,
}

#[derive(Deserialize)]
struct AnswerBody {
    text: String,
}

#[derive(Deserialize)]
struct ResolveBody {
    path: std::path::PathBuf,
    keep: KeepSide,
}

#[derive(Deserialize)]
struct LinkBody {
    task: TaskId,
    address: String,
    #[serde(default)]
    expect: Option<String>,
}

/// The command a `POST` or `DELETE /rest/...` changes with, from its JSON body.
fn change_command(method: &Method, segments: &[&str], body: &[u8]) -> Result<Call, Fail> {
    let command = match (method.clone(), segments) {
        (Method::POST, ["tasks"]) => {
            let add: TaskAddBody = json(body)?;
            Command::TaskAdd {
                path: add.path,
                name: add.name,
                folder_type: add.folder_type,
            }
        }
        (Method::DELETE, ["tasks", task]) => Command::TaskRemove {
            task: task_id(task)?,
        },
        (Method::POST, ["tasks", task, pause @ ("pause" | "resume")]) => Command::TaskSet {
            task: task_id(task)?,
            links_out: None,
            versions: None,
            paused: Some(*pause == "pause"),
            folder_type: None,
        },
        (Method::POST, ["questions", id, "answer"]) => {
            let answer: AnswerBody = json(body)?;
            Command::Answer {
                id: (*id).to_owned(),
                text: answer.text,
            }
        }
        (Method::POST, ["resolve"]) => {
            let resolve: ResolveBody = json(body)?;
            Command::Resolve {
                path: resolve.path,
                keep: resolve.keep,
            }
        }
        (Method::POST, ["link"]) => return Ok(Call::Link(json(body)?)),
        (Method::POST, ["command"]) => match json(body)? {
            Command::Events | Command::Link { .. } => {
                return Err(Fail(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    "events and links have their own calls: GET /rest/events, POST /rest/link"
                        .into(),
                ))
            }
            command => command,
        },
        _ => {
            return Err(Fail(
                StatusCode::NOT_FOUND,
                "not_found",
                "no such call".into(),
            ))
        }
    };
    Ok(Call::Command(command))
}

/// Hand `command` to the daemon and answer with its reply.
async fn ask(shared: &Shared, command: Command) -> Response<Body> {
    let (reply, answer) = oneshot::channel();
    if !(shared.deliver)(Request::Command(command, reply)) {
        return stopped();
    }
    match answer.await {
        Ok(reply) => from_reply(&reply),
        Err(_) => stopped(),
    }
}

/// `POST /rest/link`: answered with the code as soon as the daemon has it; how the link
/// ends comes later as a `link_ended` event.
async fn start_link(shared: &Shared, link: LinkBody) -> Response<Body> {
    let (reply, mut last) = oneshot::channel();
    let (progress, mut steps) = tokio::sync::mpsc::unbounded_channel();
    let task = link.task;
    let request = Request::Link {
        task,
        address: link.address,
        expect: link.expect,
        progress,
        reply,
    };
    if !(shared.deliver)(request) {
        return stopped();
    }
    tokio::select! {
        Some(code) = steps.recv() => {
            let feed = shared.feed.clone();
            tokio::spawn(async move {
                // Held until the end: the daemon gives a link up when nobody hears its steps.
                let _steps = steps;
                let (ok, message) = match last.await {
                    Ok(Reply::Error { message }) => (false, message),
                    Ok(reply) => (true, reply.to_string()),
                    Err(_) => (false, "the daemon stopped".to_owned()),
                };
                feed.publish(DaemonEvent::LinkEnded { task, ok, message });
            });
            from_reply(&code)
        }
        ended = &mut last => match ended {
            Ok(reply) => from_reply(&reply),
            Err(_) => stopped(),
        },
    }
}

/// `GET /rest/session`: who calls, and this device's name.
fn session(shared: &Shared, who: &Caller) -> Response<Body> {
    let kind = match who {
        Caller::Session(_) => "session",
        Caller::Key => "key",
    };
    reply_json(
        StatusCode::OK,
        &serde_json::json!({ "caller": kind, "name": shared.name }),
    )
}

/// `POST /rest/login-token` (API key only): a one-time address that logs a browser in.
fn login_token(shared: &Shared, who: &Caller) -> Response<Body> {
    if !matches!(who, Caller::Key) {
        return error(
            StatusCode::FORBIDDEN,
            "forbidden",
            "login tokens need the API key",
        );
    }
    match shared.gate.login_token() {
        Ok(token) => reply_json(
            StatusCode::OK,
            &serde_json::json!({
                "token": token,
                "url": format!("http://{}/login?token={token}", shared.address),
            }),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

/// A session opened: its cookie set, and on to the UI with the page's token in the
/// fragment (never sent to a server; the page keeps it in its origin's storage).
fn login(shared: &Shared) -> Response<Body> {
    match shared.gate.open_session() {
        Ok((token, csrf)) => redirect(
            &format!("/#csrf={csrf}"),
            Some(format!(
                "{}={token}; Path=/; HttpOnly; SameSite=Strict",
                shared.gate.cookie
            )),
        ),
        Err(e) => error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            &e.to_string(),
        ),
    }
}

/// `POST /login` with the form's `key`.
async fn login_form(shared: &Shared, request: HttpRequest<Incoming>) -> Response<Body> {
    if !shared
        .gate
        .origin_allowed(text(request.headers(), header::ORIGIN))
    {
        return error(
            StatusCode::FORBIDDEN,
            "origin",
            "a request from another site",
        );
    }
    let body = match body(request, MAX_LOGIN_BODY).await {
        Ok(body) => body,
        Err(fail) => return fail.response(),
    };
    let form = String::from_utf8_lossy(&body).into_owned();
    match query(Some(&form), "key") {
        Some(key) if shared.gate.key_matches(&key) => login(shared),
        _ => redirect("/login?failed=1", None),
    }
}

/// `POST /logout`: the session ends, and its cookie goes (only with the page's token:
/// another site can neither end a session nor clear its cookie).
fn logout(shared: &Shared, headers: &HeaderMap) -> Response<Body> {
    let Some(Caller::Session(session)) = caller(shared, headers) else {
        return redirect("/login", None);
    };
    let given = text(headers, "x-csrf-token").unwrap_or_default();
    if !crate::auth::same(given, &session.csrf) {
        return error(
            StatusCode::FORBIDDEN,
            "csrf",
            "missing or wrong X-CSRF-Token",
        );
    }
    if let Some(token) = cookie(headers, &shared.gate.cookie) {
        shared.gate.close_session(&token);
    }
    redirect(
        "/login",
        Some(format!("{}=; Path=/; Max-Age=0", shared.gate.cookie)),
    )
}

/// Who calls: the API key's header, or the session cookie.
fn caller(shared: &Shared, headers: &HeaderMap) -> Option<Caller> {
    let bearer = text(headers, header::AUTHORIZATION).and_then(|a| a.strip_prefix("Bearer "));
    let key = text(headers, "x-api-key").or(bearer);
    let session = cookie(headers, &shared.gate.cookie);
    shared.gate.caller(key, session.as_deref())
}

fn text<K: header::AsHeaderName>(headers: &HeaderMap, name: K) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The value of cookie `name`, if the request has it.
fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
}

/// The value of `name` in a query string or a form (`a=1&b=2`), decoded.
fn query(query: Option<&str>, name: &str) -> Option<String> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| {
            let v = v.replace('+', " ");
            percent_encoding::percent_decode_str(&v)
                .decode_utf8_lossy()
                .into_owned()
        })
}

fn task_id(text: &str) -> Result<TaskId, Fail> {
    text.parse().map_err(|_| {
        Fail(
            StatusCode::BAD_REQUEST,
            "bad_request",
            "not a task id".into(),
        )
    })
}

/// The request's body, at most `limit` bytes, within [`BODY_TIME`] (a client sending a
/// byte now and then does not hold a connection slot).
async fn body(request: HttpRequest<Incoming>, limit: usize) -> Result<Bytes, Fail> {
    let read = Limited::new(request.into_body(), limit).collect();
    let slow = || {
        Fail(
            StatusCode::REQUEST_TIMEOUT,
            "bad_request",
            "the request body came too slowly".into(),
        )
    };
    let large = |_| {
        Fail(
            StatusCode::PAYLOAD_TOO_LARGE,
            "bad_request",
            "the request body is too large or was cut".into(),
        )
    };
    let collected = tokio::time::timeout(BODY_TIME, read)
        .await
        .map_err(|_| slow())?;
    collected.map(|c| c.to_bytes()).map_err(large)
}

fn json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, Fail> {
    serde_json::from_slice(body).map_err(|e| {
        Fail(
            StatusCode::BAD_REQUEST,
            "bad_request",
            format!("not the JSON this call takes: {e}"),
        )
    })
}

/// A call refused before it reached the daemon: its status, kind and words.
#[derive(Debug)]
pub(crate) struct Fail(StatusCode, &'static str, String);

impl Fail {
    fn response(self) -> Response<Body> {
        error(self.0, self.1, &self.2)
    }
}

/// The daemon's reply as the answer: a failure is `400` with its message.
fn from_reply(reply: &Reply) -> Response<Body> {
    match reply {
        Reply::Error { message } => error(StatusCode::BAD_REQUEST, "daemon", message),
        reply => match serde_json::to_value(reply) {
            Ok(value) => reply_json(StatusCode::OK, &value),
            Err(e) => error(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                &e.to_string(),
            ),
        },
    }
}

fn stopped() -> Response<Body> {
    error(
        StatusCode::SERVICE_UNAVAILABLE,
        "stopped",
        "the daemon stopped",
    )
}

pub(crate) fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).boxed()
}

fn reply_json(status: StatusCode, value: &serde_json::Value) -> Response<Body> {
    let mut response = Response::new(full(value.to_string()));
    *response.status_mut() = status;
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// A failure: `{"error": {"kind": ..., "message": ...}}`.
pub(crate) fn error(status: StatusCode, kind: &str, message: &str) -> Response<Body> {
    reply_json(
        status,
        &serde_json::json!({ "error": { "kind": kind, "message": message } }),
    )
}

fn redirect(to: &str, set_cookie: Option<String>) -> Response<Body> {
    let mut response = Response::new(full(Bytes::new()));
    *response.status_mut() = StatusCode::SEE_OTHER;
    if let Ok(to) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, to);
    }
    if let Some(value) = set_cookie.and_then(|c| HeaderValue::from_str(&c).ok()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn queries_and_cookies_are_read_exactly() {
        assert_eq!(query(Some("a=1&since=42"), "since").as_deref(), Some("42"));
        assert_eq!(query(Some("key=a%2Bb+c"), "key").as_deref(), Some("a+b c"));
        assert_eq!(query(Some("xsince=1"), "since"), None);
        let mut headers = HeaderMap::new();
        headers.insert(
            header::COOKIE,
            HeaderValue::from_static("x=1; qsync_session_1=abc"),
        );
        assert_eq!(cookie(&headers, "qsync_session_1").as_deref(), Some("abc"));
        assert_eq!(cookie(&headers, "qsync_session_2"), None);
    }

    /// Every call this file answers is described in `openapi.yaml`, and nothing more.
    #[test]
    fn the_openapi_description_lists_every_call() {
        let spec = include_str!("../openapi.yaml");
        let described: Vec<&str> = spec
            .lines()
            .filter_map(|l| l.strip_prefix("  /rest/"))
            .map(|l| l.trim_end_matches(':'))
            .collect();
        let answered = [
            "session",
            "login-token",
            "status",
            "tasks",
            "tasks/{task}",
            "tasks/{task}/pause",
            "tasks/{task}/resume",
            "tasks/{task}/out-of-sync",
            "devices",
            "discovered",
            "conflicts",
            "resolve",
            "versions",
            "apps",
            "questions",
            "questions/{id}/answer",
            "link",
            "command",
            "events",
        ];
        let mut a = answered.to_vec();
        let mut d = described.clone();
        a.sort_unstable();
        d.sort_unstable();
        assert_eq!(a, d);
    }

    #[test]
    fn calls_become_commands() {
        let task = TaskId::random();
        let t = task.to_string();
        assert!(matches!(
            read_command(&["tasks", &t, "out-of-sync"], None),
            Ok(Command::OutOfSync { task: x }) if x == task
        ));
        assert!(read_command(&["tasks", "nope", "out-of-sync"], None).is_err());
        assert!(matches!(
            change_command(&Method::POST, &["tasks", &t, "pause"], b"{}"),
            Ok(Call::Command(Command::TaskSet {
                paused: Some(true),
                ..
            }))
        ));
        assert!(matches!(
            change_command(&Method::POST, &["tasks"], br#"{"path":"/x"}"#),
            Ok(Call::Command(Command::TaskAdd { .. }))
        ));
        assert!(change_command(&Method::POST, &["command"], br#"{"command":"events"}"#).is_err());
        assert!(change_command(&Method::POST, &["tasks"], b"not json").is_err());
    }
}
