//! `qsync store ...`: the Magasin from the command line. Making, signing and serving stores,
//! reading them and installing files are done here with `qsync-magasin` and `qsync-apps`;
//! recording apps and syncing their data folders is asked of the running daemon.
//!
//! Nothing from a store is trusted until proven: its index must be signed by the key pinned
//! for it (the first use asks the person to confirm the key's fingerprint), every archive
//! must match the size and SHA-256 its signed entry gives, and no installer or launcher is
//! set up to run, nor a grapin folder of secrets synced, until the person agrees. With no
//! terminal to ask on, only `--yes` agrees.

use std::io::{BufRead, IsTerminal, Write};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use clap::Subcommand;
use qsync_apps::archive::Limits;
use qsync_engine::control::{AppInfo, Command, Reply};
use qsync_magasin::{Admission, Described, Entry, Policy, PublicKey, SignedIndex, Source, Trust};

use crate::ask;

mod installs;

use installs::{install_app, uninstall, Wanted};
pub use installs::{installed, launch};

#[derive(Debug, clap::Args)]
pub struct StoreArgs {
    /// The store: https://HOST[:PORT]/PATH, file:///PATH or a folder holding index.json.
    #[arg(long, global = true, env = "QSYNC_STORE")]
    store: Option<String>,

    /// Allow plain http stores and downloads. Signatures and hashes are still checked, but
    /// anyone on the way sees what you install.
    #[arg(long, global = true)]
    insecure_http: bool,

