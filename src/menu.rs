//! The terminal menu (the seed's front end): talks to the daemon running for this state
//! folder, or starts one as a process of its own (saying so, and asking at quit whether
//! it keeps running: a daemon the menu did not start is never stopped by it), then offers
//! the seed's actions, the installed apps, and what a person does with a task (why it is
//! not in sync, its conflicts, pause or resume, remove). Bad input re-asks; nothing here
//! panics.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{bail, Context, Result};
use qsync_engine::btf;
use qsync_engine::control::{self, Command};

fn prompt(input: &mut impl BufRead, question: &str) -> Result<Option<String>> {
    print!("{question}");
    io::stdout().flush()?;
    let mut line = String::new();
    if input.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim().to_owned()))
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
    let stdin = io::stdin();
    let mut input = stdin.lock();
    menu(state_dir, &mut input)?;
    if started {
        let keep = prompt(
            &mut input,
            "keep the daemon running after you quit, to go on syncing? [Y/n]: ",
        )?;
        if keep.is_some_and(|k| k.eq_ignore_ascii_case("n") || k.eq_ignore_ascii_case("no")) {
            show(state_dir, Command::Shutdown);
        } else {
            println!("the daemon goes on syncing; `qsync stop` stops it");
        }
    }
    Ok(())
}

/// The menu's loop, until the person quits or the input ends.
fn menu(state_dir: &Path, input: &mut impl BufRead) -> Result<()> {
    loop {
        if !answer_questions(state_dir, input)? {
            return Ok(());
        }
        println!(
            "\nQSync\n  [0] start syncing (status)\n  [1] create a sync task\n  [2] link another machine to a task\n  [3] list tasks and ids\n  [4] list QSync devices\n  [5] installed apps\n  [6] launch an app\n  [7] why is a task not in sync\n  [8] conflicts\n  [9] pause or resume a task\n  [r] remove a task (its files stay)\n  [q] quit"
        );
        let Some(choice) = prompt(input, "choice: ")? else {
            return Ok(());
        };
        match choice.as_str() {
            "0" => show(state_dir, Command::Status),
            "1" => {
                let Some(path) = prompt(input, "folder to sync: ")? else {
                    return Ok(());
                };
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
fn task_choice(state_dir: &Path, input: &mut impl BufRead, choice: &str) -> Result<bool> {
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

/// Attach to the daemon of `state_dir`, or start one as a process of its own (its output
/// in `daemon.log` in the state folder) and wait up to 10 s for it to answer: `true` when
/// the menu started it.
fn attach_or_start_daemon(state_dir: &Path, config_path: &Path) -> Result<bool> {
    if control::request(state_dir, &Command::Id).is_ok() {
        return Ok(false);
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
    for _ in 0..100 {
        if control::request(state_dir, &Command::Id).is_ok() {
            println!(
                "started a QSync daemon (pid {}) for {}; its log is {}",
                child.id(),
                state_dir.display(),
                log_path.display()
            );
            return Ok(true);
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

/// Ask the person the daemon's questions waiting, one by one; false if the input ended.
fn answer_questions(state_dir: &Path, input: &mut impl BufRead) -> Result<bool> {
    for question in btf::pending_questions(&state_dir.join("btf"))? {
        println!(
            "\nQuestion ({}): {}",
            control::printable(&question.flag),
            control::printable(&question.context)
        );
        let Some(answer) = prompt(input, "> ")? else {
            return Ok(false);
        };
        // Answered too late (the request gave up) is not an error of the menu's.
        if let Err(e) = btf::answer(&state_dir.join("btf"), &question.id, &answer) {
            println!("{e}");
        }
    }
    Ok(true)
}

/// Link a task with another machine: the task and the address asked, checked, and the
/// code shown while the link runs; false if the input ended.
fn link(state_dir: &Path, input: &mut impl BufRead) -> Result<bool> {
    show(state_dir, Command::TaskList);
    let Some(task) = prompt(input, "task id: ")? else {
        return Ok(false);
    };
    let Some(addr) = prompt(input, "other machine (host:port): ")? else {
        return Ok(false);
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
        expect: None,
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
