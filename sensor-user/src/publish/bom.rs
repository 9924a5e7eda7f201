//! The node's AI bill of materials: its inventory as CycloneDX 1.6 JSON. Models are
//! `machine-learning-model` components (hashes, licenses, provenance as external
//! references, format and quantization as properties); runtimes are `application`
//! components.

use proto::v1::{Inventory, InventoryModel, InventoryRuntime, ModelFormat, Runtime};
use serde_json::{Value, json};

/// The CycloneDX document for `inventory`.
#[must_use]
pub fn cyclonedx(inventory: &Inventory) -> Value {
    let mut components: Vec<Value> = inventory.models.iter().map(model).collect();
    let mut seen_runtimes = std::collections::BTreeSet::new();
    for runtime in &inventory.runtimes {
        if let Some(component) = runtime_component(runtime)
            && seen_runtimes.insert(component["bom-ref"].to_string())
        {
            components.push(component);
        }
    }
    json!({
        "bomFormat": "CycloneDX",
        "specVersion": "1.6",
        "serialNumber": format!("urn:uuid:{}", serial(inventory)),
        "version": 1,
        "metadata": {
            "timestamp": inventory.taken.as_ref().map(rfc3339).unwrap_or_default(),
            "tools": { "components": [{ "type": "application", "name": "modelwatch", "version": env!("CARGO_PKG_VERSION") }] },
            "component": { "type": "device", "name": if inventory.node.is_empty() { "node" } else { inventory.node.as_str() }, "bom-ref": "node" },
            "properties": [
                { "name": "modelwatch:catalog_version", "value": inventory.catalog_version },
            ],
        },
        "components": components,
    })
}

fn model(entry: &InventoryModel) -> Value {
    let Some(file) = &entry.file else { return json!({}) };
    let metadata = file.metadata.clone().unwrap_or_default();
    let name = if metadata.name.is_empty() {
        std::path::Path::new(&file.path)
            .file_name()
            .map_or(file.path.clone(), |n| n.to_string_lossy().into_owned())
    } else {
        metadata.name.clone()
    };
    let identity = file.identity.unwrap_or_default();
    let mut component = json!({
        "type": "machine-learning-model",
        "bom-ref": format!("model:{}:{}", identity.dev, identity.inode),
        "name": name,
    });
    if !file.sha256.is_empty() {
        component["hashes"] = json!([{ "alg": "SHA-256", "content": file.sha256 }]);
    }
    if !metadata.license.is_empty() {
        component["licenses"] = json!([license(&metadata.license)]);
    }
    let references = references(file);
    if !references.is_empty() {
        component["externalReferences"] = Value::Array(references);
    }
    let format = ModelFormat::try_from(file.format).unwrap_or_default();
    let mut properties = vec![
        json!({ "name": "modelwatch:path", "value": file.path }),
        json!({ "name": "modelwatch:format", "value": short(format.as_str_name(), "MODEL_FORMAT_") }),
        json!({ "name": "modelwatch:at_rest", "value": entry.at_rest.to_string() }),
    ];
    if !metadata.quantization.is_empty() {
        properties.push(json!({ "name": "cdx:ai:quantization", "value": metadata.quantization }));
    }
    if !metadata.architecture.is_empty() {
        properties.push(json!({ "name": "modelwatch:architecture", "value": metadata.architecture }));
    }
    if let Some(verdict) = &file.verdict {
        properties.push(json!({ "name": "modelwatch:verdict", "value": verdict.verdict }));
    }
    component["properties"] = Value::Array(properties);
    if metadata.parameter_count > 0 || !metadata.architecture.is_empty() {
        component["modelCard"] = json!({
            "modelParameters": { "modelArchitecture": metadata.architecture },
            "properties": [{ "name": "modelwatch:parameter_count", "value": metadata.parameter_count.to_string() }],
        });
    }
    component
}

