//! Domain values to their `modelwatch.v1` messages.

use proto::v1 as pb;
use sensor_common::reason;

use crate::{
    domain::{FileKey, Runtime},
    enrich::process::ProcessInfo,
};

#[must_use]
pub fn runtime(runtime: Runtime) -> pb::Runtime {
    match runtime {
        Runtime::Ollama => pb::Runtime::Ollama,
        Runtime::LlamaCpp => pb::Runtime::LlamaCpp,
        Runtime::Vllm => pb::Runtime::Vllm,
        Runtime::LmStudio => pb::Runtime::LmStudio,
        Runtime::KoboldCpp => pb::Runtime::Koboldcpp,
        Runtime::LocalAi => pb::Runtime::Localai,
        Runtime::TextGenerationWebui => pb::Runtime::TextGenerationWebui,
        Runtime::Jan => pb::Runtime::Jan,
        Runtime::Gpt4All => pb::Runtime::Gpt4all,
        Runtime::Llamafile => pb::Runtime::Llamafile,
        Runtime::Sglang => pb::Runtime::Sglang,
        Runtime::Tgi => pb::Runtime::Tgi,
        Runtime::UnknownLoader => pb::Runtime::UnknownLoader,
    }
}

/// A runtime's snake_case name, as the policy names it (`llama_cpp`).
#[must_use]
pub fn runtime_name(runtime: Runtime) -> &'static str {
    match runtime {
        Runtime::Ollama => "ollama",
        Runtime::LlamaCpp => "llama_cpp",
        Runtime::Vllm => "vllm",
        Runtime::LmStudio => "lm_studio",
        Runtime::KoboldCpp => "koboldcpp",
        Runtime::LocalAi => "localai",
        Runtime::TextGenerationWebui => "text_generation_webui",
        Runtime::Jan => "jan",
        Runtime::Gpt4All => "gpt4all",
        Runtime::Llamafile => "llamafile",
        Runtime::Sglang => "sglang",
        Runtime::Tgi => "tgi",
        Runtime::UnknownLoader => "unknown_loader",
    }
}

/// A judgement as the API shows it.
#[must_use]
pub fn verdict(judgement: &crate::policy::Judgement, catalog_version: &str) -> pb::Verdict {
    let top = judgement.verdict();
    pb::Verdict {
        verdict: top.kind.name().to_owned(),
        severity: severity(top.severity).into(),
        reason: top.reason.clone(),
        rules: judgement
            .rules
            .iter()
            .map(|r| pb::VerdictRule {
                verdict: r.kind.name().to_owned(),
                severity: severity(r.severity).into(),
                reason: r.reason.clone(),
            })
            .collect(),
        provisional: judgement.provisional,
        catalog_version: catalog_version.to_owned(),
    }
}

/// The process part of an event; `tid` is the thread that made the call.
#[must_use]
pub fn process(info: &ProcessInfo, tid: u32) -> pb::Process {
    pb::Process {
        pid: info.pid,
        tid,
        ppid: info.ppid,
        uid: info.uid,
        gid: info.gid,
        comm: info.comm.clone(),
        exe: info.exe.clone(),
        argv: info.argv.clone(),
        cgroup_id: info.cgroup_id,
        container_id: info.container_id.clone(),
        runtime: info.runtime.as_ref().map_or(pb::Runtime::Unspecified, |c| runtime(c.runtime)).into(),
        pod_uid: info.pod.as_ref().map(|pod| pod.uid.clone()).unwrap_or_default(),
        pod_name: info.pod.as_ref().map(|pod| pod.name.clone()).unwrap_or_default(),
        pod_namespace: info.pod.as_ref().map(|pod| pod.namespace.clone()).unwrap_or_default(),
        container_name: info.pod.as_ref().map(|pod| pod.container_name.clone()).unwrap_or_default(),
    }
}

#[must_use]
pub fn identity(key: &FileKey) -> pb::FileIdentity {
    pb::FileIdentity {
        dev: key.dev,
        inode: key.ino,
        size: key.size,
        mtime_unix_ns: key.mtime_ns,
        ctime_unix_ns: key.ctime_ns,
    }
}

/// `reason` bits to their names.
#[must_use]
pub fn reasons(bits: u32) -> Vec<String> {
    [
        (reason::SIZE, "size"),
        (reason::EXTENSION, "extension"),
        (reason::MARKED_RUNTIME, "marked_runtime"),
        (reason::WATCHED_PORT, "watched_port"),
        (reason::ACCELERATOR, "accelerator"),
        (reason::MODEL_STORE, "model_store"),
    ]
    .into_iter()
    .filter(|(bit, _)| bits & bit != 0)
    .map(|(_, name)| name.to_owned())
    .collect()
}

#[must_use]
pub fn format(format: model_analysis::Format) -> pb::ModelFormat {
    use model_analysis::Format;
    match format {
        Format::Gguf => pb::ModelFormat::Gguf,
        Format::Safetensors => pb::ModelFormat::Safetensors,
        Format::Pickle => pb::ModelFormat::Pickle,
        Format::PytorchZip => pb::ModelFormat::PytorchZip,
        Format::PytorchLegacy => pb::ModelFormat::PytorchLegacy,
        Format::Numpy | Format::NumpyZip => pb::ModelFormat::Numpy,
        Format::Onnx => pb::ModelFormat::Onnx,
        Format::Hdf5 => pb::ModelFormat::Hdf5,
        Format::Keras => pb::ModelFormat::Keras,
        Format::Tflite => pb::ModelFormat::Tflite,
        Format::Llamafile => pb::ModelFormat::Llamafile,
        Format::Zip | Format::SevenZip | Format::CompressedArchive => pb::ModelFormat::UnsupportedContainer,
        Format::Unknown => pb::ModelFormat::Unspecified,
    }
}

