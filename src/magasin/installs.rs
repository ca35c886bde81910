//! What `qsync store` sets up on this device: apps installed from a store (a grapin's data
//! folders synced, a tout-en-un app unpacked under `<qsync root>/apps`), removed, listed
//! and started. Each step that runs a program or syncs secrets waits for the person's yes.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use qsync_apps::archive::Limits;
use qsync_apps::install::{self, Layout};
use qsync_apps::{current_username, resolve, Grapin, Platform, ResolveContext, ToutEnUn};
use qsync_engine::control::{Command, Reply};
use qsync_magasin::{Entry, Location, Policy, SignedIndex, Source};

use super::{app_of, get_app, shown, task_text, Asker};
use crate::ask;

fn layout(apps_root: PathBuf, shortcuts: bool) -> Layout {
    Layout {
        apps_root,
        shortcuts: shortcuts
            .then(directories::BaseDirs::new)
            .flatten()
            .map(|d| d.data_dir().join("applications")),
    }
}

/// What an install accepts, from the command line.
pub(super) struct Wanted {
    pub(super) max_size: u64,
    pub(super) limits: Limits,
    pub(super) shortcut: bool,
}

pub(super) fn install_app(
    state_dir: &Path,
    source: &Source,
    signed: &SignedIndex,
    policy: &Policy,
    asker: &Asker,
    name: &str,
    wanted: &Wanted,
) -> Result<()> {
    // The daemon records the app and syncs it: make sure it is there before doing anything.
    ask(state_dir, Command::Id)
        .context("installing an app needs the QSync daemon (`qsync daemon`)")?;
    if get_app(state_dir, name).is_ok() {
        bail!("{name} is already installed (see `qsync store installed`)");
    }
    let Some(entry) = signed.index.find(name) else {
        bail!(
            "the store at {} has no app named {name} (see `qsync store list`)",
            source.index_location()
        );
    };
    match entry {
        Entry::Grapin(grapin) => install_grapin(state_dir, grapin, asker),
        Entry::ToutEnUn(app) => {
            install_tout_en_un(state_dir, source, signed, app, policy, asker, wanted)
        }
    }
}

/// Which folder each `%any%` of a grapin's template was taken to be, and the others there.
fn show_choices(name: &str, choices: &[qsync_apps::Choice]) {
    for choice in choices {
        let others: Vec<&str> = choice
            .candidates
            .iter()
            .filter(|c| **c != choice.chosen)
            .map(String::as_str)
            .collect();
        println!(
            "{}: `{}` in {} is `{}`{}",
            name,
            choice.pattern,
            choice.parent.display(),
            shown(&choice.chosen),
            if others.is_empty() {
                String::new()
            } else {
                format!(" (also there: {})", others.join(", "))
            }
        );
    }
}

fn install_grapin(state_dir: &Path, grapin: &Grapin, asker: &Asker) -> Result<()> {
    let name = grapin.name().as_str();
    let platform =
        Platform::current().context("this platform is none of Linux, Windows, Android")?;
    let Some(template) = grapin.template(platform) else {
        let names: Vec<String> = grapin.platforms().iter().map(ToString::to_string).collect();
        bail!(
            "{name} does not support {platform} (it supports {})",
            names.join(", ")
        );
    };
    let home = directories::BaseDirs::new()
        .map(|d| d.home_dir().to_owned())
        .context("could not find the home folder")?;
    let ctx = ResolveContext {
        username: current_username(&home),
        home: home.clone(),
    };
    let found = resolve(template, &ctx)?;
    show_choices(name, &found.choices);
    if !found.path.is_dir() {
        bail!(
            "{name}'s data folder {} does not exist; start {name} once so that it creates it, then install again",
            found.path.display()
        );
    }
    let sensitive =
        qsync_apps::guard::check_data_folder(&found.path, &home, &[state_dir.to_path_buf()])
            .with_context(|| format!("{name} was not installed"))?;
    if !sensitive.is_empty() {
        let places: Vec<String> = sensitive
            .iter()
            .map(|s| format!("    {} ({})", s.place.display(), s.holds))
            .collect();
        let context = format!(
            "{name} would sync {}, which touches places of secrets:\n{}\nEvery device linked to its task would get a copy of them, and could change them here.",
            found.path.display(),
            places.join("\n")
        );
        if !asker.confirm(
            &context,
            "Sync it anyway?",
            &format!("syncing {name}'s folder of secrets"),
        )? {
            bail!("{name} was not installed");
        }
    }
    let app = app_of(ask(
        state_dir,
        Command::AppAdd {
            kind: "grapin".into(),
            name: name.to_owned(),
            folder: found.path.clone(),
            app_dir: None,
            config: grapin.to_json(),
        },
    )?)?;
    println!(
        "installed {name}: syncing {} as task {}",
        app.data_folder.display(),
        task_text(&app)
    );
    Ok(())
}

