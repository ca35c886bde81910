//! Link requests from other devices, on the answering side: the person's questions (each
//! its own `btf` file, tied to its request), the checks on the folder they choose, and
//! the record of the link once both sides proved the pairing code.
//!
//! The flow for one request: `CHOOSELINKPATH` (code and folder) or, for a task this device
//! already has, `CONFIRMJOIN` (code only); then `CONFIRMSENSITIVE` if the chosen folder is,
//! holds or sits inside a place of secrets or of programs that start by themselves (the
//! list the grapin guard uses, `qsync_base::places`), even empty, or else `CONFIRMSEND` if
//! it already holds files; then the code goes to the connection, which runs the PAKE; only
//! when the asker proved the code too ([`NetEvent::LinkProven`]) is anything recorded.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use qsync_base::{DeviceId, TaskId};
use tokio::sync::oneshot;

use super::folders::Folders;
use super::Engine;
use crate::btf;
use crate::control::{DaemonEvent, Reply};
use crate::net::{Declined, LinkRequest};
use crate::EngineError;
use qsync_base::places::{places_touched, Danger};
use qsync_wire::PairingCode;

/// Where an incoming request stands.
pub(super) enum Stage {
    /// Asked for the code and a folder (a new task) or the code (a task already here).
    Code(btf::Asked),
    /// The folder holds files, or is a sensitive place: asked whether to go on.
    Send {
        asked: btf::Asked,
        code: PairingCode,
        root: PathBuf,
    },
    /// The code went to the connection; waiting for the PAKE's outcome.
    Proving { root: Option<PathBuf> },
}

/// One request from another device to link a task.
pub(super) struct Incoming {
    request: LinkRequest,
    reply: Option<oneshot::Sender<Result<PairingCode, Declined>>>,
    stage: Stage,
}

impl Incoming {
    /// The asking device.
    pub(super) fn device(&self) -> DeviceId {
        self.request.device
    }
}

/// A person's answer to `CHOOSELINKPATH`: the code, then the folder.
fn split_answer(answer: &str) -> Result<(PairingCode, &str), String> {
    let mut digits = 0;
    let mut end = 0;
    for (i, c) in answer.char_indices() {
        if digits == 8 {
            break;
        }
        match c {
            '0'..='9' => digits += 1,
            '-' | ' ' | '\t' => {}
            _ => break,
        }
        end = i + c.len_utf8();
    }
    let code = answer[..end].parse().map_err(|_| {
        "the answer starts with the code the other device shows, like 1234-5678".to_owned()
    })?;
    Ok((code, answer[end..].trim()))
}

/// Files and bytes under `root` (symlinks are not followed), counting at most `limit`.
fn count_files(root: &Path, limit: u64) -> (u64, u64) {
    let (mut files, mut bytes) = (0u64, 0u64);
    let mut stack = vec![root.to_owned()];
    while let Some(dir) = stack.pop() {
        let Ok(entries) = fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(kind) = entry.file_type() else {
                continue;
            };
            if kind.is_dir() {
                stack.push(entry.path());
            } else {
                files += 1;
                bytes += entry.metadata().map_or(0, |m| m.len());
                if files >= limit {
                    return (files, bytes);
                }
            }
        }
    }
    (files, bytes)
}

