//! The back-to-front API: when the engine needs an answer from its person, it writes one
//! file per question, `<FLAG>.<ID>.btf`, holding a one-line context; the front end appends
//! its answer as a second line. The answer counts once its line is complete (ends with a
//! newline), so a partial write is never taken for an answer.
//!
//! Every question is its own file with its own id (the time it was asked, a count, then
//! random digits), so questions wait side by side in the order they were asked, none replaces
//! another, and an answer reaches only the question it was written to: the one the person
//! was shown. Nothing waits in a thread: the engine [`poll`](Asked::poll)s its questions.
//!
//! ```
//! use qsync_engine::btf::{self, Asked};
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let asked = Asked::ask(dir.path(), btf::CHOOSE_LINK_PATH, "Photos from laptop", Duration::from_secs(5))?;
//! let other = Asked::ask(dir.path(), btf::CHOOSE_LINK_PATH, "Music from phone", Duration::from_secs(5))?;
//! // The front end sees both questions, in order, and answers the first.
//! let questions = btf::pending_questions(dir.path())?;
//! assert_eq!(questions[0].context, "Photos from laptop");
//! assert_eq!(questions[1].context, "Music from phone");
//! btf::answer(dir.path(), &questions[0].id, "1234-5678 /home/me/Photos")?;
//! assert_eq!(asked.poll().unwrap()?, "1234-5678 /home/me/Photos");
//! assert!(other.poll().is_none()); // still waiting: the answer was not its own
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Where should the folder of a task another device wants to link go, and what code does
/// that device show? Context: the device, its fingerprint and its folder; answer: the code,
/// a space, and an absolute folder path (`~` allowed); empty: refuse.
pub const CHOOSE_LINK_PATH: &str = "CHOOSELINKPATH";

/// Another device wants to join a task this device already has: context names the
/// device and the task's folder; answer: the code that device shows (empty: refuse).
pub const CONFIRM_JOIN: &str = "CONFIRMJOIN";

/// The folder chosen for a link already holds files, which linking sends to the other
/// device: context says how many; answer `yes` to go on (anything else refuses).
pub const CONFIRM_SEND: &str = "CONFIRMSEND";

/// The folder chosen for a link is, holds or sits inside a well-known place of secrets or
/// of programs that start by themselves (`~/.ssh`, `~/.config/autostart`: see
/// `qsync_base::places`), empty or not: context names the place, what it holds, and the
/// files linking would send; answer `yes` to go on (anything else refuses).
pub const CONFIRM_SENSITIVE: &str = "CONFIRMSENSITIVE";

/// One question waiting for its answer, as the front end sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Question {
    /// Its id: what [`answer`] needs.
    pub id: String,
    /// What kind of question (e.g. [`CHOOSE_LINK_PATH`]).
    pub flag: String,
    /// The one line the person reads.
    pub context: String,
}

/// Questions asked by this process, for their order.
static ASKED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// A question the engine asked and is waiting on.
#[derive(Debug)]
pub struct Asked {
    path: PathBuf,
    id: String,
    flag: String,
    deadline: Instant,
    timeout: Duration,
}

impl Asked {
    /// Ask the person: write `<flag>.<id>.btf` with `context`. The answer is taken with
    /// [`poll`](Self::poll) until `timeout` has passed.
    pub fn ask(dir: &Path, flag: &str, context: &str, timeout: Duration) -> io::Result<Asked> {
        fs::create_dir_all(dir)?;
        let millis = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis());
        // Random digits from a fresh 256-bit id: no two questions share an id.
        let random = qsync_base::TaskId::random();
        let r = random.as_bytes();
        // The time, then this process's count (two questions in one millisecond keep
        // their order), then the random digits.
        let seq = ASKED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let id = format!(
            "{millis:013}-{seq:08}-{:08x}",
            u32::from_be_bytes([r[0], r[1], r[2], r[3]])
        );
        let path = dir.join(format!("{flag}.{id}.btf"));
        let temp = write_new(dir, &format!("{}\n", one_line(context)))?;
        fs::rename(&temp, &path)?;
        Ok(Asked {
            path,
            id,
            flag: flag.to_owned(),
            deadline: Instant::now() + timeout,
            timeout,
        })
    }

    /// Its id, as [`pending_questions`] lists it and [`answer`] takes it.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// The answer once given (the question is then removed), an error once the time is
    /// up or the question file is gone, `None` while it waits.
    pub fn poll(&self) -> Option<io::Result<String>> {
        match read_small(&self.path) {
            Ok(text) => {
                let mut lines = text.split_inclusive('\n');
                lines.next();
                if let Some(answer) = lines.next().filter(|l| l.ends_with('\n')) {
                    let answer = answer.trim_end_matches(['\n', '\r']).to_owned();
                    let _ = fs::remove_file(&self.path);
                    return Some(Ok(answer));
                }
            }
            Err(e) => {
                return Some(Err(io::Error::new(
                    e.kind(),
                    format!("the question {} went away: {e}", self.path.display()),
                )))
            }
        }
        if Instant::now() >= self.deadline {
            let _ = fs::remove_file(&self.path);
            return Some(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer to {} within {:?}", self.flag, self.timeout),
            )));
        }
        None
    }

    /// Take the question back (the request it was for is gone).
    pub fn withdraw(&self) {
        let _ = fs::remove_file(&self.path);
    }
}

