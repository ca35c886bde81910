//! The `qsync` binary: parses arguments and wires QSync's crates together.
//!
//! The daemon, the terminal menu and the scriptable subcommands arrive with the engine
//! (issue 7); for now the binary shows what this build can do.

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    /// Make a new random device id and print it.
    NewId,
    /// Print the protocol version this build speaks.
    Version,
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let level = match cli.verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| level.into()),
        )
        .with_writer(std::io::stderr)
        .init();

    match cli.command {
        Some(Command::NewId) => println!("{}", qsync_base::DeviceId::random()),
        Some(Command::Version) => println!(
            "qsync {} (protocol {})",
            env!("CARGO_PKG_VERSION"),
            qsync_wire::PROTOCOL_VERSION
        ),
        None => {
            println!(
                "QSync {}: the sync daemon and the terminal menu are not built yet (see the open issues).\n\
                 Try `qsync --help`.",
                env!("CARGO_PKG_VERSION")
            );
        }
    }
    Ok(())
}