/// Bytes for people.
pub(super) fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// What to ask the person about `root`, the folder chosen for a link before anything is
/// linked (`asker`: the asking device's name; `files` and `bytes` already there): whether
/// to go on with a place of secrets or of programs (even empty: the other device could
/// put keys or programs there), or with a folder whose files linking sends. `None`: nothing
/// to ask.
pub(super) fn folder_question(
    root: &Path,
    home: Option<&Path>,
    (files, bytes): (u64, u64),
    asker: &str,
) -> Option<(&'static str, String)> {
    let sending = match files {
        0 => String::new(),
        n => format!(
            " It already holds {n} files ({}), which linking sends to {asker}.",
            human_bytes(bytes)
        ),
    };
    let touched = home
        .map(|home| places_touched(root, home))
        .unwrap_or_default();
    if let Some(place) = touched.first() {
        let risk = match place.danger {
            Danger::StartsPrograms => format!("{asker} could make programs run here"),
            Danger::Secrets => format!("{asker} gets what is there, and can put files there"),
        };
        let context = format!(
            "{} is or touches ~/{} ({}): {risk}.{sending} Link it anyway? (yes/no)",
            root.display(),
            place.relative,
            place.holds,
        );
        return Some((btf::CONFIRM_SENSITIVE, context));
    }
    (files > 0).then(|| {
        let context = format!(
            "{} already holds {files} files ({}): linking sends them all to {asker}. Send them and link? (yes/no)",
            root.display(),
            human_bytes(bytes)
        );
        (btf::CONFIRM_SEND, context)
    })
}

/// The link requests from other devices, waiting on the person or on the pairing.
pub(super) struct Links {
    incoming: Vec<Incoming>,
    btf_dir: PathBuf,
    answer_timeout: Duration,
}

impl Links {
    /// Questions go to `btf_dir`, and wait `answer_timeout` at most.
    pub(super) fn new(btf_dir: PathBuf, answer_timeout: Duration) -> Self {
        Self {
            incoming: Vec::new(),
            btf_dir,
            answer_timeout,
        }
    }

    /// A device asks to link a task: the person is asked (the question returned, for
    /// `qsync events`). `here`: the task's folder, if this device has the task already.
    pub(super) fn requested(
        &mut self,
        request: LinkRequest,
        reply: oneshot::Sender<Result<PairingCode, Declined>>,
        here: Option<&Path>,
    ) -> Option<DaemonEvent> {
        let who = format!(
            "{} ({})",
            crate::control::printable(&request.name),
            qsync_wire::fingerprint(&request.device)
        );
        let (flag, context) = match here {
            // Already linked too: asked again the same way (the last step of an earlier
            // link may have been lost), and recording it again changes nothing.
            Some(root) => (
                btf::CONFIRM_JOIN,
                format!(
                    "{who} wants to join your synced folder {}: its files and yours will be merged both ways. Type the code {} shows to accept (empty: refuse)",
                    root.display(),
                    crate::control::printable(&request.name),
                ),
            ),
            None => (
                btf::CHOOSE_LINK_PATH,
                format!(
                    "{who} wants to link its folder \"{}\" ({} files, {}). Type the code {} shows, then where the folder goes here, e.g. 1234-5678 ~/{} (empty: refuse)",
                    crate::control::printable(&request.folder_name),
                    request.files,
                    human_bytes(request.bytes),
                    crate::control::printable(&request.name),
                    crate::control::printable(&request.folder_name),
                ),
            ),
        };
        let asked = match btf::Asked::ask(&self.btf_dir, flag, &context, self.answer_timeout) {
            Ok(asked) => asked,
            Err(e) => {
                tracing::warn!(error = %e, "could not ask the person about a link request");
                let why = format!("could not ask the person: {e}");
                let _ = reply.send(Err(Declined::Unusable(why)));
                return None;
            }
        };
        let id = asked.id().to_owned();
        self.incoming.push(Incoming {
            request,
            reply: Some(reply),
            stage: Stage::Code(asked),
        });
        Some(DaemonEvent::Question {
            id,
            flag: flag.to_owned(),
            context,
        })
    }

    /// The questions waiting for the person, oldest first (`Command::Questions`).
    pub(super) fn questions(&self) -> Result<Reply, EngineError> {
        let questions = btf::pending_questions(&self.btf_dir)
            .map_err(|e| EngineError::io("read the questions in", &self.btf_dir, e))?;
        let questions = questions
            .into_iter()
            .map(|q| crate::control::QuestionInfo {
                id: q.id,
                flag: q.flag,
                context: q.context,
            })
            .collect();
        Ok(Reply::Questions { questions })
    }

