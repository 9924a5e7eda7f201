//! The settings `modelwatch run` takes, and `modelwatch config show`, which prints the
//! configuration they make and where each value came from.

use std::path::PathBuf;

use clap::ValueEnum as _;

use crate::{
    config::{ConfigError, Effective, Layers, Source},
    source::hooks::BackendChoice,
};

/// Settings on the command line, over the environment, over the file, over defaults.
#[derive(Debug, clap::Args)]
pub struct ConfigArgs {
    /// TOML configuration file (every key optional).
    #[arg(long, short, env = "MODELWATCH_CONFIG")]
    config: Option<PathBuf>,
    /// gRPC Unix socket (`socket`).
    #[arg(long)]
    socket: Option<PathBuf>,
    /// The approved-model catalog (TOML), reloaded on SIGHUP and when it changes
    /// (`catalog`).
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// BPF ring buffer size in bytes: a power of two, at least 4096
    /// (`kernel.ring_buffer_bytes`).
    #[arg(long)]
    ring_buffer_bytes: Option<u32>,
    /// Files at least this large are candidates whatever their name
    /// (`kernel.size_threshold_bytes`).
    #[arg(long)]
    size_threshold: Option<u64>,
    /// Publish exec/exit of every process, not only inference runtimes
    /// (`events.all_processes`).
    #[arg(long)]
    all_processes: bool,
    /// Publish candidate files that are not models too (`events.all_candidates`).
    #[arg(long)]
    all_candidates: bool,
    /// Node name on events (`node`; default: $NODE_NAME, else the hostname).
    #[arg(long)]
    node: Option<String>,
    /// Hook backends: `auto` (fexit where the kernel allows, else tracepoints) or
    /// `tracepoint` (`kernel.backend`).
    #[arg(long, value_enum)]
    backend: Option<BackendChoice>,
    /// Any key, e.g. `--set kernel.ports=11434,8080` (repeatable). `modelwatch config
    /// show` lists every key.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    set: Vec<String>,
}

impl ConfigArgs {
    /// The configuration in effect: defaults < file < environment < flags.
    ///
    /// # Errors
    /// An unknown key or a bad value, named with where it came from.
    pub fn effective(&self) -> Result<Effective, ConfigError> {
        let mut layers = Layers::default();
        if let Some(path) = &self.config {
            layers.file(path)?;
        }
        layers.env(
            std::env::vars_os()
                .filter_map(|(name, value)| Some((name.into_string().ok()?, value.into_string().ok()?))),
        )?;
        for (flag, key, value) in self.dedicated_flags() {
            layers.set(key, &value, Source::Flag(flag.to_owned()))?;
        }
        for item in &self.set {
            let Some((key, value)) = item.split_once('=') else {
                return Err(ConfigError::Setting {
                    origin: format!("flag --set {item}"),
                    message: "expected KEY=VALUE, e.g. kernel.ports=11434,8080".into(),
                });
            };
            let key = key.trim();
            layers.set(key, value, Source::Flag(format!("--set {key}")))?;
        }
        layers.resolve()
    }

    /// The dedicated flags that were given: (flag, key, value).
    fn dedicated_flags(&self) -> Vec<(&'static str, &'static str, String)> {
        let path = |p: &PathBuf| p.display().to_string();
        let backend = |b: &BackendChoice| b.to_possible_value().map(|v| v.get_name().to_owned());
        [
            ("--socket", "socket", self.socket.as_ref().map(path)),
            ("--catalog", "catalog", self.catalog.as_ref().map(path)),
            (
                "--ring-buffer-bytes",
                "kernel.ring_buffer_bytes",
                self.ring_buffer_bytes.map(|b| b.to_string()),
            ),
            ("--size-threshold", "kernel.size_threshold_bytes", self.size_threshold.map(|b| b.to_string())),
            ("--all-processes", "events.all_processes", self.all_processes.then(|| "true".to_owned())),
            ("--all-candidates", "events.all_candidates", self.all_candidates.then(|| "true".to_owned())),
            ("--node", "node", self.node.clone()),
            ("--backend", "kernel.backend", self.backend.as_ref().and_then(backend)),
        ]
        .into_iter()
        .filter_map(|(flag, key, value)| Some((flag, key, value?)))
        .collect()
    }
}

#[derive(Debug, clap::Subcommand)]
pub enum ConfigCommand {
    /// Print the configuration `modelwatch run` would use with the same file,
    /// environment and flags, each value with where it came from.
    Show(ShowArgs),
}

#[derive(Debug, clap::Args)]
pub struct ShowArgs {
    #[command(flatten)]
    settings: ConfigArgs,
    /// One JSON object: key -> {value, source}.
    #[arg(long)]
    json: bool,
}

pub(super) fn run(command: &ConfigCommand) -> i32 {
    let ConfigCommand::Show(args) = command;
    let effective = match args.settings.effective() {
        Ok(effective) => effective,
        Err(error) => {
            super::report(&error);
            return 2;
        }
    };
    let text = if args.json {
        let object: serde_json::Map<String, serde_json::Value> = effective
            .values()
            .into_iter()
            .map(|(key, value, source)| {
                let value = serde_json::to_value(&value).unwrap_or_default();
                (key, serde_json::json!({ "value": value, "source": source.to_string() }))
            })
            .collect();
        serde_json::Value::Object(object).to_string()
    } else {
        effective.to_annotated_toml()
    };
    #[expect(clippy::print_stdout, reason = "CLI output")]
    {
        println!("{}", text.trim_end());
    }
    0
}
