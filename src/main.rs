//! The `qsync` binary: parses arguments and wires QSync's crates together.
//!
//! `qsync` alone starts the daemon and the terminal menu; `qsync daemon` runs the daemon
//! only; the other subcommands talk to a running daemon through its control socket.

mod cli;
mod config;
mod daemon;
mod magasin;
mod menu;
mod service;
mod versions;

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Parser;
use qsync_base::{DeviceId, TaskId};
use qsync_discovery::{Config, Discovery, DiscoveryEvent, Responder};
use qsync_engine::control::{self, Reply};

use cli::{Cli, Command, ConfigCommand, DeviceCommand, KeepVersions, Kind, LinksOut, TaskCommand};

fn default_state_dir() -> Result<PathBuf> {
    directories::ProjectDirs::from("", "", "qsync")
        .map(|d| d.data_dir().to_owned())
        .context("could not find a data folder for QSync; pass --state-dir")
}

/// Send `command` to the daemon; its failure reply becomes an error.
pub(crate) fn ask(state_dir: &Path, command: control::Command) -> Result<Reply> {
    match control::request(state_dir, &command)? {
        Reply::Error { message } => Err(Refused(message).into()),
        reply => Ok(reply),
    }
}

fn task_id(text: &str) -> Result<TaskId> {
    text.parse()
        .with_context(|| format!("`{text}` is not a task id (see `qsync task list`)"))
}

/// A linked device, named by its id, its fingerprint (or another start of its id, at
/// least four characters, dashes optional) or its name.
fn device_id(state_dir: &Path, text: &str) -> Result<DeviceId> {
    if let Ok(id) = text.parse() {
        return Ok(id);
    }
    let devices = match ask(state_dir, control::Command::Devices)? {
        Reply::Devices { devices } => devices,
        other => bail!("unexpected reply from the daemon: {other}"),
    };
    let known = devices.into_iter().map(|d| (d.device, d.name));
    pick_device(known, text)
        .with_context(|| format!("`{text}` names no linked device (see `qsync devices`)"))
}

/// The one device among `known` (id, name) that `text` names: by name, or by the start
/// of its id.
fn pick_device(known: impl Iterator<Item = (DeviceId, String)>, text: &str) -> Result<DeviceId> {
    let start = text.trim().to_ascii_lowercase().replace('-', "");
    let matches: Vec<(DeviceId, String)> = known
        .filter(|(id, name)| {
            name.eq_ignore_ascii_case(text.trim())
                || (start.len() >= 4 && id.to_string().replace('-', "").starts_with(&start))
        })
        .collect();
    match matches.as_slice() {
        [(id, _)] => Ok(*id),
        [] => bail!("no device matches"),
        several => {
            let names: Vec<String> = several
                .iter()
                .map(|(id, name)| format!("{} ({})", id.fingerprint(), control::printable(name)))
                .collect();
            bail!(
                "it names several devices: {}; give more of the id",
                names.join(", ")
            )
        }
    }
}

/// The daemon's request for a command that is one request and its reply shown.
fn request_of(state_dir: &Path, command: Command) -> Result<control::Command> {
    let device_id = |text: &str| device_id(state_dir, text);
    Ok(match command {
        Command::Devices => control::Command::Devices,
        Command::Status { task: None } => control::Command::Status,
        Command::Status { task: Some(task) } => control::Command::OutOfSync {
            task: task_id(&task)?,
        },
        Command::Pending { device } => control::Command::Pending {
            device: device_id(&device)?,
        },
        Command::Device(DeviceCommand::Address { device, address }) => {
            control::Command::DeviceAddress {
                device: device_id(&device)?,
                address,
            }
        }
        Command::Forget { device } => control::Command::Forget {
            device: device_id(&device)?,
        },
        Command::Unlink { task, device } => control::Command::Unlink {
            task: task_id(&task)?,
            device: device_id(&device)?,
        },
        Command::Revert { task, dry_run } => match dry_run {
            true => control::Command::RevertPreview {
                task: task_id(&task)?,
            },
            false => control::Command::Revert {
                task: task_id(&task)?,
            },
        },
        other => bail!("`{other:?}` is not a single request to the daemon"),
    })
}