    /// Answer question `id` (`Command::Answer`): taken at the next look at the answers.
    pub(super) fn answer(&self, id: String, text: &str) -> Result<Reply, EngineError> {
        btf::answer(&self.btf_dir, &id, text).map_err(|e| EngineError::State(e.to_string()))?;
        Ok(Reply::Answered { id })
    }

    /// Whether any request is under way.
    pub(super) fn is_empty(&self) -> bool {
        self.incoming.is_empty()
    }

    /// Whether any request waits on the person (the engine then looks often).
    pub(super) fn asking(&self) -> bool {
        self.incoming
            .iter()
            .any(|i| !matches!(i.stage, Stage::Proving { .. }))
    }

    /// Look at the answers given: every request moves on, or ends. `known`: whether this
    /// device has a task; `folders`: where a chosen folder may not go. Returns the new
    /// questions asked.
    pub(super) fn poll(
        &mut self,
        known: impl Fn(&TaskId) -> bool,
        folders: &Folders<'_>,
    ) -> Vec<DaemonEvent> {
        let mut asked = Vec::new();
        let mut index = 0;
        while index < self.incoming.len() {
            let known = known(&self.incoming[index].request.task);
            match self.step(index, known, folders) {
                Err(declined) => self.drop_at(index, declined),
                Ok(question) => {
                    asked.extend(question);
                    index += 1;
                }
            }
        }
        asked
    }

    /// End the requests of `device` without a link (it was forgotten).
    pub(super) fn drop_device(&mut self, device: DeviceId, reason: &str) {
        let mut index = 0;
        while index < self.incoming.len() {
            if self.incoming[index].device() == device {
                self.drop_at(index, Declined::Ended(reason.to_owned()));
            } else {
                index += 1;
            }
        }
    }

    /// End request `index` without a link: its question goes, its connection is told.
    fn drop_at(&mut self, index: usize, declined: Declined) {
        let mut done = self.incoming.remove(index);
        match &done.stage {
            Stage::Code(asked) | Stage::Send { asked, .. } => asked.withdraw(),
            Stage::Proving { .. } => {}
        }
        let reason = declined.why().to_owned();
        if let Some(reply) = done.reply.take() {
            let _ = reply.send(Err(declined));
        }
        tracing::info!(device = %done.request.device, task = %done.request.task, %reason, "link request ended");
    }

    /// One request's next step: a new question, or nothing yet; `Err(reason)` when it
    /// ends without a link.
    fn step(
        &mut self,
        index: usize,
        known_task: bool,
        folders: &Folders<'_>,
    ) -> Result<Option<DaemonEvent>, Declined> {
        let gone = self.incoming[index]
            .reply
            .as_ref()
            .is_some_and(|r| r.is_closed());
        if gone {
            return Err(Declined::Ended("the asking device gave up".into()));
        }
        let answer = match &self.incoming[index].stage {
            Stage::Code(asked) | Stage::Send { asked, .. } => match asked.poll() {
                None => return Ok(None),
                Some(Ok(answer)) => answer.trim().to_owned(),
                Some(Err(e)) if e.kind() == std::io::ErrorKind::TimedOut => {
                    return Err(Declined::NoAnswer(e.to_string()))
                }
                Some(Err(e)) => return Err(Declined::Unusable(e.to_string())),
            },
            Stage::Proving { .. } => return Ok(None),
        };
        if answer.is_empty() {
            return Err(Declined::Refused("the person refused".into()));
        }
        let (code, root) = match &self.incoming[index].stage {
            Stage::Code(_) if known_task => (
                answer.parse::<PairingCode>().map_err(|e| e.to_string())?,
                None,
            ),
            Stage::Code(_) => {
                let (code, folder) = split_answer(&answer)?;
                let root = folders.link_folder(folder)?;
                if let Some(question) = self.confirm_folder(index, code, &root)? {
                    return Ok(Some(question));
                }
                (code, Some(root))
            }
            Stage::Send { code, root, .. } => {
                if !answer.eq_ignore_ascii_case("yes") {
                    let why = "the person chose not to link that folder";
                    return Err(Declined::Refused(why.into()));
                }
                (*code, Some(root.clone()))
            }
            Stage::Proving { .. } => return Ok(None),
        };
        let incoming = &mut self.incoming[index];
        incoming.stage = Stage::Proving { root };
        if let Some(reply) = incoming.reply.take() {
            if reply.send(Ok(code)).is_err() {
                return Err(Declined::Ended("the asking device gave up".into()));
            }
        }
        Ok(None)
    }

