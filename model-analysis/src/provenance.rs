//! Where a model file came from, read from its path: the Hugging Face cache layout,
//! Ollama's content-addressed blobs and manifests, LM Studio's model folders. Path
//! parsing is pure; only [`ollama_tags`] reads the disk (bounded).

use std::io::Read;
use std::path::{Component, Path};

use serde::{Deserialize, Serialize};

use crate::finding::{Finding, FindingKind, clip};
use crate::limits::{Budget, Limits, Scan};
use crate::open::Root;

/// Manifest files larger than this are not read.
const MAX_MANIFEST_BYTES: u64 = 1024 * 1024;
/// Directory entries visited under `manifests/` before giving up.
const MAX_MANIFEST_ENTRIES: usize = 10_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvenanceSource {
    HuggingFace,
    Ollama,
    LmStudio,
}

/// What a path says about a model's origin.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Provenance {
    pub source: ProvenanceSource,
    /// Hugging Face organisation or user; LM Studio publisher.
    pub organization: Option<String>,
    /// Hugging Face repository; LM Studio model folder.
    pub repository: Option<String>,
    /// Hugging Face: `models`, `datasets` or `spaces`.
    pub repository_kind: Option<String>,
    /// Hugging Face snapshot revision (a commit hash).
    pub revision: Option<String>,
    /// The file's path inside the snapshot or model folder.
    pub file: Option<String>,
    /// The content digest the name claims, as `sha256:<hex>` (or `git-sha1:<hex>` for
    /// small Hugging Face blobs, which are named by their git blob id).
    pub digest: Option<String>,
    /// Ollama `model:tag` names whose manifests reference this blob.
    pub tags: Vec<String>,
}

impl Provenance {
    fn new(source: ProvenanceSource) -> Self {
        Self {
            source,
            organization: None,
            repository: None,
            repository_kind: None,
            revision: None,
            file: None,
            digest: None,
            tags: Vec::new(),
        }
    }

    /// Fills what `self` lacks from `other` (same source): a snapshot path gives the
    /// revision, the blob it resolves to gives the digest.
    pub fn merge(&mut self, other: Provenance) {
        if self.source != other.source {
            return;
        }
        self.organization = self.organization.take().or(other.organization);
        self.repository = self.repository.take().or(other.repository);
        self.repository_kind = self.repository_kind.take().or(other.repository_kind);
        self.revision = self.revision.take().or(other.revision);
        self.file = self.file.take().or(other.file);
        self.digest = self.digest.take().or(other.digest);
        if self.tags.is_empty() {
            self.tags = other.tags;
        }
    }
}

fn components(path: &Path) -> Vec<&str> {
    path.components()
        .filter_map(|c| match c {
            Component::Normal(s) => s.to_str(),
            _ => None,
        })
        .collect()
}

fn is_hex(s: &str, len: usize) -> bool {
    s.len() == len && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Reads provenance from a path, without touching the disk.
#[must_use]
pub fn provenance_from_path(path: &Path) -> Option<Provenance> {
    let parts = components(path);
    hugging_face(&parts).or_else(|| ollama(&parts)).or_else(|| lm_studio(&parts))
}

/// `.../models--<org>--<repo>/{blobs/<sha256>, snapshots/<rev>/<file>}`.
fn hugging_face(parts: &[&str]) -> Option<Provenance> {
    let (i, kind, repo_id) = parts.iter().enumerate().rev().find_map(|(i, part)| {
        ["models", "datasets", "spaces"]
            .iter()
            .find_map(|kind| part.strip_prefix(kind)?.strip_prefix("--").map(|rest| (i, *kind, rest)))
    })?;
    let mut p = Provenance::new(ProvenanceSource::HuggingFace);
    p.repository_kind = Some(kind.to_owned());
    // Hub repository names cannot contain "--", so the first one separates the owner.
    match repo_id.split_once("--") {
        Some((org, repo)) => {
            p.organization = Some(clip(org));
            p.repository = Some(clip(repo));
        }
        None => p.repository = Some(clip(repo_id)),
    }
    match parts.get(i + 1..) {
        Some(["blobs", blob]) => {
            if is_hex(blob, 64) {
                p.digest = Some(format!("sha256:{}", blob.to_ascii_lowercase()));
            } else if is_hex(blob, 40) {
                p.digest = Some(format!("git-sha1:{}", blob.to_ascii_lowercase()));
            }
        }
        Some(["snapshots", revision, file @ ..]) if !file.is_empty() => {
            p.revision = Some(clip(revision));
            p.file = Some(clip(&file.join("/")));
        }
        _ => {}
    }
    Some(p)
}

/// `.../models/blobs/sha256-<hex>`.
fn ollama(parts: &[&str]) -> Option<Provenance> {
    let [.., "blobs", blob] = parts else {
        return None;
    };
    let hex = blob.strip_prefix("sha256-").or_else(|| blob.strip_prefix("sha256:"))?;
    if !is_hex(hex, 64) {
        return None;
    }
    let mut p = Provenance::new(ProvenanceSource::Ollama);
    p.digest = Some(format!("sha256:{}", hex.to_ascii_lowercase()));
    Some(p)
}

/// `~/.lmstudio/models/<publisher>/<model>/<file>` and the legacy
/// `~/.cache/lm-studio/models/<publisher>/<model>/<file>`.
fn lm_studio(parts: &[&str]) -> Option<Provenance> {
    let start = parts.windows(2).rposition(|w| matches!(w, [".lmstudio" | "lm-studio", "models"]))?;
    let [publisher, model, file @ ..] = parts.get(start + 2..)? else {
        return None;
    };
    if file.is_empty() {
        return None;
    }
    let mut p = Provenance::new(ProvenanceSource::LmStudio);
    p.organization = Some(clip(publisher));
    p.repository = Some(clip(model));
    p.file = Some(clip(&file.join("/")));
    Some(p)
}

/// The SHA-256 a file name claims for its content: Ollama `sha256-<hex>` blobs and
/// Hugging Face LFS blobs (a bare 64-hex name).
#[must_use]
pub fn claimed_sha256(path: &Path) -> Option<[u8; 32]> {
    let name = path.file_name()?.to_str()?;
    let hex = name.strip_prefix("sha256-").or_else(|| name.strip_prefix("sha256:")).unwrap_or(name);
    if !is_hex(hex, 64) {
        return None;
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).ok()?;
    }
    Some(out)
}

