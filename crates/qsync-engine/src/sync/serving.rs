//! Serving content to peers: the serving threads, one per peer (content or a patch streamed
//! to the peer that asked, and this device's signatures of rsync's exchange), the serve
//! orders of the
//! core turned into its jobs, and the orders that wait for the asker's signature of its
//! version (no copy of it is kept here) before they are served as a patch, or whole.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
use qsync_wire::Message;

use super::{ServeKey, TaskFolder};
use crate::driver::transfer::{self, Budget};
use crate::net::PeerConn;
use crate::net::{self, Outbound, Outgoing};

/// A serve order queued: its key, and 0 for an order from the start or [`RESUMED`] for
/// one from an offset (a request of the same content from the start is another order).
type QueuedKey = (ServeKey, u64);

/// The offset a queued resume (an order from any offset but 0) is known by: one at most
/// per peer and content.
const RESUMED: u64 = u64::MAX;

/// A serve order's place in [`Serving::queued`], given back once it is served.
struct Queued {
    serving: Arc<Mutex<HashSet<QueuedKey>>>,
    key: QueuedKey,
}

impl Drop for Queued {
    fn drop(&mut self) {
        if let Ok(mut serving) = self.serving.lock() {
            serving.remove(&self.key);
        }
    }
}

/// How long the serving thread waits for a connection's queue to drain before it gives a
/// job up (a peer that stopped reading).
const SERVE_STALL: Duration = Duration::from_secs(30);

/// One order for the serving thread: content (or a patch) to send to a peer, or the
/// signature of a version here that a peer asked for.
struct ServeJob {
    root: PathBuf,
    task: TaskId,
    path: RelPath,
    hash: ContentHash,
    work: Work,
    tx: Outgoing,
    /// The connection's queued content bytes (see `net::MAX_QUEUED_CONTENT`).
    queued: Arc<std::sync::atomic::AtomicUsize>,
}

enum Work {
    /// Serve `hash`, as a patch from `base` when one is worth it.
    Serve {
        /// The asker's content at the path, and what is known of it here.
        base: Option<(ContentHash, JobBase)>,
        /// The asker has the first `offset` bytes: the rest is sent (from where their
        /// `checks` part from this copy's).
        offset: u64,
        checks: Vec<ContentHash>,
        /// Its place among the orders queued, given back once served.
        _queued: Queued,
    },
    /// Send the signature of our version `base` of the path (we fetch `hash` from the
    /// peer, which keeps no copy of `base`).
    Sign { base: ContentHash },
}

/// What a patch is made from (see [`transfer::Base`]).
enum JobBase {
    Kept(PathBuf),
    /// A peer's signature, with its share of [`Serving::signature_memory`] held until the
    /// patch is made (given back when the job is dropped).
    Blocks {
        sig: Box<qsync_delta::Signature>,
        _memory: transfer::Share,
    },
}

/// A serve order waiting for the asker's signature of its base (see
/// [`Serving::awaiting`]).
struct Awaiting {
    job: ServeJob,
    base: ContentHash,
    incoming: transfer::IncomingSignature,
    /// When the signature was asked for.
    asked: Instant,
}

/// A serve order whose signature is not all here this long after it was asked for is
/// served whole (a fixed deadline: a peer sending a byte now and then cannot keep an order,
/// and its share of the memory, for ever).
const SIGNATURE_WAIT: Duration = Duration::from_secs(60);

/// Serve orders of one device made from its signatures, waiting for one or queued with it
/// (each holding its share of the signature memory), at most; beyond, served whole. So a
/// device that stops reading holds at most this many shares.
const MAX_AWAITING_PER_DEVICE: usize = 2;

/// Serve orders one peer may have queued; beyond, it is told the content is unavailable
/// (and asks again later, as after any failed fetch). Above what an honest asker has in
/// flight (its window of records, [`qsync_core::WINDOW_RECORDS`], in each of up to eight
/// tasks in common) and a few hundred bytes each: at most about 30 MiB per peer.
const MAX_QUEUED_JOBS: usize = 8 * qsync_core::WINDOW_RECORDS;

/// The serving threads: one per peer that asked for something, each with its own queue, so
/// a peer that asks and stops reading stalls its own orders only. (One thread served every
/// peer: such a peer held all serving, for every device and task, 30 s a file.) A peer
/// keeps its thread across reconnections, so there are at most as many threads as linked
/// devices; orders of a connection that has closed are skipped.
#[derive(Default)]
struct Servers {
    by_peer: HashMap<DeviceId, PeerServer>,
}

/// One peer's serving thread: its queue, how many orders wait in it, and how many of
/// those hold one of its signatures.
struct PeerServer {
    jobs: mpsc::Sender<ServeJob>,
    queued: Arc<std::sync::atomic::AtomicUsize>,
    signed: Arc<std::sync::atomic::AtomicUsize>,
}

