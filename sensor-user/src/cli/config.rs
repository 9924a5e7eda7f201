//! The settings `modelwatch run` takes, and `modelwatch config show`, which prints the
//! configuration they make and where each value came from.

use std::path::PathBuf;

use clap::ValueEnum as _;

use crate::{
    config::{ConfigError, Effective, Layers, Source},
    publish::settings::FileFormat,
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
    /// State directory: the durable event log lives in its `events/` directory
    /// (`publish.state_dir`; systemd's $STATE_DIRECTORY sets it too).
    #[arg(long)]
    state_dir: Option<PathBuf>,
    /// Serve the API on this TCP address too, with mutual TLS (needs --tls-cert,
    /// --tls-key and --client-ca) (`publish.api.tcp_listen`).
    #[arg(long)]
    tcp_listen: Option<String>,
    /// PEM server certificate chain (`publish.api.tls_cert`).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM server key (`publish.api.tls_key`).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA certificates (PEM) that client certificates must chain to
    /// (`publish.api.client_ca`).
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// Ship events as OTLP logs to this collector, `http://host:4317`
    /// (`publish.otlp.endpoint`).
    #[arg(long)]
    otlp_endpoint: Option<String>,
    /// Serve Prometheus metrics on this address, `127.0.0.1:9464`
    /// (`publish.metrics.listen`).
    #[arg(long)]
    metrics_listen: Option<String>,
    /// Also write events to this file as JSON lines, rotated by size
    /// (`publish.file.path`).
    #[arg(long)]
    json_file: Option<PathBuf>,
    /// The file's format (`publish.file.format`).
    #[arg(long, value_enum)]
    json_file_format: Option<FileFormat>,
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
            ("--state-dir", "publish.state_dir", self.state_dir.as_ref().map(path)),
            ("--tcp-listen", "publish.api.tcp_listen", self.tcp_listen.clone()),
            ("--tls-cert", "publish.api.tls_cert", self.tls_cert.as_ref().map(path)),
            ("--tls-key", "publish.api.tls_key", self.tls_key.as_ref().map(path)),
            ("--client-ca", "publish.api.client_ca", self.client_ca.as_ref().map(path)),
            ("--otlp-endpoint", "publish.otlp.endpoint", self.otlp_endpoint.clone()),
            ("--metrics-listen", "publish.metrics.listen", self.metrics_listen.clone()),
            ("--json-file", "publish.file.path", self.json_file.as_ref().map(path)),
            (
                "--json-file-format",
                "publish.file.format",
                self.json_file_format.and_then(|f| f.to_possible_value().map(|v| v.get_name().to_owned())),
            ),
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
