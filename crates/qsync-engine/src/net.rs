//! The network side: connections, handshakes, pairing, sealed sessions. Thin tokio tasks
//! that hand everything they receive to the engine thread as [`Event`]s.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::mpsc::Sender;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures::{SinkExt, StreamExt};
use qsync_base::{DeviceId, TaskId};
use qsync_wire::pairing::{open_pair, seal_pair, ConfirmationCode, PairMessage, PairingSecret};
use qsync_wire::{
    peek_sender, FrameCodec, FrameKind, Handshake, LinkKey, Message, Opening, Session, WireError,
};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::Framed;

/// Keys of linked devices, shared by the engine (which writes) and connections (which read).
pub type Keys = Arc<Mutex<HashMap<DeviceId, LinkKey>>>;

/// Something to send on a connection.
#[derive(Debug)]
pub enum Outbound {
    /// One message.
    Message(TaskId, Message),
    /// The content of an open file, streamed as `Chunk` messages of `update` as fast as
    /// the connection takes them (never all in memory). An open blob keeps its content
    /// even if the blob is removed meanwhile.
    Content {
        /// The task.
        task: TaskId,
        /// The update the chunks belong to.
        update: qsync_base::UpdateId,
        /// The content.
        file: std::fs::File,
    },
}

/// What to send on a connection.
pub type Outgoing = mpsc::UnboundedSender<Outbound>;

/// What the network tells the engine.
#[derive(Debug)]
pub enum NetEvent {
    /// An authenticated connection with a linked device is up.
    Connected {
        /// The device.
        device: DeviceId,
        /// This connection's number.
        conn: u64,
        /// Where the device is.
        addr: SocketAddr,
        /// Frames to send it.
        tx: Outgoing,
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
        /// About which task.
        task: TaskId,
        /// What.
        message: Message,
        /// The share of [`NetCtx::inbox_budget`] the message holds until it is dropped.
        credit: Option<tokio::sync::OwnedSemaphorePermit>,
    },
    /// A device asks to link a task: the engine asks its person, then answers `reply`.
    PairRequest {
        /// The asking device.
        device: DeviceId,
        /// Its name.
        name: String,
        /// The task.
        task: TaskId,
        /// Its folder name on the asking device.
        folder_name: String,
        /// Where the asking device's daemon listens.
        addr: SocketAddr,
        /// The agreed key, to store if accepted.
        key: LinkKey,
        /// The code both sides show.
        code: ConfirmationCode,
        /// `Ok(())` to accept, `Err(reason)` to refuse.
        reply: oneshot::Sender<Result<(), String>>,
    },
}

/// What connections need to know.
#[derive(Clone)]
pub struct NetCtx {
    /// This device.
    pub me: DeviceId,
    /// Its name.
    pub name: String,
    /// The port it listens on.
    pub port: u16,
    /// Keys of linked devices.
    pub keys: Keys,
    /// Where events go.
    pub events: Sender<super::daemon::Event>,
    /// Connection numbers.
    pub next_conn: Arc<std::sync::atomic::AtomicU64>,
    /// How long a pairing may wait for the other person.
    pub pair_timeout: Duration,
    /// Bytes of sealed frames sent and received (length prefix included), for `status`.
    pub wire: Arc<WireCounters>,
    /// Received file content the engine has not handled yet, in KiB, bounded by
    /// [`INBOX_BUDGET_KIB`]: while the engine is busy (flushing a batch to disk, say) a
    /// connection stops reading its socket, and TCP slows the sender down, instead of
    /// queueing chunks in memory without limit.
    pub inbox_budget: Arc<tokio::sync::Semaphore>,
}

/// How much received file content may wait for the engine, in KiB.
pub const INBOX_BUDGET_KIB: usize = 64 * 1024;

/// Bytes on the wire, counted by the sessions.
#[derive(Debug, Default)]
pub struct WireCounters {
    /// Sent.
    pub sent: std::sync::atomic::AtomicU64,
    /// Received.
    pub received: std::sync::atomic::AtomicU64,
}

fn count(counter: &std::sync::atomic::AtomicU64, frame_len: usize) {
    counter.fetch_add(frame_len as u64 + 4, std::sync::atomic::Ordering::Relaxed);
}

fn send(ctx: &NetCtx, event: NetEvent) {
    let _ = ctx.events.send(super::daemon::Event::Net(event));
}

type Conn = Framed<TcpStream, FrameCodec>;

async fn next_frame(conn: &mut Conn, timeout: Duration) -> Result<BytesMut, WireError> {
    match tokio::time::timeout(timeout, conn.next()).await {
        Ok(Some(frame)) => frame,
        Ok(None) => Err(WireError::Io(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "connection closed",
        ))),
        Err(_) => Err(WireError::Io(std::io::Error::new(
            std::io::ErrorKind::TimedOut,
            "no answer in time",
        ))),
    }
}

