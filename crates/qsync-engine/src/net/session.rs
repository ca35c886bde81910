//! Connections: listening (admission, the handshake within its deadline and a
//! stranger's place, then a linked device's session or a link request), dialling a linked
//! device, and a session's two halves (a writer that seals what the engine queues, urgent
//! frames first; a reader that opens frames within the memory budgets and hands them to
//! the engine).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::stream::{SplitSink, SplitStream};
use futures::{SinkExt, StreamExt};
use qsync_base::{DeviceId, TaskId};
use qsync_wire::{FrameCodec, Handshake, Identity, Message, Session, WireError, MAX_FRAME_LEN};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_util::codec::Framed;

use super::{
    count, pairing, send, Conn, HostPlace, LinkRequest, NetCtx, NetEvent, Outbound, PeerConn,
    Refused, WireCounters, HANDSHAKE_DEADLINE, INBOX_BUDGET_KIB, PEER_INBOX_KIB,
};

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
    let mut conn = Framed::new(stream, FrameCodec::pre_auth());
    let (session, (task, message)) = open_incoming(&mut conn, addr, &ctx).await?;
    let peer = session.peer();
    if peer == ctx.me() {
        return Ok(());
    }
    if let Message::LinkRequest { .. } = message {
        return link_request(conn, session, (task, message), addr, &ctx).await;
    }
    if !ctx.is_linked(&peer) {
        tracing::info!(device = %peer, %addr, "refused a connection from a device that is not linked");
        return Ok(());
    }
    // A linked device's reconnects never use up its address's rate.
    if let Ok(mut admission) = ctx.admission.lock() {
        admission.proven(addr.ip());
    }
    conn.codec_mut().set_max_frame_len(MAX_FRAME_LEN);
    run_session(conn, session, peer, addr, false, ctx, Some((task, message))).await
}

/// The handshake and the first message of a connection from `addr`, which say what the
/// connection is for (a linked device greets, any device with a proven key may ask to
/// link, nothing else), within one deadline and one stranger's place.
async fn open_incoming(
    conn: &mut Conn,
    addr: SocketAddr,
    ctx: &NetCtx,
) -> Result<(Session, (TaskId, Message)), WireError> {
    let slot = ctx.strangers.enter(addr.ip());
    let hs = Handshake::respond(&ctx.identity)?;
    let opening = async {
        let mut session = handshake(conn, hs, None).await?;
        let mut first = next_frame(conn, HANDSHAKE_DEADLINE).await?;
        let opened = session.open(&mut first)?;
        Ok::<_, WireError>((session, opened))
    };
    tokio::select! {
        done = tokio::time::timeout(HANDSHAKE_DEADLINE, opening) => {
            done.map_err(|_| io_error(std::io::ErrorKind::TimedOut, "the handshake took too long"))?
        }
        () = slot.evicted.notified() => Err(io_error(
            std::io::ErrorKind::ConnectionAborted,
            "closed: too many connections were waiting to prove who they are",
        )),
    }
}

/// A device with a proven key asks to link a task (`first`: its `LinkRequest`): within
/// the limits on requests waiting (per host, and all together), the pairing is answered;
/// a failure tells the peer only that it failed (the detail is for this device's log).
async fn link_request(
    mut conn: Conn,
    mut session: Session,
    first: (TaskId, Message),
    addr: SocketAddr,
    ctx: &NetCtx,
) -> Result<(), WireError> {
    let (
        task,
        Message::LinkRequest {
            name,
            folder_name,
            listen_port,
            files,
            bytes,
            spake,
        },
    ) = first
    else {
        return Ok(());
    };
    let place = HostPlace::take(ctx, addr.ip());
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
        device: session.peer(),
        name,
        task,
        folder_name,
        files,
        bytes,
        addr: SocketAddr::new(addr.ip(), listen_port),
    };
    let id = request.id;
    if let Err(refused) = pairing::answer_link(&mut conn, &mut session, request, &spake, ctx).await
    {
        let refuse = Message::LinkRefused {
            reason: refused.told.into(),
        };
        if let Ok(frame) = session.seal(task, &refuse) {
            let _ = conn.send(frame).await;
        }
        let reason = refused.why;
        send(ctx, NetEvent::LinkFailed { id, reason });
    }
    Ok(())
}

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
    let (tx, rx) = mpsc::unbounded_channel::<Outbound>();
    let (urgent, urgent_rx) = mpsc::unbounded_channel::<Outbound>();
    let queued = Arc::new(AtomicUsize::new(0));
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
    let (sink, stream) = conn.split();
    let mut writer = tokio::spawn(write_frames(
        sink,
        (rx, urgent_rx),
        session.clone(),
        ctx.wire.clone(),
        queued,
    ));
    let from = (device, addr, conn_id);
    let result = read_frames(stream, &mut writer, from, &session, &ctx).await;
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

