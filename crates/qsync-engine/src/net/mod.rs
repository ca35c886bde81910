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
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use qsync_base::{DeviceId, TaskId};
use qsync_wire::{
    FrameCodec, Handshake, Identity, Message, PairingCode, Session, WireError, MAX_FRAME_LEN,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::codec::Framed;

mod admission;
mod pairing;
pub use admission::{Admission, Refused};
pub use pairing::{pair_initiator, LinkPlan, Paired};

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
        reply: oneshot::Sender<Result<PairingCode, String>>,
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
pub const INBOX_BUDGET_KIB: usize = 64 * 1024;

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

fn io_error(kind: std::io::ErrorKind, text: &'static str) -> WireError {
    WireError::Io(std::io::Error::new(kind, text))
}

pub(crate) async fn next_frame(conn: &mut Conn, timeout: Duration) -> Result<BytesMut, WireError> {
    match tokio::time::timeout(timeout, conn.next()).await {
        Ok(Some(frame)) => frame,
        Ok(None) => Err(io_error(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        )),
        Err(_) => Err(io_error(std::io::ErrorKind::TimedOut, "no answer in time")),
    }
}

/// Run a handshake to its end over `conn`.
async fn handshake(
    conn: &mut Conn,
    mut hs: Handshake,
    first: Option<Bytes>,
) -> Result<Session, WireError> {
    if let Some(first) = first {
        conn.send(first).await?;
    }
    while !hs.is_done() {
        let frame = next_frame(conn, HANDSHAKE_DEADLINE).await?;
        if let Some(reply) = hs.read(&frame)? {
            conn.send(reply).await?;
        }
    }
    hs.into_session()
}

/// Open a connection to `addr` and prove keys; `expect`: the device that must answer.
pub(crate) async fn connect(
    addr: SocketAddr,
    identity: &Identity,
    expect: Option<DeviceId>,
) -> Result<(Conn, Session), WireError> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| io_error(std::io::ErrorKind::TimedOut, "connect timed out"))??;
    let _ = stream.set_nodelay(true);
    let mut conn = Framed::new(stream, FrameCodec::pre_auth());
    let (hs, first) = Handshake::initiate(identity, expect)?;
    let session = tokio::time::timeout(HANDSHAKE_DEADLINE, handshake(&mut conn, hs, Some(first)))
        .await
        .map_err(|_| io_error(std::io::ErrorKind::TimedOut, "the handshake took too long"))??;
    Ok((conn, session))
}

/// Accept connections forever.
pub async fn listen(listener: TcpListener, ctx: NetCtx) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
                if !admitted(&ctx, addr) {
                    drop(stream); // closed unanswered: no handshake work for it
                    continue;
                }
                let ctx = ctx.clone();
                tokio::spawn(async move {
                    if let Err(e) = incoming(stream, addr, ctx).await {
                        tracing::info!(%addr, error = %e, "incoming connection closed");
                    }
                });
            }
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
}

/// Whether a new connection from `addr` is within the rates (see `admission.rs`); the first
/// refusal of a run from one address is logged.
fn admitted(ctx: &NetCtx, addr: SocketAddr) -> bool {
    let Ok(mut admission) = ctx.admission.lock() else {
        return true;
    };
    match admission.admit(addr.ip(), std::time::Instant::now()) {
        Ok(()) => true,
        Err((why, first)) => {
            if first {
                let rate = match why {
                    Refused::Source => "this address",
                    Refused::Everyone => "all addresses together",
                };
                tracing::info!(%addr, "closing new connections unanswered: {rate} opened too many lately");
            }
            false
        }
    }
}

