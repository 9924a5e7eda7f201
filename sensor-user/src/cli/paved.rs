//! The paved road from the command line: `modelwatch policy check`, `modelwatch
//! inventory`, `modelwatch bom`.

use std::{fmt::Write as _, path::PathBuf};

use proto::v1::{Inventory, ListInventoryRequest, ModelFormat};

use super::SocketArg;
use crate::{
    policy::{CatalogError, Policy},
    publish::{bom, format::escape_controls, grpc, stdout},
};

#[derive(Debug, clap::Subcommand)]
pub enum PolicyCommand {
    /// Validate a catalog file: every error with its line and key; exit 0 when valid.
    Check {
        /// The catalog (TOML).
        file: PathBuf,
    },
}

#[derive(Debug, clap::Args)]
pub struct InventoryArgs {
    #[command(flatten)]
    socket: SocketArg,
    /// A table (`text`) or the `Inventory` message as JSON.
    #[arg(long, short, value_enum, default_value_t = super::default_output())]
    output: stdout::Output,
}

#[derive(Debug, clap::Args)]
pub struct BomArgs {
    #[command(flatten)]
    socket: SocketArg,
    /// Where to write the CycloneDX 1.6 JSON (default: stdout).
    #[arg(long, short)]
    output: Option<PathBuf>,
}

pub(super) fn policy(command: &PolicyCommand) -> i32 {
    let PolicyCommand::Check { file } = command;
    match Policy::load(file) {
        Ok(policy) => {
            let catalog = &policy.catalog;
            print_line(&format!(
                "{}: valid (version {}): {} models, {} signer keys; denied licenses {}; listener exposure {:?}; pickle {}",
                file.display(),
                catalog.version,
                catalog.models.len(),
                catalog.models.iter().map(|m| m.signers.len()).sum::<usize>(),
                catalog.policy.denied_licenses.len(),
                catalog.policy.listener_exposure,
                if catalog.policy.allow_pickle { "allowed" } else { "denied" },
            ));
            0
        }
        Err(CatalogError::Invalid { path, problems }) => {
            for problem in &problems {
                super::report(&std::io::Error::other(format!("{}: {problem}", path.display())));
            }
            2
        }
        Err(error) => {
            super::report(&error);
            2
        }
    }
}

async fn fetch(socket: &SocketArg) -> Result<Inventory, i32> {
    let mut client = match grpc::connect(&socket.socket).await {
        Ok(client) => client,
        Err(error) => return Err(super::watch::unreachable_sensor(&socket.socket, &error)),
    };
    match client.list_inventory(ListInventoryRequest {}).await {
        Ok(response) => Ok(response.into_inner().inventory.unwrap_or_default()),
        Err(status) => {
            super::report(&status);
            Err(1)
        }
    }
}

pub(super) async fn inventory(args: InventoryArgs) -> i32 {
    let inventory = match fetch(&args.socket).await {
        Ok(inventory) => inventory,
        Err(code) => return code,
    };
    match args.output {
        stdout::Output::Json | stdout::Output::Ocsf => {
            print_line(&serde_json::to_string(&inventory).unwrap_or_default());
        }
        stdout::Output::Text => print_line(&table(&inventory)),
        stdout::Output::None => {}
    }
    0
}

pub(super) async fn bom(args: BomArgs) -> i32 {
    let inventory = match fetch(&args.socket).await {
        Ok(inventory) => inventory,
        Err(code) => return code,
    };
    let document = serde_json::to_string_pretty(&bom::cyclonedx(&inventory)).unwrap_or_default();
    match &args.output {
        Some(path) => match std::fs::write(path, document + "\n") {
            Ok(()) => 0,
            Err(error) => {
                super::report(&error);
                1
            }
        },
        None => {
            print_line(&document);
            0
        }
    }
}

