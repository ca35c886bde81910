//! Linking, on the network: the asking side ([`pair_initiator`]) and the answering side
//! ([`answer_link`]) of the pairing of `qsync_wire::pairing`, over a Noise session. Nothing
//! here records anything: the engine does, once both sides proved the code.

use std::net::SocketAddr;
use std::time::Duration;

use bytes::Bytes;
use futures::{SinkExt, StreamExt};
use qsync_base::{DeviceId, TaskId};
use qsync_wire::pairing::{Answerer, Asker};
use qsync_wire::{Message, PairingCode, Session};
use tokio::sync::oneshot;

use super::{connect, next_frame, send, Conn, LinkRequest, NetCtx, NetEvent};

/// How long either side waits for the last steps of a link once the codes matched.
const LINK_FINISH_WAIT: Duration = Duration::from_secs(30);

/// Why the person's side of a link request gave no code: told to the asking device in
/// fixed words ([`Declined::told`]), the detail kept here ([`Declined::why`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Declined {
    /// The person answered nothing (or no to the folder).
    Refused(String),
    /// The question was not answered in time.
    NoAnswer(String),
    /// The answer could not be used (not a code, a folder that cannot be used), or the
    /// question could not be asked.
    Unusable(String),
    /// The request ended on this side (the asker gave up, the device was forgotten).
    Ended(String),
}

impl Declined {
    /// What the asking device is told.
    pub(crate) fn told(&self) -> &'static str {
        match self {
            Declined::Refused(_) => "the person on the other device refused",
            Declined::NoAnswer(_) => "no answer from the person on the other device in time",
            Declined::Unusable(_) => {
                "the answer given on the other device could not be used (its log says why)"
            }
            Declined::Ended(_) => NOT_MADE,
        }
    }

    /// What this device's log says.
    pub(crate) fn why(&self) -> &str {
        match self {
            Declined::Refused(why)
            | Declined::NoAnswer(why)
            | Declined::Unusable(why)
            | Declined::Ended(why) => why,
        }
    }
}

/// An answer that could not be used, as the steps that read it say it.
impl From<String> for Declined {
    fn from(why: String) -> Self {
        Declined::Unusable(why)
    }
}

/// A link request that ended without a link on the answering side: what the asking device
/// is told (`told`: never a detail of this device, such as a folder's path, since the
/// asker has proved nothing yet) and what this device's log and person hear (`why`).
#[derive(Debug)]
pub(super) struct Refused {
    pub(super) told: &'static str,
    pub(super) why: String,
}

impl Refused {
    fn new(told: &'static str, why: impl ToString) -> Self {
        Self {
            told,
            why: why.to_string(),
        }
    }
}

/// Why a request went wrong here, told to the asker as "the link was not made there".
const NOT_MADE: &str = "the link was not made on the other device (its log says why)";

/// The answering side of a link: ask the person (through the engine), run the PAKE with
/// the code typed, and record the link only once the asker proved the code too.
pub(super) async fn answer_link(
    conn: &mut Conn,
    session: &mut Session,
    request: LinkRequest,
    spake: &[u8],
    ctx: &NetCtx,
) -> Result<(), Refused> {
    let (id, task) = (request.id, request.task);
    let (reply, answer) = oneshot::channel();
    send(ctx, NetEvent::LinkRequest { request, reply });
    // The asker may give up meanwhile: its connection closing ends the wait too.
    let code = tokio::select! {
        answer = tokio::time::timeout(ctx.pair_timeout, answer) => match answer {
            Ok(Ok(Ok(code))) => code,
            Ok(Ok(Err(declined))) => return Err(Refused::new(declined.told(), declined.why())),
            Ok(Err(_)) => return Err(Refused::new(NOT_MADE, "the request was refused")),
            Err(_) => {
                let why = "no answer from the person in time";
                return Err(Refused::new("no answer from the person on the other device in time", why));
            }
        },
        _ = conn.next() => return Err(Refused::new(NOT_MADE, "the asking device went away")),
    };
    let (answerer, spake_b, proof) =
        Answerer::answer(&code, session, task, spake).map_err(|e| Refused::new(NOT_MADE, e))?;
    let message = Message::LinkAnswer {
        name: ctx.name.clone(),
        listen_port: ctx.port,
        spake: Bytes::from(spake_b),
        confirm: proof,
    };
    let frame = session
        .seal(task, &message)
        .map_err(|e| Refused::new(NOT_MADE, e))?;
    conn.send(frame)
        .await
        .map_err(|e| Refused::new(NOT_MADE, e))?;
    let mut frame = next_frame(conn, LINK_FINISH_WAIT)
        .await
        .map_err(|e| Refused::new(NOT_MADE, e))?;
    let confirm = match session
        .open(&mut frame)
        .map_err(|e| Refused::new(NOT_MADE, e))?
    {
        (t, Message::LinkConfirm { confirm }) if t == task => confirm,
        (_, Message::LinkRefused { reason }) => {
            let why = format!("the asking device ended the link: {reason}");
            return Err(Refused::new(NOT_MADE, why));
        }
        _ => return Err(Refused::new(NOT_MADE, "unexpected message during pairing")),
    };
    answerer.check(&confirm).map_err(|e| {
        let told = "the code typed on the other device did not match the one shown here";
        Refused::new(told, e)
    })?;
    let (done, recorded) = oneshot::channel();
    send(ctx, NetEvent::LinkProven { id, done });
    match recorded.await {
        Ok(Ok(())) => {
            let frame = session
                .seal(task, &Message::LinkDone)
                .map_err(|e| Refused::new(NOT_MADE, e))?;
            conn.send(frame)
                .await
                .map_err(|e| Refused::new(NOT_MADE, e))
        }
        Ok(Err(reason)) => Err(Refused::new(NOT_MADE, reason)),
        Err(_) => Err(Refused::new(NOT_MADE, "the daemon stopped")),
    }
}

