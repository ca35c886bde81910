//! The network side: connections, Noise handshakes, pairing, sealed sessions. Thin tokio
//! tasks that hand everything they receive to the engine thread as [`NetEvent`]s.
//!
//! Before a peer has proven a key that belongs to a linked device, a connection is a
//! *stranger*: frames of at most [`qsync_wire::PRE_AUTH_MAX_FRAME_LEN`] bytes, [`HANDSHAKE_DEADLINE`]
//! to finish the handshake (and to ask to link, if it is not linked), at most
//! [`MAX_STRANGERS`] of them at once (a new one closes the oldest, so a flood cannot keep
//! a real device out), and at most [`MAX_LINK_REQUESTS`] link requests waiting for the
//! person. None of it costs a thread. Before any of that, a connection gets a handshake
//! answer only within its address's rate and the rate of all addresses together
//! (`admission.rs`): 20 at once, then 10 a second, per address.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use qsync_base::{DeviceId, TaskId};
use qsync_wire::{FrameCodec, Identity, Message, PairingCode};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::codec::Framed;

mod admission;
mod pairing;
pub(crate) use pairing::Declined;
mod session;
pub use admission::{Admission, Refused};
pub use pairing::{pair_initiator, LinkPlan, Paired};
pub(crate) use session::{connect, next_frame};
pub use session::{dial, listen};

/// Linked devices, shared by the engine (which writes) and connections (which read).
pub type Linked = Arc<Mutex<HashSet<DeviceId>>>;

/// How long a connection may take to prove its key (and a stranger to ask to link).
pub const HANDSHAKE_DEADLINE: Duration = Duration::from_secs(10);

/// Connections still proving who they are, at most.
pub const MAX_STRANGERS: usize = 64;

/// Link requests waiting for the person, at most.
pub const MAX_LINK_REQUESTS: usize = 32;

/// Link requests waiting for the person from one address, at most: one host cannot take
/// every place.
pub const MAX_LINK_REQUESTS_PER_HOST: usize = 2;

/// Connections still proving who they are from one address, at most: beyond it, that
/// address's own oldest is closed first.
pub const MAX_STRANGERS_PER_HOST: usize = 16;

/// Something to send on a connection.
#[derive(Debug)]
pub enum Outbound {
    /// One message.
    Message(TaskId, Message),
}

/// What to send on a connection.
pub type Outgoing = mpsc::UnboundedSender<Outbound>;