/// Remove questions left by an earlier run: nobody waits for their answers.
pub fn clear(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if name.ends_with(".btf") || name.ends_with(".btf.tmp") {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// The questions waiting for an answer, oldest first.
pub fn pending_questions(dir: &Path) -> io::Result<Vec<Question>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(stem) = name.strip_suffix(".btf").filter(|f| !f.starts_with('.')) else {
            continue;
        };
        let Some((flag, id)) = stem.split_once('.') else {
            continue;
        };
        let text = read_small(&entry.path()).unwrap_or_default();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        if lines.len() == 1 && lines[0].ends_with('\n') {
            out.push(Question {
                id: id.to_owned(),
                flag: flag.to_owned(),
                context: lines[0].trim_end().to_owned(),
            });
        }
    }
    out.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(out)
}

/// Answer the question `id` (the front end's side). Fails if no such question waits, or
/// it has been answered already.
pub fn answer(dir: &Path, id: &str, answer: &str) -> io::Result<()> {
    let Some(question) = pending_questions(dir)?.into_iter().find(|q| q.id == id) else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("no question {id} is waiting (see `qsync questions`)"),
        ));
    };
    // The question with its answer goes to a new file, renamed over the question: the
    // engine reads either the question or the whole answer, never half of it, and nothing
    // is written through a link planted at the question's name.
    let path = dir.join(format!("{}.{}.btf", question.flag, question.id));
    let text = format!("{}\n{}\n", question.context, one_line(answer));
    let temp = write_new(dir, &text)?;
    // Exchanged with the question, not renamed over it: a question the engine withdrew
    // meanwhile (timed out, its request gone) is not made again, and the person hears it.
    use rustix::fs::{renameat_with, RenameFlags, CWD};
    let exchanged = match renameat_with(CWD, &temp, CWD, &path, RenameFlags::EXCHANGE) {
        // A file system without the flag: checked just before, as well as it can be.
        Err(rustix::io::Errno::INVAL) if path.exists() => fs::rename(&temp, &path)
            .map_err(|e| rustix::io::Errno::from_io_error(&e).unwrap_or(rustix::io::Errno::IO)),
        other => other,
    };
    let _ = fs::remove_file(&temp);
    match exchanged {
        Ok(()) => Ok(()),
        Err(rustix::io::Errno::NOENT) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("the question {id} is no longer waiting (it timed out or was withdrawn)"),
        )),
        Err(e) => Err(e.into()),
    }
}

/// The most of a question file read (a question is one line; an answer one more).
const MAX_QUESTION_FILE: u64 = 64 * 1024;

/// The text of the question file at `path`: a regular file opened without following a
/// link or blocking (a FIFO or `/dev/zero` planted there is refused), at most
/// [`MAX_QUESTION_FILE`] bytes.
fn read_small(path: &Path) -> io::Result<String> {
    use std::io::Read;
    use std::os::unix::fs::OpenOptionsExt;
    let file = fs::OpenOptions::new()
        .read(true)
        .custom_flags((rustix::fs::OFlags::NOFOLLOW | rustix::fs::OFlags::NONBLOCK).bits() as i32)
        .open(path)?;
    if !file.metadata()?.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidData,
            format!("{} is not a regular file", path.display()),
        ));
    }
    let mut bytes = Vec::new();
    file.take(MAX_QUESTION_FILE).read_to_end(&mut bytes)?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A new file in `dir` holding `text`, under a random temporary name, created
/// `O_CREAT | O_EXCL | O_NOFOLLOW` with mode 0600 (never an existing file, never through
/// a link); returns its path, to rename into place.
fn write_new(dir: &Path, text: &str) -> io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    loop {
        let r = qsync_base::TaskId::random();
        let r = r.as_bytes();
        let name = format!(
            ".q-{:016x}.btf.tmp",
            u64::from_be_bytes([r[0], r[1], r[2], r[3], r[4], r[5], r[6], r[7]])
        );
        let temp = dir.join(name);
        let opened = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32)
            .open(&temp);
        match opened {
            Ok(mut file) => {
                let written = file
                    .write_all(text.as_bytes())
                    .and_then(|()| file.sync_all());
                if let Err(e) = written {
                    let _ = fs::remove_file(&temp);
                    return Err(e);
                }
                return Ok(temp);
            }
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

/// The front end's loop: answer every question with `callback(question)` until
/// `keep_going` returns false.
pub fn wait_event_loop(
    dir: &Path,
    mut callback: impl FnMut(&Question) -> String,
    mut keep_going: impl FnMut() -> bool,
) -> io::Result<()> {
    while keep_going() {
        for question in pending_questions(dir)? {
            let reply = callback(&question);
            answer(dir, &question.id, &reply)?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
