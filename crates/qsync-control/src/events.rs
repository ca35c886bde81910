//! What happens in a daemon ([`DaemonEvent`]), and its event feed: every event numbered,
//! the last [`EVENT_HISTORY`] of them kept, so that a follower that comes late or
//! reconnects (a web page's event stream with `Last-Event-ID`) gets what it missed, then
//! what comes.
//!
//! Ids grow for the life of the state folder's daemons, not only of one run: the first id
//! of a run is its start time in microseconds since the Unix epoch (below 2^53, so a
//! browser's numbers hold it exactly), so an id a client kept from an earlier run is
//! older than every id of this one and it is told it missed events rather than skip new
//! ones.
//!
//! ```
//! use qsync_control::{DaemonEvent, EventFeed};
//! use qsync_base::DeviceId;
//!
//! let feed = EventFeed::new();
//! let device = DeviceId::random();
//! let first = feed.publish(DaemonEvent::Delivered { device });
//! feed.publish(DaemonEvent::Delivered { device });
//! // A follower that saw the first one gets the second from the history...
//! let mut follower = feed.subscribe(Some(first));
//! assert_eq!(follower.backlog.len(), 1);
//! assert!(!follower.missed);
//! // ...then the next ones as they come.
//! feed.publish(DaemonEvent::Delivered { device });
//! assert!(follower.live.try_recv().is_ok());
//! ```

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use qsync_base::{DeviceId, RelPath, TaskId};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

use crate::TransferInfo;

/// Something that happened, for [`Command::Events`](crate::Command::Events).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum DaemonEvent {
    /// A linked device is connected.
    Connected {
        /// The device.
        device: DeviceId,
        /// Its name, when known.
        #[serde(default)]
        name: Option<String>,
    },
    /// A linked device's connection is gone.
    Disconnected {
        /// The device.
        device: DeviceId,
        /// Its name, when known.
        #[serde(default)]
        name: Option<String>,
    },
    /// The daemon asks its person something (answer with `qsync answer ID TEXT`, or
    /// [`Command::Answer`](crate::Command::Answer)).
    Question {
        /// The question's id, for the answer.
        #[serde(default)]
        id: String,
        /// The question's flag, such as `CHOOSELINKPATH`.
        flag: String,
        /// What it is about.
        context: String,
    },
    /// A change from another device was applied here.
    Applied {
        /// The task.
        task: TaskId,
        /// The device it came from.
        from: DeviceId,
        /// That device's name, when known.
        #[serde(default)]
        name: Option<String>,
        /// The path changed.
        #[serde(default)]
        path: Option<RelPath>,
        /// Whether the change deleted it.
        #[serde(default)]
        deleted: bool,
    },
    /// More changes from other devices were applied here than are named one by one (at
    /// most 64 a second are): how many, in one task, since the last such event.
    AppliedMore {
        /// The task.
        task: TaskId,
        /// How many.
        count: u64,
    },
    /// Both sides changed a file: the other version was kept beside it.
    Conflict {
        /// The task.
        task: TaskId,
        /// Where the other version is.
        kept_as: RelPath,
    },
    /// A device acknowledged one of our updates.
    Delivered {
        /// The device.
        device: DeviceId,
    },
    /// A transfer coming in, as it goes (once a second while it does, for each listener).
    Transfer(TransferInfo),
    /// A link this device asked for (over the HTTP API) ended.
    LinkEnded {
        /// The task.
        task: TaskId,
        /// Whether the devices are linked now.
        ok: bool,
        /// How it ended, in words.
        message: String,
    },
    /// A change made on this device was found in a task's folder (and goes to the linked
    /// devices). A batch of many changes names the first ones, then says how many more.
    Changed {
        /// The task.
        task: TaskId,
        /// The path (`None`: the `more` changes of a large batch).
        path: Option<RelPath>,
        /// Whether it was deleted.
        #[serde(default)]
        deleted: bool,
        /// How many more changes the batch held, unnamed.
        #[serde(default)]
        more: u64,
    },
    /// A task was added, removed, paused, resumed or set otherwise.
    TaskChanged {
        /// The task.
        task: TaskId,
    },
}

/// How many events the feed keeps for followers that come late.
pub const EVENT_HISTORY: usize = 1000;

/// How many events a live follower may lag behind before it is told it missed some.
const LIVE_LAG: usize = 1024;