/// The engine's end of a connection with a linked device.
#[derive(Clone, Debug)]
pub(crate) struct PeerConn {
    /// Which connection (a device's replaced connection is told from its new one).
    pub(crate) id: u64,
    pub(crate) tx: Outgoing,
    /// Frames sent before anything queued on `tx`.
    pub(crate) urgent: Outgoing,
    /// Content bytes queued on `tx` (see [`MAX_QUEUED_CONTENT`]).
    pub(crate) queued: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

/// A device's request to link a task, as the engine gets it.
#[derive(Debug)]
pub struct LinkRequest {
    /// Its number, to match the [`NetEvent::LinkProven`] that may follow.
    pub id: u64,
    /// The asking device (its key, proven by the handshake).
    pub device: DeviceId,
    /// Its name.
    pub name: String,
    /// The task.
    pub task: TaskId,
    /// Its folder name on the asking device.
    pub folder_name: String,
    /// Files and bytes the asking device will send.
    pub files: u64,
    /// See `files`.
    pub bytes: u64,
    /// Where the asking device's daemon listens.
    pub addr: SocketAddr,
}

/// What the network tells the engine.
#[derive(Debug)]
pub enum NetEvent {
    /// An authenticated connection with a linked device is up.
    Connected {
        /// The device.
        device: DeviceId,
        /// The connection: its number, the frames to send it (and those that go first:
        /// pings, pongs), and the content bytes queued and not yet written to the socket
        /// (whoever queues content waits while it is over [`MAX_QUEUED_CONTENT`], so a
        /// peer that stops reading cannot make this device hold whole files in memory).
        conn: PeerConn,
        /// Where the device is: the address dialled, or the peer's end of an incoming
        /// connection (whose port is not where it listens).
        addr: SocketAddr,
        /// Whether this side dialled `addr` (a proven address to dial again).
        dialled: bool,
    },
    /// That connection is gone.
    Disconnected {
        /// The device.
        device: DeviceId,
        /// Which connection.
        conn: u64,
    },
    /// A message arrived.
    Received {
        /// From whom.
        device: DeviceId,
        /// On which connection (a message from one that was replaced is dropped).
        conn: u64,
        /// About which task.
        task: TaskId,
        /// What.
        message: Message,
        /// The share of [`NetCtx::inbox_budget`] (file content) or of the connection's
        /// [`PEER_INBOX_KIB`] (anything else) the message holds until it is dropped.
        credit: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// A device asks to link a task: the engine asks its person, then answers `reply` with
    /// the code the person typed (or why not). Dropping `reply` refuses.
    LinkRequest {
        /// The request.
        request: LinkRequest,
        /// The code typed here, or why the request is refused.
        reply: oneshot::Sender<Result<PairingCode, Declined>>,
    },
    /// Both sides proved the code of request `id`: the engine records the link now, and
    /// says whether it could.
    LinkProven {
        /// The request's number.
        id: u64,
        /// `Ok` once recorded, or why not.
        done: oneshot::Sender<Result<(), String>>,
    },
    /// Request `id` ended without a link (wrong code, refused, connection lost).
    LinkFailed {
        /// The request's number.
        id: u64,
        /// Why.
        reason: String,
    },
}

/// Connections still proving who they are. A new one beyond [`MAX_STRANGERS`] closes the
/// oldest: a flood of idle connections then only ever holds the newest slots, and a real
/// device, whose handshake takes a millisecond on a LAN, gets through.
#[derive(Debug, Default)]
pub struct Strangers {
    next: AtomicU64,
    waiting: Mutex<VecDeque<(u64, IpAddr, Arc<Notify>)>>,
}

/// One stranger's place; leaving it (drop) frees it.
struct StrangerSlot {
    id: u64,
    evicted: Arc<Notify>,
    owner: Arc<Strangers>,
}

impl Strangers {
    fn enter(self: &Arc<Self>, from: IpAddr) -> StrangerSlot {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let evicted = Arc::new(Notify::new());
        if let Ok(mut waiting) = self.waiting.lock() {
            waiting.push_back((id, from, evicted.clone()));
            // One address's flood closes its own oldest first...
            if waiting.iter().filter(|(_, ip, _)| *ip == from).count() > MAX_STRANGERS_PER_HOST {
                if let Some(at) = waiting.iter().position(|(_, ip, _)| *ip == from) {
                    if let Some((_, _, oldest)) = waiting.remove(at) {
                        oldest.notify_one();
                    }
                }
            }
            // ...and many addresses' the oldest of all.
            while waiting.len() > MAX_STRANGERS {
                if let Some((_, _, oldest)) = waiting.pop_front() {
                    oldest.notify_one();
                }
            }
        }
        StrangerSlot {
            id,
            evicted,
            owner: self.clone(),
        }
    }