/// A `digest_mismatch` finding when `actual` differs from the digest `path` claims.
#[must_use]
pub fn digest_finding(path: &Path, actual: &[u8; 32]) -> Option<Finding> {
    let claimed = claimed_sha256(path)?;
    (claimed != *actual).then(|| {
        Finding::new(
            FindingKind::DigestMismatch,
            format!(
                "the name claims sha256 {} but the content hashes to {}",
                hex::encode(claimed),
                hex::encode(actual)
            ),
        )
    })
}

/// Ollama names (`model:tag`, `namespace/model:tag` outside `library`) whose manifests
/// reference the blob `sha256:<digest_hex>`. `models_dir` holds `blobs/` and
/// `manifests/<registry>/<namespace>/<model>/<tag>`, and is resolved inside `root` (the
/// mount namespace of the process that opened the blob). Bounded: at most 10,000
/// directory entries, manifests up to 1 MiB; every manifest is opened through
/// [`Root::open_file`] (a FIFO or device swapped in is refused by `fstat`, never read);
/// unreadable parts are skipped.
#[must_use]
pub fn ollama_tags(root: &Root, models_dir: &Path, digest_hex: &str) -> Vec<String> {
    let limits = Limits::default();
    ollama_tags_within(root, models_dir, digest_hex, &mut Scan::new(&limits))
}

/// [`ollama_tags`] within the budgets of an analysis: its clock, a budget of manifest
/// bytes read ([`crate::limits::MANIFEST_BUDGET`]), and its memory budget for the tags.
/// A budget that runs out stops the lookup, with its finding in `scan`.
pub(crate) fn ollama_tags_within(
    root: &Root,
    models_dir: &Path,
    digest_hex: &str,
    scan: &mut Scan,
) -> Vec<String> {
    scan.enter("the Ollama manifests");
    let wanted = format!("sha256:{}", digest_hex.to_ascii_lowercase());
    let mut budget = MAX_MANIFEST_ENTRIES;
    let mut tags = Vec::new();
    let manifests = models_dir.join("manifests");
    for registry in list_dir(root, &manifests, &mut budget) {
        for namespace in list_dir(root, &manifests.join(&registry), &mut budget) {
            for model in list_dir(root, &manifests.join(&registry).join(&namespace), &mut budget) {
                let model_dir = manifests.join(&registry).join(&namespace).join(&model);
                for tag in list_dir(root, &model_dir, &mut budget) {
                    match manifest_references(root, &model_dir.join(&tag), &wanted, scan) {
                        Lookup::Stop => return sorted(tags),
                        Lookup::No => {}
                        Lookup::Yes => {
                            let name = if namespace == "library" {
                                format!("{model}:{tag}")
                            } else {
                                format!("{namespace}/{model}:{tag}")
                            };
                            if !scan.keep(name.len() as u64 + 32, "Ollama tags") {
                                return sorted(tags);
                            }
                            tags.push(name);
                        }
                    }
                }
            }
        }
    }
    sorted(tags)
}

fn sorted(mut tags: Vec<String>) -> Vec<String> {
    tags.sort();
    tags
}

