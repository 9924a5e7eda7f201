//! The hashing service: SHA-256 of model files, off the event path. One worker with a
//! bounded queue and an I/O budget; the file hashed is the descriptor whose inode was
//! verified against the kernel's, and a file that changes meanwhile is not reported.

use std::{
    fs::File,
    num::NonZeroUsize,
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicU64, Ordering},
    },
    time::SystemTime,
};

use model_analysis::{FileStamp, HashBudget, HashError, digest_finding};
use proto::v1::{ModelHashed, Process, event::Payload};
use tokio::sync::mpsc;

use super::identify::FileKey;
use crate::{correlate::convert, publish::EventLog};

/// One file to hash.
pub struct HashJob {
    pub file: File,
    pub key: FileKey,
    pub path: String,
    pub process: Option<Process>,
}

/// Counters for status.
#[derive(Debug, Default)]
pub struct HashStats {
    pub hashed: AtomicU64,
    /// Not hashed: the queue was full.
    pub skipped: AtomicU64,
    /// Not hashed: the file changed, was too large, or a read failed.
    pub failed: AtomicU64,
}

/// Digests already computed, by file identity.
pub type DigestCache = Arc<Mutex<lru::LruCache<FileKey, [u8; 32]>>>;

/// Handle to the worker.
#[derive(Clone)]
pub struct Hasher {
    queue: mpsc::Sender<HashJob>,
    pub stats: Arc<HashStats>,
    pub digests: DigestCache,
}

impl Hasher {
    /// Starts the worker; it publishes a `ModelHashed` event per digest.
    #[must_use]
    pub fn spawn(log: Arc<EventLog>, budget: HashBudget, queue: usize) -> Self {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let stats = Arc::new(HashStats::default());
        let digests =
            Arc::new(Mutex::new(lru::LruCache::new(NonZeroUsize::new(8192).unwrap_or(NonZeroUsize::MIN))));
        tokio::spawn(work(rx, log, budget, Arc::clone(&stats), Arc::clone(&digests)));
        Self { queue: tx, stats, digests }
    }

    /// Queues a job; a full queue drops it (counted) rather than wait.
    pub fn submit(&self, job: HashJob) {
        if self.queue.try_send(job).is_err() {
            self.stats.skipped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// The digest of `key`, if already known.
    #[must_use]
    pub fn known(&self, key: &FileKey) -> Option<[u8; 32]> {
        self.digests.lock().unwrap_or_else(PoisonError::into_inner).get(key).copied()
    }
}

async fn work(
    mut jobs: mpsc::Receiver<HashJob>,
    log: Arc<EventLog>,
    budget: HashBudget,
    stats: Arc<HashStats>,
    digests: DigestCache,
) {
    while let Some(job) = jobs.recv().await {
        let Ok(stamp) = FileStamp::of(&job.file) else {
            stats.failed.fetch_add(1, Ordering::Relaxed);
            continue;
        };
        let HashJob { file, key, path, process } = job;
        let result =
            tokio::task::spawn_blocking(move || model_analysis::sha256_file(&file, &stamp, &budget)).await;
        match result {
            Ok(Ok(digest)) => {
                stats.hashed.fetch_add(1, Ordering::Relaxed);
                digests.lock().unwrap_or_else(PoisonError::into_inner).put(key, digest);
                log.publish(SystemTime::now(), process, Payload::ModelHashed(hashed(&path, &key, &digest)));
            }
            Ok(Err(error)) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                log_failure(&path, &error);
            }
            Err(error) => {
                stats.failed.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(%error, path, "hashing task failed");
            }
        }
    }
}

fn hashed(path: &str, key: &FileKey, digest: &[u8; 32]) -> ModelHashed {
    let name = std::path::Path::new(path);
    let claimed = model_analysis::claimed_sha256(name);
    ModelHashed {
        path: path.to_owned(),
        identity: Some(convert::identity(key)),
        sha256: hex(digest),
        claimed_sha256_matches: claimed.map(|c| &c == digest),
        findings: digest_finding(name, digest).iter().map(convert::finding).collect(),
    }
}

fn log_failure(path: &str, error: &HashError) {
    match error {
        HashError::Changed { .. } => tracing::info!(path, "not hashed: the file changed while it was read"),
        other => tracing::warn!(path, error = %other, "not hashed"),
    }
}

/// Lower-case hex.
#[must_use]
pub fn hex(bytes: &[u8]) -> String {
    // Called for every model event: a formatter per byte showed up in profiles.
    hex::encode(bytes)
}