    /// How many connections are proving who they are now.
    #[cfg(test)]
    pub fn count(&self) -> usize {
        self.waiting.lock().map_or(0, |w| w.len())
    }
}

impl Drop for StrangerSlot {
    fn drop(&mut self) {
        if let Ok(mut waiting) = self.owner.waiting.lock() {
            waiting.retain(|(id, _, _)| *id != self.id);
        }
    }
}

/// Where the network's news goes (the daemon's loop): `false` once nobody listens.
pub type NetSink = Arc<dyn Fn(NetEvent) -> bool + Send + Sync>;

/// What connections need to know.
#[derive(Clone)]
pub struct NetCtx {
    /// This device's key pair.
    pub identity: Arc<Identity>,
    /// Its name.
    pub name: String,
    /// The port it listens on.
    pub port: u16,
    /// Linked devices.
    pub linked: Linked,
    /// Where events go (`false`: nobody listens any more).
    pub events: NetSink,
    /// Connection and request numbers.
    pub next_conn: Arc<AtomicU64>,
    /// How long a pairing may wait for the other person.
    pub pair_timeout: Duration,
    /// Bytes of sealed frames sent and received (length prefix included), for `status`.
    pub wire: Arc<WireCounters>,
    /// Received file content the engine has not handled yet, in KiB, bounded by
    /// [`INBOX_BUDGET_KIB`]: while the engine is busy (flushing a batch to disk, say) a
    /// connection stops reading its socket, and TCP slows the sender down, instead of
    /// queueing content in memory without limit.
    pub inbox_budget: Arc<tokio::sync::Semaphore>,
    /// Connections still proving who they are.
    pub strangers: Arc<Strangers>,
    /// Link requests waiting for the person ([`MAX_LINK_REQUESTS`] permits).
    pub link_requests: Arc<tokio::sync::Semaphore>,
    /// How many of them each address has ([`MAX_LINK_REQUESTS_PER_HOST`]).
    pub link_requests_by_host: Arc<Mutex<HashMap<IpAddr, usize>>>,
    /// The rates of new connections, per address and for all (see `admission.rs`).
    pub admission: Arc<Mutex<Admission>>,
}

/// One address's place among the waiting link requests; dropping it frees it.
struct HostPlace {
    host: IpAddr,
    counts: Arc<Mutex<HashMap<IpAddr, usize>>>,
}

impl HostPlace {
    fn take(ctx: &NetCtx, host: IpAddr) -> Option<Self> {
        let mut counts = ctx.link_requests_by_host.lock().ok()?;
        let count = counts.entry(host).or_insert(0);
        if *count >= MAX_LINK_REQUESTS_PER_HOST {
            return None;
        }
        *count += 1;
        Some(Self {
            host,
            counts: ctx.link_requests_by_host.clone(),
        })
    }
}

impl Drop for HostPlace {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.counts.lock() {
            if let Some(count) = counts.get_mut(&self.host) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(&self.host);
                }
            }
        }
    }
}

impl NetCtx {
    /// This device's id.
    pub fn me(&self) -> DeviceId {
        self.identity.device()
    }

    fn is_linked(&self, device: &DeviceId) -> bool {
        self.linked.lock().is_ok_and(|l| l.contains(device))
    }
}

/// How much received file content may wait for the engine, in KiB.
pub const INBOX_BUDGET_KIB: usize = 24 * 1024;

/// Frames without file content (sync records, requests, greetings) that one connection may
/// have waiting for the engine, in KiB of sealed frame (at least 1 each): past it, that
/// connection stops reading its socket until the engine catches up. A linked device that
/// floods records costs at most this in transit, whatever it sends.
pub const PEER_INBOX_KIB: usize = 2 * 1024;

/// Bytes on the wire, counted by the sessions.
#[derive(Debug, Default)]
pub struct WireCounters {
    /// Sent.
    pub sent: AtomicU64,
    /// Received.
    pub received: AtomicU64,
}

fn count(counter: &AtomicU64, frame_len: usize) {
    counter.fetch_add(frame_len as u64 + 4, Ordering::Relaxed);
}

pub(crate) fn send(ctx: &NetCtx, event: NetEvent) {
    let _ = (ctx.events)(event);
}

pub(crate) type Conn = Framed<TcpStream, FrameCodec>;

/// Content bytes queued for one connection beyond which whoever queues more waits.
pub const MAX_QUEUED_CONTENT: usize = 4 * 1024 * 1024;

#[cfg(test)]
mod tests;
