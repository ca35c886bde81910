//! The HTTP API of a real daemon, attacked as a web page or a stranger would: no key, a
//! wrong key, another site's name (DNS rebinding), another site's form (CSRF), a reused
//! login address; and the event stream replaying after a reconnect without losing one.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "support/hostile.rs"]
mod hostile;
#[path = "support/http.rs"]
mod http;
#[path = "support/node.rs"]
mod node;
#[path = "support/peer.rs"]
mod peer;

use std::time::Duration;

use http::{request, Events};
use node::Node;

#[test]
fn without_the_key_or_from_another_name_nothing_is_answered() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start(base.path(), "api");
    let addr = http::address(&node.state);
    let key = http::key(&node.state);

    let none = request(addr, "GET", "/rest/status", &[], "");
    assert_eq!(none.status, 401);
    assert_eq!(none.json()["error"]["kind"], "unauthorized");
    let wrong = request(
        addr,
        "GET",
        "/rest/status",
        &[("X-API-Key", "a".repeat(52).as_str())],
        "",
    );
    assert_eq!(wrong.status, 401);
    let ok = request(addr, "GET", "/rest/status", &[("X-API-Key", &key)], "");
    assert_eq!(ok.status, 200, "{}", ok.body);
    assert_eq!(ok.json()["reply"], "status");
    assert!(ok.header("content-security-policy").is_some());

    // A page of evil.example whose name was pointed at 127.0.0.1 (DNS rebinding) sends its
    // own name as Host: refused, key or not.
    let rebound = request(
        addr,
        "GET",
        "/rest/status",
        &[
            ("Host", &format!("evil.example:{}", addr.port())),
            ("X-API-Key", &key),
        ],
        "",
    );
    assert_eq!(rebound.status, 421);
    let page = request(addr, "GET", "/", &[("Host", "evil.example")], "");
    assert_eq!(page.status, 421);

    // A change without the key and without a session changes nothing.
    let added = request(addr, "POST", "/rest/tasks", &[], r#"{"path":"/tmp"}"#);
    assert_eq!(added.status, 401);
}

/// Logged in from `qsync web`'s address: the cookie session works for reads, a change
/// needs the page's CSRF token, another site's form is refused even with the cookie, and
/// the login address works once.
#[test]
fn a_browser_session_needs_its_csrf_token_and_refuses_other_sites() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start(base.path(), "web");
    let addr = http::address(&node.state);
    let url = node.cli(&["web"]);
    let url = url.lines().next().unwrap();
    let path = url.split_once(&addr.to_string()).unwrap().1.to_owned();
    let login = request(addr, "GET", &path, &[], "");
    assert_eq!(login.status, 303, "{login:?}");
    let cookie = login
        .header("set-cookie")
        .unwrap()
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(login.header("set-cookie").unwrap().contains("HttpOnly"));
    assert!(login
        .header("set-cookie")
        .unwrap()
        .contains("SameSite=Strict"));
    // Used once only.
    let again = request(addr, "GET", &path, &[], "");
    assert!(again.header("set-cookie").is_none(), "{again:?}");

    // The page's token comes in the fragment of the address the login sends to.
    let csrf = login
        .header("location")
        .unwrap()
        .strip_prefix("/#csrf=")
        .unwrap()
        .to_owned();
    let page = request(addr, "GET", "/", &[("Cookie", &cookie)], "");
    assert_eq!(page.status, 200);
    // The cookie alone (as another server on this host would get it from the browser,
    // which sends cookies to every port) reads nothing.
    let cookie_only = request(addr, "GET", "/rest/status", &[("Cookie", &cookie)], "");
    assert_eq!(cookie_only.status, 403);
    let session = request(
        addr,
        "GET",
        "/rest/session",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        "",
    );
    assert_eq!(session.json()["caller"], "session");
    // A session cannot stop the daemon: that needs the key.
    let stop = request(
        addr,
        "POST",
        "/rest/command",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        r#"{"command":"shutdown"}"#,
    );
    assert_eq!(stop.status, 403);

    let folder = base.path().join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    let body = serde_json::json!({ "path": folder }).to_string();
    let json = ("Content-Type", "application/json");
    let no_token = request(
        addr,
        "POST",
        "/rest/tasks",
        &[("Cookie", &cookie), json],
        &body,
    );
    assert_eq!(no_token.status, 403);
    assert_eq!(no_token.json()["error"]["kind"], "csrf");
    // Another site's form, posted by the person's browser with the cookie.
    let form = request(
        addr,
        "POST",
        "/rest/tasks",
        &[
            ("Cookie", &cookie),
            ("Origin", "http://evil.example"),
            ("Content-Type", "application/x-www-form-urlencoded"),
            ("X-CSRF-Token", &csrf),
        ],
        "path=/tmp",
    );
    assert_eq!(form.status, 403);
    assert!(node.cli(&["task", "list"]).is_empty());
    let added = request(
        addr,
        "POST",
        "/rest/tasks",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf), json],
        &body,
    );
    assert_eq!(added.status, 200, "{}", added.body);
    assert_eq!(added.json()["reply"], "task_added");
    let task = added.json()["task"].as_str().unwrap().to_owned();
    let paused = request(
        addr,
        "POST",
        &format!("/rest/tasks/{task}/pause"),
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf), json],
        "{}",
    );
    assert_eq!(paused.json()["paused"], true, "{}", paused.body);
    // A refusal of the daemon's is a 400 with its words.
    let unknown = request(
        addr,
        "POST",
        "/rest/tasks",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf), json],
        r#"{"path":"relative/folder"}"#,
    );
    assert_eq!(unknown.status, 400);
    assert_eq!(unknown.json()["error"]["kind"], "daemon");
}