/// How `qsync` ends (documented in the README): 0 done, 1 failed, 2 the command line was
/// wrong (clap's), 3 no daemon runs for the state folder, 4 the daemon refused the
/// command, 5 another daemon already runs on the state folder.
fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    let json = cli.json;
    match run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            let (code, kind) = failure_kind(&e);
            if json {
                let error =
                    serde_json::json!({ "error": { "kind": kind, "message": format!("{e:#}") } });
                println!("{error}");
            } else {
                // `{:#}`: the causes on one line, and never a backtrace (RUST_BACKTRACE is
                // for QSync's own bugs, which panic).
                eprintln!("error: {e:#}");
            }
            std::process::ExitCode::from(code)
        }
    }
}

/// The daemon's answer to a command was a refusal (exit code 4).
#[derive(Debug)]
pub(crate) struct Refused(String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for Refused {}

/// The exit code and JSON kind of a failure.
fn failure_kind(e: &anyhow::Error) -> (u8, &'static str) {
    for cause in e.chain() {
        if let Some(control::ControlError::NoDaemon { .. }) = cause.downcast_ref() {
            return (3, "no_daemon");
        }
        if cause.downcast_ref::<Refused>().is_some() {
            return (4, "refused");
        }
        if let Some(qsync_engine::EngineError::AlreadyRunning { .. }) = cause.downcast_ref() {
            return (5, "already_running");
        }
    }
    (1, "failed")
}

fn run(cli: Cli) -> Result<()> {
    log_to_stderr(cli.verbose);
    let config_path = config::path(cli.config.as_deref(), cli.state_dir.as_deref())?;
    let given = (cli.state_dir.clone(), cli.config.clone());
    let state_dir = match cli.state_dir {
        Some(dir) => dir,
        None => default_state_dir()?,
    };

    match cli.command {
        None => menu::run(&state_dir, &config_path),
        Some(Command::Daemon(args)) => daemon::run(&state_dir, &config_path, args),
        Some(Command::Stop) => stop(&state_dir, cli.json),
        Some(Command::Config(command)) => {
            config_command(&state_dir, &config_path, command, cli.json)
        }
        Some(Command::Web) => web(&state_dir, &config_path),
        Some(Command::Service(command)) => {
            service::run(command, given.0.as_deref(), given.1.as_deref())
        }
        Some(Command::Completions { shell }) => docs(Some(shell)),
        Some(Command::Man) => docs(None),
        Some(Command::Task(command)) => task(&state_dir, command, cli.json),
        Some(
            command @ (Command::Devices
            | Command::Status { .. }
            | Command::Pending { .. }
            | Command::Device(_)
            | Command::Forget { .. }
            | Command::Unlink { .. }
            | Command::Revert { .. }),
        ) => show(ask(&state_dir, request_of(&state_dir, command)?)?, cli.json),
        Some(Command::Link {
            task,
            address,
            expect,
            no_wait,
        }) => link(&state_dir, (task, address, expect), no_wait, cli.json),
        Some(Command::Events) => events(&state_dir, cli.json),
        Some(Command::Versions(args)) => versions::versions(&state_dir, args, cli.json),
        Some(Command::Restore(args)) => versions::restore(&state_dir, args, cli.json),
        Some(Command::Conflicts(args)) => versions::conflicts(&state_dir, args, cli.json),
        Some(Command::Pause { task, device }) => pause(&state_dir, (task, device), true, cli.json),
        Some(Command::Resume { task, device }) => {
            pause(&state_dir, (task, device), false, cli.json)
        }
        Some(Command::Resolve(args)) => versions::resolve(&state_dir, args, cli.json),
        Some(Command::Questions) => show(ask(&state_dir, control::Command::Questions)?, cli.json),
        Some(Command::Answer { id, text }) => show(
            ask(&state_dir, control::Command::Answer { id, text })?,
            cli.json,
        ),
        Some(Command::Discover {
            port,
            name,
            seconds,
            expiry,
            probe_interval,
            peers,
        }) => discover(port, name, seconds, expiry, probe_interval, peers),
        Some(Command::Store(args)) => magasin::run(&state_dir, args, cli.json),
        Some(Command::NewId) => {
            println!("{}", DeviceId::random());
            Ok(())
        }
        Some(Command::Version) => {
            let (version, protocol) = (env!("CARGO_PKG_VERSION"), qsync_wire::PROTOCOL_VERSION);
            match cli.json {
                true => println!(
                    "{}",
                    serde_json::json!({ "version": version, "protocol": protocol })
                ),
                false => println!("qsync {version} (protocol {protocol})"),
            }
            Ok(())
        }
    }
}

/// Log warnings, or more with `-v` (`RUST_LOG` wins when set): to systemd's journal, with
/// fields, when standard error is the journal's stream (`JOURNAL_STREAM`, under the
/// service); else to standard error, in colour only on a person's terminal.
fn log_to_stderr(verbose: u8) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match verbose {
        0 => "warn",
        1 => "info",
        _ => "debug",
    };
    let filter =
        || tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into());
    if std::env::var_os("JOURNAL_STREAM").is_some() {
        if let Ok(journald) = tracing_journald::layer() {
            let _ = tracing_subscriber::registry()
                .with(filter())
                .with(journald.with_syslog_identifier("qsync".into()))
                .try_init();
            return;
        }
    }
    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .init();
}

