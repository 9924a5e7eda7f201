//! The at-rest sweep: model stores on disk (Ollama, the Hugging Face cache, LM Studio,
//! configured roots) walked once at start-up, at idle I/O priority, on its own thread.
//! Every model found is analysed and hashed like a loaded one and reported "at rest".

use std::{
    collections::HashSet,
    path::{Path, PathBuf},
};

use tokio::sync::mpsc::Sender;

use model_analysis::{HashBudget, Limits, ModelReport, Root};

use super::candidate::CandidateRule;
use crate::domain::FileKey;

/// What the sweep reports.
pub enum SweepItem {
    /// The roots it will walk.
    Started {
        roots: Vec<PathBuf>,
    },
    /// A file looked at (models or not), for progress.
    Seen,
    Model {
        key: FileKey,
        path: PathBuf,
        report: Box<ModelReport>,
        sha256: Option<String>,
    },
    Done,
}

/// Most files looked at, and deepest directory walked, per sweep.
const MAX_FILES: u64 = 200_000;
const MAX_DEPTH: usize = 16;

/// Model stores under every home directory, and the services' own.
#[must_use]
pub fn default_roots() -> Vec<PathBuf> {
    const IN_HOME: [&str; 4] =
        [".ollama/models", ".cache/huggingface/hub", ".lmstudio/models", ".cache/lm-studio/models"];
    let mut homes: Vec<PathBuf> = vec![PathBuf::from("/root")];
    if let Ok(entries) = std::fs::read_dir("/home") {
        homes.extend(entries.flatten().map(|e| e.path()));
    }
    let mut roots: Vec<PathBuf> =
        homes.iter().flat_map(|home| IN_HOME.iter().map(move |store| home.join(store))).collect();
    roots.extend(["/usr/share/ollama/.ollama/models", "/var/lib/ollama"].map(PathBuf::from));
    roots.retain(|r| r.is_dir());
    roots
}

/// Walks `roots`, sending what it finds; blocking, at idle I/O priority.
pub fn sweep(roots: &[PathBuf], rule: &CandidateRule, hash: &HashBudget, items: &Sender<SweepItem>) {
    lower_io_priority();
    if items.blocking_send(SweepItem::Started { roots: roots.to_vec() }).is_err() {
        return;
    }
    let Ok(host) = Root::host() else { return };
    let limits = Limits::default();
    let mut seen_files = 0u64;
    let mut seen_keys = HashSet::new();
    let mut pending: Vec<(PathBuf, usize)> = roots.iter().map(|r| (r.clone(), 0)).collect();
    while let Some((dir, depth)) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else { continue };
        for entry in entries.flatten() {
            if seen_files >= MAX_FILES {
                let _ = items.blocking_send(SweepItem::Done);
                return;
            }
            let path = entry.path();
            // lstat: symlinked directories are not followed (no loops, no escapes).
            let Ok(kind) = entry.file_type() else { continue };
            if kind.is_dir() {
                if depth < MAX_DEPTH {
                    pending.push((path, depth + 1));
                }
                continue;
            }
            seen_files += 1;
            if items.blocking_send(SweepItem::Seen).is_err() {
                return;
            }
            if let Some(item) = examine(&host, &path, rule, &limits, hash, &mut seen_keys)
                && items.blocking_send(item).is_err()
            {
                return;
            }
        }
    }
    let _ = items.blocking_send(SweepItem::Done);
}

/// A model at `path` (symlinks followed inside the root: Hugging Face snapshots), once
/// per identity.
fn examine(
    host: &Root,
    path: &Path,
    rule: &CandidateRule,
    limits: &Limits,
    hash: &HashBudget,
    seen: &mut HashSet<FileKey>,
) -> Option<SweepItem> {
    let (report, opened) = model_analysis::analyze_path(host, path, limits).ok()?;
    let key = FileKey::from_stamp(&opened.stamp);
    if !report.format.is_model() || !rule.matches(path, key.size) || !seen.insert(key) {
        return None;
    }
    let sha256 = model_analysis::sha256_file(&opened.file, &opened.stamp, hash).ok().map(hex::encode);
    Some(SweepItem::Model { key, path: path.to_path_buf(), report: Box::new(report), sha256 })
}

/// `ioprio_set(IOPRIO_WHO_PROCESS, this thread, IOPRIO_CLASS_IDLE)`: the sweep reads
/// only when nobody else wants the disk.
fn lower_io_priority() {
    const IOPRIO_WHO_PROCESS: libc::c_long = 1;
    const IOPRIO_CLASS_IDLE: libc::c_long = 3;
    const IOPRIO_CLASS_SHIFT: libc::c_long = 13;
    // SAFETY: a plain syscall with integer arguments; 0 names the calling thread.
    let rc = unsafe {
        libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, IOPRIO_CLASS_IDLE << IOPRIO_CLASS_SHIFT)
    };
    if rc != 0 {
        tracing::debug!("could not lower the sweep's I/O priority");
    }
}