/// The event stream: ids grow, a reconnect with `Last-Event-ID` gets exactly the events
/// it missed, and an id from before the history (or another run) is told it missed some.
#[test]
fn the_event_stream_replays_after_a_reconnect_without_losing_one() {
    let base = tempfile::tempdir().unwrap();
    let node = Node::start(base.path(), "events");
    let addr = http::address(&node.state);
    let key = http::key(&node.state);
    let folder = base.path().join("folder");
    std::fs::create_dir_all(&folder).unwrap();
    let task = node.add_task(&folder);

    let mut first = Events::open(addr, &[("X-API-Key", &key)]);
    node.cli(&["pause", &task]);
    let seen = first.next(Duration::from_secs(10)).expect("an event");
    assert_eq!(seen.data["event"], "task_changed");
    let last = seen.id.expect("an id");
    drop(first);

    // Missed while away: three changes.
    node.cli(&["resume", &task]);
    node.cli(&["pause", &task]);
    node.cli(&["resume", &task]);
    let id = last.to_string();
    let mut again = Events::open(addr, &[("X-API-Key", &key), ("Last-Event-ID", &id)]);
    let mut ids = Vec::new();
    while let Some(message) = again.next(Duration::from_secs(3)) {
        assert_ne!(message.data["event"], "missed", "{:?}", message.data);
        if message.data["event"] == "task_changed" {
            ids.push(message.id.unwrap());
        }
        if ids.len() == 3 {
            break;
        }
    }
    assert_eq!(ids.len(), 3, "replayed {ids:?}");
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > last);

    // A change made here is told, with its path.
    let mut live = Events::open(addr, &[("X-API-Key", &key)]);
    std::fs::write(folder.join("made-here.txt"), b"hello").unwrap();
    let changed = loop {
        let message = live
            .next(Duration::from_secs(10))
            .expect("the change's event");
        if message.data["event"] == "changed" {
            break message;
        }
    };
    assert_eq!(changed.data["path"], "made-here.txt");
    assert_eq!(changed.data["deleted"], false);

    // An id of long ago: told so, then what is kept.
    let mut old = Events::open(addr, &[("X-API-Key", &key), ("Last-Event-ID", "1")]);
    let first = old.next(Duration::from_secs(5)).unwrap();
    assert_eq!(first.data["event"], "missed");
}