#[must_use]
pub fn severity(severity: model_analysis::Severity) -> pb::Severity {
    use model_analysis::Severity as S;
    match severity {
        S::Info => pb::Severity::Info,
        S::Low => pb::Severity::Low,
        S::Medium => pb::Severity::Medium,
        S::High => pb::Severity::High,
        S::Critical => pb::Severity::Critical,
    }
}

/// The snake_case name serde gives a value (`pickle_dangerous_import`).
fn serde_name<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_value(value).ok().and_then(|v| v.as_str().map(str::to_owned)).unwrap_or_default()
}

#[must_use]
pub fn finding(finding: &model_analysis::Finding) -> pb::Finding {
    pb::Finding {
        kind: serde_name(&finding.kind),
        severity: severity(finding.severity).into(),
        message: finding.message.clone(),
    }
}

/// What identification says about a model file: its format, and what its path tells
/// (provenance, the digest its name claims). Metadata and findings follow from deep
/// analysis (`model_analyzed`).
#[must_use]
pub fn identified_file(format: model_analysis::Format, path: &str, key: &FileKey) -> pb::ModelFile {
    let provenance = model_analysis::provenance_from_path(std::path::Path::new(path));
    pb::ModelFile {
        path: path.to_owned(),
        identity: Some(identity(key)),
        format: self::format(format).into(),
        claimed_sha256: provenance.as_ref().map(claimed_digest).unwrap_or_default(),
        provenance: provenance.as_ref().map(self::provenance),
        ..pb::ModelFile::default()
    }
}

/// A candidate whose content is not known (unidentified: timed out, queue full).
#[must_use]
pub fn unidentified_file(path: &str, key: &FileKey, state: pb::AnalysisState, note: &str) -> pb::ModelFile {
    pb::ModelFile {
        path: path.to_owned(),
        identity: Some(identity(key)),
        analysis: state.into(),
        analysis_note: note.to_owned(),
        ..pb::ModelFile::default()
    }
}

/// Adds what deep analysis found to a model file.
pub fn add_analysis(file: &mut pb::ModelFile, report: &model_analysis::ModelReport) {
    file.format = format(report.format).into();
    file.metadata = Some(metadata(report));
    file.provenance = report.provenance.as_ref().map(provenance);
    if let Some(claimed) = report.provenance.as_ref().map(claimed_digest).filter(|c| !c.is_empty()) {
        file.claimed_sha256 = claimed;
    }
    file.findings = report.findings.iter().map(finding).collect();
}

/// The deep-analysis event.
#[must_use]
pub fn model_analyzed(
    path: &str,
    key: &FileKey,
    report: &model_analysis::ModelReport,
    duration_ms: u32,
    announced_seq: u64,
) -> pb::ModelAnalyzed {
    pb::ModelAnalyzed {
        path: path.to_owned(),
        identity: Some(identity(key)),
        format: format(report.format).into(),
        metadata: Some(metadata(report)),
        provenance: report.provenance.as_ref().map(provenance),
        findings: report.findings.iter().map(finding).collect(),
        analysis: pb::AnalysisState::Done.into(),
        analysis_note: String::new(),
        duration_ms,
        announced_seq,
        verdict: None,
    }
}

fn claimed_digest(p: &model_analysis::Provenance) -> String {
    p.digest.as_deref().and_then(|d| d.strip_prefix("sha256:")).map(str::to_owned).unwrap_or_default()
}

fn metadata(report: &model_analysis::ModelReport) -> pb::ModelMetadata {
    let mut meta = pb::ModelMetadata::default();
    if let Some(gguf) = &report.gguf {
        meta.name = gguf.name.clone().unwrap_or_default();
        meta.architecture = gguf.architecture.clone().unwrap_or_default();
        meta.license = gguf.license.clone().unwrap_or_default();
        meta.quantization = gguf.quantization.clone().unwrap_or_default();
        meta.parameter_count = gguf.parameter_count.unwrap_or(0);
        meta.tensor_count = gguf.tensor_count;
        for (key, value) in &gguf.general {
            let text = value.as_str().map_or_else(|| value.to_string(), str::to_owned);
            meta.properties.insert(key.clone(), text);
        }
        for template in &gguf.chat_templates {
            meta.properties.insert(format!("{}.sha256", template.key), template.sha256.clone());
            meta.properties.insert(format!("{}.risk_score", template.key), template.risk_score.to_string());
        }
    }
    if let Some(st) = &report.safetensors {
        meta.parameter_count = st.parameter_count;
        meta.tensor_count = st.tensor_count;
        for (key, value) in &st.metadata {
            meta.properties.insert(key.clone(), value.clone());
        }
        if let Some(license) = st.metadata.get("license") {
            meta.license.clone_from(license);
        }
        let dtypes: Vec<&str> = st.dtypes.keys().map(String::as_str).collect();
        meta.quantization = dtypes.join(",");
    }
    meta
}

fn provenance(p: &model_analysis::Provenance) -> pb::Provenance {
    let name = match (&p.organization, &p.repository) {
        (Some(org), Some(repo)) => format!("{org}/{repo}"),
        (None, Some(repo)) => repo.clone(),
        _ => p.tags.join(","),
    };
    pb::Provenance { source: serde_name(&p.source), name, revision: p.revision.clone().unwrap_or_default() }
}
