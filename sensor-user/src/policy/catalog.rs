//! The organisation's approved-model catalog (the "paved road"): a TOML file of pinned
//! models and a policy. Parsing is strict: an unknown key, a malformed digest, an
//! unknown format or runtime is an error that names its line and key; a bad file never
//! half-applies.

use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::licenses::NON_COMMERCIAL;

/// One approved model.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct CatalogModel {
    pub name: String,
    /// SHA-256 of every file of the model (lower-case hex).
    #[serde(default)]
    pub sha256: Vec<String>,
    /// SPDX id.
    #[serde(default)]
    pub license: Option<String>,
    /// Allowed formats (`gguf`, `safetensors`...); empty: any.
    #[serde(default)]
    pub formats: Vec<String>,
    /// `ollama:<model>:<tag>`, `hf:<org>/<repo>[@<revision>]`; empty: any.
    #[serde(default)]
    pub sources: Vec<String>,
    /// OpenSSF model-signing public keys (PEM files, relative to the catalog).
    #[serde(default)]
    pub signers: Vec<PathBuf>,
}

/// Who may reach a listener before it is a finding. Ordered: wider exposure is greater.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq, PartialOrd, Ord)]
#[serde(rename_all = "snake_case")]
pub enum ListenerExposure {
    /// Only loopback listeners are fine (default).
    #[default]
    Loopback,
    /// Loopback and specific addresses; all-interfaces binds are findings.
    SpecificAddress,
    /// Any listener is fine.
    AllInterfaces,
}

/// The rules.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields, default)]
pub struct Policy {
    /// SPDX ids whose models are `license_restricted` (default: every non-commercial one).
    pub denied_licenses: Vec<String>,
    /// Runtimes allowed to run models (`ollama`, `llama_cpp`, `vllm`...); default: all known.
    pub allowed_runtimes: Option<Vec<String>>,
    pub listener_exposure: ListenerExposure,
    /// Whether pickle-based formats (PyTorch, joblib...) may be loaded at all.
    pub allow_pickle: bool,
    /// Paths (globs: `*` within a component) whose opening by an inference session is a
    /// finding.
    pub sensitive_paths: Vec<String>,
    /// Minimum runtime versions (`ollama = "0.17.1"`); default: from published advisories.
    pub minimum_versions: std::collections::BTreeMap<String, String>,
    /// CA certificates (PEM) for certificate-mode model signatures.
    pub signer_cas: Vec<PathBuf>,
    /// Sliding window of the accelerator activity signal.
    pub accelerator_window_seconds: u32,
    /// Ioctls per second on accelerator descriptors that count as sustained activity.
    pub accelerator_min_ioctls_per_second: u32,
}

impl Default for Policy {
    fn default() -> Self {
        Self {
            denied_licenses: NON_COMMERCIAL.iter().map(|s| (*s).to_owned()).collect(),
            allowed_runtimes: None,
            listener_exposure: ListenerExposure::Loopback,
            allow_pickle: false,
            sensitive_paths: Vec::new(),
            minimum_versions: std::collections::BTreeMap::new(),
            signer_cas: Vec::new(),
            accelerator_window_seconds: 10,
            accelerator_min_ioctls_per_second: 20,
        }
    }
}

/// The file as written.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    model: Vec<CatalogModel>,
    #[serde(default)]
    policy: Policy,
}

/// A validated catalog.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Catalog {
    pub models: Vec<CatalogModel>,
    pub policy: Policy,
    /// Where it came from (`None`: the built-in defaults, no catalog).
    pub path: Option<PathBuf>,
    /// A short digest of the file's text: tells which catalog a verdict was reached under.
    pub version: String,
}

/// One problem with a catalog file.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CatalogProblem {
    /// 1-based line, when known.
    pub line: Option<usize>,
    /// The key, e.g. `model[2].sha256[0]`.
    pub key: String,
    pub message: String,
}

impl std::fmt::Display for CatalogProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.line {
            Some(line) => write!(f, "line {line}: {}: {}", self.key, self.message),
            None => write!(f, "{}: {}", self.key, self.message),
        }
    }
}

/// Why a catalog was refused: every problem found.
#[derive(Debug, thiserror::Error)]
pub enum CatalogError {
    #[error("cannot read the catalog {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the catalog {path} is invalid: {}", problems.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Invalid { path: PathBuf, problems: Vec<CatalogProblem> },
}