/// An event with its number and time.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Numbered {
    /// Its number: larger for every later event.
    pub id: u64,
    /// When it happened, in milliseconds since the Unix epoch.
    pub at: u64,
    /// What happened.
    #[serde(flatten)]
    pub event: DaemonEvent,
}

/// The feed: cheap to clone, shared by the daemon (which publishes) and its front ends
/// (which subscribe).
#[derive(Debug, Clone)]
pub struct EventFeed {
    kept: Arc<Mutex<History>>,
    live: broadcast::Sender<Arc<Numbered>>,
}

#[derive(Debug)]
struct History {
    /// This run's first id.
    first: u64,
    /// The id of the last kept event dropped from the history (0: none yet).
    evicted: u64,
    next: u64,
    events: VecDeque<Arc<Numbered>>,
}

/// What [`EventFeed::subscribe`] gives: the kept events after the one asked for, then the
/// live ones.
#[derive(Debug)]
pub struct Subscription {
    /// The kept events after the one asked for, oldest first.
    pub backlog: Vec<Arc<Numbered>>,
    /// Whether events after the one asked for are not in the backlog: dropped from the
    /// history, or of an earlier run (a front end then reloads its whole view).
    pub missed: bool,
    /// The events from now on (a receiver that lags is told how many it missed).
    pub live: broadcast::Receiver<Arc<Numbered>>,
}

fn now() -> (u64, u64) {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    (since.as_micros() as u64, since.as_millis() as u64)
}

impl Default for EventFeed {
    fn default() -> Self {
        Self::new()
    }
}

impl EventFeed {
    /// An empty feed whose first id is now, in microseconds.
    pub fn new() -> Self {
        let (live, _) = broadcast::channel(LIVE_LAG);
        let first = now().0.max(1);
        EventFeed {
            kept: Arc::new(Mutex::new(History {
                first,
                evicted: 0,
                next: first,
                events: VecDeque::with_capacity(EVENT_HISTORY),
            })),
            live,
        }
    }

    /// Number `event`, keep it, hand it to the live followers; returns its id.
    pub fn publish(&self, event: DaemonEvent) -> u64 {
        self.push(event, true)
    }

    /// Hand `event` to the live followers only, not kept for later ones (progress, which a
    /// late follower has no use for). Returns its id.
    pub fn publish_transient(&self, event: DaemonEvent) -> u64 {
        self.push(event, false)
    }

    fn push(&self, event: DaemonEvent, keep: bool) -> u64 {
        // A follower that panicked while holding the lock cannot have left the history
        // half-changed (each change is one push or pop): go on with it.
        let mut kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let id = kept.next;
        kept.next += 1;
        let numbered = Arc::new(Numbered {
            id,
            at: now().1,
            event,
        });
        if keep {
            if kept.events.len() == EVENT_HISTORY {
                if let Some(old) = kept.events.pop_front() {
                    kept.evicted = old.id;
                }
            }
            kept.events.push_back(numbered.clone());
        }
        // Sent under the lock: a subscriber sees each event once, in the backlog or live.
        let _ = self.live.send(numbered);
        id
    }

    /// Whether anyone follows the live events now.
    pub fn listening(&self) -> bool {
        self.live.receiver_count() > 0
    }

    /// The id the next event will have.
    pub fn next_id(&self) -> u64 {
        self.kept.lock().unwrap_or_else(|e| e.into_inner()).next
    }

    /// Follow the feed: with `since`, the kept events after that id first (an id from
    /// another run, or older than what is kept, counts what was missed).
    pub fn subscribe(&self, since: Option<u64>) -> Subscription {
        let kept = self.kept.lock().unwrap_or_else(|e| e.into_inner());
        let live = self.live.subscribe();
        let Some(since) = since else {
            return Subscription {
                backlog: Vec::new(),
                missed: false,
                live,
            };
        };
        let backlog: Vec<Arc<Numbered>> = kept
            .events
            .iter()
            .filter(|e| e.id > since)
            .cloned()
            .collect();
        // Missed: events after `since` that the history no longer holds, an id from
        // before this run (what happened between is not known), or one from the future
        // (this run began after the clock went back: what the follower saw is not known).
        let missed =
            since.saturating_add(1) < kept.first || since < kept.evicted || since >= kept.next;
        Subscription {
            backlog,
            missed,
            live,
        }
    }
}
