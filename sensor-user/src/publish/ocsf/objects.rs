//! OCSF 1.8 objects built from modelwatch's messages: device, process, file, AI model,
//! GPU. Only attributes the 1.8 schema defines (it allows no others), so that the
//! records validate; modelwatch-only facts go to `unmapped`.

use proto::v1::{FileIdentity, ModelFile, Process};
use serde_json::{Map, Value, json};

/// The machine (`device`, required by most classes).
pub(super) fn device(node: &str) -> Value {
    json!({
        "hostname": node,
        "name": node,
        "type_id": 0,
        "type": "Unknown",
        "os": {"name": "Linux", "type_id": 200, "type": "Linux"},
    })
}

/// A process as OCSF sees it; `None` fields are left out.
pub(super) fn process(process: &Process) -> Value {
    let mut out = Map::new();
    out.insert("pid".into(), json!(process.pid));
    if process.tid != 0 {
        out.insert("tid".into(), json!(process.tid));
    }
    if !process.comm.is_empty() {
        out.insert("name".into(), json!(process.comm));
    }
    if !process.argv.is_empty() {
        out.insert("cmd_line".into(), json!(process.argv.join(" ")));
    }
    if !process.exe.is_empty() {
        out.insert("file".into(), file_at(&process.exe, 1));
    }
    out.insert("user".into(), json!({"uid": process.uid.to_string()}));
    if process.ppid != 0 {
        out.insert("parent_process".into(), json!({"pid": process.ppid}));
    }
    if !process.container_id.is_empty() {
        let mut container = json!({"uid": process.container_id});
        if !process.container_name.is_empty() {
            container["name"] = json!(process.container_name);
        }
        if !process.pod_uid.is_empty() {
            container["pod_uuid"] = json!(process.pod_uid);
            container["orchestrator"] = json!("Kubernetes");
        }
        out.insert("container".into(), container);
    }
    Value::Object(out)
}

/// `actor` for an event a process caused; the sensor itself when there is none.
pub(super) fn actor(process_info: Option<&Process>) -> Value {
    match process_info {
        Some(p) => json!({"process": process(p)}),
        None => json!({"app_name": "modelwatch"}),
    }
}

/// A file known only by its path. `type_id`: 1 regular file, 3 character device.
pub(super) fn file_at(path: &str, type_id: u32) -> Value {
    let type_name = if type_id == 3 { "Character Device" } else { "Regular File" };
    let mut out = Map::new();
    out.insert("name".into(), json!(base_name(path)));
    out.insert("path".into(), json!(path));
    out.insert("type_id".into(), json!(type_id));
    out.insert("type".into(), json!(type_name));
    if let Some(parent) = path.rsplit_once('/').map(|(p, _)| p).filter(|p| !p.is_empty()) {
        out.insert("parent_folder".into(), json!(parent));
    }
    Value::Object(out)
}

/// A model file: path, size, identity, hashes.
pub(super) fn model_file(file: &ModelFile) -> Value {
    let mut out = file_at(&file.path, 1);
    if let Value::Object(map) = &mut out {
        add_identity(map, file.identity.as_ref());
        if !file.sha256.is_empty() {
            map.insert("hashes".into(), hashes(&file.sha256));
        }
        if file.deleted {
            map.insert("is_deleted".into(), json!(true));
        }
    }
    out
}

/// A file by path and identity with a known digest (`model_hashed`, `model_analyzed`).
pub(super) fn identified_file(path: &str, identity: Option<&FileIdentity>, sha256: &str) -> Value {
    let mut out = file_at(path, 1);
    if let Value::Object(map) = &mut out {
        add_identity(map, identity);
        if !sha256.is_empty() {
            map.insert("hashes".into(), hashes(sha256));
        }
    }
    out
}

fn add_identity(map: &mut Map<String, Value>, identity: Option<&FileIdentity>) {
    let Some(identity) = identity else { return };
    map.insert("size".into(), json!(identity.size));
    map.insert("uid".into(), json!(format!("{}:{}", identity.dev, identity.inode)));
    if identity.mtime_unix_ns > 0 {
        map.insert("modified_time".into(), json!(identity.mtime_unix_ns / 1_000_000));
    }
}

fn hashes(sha256: &str) -> Value {
    json!([{"algorithm_id": 3, "algorithm": "SHA-256", "value": sha256}])
}

/// OCSF 1.8's `ai_model` object for a model file: its name (from metadata,
/// provenance, or the file name), digest and provider.
pub(super) fn ai_model(file: &ModelFile) -> Value {
    let metadata_name = file.metadata.as_ref().map(|m| m.name.as_str()).filter(|n| !n.is_empty());
    let provenance = file.provenance.as_ref();
    let provenance_name = provenance.map(|p| p.name.as_str()).filter(|n| !n.is_empty());
    let name = metadata_name.or(provenance_name).unwrap_or_else(|| base_name(&file.path));
    let provider = match provenance.map(|p| p.source.as_str()) {
        Some("hugging_face") => "Hugging Face",
        Some("ollama") => "Ollama",
        Some("lm_studio") => "LM Studio",
        _ => "Unknown",
    };
    let mut out = Map::new();
    out.insert("name".into(), json!(name));
    out.insert("ai_provider".into(), json!(provider));
    let digest = if file.sha256.is_empty() { &file.claimed_sha256 } else { &file.sha256 };
    if !digest.is_empty() {
        out.insert("uid".into(), json!(format!("sha256:{digest}")));
    }
    if let Some(revision) = provenance.map(|p| p.revision.as_str()).filter(|r| !r.is_empty()) {
        out.insert("version".into(), json!(revision));
    }
    Value::Object(out)
}

/// `device.hw_info.gpu_info_list` for an accelerator kind ("nvidia_gpu"...).
pub(super) fn gpu_info(kind: &str) -> Value {
    let vendor = match kind {
        "nvidia_gpu" => Some("NVIDIA"),
        "amd_kfd" => Some("AMD"),
        _ => None,
    };
    let mut gpu = Map::new();
    if let Some(vendor) = vendor {
        gpu.insert("vendor_name".into(), json!(vendor));
    }
    json!({"gpu_info_list": [Value::Object(gpu)], "gpu_count": 1})
}

fn base_name(path: &str) -> &str {
    path.rsplit('/').next().filter(|n| !n.is_empty()).unwrap_or(path)
}