/// What a finished pairing gives the asking side.
#[derive(Debug)]
pub struct Paired {
    /// The device now linked.
    pub device: DeviceId,
    /// Its name.
    pub name: String,
    /// Where its daemon listens.
    pub addr: SocketAddr,
}

/// What the asking side links.
#[derive(Debug, Clone)]
pub struct LinkPlan {
    /// The task.
    pub task: TaskId,
    /// Its folder's name here, as a suggestion for the other side.
    pub folder_name: String,
    /// Files and bytes that will be sent.
    pub files: u64,
    /// See `files`.
    pub bytes: u64,
    /// The device that must answer: a whole id or a fingerprint (`None`: whoever proves
    /// the code).
    pub expect: Option<String>,
}

/// Ask the daemon at one of `addrs` to link `plan.task`. `shown` hears the device that
/// answered and the code to show this side's person, before the request is sent. Nothing is
/// recorded here; the caller records the link once this returns `Ok`.
pub async fn pair_initiator(
    addrs: Vec<SocketAddr>,
    plan: LinkPlan,
    ctx: NetCtx,
    shown: impl FnOnce(DeviceId, PairingCode),
) -> Result<Paired, String> {
    let (addr, mut conn, mut session) = reach(&addrs, &plan, &ctx).await?;
    let peer = session.peer();
    let code = PairingCode::random().map_err(|e| e.to_string())?;
    shown(peer, code);
    let task = plan.task;
    let (asker, spake) = Asker::start(&code, &session, task);
    let request = Message::LinkRequest {
        name: ctx.name.clone(),
        folder_name: plan.folder_name,
        listen_port: ctx.port,
        files: plan.files,
        bytes: plan.bytes,
        spake: Bytes::from(spake),
    };
    let frame = session.seal(task, &request).map_err(|e| e.to_string())?;
    conn.send(frame).await.map_err(|e| e.to_string())?;
    let mut answer = next_frame(&mut conn, ctx.pair_timeout)
        .await
        .map_err(|e| format!("no answer from {addr}: {e}"))?;
    let (name, listen_port, spake_b, proof) =
        match session.open(&mut answer).map_err(|e| e.to_string())? {
            (
                t,
                Message::LinkAnswer {
                    name,
                    listen_port,
                    spake,
                    confirm,
                },
            ) if t == task => (name, listen_port, spake, confirm),
            (_, Message::LinkRefused { reason }) => {
                return Err(format!("the other device refused: {reason}"))
            }
            _ => return Err("unexpected answer from the other device".into()),
        };
    let proof_a = match asker.check(&spake_b, &proof) {
        Ok(proof_a) => proof_a,
        Err(e) => {
            let refuse = Message::LinkRefused {
                reason: "the code typed did not match the one shown".into(),
            };
            if let Ok(frame) = session.seal(task, &refuse) {
                let _ = conn.send(frame).await;
            }
            return Err(e.to_string());
        }
    };
    let frame = session
        .seal(task, &Message::LinkConfirm { confirm: proof_a })
        .map_err(|e| e.to_string())?;
    conn.send(frame).await.map_err(|e| e.to_string())?;
    let mut done = next_frame(&mut conn, LINK_FINISH_WAIT)
        .await
        .map_err(|e| format!("the other device did not finish the link: {e}"))?;
    match session.open(&mut done).map_err(|e| e.to_string())? {
        (t, Message::LinkDone) if t == task => Ok(Paired {
            device: peer,
            name,
            addr: SocketAddr::new(addr.ip(), listen_port),
        }),
        (_, Message::LinkRefused { reason }) => Err(format!(
            "the other device could not record the link: {reason}"
        )),
        _ => Err("unexpected message from the other device".into()),
    }
}

/// The first of `addrs` that answers (its handshake done); an error if none does, or if
/// the one that answered is this device, or not the device `plan` expects when it names
/// one (the other addresses are not tried then). Where it is, the connection and its
/// session.
async fn reach(
    addrs: &[SocketAddr],
    plan: &LinkPlan,
    ctx: &NetCtx,
) -> Result<(SocketAddr, Conn, Session), String> {
    let expect_id = plan
        .expect
        .as_deref()
        .and_then(|e| e.parse::<DeviceId>().ok());
    let mut last_error = "no address to try".to_owned();
    let mut connected = None;
    for addr in addrs {
        match connect(*addr, &ctx.identity, expect_id).await {
            Ok(found) => {
                connected = Some((*addr, found));
                break;
            }
            Err(e) => last_error = format!("could not link through {addr}: {e}"),
        }
    }
    let Some((addr, (conn, session))) = connected else {
        return Err(last_error);
    };
    let peer = session.peer();
    if peer == ctx.me() {
        return Err(format!("{addr} is this device"));
    }
    if let Some(expect) = &plan.expect {
        if !qsync_wire::names_device(expect, &peer) {
            return Err(format!(
                "the device at {addr} is {}, not the expected {expect}: nothing was sent",
                qsync_wire::fingerprint(&peer)
            ));
        }
    }
    Ok((addr, conn, session))
}
