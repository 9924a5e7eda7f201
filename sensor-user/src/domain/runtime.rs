//! Inference runtimes and the part a process plays in one. The rules that classify a
//! process live in `analyze::runtime`; the names live here, once.

/// Executable names that are runtimes whatever their arguments; the kernel marks a
/// process that execs one at once (userspace then refines, and unmarks clients).
pub const RUNTIME_EXECUTABLES: [&str; 13] = [
    "ollama",
    "llama-server",
    "llama-cli",
    "llama-run",
    "llama-mtmd-cli",
    "vllm",
    "koboldcpp",
    "local-ai",
    "localai",
    "llamafile",
    "lm-studio",
    "text-generation-launcher",
    "text-generation-server",
];

/// Known local inference runtimes (see the field notes for their fingerprints).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Runtime {
    Ollama,
    LlamaCpp,
    Vllm,
    LmStudio,
    KoboldCpp,
    LocalAi,
    TextGenerationWebui,
    Jan,
    Gpt4All,
    Llamafile,
    Sglang,
    Tgi,
    /// Loaded a model file without matching any known runtime.
    UnknownLoader,
}

/// The part a process plays in its runtime.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Role {
    /// Serves an API (`ollama serve`, `llama-server`, `vllm serve`).
    Server,
    /// A child that runs the model for a server (Ollama's runner).
    Worker,
    /// Runs a model in-process from the command line (`llama-cli`).
    Cli,
    /// Talks to a server and loads no model (`ollama run`, `lms`).
    Client,
}

impl Role {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Server => "server",
            Self::Worker => "worker",
            Self::Cli => "cli",
            Self::Client => "client",
        }
    }

    /// Whether the kernel should watch everything this process opens and listens on.
    #[must_use]
    pub fn loads_models(self) -> bool {
        !matches!(self, Self::Client)
    }
}

/// A classification and the rule that produced it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Classification {
    pub runtime: Runtime,
    pub role: Role,
    pub rule: String,
}