async fn incoming(stream: TcpStream, addr: SocketAddr, ctx: NetCtx) -> Result<(), WireError> {
    let _ = stream.set_nodelay(true);
    let slot = ctx.strangers.enter(addr.ip());
    let mut conn = Framed::new(stream, FrameCodec::pre_auth());
    let hs = Handshake::respond(&ctx.identity)?;
    // The handshake and the first message say what the connection is for (a linked
    // device greets, any device with a proven key may ask to link, nothing else), within
    // one deadline and one stranger's place.
    let opening = async {
        let mut session = handshake(&mut conn, hs, None).await?;
        let mut first = next_frame(&mut conn, HANDSHAKE_DEADLINE).await?;
        let opened = session.open(&mut first)?;
        Ok::<_, WireError>((session, opened))
    };
    let (mut session, (task, message)) = tokio::select! {
        done = tokio::time::timeout(HANDSHAKE_DEADLINE, opening) => {
            done.map_err(|_| io_error(std::io::ErrorKind::TimedOut, "the handshake took too long"))??
        }
        () = slot.evicted.notified() => {
            return Err(io_error(
                std::io::ErrorKind::ConnectionAborted,
                "closed: too many connections were waiting to prove who they are",
            ));
        }
    };
    drop(slot);
    let peer = session.peer();
    if peer == ctx.me() {
        return Ok(());
    }
    let Message::LinkRequest {
        name,
        folder_name,
        listen_port,
        files,
        bytes,
        spake,
    } = message
    else {
        if !ctx.is_linked(&peer) {
            tracing::info!(device = %peer, %addr, "refused a connection from a device that is not linked");
            return Ok(());
        }
        // A linked device's reconnects never use up its address's rate.
        if let Ok(mut admission) = ctx.admission.lock() {
            admission.proven(addr.ip());
        }
        conn.codec_mut().set_max_frame_len(MAX_FRAME_LEN);
        return run_session(conn, session, peer, addr, false, ctx, Some((task, message))).await;
    };
    let place = HostPlace::take(&ctx, addr.ip());
    let permit = ctx.link_requests.clone().try_acquire_owned().ok();
    let (Some(_place), Some(_permit)) = (place, permit) else {
        let refuse = Message::LinkRefused {
            reason: "too many link requests are waiting on that device; try again later".into(),
        };
        conn.send(session.seal(task, &refuse)?).await?;
        return Ok(());
    };
    let request = LinkRequest {
        id: ctx.next_conn.fetch_add(1, Ordering::Relaxed),
        device: peer,
        name,
        task,
        folder_name,
        files,
        bytes,
        addr: SocketAddr::new(addr.ip(), listen_port),
    };
    let id = request.id;
    let result = pairing::answer_link(&mut conn, &mut session, request, &spake, &ctx).await;
    match result {
        Ok(()) => Ok(()),
        Err(reason) => {
            // The peer gets a generic reason: the detail (local folders, the person's
            // answer) is for this device's log only.
            let refuse = Message::LinkRefused {
                reason: "the link was not made on the other device (its log says why)".into(),
            };
            if let Ok(frame) = session.seal(task, &refuse) {
                let _ = conn.send(frame).await;
            }
            send(&ctx, NetEvent::LinkFailed { id, reason });
            Ok(())
        }
    }
}

/// Content bytes queued for one connection beyond which whoever queues more waits.
pub const MAX_QUEUED_CONTENT: usize = 4 * 1024 * 1024;

/// Connect to a linked device.
pub async fn dial(addr: SocketAddr, expected: DeviceId, ctx: NetCtx) -> Result<(), WireError> {
    let (mut conn, mut session) = connect(addr, &ctx.identity, Some(expected)).await?;
    conn.codec_mut().set_max_frame_len(MAX_FRAME_LEN);
    let hello = session.seal(
        TaskId::from_bytes([0; 32]),
        &Message::Hello {
            name: ctx.name.clone(),
        },
    )?;
    conn.send(hello).await?;
    run_session(conn, session, expected, addr, true, ctx, None).await
}

