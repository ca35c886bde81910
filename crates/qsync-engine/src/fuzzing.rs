//! Entry point of the `receive` fuzz target and of its replay in `cargo test` (not stable
//! API): a linked peer's records, content, patches and requests, handled by the daemon's
//! own sync driver (the real [`qsync_core::Core`], content exchange, serving threads and
//! placements, with a `MemLedger`) on a real temporary folder that sits beside a folder
//! "outside" holding a secret. The harness plays the peer: it answers the driver's
//! requests for content with the bytes its records announced.
//!
//! Whatever the bytes say, [`receive`] asserts (panics otherwise, which is what a fuzzer
//! reports):
//! - nothing outside the task folder changed (the outside folder's entries, contents,
//!   modes and link targets, and what sits beside the two folders);
//! - no content served to the peer holds the secret;
//! - a patch was only ever applied to a regular file inside the folder.
//!
//! A peer's link out of the folder is refused (`driver::guard`); a placement of one handed
//! to the driver directly is then made by the harness, as the person could.
//!
//! The bytes are read as a small program: each step picks an action (a record of a
//! file, folder, link or deletion at a path; a request for content; a patch; a placement
//! handed to the driver directly, which the core would not order), paths from
//! a few names that include the links' names, link targets from a list of ways out.

use std::collections::{BTreeMap, HashMap};
use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bytes::Bytes;
use qsync_base::{ContentHash, DeviceId, RelPath, TaskId};
use qsync_core::{Input, Ledger, Message, Record, State};
use qsync_watch::Index;

use crate::driver::place;
use crate::driver::transfer::{self, IncomingPatch};
use crate::sync::loopback::Loopback;
use crate::sync::{Report, SyncDriver, TaskFolder};

/// The peer the steps come from.
pub const PEER: DeviceId = DeviceId::from_bytes([2; 32]);
/// Its task.
pub const TASK: TaskId = TaskId::from_bytes([7; 32]);
/// What the outside folder holds, that nothing may read.
pub const SECRET: &[u8] = b"the outside secret, never to be read";

const NAMES: [&str; 6] = ["a", "b", "out", "link", "zero", ".qsyncignore"];

/// Rounds of messages between the driver and the peer after which the peer stops
/// answering (see [`Run::settle`]).
const MAX_ROUNDS: usize = 64;

/// How long a serve job may take before the harness calls it stuck.
const SERVE_DEADLINE: Duration = Duration::from_secs(30);

/// What a run did (for its tests to check that it did something).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Summary {
    /// Placements that were done.
    pub placed: usize,
    /// Patches that applied.
    pub patched: usize,
    /// Messages served to the peer.
    pub served: usize,
}

/// Run the steps of `data`; see the [module documentation](self).
pub fn receive(data: &[u8]) -> Summary {
    let Ok(dir) = tempfile::tempdir() else {
        return Summary::default();
    };
    let Some(mut run) = Run::start(dir.path()) else {
        return Summary::default();
    };
    let before = snapshot(dir.path());
    let mut bytes = data.iter().copied();
    let mut next = move || bytes.next();
    for _ in 0..64 {
        let Some(op) = next() else { break };
        let Some(path) = path_from(&mut next) else {
            continue;
        };
        match op % 7 {
            0 => {
                let len = usize::from(next().unwrap_or(0) % 16);
                let content: Vec<u8> = (0..len).map(|_| next().unwrap_or(0)).collect();
                let state = State::File {
                    hash: ContentHash::of(&content),
                    size: content.len() as u64,
                    mode: 0o644,
                };
                run.contents.insert(ContentHash::of(&content), content);
                run.record(path, state);
            }
            1 => {
                let target = run.target(next());
                run.record(path, State::Symlink { target });
            }
            2 => run.record(path, State::Folder { mode: 0o755 }),
            3 => run.record(path, State::Deleted),
            4 => run.ask_for_the_secret(&path),
            6 => run.place_directly(path, &mut next),
            _ => {
                // A patch whose base would be the secret, or what is at the path here.
                let patch = match next().unwrap_or(0) % 2 {
                    0 => patch_on_the_secret(),
                    _ => (0..usize::from(next().unwrap_or(0)))
                        .map(|_| next().unwrap_or(0))
                        .collect(),
                };
                run.patch(&path, &patch);
            }
        }
    }
    // What the serving threads send comes last.
    run.settle();
    let after = snapshot(dir.path());
    assert_no_version_from_outside(&before, &after);
    let after: BTreeMap<PathBuf, String> = after
        .into_iter()
        .filter(|(p, _)| !p.starts_with("state/versions"))
        .collect();
    assert_eq!(after, before, "something outside the task folder changed");
    for message in &run.served {
        if let qsync_wire::Message::Content { data, .. } | qsync_wire::Message::Delta { data, .. } =
            message
        {
            assert!(
                !data.windows(SECRET.len()).any(|w| w == SECRET),
                "the secret was served"
            );
        }
    }
    Summary {
        served: run.served.len(),
        ..run.summary
    }
}