/// The inventory as readable tables.
fn table(inventory: &Inventory) -> String {
    let mut out = String::new();
    let catalog =
        if inventory.catalog_path.is_empty() { "none (built-in defaults)" } else { &inventory.catalog_path };
    let _ = writeln!(out, "node {}  catalog {catalog} {}", inventory.node, inventory.catalog_version);
    let _ = writeln!(
        out,
        "\nMODELS\n{:<20} {:<12} {:<24} {:<14} {:<10} PATH",
        "VERDICT", "FORMAT", "NAME", "SHA256", "SEEN"
    );
    for model in &inventory.models {
        let Some(file) = &model.file else { continue };
        let format = ModelFormat::try_from(file.format).unwrap_or_default();
        let verdict = file.verdict.as_ref().map_or("-".to_owned(), |v| {
            if v.provisional { format!("{}?", v.verdict) } else { v.verdict.clone() }
        });
        let name = file.metadata.as_ref().map_or("", |m| m.name.as_str());
        let sha = if file.sha256.is_empty() { "-" } else { &file.sha256[..12.min(file.sha256.len())] };
        let seen = if model.at_rest { "at rest".to_owned() } else { format!("by {:?}", model.loaded_by) };
        let _ = writeln!(
            out,
            "{verdict:<20} {:<12} {:<24} {sha:<14} {seen:<10} {}",
            format.as_str_name().trim_start_matches("MODEL_FORMAT_").to_ascii_lowercase(),
            escape_controls(name),
            escape_controls(&file.path)
        );
    }
    let _ = writeln!(
        out,
        "\nSESSIONS\n{:<18} {:<20} {:<8} {:<10} {:<7} {:<9} ROOT",
        "ID", "VERDICT", "PIDS", "RUNTIME", "MODELS", "LISTENERS"
    );
    for session in &inventory.sessions {
        let runtime = proto::v1::Runtime::try_from(session.runtime).unwrap_or_default();
        let verdict = session.verdict.as_ref().map_or("-", |v| v.verdict.as_str());
        let root =
            session.root.as_ref().map_or(String::new(), |p| format!("{} {}", p.pid, escape_controls(&p.exe)));
        let state = if session.ended.is_some() { " (ended)" } else { "" };
        let _ = writeln!(
            out,
            "{:<18} {verdict:<20} {:<8} {:<10} {:<7} {:<9} {root}{state}",
            session.id,
            session.pids.len(),
            runtime.as_str_name().trim_start_matches("RUNTIME_").to_ascii_lowercase(),
            session.models.len(),
            session.listeners.len()
        );
    }
    let _ = writeln!(out, "\nLISTENERS\n{:<24} {:<10} {:<18} PROCESS", "ADDRESS", "EXPOSURE", "SESSION");
    for listener in &inventory.listeners {
        let Some(l) = &listener.listener else { continue };
        let exposure = proto::v1::Exposure::try_from(l.exposure).unwrap_or_default();
        let process = listener
            .process
            .as_ref()
            .map_or(String::new(), |p| format!("{} {}", p.pid, escape_controls(&p.exe)));
        let _ = writeln!(
            out,
            "{:<24} {:<10} {:<18} {process}",
            format!("{}:{}", l.address, l.port),
            exposure.as_str_name().trim_start_matches("EXPOSURE_").to_ascii_lowercase(),
            listener.session_id
        );
    }
    let _ = writeln!(out, "\nRUNTIMES\n{:<8} {:<10} {:<12} EXE", "PID", "RUNTIME", "VERSION");
    for runtime in &inventory.runtimes {
        let Some(p) = &runtime.process else { continue };
        let kind = proto::v1::Runtime::try_from(p.runtime).unwrap_or_default();
        let _ = writeln!(
            out,
            "{:<8} {:<10} {:<12} {}",
            p.pid,
            kind.as_str_name().trim_start_matches("RUNTIME_").to_ascii_lowercase(),
            if runtime.version.is_empty() { "-" } else { &runtime.version },
            escape_controls(&p.exe)
        );
    }
    if let Some(sweep) = &inventory.sweep
        && !sweep.roots.is_empty()
    {
        let _ = writeln!(
            out,
            "\nat-rest sweep: {} files seen, {} models, {}",
            sweep.files_seen,
            sweep.models_found,
            if sweep.done { "done" } else { "running" }
        );
    }
    out
}

fn print_line(line: &str) {
    #[expect(clippy::print_stdout, reason = "the command's output")]
    {
        println!("{line}");
    }
}
