//! `qsync daemon`: the settings (config file, then flags), the engine started, the HTTP
//! API and web UI beside it, and the process's signals: SIGTERM and SIGINT stop it
//! gracefully, SIGHUP applies the config file's live settings. Under systemd
//! (`Type=notify`) it says when it is ready and when it stops.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use qsync_engine::control::{Command, Reply, Request};
use qsync_engine::{Daemon, DaemonConfig, DaemonHandle};

use crate::config::{self, Settings};

/// The file in the state folder where a running daemon's HTTP API listens (removed when it
/// stops).
pub const HTTP_ADDRESS_FILE: &str = "http.address";

/// `qsync daemon`'s flags: each, when given, wins over the config file's key of the same
/// name.
#[derive(Debug, Default, Clone, clap::Args)]
pub struct DaemonArgs {
    /// TCP port to listen on for other devices (config: port; default 7878).
    #[arg(long)]
    pub port: Option<u16>,
    /// Address to listen on (config: listen_ip; default 0.0.0.0).
    #[arg(long)]
    pub listen_ip: Option<IpAddr>,
    /// This device's human name (config: name; default: the host's name).
    #[arg(long)]
    pub name: Option<String>,
    /// Do not announce or browse with mDNS (link devices by address).
    #[arg(long)]
    pub no_mdns: bool,
    /// Where questions for the person are written (default: STATE_DIR/btf).
    #[arg(long)]
    pub btf_dir: Option<PathBuf>,
    /// Seconds a question to the person may wait for an answer (config: answer_timeout;
    /// default 600).
    #[arg(long)]
    pub answer_timeout: Option<u64>,
    /// Scan every task's folder whole this often, in seconds (0: never), to catch what the
    /// file system's notifications missed (config: rescan_every; default 60).
    #[arg(long, env = "QSYNC_RESCAN_EVERY")]
    pub rescan_every: Option<u64>,
    /// How much of the synced data, in percent, the copies kept as bases of patches may
    /// take in the state folder (at least 128 MiB; 0 keeps none; config: base_share;
    /// default 20). An edit of a file without one travels as a patch made from the other
    /// device's block signature of its version (rsync's exchange), or whole under 64 KiB.
    #[arg(long, value_parser = clap::value_parser!(u8).range(0..=100))]
    pub base_share: Option<u8>,
    /// Where the HTTP API and web UI listen, ADDRESS:PORT or `off` (config: http; default
    /// 127.0.0.1:8385).
    #[arg(long)]
    pub http: Option<String>,
}

impl DaemonArgs {
    /// `settings` with the flags given over them.
    fn over(&self, mut settings: Settings) -> Settings {
        if let Some(port) = self.port {
            settings.port = port;
        }
        if let Some(ip) = self.listen_ip {
            settings.listen_ip = ip;
        }
        if let Some(name) = &self.name {
            settings.name = name.clone();
        }
        if self.no_mdns {
            settings.mdns = false;
        }
        if let Some(timeout) = self.answer_timeout {
            settings.answer_timeout = timeout;
        }
        if let Some(every) = self.rescan_every {
            settings.rescan_every = every;
        }
        if let Some(share) = self.base_share {
            settings.base_share = share;
        }
        if let Some(http) = &self.http {
            settings.http = http.clone();
        }
        settings
    }
}

/// Run the daemon of `state_dir` with the config file at `config_path` until a signal
/// (or `qsync stop`) stops it.
pub fn run(state_dir: &Path, config_path: &Path, args: DaemonArgs) -> Result<()> {
    let settings = args.over(config::load_or_create(config_path)?);
    settings.check().context("the flags given")?;
    let http = settings.http_address()?;
    let engine_config = DaemonConfig {
        state_dir: state_dir.to_owned(),
        listen: SocketAddr::new(settings.listen_ip, settings.port),
        name: settings.name.clone(),
        mdns: settings.mdns,
        btf_dir: args
            .btf_dir
            .clone()
            .unwrap_or_else(|| state_dir.join("btf")),
        answer_timeout: Duration::from_secs(settings.answer_timeout),
        rescan_every: Duration::from_secs(settings.rescan_every),
        base_share: settings.base_share,
    };
    let daemon = Daemon::start(engine_config).context("the daemon could not start")?;
    // An earlier run's address (it may have died) is not this run's.
    let _ = std::fs::remove_file(state_dir.join(HTTP_ADDRESS_FILE));
    if let Some(address) = http {
        start_http(&daemon, state_dir, &settings, address, args.http.is_some())?;
    }
    listen_for_signals(&daemon, config_path.to_owned(), args)?;
    // Under systemd's Type=notify: ready now (outside systemd this does nothing).
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Ready]);
    daemon.run();
    let _ = sd_notify::notify(false, &[sd_notify::NotifyState::Stopping]);
    // Ours only: another daemon may have started on the state folder since the lock went.
    if web_of(state_dir, std::process::id()).is_some() {
        let _ = std::fs::remove_file(state_dir.join(HTTP_ADDRESS_FILE));
    }
    Ok(())
}

