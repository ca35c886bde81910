//! The terminal menu (the seed's front end): starts the daemon if none runs for this state
//! folder, then offers the seed's actions, the installed apps, and what a person does with
//! a task (why it is not in sync, its conflicts, pause or resume, remove). Bad input
//! re-asks; nothing here panics.

use std::io::{self, BufRead, Write};
use std::path::Path;
use std::time::Duration;

use anyhow::{Context, Result};
use qsync_engine::control::{self, Command};
use qsync_engine::{btf, DaemonConfig};

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
pub fn run(state_dir: &Path) -> Result<()> {
    attach_or_start_daemon(state_dir)?;
    let stdin = io::stdin();
    let mut input = stdin.lock();
    loop {
        if !answer_questions(state_dir, &mut input)? {
            return Ok(());
        }
        println!(
            "\nQSync\n  [0] start syncing (status)\n  [1] create a sync task\n  [2] link another machine to a task\n  [3] list tasks and ids\n  [4] list QSync devices\n  [5] installed apps\n  [6] launch an app\n  [7] why is a task not in sync\n  [8] conflicts\n  [9] pause or resume a task\n  [r] remove a task (its files stay)\n  [q] quit"
        );
        let Some(choice) = prompt(&mut input, "choice: ")? else {
            return Ok(());
        };
        match choice.as_str() {
            "0" => show(state_dir, Command::Status),
            "1" => {
                let Some(path) = prompt(&mut input, "folder to sync: ")? else {
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
                if !link(state_dir, &mut input)? {
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
                let Some(name) = prompt(&mut input, "app to launch: ")? else {
                    return Ok(());
                };
                match crate::magasin::launch(state_dir, &name) {
                    Ok(started) => println!("{started}"),
                    Err(e) => println!("{e:#}"),
                }
            }
            "7" | "9" | "r" => {
                if !task_choice(state_dir, &mut input, &choice)? {
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

/// Attach to the daemon of `state_dir`, or start one in this process (and wait up to 5 s
/// for it to answer).
fn attach_or_start_daemon(state_dir: &Path) -> Result<()> {
    if control::request(state_dir, &Command::Id).is_err() {
        let config = DaemonConfig {
            state_dir: state_dir.to_owned(),
            listen: "0.0.0.0:7878".parse()?,
            name: "qsync".into(),
            mdns: true,
            btf_dir: state_dir.join("btf"),
            answer_timeout: Duration::from_secs(600),
            rescan_every: Duration::from_secs(60),
            base_share: 20,
        };
        std::thread::Builder::new()
            .name("qsync-daemon".into())
            .spawn(move || {
                if let Err(e) = qsync_engine::run(config) {
                    eprintln!("the daemon stopped: {e}");
                }
            })
            .context("could not start the daemon's thread")?;
        for _ in 0..50 {
            if control::request(state_dir, &Command::Id).is_ok() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    Ok(())
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
