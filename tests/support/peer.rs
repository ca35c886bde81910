//! A linked device turned hostile: it holds a real device's key (taken from the state
//! folder of a daemon that was linked the ordinary way and then stopped), connects as that
//! device, and speaks the sync protocol by hand with QSync's own crates: it can announce
//! any record, answer requests with any bytes, and ask for anything.
#![allow(dead_code)]

use std::collections::HashMap;
use std::net::TcpStream;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use qsync_base::{ContentHash, RelPath, VersionVector};
use qsync_core::{Record, State};
use qsync_wire::{DeviceId, Identity, Message, Session, TaskId};

// The includer declares `hostile` (support/hostile.rs) beside this module.
use super::hostile;

/// The key pair of the daemon whose state folder is `state`.
pub fn identity_of(state: &Path) -> Identity {
    let bytes = std::fs::read(state.join("identity.key")).expect("identity.key");
    let private: [u8; 32] = bytes.try_into().expect("32 bytes");
    Identity::from_private_bytes(private).expect("a key")
}

/// What the victim sent.
#[derive(Debug, Clone)]
pub enum Heard {
    /// A sync message of its core.
    Core(qsync_core::Message),
    /// Anything else (content, hello, ...).
    Wire(Message),
}

pub struct Peer {
    stream: TcpStream,
    frames: Receiver<Vec<u8>>,
    session: Session,
    pub me: DeviceId,
    pub task: TaskId,
    /// The last sequence number used for this device's records.
    pub seq: u64,
    /// The victim's records, by path (as its core sent them).
    pub theirs: HashMap<RelPath, Record>,
    /// Everything heard so far.
    pub heard: Vec<Heard>,
    /// Set: the socket is no longer read (see [`Peer::stop_reading`]).
    deaf: Arc<AtomicBool>,
    /// Patches to send with the next records (see [`Peer::put_patched`]).
    patches: Vec<(u32, Bytes)>,
}

impl Peer {
    /// Connect to the daemon on `port` as `identity` (a device linked to `task` there),
    /// greet it, and ask for all of its records.
    pub fn connect(port: u16, identity: &Identity, task: TaskId) -> Peer {
        let (stream, session) = hostile::connect(port, identity).expect("handshake");
        let mut reader = stream.try_clone().expect("clone");
        reader.set_read_timeout(None).expect("timeout");
        let (tx, frames) = channel();
        let deaf = Arc::new(AtomicBool::new(false));
        let stop = deaf.clone();
        std::thread::spawn(move || loop {
            if stop.load(Ordering::Relaxed) {
                std::thread::sleep(Duration::from_millis(10));
                continue;
            }
            let Ok(frame) = hostile::recv(&mut reader) else {
                break;
            };
            if tx.send(frame).is_err() {
                break;
            }
        });
        let mut peer = Peer {
            stream,
            frames,
            session,
            me: identity.device(),
            task,
            seq: 0,
            theirs: HashMap::new(),
            heard: Vec::new(),
            deaf,
            patches: Vec::new(),
        };
        peer.send(
            TaskId::from_bytes([0; 32]),
            &Message::Hello {
                name: "hostile".into(),
            },
        );
        // Its greeting says how far it has our records: we go on from there.
        peer.until(Duration::from_secs(20), |heard| {
            matches!(heard, Heard::Core(qsync_core::Message::Hello { .. }))
        });
        let after = peer.heard.iter().find_map(|h| match h {
            Heard::Core(qsync_core::Message::Hello { after, .. }) => Some(*after),
            _ => None,
        });
        peer.seq = after.unwrap_or(0);
        peer.core(qsync_core::Message::Hello {
            task,
            after: 0,
            reply: false,
        });
        peer.pump(Duration::from_secs(1));
        peer
    }

    /// Stop reading the socket (the connection stays open): what the victim sends piles up
    /// in its buffers until it blocks.
    pub fn stop_reading(&self) {
        self.deaf.store(true, Ordering::Relaxed);
    }

    /// Close the connection (both ways), as a device that is killed or leaves the
    /// network: the victim sees it end at once.
    pub fn close(self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }

    /// Send one wire message about `task`.
    pub fn send(&mut self, task: TaskId, message: &Message) {
        let frame = self.session.seal(task, message).expect("seal");
        hostile::send(&mut self.stream, &frame).expect("send");
    }

    /// Send one message of the sync protocol.
    pub fn core(&mut self, message: qsync_core::Message) {
        let body = Bytes::from(message.to_wire().expect("encode"));
        let task = self.task;
        let patches = std::mem::take(&mut self.patches);
        let wire = if patches.is_empty() {
            Message::Sync { body }
        } else {
            Message::SyncPatched { body, patches }
        };
        self.send(task, &wire);
    }

    /// [`Peer::put`], the record carrying `patch` as the patch of its content (whatever
    /// it holds).
    pub fn put_patched(&mut self, path: &str, state: State, patch: Vec<u8>) -> Record {
        self.patches = vec![(0, Bytes::from(patch))];
        self.put(path, state)
    }

    /// Announce `state` at `path` as a new version that has seen every version the victim
    /// announced there (so it is taken, not a conflict); returns the record.
    pub fn put(&mut self, path: &str, state: State) -> Record {
        let records = self.put_many(vec![(path.to_owned(), state)]);
        records.into_iter().next().expect("one record")
    }

