//! The terminal menu (the seed's front end): talks to the daemon running for this state
//! folder, or starts one as a process of its own (saying so, and asking at quit whether
//! it keeps running: a daemon the menu did not start is never stopped by it), then offers
//! the seed's actions, the installed apps, and what a person does with a task (why it is
//! not in sync, its conflicts, pause or resume, remove). Bad input re-asks; nothing here
//! panics.

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use qsync_engine::control::{self, Command, Reply};

/// The person at the terminal: their lines, read by a thread of their own so that the
/// daemon's questions (a link request from another device) appear while the menu waits,
/// not only after the next Enter.
struct Person {
    lines: Receiver<String>,
    state_dir: PathBuf,
    /// The questions already put to the person.
    asked: HashSet<String>,
}

impl Person {
    fn start(state_dir: &Path) -> Result<Person> {
        let (send, lines) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("qsync-menu-input".into())
            .spawn(move || {
                for line in io::stdin().lock().lines() {
                    let Ok(line) = line else { break };
                    if send.send(line).is_err() {
                        break;
                    }
                }
            })
            .context("could not start reading the terminal")?;
        Ok(Person {
            lines,
            state_dir: state_dir.to_owned(),
            asked: HashSet::new(),
        })
    }

    /// The next line, trimmed; `None` once the input ended. A question of the daemon that
    /// comes meanwhile is put first, then `question` again.
    fn ask(&mut self, question: &str) -> Result<Option<String>> {
        print!("{question}");
        io::stdout().flush()?;
        loop {
            match self.lines.recv_timeout(Duration::from_millis(300)) {
                Ok(line) => return Ok(Some(line.trim().to_owned())),
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
                Err(RecvTimeoutError::Timeout) => {
                    let before = self.asked.len();
                    if !self.daemon_questions()? {
                        return Ok(None);
                    }
                    if self.asked.len() != before {
                        print!("{question}");
                        io::stdout().flush()?;
                    }
                }
            }
        }
    }

    /// Put the daemon's new questions to the person, one by one, and hand over their
    /// answers; false if the input ended.
    fn daemon_questions(&mut self) -> Result<bool> {
        let Ok(Reply::Questions { questions }) =
            control::request(&self.state_dir, &Command::Questions)
        else {
            return Ok(true);
        };
        for question in questions {
            if !self.asked.insert(question.id.clone()) {
                continue;
            }
            // Lines typed before the question showed are not its answer.
            while self.lines.try_recv().is_ok() {}
            println!(
                "\nQuestion ({}): {}",
                control::printable(&question.flag),
                control::printable(&question.context)
            );
            print!("> ");
            io::stdout().flush()?;
            let Ok(answer) = self.lines.recv() else {
                return Ok(false);
            };
            let answer = Command::Answer {
                id: question.id.clone(),
                text: expand_home(answer.trim()),
            };
            // Answered too late (the request gave up) is not an error of the menu's; an
            // answer refused is asked again while the question waits.
            match control::request(&self.state_dir, &answer) {
                Ok(Reply::Error { message }) => {
                    println!("{}", control::printable(&message));
                    self.asked.remove(&question.id);
                }
                Ok(_) => {}
                Err(e) => println!("{e}"),
            }
        }
        Ok(true)
    }
}

fn prompt(input: &mut Person, question: &str) -> Result<Option<String>> {
    input.ask(question)
}

/// `~` and `~/...` as the home folder, in a folder typed at the menu (also after a link
/// code: `1234-5678 ~/Photos`).
fn expand_home(text: &str) -> String {
    let Some(home) = std::env::var_os("HOME").map(PathBuf::from) else {
        return text.to_owned();
    };
    text.split(' ')
        .map(|word| match word {
            "~" => home.display().to_string(),
            w if w.starts_with("~/") => home.join(&w[2..]).display().to_string(),
            w => w.to_owned(),
        })
        .collect::<Vec<_>>()
        .join(" ")
}

fn show(state_dir: &Path, command: Command) {
    match control::request(state_dir, &command) {
        Ok(answer) if answer.to_string().is_empty() => println!("(none)"),
        Ok(answer) => println!("{answer}"),
        Err(e) => println!("{e}"),
    }
}