/// SPDX ids models commonly declare, in SPDX's own spelling (the schema's enum is
/// case-sensitive; model files are not).
const SPDX_IDS: [&str; 39] = [
    "Apache-2.0",
    "MIT",
    "BSD-2-Clause",
    "BSD-3-Clause",
    "ISC",
    "Unlicense",
    "CC0-1.0",
    "CC-BY-2.0",
    "CC-BY-3.0",
    "CC-BY-4.0",
    "CC-BY-SA-3.0",
    "CC-BY-SA-4.0",
    "CC-BY-NC-2.0",
    "CC-BY-NC-3.0",
    "CC-BY-NC-4.0",
    "CC-BY-NC-ND-3.0",
    "CC-BY-NC-ND-4.0",
    "CC-BY-NC-SA-2.0",
    "CC-BY-NC-SA-3.0",
    "CC-BY-NC-SA-4.0",
    "CC-BY-ND-4.0",
    "GPL-2.0-only",
    "GPL-2.0-or-later",
    "GPL-3.0-only",
    "GPL-3.0-or-later",
    "LGPL-2.1-only",
    "LGPL-3.0-only",
    "AGPL-3.0-only",
    "AGPL-3.0-or-later",
    "MPL-2.0",
    "EPL-2.0",
    "BSL-1.0",
    "Artistic-2.0",
    "Zlib",
    "PostgreSQL",
    "OFL-1.1",
    "CDLA-Permissive-2.0",
    "CDLA-Sharing-1.0",
    "ODbL-1.0",
];

/// An SPDX id in SPDX's spelling when it is one, else a license name (Llama, RAIL and
/// other model licenses are not SPDX ids).
fn license(text: &str) -> Value {
    match SPDX_IDS.iter().find(|id| id.eq_ignore_ascii_case(text.trim())) {
        Some(id) => json!({ "license": { "id": id } }),
        None => json!({ "license": { "name": text } }),
    }
}

fn references(file: &proto::v1::ModelFile) -> Vec<Value> {
    let Some(provenance) = &file.provenance else { return Vec::new() };
    let url = match provenance.source.as_str() {
        "hugging_face" if provenance.name.contains('/') => {
            let revision = if provenance.revision.is_empty() { "main" } else { provenance.revision.as_str() };
            format!("https://huggingface.co/{}/tree/{revision}", provenance.name)
        }
        "ollama" if !provenance.name.is_empty() => {
            let first = provenance.name.split(',').next().unwrap_or("");
            format!("https://ollama.com/library/{}", first.split(':').next().unwrap_or(first))
        }
        _ => return Vec::new(),
    };
    vec![
        json!({ "type": "distribution", "url": url, "comment": format!("{} {}", provenance.source, provenance.name) }),
    ]
}

fn runtime_component(entry: &InventoryRuntime) -> Option<Value> {
    let process = entry.process.as_ref()?;
    let runtime = Runtime::try_from(process.runtime).unwrap_or_default();
    let name = short(runtime.as_str_name(), "RUNTIME_");
    let mut component = json!({
        "type": "application",
        "bom-ref": format!("runtime:{name}:{}", process.exe),
        "name": name,
        "properties": [{ "name": "modelwatch:exe", "value": process.exe }],
    });
    if !entry.version.is_empty() {
        component["version"] = Value::String(entry.version.clone());
    }
    Some(component)
}

fn short(name: &str, prefix: &str) -> String {
    name.strip_prefix(prefix).unwrap_or(name).to_ascii_lowercase()
}

fn rfc3339(time: &pbjson_types::Timestamp) -> String {
    let since = std::time::Duration::new(
        u64::try_from(time.seconds).unwrap_or(0),
        u32::try_from(time.nanos).unwrap_or(0),
    );
    humantime::format_rfc3339_seconds(std::time::UNIX_EPOCH + since).to_string()
}

/// A UUID (v4 layout) from the inventory's content and time: a new one per export.
fn serial(inventory: &Inventory) -> String {
    use sha2::Digest as _;
    let seed = format!("{}{:?}{}", inventory.node, inventory.taken, inventory.models.len());
    let mut bytes: [u8; 16] = sha2::Sha256::digest(seed.as_bytes())[..16].try_into().unwrap_or([0; 16]);
    bytes[6] = (bytes[6] & 0x0f) | 0x40;
    bytes[8] = (bytes[8] & 0x3f) | 0x80;
    let hex = hex::encode(bytes);
    format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..])
}