/// A patch from the secret to other bytes (its base: the secret).
fn patch_on_the_secret() -> Vec<u8> {
    match qsync_delta::encode(SECRET, b"copied", &qsync_delta::Options::default()) {
        Ok(qsync_delta::Delta::Patch(p)) => p.as_bytes().to_vec(),
        _ => Vec::new(),
    }
}

/// A path of one to three names from [`NAMES`].
fn path_from(next: &mut impl FnMut() -> Option<u8>) -> Option<RelPath> {
    let b = next().unwrap_or(0);
    let depth = 1 + usize::from(b % 3);
    let parts: Vec<&str> = (0..depth)
        .map(|i| NAMES[usize::from(if i == 0 { b / 3 } else { next().unwrap_or(0) }) % NAMES.len()])
        .collect();
    RelPath::new(parts.join("/")).ok()
}

/// Versions are the daemon's own, kept from the task folder only: none holds what is
/// outside it (`before` and `after`: [`snapshot`]s).
fn assert_no_version_from_outside(
    before: &BTreeMap<PathBuf, String>,
    after: &BTreeMap<PathBuf, String>,
) {
    let outside: Vec<&String> = before
        .iter()
        .filter(|(p, _)| p.starts_with("outside"))
        .map(|(_, w)| w)
        .collect();
    for (path, what) in after.range(PathBuf::from("state/versions")..) {
        if !path.starts_with("state/versions") {
            break;
        }
        let content = what.rsplit(' ').next().unwrap_or_default();
        let leaked = outside
            .iter()
            .any(|o| what.starts_with("file") && o.ends_with(content));
        assert!(
            !leaked,
            "a version holds what is outside the task folder: {path:?}"
        );
    }
}

/// What is under `dir` (never following a link), except the task folder and staging:
/// entry, kind, content, mode, link target (the versions' too: see `receive`).
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(at) = stack.pop() {
        let Ok(entries) = fs::read_dir(&at) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(dir).unwrap_or(&path).to_owned();
            if rel == Path::new("root") || rel == Path::new("state/staging") {
                out.insert(rel, "kept".into());
                continue;
            }
            let Ok(meta) = fs::symlink_metadata(&path) else {
                continue;
            };
            use std::os::unix::fs::PermissionsExt;
            let mode = meta.permissions().mode();
            let what = if meta.file_type().is_symlink() {
                format!("link {:?}", fs::read_link(&path).ok())
            } else if meta.is_dir() {
                stack.push(path.clone());
                format!("dir {mode:o}")
            } else {
                let content = fs::read(&path).unwrap_or_default();
                format!("file {mode:o} {}", ContentHash::of(&content))
            };
            out.insert(rel, what);
        }
    }
    out
}

struct Run {
    driver: SyncDriver,
    around: Loopback,
    /// The task folder.
    root: PathBuf,
    /// Where links may point: out of the folder in every way, and inside it.
    targets: Vec<String>,
    /// The contents the peer's records announced, which it serves.
    contents: HashMap<ContentHash, Vec<u8>>,
    seq: u64,
    served: Vec<qsync_wire::Message>,
    summary: Summary,
}

impl Run {
    /// The driver of a task folder `dir/root` beside `dir/outside` (which holds the secret),
    /// its state in `dir/state`, linked with [`PEER`], which has greeted it.
    fn start(dir: &Path) -> Option<Self> {
        let root = dir.join("root");
        let outside = dir.join("outside");
        fs::create_dir(&root)
            .and_then(|()| fs::create_dir(&outside))
            .and_then(|()| fs::write(outside.join("secret"), SECRET))
            .and_then(|()| fs::create_dir(outside.join("sub")))
            .and_then(|()| fs::write(outside.join("sub/file"), b"outside"))
            .ok()?;
        let me = DeviceId::from_bytes([1; 32]);
        let mut driver = SyncDriver::start(me, [1; 32], &dir.join("state")).ok()?;
        driver.add_folder(
            TASK,
            TaskFolder::new(root.clone(), Index::default(), [], false),
        );
        let targets = vec![
            outside.display().to_string(),
            outside.join("secret").display().to_string(),
            "../outside".to_owned(),
            "../outside/secret".to_owned(),
            "/dev/zero".to_owned(),
            "../..".to_owned(),
            "a".to_owned(),
        ];
        let mut run = Run {
            driver,
            around: Loopback::default(),
            root,
            targets,
            contents: HashMap::new(),
            seq: 0,
            served: Vec::new(),
            summary: Summary::default(),
        };
        run.around.connect(PEER);
        run.feed(Input::Link {
            task: TASK,
            peer: PEER,
        });
        run.feed(Input::Connected { peer: PEER });
        // The peer's greeting: from then on its records are taken.
        run.feed(Input::Received {
            from: PEER,
            message: Message::Hello {
                task: TASK,
                after: 0,
                reply: false,
            },
        });
        Some(run)
    }

