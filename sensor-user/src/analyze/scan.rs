//! Offline scans: walk paths, analyse every regular file by content, hash the models.
//! Symlinks to files are followed (Hugging Face snapshots are links to blobs); symlinks
//! to directories are not, so a link loop cannot trap the walk.

use std::{
    fs,
    path::{Path, PathBuf},
};

use model_analysis::{CheckedFile, HashBudget, Limits, ModelReport, OpenError, Root, Severity, sha256_file};
use serde::Serialize;

/// One scanned file.
#[derive(Debug, Serialize)]
pub struct ScannedFile {
    pub path: PathBuf,
    #[serde(flatten)]
    pub report: ModelReport,
    /// Hex SHA-256 of model files (when hashing is on).
    pub sha256: Option<String>,
    /// Whether the digest in the file name matches the content.
    pub claimed_sha256_matches: Option<bool>,
}

impl ScannedFile {
    #[must_use]
    pub fn worst(&self) -> Option<Severity> {
        self.report.max_severity()
    }
}

/// What a scan found that is not a file report.
#[derive(Debug)]
pub struct ScanError {
    pub path: PathBuf,
    pub message: String,
}

/// Options of a scan.
#[derive(Clone, Debug, Default)]
pub struct ScanOptions {
    pub limits: Limits,
    pub hash: bool,
}

/// Walks `roots` and calls `on_file` for every regular file, `on_error` for every path
/// that could not be read.
pub fn scan(
    roots: &[PathBuf],
    options: &ScanOptions,
    mut on_file: impl FnMut(ScannedFile),
    mut on_error: impl FnMut(ScanError),
) {
    let mut pending: Vec<PathBuf> = roots.iter().rev().cloned().collect();
    while let Some(path) = pending.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) => {
                on_error(ScanError { path, message: e.to_string() });
                continue;
            }
        };
        if meta.is_dir() {
            match sorted_entries(&path) {
                Ok(entries) => pending.extend(entries.into_iter().rev()),
                Err(e) => on_error(ScanError { path, message: e.to_string() }),
            }
            continue;
        }
        match examine(&path, options) {
            Ok(Some(file)) => on_file(file),
            Ok(None) => {}
            Err(error) => on_error(ScanError { path, message: error_line(&error) }),
        }
    }
}

fn sorted_entries(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut entries: Vec<PathBuf> = fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    entries.sort();
    Ok(entries)
}

/// `None` for what is not a file to report: a symlink to a directory, a special file.
fn examine(path: &Path, options: &ScanOptions) -> Result<Option<ScannedFile>, OpenError> {
    let root = Root::host().map_err(|source| OpenError::Io { path: path.to_path_buf(), source })?;
    let (report, opened) = match model_analysis::analyze_path(&root, path, &options.limits) {
        Ok(done) => done,
        // FIFOs, devices, sockets and linked directories are skipped, never opened.
        Err(OpenError::NotRegular { .. }) => return Ok(None),
        Err(error) => return Err(error),
    };
    let mut file =
        ScannedFile { path: path.to_path_buf(), report, sha256: None, claimed_sha256_matches: None };
    if options.hash && file.report.format.is_model() {
        hash_into(&mut file, &opened);
    }
    Ok(Some(file))
}

/// Hashes the very file that was analysed (the same descriptor).
fn hash_into(file: &mut ScannedFile, opened: &CheckedFile) {
    let Ok(digest) = sha256_file(&opened.file, &opened.stamp, &HashBudget::default()) else { return };
    file.sha256 = Some(hex::encode(digest));
    let claimed = model_analysis::claimed_sha256(&file.path).or_else(|| {
        model_analysis::open::resolved_path(&opened.file).and_then(|p| model_analysis::claimed_sha256(&p))
    });
    file.claimed_sha256_matches = claimed.map(|c| c == digest);
    if let Some(finding) = model_analysis::digest_finding(&file.path, &digest) {
        file.report.findings.push(finding);
    }
}

fn error_line(error: &dyn std::error::Error) -> String {
    let mut line = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        line.push_str(": ");
        line.push_str(&cause.to_string());
        source = cause.source();
    }
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn walks_recursively_skips_fifos_and_reports_models() {
        let dir = tempfile::tempdir().expect("tempdir");
        let sub = dir.path().join("a/b");
        fs::create_dir_all(&sub).expect("dirs");
        fs::write(sub.join("m.gguf"), b"GGUF\x03\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0").expect("gguf");
        fs::write(dir.path().join("notes.txt"), b"hello").expect("txt");
        let fifo = std::ffi::CString::new(dir.path().join("model.gguf").as_os_str().as_encoded_bytes())
            .expect("path");
        // SAFETY: a valid path.
        assert_eq!(unsafe { libc::mkfifo(fifo.as_ptr(), 0o600) }, 0);
        std::os::unix::fs::symlink(dir.path(), dir.path().join("loop")).expect("symlink loop");
        let mut files = Vec::new();
        let mut errors = Vec::new();
        let options = ScanOptions { hash: true, ..ScanOptions::default() };
        scan(&[dir.path().to_path_buf()], &options, |f| files.push(f), |e| errors.push(e));
        assert!(errors.is_empty(), "{errors:?}");
        let models: Vec<_> = files.iter().filter(|f| f.report.format.is_model()).collect();
        assert_eq!(models.len(), 1);
        assert!(models[0].path.ends_with("a/b/m.gguf"));
        assert_eq!(models[0].sha256.as_deref().map(str::len), Some(64));
        assert_eq!(files.len(), 2, "the FIFO and the directory link are skipped: {files:?}");
    }

    #[test]
    fn a_missing_path_is_an_error() {
        let mut errors = Vec::new();
        scan(
            &[PathBuf::from("/nonexistent/modelwatch")],
            &ScanOptions::default(),
            |_| {},
            |e| errors.push(e),
        );
        assert_eq!(errors.len(), 1);
    }
}