    /// [`Peer::put`] for many paths, in messages of at most 256 records.
    pub fn put_many(&mut self, changes: Vec<(String, State)>) -> Vec<Record> {
        let mut out = Vec::new();
        for chunk in changes.chunks(256) {
            let mut records = Vec::new();
            for (path, state) in chunk {
                self.seq += 1;
                let path = RelPath::new(path.clone()).expect("path");
                let version = self
                    .theirs
                    .get(&path)
                    .map(|r| r.version.clone())
                    .unwrap_or_default()
                    .bumped(self.me);
                let mut version = version;
                // Well ahead of anything this device's daemon recorded before.
                for _ in 0..3 {
                    version = version.bumped(self.me);
                }
                let record = Record {
                    path: path.clone(),
                    state: state.clone(),
                    version,
                    mtime_ns: 1_700_000_000_000_000_000,
                    seq: self.seq,
                    retimed: None,
                    by: None,
                };
                self.theirs.insert(path, record.clone());
                records.push(record);
            }
            out.extend(records.clone());
            let upto = self.seq;
            self.core(qsync_core::Message::Records {
                task: self.task,
                records,
                upto,
            });
        }
        out
    }

    /// Send records with the versions given, as they are (forged ones included), each
    /// under this device's next sequence number, in messages of at most 256.
    pub fn put_versions(&mut self, records: Vec<(String, State, VersionVector)>) {
        for chunk in records.chunks(256) {
            let mut out = Vec::new();
            for (path, state, version) in chunk {
                self.seq += 1;
                out.push(Record {
                    path: RelPath::new(path.clone()).expect("path"),
                    state: state.clone(),
                    version: version.clone(),
                    mtime_ns: 1_700_000_000_000_000_000,
                    seq: self.seq,
                    retimed: None,
                    by: None,
                });
            }
            let upto = self.seq;
            self.core(qsync_core::Message::Records {
                task: self.task,
                records: out,
                upto,
            });
        }
    }

    /// Read what the victim sends for `time`.
    pub fn pump(&mut self, time: Duration) -> Vec<Heard> {
        let deadline = Instant::now() + time;
        let mut new = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.frames.recv_timeout(left) {
                Ok(frame) => new.extend(self.take(frame)),
                Err(_) => break,
            }
        }
        new
    }

    /// Read until `wanted` is heard (or `time` passes); returns what was heard.
    pub fn until(&mut self, time: Duration, mut wanted: impl FnMut(&Heard) -> bool) -> Vec<Heard> {
        let deadline = Instant::now() + time;
        let mut new = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            let Ok(frame) = self.frames.recv_timeout(left) else {
                break;
            };
            let heard = self.take(frame);
            let done = heard.iter().any(&mut wanted);
            new.extend(heard);
            if done {
                break;
            }
        }
        new
    }

    /// Wait for the victim to ask for the content of `path`; its base, if it offered one.
    pub fn wait_request(&mut self, path: &str, time: Duration) -> Option<Option<ContentHash>> {
        let path = RelPath::new(path).expect("path");
        let is_it = |h: &Heard| matches!(h, Heard::Core(qsync_core::Message::Request { path: p, .. }) if *p == path);
        let request_of = |h: &Heard| match h {
            Heard::Core(qsync_core::Message::Request { path: p, base, .. }) if *p == path => {
                Some(*base)
            }
            _ => None,
        };
        if let Some(base) = self.heard.iter().find_map(request_of) {
            return Some(base);
        }
        self.until(time, is_it).iter().find_map(request_of)
    }

    /// Send `data` as the whole content `hash` of `path` (in one chunk, then the end).
    pub fn content(&mut self, path: &str, hash: ContentHash, data: &[u8]) {
        let path = RelPath::new(path).expect("path");
        let task = self.task;
        if !data.is_empty() {
            self.send(
                task,
                &Message::Content {
                    path: path.clone(),
                    hash,
                    offset: 0,
                    data: Bytes::copy_from_slice(data),
                    last: false,
                },
            );
        }
        self.send(
            task,
            &Message::Content {
                path,
                hash,
                offset: data.len() as u64,
                data: Bytes::new(),
                last: true,
            },
        );
    }

    /// Whether the victim closed this connection (within `time`).
    pub fn is_closed(&mut self, time: Duration) -> bool {
        let deadline = Instant::now() + time;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.frames.recv_timeout(left) {
                Ok(frame) => {
                    self.take(frame);
                }
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => return true,
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => return false,
            }
        }
        false
    }

    /// Every content byte the victim sent (whole files and patches).
    pub fn received_bytes(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for h in &self.heard {
            if let Heard::Wire(Message::Content { data, .. } | Message::Delta { data, .. }) = h {
                out.extend_from_slice(data);
            }
        }
        out
    }

    fn take(&mut self, mut frame: Vec<u8>) -> Vec<Heard> {
        let Ok((_, message)) = self.session.open(&mut frame) else {
            return Vec::new();
        };
        let heard = match message {
            // (Records of the victim's edits may carry their patches: the records count.)
            Message::Sync { body } | Message::SyncPatched { body, .. } => {
                match qsync_core::Message::from_wire(self.task, &body) {
                    Ok(m) => {
                        if let qsync_core::Message::Records { records, .. } = &m {
                            for r in records {
                                self.theirs.insert(r.path.clone(), r.clone());
                            }
                        }
                        Heard::Core(m)
                    }
                    Err(_) => return Vec::new(),
                }
            }
            other => Heard::Wire(other),
        };
        self.heard.push(heard.clone());
        vec![heard]
    }
}
