//! The human form of the control protocol's replies, which the CLI prints without
//! `--json` (one line per item), and [`printable`], which shows text from elsewhere
//! safely on a terminal.

use std::fmt;

use qsync_base::RelPath;

use super::{DaemonEvent, NearbyInfo, QuestionInfo, Reply, Status, TaskInfo, TransferInfo};

/// Text from elsewhere (a device's name, a folder name from a pairing request) as it may
/// be shown on a terminal: control characters (escape sequences, newlines that would fake
/// another line) are shown escaped, never sent as they are.
pub fn printable(text: &str) -> String {
    text.chars()
        .map(|c| {
            // Controls, and the invisible characters that reorder or hide text (a name
            // could otherwise fake the fingerprint printed next to it).
            let invisible = matches!(c, '\u{061c}' | '\u{200b}'..='\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2060}'..='\u{2069}' | '\u{feff}');
            if c.is_control() || invisible {
                c.escape_default().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// A name with its spaces shown as `_`, so that a line keeps one word per field.
fn word(name: &str) -> String {
    printable(name).replace(' ', "_")
}

impl fmt::Display for TaskInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "task {} {} {} devices={}{}",
            self.task,
            word(&self.name),
            printable(&self.root.display().to_string()),
            self.devices,
            if self.paused { " paused" } else { "" }
        )
    }
}

impl fmt::Display for QuestionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (id, flag, context) = (&self.id, &self.flag, &self.context);
        write!(
            f,
            "{}\t{}\t{}",
            printable(id),
            printable(flag),
            printable(context)
        )
    }
}

impl fmt::Display for NearbyInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let linked = if self.linked { " linked" } else { "" };
        let addresses = printable(&self.addresses.join(","));
        write!(
            f,
            "{} {} {addresses}{linked}",
            self.device,
            word(&self.name)
        )
    }
}

/// `changed PATH` or `deleted PATH` (`without` when no path is named).
fn change_word(path: Option<&RelPath>, deleted: bool, without: &str) -> String {
    match (path, deleted) {
        (Some(path), true) => format!("deleted {}", printable(path.as_str())),
        (Some(path), false) => format!("changed {}", printable(path.as_str())),
        (None, _) => without.to_owned(),
    }
}

/// ` (NAME)` for a known name, nothing otherwise.
fn named(name: &Option<String>) -> String {
    match name {
        Some(name) if !name.is_empty() => format!(" ({})", printable(name)),
        _ => String::new(),
    }
}

impl fmt::Display for DaemonEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DaemonEvent::Connected { device, name } => {
                write!(f, "connected {device}{}", named(name))
            }
            DaemonEvent::Disconnected { device, name } => {
                write!(f, "disconnected {device}{}", named(name))
            }
            DaemonEvent::Question { id, flag, context } => {
                write!(
                    f,
                    "question {} {}: {}",
                    printable(id),
                    printable(flag),
                    printable(context)
                )
            }
            DaemonEvent::Applied {
                task,
                from,
                name,
                path,
                deleted,
            } => {
                let what = change_word(path.as_ref(), *deleted, "applied a change");
                write!(f, "{what} from {from}{} (task {task})", named(name))
            }
            DaemonEvent::Conflict { task, kept_as } => {
                write!(
                    f,
                    "conflict: the other version is kept as {} (task {task})",
                    printable(kept_as.as_str())
                )
            }
            DaemonEvent::Delivered { device } => write!(f, "delivered an update to {device}"),
            DaemonEvent::LinkEnded {
                task,
                ok: true,
                message,
            } => {
                write!(f, "linked task {task}: {}", printable(message))
            }
            DaemonEvent::LinkEnded {
                task,
                ok: false,
                message,
            } => {
                write!(f, "link of task {task} failed: {}", printable(message))
            }
            DaemonEvent::TaskChanged { task } => write!(f, "task {task} changed"),
            DaemonEvent::AppliedMore { task, count } => {
                write!(f, "applied {count} more changes (task {task})")
            }
            DaemonEvent::Changed {
                task,
                path,
                deleted,
                more: 0,
            } => {
                let what = change_word(path.as_ref(), *deleted, "changes");
                write!(f, "{what} here (task {task})")
            }
            DaemonEvent::Changed { task, more, .. } => {
                write!(f, "{more} more changes here (task {task})")
            }
            DaemonEvent::Transfer(t) => write!(f, "{t}"),
        }
    }
}

/// A version policy in words, as `qsync task set` takes it.
fn policy(p: &super::VersionPolicy) -> String {
    let keep = match p.keep {
        super::Keep::Off => "off".to_owned(),
        super::Keep::Trash { days } => format!("trash {days} days"),
        super::Keep::Staggered { days } => format!("staggered {days} days"),
    };
    match p.cap {
        Some(cap) => format!("{keep}, cap {} MiB", cap >> 20),
        None => format!(
            "{keep}, cap {} MiB (the default)",
            super::DEFAULT_VERSIONS_CAP >> 20
        ),
    }
}

