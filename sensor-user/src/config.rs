//! Configuration: sensible defaults, then a TOML file, environment variables and
//! command-line flags, each over the one before (see [`layers`]). Unknown keys are
//! errors that name the key, so a typo never silently does nothing.

mod layers;

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use thiserror::Error;

pub use layers::{ENV_ALIASES, Effective, Layers, Source};

/// Model file extensions the kernel forwards whatever their size: every format
/// `model-analysis` parses (GGUF, safetensors, pickle family, PyTorch, NumPy, joblib,
/// ONNX, Keras/HDF5, TFLite, llamafile).
pub const DEFAULT_EXTENSIONS: [&str; 19] = [
    "gguf",
    "ggml",
    "safetensors",
    "pt",
    "pth",
    "bin",
    "ckpt",
    "pkl",
    "pickle",
    "joblib",
    "npy",
    "npz",
    "onnx",
    "h5",
    "hdf5",
    "keras",
    "tflite",
    "llamafile",
    "mar",
];

/// Ports of local inference servers (Ollama, llama.cpp/LocalAI/Open WebUI, LM Studio,
/// vLLM, text-generation-webui API and UI, KoboldCpp, Jan, GPT4All).
pub const DEFAULT_PORTS: [u16; 9] = [11434, 8080, 1234, 8000, 5000, 5001, 7860, 1337, 4891];

#[derive(Debug, Error)]
pub enum ConfigError {
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("configuration file {path} is invalid: {message}")]
    Invalid { path: PathBuf, message: String },
    /// A setting from the environment or the command line.
    #[error("{origin}: {message}")]
    Setting { origin: String, message: String },
}

/// Everything `modelwatch run` can be told.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SensorConfig {
    /// Node name on every event; default the hostname (`NODE_NAME` in the environment
    /// sets it too: see [`ENV_ALIASES`]).
    pub node: String,
    /// gRPC Unix socket (owner-only).
    pub socket: PathBuf,
    /// The approved-model catalog (TOML); none: built-in defaults (every model
    /// unapproved, license and exposure rules in force).
    pub catalog: Option<PathBuf>,
    pub kernel: KernelConfig,
    pub events: EventsConfig,
    pub hash: HashConfig,
    pub analysis: AnalysisConfig,
    /// The event log and the outlets (`[publish]`).
    pub publish: crate::publish::settings::PublishConfig,
    pub sweep: SweepConfig,
    pub accelerators: AcceleratorsConfig,
    pub kubernetes: KubernetesConfig,
}

#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AcceleratorsConfig {
    /// Devices to treat as accelerators besides those `/proc/devices` names (drivers
    /// with unusual names; tests alias a harmless device):
    /// `[{ major = 1, first_minor = 7, last_minor = 7, class = "nvidia_gpu" }]`.
    pub devices: Vec<crate::enrich::devices::AcceleratorDevice>,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SweepConfig {
    /// Walk the model stores on disk once at start-up (idle I/O priority).
    pub enabled: bool,
    /// Directories walked besides the known stores (Ollama, Hugging Face, LM Studio).
    pub roots: Vec<PathBuf>,
    /// Walk only `roots`, not the known stores.
    pub only_roots: bool,
}

impl Default for SweepConfig {
    fn default() -> Self {
        Self { enabled: true, roots: Vec::new(), only_roots: false }
    }
}

/// Where the kubelet's directories are, for pod names (see `enrich::pod`). Only their
/// entries' names are read. On a node that is not a Kubernetes node they are missing,
/// and pod fields stay empty.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct KubernetesConfig {
    /// The kubelet's `podLogsDir`: `<namespace>_<pod>_<uid>/` per pod.
    pub pod_logs_dir: PathBuf,
    /// The kubelet's links `<pod>_<namespace>_<container>-<id>.log`.
    pub container_logs_dir: PathBuf,
}