/// Formats a catalog may name.
pub const FORMATS: [&str; 11] = [
    "gguf",
    "safetensors",
    "pickle",
    "pytorch_zip",
    "pytorch_legacy",
    "numpy",
    "onnx",
    "hdf5",
    "keras",
    "tflite",
    "llamafile",
];

/// Largest catalog file read.
const MAX_CATALOG_BYTES: u64 = 16 << 20;

impl Catalog {
    /// Reads and validates a catalog file (opened like every file the sensor reads).
    ///
    /// # Errors
    /// The file cannot be read, or has problems (all of them are listed).
    pub fn load(path: &Path) -> Result<Self, CatalogError> {
        let read = |source| CatalogError::Read { path: path.to_path_buf(), source };
        let bytes = model_analysis::open::read_regular(path, MAX_CATALOG_BYTES).map_err(read)?;
        let text = String::from_utf8(bytes).map_err(|e| read(std::io::Error::other(e)))?;
        Self::parse(&text, Some(path))
    }

    /// Parses and validates catalog text.
    ///
    /// # Errors
    /// Every problem found, with its line and key.
    pub fn parse(text: &str, path: Option<&Path>) -> Result<Self, CatalogError> {
        let invalid = |problems| CatalogError::Invalid {
            path: path.map_or_else(|| PathBuf::from("(catalog)"), Path::to_path_buf),
            problems,
        };
        let file: CatalogFile = toml::from_str(text).map_err(|e| invalid(vec![toml_problem(text, &e)]))?;
        let problems = validate(&file, text);
        if !problems.is_empty() {
            return Err(invalid(problems));
        }
        let mut models = file.model;
        for model in &mut models {
            for digest in &mut model.sha256 {
                *digest = digest.to_ascii_lowercase();
            }
            if let Some(base) = path.and_then(Path::parent) {
                model.signers = model.signers.iter().map(|k| base.join(k)).collect();
            }
        }
        let mut policy = file.policy;
        if let Some(base) = path.and_then(Path::parent) {
            policy.signer_cas = policy.signer_cas.iter().map(|c| base.join(c)).collect();
        }
        Ok(Self { models, policy, path: path.map(Path::to_path_buf), version: version_of(text) })
    }

    /// Whether `runtime` (snake_case name) may run models.
    #[must_use]
    pub fn runtime_allowed(&self, runtime: &str) -> bool {
        self.policy.allowed_runtimes.as_ref().is_none_or(|allowed| allowed.iter().any(|r| r == runtime))
    }
}

fn version_of(text: &str) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(text.as_bytes())[..6])
}

/// Runtime names a policy may use.
pub const RUNTIMES: [&str; 13] = [
    "ollama",
    "llama_cpp",
    "vllm",
    "lm_studio",
    "koboldcpp",
    "localai",
    "text_generation_webui",
    "jan",
    "gpt4all",
    "llamafile",
    "sglang",
    "tgi",
    "unknown_loader",
];

fn validate(file: &CatalogFile, text: &str) -> Vec<CatalogProblem> {
    let mut problems = Vec::new();
    let mut problem = |key: String, needle: &str, message: String| {
        problems.push(CatalogProblem { line: line_of(text, needle), key, message });
    };
    for (i, model) in file.model.iter().enumerate() {
        if model.name.trim().is_empty() {
            problem(format!("model[{i}].name"), "name", "must not be empty".into());
        }
        if model.sha256.is_empty() && model.signers.is_empty() {
            problem(
                format!("model[{i}]"),
                &model.name,
                "pins nothing: give `sha256` (every file of the model) or `signers`".into(),
            );
        }
        for (j, digest) in model.sha256.iter().enumerate() {
            if digest.len() != 64 || !digest.bytes().all(|b| b.is_ascii_hexdigit()) {
                problem(
                    format!("model[{i}].sha256[{j}]"),
                    digest,
                    format!("{digest:?} is not 64 hex digits"),
                );
            }
        }
        for (j, format) in model.formats.iter().enumerate() {
            if !FORMATS.contains(&format.as_str()) {
                problem(
                    format!("model[{i}].formats[{j}]"),
                    format,
                    format!("unknown format {format:?}; known: {}", FORMATS.join(", ")),
                );
            }
        }
        for (j, source) in model.sources.iter().enumerate() {
            if super::verdict::Source::parse(source).is_none() {
                problem(
                    format!("model[{i}].sources[{j}]"),
                    source,
                    format!("{source:?} must be `ollama:<model>:<tag>` or `hf:<org>/<repo>[@<revision>]`"),
                );
            }
        }
    }
    for (j, runtime) in file.policy.allowed_runtimes.iter().flatten().enumerate() {
        if !RUNTIMES.contains(&runtime.as_str()) {
            problem(
                format!("policy.allowed_runtimes[{j}]"),
                runtime,
                format!("unknown runtime {runtime:?}; known: {}", RUNTIMES.join(", ")),
            );
        }
    }
    for (runtime, version) in &file.policy.minimum_versions {
        if !["ollama", "llama_cpp", "vllm"].contains(&runtime.as_str()) {
            problem(
                format!("policy.minimum_versions.{runtime}"),
                runtime,
                "versions are read for ollama, llama_cpp and vllm only".into(),
            );
        }
        if version.trim().is_empty() {
            problem(format!("policy.minimum_versions.{runtime}"), runtime, "empty version".into());
        }
    }
    problems
}