/// One path not in sync: `PATH: why` with whom and for how long.
impl fmt::Display for super::NotInSync {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use super::NotInSyncWhy as W;
        let path = self.path.as_ref().map_or("(task)", |p| p.as_str());
        let why = match self.why {
            W::Paused => "paused here",
            W::FolderType => "a one-way folder",
            W::WaitingTurn => "a received change waits for its turn",
            W::WaitingContent => "waiting for its content",
            W::Placing => "being written",
            W::WaitingChildren => "its deletion waits for what is left in the folder",
            W::Retrying => "a received change is tried again later",
            W::Conflict => "conflict",
            W::Refused => "not made here",
            W::Unsupported => "names QSync cannot carry",
            W::PeerRefused => "a linked device sent what this one refused",
            W::ChangedHere => "changed here, not sent (receive-only)",
            W::Ignored => "ignored here (.qsyncignore); a linked device has it",
            W::NoSpace => "received content does not fit on this disk",
        };
        write!(f, "{}: {why}", printable(path))?;
        if let Some(device) = &self.device {
            write!(f, " (from {})", printable(device))?;
        }
        if let Some(seconds) = self.seconds {
            write!(f, " for {seconds} s")?;
        }
        if !self.detail.is_empty() {
            write!(f, "; {}", printable(&self.detail))?;
        }
        Ok(())
    }
}

/// One conflict copy: the original (this version: size, time) and the copy (the other).
impl fmt::Display for super::ConflictInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let when = |ns: i64| qsync_base::format_utc(ns.div_euclid(1_000_000_000));
        let original = self.original.as_ref().map_or("-", |o| o.as_str());
        let by = |device: &Option<String>| {
            device
                .as_deref()
                .map_or_else(String::new, |d| format!(" by {}", printable(d)))
        };
        let this = match (self.original_size, self.original_mtime_ns) {
            (Some(size), Some(mtime)) => {
                format!("{size} B {}{}", when(mtime), by(&self.original_device))
            }
            _ => "gone".to_owned(),
        };
        write!(
            f,
            "conflict {}  this: {this}  other: {} B {}{} in {}",
            printable(original),
            self.copy_size,
            when(self.copy_mtime_ns),
            by(&self.copy_device),
            printable(self.copy.as_str())
        )
    }
}

/// One kept version: its number, when it was kept, size, why and by whom, and its path.
impl fmt::Display for super::VersionInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.kept_ns.div_euclid(1_000_000_000);
        let by = self
            .device
            .as_deref()
            .map_or_else(|| "-".to_owned(), printable);
        write!(
            f,
            "version {:<6} {} {:>12} B  {:<14} by {:<20} {}",
            self.id,
            qsync_base::format_utc(secs),
            self.size,
            self.why,
            by,
            printable(self.path.as_str())
        )
    }
}

/// One item per line, or `empty` when there is none.
fn lines<T: fmt::Display>(f: &mut fmt::Formatter<'_>, items: &[T], empty: &str) -> fmt::Result {
    if items.is_empty() {
        return f.write_str(empty);
    }
    let lines: Vec<String> = items.iter().map(ToString::to_string).collect();
    f.write_str(&lines.join("\n"))
}

/// One linked device: id, name, address, and whether it is connected or paused.
impl fmt::Display for super::DeviceInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = match (self.paused, self.connected) {
            (true, _) => "paused",
            (false, true) => "connected",
            (false, false) => "disconnected",
        };
        let address = self.address.as_deref().unwrap_or("-");
        write!(
            f,
            "device {} {} {} {state}",
            self.device,
            word(&self.name),
            address
        )
    }
}

