//! The event stream (`GET /rest/events`): Server-Sent Events, one message per daemon
//! event with its id, the kept ones after `since` first; a `{"event":"missed"}` message
//! (no id) when some could not be replayed, after which a page reloads its whole view;
//! a comment every 15 s so that proxies and browsers keep the connection (a browser
//! session's stream ends there once the session is gone). At most [`crate::MAX_STREAMS`]
//! streams at once.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::Response;
use qsync_control::{Numbered, Subscription};
use tokio::sync::broadcast::error::RecvError;

use crate::routes::{error, Body};
use crate::Shared;

/// How often a quiet stream says it is alive.
const KEEPALIVE: Duration = Duration::from_secs(15);

/// How long a browser waits before it reconnects.
const RETRY_MS: u64 = 2000;

/// One message of the stream.
fn message(event: &Numbered) -> Bytes {
    match serde_json::to_string(event) {
        Ok(json) => Bytes::from(format!("id: {}\ndata: {json}\n\n", event.id)),
        Err(_) => missed(),
    }
}

fn missed() -> Bytes {
    Bytes::from_static(b"data: {\"event\":\"missed\"}\n\n")
}

/// The stream's state between messages.
struct Follow {
    /// Messages ready to go, in order.
    ready: std::collections::VecDeque<Bytes>,
    live: tokio::sync::broadcast::Receiver<Arc<Numbered>>,
    /// The browser session the stream is for (its cookie), checked at each keepalive.
    session: Option<(Arc<Shared>, String)>,
    /// The stream's slot, given back when it ends.
    _slot: tokio::sync::OwnedSemaphorePermit,
}

impl Follow {
    /// The next message: what is ready, then the next live event (or, after a quiet
    /// while, a keepalive comment). `None` once the daemon's feed is gone.
    async fn next(mut self) -> Option<(Bytes, Follow)> {
        if let Some(ready) = self.ready.pop_front() {
            return Some((ready, self));
        }
        let bytes = match tokio::time::timeout(KEEPALIVE, self.live.recv()).await {
            Err(_) if self.session_ended() => return None,
            Err(_) => Bytes::from_static(b": alive\n\n"),
            Ok(Ok(event)) => message(&event),
            Ok(Err(RecvError::Lagged(_))) => missed(),
            Ok(Err(RecvError::Closed)) => return None,
        };
        Some((bytes, self))
    }
}

impl Follow {
    fn session_ended(&self) -> bool {
        self.session
            .as_ref()
            .is_some_and(|(shared, token)| !shared.gate.has_session(token))
    }
}

/// The answer to `GET /rest/events`, following the daemon's feed after `since`, for the
/// browser session of cookie `session` (`None`: the API key).
pub(crate) fn stream(
    shared: &Arc<Shared>,
    since: Option<u64>,
    session: Option<String>,
) -> Response<Body> {
    let Ok(slot) = shared.streams.clone().try_acquire_owned() else {
        return error(
            hyper::StatusCode::SERVICE_UNAVAILABLE,
            "busy",
            "too many event streams are open",
        );
    };
    let Subscription {
        backlog,
        missed: lost,
        live,
    } = shared.feed.subscribe(since);
    let mut ready = std::collections::VecDeque::new();
    ready.push_back(Bytes::from(format!("retry: {RETRY_MS}\n\n")));
    if lost {
        ready.push_back(missed());
    }
    ready.extend(backlog.iter().map(|e| message(e)));
    let follow = Follow {
        ready,
        live,
        session: session.map(|token| (shared.clone(), token)),
        _slot: slot,
    };
    let frames = futures::stream::unfold(follow, Follow::next)
        .map(|bytes| Ok::<_, Infallible>(Frame::data(bytes)));
    let mut response = Response::new(BodyExt::boxed(StreamBody::new(frames)));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}