/// The first line that mentions `needle` (for problems found after parsing).
fn line_of(text: &str, needle: &str) -> Option<usize> {
    if needle.is_empty() {
        return None;
    }
    text.lines().position(|l| l.contains(needle)).map(|i| i + 1)
}

fn toml_problem(text: &str, error: &toml::de::Error) -> CatalogProblem {
    let line = error.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    let message = error.message().trim().replace('\n', " ");
    let key = line
        .and_then(|l| text.lines().nth(l - 1))
        .and_then(|l| l.split('=').next())
        .map_or_else(|| "(file)".to_owned(), |k| k.trim().to_owned());
    CatalogProblem { line, key, message }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = r#"
[[model]]
name = "qwen2.5-coder-7b-instruct"
sha256 = ["AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb"]
license = "apache-2.0"
formats = ["gguf", "safetensors"]
sources = ["ollama:qwen2.5-coder:7b", "hf:Qwen/Qwen2.5-Coder-7B-Instruct@0123abc"]
signers = ["keys/platform-team.pub"]

[policy]
denied_licenses = ["cc-by-nc-4.0"]
allowed_runtimes = ["ollama", "llama_cpp", "vllm"]
listener_exposure = "loopback"
allow_pickle = false
sensitive_paths = ["/srv/customer-data", "/home/*/.ssh"]
"#;

    #[test]
    fn the_minimal_shape_works_as_written() {
        let catalog =
            Catalog::parse(MINIMAL, Some(Path::new("/etc/modelwatch/catalog.toml"))).expect("valid");
        assert_eq!(catalog.models.len(), 1);
        assert_eq!(catalog.models[0].sha256[0], "a".repeat(64), "digests are lower-cased");
        assert_eq!(catalog.models[0].signers[0], Path::new("/etc/modelwatch/keys/platform-team.pub"));
        assert!(catalog.runtime_allowed("ollama"));
        assert!(!catalog.runtime_allowed("koboldcpp"));
        assert_eq!(catalog.version.len(), 12);
    }

    #[test]
    fn defaults_deny_non_commercial_licenses_and_allow_every_runtime() {
        let catalog = Catalog::parse("", None).expect("empty is valid");
        assert!(catalog.policy.denied_licenses.iter().any(|l| l == "cc-by-nc-4.0"));
        assert!(catalog.runtime_allowed("koboldcpp"));
        assert_eq!(catalog.policy.listener_exposure, ListenerExposure::Loopback);
    }

    #[test]
    fn every_problem_is_named_with_its_line_and_key() {
        let text = "[[model]]\nname = \"x\"\nsha256 = [\"nothex\"]\nformats = [\"exe\"]\nsources = [\"ftp:x\"]\n\n[policy]\nallowed_runtimes = [\"notepad\"]\n";
        let Err(CatalogError::Invalid { problems, .. }) = Catalog::parse(text, None) else {
            panic!("invalid")
        };
        let lines: Vec<String> = problems.iter().map(ToString::to_string).collect();
        assert_eq!(problems.len(), 4, "{lines:?}");
        assert!(lines[0].starts_with("line 3: model[0].sha256[0]"), "{lines:?}");
        assert!(lines[1].starts_with("line 4: model[0].formats[0]"), "{lines:?}");
        assert!(lines[2].starts_with("line 5: model[0].sources[0]"), "{lines:?}");
        assert!(lines[3].starts_with("line 8: policy.allowed_runtimes[0]"), "{lines:?}");
        let typo = Catalog::parse("[policy]\nallow_pickles = true\n", None).expect_err("unknown key");
        assert!(typo.to_string().contains("line 2"), "{typo}");
        assert!(typo.to_string().contains("allow_pickles"), "{typo}");
    }
}