fn list_dir(root: &Root, dir: &Path, budget: &mut usize) -> Vec<String> {
    let Ok(fd) = root.open_dir(dir) else {
        return Vec::new();
    };
    let Ok(entries) = rustix::fs::Dir::new(fd) else {
        return Vec::new();
    };
    let mut names = Vec::new();
    for entry in entries {
        if *budget == 0 {
            break;
        }
        *budget -= 1;
        let Ok(entry) = entry else { break };
        if let Ok(name) = entry.file_name().to_str()
            && !name.starts_with('.')
        {
            names.push(name.to_owned());
        }
    }
    names
}

/// The parts of an Ollama manifest read here; everything else is ignored.
#[derive(Deserialize)]
struct Manifest {
    #[serde(default)]
    layers: Vec<Layer>,
    config: Option<Layer>,
}

#[derive(Deserialize)]
struct Layer {
    #[serde(default)]
    digest: String,
}

/// Whether a manifest references the blob, or the lookup must stop (a budget ran out).
enum Lookup {
    Yes,
    No,
    Stop,
}

fn manifest_references(root: &Root, path: &Path, wanted: &str, scan: &mut Scan) -> Lookup {
    if scan.spend(1024) {
        return Lookup::Stop;
    }
    let Ok(opened) = root.open_file(path, false, None) else {
        return Lookup::No;
    };
    let size = opened.stamp.size;
    if size > MAX_MANIFEST_BYTES {
        return Lookup::No;
    }
    if scan.draw(Budget::ManifestBytes, size) < size {
        scan.exhaust(Budget::ManifestBytes, "the blob's Ollama tags may be incomplete");
        return Lookup::Stop;
    }
    let mut text = Vec::new();
    if opened.file.take(MAX_MANIFEST_BYTES).read_to_end(&mut text).is_err() {
        return Lookup::No;
    }
    if scan.spend(text.len() as u64) {
        return Lookup::Stop;
    }
    let Ok(manifest) = serde_json::from_slice::<Manifest>(&text) else {
        return Lookup::No;
    };
    if manifest.layers.iter().chain(manifest.config.iter()).any(|layer| layer.digest == wanted) {
        Lookup::Yes
    } else {
        Lookup::No
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    const SHA: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn hugging_face_snapshot_and_blob() {
        let snap = Path::new(
            "/home/u/.cache/huggingface/hub/models--meta-llama--Llama-3.1-8B/snapshots/0123abcd/original/params.json",
        );
        let p = provenance_from_path(snap).expect("hf snapshot");
        assert_eq!(p.source, ProvenanceSource::HuggingFace);
        assert_eq!(p.organization.as_deref(), Some("meta-llama"));
        assert_eq!(p.repository.as_deref(), Some("Llama-3.1-8B"));
        assert_eq!(p.revision.as_deref(), Some("0123abcd"));
        assert_eq!(p.file.as_deref(), Some("original/params.json"));
        assert_eq!(p.digest, None);

        let blob = format!("/x/hub/models--Qwen--Qwen2.5-0.5B/blobs/{SHA}");
        let p = provenance_from_path(Path::new(&blob)).expect("hf blob");
        assert_eq!(p.repository.as_deref(), Some("Qwen2.5-0.5B"));
        assert_eq!(p.digest, Some(format!("sha256:{SHA}")));

        let p = provenance_from_path(Path::new("/c/models--gpt2/snapshots/abc/model.safetensors"))
            .expect("org-less");
        assert_eq!(p.organization, None);
        assert_eq!(p.repository.as_deref(), Some("gpt2"));
    }

    #[test]
    fn merging_snapshot_and_resolved_blob() {
        let mut p = provenance_from_path(Path::new("/h/models--a--b/snapshots/r1/m.gguf")).expect("snap");
        p.merge(provenance_from_path(Path::new(&format!("/h/models--a--b/blobs/{SHA}"))).expect("blob"));
        assert_eq!(p.revision.as_deref(), Some("r1"));
        assert_eq!(p.digest, Some(format!("sha256:{SHA}")));
    }

    #[test]
    fn ollama_blob() {
        let path = format!("/usr/share/ollama/.ollama/models/blobs/sha256-{SHA}");
        let p = provenance_from_path(Path::new(&path)).expect("ollama");
        assert_eq!(p.source, ProvenanceSource::Ollama);
        assert_eq!(p.digest, Some(format!("sha256:{SHA}")));
        assert!(provenance_from_path(Path::new("/m/blobs/sha256-abc")).is_none());
    }

    #[test]
    fn lm_studio_current_and_legacy() {
        let p = provenance_from_path(Path::new(
            "/home/u/.lmstudio/models/lmstudio-community/Qwen3-8B-GGUF/Qwen3-8B-Q4_K_M.gguf",
        ))
        .expect("lm studio");
        assert_eq!(p.source, ProvenanceSource::LmStudio);
        assert_eq!(p.organization.as_deref(), Some("lmstudio-community"));
        assert_eq!(p.repository.as_deref(), Some("Qwen3-8B-GGUF"));
        assert_eq!(p.file.as_deref(), Some("Qwen3-8B-Q4_K_M.gguf"));
        let p = provenance_from_path(Path::new("/home/u/.cache/lm-studio/models/TheBloke/M-GGUF/m.gguf"))
            .expect("legacy");
        assert_eq!(p.organization.as_deref(), Some("TheBloke"));
        assert!(provenance_from_path(Path::new("/home/u/.lmstudio/models/only-publisher")).is_none());
    }

    #[test]
    fn unrelated_paths_have_no_provenance() {
        assert!(provenance_from_path(Path::new("/srv/models/model.gguf")).is_none());
        assert!(provenance_from_path(Path::new("relative/blobs/readme")).is_none());
    }

    #[test]
    fn claimed_digests() {
        let claimed = claimed_sha256(Path::new(&format!("/b/sha256-{SHA}"))).expect("ollama name");
        assert_eq!(hex::encode(claimed), SHA);
        assert!(claimed_sha256(Path::new(&format!("/b/{SHA}"))).is_some());
        assert!(claimed_sha256(Path::new("/b/sha256-xyz")).is_none());
        assert!(claimed_sha256(Path::new("/b/model.gguf")).is_none());
        let ok = digest_finding(Path::new(&format!("/b/sha256-{SHA}")), &claimed);
        assert!(ok.is_none());
        let bad = digest_finding(Path::new(&format!("/b/sha256-{SHA}")), &[0; 32]).expect("mismatch");
        assert_eq!(bad.kind, FindingKind::DigestMismatch);
    }

    #[test]
    fn ollama_manifests_name_the_blob() {
        let dir = tempfile::tempdir().expect("tempdir");
        let write = |rel: &str, body: &str| {
            let path = dir.path().join(rel);
            fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            fs::write(path, body).expect("write");
        };
        let layer = format!(
            r#"{{"layers":[{{"mediaType":"application/vnd.ollama.image.model","digest":"sha256:{SHA}"}}]}}"#
        );
        write("manifests/registry.local/library/llama3.2/3b", &layer);
        write("manifests/registry.local/someone/tuned/latest", &layer);
        write("manifests/registry.local/library/other/1b", r#"{"layers":[{"digest":"sha256:00"}]}"#);
        write("manifests/registry.local/library/broken/x", "not json");
        let tags = ollama_tags(&Root::host().expect("root"), dir.path(), SHA);
        assert_eq!(tags, ["llama3.2:3b", "someone/tuned:latest"]);
    }

    fn manifests_naming(dir: &Path, count: usize, padding: usize) {
        let layer = format!(r#"{{"layers":[{{"digest":"sha256:{SHA}"}}],"pad":"{}"}}"#, " ".repeat(padding));
        let model_dir = dir.join("manifests/registry.local/library/m");
        fs::create_dir_all(&model_dir).expect("mkdir");
        for i in 0..count {
            fs::write(model_dir.join(format!("t{i}")), &layer).expect("write");
        }
    }

    fn budget_findings(scan: Scan<'_>) -> Vec<String> {
        scan.into_findings()
            .into_iter()
            .filter(|f| f.kind == FindingKind::AnalysisBudgetExceeded)
            .map(|f| f.message)
            .collect()
    }

    #[test]
    fn the_clock_stops_the_tag_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        manifests_naming(dir.path(), 200, 0);
        let root = Root::host().expect("root");
        let limits = Limits { deadline: Some(std::time::Duration::ZERO), ..Limits::default() };
        let mut scan = Scan::new(&limits);
        let tags = ollama_tags_within(&root, dir.path(), SHA, &mut scan);
        assert!(tags.len() < 200, "{} tags", tags.len());
        let messages = budget_findings(scan);
        assert!(
            messages[0].starts_with("time budget (0 ms) exhausted in the Ollama manifests"),
            "{messages:?}"
        );
        assert_eq!(
            ollama_tags(&root, dir.path(), SHA).len(),
            200,
            "the default deadline lets them all be read"
        );
    }

    #[test]
    fn the_manifest_budget_stops_the_tag_lookup() {
        let dir = tempfile::tempdir().expect("tempdir");
        // Nine manifests of almost 1 MiB: more than the 8 MiB budget.
        manifests_naming(dir.path(), 9, 1_000_000);
        let root = Root::host().expect("root");
        let limits = Limits { deadline: None, ..Limits::default() };
        let mut scan = Scan::new(&limits);
        let tags = ollama_tags_within(&root, dir.path(), SHA, &mut scan);
        assert_eq!(tags.len(), 8);
        let messages = budget_findings(scan);
        assert!(messages[0].starts_with("manifest budget (8.0 MiB) exhausted"), "{messages:?}");
    }
}
