//! `qsync service`: QSync as a systemd *user* service, so that it syncs from login to
//! logout without a terminal: the unit (`Type=notify`: the daemon says when it is ready),
//! installed, enabled and started with `systemctl --user`, or removed again. The same unit
//! for packagers is `packaging/qsync.service` (with `/usr/bin/qsync`).

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

/// The unit's name.
const UNIT: &str = "qsync.service";

/// What `qsync service` does.
#[derive(Debug, clap::Subcommand)]
pub enum ServiceCommand {
    /// Write the user unit, enable it and start it now (`systemctl --user enable --now`).
    Install,
    /// Stop and disable the user unit, and remove it.
    Uninstall,
    /// Whether the service runs (`systemctl --user status`).
    Status,
    /// Print the unit `install` writes, and change nothing.
    Unit,
}

/// The unit for this `qsync` program, with the state folder and config file given to this
/// command (`None`: the defaults, which the service finds by itself).
pub fn unit(program: &Path, state_dir: Option<&Path>, config: Option<&Path>) -> String {
    let mut exec = quote(&program.display().to_string());
    if let Some(dir) = state_dir {
        exec.push_str(&format!(
            " --state-dir {}",
            quote(&dir.display().to_string())
        ));
    }
    if let Some(file) = config {
        exec.push_str(&format!(" --config {}", quote(&file.display().to_string())));
    }
    format!(
        "[Unit]\n\
         Description=QSync: keeps folders in sync between your own devices\n\
         After=network-online.target\n\
         Wants=network-online.target\n\
         \n\
         [Service]\n\
         # The daemon says READY=1 once it listens and its tasks are loaded.\n\
         Type=notify\n\
         ExecStart={exec} daemon\n\
         # SIGHUP applies the config file's live settings.\n\
         ExecReload=/bin/kill -HUP $MAINPID\n\
         # SIGTERM: placements made durable, connections closed, then exit.\n\
         TimeoutStopSec=60\n\
         Restart=on-failure\n\
         RestartSec=5\n\
         \n\
         [Install]\n\
         WantedBy=default.target\n"
    )
}

/// A word for systemd's command line: `%` doubled (systemd's specifiers), quoted when it
/// holds a space or a quote.
fn quote(word: &str) -> String {
    let word = word.replace('%', "%%");
    if word
        .chars()
        .any(|c| c.is_whitespace() || c == '"' || c == '\\')
    {
        format!("\"{}\"", word.replace('\\', "\\\\").replace('"', "\\\""))
    } else {
        word
    }
}

/// Where user units go: `$XDG_CONFIG_HOME/systemd/user` (`~/.config/systemd/user`).
fn unit_path() -> Result<PathBuf> {
    let dirs = directories::BaseDirs::new().context("no home folder to install the service in")?;
    Ok(dirs.config_dir().join("systemd/user").join(UNIT))
}

fn systemctl(args: &[&str]) -> Result<()> {
    let status = Command::new("systemctl")
        .arg("--user")
        .args(args)
        .status()
        .context("could not run systemctl (is this a systemd system?)")?;
    if !status.success() {
        bail!("`systemctl --user {}` failed ({status})", args.join(" "));
    }
    Ok(())
}

/// Carry out `qsync service ...`.
pub fn run(command: ServiceCommand, state_dir: Option<&Path>, config: Option<&Path>) -> Result<()> {
    let program = std::env::current_exe().context("could not find the qsync program")?;
    // The unit runs elsewhere than here: folders given relative to here are made absolute.
    let here = std::env::current_dir().context("could not read the current folder")?;
    let (state_dir, config) = (
        state_dir.map(|d| here.join(d)),
        config.map(|c| here.join(c)),
    );
    let (state_dir, config) = (state_dir.as_deref(), config.as_deref());
    match command {
        ServiceCommand::Unit => print!("{}", unit(&program, state_dir, config)),
        ServiceCommand::Install => {
            let path = unit_path()?;
            let folder = path.parent().unwrap_or(Path::new("."));
            std::fs::create_dir_all(folder)
                .with_context(|| format!("could not make {}", folder.display()))?;
            std::fs::write(&path, unit(&program, state_dir, config))
                .with_context(|| format!("could not write {}", path.display()))?;
            println!("wrote {}", path.display());
            systemctl(&["daemon-reload"])?;
            systemctl(&["enable", "--now", UNIT])?;
            println!("QSync runs as a service now, and at every login (`qsync service status`)");
        }
        ServiceCommand::Uninstall => {
            let path = unit_path()?;
            // Stopped and disabled first; a unit already gone is not an error.
            let _ = systemctl(&["disable", "--now", UNIT]);
            match std::fs::remove_file(&path) {
                Ok(()) => println!("removed {}", path.display()),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                    println!("no service was installed ({} is not there)", path.display())
                }
                Err(e) => {
                    return Err(e).with_context(|| format!("could not remove {}", path.display()))
                }
            }
            let _ = systemctl(&["daemon-reload"]);
        }
        ServiceCommand::Status => systemctl(&["status", "--no-pager", UNIT])?,
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unit_runs_this_program_with_its_folders_quoted() {
        let unit = unit(
            Path::new("/opt/q sync/qsync"),
            Some(Path::new("/home/me/state")),
            None,
        );
        assert!(unit.contains("Type=notify"));
        assert!(
            unit.contains("ExecStart=\"/opt/q sync/qsync\" --state-dir /home/me/state daemon\n"),
            "{unit}"
        );
        assert!(unit.contains("ExecReload=/bin/kill -HUP $MAINPID"));
        assert_eq!(quote("/home/a%b"), "/home/a%%b");
    }

    /// The packagers' unit is the one `install` writes for /usr/bin/qsync.
    #[test]
    fn the_packaged_unit_is_the_installed_one() {
        let packaged = include_str!("../packaging/qsync.service");
        let body = &packaged[packaged.find("[Unit]").unwrap_or(0)..];
        assert_eq!(body, unit(Path::new("/usr/bin/qsync"), None, None));
    }
}