/// `qsync task ...`.
fn task(state_dir: &Path, command: TaskCommand, json: bool) -> Result<()> {
    match command {
        TaskCommand::Add {
            path,
            name,
            folder_type,
        } => {
            let path = std::fs::canonicalize(&path)
                .with_context(|| format!("no folder at {}", path.display()))?;
            let folder_type = folder_type.map(Kind::folder_type);
            let command = control::Command::TaskAdd {
                path,
                name,
                folder_type,
            };
            show(ask(state_dir, command)?, json)
        }
        TaskCommand::List => show(ask(state_dir, control::Command::TaskList)?, json),
        TaskCommand::Remove { task } => {
            let task = task_id(&task)?;
            show(ask(state_dir, control::Command::TaskRemove { task })?, json)
        }
        TaskCommand::Set {
            task,
            links_out,
            versions,
            keep_days,
            versions_cap_mib,
            folder_type,
        } => {
            let task = task_id(&task)?;
            let versions =
                version_policy(state_dir, task, (versions, keep_days, versions_cap_mib))?;
            let command = control::Command::TaskSet {
                task,
                links_out: links_out.map(|l| matches!(l, LinksOut::Allow)),
                versions,
                paused: None,
                folder_type: folder_type.map(Kind::folder_type),
            };
            show(ask(state_dir, command)?, json)
        }
    }
}

/// `qsync pause TASK|--device ID` / `qsync resume TASK|--device ID`.
fn pause(
    state_dir: &Path,
    (task, device): (Option<String>, Option<String>),
    paused: bool,
    json: bool,
) -> Result<()> {
    let command = match (task, device) {
        (_, Some(device)) => control::Command::DevicePause {
            device: device_id(state_dir, &device)?,
            paused,
        },
        (Some(task), None) => control::Command::TaskSet {
            task: task_id(&task)?,
            links_out: None,
            versions: None,
            paused: Some(paused),
            folder_type: None,
        },
        (None, None) => bail!("name a task, or a device with --device"),
    };
    show(ask(state_dir, command)?, json)
}