    /// Answer yes to every confirmation (trusting a store's key, letting an app's programs
    /// run, syncing a folder of secrets). For scripts that already checked what they accept.
    #[arg(long, global = true)]
    yes: bool,

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
        /// Largest download accepted, in bytes.
        #[arg(long, default_value_t = 2 << 30)]
        max_size: u64,
        /// Largest unpacked size accepted, in bytes.
        #[arg(long, default_value_t = 8 << 30)]
        max_unpacked: u64,
        /// Most files and folders an archive may hold.
        #[arg(long, default_value_t = Limits::default().max_entries)]
        max_entries: u64,
        /// Do not write a launcher shortcut (.desktop file).
        #[arg(long)]
        no_shortcut: bool,
        /// The longest the download may take, in seconds.
        #[arg(long, default_value_t = 1800)]
        timeout: u64,
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
    /// Trust a store: show its publisher key's fingerprint and pin the key once you confirm
    /// (or at once if --fingerprint matches).
    Trust {
        /// The store (else --store).
        url: Option<String>,
        /// The fingerprint the publisher gave you: the key is pinned only if it matches.
        #[arg(long)]
        fingerprint: Option<String>,
    },
    /// Forget a store's pinned key (the next use asks again).
    Forget {
        /// The store (else --store).
        url: Option<String>,
    },
    /// List the stores this device trusts, with their keys' fingerprints.
    Trusted,
    /// Make a new store folder and its publisher key.
    Init {
        /// The store folder (new or empty).
        dir: PathBuf,
        /// Where to write the publisher key (default: DIR.key beside the folder). Keep it
        /// secret and out of what you publish.
        #[arg(long)]
        key: Option<PathBuf>,
    },
    /// Add (or replace) an app in a store folder; run `qsync store sign` afterwards.
    Add {
        /// The store folder.
        dir: PathBuf,
        /// The app's archive (.tar.gz or .zip), for a tout-en-un app.
        archive: Option<PathBuf>,
        /// A tout-en-un app's description (JSON, ToutEnUnConfig fields).
        #[arg(long, conflicts_with = "grapin", requires = "archive")]
        config: Option<PathBuf>,
        /// A grapin's description (JSON, GrapinConfig fields).
        #[arg(long)]
        grapin: Option<PathBuf>,
    },
    /// Sign a store folder's index with its publisher key.
    Sign {
        /// The store folder.
        dir: PathBuf,
        /// The publisher key (default: DIR.key beside the folder).
        #[arg(long)]
        key: Option<PathBuf>,
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

/// How the person is asked, and what they said up front.
struct Asker {
    yes: bool,
}

impl Asker {
    /// Ask `question` (after `context` was shown). `--yes` answers yes; with no terminal to
    /// ask on, the answer is an error naming what needed consent.
    fn confirm(&self, context: &str, question: &str, what: &str) -> Result<bool> {
        eprintln!("{context}");
        if self.yes {
            eprintln!("{question} yes (--yes)");
            return Ok(true);
        }
        if !std::io::stdin().is_terminal() {
            bail!("{what} needs your confirmation, and nobody can answer here (no terminal): run it in a terminal, or pass --yes if you accept it");
        }
        eprint!("{question} [y/N] ");
        std::io::stderr().flush()?;
        let mut answer = String::new();
        std::io::stdin().lock().read_line(&mut answer)?;
        Ok(matches!(answer.trim(), "y" | "Y" | "yes" | "Yes" | "YES"))
    }
}

/// A store-supplied text made safe to print: control characters (newlines, escape
/// sequences that could rewrite the screen and fake a question) shown as `\u{..}`.
fn shown(text: &str) -> String {
    text.chars()
        .map(|c| {
            if c.is_control() {
                c.escape_unicode().to_string()
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// The same, keeping line breaks (for messages of several lines).
fn shown_lines(text: &str) -> String {
    text.split('\n').map(shown).collect::<Vec<_>>().join("\n")
}

fn trust_file(state_dir: &Path) -> PathBuf {
    state_dir.join("magasin-trust.json")
}

/// Where a store folder's publisher key goes when none is named: in this device's state
/// folder, which is never served.
fn default_key(state_dir: &Path, dir: &Path) -> PathBuf {
    qsync_magasin::default_key_path(&state_dir.join("store-keys"), dir)
}

/// Run one `qsync store` command. Its error, which may quote a store's text, is made safe to
/// print.
pub fn run(state_dir: &Path, args: StoreArgs, json: bool) -> Result<()> {
    run_command(state_dir, args, json).map_err(|e| anyhow::anyhow!(shown_lines(&format!("{e:#}"))))
}

fn run_command(state_dir: &Path, args: StoreArgs, json: bool) -> Result<()> {
    let store = args.store.clone();
    let source = |given: Option<String>| -> Result<Source> {
        let Some(address) = given.or_else(|| store.clone()) else {
            bail!("no store given: pass --store ADDRESS or set QSYNC_STORE");
        };
        Ok(Source::parse(&address)?)
    };
    let mut policy = Policy {
        insecure_http: args.insecure_http,
        timeout: Duration::from_secs(60),
    };
    let asker = Asker { yes: args.yes };
    match args.command {
        StoreCommand::List => list(state_dir, &source(None)?, &policy, ("", json)),
        StoreCommand::Search { term } => list(state_dir, &source(None)?, &policy, (&term, json)),
        StoreCommand::Install {
            name,
            max_size,
            max_unpacked,
            max_entries,
            no_shortcut,
            timeout,
        } => {
            let source = source(None)?;
            let signed = open_store(state_dir, &source, &policy)?;
            policy.timeout = Duration::from_secs(timeout);
            let limits = Limits {
                max_entries,
                max_bytes: max_unpacked,
                ..Limits::default()
            };
            let wanted = Wanted {
                max_size,
                limits,
                shortcut: !no_shortcut,
            };
            install_app(state_dir, &source, &signed, &policy, &asker, &name, &wanted)
        }
        StoreCommand::Uninstall { name, force } => uninstall(state_dir, &name, force),
        StoreCommand::Installed => {
            println!("{}", installed(state_dir)?);
            Ok(())
        }
        StoreCommand::Launch { name } => {
            println!("{}", launch(state_dir, &name)?);
            Ok(())
        }
        StoreCommand::Trust { url, fingerprint } => trust(
            state_dir,
            &source(url)?,
            &policy,
            &asker,
            fingerprint.as_deref(),
        ),
        StoreCommand::Forget { url } => forget(state_dir, url, source),
        StoreCommand::Trusted => trusted(state_dir),
        StoreCommand::Init { dir, key } => init(state_dir, &dir, key),
        StoreCommand::Add {
            dir,
            archive,
            config,
            grapin,
        } => add(&dir, archive, config, grapin),
        StoreCommand::Sign { dir, key } => sign(state_dir, &dir, key),
        StoreCommand::Serve { dir, listen } => serve(&dir, listen),
    }
}

/// `qsync store forget`: drop the key pinned for a store (named as `qsync store trusted`
/// lists it, or by any of its addresses).
fn forget(
    state_dir: &Path,
    url: Option<String>,
    source: impl Fn(Option<String>) -> Result<Source>,
) -> Result<()> {
    let mut trust = Trust::load(&trust_file(state_dir))?;
    // As `qsync store trusted` lists it, or any address of the store.
    if let Some(id) = url.as_deref().filter(|id| trust.pinned(id).is_some()) {
        trust.forget(id);
        trust.save()?;
        println!("forgot the key of {id}");
        return Ok(());
    }
    let source = source(url)?;
    if trust.forget(&source.id()) {
        trust.save()?;
        println!("forgot the key of {}", source.id());
    } else {
        println!("{} was not trusted", source.id());
    }
    Ok(())
}

/// `qsync store trusted`: the stores whose keys are pinned here.
fn trusted(state_dir: &Path) -> Result<()> {
    let trust = Trust::load(&trust_file(state_dir))?;
    let stores = trust.stores();
    if stores.is_empty() {
        println!("(no store trusted)");
    }
    for (store, key) in stores {
        let fingerprint = key.map_or_else(|| "(damaged)".into(), |k| k.fingerprint());
        println!("{store}  {fingerprint}");
    }
    Ok(())
}

/// `qsync store init`: make a store folder and its publisher key.
fn init(state_dir: &Path, dir: &Path, key: Option<PathBuf>) -> Result<()> {
    let key = key.unwrap_or_else(|| default_key(state_dir, dir));
    let public = qsync_magasin::init_store(dir, &key)?;
    println!(
        "made the store {} and its publisher key {} (keep it secret, out of what you publish)",
        dir.display(),
        key.display()
    );
    println!("publisher key fingerprint: {}", public.fingerprint());
    println!(
        "give it to the people who will use this store; they check it with `qsync store trust`"
    );
    Ok(())
}

/// `qsync store add`: describe an app in a store folder (its index unsigned until signed).
fn add(
    dir: &Path,
    archive: Option<PathBuf>,
    config: Option<PathBuf>,
    grapin: Option<PathBuf>,
) -> Result<()> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).with_context(|| format!("could not read {}", path.display()))
    };
    let described = match (config, grapin, archive) {
        (Some(config), None, Some(archive)) => Described::ToutEnUn {
            json: read(&config)?,
            archive,
        },
        (None, Some(grapin), None) => Described::Grapin {
            json: read(&grapin)?,
        },
        (None, Some(_), Some(_)) => bail!("a grapin has no archive"),
        _ => bail!("give ARCHIVE --config app.json for a tout-en-un app, or --grapin grapin.json"),
    };
    let added = qsync_magasin::add_app(dir, described)?;
    let verb = if added.replaced { "replaced" } else { "added" };
    match added.archive {
        Some((file, size, sha256)) => println!(
            "{verb} {}: {file}, {size} bytes, SHA-256 {sha256}",
            added.name
        ),
        None => println!("{verb} {}", added.name),
    }
    println!(
        "the index is unsigned until you run `qsync store sign {}`",
        dir.display()
    );
    Ok(())
}

/// `qsync store sign`: sign a store folder's index with its publisher key.
fn sign(state_dir: &Path, dir: &Path, key: Option<PathBuf>) -> Result<()> {
    let key = key.unwrap_or_else(|| default_key(state_dir, dir));
    let signed = qsync_magasin::sign_store(dir, &key)?;
    println!(
        "signed {} ({} apps, sequence {}) with key {}",
        dir.display(),
        signed.entries,
        signed.sequence,
        signed.key.fingerprint()
    );
    if let Some(before) = signed.other_key_before {
        eprintln!("warning: it was signed by another key before ({}): clients that trust that key will refuse this index until they forget it and trust the new one", before.fingerprint());
    }
    Ok(())
}

/// Read `source`'s signed index and hold it against the key pinned for it; the first use of
/// a store asks the person about its key.
fn open_store(state_dir: &Path, source: &Source, policy: &Policy) -> Result<SignedIndex> {
    let signed = source.signed_index(policy)?;
    let id = source.id();
    let mut trust = Trust::load(&trust_file(state_dir))?;
    match trust.admit(&id, &signed)? {
        Admission::Pinned => {
            if trust.saw(&id, &signed) {
                trust.save()?;
            }
        }
        Admission::FirstUse => {
            // `--yes` agrees to what this command does, not to a key nobody looked at: with
            // nobody at a terminal, a new store is trusted only by `qsync store trust`.
            if !std::io::stdin().is_terminal() {
                bail!(
                    "{id} is not trusted yet, and nobody can confirm its key here (no terminal). Its index is signed by key {}: check that with its publisher, then run `qsync store trust {} --fingerprint \"{}\"`",
                    signed.key.fingerprint(),
                    source.index_location(),
                    signed.key.fingerprint()
                );
            }
            let asker = Asker { yes: false };
            let context = format!(
                "The store {id} is new to this device. Its index is signed by the publisher key\n    {}\nCompare it with the fingerprint its publisher gave you (`qsync store init` printed it).",
                signed.key.fingerprint()
            );
            if !asker.confirm(&context, "Trust this store's key?", "trusting a new store")? {
                bail!("{id} is not trusted: nothing was done");
            }
            trust.pin(&id, &signed.key, signed.index.sequence);
            trust.save()?;
            eprintln!("trusted {id} (key {})", signed.key.fingerprint());
        }
    }
    for rejected in &signed.index.rejected {
        eprintln!(
            "warning: the store's {} was skipped: {}",
            rejected.at,
            shown(&rejected.problem)
        );
    }
    Ok(signed)
}

fn trust(
    state_dir: &Path,
    source: &Source,
    policy: &Policy,
    asker: &Asker,
    fingerprint: Option<&str>,
) -> Result<()> {
    let signed = source.signed_index(policy)?;
    let id = source.id();
    let mut trust = Trust::load(&trust_file(state_dir))?;
    if trust.admit(&id, &signed)? == Admission::Pinned {
        if let Some(given) = fingerprint {
            if !signed.key.matches_fingerprint(given) {
                bail!(
                    "{id} is trusted with key {}, not {given}: someone may have been in the middle when it was first trusted; check with the publisher, then `qsync store forget {}`",
                    signed.key.fingerprint(),
                    source.index_location()
                );
            }
        }
        println!("{id} is already trusted (key {})", signed.key.fingerprint());
        return Ok(());
    }
    let key: &PublicKey = &signed.key;
    match fingerprint {
        Some(given) if key.matches_fingerprint(given) => {}
        Some(given) => bail!(
            "{id} is signed by key {}, not {given}: not trusted. Someone may be in the middle; check with the publisher",
            key.fingerprint()
        ),
        None => {
            let context = format!(
                "{id} is signed by the publisher key\n    {}\nCompare it with the fingerprint its publisher gave you.",
                key.fingerprint()
            );
            if !asker.confirm(&context, "Trust this store's key?", "trusting a store")? {
                bail!("{id} is not trusted");
            }
        }
    }
    trust.pin(&id, key, signed.index.sequence);
    trust.save()?;
    println!("trusted {id} (key {})", key.fingerprint());
    Ok(())
}

/// `store list` and `store search TERM`: a line per app, or with `--json` one object
/// `{"apps": [{"name", "kind", "platforms", "description"}]}`.
fn list(
    state_dir: &Path,
    source: &Source,
    policy: &Policy,
    (term, json): (&str, bool),
) -> Result<()> {
    let index = open_store(state_dir, source, policy)?.index;
    let mut apps = Vec::new();
    for entry in index.search(term) {
        let platforms: Vec<String> = match entry {
            Entry::Grapin(g) => g.platforms().iter().map(ToString::to_string).collect(),
            Entry::ToutEnUn(_) => Vec::new(),
        };
        let description = entry.description().unwrap_or("");
        if json {
            apps.push(serde_json::json!({
                "name": entry.name(), "kind": entry.kind(), "platforms": platforms, "description": description,
            }));
            continue;
        }
        let platforms = match platforms.is_empty() {
            true => String::new(),
            false => format!(" [{}]", platforms.join(", ")),
        };
        println!(
            "{:<24} {:<10}{platforms} {}",
            entry.name(),
            entry.kind(),
            shown(description)
        );
        apps.push(serde_json::Value::Null);
    }
    if json {
        println!("{}", serde_json::json!({ "apps": apps }));
    } else if apps.is_empty() {
        println!("(no app{})", if term.is_empty() { "" } else { " matches" });
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

fn serve(dir: &Path, listen: SocketAddr) -> Result<()> {
    let index = dir.join("index.json");
    let bytes = std::fs::read(&index).with_context(|| {
        format!(
            "a store folder needs an index.json; could not read {}",
            index.display()
        )
    })?;
    let signature = std::fs::read(dir.join(qsync_magasin::SIGNATURE_FILE)).ok();
    let at = index.display().to_string();
    let signed = match SignedIndex::verify(&bytes, signature.as_deref(), &at) {
        Ok(signed) => Some(signed),
        Err(e) => {
            eprintln!("warning: clients will refuse this store: {e}");
            None
        }
    };
    if let Some(signed) = &signed {
        for rejected in &signed.index.rejected {
            eprintln!(
                "warning: {} will be skipped by clients: {}",
                rejected.at,
                shown(&rejected.problem)
            );
        }
    }
    let runtime = tokio::runtime::Runtime::new().context("could not start the runtime")?;
    runtime.block_on(async {
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("could not listen on {listen}"))?;
        let addr = listener.local_addr()?;
        match &signed {
            Some(signed) => println!(
                "serving {} ({} apps, sequence {}, key {}) at http://{addr}/",
                dir.display(),
                signed.index.entries.len(),
                signed.index.sequence,
                signed.key.fingerprint()
            ),
            None => println!("serving {} (unsigned) at http://{addr}/", dir.display()),
        }
        std::io::stdout().flush()?;
        tokio::select! {
            result = qsync_magasin::serve(dir.to_owned(), listener) => result.context("the store server stopped"),
            _ = tokio::signal::ctrl_c() => Ok(()),
        }
    })
}