/// Run the menu for the daemon whose state is in `state_dir`.
pub fn run(state_dir: &Path, config_path: &Path) -> Result<()> {
    let started = attach_or_start_daemon(state_dir, config_path)?;
    let mut input = Person::start(state_dir)?;
    menu(state_dir, &mut input)?;
    if let Some(pid) = started {
        let keep = prompt(
            &mut input,
            "keep the daemon running after you quit, to go on syncing? [Y/n]: ",
        )?;
        let stop =
            keep.is_some_and(|k| k.eq_ignore_ascii_case("n") || k.eq_ignore_ascii_case("no"));
        // Only the daemon this menu started (not one that took over the folder since).
        let running = std::fs::read_to_string(state_dir.join("daemon.lock"))
            .ok()
            .and_then(|text| text.trim().parse::<u32>().ok());
        if stop && running == Some(pid) {
            show(state_dir, Command::Shutdown);
        } else if stop {
            println!("the daemon running now is not the one this menu started: left running");
        } else {
            println!("the daemon goes on syncing; `qsync stop` stops it");
        }
    }
    Ok(())
}

/// The menu's loop, until the person quits or the input ends.
fn menu(state_dir: &Path, input: &mut Person) -> Result<()> {
    loop {
        if !input.daemon_questions()? {
            return Ok(());
        }
        println!(
            "\nQSync\n  [0] start syncing (status)\n  [1] create a sync task\n  [2] link another machine to a task\n  [3] list tasks and ids\n  [4] list QSync devices\n  [5] installed apps\n  [6] launch an app\n  [7] why is a task not in sync\n  [8] conflicts\n  [9] pause or resume a task\n  [r] remove a task (its files stay)\n  [q] quit"
        );
        let Some(choice) = prompt(input, "choice: ")? else {
            return Ok(());
        };
        match choice.as_str() {
            // Enter alone: the menu again.
            "" => {}
            "0" => show(state_dir, Command::Status),
            "1" => {
                let Some(path) = prompt(input, "folder to sync: ")? else {
                    return Ok(());
                };
                let path = expand_home(&path);
                match std::fs::canonicalize(&path) {
                    Ok(path) => show(
                        state_dir,
                        Command::TaskAdd {
                            path,
                            name: None,
                            folder_type: None,
                        },
                    ),
                    Err(e) => println!("no folder at {path}: {e}"),
                }
            }
            "2" => {
                if !link(state_dir, input)? {
                    return Ok(());
                }
            }
            "3" => show(state_dir, Command::TaskList),
            "4" => show(state_dir, Command::Devices),
            "5" => match crate::magasin::installed(state_dir) {
                Ok(list) => println!("{list}"),
                Err(e) => println!("{e:#}"),
            },
            "6" => {
                if let Ok(list) = crate::magasin::installed(state_dir) {
                    println!("{list}");
                }
                let Some(name) = prompt(input, "app to launch: ")? else {
                    return Ok(());
                };
                match crate::magasin::launch(state_dir, &name) {
                    Ok(started) => println!("{started}"),
                    Err(e) => println!("{e:#}"),
                }
            }
            "7" | "9" | "r" => {
                if !task_choice(state_dir, input, &choice)? {
                    return Ok(());
                }
            }
            "8" => show(state_dir, Command::Conflicts { path: None }),
            "q" | "quit" | "exit" => return Ok(()),
            other => println!("`{other}` is not one of the choices; type 0 to 9, r or q"),
        }
    }
}

/// The menu's choices about one task (`7`: why it is not in sync, `9`: pause or resume,
/// `r`: remove): the task is asked for among those listed. `false` when the input ended.
fn task_choice(state_dir: &Path, input: &mut Person, choice: &str) -> Result<bool> {
    show(state_dir, Command::TaskList);
    let Some(task) = prompt(input, "task id: ")? else {
        return Ok(false);
    };
    let task = match task.parse::<qsync_base::TaskId>() {
        Ok(task) => task,
        Err(e) => {
            println!("{e}");
            return Ok(true);
        }
    };
    let command = match choice {
        "7" => Command::OutOfSync { task },
        "r" => Command::TaskRemove { task },
        _ => {
            let Some(how) = prompt(input, "pause or resume? [p/r]: ")? else {
                return Ok(false);
            };
            let paused = match how.as_str() {
                "p" | "pause" => true,
                "r" | "resume" => false,
                other => {
                    println!("`{other}` is neither p nor r");
                    return Ok(true);
                }
            };
            Command::TaskSet {
                task,
                links_out: None,
                versions: None,
                paused: Some(paused),
                folder_type: None,
            }
        }
    };
    show(state_dir, command);
    Ok(true)
}

