//! Model identification for the live sensor: the verified file is handed to the
//! `model-analysis` parsers (bounded, never executing anything) and the report is kept.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use model_analysis::{Limits, ModelReport, ProvenanceSource, ollama_tags};

use super::identify::{FileKey, IdentifyError, find_descriptor, open_verified};

/// A report and the open file it describes (kept for hashing: the same inode).
pub struct Examined {
    pub report: ModelReport,
    pub file: File,
}

/// Opens the first candidate that is the kernel's inode and analyses it.
///
/// `name` is the path in the process's mount namespace; `root` is where that namespace
/// is reachable from here (`/proc/<pid>/root`), for Ollama's manifests.
///
/// # Errors
/// No candidate is that regular file.
pub fn examine(
    pid: u32,
    candidates: &[PathBuf],
    key: &FileKey,
    name: &Path,
    limits: &Limits,
) -> Result<Examined, IdentifyError> {
    let mut file = match open_verified(candidates, key) {
        Ok(file) => file,
        Err(error) => match find_descriptor(pid, key) {
            Some(descriptor) => open_verified(&[descriptor], key)?,
            None => return Err(error),
        },
    };
    let root = PathBuf::from(format!("/proc/{pid}/root"));
    let mut report = model_analysis::analyze_file(&mut file, Some(name), limits)
        .map_err(|source| IdentifyError::Io { path: name.to_path_buf(), source })?;
    add_ollama_tags(&mut report, name, &root);
    Ok(Examined { report, file })
}

/// An Ollama blob's `model:tag` names, from the manifests beside its `blobs` directory.
fn add_ollama_tags(report: &mut ModelReport, name: &Path, root: &Path) {
    let Some(provenance) = report.provenance.as_mut() else { return };
    if provenance.source != ProvenanceSource::Ollama {
        return;
    }
    let Some(hex) = provenance.digest.as_deref().and_then(|d| d.strip_prefix("sha256:")) else { return };
    let Some(models) = name.parent().and_then(Path::parent) else { return };
    let inside = root.join(models.strip_prefix("/").unwrap_or(models));
    let dir = if inside.is_dir() { inside } else { models.to_path_buf() };
    provenance.tags = ollama_tags(&dir, hex);
}
