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

#[cfg(test)]
mod tests {
    use super::parse_time;

    #[test]
    fn a_time_reads_as_versions_prints_it_or_as_a_time_ago() {
        let printed = qsync_core::rules::format_utc(1_764_000_000);
        assert_eq!(parse_time(&printed).unwrap(), 1_764_000_000 * 1_000_000_000);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap();
        let ago = parse_time("15m").unwrap();
        let expected = (now.as_secs() as i64 - 900) * 1_000_000_000;
        assert!((ago - expected).abs() < 5_000_000_000);
        for bad in [
            "yesterday",
            "2025-11-24",
            "20251324-000000",
            "m",
            "2025112é-00000",
            "é5m",
        ] {
            assert!(parse_time(bad).is_err(), "{bad}");
        }
    }
}

/// `qsync versions [PATH]`: the versions kept of PATH (a file or a folder), or of every task.
#[derive(Debug, clap::Args)]
pub(crate) struct VersionsArgs {
    /// A file or folder of a task (default: every task).
    path: Option<PathBuf>,
    /// Only the newest N.
    #[arg(long, value_name = "N")]
    newest: Option<u32>,
}

/// `qsync restore PATH`: bring back a kept version, as a change that syncs to the others.
#[derive(Debug, clap::Args)]
pub(crate) struct RestoreArgs {
    /// Where it was: a file, or a folder whose files all come back.
    path: PathBuf,
    /// Which version, by its number in `qsync versions` (default: the newest).
    #[arg(long, conflicts_with = "at")]
    version: Option<i64>,
    /// The newest version kept at or before this time: `YYYYMMDD-HHMMSS` in UTC (as
    /// `qsync versions` prints it), or a time ago (`90s`, `15m`, `2h`, `3d`).
    #[arg(long)]
    at: Option<String>,
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
    let newest = args.newest;
    show(
        ask(state_dir, control::Command::Versions { path, newest })?,
        json,
    )
}

pub(crate) fn restore(state_dir: &Path, args: RestoreArgs, json: bool) -> Result<()> {
    let at = args.at.as_deref().map(parse_time).transpose()?;
    let command = control::Command::Restore {
        path: absolute(&args.path)?,
        version: args.version,
        at,
        to: args.to.as_deref().map(absolute).transpose()?,
    };
    show(ask(state_dir, command)?, json)
}

/// `--at`: nanoseconds since the Unix epoch, from `YYYYMMDD-HHMMSS` (UTC) or a time ago.
fn parse_time(text: &str) -> Result<i64> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .context("the clock is before 1970")?;
    let ago = |secs: u64| -> Result<i64> {
        let at = now
            .checked_sub(std::time::Duration::from_secs(secs))
            .context("too long ago")?;
        i64::try_from(at.as_nanos()).context("too far")
    };
    if let Some(unit) = text.chars().last().filter(|c| "smhd".contains(*c)) {
        let n: u64 = text[..text.len() - 1]
            .parse()
            .with_context(|| format!("{text} is not a time ago like 15m"))?;
        let secs = match unit {
            's' => n,
            'm' => n.saturating_mul(60),
            'h' => n.saturating_mul(3600),
            _ => n.saturating_mul(86_400),
        };
        return ago(secs);
    }
    let bad = || anyhow::anyhow!("{text} is not YYYYMMDD-HHMMSS (UTC) nor a time ago like 15m");
    let (date, time) = text.split_once('-').ok_or_else(bad)?;
    if date.len() != 8 || time.len() != 6 || !text.is_ascii() {
        return Err(bad());
    }
    let num = |s: &str| s.parse::<i64>().map_err(|_| bad());
    let (y, mo, d) = (num(&date[..4])?, num(&date[4..6])?, num(&date[6..])?);
    let (h, mi, se) = (num(&time[..2])?, num(&time[2..4])?, num(&time[4..])?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&d) || h > 23 || mi > 59 || se > 60 {
        return Err(bad());
    }
    // Howard Hinnant's days_from_civil.
    let y = if mo <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (if mo > 2 { mo - 3 } else { mo + 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    let secs = days * 86_400 + h * 3600 + mi * 60 + se;
    secs.checked_mul(1_000_000_000).ok_or_else(bad)
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