impl Servers {
    /// Queue `job` on `peer`'s thread (started with its first order). The job comes back
    /// when the peer's queue is full or no thread could be started.
    fn queue(&mut self, peer: DeviceId, job: ServeJob) -> Result<(), Box<ServeJob>> {
        use std::collections::hash_map::Entry;
        use std::sync::atomic::Ordering;
        let server = match self.by_peer.entry(peer) {
            Entry::Occupied(server) => server.into_mut(),
            Entry::Vacant(place) => match start_server() {
                Ok(server) => place.insert(server),
                Err(e) => {
                    tracing::error!(device = %peer, error = %e, "could not start a serving thread");
                    return Err(Box::new(job));
                }
            },
        };
        if server.queued.load(Ordering::Relaxed) >= MAX_QUEUED_JOBS {
            return Err(Box::new(job));
        }
        server.queued.fetch_add(1, Ordering::Relaxed);
        if job.holds_signature() {
            server.signed.fetch_add(1, Ordering::Relaxed);
        }
        if let Err(mpsc::SendError(job)) = server.jobs.send(job) {
            self.by_peer.remove(&peer);
            return Err(Box::new(job));
        }
        Ok(())
    }

    /// How many orders queued for `peer` hold one of its signatures.
    fn signed(&self, peer: &DeviceId) -> usize {
        self.by_peer.get(peer).map_or(0, |server| {
            server.signed.load(std::sync::atomic::Ordering::Relaxed)
        })
    }
}

impl ServeJob {
    /// Whether it is a patch to make from the asker's signature (holding its share of the
    /// signature memory).
    fn holds_signature(&self) -> bool {
        matches!(
            self.work,
            Work::Serve {
                base: Some((_, JobBase::Blocks { .. })),
                ..
            }
        )
    }
}

/// Start a serving thread; its jobs are sent on the channel returned.
fn start_server() -> std::io::Result<PeerServer> {
    let (jobs, queue) = mpsc::channel::<ServeJob>();
    let queued = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let signed = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let (count, signatures) = (queued.clone(), signed.clone());
    std::thread::Builder::new()
        .name("qsync-serve".into())
        .spawn(move || {
            use std::sync::atomic::Ordering;
            for job in queue {
                serve_job(&job);
                if job.holds_signature() {
                    signatures.fetch_sub(1, Ordering::Relaxed);
                }
                // Dropped before it is counted out: its share of the memory goes with it.
                drop(job);
                count.fetch_sub(1, Ordering::Relaxed);
            }
        })?;
    Ok(PeerServer {
        jobs,
        queued,
        signed,
    })
}