/// The human form, which the CLI prints without `--json` (one line per item).
impl fmt::Display for Reply {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Reply::Id { device } => write!(f, "{device}"),
            Reply::Status(s) => write!(f, "{s}"),
            Reply::TaskAdded(t) => write!(f, "task {} {} {}", t.task, word(&t.name), printable(&t.root.display().to_string())),
            Reply::TaskRemoved { task } => write!(f, "removed task {task} (its folder is untouched)"),
            Reply::TaskOptions {
                task,
                links_out,
                versions,
                paused,
                folder_type,
            } => {
                let links = if *links_out { "allow" } else { "refuse" };
                let state = if *paused { "paused" } else { "syncing" };
                let kind = match folder_type {
                    super::FolderType::SendReceive => "send-receive",
                    super::FolderType::SendOnly => "send-only",
                    super::FolderType::ReceiveOnly => "receive-only",
                };
                write!(f, "task {task} {state} {kind} links-out {links} versions {}", policy(versions))
            }
            Reply::Reverted {
                task,
                paths,
                more,
                dry_run,
            } => {
                let verb = if *dry_run { "would revert" } else { "reverting" };
                write!(f, "task {task}: {verb} {} paths", paths.len() + more)?;
                for path in paths {
                    write!(f, "\n  {}", printable(path.as_str()))?;
                }
                if *more > 0 {
                    write!(f, "\n  and {more} more")?;
                }
                Ok(())
            }
            Reply::OutOfSync { task, paths } if paths.is_empty() => write!(f, "task {task} is in sync here"),
            Reply::OutOfSync { paths, .. } => lines(f, paths, ""),
            Reply::Conflicts { conflicts } => lines(f, conflicts, "no conflicts"),
            Reply::Versions { versions, total } => {
                lines(f, versions, "no versions kept")?;
                let more = (*total).saturating_sub(versions.len() as u64);
                if more > 0 {
                    write!(f, "\n({more} older not listed)")?;
                }
                Ok(())
            }
            Reply::Tasks { tasks } => lines(f, tasks, ""),
            Reply::Devices { devices } => lines(f, devices, ""),
            Reply::LinkCode {
                fingerprint, code, ..
            } => write!(
                f,
                "code {code}: the device that answered is {fingerprint}; on it, answer the link question with this code and a folder"
            ),
            Reply::DevicePaused { device, paused: true } => {
                write!(f, "device {device} paused: no connection with it until qsync resume --device")
            }
            Reply::DevicePaused { device, paused: false } => write!(f, "device {device} resumed"),
            Reply::DeviceAddressSet { device, address } => {
                write!(f, "device {device} is reached at {} from now on", printable(address))
            }
            Reply::Forgotten { device, tasks } => {
                write!(f, "forgot {device} (it was linked to {tasks} tasks)")
            }
            Reply::Linked {
                device,
                name,
                entries,
            } => write!(
                f,
                "linked {device} {} ({entries} entries to copy)",
                printable(name)
            ),
            Reply::Pending { count, .. } => write!(f, "{count}"),
            Reply::Unlinked { task, device } => write!(f, "unlinked {device} from {task}"),
            Reply::App(app) => write!(
                f,
                "{:<24} {:<10} task {} {}",
                printable(&app.name),
                printable(&app.kind),
                app.task.map_or_else(|| "-".to_owned(), |t| t.to_string()),
                printable(&app.data_folder.display().to_string())
            ),
            Reply::Apps { apps } => {
                let lines: Vec<String> = apps.iter().map(|a| Reply::App(a.clone()).to_string()).collect();
                f.write_str(&lines.join("\n"))
            }
            Reply::Event(event) => write!(f, "{event}"),
            Reply::Questions { questions } => lines(f, questions, ""),
            Reply::Answered { id } => write!(f, "answered {}", printable(id)),
            Reply::Configured { rescan_every: 0 } => write!(f, "applied: no whole scans (the other settings apply at the next start)"),
            Reply::Configured { rescan_every } => write!(f, "applied: a whole scan every {rescan_every} s (the other settings apply at the next start)"),
            Reply::ShuttingDown => write!(f, "the daemon is stopping"),
            Reply::Discovered { devices } => lines(f, devices, ""),
            Reply::Error { message } => write!(f, "error: {}", printable(message)),
        }
    }
}

impl fmt::Display for Status {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let s = self;
        write!(
            f,
            "device {}\nfingerprint {}\ntasks {}\nconnected {}\nupdates {} pending {} deltas {}\nsent {} received {}\nwire_sent {} wire_received {}\nunsupported {}{}",
            s.device, s.device.fingerprint(), s.tasks, s.connected, s.updates, s.pending, s.deltas, s.sent, s.received, s.wire_sent, s.wire_received,
            s.unsupported,
            if s.unsupported > 0 { " (names QSync cannot carry are not synced; the daemon's log lists them)" } else { "" }
        )?;
        write!(f, "\nversions_bytes {}", s.versions_bytes)?;
        for task in &s.paused {
            write!(
                f,
                "\npaused {task} (its changes wait here; qsync resume sends them)"
            )?;
        }
        for p in &s.not_synced {
            write!(f, "\nnot_synced {}", printable(p))?;
        }
        for p in &s.ignore_problems {
            write!(f, "\nignore_problem {}", printable(p))?;
        }
        for d in &s.distrusted {
            write!(
                f,
                "\ndistrusted {} refused {} doubted {} last {}",
                d.device,
                d.refused,
                d.doubted,
                printable(&d.last)
            )?;
        }
        for scan in &s.scans {
            write!(
                f,
                "\nscanning {} {} entries {} s",
                scan.task, scan.entries, scan.seconds
            )?;
        }
        for t in &s.transfers {
            write!(f, "\n{t}")?;
        }
        Ok(())
    }
}

impl fmt::Display for TransferInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let t = self;
        let path = printable(t.path.as_str());
        let (task, device, done, size, rate) = (t.task, t.device, t.done, t.size, t.rate);
        if t.patch {
            write!(f, "patch {task} {path} from {device} {done} bytes of patch for {size} bytes {rate} B/s")
        } else {
            write!(
                f,
                "receiving {task} {path} from {device} {done} of {size} bytes {rate} B/s"
            )
        }
    }
}