/// The version policy `qsync task set` asks for: what is given changes the task's
/// current one (asked of the daemon), `None` when nothing is.
fn version_policy(
    state_dir: &Path,
    task: TaskId,
    (keep, days, cap_mib): (Option<KeepVersions>, Option<u32>, Option<u64>),
) -> Result<Option<control::VersionPolicy>> {
    if keep.is_none() && days.is_none() && cap_mib.is_none() {
        return Ok(None);
    }
    let current = match ask(
        state_dir,
        control::Command::TaskSet {
            task,
            links_out: None,
            versions: None,
            paused: None,
            folder_type: None,
        },
    )? {
        Reply::TaskOptions { versions, .. } => versions,
        other => bail!("unexpected reply from the daemon: {other}"),
    };
    use control::Keep;
    let now_days = match current.keep {
        Keep::Off => None,
        Keep::Trash { days } | Keep::Staggered { days } => Some(days),
    };
    let keep = match keep {
        Some(KeepVersions::Off) => Keep::Off,
        Some(KeepVersions::Trash) => Keep::Trash {
            days: days.unwrap_or(30),
        },
        Some(KeepVersions::Staggered) => Keep::Staggered {
            days: days.unwrap_or(365),
        },
        None => match current.keep {
            Keep::Off => {
                bail!("this task keeps no versions: give --versions trash or staggered too")
            }
            Keep::Trash { .. } => Keep::Trash {
                days: days.or(now_days).unwrap_or(30),
            },
            Keep::Staggered { .. } => Keep::Staggered {
                days: days.or(now_days).unwrap_or(365),
            },
        },
    };
    let cap = match cap_mib {
        Some(mib) => Some(
            mib.checked_mul(1 << 20)
                .context("--versions-cap-mib is too large")?,
        ),
        None => current.cap,
    };
    Ok(Some(control::VersionPolicy { keep, cap }))
}

/// `qsync link`: link `task` with the device at `address` (expected to be `expect`),
/// showing the code while it runs, then following the setup copy unless `no_wait`.
fn link(
    state_dir: &Path,
    (task, address, expect): (String, String, Option<String>),
    no_wait: bool,
    json: bool,
) -> Result<()> {
    let task = task_id(&task)?;
    let (address, expect) = match looks_like_address(&address) {
        true => (address, expect),
        false => nearby(state_dir, &address, expect, json)?,
    };
    let command = control::Command::Link {
        task,
        address,
        expect,
    };
    let reply = control::request_steps(state_dir, &command, |step| {
        let _ = show(step.clone(), json);
        let _ = std::io::stdout().flush();
    })?;
    if let Reply::Error { message } = reply {
        return Err(Refused(message).into());
    }
    let linked = match &reply {
        Reply::Linked { device, .. } => Some(*device),
        _ => None,
    };
    show(reply, json)?;
    if let (Some(device), false) = (linked, no_wait) {
        follow_setup(state_dir, device)?;
    }
    Ok(())
}

/// Whether `text` is `HOST:PORT` (a name or an address with a port), rather than a device
/// to find among the nearby ones.
fn looks_like_address(text: &str) -> bool {
    text.parse::<SocketAddr>().is_ok()
        || text
            .rsplit_once(':')
            .is_some_and(|(host, port)| !host.is_empty() && port.parse::<u16>().is_ok())
}

/// The device mDNS found that `text` names (its name, or the start of its id): where it
/// says it listens, and its id as the device that must answer there (mDNS is only a claim:
/// the link proves the key).
fn nearby(
    state_dir: &Path,
    text: &str,
    expect: Option<String>,
    json: bool,
) -> Result<(String, Option<String>)> {
    let devices = match ask(state_dir, control::Command::Discovered)? {
        Reply::Discovered { devices } => devices,
        other => bail!("unexpected reply from the daemon: {other}"),
    };
    let device = pick_device(devices.iter().map(|d| (d.device, d.name.clone())), text)
        .with_context(|| {
            format!("`{text}` is not HOST:PORT, nor a device mDNS finds now (see `qsync discover`)")
        })?;
    let found = devices.iter().find(|d| d.device == device);
    let address = found
        .and_then(|d| {
            let v4 = d
                .addresses
                .iter()
                .find(|a| a.parse::<std::net::SocketAddrV4>().is_ok());
            v4.or(d.addresses.first()).cloned()
        })
        .with_context(|| format!("mDNS gives no address for `{text}`"))?;
    if !json {
        println!(
            "linking with {} at {address} (found by mDNS)",
            device.fingerprint()
        );
    }
    Ok((address, expect.or(Some(device.to_string()))))
}

