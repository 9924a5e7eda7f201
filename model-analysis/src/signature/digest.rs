//! Hashing the model's files as the manifest says (whole files or byte ranges, with
//! SHA-256, BLAKE2b or BLAKE3), paced by a [`HashBudget`] and stopped by a deadline or
//! a cancellation flag between chunks.

use std::io;
use std::os::unix::fs::FileExt as _;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use crate::hash::HashBudget;
use crate::open::CheckedFile;

use super::statement::HashKind;
use super::verdict::VerifyError;

/// Bytes per `pread`: syscalls vanish next to hashing, and a cancellation is seen
/// within one chunk.
const CHUNK: usize = 1024 * 1024;

/// Limits on one verification's hashing.
#[derive(Clone, Debug, Default)]
pub struct VerifyBudget {
    /// Rate limit and per-file size cap, as for whole-file hashing.
    pub hash: HashBudget,
    /// Give up (without a verdict) once this instant passes.
    pub deadline: Option<Instant>,
    /// Give up as soon as this is set (the sensor is shutting down, the file is gone).
    pub cancel: Option<Arc<AtomicBool>>,
}

/// Keeps one verification within its budget.
pub(crate) struct Pacer<'a> {
    budget: &'a VerifyBudget,
    started: Instant,
    hashed: u64,
}

impl<'a> Pacer<'a> {
    pub(crate) fn new(budget: &'a VerifyBudget) -> Self {
        Self { budget, started: Instant::now(), hashed: 0 }
    }

    /// Fails if the verification must stop now.
    pub(crate) fn check(&self) -> Result<(), VerifyError> {
        if self.budget.cancel.as_ref().is_some_and(|c| c.load(Ordering::Relaxed)) {
            return Err(VerifyError::Cancelled);
        }
        if self.budget.deadline.is_some_and(|d| Instant::now() >= d) {
            return Err(VerifyError::DeadlineExceeded { hashed: self.hashed });
        }
        Ok(())
    }

    /// Accounts `n` bytes hashed, sleeping to keep to the rate (never past the
    /// deadline), then checks cancellation and the deadline.
    fn hashed(&mut self, n: usize) -> Result<(), VerifyError> {
        self.hashed += n as u64;
        if let Some(rate) = self.budget.hash.max_bytes_per_sec {
            let due = Duration::from_secs_f64(self.hashed as f64 / rate.max(1) as f64);
            if let Some(mut wait) = due.checked_sub(self.started.elapsed()) {
                if let Some(deadline) = self.budget.deadline {
                    wait = wait.min(deadline.saturating_duration_since(Instant::now()));
                }
                thread::sleep(wait);
            }
        }
        self.check()
    }
}

enum Hasher {
    Sha256(sha2::Sha256),
    Blake2b(Box<blake2::Blake2b512>),
    Blake3(Box<blake3::Hasher>),
}

impl Hasher {
    fn new(kind: HashKind) -> Self {
        match kind {
            HashKind::Sha256 => Self::Sha256(<sha2::Sha256 as sha2::Digest>::new()),
            HashKind::Blake2b => Self::Blake2b(Box::new(<blake2::Blake2b512 as blake2::Digest>::new())),
            HashKind::Blake3 => Self::Blake3(Box::new(blake3::Hasher::new())),
        }
    }

    fn update(&mut self, bytes: &[u8]) {
        match self {
            Self::Sha256(h) => sha2::Digest::update(h, bytes),
            Self::Blake2b(h) => blake2::Digest::update(h.as_mut(), bytes),
            Self::Blake3(h) => {
                h.update(bytes);
            }
        }
    }

    fn finish(self) -> Vec<u8> {
        match self {
            Self::Sha256(h) => sha2::Digest::finalize(h).to_vec(),
            Self::Blake2b(h) => blake2::Digest::finalize(*h).to_vec(),
            Self::Blake3(h) => h.finalize().as_bytes().to_vec(),
        }
    }
}

