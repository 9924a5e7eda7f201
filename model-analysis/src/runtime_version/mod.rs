//! Which version of an inference runtime a process runs, read from its files without
//! executing anything: Go build info in Ollama's binary, llama.cpp's build number and
//! commit, vLLM's package metadata; and the advisories that apply to that version.
//!
//! Every file is opened through [`Root`] (regular files only, `fstat` before any
//! read) and read in bounded pieces: a multi-gigabyte CUDA library costs a few header
//! reads, never a load.

mod advisories;
mod elf;
mod go_buildinfo;
mod llama;
mod ollama;
mod vllm;

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::open::{OpenError, Root};

pub use advisories::{ADVISORIES, Advisory, AdvisoryCheck, advisories_for, minimum_safe_version};
pub use elf::ElfError;
pub use go_buildinfo::GoBuildInfo;
pub use llama::llama_cpp_version;
pub use ollama::ollama_version;
pub use vllm::vllm_version;

/// The runtimes whose versions are read.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Runtime {
    Ollama,
    LlamaCpp,
    Vllm,
}

impl Runtime {
    #[must_use]
    pub fn name(self) -> &'static str {
        match self {
            Self::Ollama => "Ollama",
            Self::LlamaCpp => "llama.cpp",
            Self::Vllm => "vLLM",
        }
    }
}

/// Where a version came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionSource {
    /// `-X github.com/ollama/ollama/version.Version=...` in the Go build settings.
    GoLdflags,
    /// The Go main module's version.
    GoModule,
    /// The `LLAMA_BUILD_NUMBER` / `LLAMA_COMMIT` symbols.
    Symbols,
    /// Strings found by a bounded search of a stripped binary.
    Strings,
    /// `Version:` in a `.dist-info/METADATA`.
    DistInfo { metadata: PathBuf },
}

/// A runtime's version as read from its files.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct RuntimeVersion {
    pub runtime: Runtime,
    /// `0.12.0`, `b5662`; `None` when the files say which runtime but not which
    /// version (a source build, a stripped binary).
    pub version: Option<String>,
    /// The source commit, where recorded.
    pub commit: Option<String>,
    pub source: Option<VersionSource>,
    /// Go build info (Ollama).
    pub go: Option<GoBuildInfo>,
}

impl RuntimeVersion {
    fn unknown(runtime: Runtime) -> Self {
        Self { runtime, version: None, commit: None, source: None, go: None }
    }

    /// The advisories that apply to this version (unknown stays unknown).
    #[must_use]
    pub fn advisories(&self) -> AdvisoryCheck {
        advisories_for(self.runtime, self.version.as_deref())
    }
}

/// Why a version could not be read.
#[derive(Debug, thiserror::Error)]
pub enum VersionError {
    #[error(transparent)]
    Open(#[from] OpenError),
    #[error("{path}: {source}")]
    Elf {
        path: PathBuf,
        #[source]
        source: ElfError,
    },
    #[error("{path}: {reason}")]
    Malformed { path: PathBuf, reason: String },
    #[error("no {what} found from {path}")]
    NotFound { path: PathBuf, what: &'static str },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn elf_error(path: &Path) -> impl Fn(ElfError) -> VersionError + '_ {
    move |source| VersionError::Elf { path: path.to_path_buf(), source }
}

/// Opens a binary inside `root` (following a final symlink inside it).
fn open_binary(root: &Root, path: &Path) -> Result<crate::open::CheckedFile, VersionError> {
    Ok(root.open_file(path, true, None)?)
}