/// The HTTP API and web UI. An address chosen (by flag) that cannot be had stops the
/// start; the default one, taken by another daemon on this machine, is only warned of.
fn start_http(
    daemon: &Daemon,
    state_dir: &Path,
    settings: &Settings,
    address: SocketAddr,
    chosen: bool,
) -> Result<()> {
    let mut config = qsync_http::HttpConfig::new(state_dir.to_owned(), settings.name.clone());
    config.listen = address;
    config.allow_remote = settings.http_allow_remote;
    let handle = daemon.handle();
    let feed = handle.feed().clone();
    let deliver = move |request| handle.request(request);
    match qsync_http::serve(&daemon.runtime(), config, deliver, feed) {
        Ok(server) => {
            println!(
                "web UI at http://{}/ (qsync web prints a login address)",
                server.address
            );
            // Where `qsync web` finds it, whatever chose it (flag, config file, default),
            // with this process's id and the run's login secret: only its person reads it
            // (0600, in the state folder), and a file left by a daemon that died is known
            // by its pid.
            write_private(
                &state_dir.join(HTTP_ADDRESS_FILE),
                &format!(
                    "{}\n{}\n{}\n",
                    server.address,
                    std::process::id(),
                    server.login_secret
                ),
            )
        }
        Err(e @ qsync_http::HttpError::Bind(..))
            if !chosen && settings.http == qsync_http::DEFAULT_ADDRESS =>
        {
            tracing::warn!("{e}; the daemon runs without it");
            eprintln!("warning: {e}; the daemon runs without it");
            Ok(())
        }
        Err(e) => Err(e).context("the HTTP API could not start"),
    }
}

/// Write `text` to `path`, readable by this user only (a new file renamed over the old).
fn write_private(path: &Path, text: &str) -> Result<()> {
    use std::io::Write;
    let folder = path.parent().unwrap_or(Path::new("."));
    let mut file = tempfile::Builder::new()
        .permissions(std::os::unix::fs::PermissionsExt::from_mode(0o600))
        .tempfile_in(folder)
        .with_context(|| format!("could not write in {}", folder.display()))?;
    file.write_all(text.as_bytes())
        .with_context(|| format!("could not write in {}", folder.display()))?;
    file.persist(path)
        .with_context(|| format!("could not write {}", path.display()))?;
    Ok(())
}

/// The running daemon's web UI, from `http.address`: its address and login secret, if
/// the daemon that wrote it is the one running (`pid`).
pub fn web_of(state_dir: &Path, pid: u32) -> Option<(SocketAddr, String)> {
    let text = std::fs::read_to_string(state_dir.join(HTTP_ADDRESS_FILE)).ok()?;
    let mut lines = text.lines();
    let address = lines.next()?.parse().ok()?;
    let writer: u32 = lines.next()?.parse().ok()?;
    let secret = lines.next()?.to_owned();
    (writer == pid).then_some((address, secret))
}

/// SIGTERM and SIGINT stop the daemon gracefully (a second one ends the process at once);
/// SIGHUP reads the config file again and applies what can change live, the flags given
/// at start still winning.
fn listen_for_signals(daemon: &Daemon, config_path: PathBuf, args: DaemonArgs) -> Result<()> {
    use tokio::signal::unix::{signal, SignalKind};
    let runtime = daemon.runtime();
    let _guard = runtime.enter();
    let mut term = signal(SignalKind::terminate()).context("could not listen for SIGTERM")?;
    let mut int = signal(SignalKind::interrupt()).context("could not listen for SIGINT")?;
    let mut hup = signal(SignalKind::hangup()).context("could not listen for SIGHUP")?;
    let handle = daemon.handle();
    runtime.spawn(async move {
        let mut stopping = false;
        loop {
            tokio::select! {
                _ = term.recv() => {}
                _ = int.recv() => {}
                _ = hup.recv() => {
                    reload(&handle, &config_path, &args).await;
                    continue;
                }
            }
            if stopping {
                tracing::warn!("a second signal: ending now");
                std::process::exit(130);
            }
            stopping = true;
            tracing::info!("stopping: a signal asked for it");
            handle.stop();
        }
    });
    Ok(())
}

/// SIGHUP: the config file's live settings (with the flags over them), to the engine.
async fn reload(handle: &DaemonHandle, config_path: &Path, args: &DaemonArgs) {
    let settings = match config::load(config_path) {
        Ok(settings) => args.over(settings),
        Err(e) => {
            tracing::warn!("SIGHUP: the config file was not applied: {e:#}");
            return;
        }
    };
    let (reply, answer) = tokio::sync::oneshot::channel();
    if handle.request(Request::Command(live(&settings), reply)) {
        match answer.await {
            Ok(Reply::Error { message }) => tracing::warn!("SIGHUP: {message}"),
            Ok(reply) => tracing::info!("SIGHUP: {reply}"),
            Err(_) => {}
        }
    }
}

/// The command that applies `settings`' live part.
pub fn live(settings: &Settings) -> Command {
    Command::Configure {
        rescan_every: Some(settings.rescan_every),
    }
}
