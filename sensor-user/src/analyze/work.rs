//! The three jobs behind the event path, each a plain blocking function run by a
//! worker pool: identify (open the reported file, decide its format: a quick look
//! under a small budget), analyze (metadata, pickle walk, chat templates, containers,
//! under the full budget), hash (SHA-256 of the same open file). Each returns its
//! result; the correlation stage alone turns results into events.

use std::{
    path::PathBuf,
    time::{Duration, Instant},
};

use model_analysis::{Finding, FindingKind, Format, HashBudget, HashError, Limits, ModelReport};

use super::access::{AccessError, FileRequest, Opened, open_reported};
use crate::domain::FileKey;

/// Budget of the quick identification: a prefix, a zip directory, an executable's
/// embedded-GGUF probe. Deep analysis has the full [`Limits::default`].
#[must_use]
pub fn identify_limits() -> Limits {
    Limits { deadline: Some(Duration::from_millis(200)), max_header_bytes: 4 << 20, ..Limits::default() }
}

/// A reported file, opened and identified.
#[derive(Debug)]
pub struct Identified {
    pub opened: Opened,
    pub format: Format,
    /// The version actually opened (it may differ from the kernel's if the file changed).
    pub key: FileKey,
}

/// The result of an identification job.
#[derive(Debug)]
pub struct Identification {
    pub request: FileRequest,
    pub outcome: Result<Identified, AccessError>,
}

/// Opens the reported file and decides its format.
#[must_use]
pub fn identify(request: FileRequest, limits: &Limits) -> Identification {
    let outcome = open_reported(&request).map(|mut opened| {
        let key = FileKey::from_stamp(&opened.file.stamp);
        let format = model_analysis::identify(&mut opened.file.file, key.size, limits);
        Identified { opened, format, key }
    });
    Identification { request, outcome }
}

/// A model to analyse in depth.
#[derive(Debug)]
pub struct AnalyzeJob {
    pub opened: Opened,
    /// Its path in the process's namespace (provenance, extension check, manifests).
    pub name: PathBuf,
    pub key: FileKey,
    /// The version the kernel saw a process load (not write), when that differs from
    /// the version opened: the analysis then says the file changed in between.
    pub loaded_other_version: Option<FileKey>,
}

/// The result of deep analysis; the open file comes back for hashing.
#[derive(Debug)]
pub struct Analysis {
    pub key: FileKey,
    pub name: PathBuf,
    pub report: ModelReport,
    pub opened: Opened,
    pub duration: Duration,
}

#[must_use]
pub fn analyze(mut job: AnalyzeJob, limits: &Limits) -> Analysis {
    let started = Instant::now();
    let mut report =
        model_analysis::analyze_opened(&mut job.opened.file, &job.name, &job.opened.root, limits);
    if let Some(loaded) = job.loaded_other_version {
        report.findings.push(Finding::new(
            FindingKind::ChangedSinceOpened,
            format!(
                "the file changed after the process loaded it (size {} -> {}, change time {} -> {} ns): the content judged may not be what was loaded",
                loaded.size, job.key.size, loaded.ctime_ns, job.key.ctime_ns
            ),
        ));
    }
    Analysis { key: job.key, name: job.name, report, opened: job.opened, duration: started.elapsed() }
}

/// A model file to hash.
#[derive(Debug)]
pub struct HashJob {
    pub opened: Opened,
    pub name: PathBuf,
    pub key: FileKey,
}

#[derive(Debug)]
pub struct Hashed {
    pub key: FileKey,
    pub name: PathBuf,
    pub result: Result<[u8; 32], HashError>,
    /// The file and its root, for the signature check that may follow.
    pub opened: Opened,
}

/// Hashes the open file, refusing a result if the file changed meanwhile.
#[must_use]
pub fn hash(job: HashJob, budget: &HashBudget) -> Hashed {
    let result = model_analysis::sha256_file(&job.opened.file.file, &job.opened.file.stamp, budget);
    Hashed { key: job.key, name: job.name, result, opened: job.opened }
}

/// A model's detached OpenSSF signature (`<file>.sig`, or `model.sig` in its
/// directory) to verify against the catalog's signers.
pub struct SignatureJob {
    pub key: FileKey,
    pub name: PathBuf,
    pub root: model_analysis::Root,
    pub trust: std::sync::Arc<model_analysis::signature::TrustStore>,
}

/// `None` when no signature lies beside the model.
pub struct SignatureChecked {
    pub key: FileKey,
    pub outcome: Result<Option<model_analysis::signature::SignatureVerdict>, String>,
}

/// Verifies the signature beside a model (hashing every signed file, rate-limited).
#[must_use]
pub fn check_signature(job: &SignatureJob, budget: &HashBudget) -> SignatureChecked {
    let budget = model_analysis::signature::VerifyBudget {
        hash: *budget,
        deadline: Some(Instant::now() + Duration::from_secs(600)),
        cancel: None,
    };
    let outcome = model_analysis::signature::verify_beside(&job.root, &job.name, &job.trust, &budget)
        .map(|found| found.map(|(_, verdict)| verdict))
        .map_err(|e| e.to_string());
    SignatureChecked { key: job.key, outcome }
}

/// A runtime's executable, to read its version from.
pub struct VersionJob {
    pub pid: u32,
    pub runtime: crate::domain::Runtime,
    pub exe: PathBuf,
}

pub struct VersionRead {
    pub pid: u32,
    pub result: Result<model_analysis::runtime_version::RuntimeVersion, String>,
}

/// Reads a runtime's version from its files (never executing anything), inside the
/// process's mount namespace.
#[must_use]
pub fn read_version(job: &VersionJob) -> VersionRead {
    use crate::domain::Runtime as R;
    use model_analysis::runtime_version as v;
    let result = model_analysis::Root::of_process(job.pid).map_err(|e| e.to_string()).and_then(|root| {
        match job.runtime {
            R::Ollama => v::ollama_version(&root, &job.exe),
            R::LlamaCpp => v::llama_cpp_version(&root, &job.exe),
            R::Vllm => v::vllm_version(&root, &job.exe),
            _ => return Err("no version reader for this runtime".to_owned()),
        }
        .map_err(|e| e.to_string())
    });
    VersionRead { pid: job.pid, result }
}