impl Default for KubernetesConfig {
    fn default() -> Self {
        Self {
            pod_logs_dir: PathBuf::from(crate::enrich::pod::DEFAULT_POD_LOGS_DIR),
            container_logs_dir: PathBuf::from(crate::enrich::pod::DEFAULT_CONTAINER_LOGS_DIR),
        }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AnalysisConfig {
    /// How long a candidate may wait for identification before it is published
    /// unidentified (milliseconds).
    pub identify_deadline_ms: u64,
    /// Models waiting for deep analysis; more are published with analysis skipped.
    pub queue: usize,
}

impl Default for AnalysisConfig {
    fn default() -> Self {
        Self { identify_deadline_ms: 1000, queue: 256 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct HashConfig {
    /// Compute the SHA-256 of every model file seen (in the background).
    pub enabled: bool,
    /// I/O budget: bytes read per second while hashing; 0 means no limit.
    pub max_bytes_per_second: u64,
    /// Files larger than this are not hashed; 0 means no limit.
    pub max_file_bytes: u64,
    /// Files waiting to be hashed; more are skipped (and counted).
    pub queue: usize,
}

impl Default for HashConfig {
    fn default() -> Self {
        Self { enabled: true, max_bytes_per_second: 256 << 20, max_file_bytes: 0, queue: 256 }
    }
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct KernelConfig {
    /// BPF ring buffer size: a power of two, at least 4096.
    pub ring_buffer_bytes: u32,
    /// Regular files at least this large are candidates whatever their name.
    pub size_threshold_bytes: u64,
    /// Extensions (no dot) that make a file a candidate whatever its size.
    pub extensions: Vec<String>,
    /// Listener ports that are always reported.
    pub ports: Vec<u16>,
    /// Report listeners of runtimes on any port (Ollama's runner uses a random one).
    pub listen_runtimes_any_port: bool,
    /// `auto`: the strongest hooks the kernel accepts (fexit), else tracepoints;
    /// `tracepoint`: tracepoints only.
    pub backend: crate::source::hooks::BackendChoice,
    /// Repeated opens (or maps) of one file by one process within this many
    /// milliseconds are folded into one record with a count; 0 turns folding off.
    pub dedup_window_ms: u64,
}

#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct EventsConfig {
    /// Publish exec/exit of every process, not only inference runtimes.
    pub all_processes: bool,
    /// Publish candidates that turned out not to be models (`candidate_file`).
    pub all_candidates: bool,
    /// Processes kept in the cache.
    pub process_cache: usize,
}

impl Default for SensorConfig {
    fn default() -> Self {
        Self {
            node: default_node(),
            socket: PathBuf::from("/run/modelwatch/modelwatch.sock"),
            catalog: None,
            kernel: KernelConfig::default(),
            events: EventsConfig::default(),
            hash: HashConfig::default(),
            analysis: AnalysisConfig::default(),
            publish: crate::publish::settings::PublishConfig::default(),
            sweep: SweepConfig::default(),
            accelerators: AcceleratorsConfig::default(),
            kubernetes: KubernetesConfig::default(),
        }
    }
}

impl Default for KernelConfig {
    fn default() -> Self {
        Self {
            ring_buffer_bytes: 1 << 20,
            size_threshold_bytes: 64 << 20,
            extensions: DEFAULT_EXTENSIONS.iter().map(|e| (*e).to_owned()).collect(),
            ports: DEFAULT_PORTS.to_vec(),
            listen_runtimes_any_port: true,
            backend: crate::source::hooks::BackendChoice::Auto,
            dedup_window_ms: 1000,
        }
    }
}

impl Default for EventsConfig {
    fn default() -> Self {
        Self { all_processes: false, all_candidates: false, process_cache: 16_384 }
    }
}

fn default_node() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map_or_else(|_| "unknown".into(), |h| h.trim().to_owned())
}

/// Largest configuration file read.
const MAX_CONFIG_BYTES: u64 = 1 << 20;

/// A configuration file's text, read as a regular file only (a FIFO in its place must
/// not hang start-up).
fn read_text(path: &Path) -> Result<String, ConfigError> {
    let read = |source| ConfigError::Read { path: path.into(), source };
    let bytes = model_analysis::open::read_regular(path, MAX_CONFIG_BYTES).map_err(read)?;
    String::from_utf8(bytes).map_err(|e| read(std::io::Error::other(e)))
}

impl SensorConfig {
    /// Reads a TOML file; missing keys keep their defaults.
    ///
    /// # Errors
    /// The file cannot be read, is not TOML, has unknown keys or bad values.
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = read_text(path)?;
        let config: Self = toml::from_str(&text)
            .map_err(|e| ConfigError::Invalid { path: path.into(), message: one_line(&text, &e) })?;
        config.validate().map_err(|message| ConfigError::Invalid { path: path.into(), message })?;
        Ok(config)
    }

    /// Checks values serde cannot.
    ///
    /// # Errors
    /// A message naming the bad value and what is allowed.
    pub fn validate(&self) -> Result<(), String> {
        let ring = self.kernel.ring_buffer_bytes;
        if ring < 4096 || !ring.is_power_of_two() {
            return Err(format!(
                "kernel.ring_buffer_bytes = {ring}: must be a power of two of at least 4096"
            ));
        }
        if let Some(bad) =
            self.kernel.extensions.iter().find(|e| sensor_common::settings::extension_key(e).is_none())
        {
            return Err(format!("kernel.extensions: {bad:?} must be 1 to 15 characters without dots"));
        }
        if self.kernel.extensions.len() > 64 {
            return Err("kernel.extensions: at most 64 extensions".into());
        }
        if self.kernel.ports.len() > 256 {
            return Err("kernel.ports: at most 256 ports".into());
        }
        if self.events.process_cache == 0 {
            return Err("events.process_cache must be positive".into());
        }
        self.publish.validate()
    }
}

/// A TOML error as one line: `line 2: unknown field ...`.
fn one_line(text: &str, error: &toml::de::Error) -> String {
    let message = error.message().trim().replace('\n', " ");
    match error.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("line {line}: {message}")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<SensorConfig, ConfigError> {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("modelwatch.toml");
        std::fs::write(&path, text).expect("write");
        SensorConfig::from_file(&path)
    }

    #[test]
    fn partial_file_keeps_defaults() {
        let config = parse("[kernel]\nports = [9999]\n").expect("valid");
        assert_eq!(config.kernel.ports, vec![9999]);
        assert_eq!(config.kernel.size_threshold_bytes, 64 << 20);
    }

    #[test]
    fn mistakes_are_named() {
        let typo = parse("[kernel]\nport = [1]\n").expect_err("unknown key");
        assert!(typo.to_string().contains("line 2: unknown field `port`"), "{typo}");
        assert_eq!(typo.to_string().lines().count(), 1, "{typo}");
        let ring = parse("[kernel]\nring_buffer_bytes = 5000\n").expect_err("bad size");
        assert!(ring.to_string().contains("power of two"), "{ring}");
        let ext = parse("[kernel]\nextensions = [\"tar.gz\"]\n").expect_err("bad extension");
        assert!(ext.to_string().contains("tar.gz"), "{ext}");
    }
}
