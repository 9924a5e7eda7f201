//! Domain values to their `modelwatch.v1` messages.

use proto::v1 as pb;
use sensor_common::reason;

use crate::{
    analyze::{identify::FileKey, runtime::Runtime},
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
    }
}

#[must_use]
pub fn identity(key: &FileKey) -> pb::FileIdentity {
    pb::FileIdentity { dev: key.dev, inode: key.ino, size: key.size, mtime_unix_ns: key.mtime_ns }
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