/// Seal and write what the engine queues for the device (its urgent frames first: a
/// ping's answer never waits behind queued content), until the engine drops the
/// connection or a write fails.
async fn write_frames(
    mut sink: SplitSink<Conn, Bytes>,
    (mut rx, mut urgent_rx): (
        mpsc::UnboundedReceiver<Outbound>,
        mpsc::UnboundedReceiver<Outbound>,
    ),
    session: Arc<Mutex<Session>>,
    wire: Arc<WireCounters>,
    queued: Arc<AtomicUsize>,
) {
    let seal = |task: TaskId, message: &Message| -> Result<Bytes, WireError> {
        let frame = match session.lock() {
            Ok(mut s) => s.seal(task, message)?,
            Err(_) => return Err(WireError::Poisoned),
        };
        count(&wire.sent, frame.len());
        Ok(frame)
    };
    loop {
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
        let len = message.served_len();
        if len > 0 {
            queued.fetch_sub(len.min(queued.load(Ordering::Relaxed)), Ordering::Relaxed);
        }
        if let Err(e) = sent {
            tracing::warn!(error = %e, "could not send; closing the connection");
            break;
        }
    }
    let _ = sink.close().await;
}

/// Read, open and hand the engine the frames of `device` (at `addr`, connection
/// `conn_id`), each within the memory budgets (the device's own for messages without
/// content, the daemon's for content), until the connection ends, a frame does not open,
/// or the writer ends (the engine dropped this connection for a newer one from the same
/// device: one connection per device, so a device cannot keep old connections feeding
/// the engine).
async fn read_frames(
    mut stream: SplitStream<Conn>,
    writer: &mut tokio::task::JoinHandle<()>,
    (device, addr, conn_id): (DeviceId, SocketAddr, u64),
    session: &Mutex<Session>,
    ctx: &NetCtx,
) -> Result<(), WireError> {
    let peer_inbox = Arc::new(tokio::sync::Semaphore::new(PEER_INBOX_KIB));
    loop {
        let frame = tokio::select! {
            frame = stream.next() => frame,
            _ = &mut *writer => return Ok(()),
        };
        let Some(frame) = frame else {
            return Ok(());
        };
        let mut frame = frame?;
        count(&ctx.wire.received, frame.len());
        let frame_kib =
            u32::try_from(frame.len().div_ceil(1024).clamp(1, PEER_INBOX_KIB)).unwrap_or(u32::MAX);
        let opened = match session.lock() {
            Ok(mut s) => s.open(&mut frame),
            Err(_) => return Ok(()),
        };
        let (task, message) = opened.inspect_err(|e| {
            tracing::warn!(%device, %addr, error = %e, "rejected a frame; closing the connection");
        })?;
        let credit = match message.data_len() {
            0 => peer_inbox.clone().acquire_many_owned(frame_kib).await.ok(),
            len => {
                // Never more than the whole budget, or it would wait forever.
                let kib = len.div_ceil(1024).min(INBOX_BUDGET_KIB);
                let kib = u32::try_from(kib).unwrap_or(u32::MAX);
                ctx.inbox_budget.clone().acquire_many_owned(kib).await.ok()
            }
        };
        let received = NetEvent::Received {
            device,
            conn: conn_id,
            task,
            message,
            credit,
        };
        send(ctx, received);
    }
}
