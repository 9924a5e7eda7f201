//! The `modelwatch` command line.

pub mod config;
mod floor;
mod paved;
mod run;
mod scan;
mod watch;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::publish::stdout::Output;

#[derive(Debug, Parser)]
#[command(
    name = "modelwatch",
    version,
    about = "Makes local AI inference visible: model files, runtimes, listeners."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the probes and print live events (needs root).
    Run(Box<run::RunArgs>),
    /// Print the event stream of a running sensor (over its Unix socket).
    Watch(watch::WatchArgs),
    /// Show a running sensor's hooks, backends and counters.
    Status(watch::StatusArgs),
    /// The configuration in effect and where each value came from.
    #[command(subcommand)]
    Config(Box<config::ConfigCommand>),
    /// Identify model files on disk by content (no root needed): format, metadata,
    /// license, SHA-256, provenance, pickle findings.
    Scan(scan::ScanArgs),
    /// The approved-model catalog.
    #[command(subcommand)]
    Policy(paved::PolicyCommand),
    /// A running sensor's models, runtimes, listeners and inference sessions, with
    /// their verdicts.
    Inventory(paved::InventoryArgs),
    /// The node's AI bill of materials (CycloneDX 1.6 JSON) from a running sensor.
    Bom(paved::BomArgs),
    /// Benchmarks only: attach do-nothing programs on the same hooks and wait.
    #[command(hide = true)]
    Floor,
}

/// Where a running sensor listens.
pub const DEFAULT_SOCKET: &str = "/run/modelwatch/modelwatch.sock";

#[derive(Debug, clap::Args)]
pub struct SocketArg {
    /// The sensor's gRPC Unix socket.
    #[arg(long, env = "MODELWATCH_SOCKET", default_value = DEFAULT_SOCKET)]
    pub socket: PathBuf,
}

/// Runs a parsed command line; returns the process exit code.
pub async fn dispatch(cli: Cli) -> i32 {
    match cli.command {
        Command::Run(args) => run::run(*args).await,
        Command::Watch(args) => watch::watch(args).await,
        Command::Status(args) => watch::status(args).await,
        Command::Config(command) => config::run(&command),
        Command::Floor => floor::run().await,
        Command::Policy(command) => paved::policy(&command),
        Command::Inventory(args) => paved::inventory(args).await,
        Command::Bom(args) => paved::bom(args).await,
        Command::Scan(args) => tokio::task::spawn_blocking(move || scan::run(&args)).await.unwrap_or(2),
    }
}

/// One line on stderr, the cause chain included.
pub fn report_error(error: &dyn std::error::Error) {
    report(error);
}

pub(crate) fn report(error: &dyn std::error::Error) {
    let mut message = format!("modelwatch: {error}");
    let mut source = error.source();
    while let Some(cause) = source {
        let text = cause.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = cause.source();
    }
    #[expect(clippy::print_stderr, reason = "the CLI's error line")]
    {
        eprintln!("{message}");
    }
}

pub(crate) fn default_output() -> Output {
    Output::Text
}
