//! `qsync store ...`: the Magasin from the command line. Reading stores and installing files
//! is done here with `qsync-magasin` and `qsync-apps`; recording apps and syncing their data
//! folders is asked of the running daemon.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use qsync_apps::install::{self, Layout};
use qsync_apps::{current_username, resolve, Grapin, Platform, ResolveContext, ToutEnUn};
use qsync_engine::control::{AppInfo, Command, Reply};
use qsync_magasin::{Entry, Source};

use crate::ask;

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The store: http(s)://HOST[:PORT]/PATH, file:///PATH or a folder holding index.json.
    #[arg(long, global = true, env = "QSYNC_STORE")]
    store: Option<String>,

    #[command(subcommand)]
    command: StoreCommand,
}

#[derive(Debug, Subcommand)]
enum StoreCommand {
    /// List every app the store offers.
    List,
    /// List the store's apps whose name or description holds TERM.
    Search {
        /// Text to look for (case does not matter).
        term: String,
    },
    /// Install an app from the store and sync its data folder.
    Install {
        /// The app's name.
        name: String,
        /// Largest download accepted, in bytes (unpacked: four times this).
        #[arg(long, default_value_t = 2 << 30)]
        max_size: u64,
        /// Do not write a launcher shortcut (.desktop file).
        #[arg(long)]
        no_shortcut: bool,
    },
    /// Uninstall an app: stop syncing its data, remove a tout-en-un app's files (its data is
    /// kept aside). A grapin's data folder is never touched.
    Uninstall {
        /// The app's name.
        name: String,
        /// Go on even if the app's uninstaller fails.
        #[arg(long)]
        force: bool,
    },
    /// List the apps installed on this device.
    Installed,
    /// Start an installed tout-en-un app.
    Launch {
        /// The app's name.
        name: String,
    },
    /// Serve a store folder (holding index.json and the apps' archives) over HTTP.
    Serve {
        /// The folder.
        dir: PathBuf,
        /// Address to listen on.
        #[arg(long, default_value = "127.0.0.1:7879")]
        listen: SocketAddr,
    },
}

/// Run one `qsync store` command.
pub fn run(state_dir: &Path, args: StoreArgs) -> Result<()> {
    let source = || -> Result<Source> {
        let Some(address) = args.store.as_deref() else {
            bail!("no store given: pass --store ADDRESS or set QSYNC_STORE");
        };
        Ok(Source::parse(address)?)
    };
    match args.command {
        StoreCommand::List => list(&source()?, ""),
        StoreCommand::Search { term } => list(&source()?, &term),
        StoreCommand::Install {
            name,
            max_size,
            no_shortcut,
        } => install_app(state_dir, &source()?, &name, max_size, no_shortcut),
        StoreCommand::Uninstall { name, force } => uninstall(state_dir, &name, force),
        StoreCommand::Installed => {
            println!("{}", installed(state_dir)?);
            Ok(())
        }
        StoreCommand::Launch { name } => {
            println!("{}", launch(state_dir, &name)?);
            Ok(())
        }
        StoreCommand::Serve { dir, listen } => serve(&dir, listen),
    }
}

fn list(source: &Source, term: &str) -> Result<()> {
    let index = source.index()?;
    let mut shown = 0;
    for entry in index.search(term) {
        shown += 1;
        let platforms = match entry {
            Entry::Grapin(g) => {
                let names: Vec<String> = g.platforms().iter().map(ToString::to_string).collect();
                format!(" [{}]", names.join(", "))
            }
            Entry::ToutEnUn(_) => String::new(),
        };
        println!(
            "{:<24} {:<10}{platforms} {}",
            entry.name(),
            entry.kind(),
            entry.description().unwrap_or("")
        );
    }
    if shown == 0 {
        println!("(no app{})", if term.is_empty() { "" } else { " matches" });
    }
    for rejected in &index.rejected {
        eprintln!(
            "warning: the store's {} was skipped: {}",
            rejected.at, rejected.problem
        );
    }
    Ok(())
}

/// The app in a reply the daemon gives to app commands.
fn app_of(reply: Reply) -> Result<AppInfo> {
    match reply {
        Reply::App(app) => Ok(app),
        other => bail!("unexpected reply from the daemon: {other}"),
    }
}

fn get_app(state_dir: &Path, name: &str) -> Result<AppInfo> {
    app_of(ask(
        state_dir,
        Command::AppGet {
            name: name.to_owned(),
        },
    )?)
}