/// Hashes bytes `start..end` of `opened` (positional reads). A file shorter than
/// `end` changed since it was listed.
pub(crate) fn digest_range(
    opened: &CheckedFile,
    path: &Path,
    (start, end): (u64, u64),
    kind: HashKind,
    pacer: &mut Pacer<'_>,
) -> Result<Vec<u8>, VerifyError> {
    let mut hasher = Hasher::new(kind);
    let mut buf = vec![0u8; CHUNK.min(usize::try_from(end - start).unwrap_or(CHUNK)).max(1)];
    let mut offset = start;
    while offset < end {
        let want = usize::try_from(end - offset).unwrap_or(buf.len()).min(buf.len());
        let n = match opened.file.read_at(&mut buf[..want], offset) {
            Ok(0) => return Err(VerifyError::Changed { path: path.to_path_buf() }),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(VerifyError::Io { path: path.to_path_buf(), source }),
        };
        hasher.update(&buf[..n]);
        offset += n as u64;
        pacer.hashed(n)?;
    }
    Ok(hasher.finish())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::open::Root;

    fn opened(bytes: &[u8]) -> (tempfile::TempDir, std::path::PathBuf, CheckedFile) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f");
        std::fs::write(&path, bytes).expect("write");
        let file = Root::host().expect("root").open_file(&path, false, None).expect("open");
        (dir, path, file)
    }

    #[test]
    fn known_digests_of_each_kind() {
        let (_dir, path, file) = opened(b"abc");
        let budget = VerifyBudget::default();
        let mut pacer = Pacer::new(&budget);
        let sha = digest_range(&file, &path, (0, 3), HashKind::Sha256, &mut pacer).expect("sha256");
        assert_eq!(hex::encode(sha), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        let b2 = digest_range(&file, &path, (0, 3), HashKind::Blake2b, &mut pacer).expect("blake2b");
        assert!(
            hex::encode(b2).starts_with("ba80a53f981c4d0d6a2797b69f12f6e94c212f14685ac4b74b12bb6fdbffa2d1")
        );
        let b3 = digest_range(&file, &path, (0, 3), HashKind::Blake3, &mut pacer).expect("blake3");
        assert_eq!(hex::encode(b3), "6437b3ac38465133ffb63b75273a8db548c558465d79db03fd359c6cd5bd9d85");
        let part = digest_range(&file, &path, (1, 2), HashKind::Sha256, &mut pacer).expect("range");
        assert_eq!(part, <[u8; 32]>::from(<sha2::Sha256 as sha2::Digest>::digest(b"b")).to_vec());
    }

    #[test]
    fn a_short_file_cancellation_and_deadline_stop_hashing() {
        let (_dir, path, file) = opened(&[0u8; 10]);
        let budget = VerifyBudget::default();
        let mut pacer = Pacer::new(&budget);
        let short = digest_range(&file, &path, (0, 11), HashKind::Sha256, &mut pacer);
        assert!(matches!(short, Err(VerifyError::Changed { .. })));
        let cancel = Arc::new(AtomicBool::new(true));
        let budget = VerifyBudget { cancel: Some(cancel), ..VerifyBudget::default() };
        let mut pacer = Pacer::new(&budget);
        let cancelled = digest_range(&file, &path, (0, 10), HashKind::Sha256, &mut pacer);
        assert!(matches!(cancelled, Err(VerifyError::Cancelled)));
        let budget = VerifyBudget { deadline: Some(Instant::now()), ..VerifyBudget::default() };
        let mut pacer = Pacer::new(&budget);
        let late = digest_range(&file, &path, (0, 10), HashKind::Sha256, &mut pacer);
        assert!(matches!(late, Err(VerifyError::DeadlineExceeded { .. })));
    }

    #[test]
    fn the_rate_limit_gives_way_to_the_deadline() {
        let (_dir, path, file) = opened(&vec![1u8; 3 * CHUNK]);
        // 1 byte/s would take weeks; the deadline ends it within a second.
        let budget = VerifyBudget {
            hash: HashBudget { max_bytes_per_sec: Some(1), max_bytes: None },
            deadline: Some(Instant::now() + Duration::from_millis(200)),
            cancel: None,
        };
        let started = Instant::now();
        let mut pacer = Pacer::new(&budget);
        let result = digest_range(&file, &path, (0, 3 * CHUNK as u64), HashKind::Sha256, &mut pacer);
        assert!(matches!(result, Err(VerifyError::DeadlineExceeded { .. })), "{result:?}");
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