    /// The link target a byte picks.
    fn target(&self, byte: Option<u8>) -> String {
        self.targets[usize::from(byte.unwrap_or(0)) % self.targets.len()].clone()
    }

    /// The peer asks for the secret at `path`; and the driver's serving is asked
    /// directly, as if the core had ordered it.
    fn ask_for_the_secret(&mut self, path: &RelPath) {
        self.feed(Input::Received {
            from: PEER,
            message: Message::Request {
                task: TASK,
                path: path.clone(),
                hash: ContentHash::of(SECRET),
                size: SECRET.len() as u64,
                base: None,
                offset: 0,
                checks: Vec::new(),
            },
        });
        let served = &mut self.served;
        transfer::serve(
            &self.root,
            path,
            ContentHash::of(SECRET),
            None,
            (0, &[]),
            |m| {
                served.push(m);
                true
            },
        );
    }

    /// A placement the core would not order (it knows nothing of links made here),
    /// handed to the driver: the driver alone must stay inside the folder.
    fn place_directly(&mut self, path: RelPath, next: &mut impl FnMut() -> Option<u8>) {
        let target = match next().unwrap_or(0) % 4 {
            0 => {
                let content = b"raw".to_vec();
                let hash = ContentHash::of(&content);
                if fs::write(self.driver.staging().path_of(&hash), &content).is_err() {
                    return;
                }
                State::File {
                    hash,
                    size: 3,
                    mode: 0o600,
                }
            }
            1 => State::Symlink {
                target: self.target(next()),
            },
            2 => State::Folder { mode: 0o700 },
            _ => State::Deleted,
        };
        let Some(index) = self.driver.folder(&TASK).map(|f| &f.index) else {
            return;
        };
        let root = &self.root;
        let expect = place::state_at(root, &path, index).unwrap_or(State::Deleted);
        let mut parents: Vec<RelPath> = std::iter::successors(path.parent(), RelPath::parent)
            .filter(|p| !matches!(place::state_at(root, p, index), Ok(s) if s.exists()))
            .collect();
        parents.reverse();
        let placement = qsync_core::Placement {
            task: TASK,
            path,
            expect,
            target,
            mtime_ns: 0,
            aside: None,
            parents,
            from: PEER,
            makers: (Some(PEER), None),
        };
        match (self.driver.place_now(&placement), &placement.target) {
            (Ok(qsync_core::PlaceOutcome::Done), _) => self.summary.placed += 1,
            // A link out of the folder is refused from a peer (`driver::guard`), but the
            // person may make one: made here the way the driver would, so what follows
            // still has to stay clear of it.
            (Ok(qsync_core::PlaceOutcome::Failed), State::Symlink { target }) => {
                let made = crate::driver::root::TaskRoot::open(root)
                    .and_then(|r| r.parent(&placement.path))
                    .and_then(|at| match at {
                        Some((folder, name)) => folder.symlink(target, name),
                        None => Ok(()),
                    });
                if made.is_ok() {
                    self.summary.placed += 1;
                }
            }
            _ => {}
        }
    }

    /// `patch` from the peer for the file at `path`: applied only to a regular file in
    /// the folder holding its base.
    fn patch(&mut self, path: &RelPath, patch: &[u8]) {
        let header = qsync_delta::Header::read(&mut &patch[..]);
        let base = header
            .as_ref()
            .map_or(ContentHash::of(SECRET), |h| h.source_hash);
        let hash = header
            .as_ref()
            .map_or(ContentHash::of(b"copied"), |h| h.target_hash);
        let size = header.as_ref().map_or(6, |h| h.target_len);
        if patch.len() as u64 > crate::exchange::MAX_PATCH {
            return;
        }
        let mut incoming = IncomingPatch::start(base, hash, size);
        incoming.accept(patch);
        let applied = incoming.finish(&self.root, path, self.driver.staging());
        let Some(index) = self.driver.folder(&TASK).map(|f| &f.index) else {
            return;
        };
        if matches!(applied, Ok(true)) {
            let here = place::state_at(&self.root, path, index);
            assert!(
                matches!(here, Ok(State::File { hash, .. }) if hash == base),
                "a patch applied to something that is not the base file at {path}"
            );
            self.driver.staging().remove(&hash);
            self.summary.patched += 1;
        }
        // The same patch sent with a record of the content it claims to give (protocol 8):
        // taken only where it gives that content from the file at the path here; else the
        // content is asked for as usual (and this peer has not got it).
        let state = State::File {
            hash,
            size,
            mode: 0o644,
        };
        let record = self.next_record(path.clone(), state);
        let message = Message::Records {
            task: TASK,
            records: vec![record],
            upto: self.seq,
        };
        let Ok(body) = message.to_wire() else {
            return;
        };
        let patched = qsync_wire::Message::SyncPatched {
            body: Bytes::from(body),
            patches: vec![(0, Bytes::copy_from_slice(patch))],
        };
        self.driver.received(&mut self.around, PEER, TASK, patched);
        self.settle();
    }