/// Carry out one job: stream what it asks for on its connection, waiting while the
/// connection's queue is over `net::MAX_QUEUED_CONTENT`, and giving the job up after
/// [`SERVE_STALL`] of that (or at once once the connection is closed).
fn serve_job(job: &ServeJob) {
    if job.tx.is_closed() {
        return; // an order of a connection that is gone: the peer asks again
    }
    let send = |message: Message| {
        use std::sync::atomic::Ordering;
        let len = message.served_len();
        let since = Instant::now();
        while len > 0 && job.queued.load(Ordering::Relaxed) > net::MAX_QUEUED_CONTENT {
            if since.elapsed() > SERVE_STALL || job.tx.is_closed() {
                return false;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        job.queued.fetch_add(len, Ordering::Relaxed);
        job.tx.send(Outbound::Message(job.task, message)).is_ok()
    };
    match &job.work {
        Work::Serve {
            base,
            offset,
            checks,
            ..
        } => {
            let base = base.as_ref().map(|(h, b)| {
                let b = match b {
                    JobBase::Kept(path) => transfer::Base::Kept(path),
                    JobBase::Blocks { sig, .. } => transfer::Base::Blocks(sig),
                };
                (*h, b)
            });
            transfer::serve(
                &job.root,
                &job.path,
                job.hash,
                base,
                (*offset, checks),
                send,
            );
        }
        Work::Sign { base } => {
            transfer::sign(&job.root, &job.path, job.hash, *base, send);
        }
    }
}

/// A serve order of the core, with what the daemon found for it: the asker's connection,
/// the task's folder, the size this device announced at the path (none: it announced no
/// such file there), and the kept copy of the asker's version, if any.
pub(super) struct Order {
    pub(super) task: TaskId,
    pub(super) path: RelPath,
    pub(super) hash: ContentHash,
    /// The asker's version at the path.
    pub(super) base: Option<ContentHash>,
    /// The bytes the asker has already, and their checks.
    pub(super) offset: u64,
    pub(super) checks: Vec<ContentHash>,
    pub(super) root: PathBuf,
    pub(super) announced: Option<u64>,
    pub(super) kept: Option<PathBuf>,
}

impl Order {
    /// The core's order to serve `hash` at `path` of `task` from `folder` (`base`: the
    /// asker's version there, `kept`: where a copy of a content is kept here; `offset`:
    /// the bytes the asker has, `checks` their checks, never more than its size has
    /// blocks: what a peer's orders hold stays a sliver of the task).
    pub(super) fn new(
        folder: &TaskFolder,
        kept: impl Fn(&ContentHash) -> Option<PathBuf>,
        (task, path, hash): (TaskId, RelPath, ContentHash),
        (base, offset, mut checks): (Option<ContentHash>, u64, Vec<ContentHash>),
    ) -> Self {
        checks.truncate(qsync_base::check_count(offset) as usize);
        // A patch needs the asker's version: kept here if this task held it (a content of
        // another task is never used, nor its presence told: see `held.rs`).
        let kept = base
            .filter(|b| folder.held.contains(b))
            .and_then(|b| kept(&b));
        Self {
            task,
            announced: folder.announced(&path, &hash),
            path,
            hash,
            base,
            offset,
            checks,
            root: folder.root.clone(),
            kept,
        }
    }
}

/// Serving content to peers: their threads, the orders queued, and the orders that wait
/// for the asker's signature.
#[derive(Default)]
pub(super) struct Serving {
    /// The threads that stream requested content to peers, one per peer.
    servers: Servers,
    /// Serve orders queued and not yet served: a request for what is queued already is
    /// not queued again (so the queue holds at most one order per file of the task for
    /// each device, however often a peer asks).
    queued: Arc<Mutex<HashSet<QueuedKey>>>,
    /// Serve orders for an edit whose base (the asker's version) has no copy kept here:
    /// the asker was asked for its signature ([`Message::SignatureWanted`]), and the order
    /// waits for it (at most [`SIGNATURE_WAIT`] without a chunk), then is served as a patch
    /// made from it, or whole.
    awaiting: HashMap<ServeKey, Awaiting>,
    /// Bytes of signatures held in memory, all devices together (at most
    /// [`transfer::MAX_SIGNATURE_MEMORY`]).
    signature_memory: Budget,
}

impl Serving {
    /// Whether no serve order is queued, under way, or waiting for a signature.
    pub(super) fn idle(&self) -> bool {
        self.awaiting.is_empty() && self.queued.lock().is_ok_and(|s| s.is_empty())
    }

    /// Drop the orders waiting for a signature (the connections are gone).
    pub(super) fn reset(&mut self) {
        self.awaiting.clear();
    }

    /// The connection with `device` closed: its orders queued are skipped (their
    /// connection is closed), and those it makes after reconnecting must not be taken for
    /// them and dropped as repeats; its orders waiting for a signature are dropped (it
    /// asks again).
    pub(super) fn disconnected(&mut self, device: DeviceId) {
        if let Ok(mut queued) = self.queued.lock() {
            queued.retain(|((d, ..), _)| *d != device);
        }
        self.awaiting.retain(|(d, ..), _| *d != device);
    }

    /// The core's order to serve `order` to `to` on `conn`: queued for the peer's serving
    /// thread, or parked while the asker's signature of its version comes.
    pub(super) fn serve(&mut self, to: DeviceId, conn: &PeerConn, order: Order) {
        let Order {
            task,
            path,
            hash,
            base,
            offset,
            checks,
            root,
            announced,
            kept,
        } = order;
        // Only what this device announced there: a regular file of the task's index (so
        // not an ignored path, a temporary file, or a guess) with that hash.
        let Some(size) = announced.filter(|size| offset <= *size) else {
            let _ = conn
                .tx
                .send(Outbound::Message(task, Message::Unavailable { path, hash }));
            return;
        };
        // At most one resume of a content queued per peer (its checks cut in `Order::new`).
        let queued_as = if offset == 0 { 0 } else { RESUMED };
        let key = (to, task, path.clone(), hash);
        let fresh = self
            .queued
            .lock()
            .is_ok_and(|mut queued| queued.insert((key.clone(), queued_as)));
        if !fresh {
            return; // queued already: served once
        }
        let queued = Queued {
            serving: self.queued.clone(),
            key: (key.clone(), queued_as),
        };
        let kept = base.zip(kept).map(|(b, path)| (b, JobBase::Kept(path)));
        let job = ServeJob {
            root,
            task,
            path: path.clone(),
            hash,
            work: Work::Serve {
                base: kept,
                offset,
                checks,
                _queued: queued,
            },
            tx: conn.tx.clone(),
            queued: conn.queued.clone(),
        };
        // No copy of the asker's version: it describes it (rsync's exchange), for a file
        // large enough for the round trip to pay, within the memory for signatures.
        let waiting =
            self.awaiting.keys().filter(|(d, ..)| *d == to).count() + self.servers.signed(&to);
        let signed = match (&job.work, base) {
            (Work::Serve { base: None, .. }, Some(base))
                if size >= transfer::MIN_SIGNED_FILE
                    && waiting < MAX_AWAITING_PER_DEVICE
                    && self.signature_memory.used() < transfer::MAX_SIGNATURE_MEMORY =>
            {
                Some(base)
            }
            _ => None,
        };
        if let Some(base) = signed {
            let wanted = Message::SignatureWanted { path, hash, base };
            if conn.tx.send(Outbound::Message(task, wanted)).is_ok() {
                let awaiting = Awaiting {
                    job,
                    base,
                    incoming: transfer::IncomingSignature::start(&self.signature_memory),
                    asked: Instant::now(),
                };
                self.awaiting.insert(key, awaiting);
            }
            return;
        }
        self.queue(to, job);
    }

    /// Send `to` this device's signature of its version `base` at `path` (it makes a patch
    /// from it for a fetch of ours).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn sign(
        &mut self,
        to: DeviceId,
        conn: &PeerConn,
        task: TaskId,
        root: PathBuf,
        path: RelPath,
        hash: ContentHash,
        base: ContentHash,
    ) {
        let job = ServeJob {
            root,
            task,
            path,
            hash,
            work: Work::Sign { base },
            tx: conn.tx.clone(),
            queued: conn.queued.clone(),
        };
        self.queue(to, job);
    }

    /// Hand a serve order to `to`'s serving thread. If its queue is full, the peer is
    /// answered at once: the content is unavailable (it asks again later), or, for a
    /// signature, "send it whole" (the last, empty, signature message), so that it does
    /// not wait for one.
    fn queue(&mut self, to: DeviceId, job: ServeJob) {
        if let Err(job) = self.servers.queue(to, job) {
            tracing::warn!(device = %to, path = %job.path, "too many orders queued for this device; it asks again later");
            let (path, hash) = (job.path.clone(), job.hash);
            let answer = match job.work {
                Work::Serve { .. } => Message::Unavailable { path, hash },
                Work::Sign { base } => Message::Signature {
                    path,
                    hash,
                    base,
                    offset: 0,
                    data: Bytes::new(),
                    last: true,
                },
            };
            let _ = job.tx.send(Outbound::Message(job.task, answer));
        }
    }

    /// A chunk of a signature from `device`, for the serve order at `key` waiting for it
    /// (nothing else takes one): once whole, the order is served as a patch made from it
    /// (or whole, if it is refused or describes another version).
    #[allow(clippy::too_many_arguments)]
    pub(super) fn signature(
        &mut self,
        key: ServeKey,
        base: ContentHash,
        offset: u64,
        data: &[u8],
        last: bool,
    ) {
        let Some(awaiting) = self.awaiting.get_mut(&key) else {
            return;
        };
        if awaiting.base != base {
            return;
        }
        if !last {
            if let Err(e) = awaiting.incoming.accept(offset, data) {
                tracing::debug!(device = %key.0, error = %e, "a signature was refused; the content is served whole");
                self.serve_awaiting(&key, None);
            }
            return;
        }
        let incoming = std::mem::replace(
            &mut awaiting.incoming,
            transfer::IncomingSignature::start(&self.signature_memory),
        );
        // Only a signature of the base the asker named: any other makes a patch it would
        // refuse.
        let signature = incoming
            .finish()
            .filter(|(sig, _)| sig.source_hash() == base);
        self.serve_awaiting(&key, signature);
    }

    /// Serve orders whose signature did not come within [`SIGNATURE_WAIT`] are served whole.
    pub(super) fn late(&mut self) {
        let late: Vec<ServeKey> = self
            .awaiting
            .iter()
            .filter(|(_, a)| a.asked.elapsed() >= SIGNATURE_WAIT)
            .map(|(key, _)| key.clone())
            .collect();
        for key in late {
            tracing::debug!(device = %key.0, path = %key.2, "no signature came; the content is served whole");
            self.serve_awaiting(&key, None);
        }
    }

    /// The serve order waiting at `key` for a signature goes to the serving thread: as a
    /// patch made from `signature`, or whole.
    fn serve_awaiting(
        &mut self,
        key: &ServeKey,
        signature: Option<(qsync_delta::Signature, transfer::Share)>,
    ) {
        let Some(Awaiting { mut job, .. }) = self.awaiting.remove(key) else {
            return;
        };
        if let (Work::Serve { base, .. }, Some((sig, memory))) = (&mut job.work, signature) {
            let described = sig.source_hash();
            let from = JobBase::Blocks {
                sig: Box::new(sig),
                _memory: memory,
            };
            *base = Some((described, from));
        }
        self.queue(key.0, job);
    }
}