async fn run_session(
    conn: Conn,
    session: Session,
    device: DeviceId,
    addr: SocketAddr,
    dialled: bool,
    ctx: NetCtx,
    first: Option<(TaskId, Message)>,
) -> Result<(), WireError> {
    let conn_id = ctx.next_conn.fetch_add(1, Ordering::Relaxed);
    let session = Arc::new(Mutex::new(session));
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    let (urgent, mut urgent_rx) = mpsc::unbounded_channel::<Outbound>();
    let queued = Arc::new(AtomicUsize::new(0));
    let peer_inbox = Arc::new(tokio::sync::Semaphore::new(PEER_INBOX_KIB));
    send(
        &ctx,
        NetEvent::Connected {
            device,
            conn: PeerConn {
                id: conn_id,
                tx,
                urgent,
                queued: queued.clone(),
            },
            addr,
            dialled,
        },
    );
    if let Some((task, message)) = first {
        send(
            &ctx,
            NetEvent::Received {
                device,
                conn: conn_id,
                task,
                message,
                credit: None,
            },
        );
    }
    let (mut sink, mut stream) = conn.split();
    let writer_session = session.clone();
    let wire = ctx.wire.clone();
    let mut writer = tokio::spawn(async move {
        let seal = |task: TaskId, message: &Message| -> Result<Bytes, WireError> {
            let frame = match writer_session.lock() {
                Ok(mut s) => s.seal(task, message)?,
                Err(_) => return Err(WireError::Poisoned),
            };
            count(&wire.sent, frame.len());
            Ok(frame)
        };
        loop {
            // Urgent frames (a ping's answer) never wait behind queued content.
            let next = tokio::select! {
                biased;
                Some(next) = urgent_rx.recv() => next,
                next = rx.recv() => match next {
                    Some(next) => next,
                    None => break,
                },
            };
            let Outbound::Message(task, message) = next;
            let sent = match seal(task, &message) {
                Ok(frame) => sink.send(frame).await,
                Err(e) => Err(e),
            };
            let len = message.data_len();
            if len > 0 {
                queued.fetch_sub(len.min(queued.load(Ordering::Relaxed)), Ordering::Relaxed);
            }
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not send; closing the connection");
                break;
            }
        }
        let _ = sink.close().await;
    });
    let result = loop {
        // The writer ends when the engine drops this connection (a newer one from the same
        // device replaced it: one connection per device): reading ends with it, so a
        // device cannot keep old connections feeding the engine.
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = &mut writer => break Ok(()),
        };
        let Some(frame) = frame else {
            break Ok(());
        };
        let mut frame = match frame {
            Ok(frame) => frame,
            Err(e) => break Err(e),
        };
        count(&ctx.wire.received, frame.len());
        let frame_kib =
            u32::try_from(frame.len().div_ceil(1024).clamp(1, PEER_INBOX_KIB)).unwrap_or(u32::MAX);
        let opened = match session.lock() {
            Ok(mut s) => s.open(&mut frame),
            Err(_) => break Ok(()),
        };
        match opened {
            Ok((task, message)) => {
                let credit = match message.data_len() {
                    0 => peer_inbox.clone().acquire_many_owned(frame_kib).await.ok(),
                    len => {
                        // Never more than the whole budget, or it would wait forever.
                        let kib = len.div_ceil(1024).min(INBOX_BUDGET_KIB);
                        let kib = u32::try_from(kib).unwrap_or(u32::MAX);
                        ctx.inbox_budget.clone().acquire_many_owned(kib).await.ok()
                    }
                };
                send(
                    &ctx,
                    NetEvent::Received {
                        device,
                        conn: conn_id,
                        task,
                        message,
                        credit,
                    },
                )
            }
            Err(e) => {
                tracing::warn!(%device, %addr, error = %e, "rejected a frame; closing the connection");
                break Err(e);
            }
        }
    };
    writer.abort();
    send(
        &ctx,
        NetEvent::Disconnected {
            device,
            conn: conn_id,
        },
    );
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_stranger_beyond_the_cap_closes_the_oldest() {
        let strangers = Arc::new(Strangers::default());
        // Many hosts, a few connections each.
        let host = |i: usize| IpAddr::from([10, 0, (i / 250) as u8, (i % 250) as u8]);
        let slots: Vec<StrangerSlot> = (0..MAX_STRANGERS)
            .map(|i| strangers.enter(host(i)))
            .collect();
        assert_eq!(strangers.count(), MAX_STRANGERS);
        let newest = strangers.enter(host(1000));
        assert_eq!(strangers.count(), MAX_STRANGERS);
        // The oldest was told to close (a stored permit: its next wait returns at once).
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap_or_else(|e| panic!("{e}"));
        let told = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(100), slots[0].evicted.notified())
                .await
                .is_ok()
        });
        assert!(told);
        let spared = rt.block_on(async {
            tokio::time::timeout(Duration::from_millis(20), newest.evicted.notified())
                .await
                .is_ok()
        });
        assert!(!spared);
        drop(slots);
        assert_eq!(strangers.count(), 1);
        drop(newest);

        // One host beyond its share closes its own oldest, not another host's.
        let other = strangers.enter(host(2000));
        let flood: Vec<StrangerSlot> = (0..=MAX_STRANGERS_PER_HOST)
            .map(|_| strangers.enter(host(3000)))
            .collect();
        assert_eq!(strangers.count(), 1 + MAX_STRANGERS_PER_HOST);
        let told = |slot: &StrangerSlot| {
            rt.block_on(async {
                tokio::time::timeout(Duration::from_millis(20), slot.evicted.notified())
                    .await
                    .is_ok()
            })
        };
        assert!(told(&flood[0]));
        assert!(!told(&other));
    }
}