/// `qsync events`: what happens, one line each, until the reader goes away.
fn events(state_dir: &Path, json: bool) -> Result<()> {
    let mut out = std::io::stdout().lock();
    control::follow(state_dir, |reply| {
        let line = if json {
            serde_json::to_string(&reply).unwrap_or_default()
        } else {
            reply.to_string()
        };
        // A reader that went away (`qsync events | head`) ends the stream quietly.
        writeln!(out, "{line}").and_then(|()| out.flush()).is_ok()
    })?;
    Ok(())
}

/// Print a reply: its human form, or one line of JSON with `--json`.
fn show(reply: Reply, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string(&reply)?);
    } else {
        let text = reply.to_string();
        if !text.is_empty() {
            println!("{text}");
        }
    }
    Ok(())
}

fn follow_setup(state_dir: &Path, device: DeviceId) -> Result<()> {
    let pending = || -> Result<u64> {
        match ask(state_dir, control::Command::Pending { device })? {
            Reply::Pending { count, .. } => Ok(count),
            other => bail!("unexpected reply from the daemon: {other}"),
        }
    };
    let total = pending()?;
    if total == 0 {
        return Ok(());
    }
    let bar = indicatif::ProgressBar::new(total);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "setup copy {bar:40} {pos}/{len} entries ({eta} left)",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    let mut last_change = Instant::now();
    let mut last = total;
    loop {
        let left = pending()?;
        bar.set_position(total.saturating_sub(left));
        if left == 0 {
            bar.finish();
            return Ok(());
        }
        if left != last {
            last = left;
            last_change = Instant::now();
        } else if last_change.elapsed() > Duration::from_secs(120) {
            bar.abandon();
            bail!("the setup copy made no progress for two minutes; it goes on whenever the other device is reachable (see `qsync status`)");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `qsync completions SHELL` (`Some`) or `qsync man` (`None`), from the command line's
/// own description.
fn docs(shell: Option<clap_complete::Shell>) -> Result<()> {
    use clap::CommandFactory;
    let mut out = std::io::stdout();
    match shell {
        Some(shell) => clap_complete::generate(shell, &mut Cli::command(), "qsync", &mut out),
        None => clap_mangen::Man::new(Cli::command()).render(&mut out)?,
    }
    Ok(())
}

/// `qsync stop`: the daemon asked to stop, and waited for (up to a minute) until its lock
/// on the state folder is free, so that `qsync stop && qsync daemon` works.
fn stop(state_dir: &Path, json: bool) -> Result<()> {
    show(ask(state_dir, control::Command::Shutdown)?, json)?;
    let lock = state_dir.join("daemon.lock");
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline {
        let free = std::fs::File::open(&lock).is_ok_and(|file| file.try_lock_shared().is_ok());
        if free {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    bail!("the daemon did not stop within a minute (see its log)")
}

/// `qsync config ...`.
fn config_command(state_dir: &Path, path: &Path, command: ConfigCommand, json: bool) -> Result<()> {
    match command {
        ConfigCommand::Path => println!("{}", path.display()),
        ConfigCommand::Show => {
            let settings = config::load(path)?;
            if json {
                println!("{}", serde_json::to_string(&settings)?);
            } else {
                print!("{}", toml::to_string(&settings)?);
            }
        }
        ConfigCommand::Get { key } => println!("{}", config::load(path)?.get(&key)?),
        ConfigCommand::Set { key, value } => {
            let settings = config::load(path)?.with(&key, &value)?;
            config::save(path, &settings)?;
            println!("{key} = {} (in {})", settings.get(&key)?, path.display());
        }
        ConfigCommand::Reload => {
            let settings = config::load(path)?;
            show(ask(state_dir, daemon::live(&settings))?, json)?;
        }
    }
    Ok(())
}

/// `qsync web`: the address that logs the browser into the running daemon's web UI, once.
fn web(state_dir: &Path, config_path: &Path) -> Result<()> {
    // The daemon that answers on the control socket, and the pid it wrote in its lock.
    ask(state_dir, control::Command::Id)?;
    let pid = std::fs::read_to_string(state_dir.join("daemon.lock"))
        .ok()
        .and_then(|text| text.trim().parse().ok())
        .context("the running daemon's lock file says no pid")?;
    let Some((address, secret)) = daemon::web_of(state_dir, pid) else {
        let off = config::load(config_path)?.http_address()?.is_none();
        if off {
            bail!("the web UI is off (http = \"off\" in {}); `qsync config set http 127.0.0.1:8385`, then restart the daemon", config_path.display());
        }
        bail!("the running daemon serves no web UI (its address was taken? see its log)");
    };
    println!("{}", qsync_http::login_address(address, &secret)?);
    println!(
        "(opens the web UI logged in, once, within two minutes; the API key for scripts is in {})",
        qsync_http::api_key_path(state_dir).display()
    );
    Ok(())
}

fn discover(
    port: u16,
    name: String,
    seconds: Option<u64>,
    expiry: u64,
    probe_interval: u64,
    peers: Vec<SocketAddr>,
) -> Result<()> {
    // A throwaway key: this command is not a daemon and links nothing.
    let identity = qsync_wire::Identity::generate().context("could not make a key")?;
    let device = identity.device();
    let responder = Responder::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), identity)
        .with_context(|| format!("could not listen on port {port}; pick another with --port"))?;
    let mut config = Config::new(device, name, responder.address().port());
    config.expiry = Duration::from_secs(expiry.max(1));
    config.probe_interval = Duration::from_secs(probe_interval.max(1));
    let (discovery, events) = Discovery::start(config).context("could not start mDNS discovery")?;
    for peer in peers {
        discovery.add_manual(peer);
    }
    let mut out = std::io::stdout().lock();
    writeln!(out, "me {device}")?;
    out.flush()?;
    let deadline = seconds.map(|s| Instant::now() + Duration::from_secs(s));
    loop {
        let wait = match deadline {
            Some(d) => match d.checked_duration_since(Instant::now()) {
                Some(left) => left,
                None => break,
            },
            None => Duration::from_secs(3600),
        };
        match events.recv_timeout(wait) {
            Ok(DiscoveryEvent::Found(peer)) => {
                let addresses: Vec<String> =
                    peer.addresses.iter().map(ToString::to_string).collect();
                let name = if peer.name.is_empty() {
                    "-".to_owned()
                } else {
                    peer.name.replace(' ', "_")
                };
                writeln!(
                    out,
                    "found {} {} {}",
                    peer.device,
                    name,
                    addresses.join(",")
                )?;
            }
            Ok(DiscoveryEvent::Lost(device)) => writeln!(out, "lost {device}")?,
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
        }
        out.flush()?;
    }
    drop(discovery);
    drop(responder);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn a_device_is_named_by_its_name_or_the_start_of_its_id() {
        let (a, b) = (DeviceId::from_bytes([1; 32]), DeviceId::from_bytes([2; 32]));
        let known = || [(a, "laptop".to_owned()), (b, "desk".to_owned())].into_iter();
        assert_eq!(pick_device(known(), "Laptop").unwrap(), a);
        assert_eq!(pick_device(known(), &b.fingerprint()).unwrap(), b);
        assert_eq!(
            pick_device(known(), &b.to_string()[..7].replace('-', "")).unwrap(),
            b
        );
        assert!(
            pick_device(known(), "abc").is_err(),
            "too short to name one"
        );
        assert!(pick_device(known(), "phone").is_err());
        let twins = [(a, "x".to_owned()), (b, "X".to_owned())].into_iter();
        assert!(format!("{:#}", pick_device(twins, "x").unwrap_err()).contains("several"));
    }

    #[test]
    fn an_address_has_a_port() {
        assert!(looks_like_address("laptop.local:7878"));
        assert!(looks_like_address("[::1]:7878"));
        assert!(!looks_like_address("laptop"));
        assert!(!looks_like_address("aaaa-bbbb-cccc-dddd"));
    }
}