    /// A folder that holds files, or is a sensitive place, is confirmed first: the
    /// question asked, if any.
    fn confirm_folder(
        &mut self,
        index: usize,
        code: PairingCode,
        root: &Path,
    ) -> Result<Option<DaemonEvent>, String> {
        let home = std::env::var_os("HOME").map(PathBuf::from);
        let asker = crate::control::printable(&self.incoming[index].request.name);
        let found = count_files(root, u64::MAX);
        let Some((flag, context)) = folder_question(root, home.as_deref(), found, &asker) else {
            return Ok(None);
        };
        let asked = btf::Asked::ask(&self.btf_dir, flag, &context, self.answer_timeout)
            .map_err(|e| format!("could not ask the person: {e}"))?;
        let id = asked.id().to_owned();
        self.incoming[index].stage = Stage::Send {
            asked,
            code,
            root: root.to_owned(),
        };
        Ok(Some(DaemonEvent::Question {
            id,
            flag: flag.to_owned(),
            context,
        }))
    }

    /// Both sides proved the code for request `id`: it leaves, with the folder chosen for
    /// it (none: a task this device has).
    pub(super) fn proven(&mut self, id: u64) -> Result<(LinkRequest, Option<PathBuf>), String> {
        let at = self
            .incoming
            .iter()
            .position(|i| i.request.id == id)
            .ok_or("no such link request")?;
        let incoming = self.incoming.remove(at);
        let Stage::Proving { root } = incoming.stage else {
            return Err("the link request was not ready".into());
        };
        Ok((incoming.request, root))
    }

    /// Request `id` ended on the connection's side (wrong code, refused, connection lost).
    pub(super) fn failed(&mut self, id: u64, reason: &str) {
        if let Some(at) = self.incoming.iter().position(|i| i.request.id == id) {
            let incoming = self.incoming.remove(at);
            if let Stage::Code(asked) | Stage::Send { asked, .. } = &incoming.stage {
                asked.withdraw();
            }
            tracing::info!(device = %incoming.request.device, %reason, "link request failed");
        }
    }
}

impl Engine {
    /// A device asks to link a task: ask the person.
    pub(super) fn link_requested(
        &mut self,
        request: LinkRequest,
        reply: oneshot::Sender<Result<PairingCode, Declined>>,
    ) {
        let here = self.sync.folder(&request.task).map(|f| f.root.clone());
        if let Some(question) = self.links.requested(request, reply, here.as_deref()) {
            self.tell(question);
        }
    }

    /// Look at the answers given to link questions.
    pub(super) fn poll_links(&mut self) {
        let folders = Folders::new(&self.config, &self.sync);
        let tasks = &self.tasks;
        let asked = self.links.poll(|task| tasks.contains(task), &folders);
        for question in asked {
            self.tell(question);
        }
    }

    /// Both sides proved the code: record the link (and the task, if new).
    pub(super) fn link_proven(&mut self, id: u64, done: oneshot::Sender<Result<(), String>>) {
        let result = self.links.proven(id).and_then(|(request, root)| {
            let recorded = self.change(|c| c.record_incoming(&request, root));
            match &recorded {
                Ok(()) => tracing::info!(device = %request.device, task = %request.task, "linked"),
                Err(e) => {
                    tracing::warn!(device = %request.device, task = %request.task, error = %e, "could not record a link")
                }
            }
            recorded.map_err(|e| e.to_string())
        });
        let _ = done.send(result);
    }
}

#[cfg(test)]
mod tests;
