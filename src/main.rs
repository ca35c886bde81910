//! The `qsync` binary: parses arguments and wires QSync's crates together.
//!
//! The sync daemon, the terminal menu and the task subcommands arrive with the engine
//! (issue 7). What works today: `qsync discover`, which announces this device on the
//! network and lists the QSync devices it finds (the menu's "[4] list QSync devices").

use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use qsync_base::DeviceId;
use qsync_discovery::{Config, Discovery, DiscoveryEvent, Responder};

/// QSync keeps folders in sync, in real time, between your own devices on the same network.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// More log output (-v: debug, -vv: trace).
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Announce this device over mDNS and print the QSync devices found and lost, one per line
    /// (`me ID`, `found ID NAME ADDR,...`, `lost ID`).
    Discover {
        /// TCP port to announce and answer probes on.
        #[arg(long, default_value_t = 7878)]
        port: u16,
        /// Human name to announce.
        #[arg(long, default_value = "qsync")]
        name: String,
        /// Device id to use (default: a random one).
        #[arg(long)]
        device_id: Option<DeviceId>,
        /// Stop after this many seconds (default: run until interrupted).
        #[arg(long)]
        seconds: Option<u64>,
        /// Seconds of silence after which a device is reported lost.
        #[arg(long, default_value_t = 30)]
        expiry: u64,
        /// Seconds between probes of known devices.
        #[arg(long, default_value_t = 10)]
        probe_interval: u64,
        /// Also probe this device by address (for networks without multicast); repeatable.
        #[arg(long = "peer")]
        peers: Vec<SocketAddr>,
    },
    /// Make a new random device id and print it.
    NewId,
    /// Print the version and the protocol version this build speaks.
    Version,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "warn",
        1 => "info,qsync=debug",
        _ => "debug",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();

    match cli.command {
        Some(Command::Discover {
            port,
            name,
            device_id,
            seconds,
            expiry,
            probe_interval,
            peers,
        }) => discover(
            port,
            name,
            device_id.unwrap_or_else(DeviceId::random),
            seconds,
            expiry,
            probe_interval,
            peers,
        ),
        Some(Command::NewId) => {
            println!("{}", DeviceId::random());
            Ok(())
        }
        Some(Command::Version) => {
            println!(
                "qsync {} (protocol {})",
                env!("CARGO_PKG_VERSION"),
                qsync_wire::PROTOCOL_VERSION
            );
            Ok(())
        }
        None => {
            println!(
                "QSync {}: the sync daemon and the terminal menu are not built yet (see the open issues).\n\
                 Try `qsync discover` to see the QSync devices on your network, or `qsync --help`.",
                env!("CARGO_PKG_VERSION")
            );
            Ok(())
        }
    }
}

fn discover(
    port: u16,
    name: String,
    device: DeviceId,
    seconds: Option<u64>,
    expiry: u64,
    probe_interval: u64,
    peers: Vec<SocketAddr>,
) -> Result<()> {
    let responder = Responder::bind(SocketAddr::from((Ipv4Addr::UNSPECIFIED, port)), device)
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
