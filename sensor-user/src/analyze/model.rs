//! Model identification for the live sensor: the verified file is handed to the
//! `model-analysis` parsers (bounded, never executing anything) and the report is kept.

use std::{
    fs::File,
    path::{Path, PathBuf},
};

use model_analysis::{CheckedFile, FileStamp, Limits, ModelReport, Root};

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
    let file = match open_verified(candidates, key) {
        Ok(file) => file,
        Err(error) => match find_descriptor(pid, key) {
            Some(descriptor) => open_verified(&[descriptor], key)?,
            None => return Err(error),
        },
    };
    let stamp =
        FileStamp::of(&file).map_err(|source| IdentifyError::Io { path: name.to_path_buf(), source })?;
    let root = Root::of_process(pid)
        .or_else(|_| Root::host())
        .map_err(|source| IdentifyError::Io { path: name.to_path_buf(), source })?;
    let mut opened = CheckedFile { file, stamp };
    let report = model_analysis::analyze_opened(&mut opened, name, &root, limits);
    Ok(Examined { report, file: opened.file })
}