async fn open_connection(
    stream: TcpStream,
    me: DeviceId,
) -> Result<(Conn, Handshake, Opening), WireError> {
    let _ = stream.set_nodelay(true);
    let mut conn = Framed::new(stream, FrameCodec::new());
    let (handshake, open) = Handshake::start(me)?;
    conn.send(open).await?;
    let first = next_frame(&mut conn, Duration::from_secs(10)).await?;
    let opening = Opening::parse(&first)?;
    Ok((conn, handshake, opening))
}

/// Accept connections forever.
pub async fn listen(listener: TcpListener, ctx: NetCtx) {
    loop {
        match listener.accept().await {
            Ok((stream, addr)) => {
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

async fn incoming(stream: TcpStream, addr: SocketAddr, ctx: NetCtx) -> Result<(), WireError> {
    let (mut conn, handshake, opening) = open_connection(stream, ctx.me).await?;
    let peer = opening.sender();
    let mut second = next_frame(&mut conn, Duration::from_secs(60)).await?;
    let (kind, _) = peek_sender(&second)?;
    match kind {
        FrameKind::Pair => pair_responder(conn, addr, &second, ctx).await,
        FrameKind::Sealed => {
            let key = ctx.keys.lock().ok().and_then(|k| k.get(&peer).cloned());
            let Some(key) = key else {
                tracing::warn!(device = %peer, %addr, "refused a connection from a device that is not linked");
                return Ok(());
            };
            let mut session = handshake.finish_opening(&opening, &key)?;
            let first = session.open(&mut second)?;
            run_session(conn, session, peer, addr, ctx, Some(first)).await
        }
        FrameKind::Open => Err(WireError::UnexpectedKind {
            got: 1,
            expected: "Pair or Sealed",
        }),
    }
}

/// Connect to a linked device.
pub async fn dial(addr: SocketAddr, expected: DeviceId, ctx: NetCtx) -> Result<(), WireError> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| {
            WireError::Io(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "connect timed out",
            ))
        })??;
    let (conn, handshake, opening) = open_connection(stream, ctx.me).await?;
    if opening.sender() != expected {
        return Err(WireError::ForeignSender {
            expected,
            got: opening.sender(),
        });
    }
    let key = ctx.keys.lock().ok().and_then(|k| k.get(&expected).cloned());
    let Some(key) = key else { return Ok(()) };
    let mut session = handshake.finish_opening(&opening, &key)?;
    let hello = session.seal(
        TaskId::from_bytes([0; 32]),
        &Message::Hello {
            name: ctx.name.clone(),
        },
    )?;
    let mut conn = conn;
    conn.send(hello).await?;
    run_session(conn, session, expected, addr, ctx, None).await
}

async fn run_session(
    conn: Conn,
    session: Session,
    device: DeviceId,
    addr: SocketAddr,
    ctx: NetCtx,
    first: Option<(TaskId, Message)>,
) -> Result<(), WireError> {
    let conn_id = ctx
        .next_conn
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let session = Arc::new(Mutex::new(session));
    let (tx, mut rx) = mpsc::unbounded_channel::<Outbound>();
    send(
        &ctx,
        NetEvent::Connected {
            device,
            conn: conn_id,
            addr,
            tx,
        },
    );
    if let Some((task, message)) = first {
        send(
            &ctx,
            NetEvent::Received {
                device,
                task,
                message,
                credit: None,
            },
        );
    }
    let (mut sink, mut stream) = conn.split();
    let writer_session = session.clone();
    let wire = ctx.wire.clone();
    let writer = tokio::spawn(async move {
        let seal = |task: TaskId, message: &Message| -> Result<Bytes, WireError> {
            let frame = match writer_session.lock() {
                Ok(mut s) => s.seal(task, message)?,
                Err(_) => return Err(WireError::Poisoned),
            };
            count(&wire.sent, frame.len());
            Ok(frame)
        };
        while let Some(outbound) = rx.recv().await {
            let sent: Result<(), WireError> = async {
                match outbound {
                    Outbound::Message(task, message) => sink.send(seal(task, &message)?).await,
                    Outbound::Content { task, update, file } => {
                        use tokio::io::AsyncReadExt;
                        // Blobs never change, so the length announced in the `Create` is
                        // what is read; buffers are no larger than what is left (a 4 KiB
                        // file does not cost a zeroed 1 MiB buffer).
                        let len = file.metadata()?.len();
                        let mut file = tokio::fs::File::from_std(file);
                        let mut offset = 0u64;
                        while offset < len {
                            let want = (len - offset).min(qsync_wire::MAX_CHUNK_LEN as u64);
                            let mut buf = vec![0u8; want as usize];
                            file.read_exact(&mut buf).await?;
                            let chunk = Message::Chunk {
                                update,
                                offset,
                                data: Bytes::from(buf),
                            };
                            sink.send(seal(task, &chunk)?).await?;
                            offset += want;
                        }
                        Ok(())
                    }
                }
            }
            .await;
            if let Err(e) = sent {
                tracing::warn!(error = %e, "could not send; closing the connection");
                break;
            }
        }
        let _ = sink.close().await;
    });
    let result = loop {
        let Some(frame) = stream.next().await else {
            break Ok(());
        };
        let mut frame = match frame {
            Ok(frame) => frame,
            Err(e) => break Err(e),
        };
        count(&ctx.wire.received, frame.len());
        let opened = match session.lock() {
            Ok(mut s) => s.open(&mut frame),
            Err(_) => break Ok(()),
        };
        match opened {
            Ok((task, message)) => {
                let credit = match &message {
                    Message::Chunk { data, .. } => {
                        // Never more than the whole budget, or it would wait forever.
                        let kib = data.len().div_ceil(1024).min(INBOX_BUDGET_KIB);
                        let kib = u32::try_from(kib).unwrap_or(u32::MAX);
                        ctx.inbox_budget.clone().acquire_many_owned(kib).await.ok()
                    }
                    _ => None,
                };
                send(
                    &ctx,
                    NetEvent::Received {
                        device,
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

/// What a finished pairing gives the asking side.
#[derive(Debug)]
pub struct Paired {
    /// The device now linked.
    pub device: DeviceId,
    /// Its name.
    pub name: String,
    /// The agreed key.
    pub key: LinkKey,
    /// The code both sides show.
    pub code: ConfirmationCode,
    /// Where its daemon listens.
    pub addr: SocketAddr,
}

/// Ask the daemon at `addr` to link `task`.
pub async fn pair_initiator(
    addr: SocketAddr,
    task: TaskId,
    folder_name: String,
    ctx: NetCtx,
) -> Result<Paired, String> {
    let stream = tokio::time::timeout(Duration::from_secs(5), TcpStream::connect(addr))
        .await
        .map_err(|_| format!("could not reach {addr}: timed out"))?
        .map_err(|e| format!("could not reach {addr}: {e}"))?;
    let (mut conn, _, opening) = open_connection(stream, ctx.me)
        .await
        .map_err(|e| e.to_string())?;
    let secret = PairingSecret::generate().map_err(|e| e.to_string())?;
    let request = PairMessage::Request {
        public_key: secret.public_key(),
        name: ctx.name.clone(),
        folder_name,
        listen_port: ctx.port,
    };
    conn.send(seal_pair(ctx.me, task, &request).map_err(|e| e.to_string())?)
        .await
        .map_err(|e| e.to_string())?;
    let answer = next_frame(&mut conn, ctx.pair_timeout)
        .await
        .map_err(|e| format!("no answer from {addr}: {e}"))?;
    let (sender, answer_task, answer) = open_pair(&answer).map_err(|e| e.to_string())?;
    if sender != opening.sender() || answer_task != task {
        return Err("the answer does not match the request".into());
    }
    match answer {
        PairMessage::Accept {
            public_key,
            name,
            listen_port,
        } => {
            let (key, code) = secret
                .agree(ctx.me, sender, &public_key)
                .map_err(|e| e.to_string())?;
            Ok(Paired {
                device: sender,
                name,
                key,
                code,
                addr: SocketAddr::new(addr.ip(), listen_port),
            })
        }
        PairMessage::Refuse { reason } => Err(format!("the other device refused: {reason}")),
        PairMessage::Request { .. } => Err("unexpected pairing message".into()),
    }
}

async fn pair_responder(
    mut conn: Conn,
    addr: SocketAddr,
    frame: &[u8],
    ctx: NetCtx,
) -> Result<(), WireError> {
    let (device, task, message) = open_pair(frame)?;
    let PairMessage::Request {
        public_key,
        name,
        folder_name,
        listen_port,
    } = message
    else {
        return Ok(());
    };
    let secret = PairingSecret::generate()?;
    let my_public = secret.public_key();
    let (key, code) = secret.agree(ctx.me, device, &public_key)?;
    let (reply, answer) = oneshot::channel();
    send(
        &ctx,
        NetEvent::PairRequest {
            device,
            name,
            task,
            folder_name,
            addr: SocketAddr::new(addr.ip(), listen_port),
            key,
            code,
            reply,
        },
    );
    let answer = match tokio::time::timeout(ctx.pair_timeout, answer).await {
        Ok(Ok(answer)) => answer,
        _ => Err("no answer from the person in time".to_owned()),
    };
    let message = match answer {
        Ok(()) => PairMessage::Accept {
            public_key: my_public,
            name: ctx.name.clone(),
            listen_port: ctx.port,
        },
        Err(reason) => PairMessage::Refuse { reason },
    };
    conn.send(seal_pair(ctx.me, task, &message)?).await?;
    Ok(())
}