    /// The peer's next record, making `path` `state`, newer than what is known here.
    fn next_record(&mut self, path: RelPath, state: State) -> Record {
        let known = self.around.ledger().record(&TASK, &path).ok().flatten();
        let version = known.map(|r| r.version).unwrap_or_default().bumped(PEER);
        self.seq += 1;
        Record {
            path,
            state,
            version,
            mtime_ns: 0,
            seq: self.seq,
            retimed: None,
            by: None,
        }
    }

    /// A record from the peer making `path` `state`, newer than what is known here.
    fn record(&mut self, path: RelPath, state: State) {
        let record = self.next_record(path, state);
        self.feed(Input::Received {
            from: PEER,
            message: Message::Records {
                task: TASK,
                records: vec![record],
                upto: self.seq,
            },
        });
    }

    /// Hand the driver `input`, then play the peer until nothing moves.
    fn feed(&mut self, input: Input) {
        self.driver.feed(&mut self.around, input);
        self.settle();
    }

    /// Carry out what the driver wants (placements made durable, its reports taken) and
    /// answer what it sends the peer; content served by its threads is collected until
    /// none is being served (a serve job that does not end within [`SERVE_DEADLINE`] is a
    /// failure). A driver and a peer answering each other for ever are stopped after
    /// [`MAX_ROUNDS`] rounds: the peer then answers nothing more.
    fn settle(&mut self) {
        let start = Instant::now();
        let mut rounds = 0;
        loop {
            self.driver.flush();
            self.driver.run(&mut self.around, None);
            while let Some(report) = self.driver.poll_report() {
                if let Report::Applied(_) = report {
                    self.summary.placed += 1;
                }
            }
            // Read before what was sent: a job that ends in between has sent it all.
            let serving = !self.driver.serving_idle();
            let sent = self.around.take_sent(&PEER);
            if sent.is_empty() && !serving && !self.driver.wants_run() {
                return;
            }
            rounds += 1;
            for (task, message) in sent {
                self.answer(task, message, rounds <= MAX_ROUNDS);
            }
            if serving {
                assert!(
                    start.elapsed() < SERVE_DEADLINE,
                    "a serve job did not end within {SERVE_DEADLINE:?}"
                );
                std::thread::sleep(Duration::from_millis(1));
            }
        }
    }

    /// The peer's answer to what the driver sent it: content it asks for is served (when
    /// the peer announced it), content it serves is kept to be checked.
    fn answer(&mut self, task: TaskId, message: qsync_wire::Message, answering: bool) {
        match message {
            qsync_wire::Message::Sync { body } if answering => {
                let Ok(Message::Request {
                    path, hash, offset, ..
                }) = Message::from_wire(task, &body)
                else {
                    return;
                };
                let offset = usize::try_from(offset).unwrap_or(usize::MAX);
                // As a serving thread sends it (protocol 7): the bytes and the end in one
                // message; for contents of an even length, the shape the receiver still
                // takes, the bytes then an empty last chunk.
                let answers = match self.contents.get(&hash) {
                    Some(content) if offset <= content.len() && content.len() % 2 == 1 => {
                        vec![qsync_wire::Message::Content {
                            path: path.clone(),
                            hash,
                            offset: offset as u64,
                            data: Bytes::copy_from_slice(&content[offset..]),
                            last: true,
                        }]
                    }
                    Some(content) if offset <= content.len() => {
                        let chunk =
                            |offset: usize, data: &[u8], last| qsync_wire::Message::Content {
                                path: path.clone(),
                                hash,
                                offset: offset as u64,
                                data: Bytes::copy_from_slice(data),
                                last,
                            };
                        vec![
                            chunk(offset, &content[offset..], false),
                            chunk(content.len(), &[], true),
                        ]
                    }
                    _ => vec![qsync_wire::Message::Unavailable { path, hash }],
                };
                for answer in answers {
                    self.driver.received(&mut self.around, PEER, task, answer);
                }
            }
            served @ (qsync_wire::Message::Content { .. } | qsync_wire::Message::Delta { .. }) => {
                self.served.push(served);
            }
            _ => {}
        }
    }
}