/// Attach to the daemon of `state_dir`, or, when none runs, start one as a process of its
/// own (its output in `daemon.log` in the state folder) and wait up to 30 s for it to
/// answer: its pid when the menu started it.
fn attach_or_start_daemon(state_dir: &Path, config_path: &Path) -> Result<Option<u32>> {
    match control::request(state_dir, &Command::Id) {
        Err(control::ControlError::NoDaemon { .. }) => {}
        // A daemon answers (or is there and busy): the menu talks to it.
        _ => return Ok(None),
    }
    std::fs::create_dir_all(state_dir)
        .with_context(|| format!("could not make the state folder {}", state_dir.display()))?;
    let log_path = state_dir.join("daemon.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .with_context(|| format!("could not open {}", log_path.display()))?;
    let exe = std::env::current_exe().context("could not find the qsync program to start")?;
    let mut child = {
        use std::os::unix::process::CommandExt;
        std::process::Command::new(exe)
            .arg("--state-dir")
            .arg(state_dir)
            .arg("--config")
            .arg(config_path)
            .arg("daemon")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            // Its own process group: a Ctrl-C in the menu's terminal does not stop it.
            .process_group(0)
            .spawn()
            .context("could not start the daemon")?
    };
    for _ in 0..300 {
        if control::request(state_dir, &Command::Id).is_ok() {
            println!(
                "started a QSync daemon (pid {}) for {}; its log is {}",
                child.id(),
                state_dir.display(),
                log_path.display()
            );
            return Ok(Some(child.id()));
        }
        if let Ok(Some(status)) = child.try_wait() {
            bail!(
                "the daemon stopped at once ({status}); its log {} says why",
                log_path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!(
        "the daemon started (pid {}) but does not answer; see {}",
        child.id(),
        log_path.display()
    )
}

/// Link a task with another machine: the task and the address asked, checked, and the
/// code shown while the link runs; false if the input ended.
fn link(state_dir: &Path, input: &mut Person) -> Result<bool> {
    show(state_dir, Command::TaskList);
    let Some(task) = prompt(input, "task id: ")? else {
        return Ok(false);
    };
    // The devices mDNS finds, to pick by number (as the seed's menu offered them).
    let nearby = match control::request(state_dir, &Command::Discovered) {
        Ok(Reply::Discovered { devices }) => devices,
        _ => Vec::new(),
    };
    for (i, device) in nearby.iter().enumerate() {
        println!(
            "  [{}] {} {} {}{}",
            i + 1,
            control::printable(&device.name),
            device.device.fingerprint(),
            control::printable(&device.addresses.join(",")),
            if device.linked { " (linked)" } else { "" }
        );
    }
    let asked = match nearby.is_empty() {
        true => "other machine (host:port): ",
        false => "other machine (a number above, or host:port): ",
    };
    let Some(addr) = prompt(input, asked)? else {
        return Ok(false);
    };
    let picked = addr
        .parse::<usize>()
        .ok()
        .and_then(|n| nearby.get(n.checked_sub(1)?));
    let (addr, expect) = match picked {
        Some(device) => match device.addresses.first() {
            Some(address) => (address.clone(), Some(device.device.to_string())),
            None => {
                println!("mDNS gives no address for that device");
                return Ok(true);
            }
        },
        None => (addr, None),
    };
    let host_port = addr
        .rsplit_once(':')
        .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok());
    if !host_port {
        println!("`{addr}` is not host:port, for example 192.168.1.20:7878 or laptop.local:7878");
        return Ok(true);
    }
    let Ok(task) = task.parse() else {
        println!("`{task}` is not a task id: copy one from the list above");
        return Ok(true);
    };
    let command = Command::Link {
        task,
        address: addr,
        expect,
    };
    let outcome = control::request_steps(state_dir, &command, |step| {
        println!("{step}");
        println!("waiting for the other machine's person to type it...");
    });
    match outcome {
        Ok(answer) => println!("{answer}"),
        Err(e) => println!("{e}"),
    }
    Ok(true)
}