/// The task of an app, for messages.
fn task_text(app: &AppInfo) -> String {
    app.task.map_or_else(|| "-".to_owned(), |t| t.to_string())
}

fn layout(apps_root: PathBuf, shortcuts: bool) -> Layout {
    Layout {
        apps_root,
        shortcuts: shortcuts
            .then(directories::BaseDirs::new)
            .flatten()
            .map(|d| d.data_dir().join("applications")),
    }
}

fn install_app(
    state_dir: &Path,
    source: &Source,
    name: &str,
    max_size: u64,
    no_shortcut: bool,
) -> Result<()> {
    // The daemon records the app and syncs it: make sure it is there before doing anything.
    ask(state_dir, Command::Id)
        .context("installing an app needs the QSync daemon (`qsync daemon`)")?;
    if get_app(state_dir, name).is_ok() {
        bail!("{name} is already installed (see `qsync store installed`)");
    }
    let index = source.index()?;
    let Some(entry) = index.find(name) else {
        bail!(
            "the store at {} has no app named {name} (see `qsync store list`)",
            source.index_location()
        );
    };
    match entry {
        Entry::Grapin(grapin) => install_grapin(state_dir, grapin),
        Entry::ToutEnUn(app) => install_tout_en_un(state_dir, source, app, max_size, no_shortcut),
    }
}

fn install_grapin(state_dir: &Path, grapin: &Grapin) -> Result<()> {
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
        home,
    };
    let found = resolve(template, &ctx)?;
    for choice in &found.choices {
        let others: Vec<&String> = choice
            .candidates
            .iter()
            .filter(|c| **c != choice.chosen)
            .collect();
        println!(
            "{}: `{}` in {} is `{}`{}",
            name,
            choice.pattern,
            choice.parent.display(),
            choice.chosen,
            if others.is_empty() {
                String::new()
            } else {
                format!(
                    " (also there: {})",
                    others
                        .iter()
                        .map(|s| s.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            }
        );
    }
    if !found.path.is_dir() {
        bail!(
            "{name}'s data folder {} does not exist; start {name} once so that it creates it, then install again",
            found.path.display()
        );
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
    app: &ToutEnUn,
    max_size: u64,
    no_shortcut: bool,
) -> Result<()> {
    let name = app.name().as_str();
    let layout = layout(state_dir.join("apps"), !no_shortcut);
    let location = source.locate(app.download_url())?;
    std::fs::create_dir_all(&layout.apps_root)
        .with_context(|| format!("could not create {}", layout.apps_root.display()))?;
    let archive = layout
        .apps_root
        .join(format!(".download-{name}-{}", std::process::id()));
    let bar = indicatif::ProgressBar::new(0).with_style(
        indicatif::ProgressStyle::with_template(
            "{msg} {bar:30} {bytes}/{total_bytes} {bytes_per_sec}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    bar.set_message(format!("downloading {name}"));
    let downloaded = Source::download(&location, &archive, max_size, &mut |done, total| {
        if let Some(total) = total {
            bar.set_length(total);
        }
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let bytes = downloaded?;
    let installed = install::install(app, &archive, &layout, max_size.saturating_mul(4));
    let _ = std::fs::remove_file(&archive);
    let installed = installed?;
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
        "installed {name} ({bytes} bytes) in {}: syncing {} as task {}",
        installed.dir.display(),
        installed.data.display(),
        task_text(&recorded)
    );
    if let Some(shortcut) = installed.shortcut {
        println!("launcher: {}", shortcut.display());
    }
    Ok(())
}

fn uninstall(state_dir: &Path, name: &str, force: bool) -> Result<()> {
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

fn serve(dir: &Path, listen: SocketAddr) -> Result<()> {
    let index = dir.join("index.json");
    let text = std::fs::read_to_string(&index).with_context(|| {
        format!(
            "a store folder needs an index.json; could not read {}",
            index.display()
        )
    })?;
    let checked = qsync_magasin::Index::parse(&text, &index.display().to_string())?;
    for rejected in &checked.rejected {
        eprintln!(
            "warning: {} will be skipped by clients: {}",
            rejected.at, rejected.problem
        );
    }
    let runtime = tokio::runtime::Runtime::new().context("could not start the runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("could not listen on {listen}"))?;
        let addr = listener.local_addr()?;
        println!(
            "serving {} ({} apps) at http://{addr}/",
            dir.display(),
            checked.entries.len()
        );
        use std::io::Write;
        std::io::stdout().flush()?;
        tokio::select! {
            result = qsync_magasin::serve(dir.to_owned(), listener) => result.context("the store server stopped"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