fn install_tout_en_un(
    state_dir: &Path,
    source: &Source,
    signed: &SignedIndex,
    app: &ToutEnUn,
    policy: &Policy,
    asker: &Asker,
    wanted: &Wanted,
) -> Result<()> {
    let name = app.name().as_str();
    let Some((size, sha256)) = app.pinned_archive() else {
        bail!("{name}'s entry pins no archive hash: refused");
    };
    if size > wanted.max_size {
        bail!(
            "{name}'s archive is {size} bytes, over the limit of {} (--max-size)",
            wanted.max_size
        );
    }
    let location = source.locate(app.download_url(), policy)?;
    let layout = layout(state_dir.join("apps"), wanted.shortcut);

    // Consent, before anything is downloaded: what will run, as whom, and on whose word.
    let context = consent(app, &layout, source, signed);
    if !asker.confirm(&context, "Install it?", &format!("installing {name}"))? {
        bail!("{name} was not installed");
    }

    std::fs::create_dir_all(&layout.apps_root)
        .with_context(|| format!("could not create {}", layout.apps_root.display()))?;
    let archive = layout
        .apps_root
        .join(format!(".download-{name}-{}", std::process::id()));
    let bytes = download(&location, &archive, (size, sha256), policy, name)?;
    let installed = install::install(app, &archive, &layout, &wanted.limits);
    let _ = std::fs::remove_file(&archive);
    let installed = installed.with_context(|| format!("{name} was not installed"))?;
    let recorded = ask(
        state_dir,
        Command::AppAdd {
            kind: "tout-en-un".into(),
            name: name.to_owned(),
            folder: installed.data.clone(),
            app_dir: Some(installed.dir.clone()),
            config: app.to_json(),
        },
    )
    .and_then(app_of);
    let recorded = match recorded {
        Ok(app) => app,
        Err(e) => {
            // Roll back: the files are of no use without the record.
            let keep = state_dir.join("apps-data").join(name);
            let _ = install::remove(app, &layout, &keep);
            return Err(e.context(format!("{name} was not installed")));
        }
    };
    println!(
        "installed {name} ({bytes} bytes, SHA-256 checked) in {}: syncing {} as task {}",
        installed.dir.display(),
        installed.data.display(),
        task_text(&recorded)
    );
    if let Some(shortcut) = installed.shortcut {
        println!("launcher: {}", shortcut.display());
    }
    Ok(())
}

/// What the person is asked before a tout-en-un app is downloaded: the app, its store and
/// the key that signed it, and each program of its archive that will run as them, and when.
fn consent(app: &ToutEnUn, layout: &Layout, source: &Source, signed: &SignedIndex) -> String {
    let name = app.name().as_str();
    let programs: Vec<String> = app
        .programs()
        .iter()
        .map(|(what, program)| {
            let when = match *what {
                "installer" => "now, to install it",
                "launcher" if layout.shortcuts.is_some() => {
                    "whenever it is started (from `qsync store launch` or its menu shortcut)"
                }
                "launcher" => "whenever it is started (`qsync store launch`)",
                _ => "when it is uninstalled",
            };
            format!("    {what} {}: {when}", program.as_str())
        })
        .collect();
    format!(
        "{name} ({}) from {}, signed by key {}.\nInstalling it lets these programs of its archive run as you:\n{}",
        shown(app.description().unwrap_or("no description")),
        source.id(),
        signed.key.fingerprint(),
        programs.join("\n")
    )
}

/// Download the archive at `location` to `archive`, checked against its pinned size and
/// SHA-256, with a progress bar; the bytes downloaded.
fn download(
    location: &Location,
    archive: &Path,
    (size, sha256): (u64, &str),
    policy: &Policy,
    name: &str,
) -> Result<u64> {
    let bar = indicatif::ProgressBar::new(size).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("downloading {name}"));
    let downloaded = Source::download(location, archive, size, sha256, policy, &mut |done, _| {
        bar.set_position(done);
    });
    bar.finish_and_clear();
    Ok(downloaded?)
}

pub(super) fn uninstall(state_dir: &Path, name: &str, force: bool) -> Result<()> {
    let app = get_app(state_dir, name)?;
    let tout = match app.kind.as_str() {
        "tout-en-un" => Some(ToutEnUn::from_json(&app.config)?),
        _ => None,
    };
    let apps_root = app
        .app_dir
        .as_ref()
        .and_then(|d| d.parent())
        .map_or_else(|| state_dir.join("apps"), Path::to_path_buf);
    let layout = layout(apps_root, true);
    if let Some(tout) = &tout {
        match install::run_uninstaller(tout, &layout) {
            Err(e) if !force => {
                return Err(anyhow::Error::from(e).context(format!(
                    "{name} was not uninstalled (use --force to go on anyway)"
                )))
            }
            Err(e) => eprintln!("warning: {e}; going on (--force)"),
            Ok(()) => {}
        }
    }
    // Stop syncing first, so that removing the files is not sent to other devices.
    ask(
        state_dir,
        Command::AppRemove {
            name: app.name.clone(),
        },
    )?;
    match &tout {
        Some(tout) => {
            let stamp = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs());
            let keep = state_dir.join("apps-data").join(format!("{name}-{stamp}"));
            let kept = install::remove(tout, &layout, &keep)?;
            println!("uninstalled {name}");
            if let Some(kept) = kept {
                println!("its data is kept in {}", kept.display());
            }
        }
        None => println!(
            "uninstalled {name}: {} is no longer synced (its files are untouched)",
            app.data_folder.display()
        ),
    }
    Ok(())
}

/// The installed apps, one per line.
pub fn installed(state_dir: &Path) -> Result<String> {
    let Reply::Apps { apps } = ask(state_dir, Command::AppList)? else {
        bail!("unexpected reply from the daemon to `app list`");
    };
    let lines: Vec<String> = apps
        .into_iter()
        .map(|a| Reply::App(a).to_string())
        .collect();
    Ok(if lines.is_empty() {
        "(no app installed)".into()
    } else {
        lines.join("\n")
    })
}

/// Start the installed tout-en-un app `name`.
pub fn launch(state_dir: &Path, name: &str) -> Result<String> {
    let app = get_app(state_dir, name)?;
    let (Some(dir), "tout-en-un") = (&app.app_dir, app.kind.as_str()) else {
        bail!("{name} is a grapin: start the app itself; QSync syncs its data");
    };
    let tout = ToutEnUn::from_json(&app.config)?;
    let child = install::launch(&tout, dir)?;
    Ok(format!("started {name} (process {})", child.id()))
}
