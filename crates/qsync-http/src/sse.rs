//! The event stream (`GET /rest/events`): Server-Sent Events, one message per daemon
//! event with its id, the kept ones after `since` first; a `{"event":"missed"}` message
//! (no id) when some could not be replayed, after which a page reloads its whole view;
//! a comment every 15 s so that proxies and browsers keep the connection.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::header::{self, HeaderValue};
use hyper::Response;
use qsync_control::{EventFeed, Numbered, Subscription};
use tokio::sync::broadcast::error::RecvError;

use crate::routes::Body;

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
}

impl Follow {
    /// The next message: what is ready, then the next live event (or, after a quiet
    /// while, a keepalive comment). `None` once the daemon's feed is gone.
    async fn next(mut self) -> Option<(Bytes, Follow)> {
        if let Some(ready) = self.ready.pop_front() {
            return Some((ready, self));
        }
        let bytes = match tokio::time::timeout(KEEPALIVE, self.live.recv()).await {
            Err(_) => Bytes::from_static(b": alive\n\n"),
            Ok(Ok(event)) => message(&event),
            Ok(Err(RecvError::Lagged(_))) => missed(),
            Ok(Err(RecvError::Closed)) => return None,
        };
        Some((bytes, self))
    }
}

/// The answer to `GET /rest/events`, following `feed` after `since`.
pub(crate) fn stream(feed: &EventFeed, since: Option<u64>) -> Response<Body> {
    let Subscription {
        backlog,
        missed: lost,
        live,
    } = feed.subscribe(since);
    let mut ready = std::collections::VecDeque::new();
    ready.push_back(Bytes::from(format!("retry: {RETRY_MS}\n\n")));
    if lost {
        ready.push_back(missed());
    }
    ready.extend(backlog.iter().map(|e| message(e)));
    let frames = futures::stream::unfold(Follow { ready, live }, Follow::next)
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
