//! `qsync versions` and `qsync restore`: the files that changes from other devices
//! deleted or replaced here, kept by the daemon, and how to bring one back; `qsync
//! conflicts` and `qsync resolve`: the conflict copies, and how to settle them. Paths are
//! those of the person's folders (relative to where the command runs, or absolute); a
//! deleted file does not exist, so its path is made absolute through its nearest folder
//! that does.

use std::path::{Component, Path, PathBuf};

use anyhow::{Context, Result};
use qsync_engine::control;

use crate::{ask, show};

/// `qsync versions [PATH]`: the versions kept of PATH (a file or a folder), or of every task.
#[derive(Debug, clap::Args)]
pub(crate) struct VersionsArgs {
    /// A file or folder of a task (default: every task).
    path: Option<PathBuf>,
}

/// `qsync restore PATH`: bring back a kept version, as a change that syncs to the others.
#[derive(Debug, clap::Args)]
pub(crate) struct RestoreArgs {
    /// Where it was: a file, or a folder whose files all come back.
    path: PathBuf,
    /// Which version, by its number in `qsync versions` (default: the newest).
    #[arg(long)]
    version: Option<i64>,
    /// Put it there instead (in the same task); whatever is there is kept as a version.
    #[arg(long)]
    to: Option<PathBuf>,
}

/// `qsync conflicts [PATH]`: the conflict copies under PATH, or in every task.
#[derive(Debug, clap::Args)]
pub(crate) struct ConflictsArgs {
    /// A file, a copy or a folder of a task (default: every task).
    path: Option<PathBuf>,
}

/// `qsync resolve PATH --keep this|other|both`.
#[derive(Debug, clap::Args)]
pub(crate) struct ResolveArgs {
    /// The conflict copy, or the file it was made beside (all of its copies).
    path: PathBuf,
    /// `this`: the file at the original path stays, the copy goes; `other`: the copy
    /// takes the original path; `both`: the copy stays under a plain name. What goes is
    /// kept as a version.
    #[arg(long, value_enum)]
    keep: Side,
}

/// Which version stays.
#[derive(Debug, Clone, Copy, clap::ValueEnum)]
enum Side {
    This,
    Other,
    Both,
}

pub(crate) fn conflicts(state_dir: &Path, args: ConflictsArgs, json: bool) -> Result<()> {
    let path = args.path.as_deref().map(absolute).transpose()?;
    show(ask(state_dir, control::Command::Conflicts { path })?, json)
}

pub(crate) fn resolve(state_dir: &Path, args: ResolveArgs, json: bool) -> Result<()> {
    let keep = match args.keep {
        Side::This => control::KeepSide::This,
        Side::Other => control::KeepSide::Other,
        Side::Both => control::KeepSide::Both,
    };
    let path = absolute(&args.path)?;
    show(
        ask(state_dir, control::Command::Resolve { path, keep })?,
        json,
    )
}

pub(crate) fn versions(state_dir: &Path, args: VersionsArgs, json: bool) -> Result<()> {
    let path = args.path.as_deref().map(absolute).transpose()?;
    show(ask(state_dir, control::Command::Versions { path })?, json)
}

pub(crate) fn restore(state_dir: &Path, args: RestoreArgs, json: bool) -> Result<()> {
    let command = control::Command::Restore {
        path: absolute(&args.path)?,
        version: args.version,
        to: args.to.as_deref().map(absolute).transpose()?,
    };
    show(ask(state_dir, command)?, json)
}

/// `path` made absolute, its nearest existing folder resolved (links, `..`) the way the
/// daemon recorded its task folders; the rest kept as given.
fn absolute(path: &Path) -> Result<PathBuf> {
    let full = std::path::absolute(path)
        .with_context(|| format!("cannot read the path {}", path.display()))?;
    let mut base = full.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(found) = std::fs::canonicalize(base) {
            let mut out = found;
            for part in rest.iter().rev() {
                out.push(part);
            }
            return Ok(out);
        }
        match (base.parent(), base.components().next_back()) {
            (Some(parent), Some(Component::Normal(name))) => {
                rest.push(name.to_owned());
                base = parent;
            }
            _ => return Ok(full),
        }
    }
}
