//! The back-to-front API: when the engine needs an answer from its person, it writes
//! `<FLAG>.btf` holding a one-line context; the front end appends its answer as a second
//! line. The answer counts once its line is complete (ends with a newline), so a partial
//! write is never taken for an answer.
//!
//! ```
//! use qsync_engine::btf;
//! use std::time::Duration;
//!
//! let dir = tempfile::tempdir()?;
//! let asker = {
//!     let dir = dir.path().to_owned();
//!     std::thread::spawn(move || btf::ask_input(&dir, btf::CHOOSE_LINK_PATH, "Photos from laptop", Duration::from_secs(5)))
//! };
//! // The front end sees the question and answers it.
//! let (flag, context) = loop {
//!     if let Some(q) = btf::pending_questions(dir.path())?.pop() { break q; }
//!     std::thread::sleep(Duration::from_millis(10));
//! };
//! assert_eq!((flag.as_str(), context.as_str()), ("CHOOSELINKPATH", "Photos from laptop"));
//! btf::answer(dir.path(), &flag, "/home/me/Photos")?;
//! assert_eq!(asker.join().unwrap()?, "/home/me/Photos");
//! # Ok::<(), std::io::Error>(())
//! ```

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// Where should the folder of a task another device wants to link go? Context: a
/// description of the task and device; answer: a folder path (empty: refuse).
pub const CHOOSE_LINK_PATH: &str = "CHOOSELINKPATH";

fn file(dir: &Path, flag: &str) -> PathBuf {
    dir.join(format!("{flag}.btf"))
}

fn one_line(text: &str) -> String {
    text.replace(['\n', '\r'], " ")
}

/// Ask the person: write `<flag>.btf` with `context`, wait up to `timeout` for the answer
/// line, remove the file and return the answer.
pub fn ask_input(dir: &Path, flag: &str, context: &str, timeout: Duration) -> io::Result<String> {
    fs::create_dir_all(dir)?;
    let path = file(dir, flag);
    let temp = dir.join(format!(".{flag}.btf.tmp"));
    fs::write(&temp, format!("{}\n", one_line(context)))?;
    fs::rename(&temp, &path)?;
    let deadline = Instant::now() + timeout;
    loop {
        let text = fs::read_to_string(&path).unwrap_or_default();
        let mut lines = text.split_inclusive('\n');
        lines.next();
        if let Some(answer) = lines.next().filter(|l| l.ends_with('\n')) {
            let answer = answer.trim_end_matches(['\n', '\r']).to_owned();
            let _ = fs::remove_file(&path);
            return Ok(answer);
        }
        if Instant::now() >= deadline {
            let _ = fs::remove_file(&path);
            return Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("no answer to {flag} within {timeout:?}"),
            ));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The questions waiting for an answer: `(flag, context)` pairs.
pub fn pending_questions(dir: &Path) -> io::Result<Vec<(String, String)>> {
    let mut out = Vec::new();
    let entries = match fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(flag) = name.strip_suffix(".btf").filter(|f| !f.starts_with('.')) else {
            continue;
        };
        let text = fs::read_to_string(entry.path()).unwrap_or_default();
        let lines: Vec<&str> = text.split_inclusive('\n').collect();
        if lines.len() == 1 && lines[0].ends_with('\n') {
            out.push((flag.to_owned(), lines[0].trim_end().to_owned()));
        }
    }
    out.sort();
    Ok(out)
}

/// Answer the question `flag` (the front end's side).
pub fn answer(dir: &Path, flag: &str, answer: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new().append(true).open(file(dir, flag))?;
    f.write_all(format!("{}\n", one_line(answer)).as_bytes())
}

/// The front end's loop: answer every question with `callback(flag, context)` until
/// `keep_going` returns false.
pub fn wait_event_loop(
    dir: &Path,
    mut callback: impl FnMut(&str, &str) -> String,
    mut keep_going: impl FnMut() -> bool,
) -> io::Result<()> {
    while keep_going() {
        for (flag, context) in pending_questions(dir)? {
            let reply = callback(&flag, &context);
            answer(dir, &flag, &reply)?;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Ok(())
}
