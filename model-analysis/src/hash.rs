//! SHA-256 of a whole model file, guarded against the file changing underneath.
//!
//! The caller opened the file and recorded a [`FileStamp`] (from the kernel event or an
//! fstat). The hash is only returned if the file still has that stamp before and after
//! hashing: otherwise the bytes hashed may not be the bytes that were (or will be)
//! loaded, and [`HashError::Changed`] tells the caller to discard the result.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::thread;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

use crate::open::FileStamp;

/// Bytes read per `pread`: large enough that syscalls vanish next to hashing.
const CHUNK: usize = 1024 * 1024;

/// Limits on one hash.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct HashBudget {
    /// Throttle: at most this many bytes per second (sleeping between chunks), so that
    /// hashing a 40 GB model does not starve the host's I/O.
    pub max_bytes_per_sec: Option<u64>,
    /// Refuse files larger than this.
    pub max_bytes: Option<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum HashError {
    #[error("the file changed while it was hashed (before: {before:?}, after: {after:?}): discard the hash")]
    Changed { before: FileStamp, after: FileStamp },
    #[error("the file is {size} bytes, above the hashing cap of {cap} bytes")]
    TooLarge { size: u64, cap: u64 },
    #[error("hashing failed reading at offset {offset}")]
    Io {
        offset: u64,
        #[source]
        source: io::Error,
    },
}

/// Streams `file` through SHA-256 (positional reads: the file offset is left alone),
/// then re-checks its stamp. Returns the digest only if the file kept `expected`
/// throughout.
pub fn sha256_file(file: &File, expected: &FileStamp, budget: &HashBudget) -> Result<[u8; 32], HashError> {
    let stat = |offset| FileStamp::of(file).map_err(|source| HashError::Io { offset, source });
    let before = stat(0)?;
    if before != *expected {
        return Err(HashError::Changed { before: *expected, after: before });
    }
    if let Some(cap) = budget.max_bytes
        && expected.size > cap
    {
        return Err(HashError::TooLarge { size: expected.size, cap });
    }
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; CHUNK];
    let mut offset = 0u64;
    let started = Instant::now();
    while offset < expected.size {
        let want = usize::try_from(expected.size - offset).unwrap_or(CHUNK).min(CHUNK);
        let n = match file.read_at(&mut buf[..want], offset) {
            Ok(0) => {
                // Shorter than its stamp: truncated while we read.
                let after = stat(offset)?;
                return Err(HashError::Changed { before: *expected, after });
            }
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(source) => return Err(HashError::Io { offset, source }),
        };
        hasher.update(&buf[..n]);
        offset += n as u64;
        if let Some(rate) = budget.max_bytes_per_sec {
            throttle(started, offset, rate);
        }
    }
    let after = stat(offset)?;
    if after != *expected {
        return Err(HashError::Changed { before: *expected, after });
    }
    Ok(hasher.finalize().into())
}

/// Sleeps until `done` bytes are no more than `rate` bytes/second since `started`.
fn throttle(started: Instant, done: u64, rate: u64) {
    let rate = rate.max(1);
    let due = Duration::from_secs_f64(done as f64 / rate as f64);
    if let Some(wait) = due.checked_sub(started.elapsed()) {
        thread::sleep(wait);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(bytes: &[u8]) -> (tempfile::NamedTempFile, File, FileStamp) {
        let mut tmp = tempfile::NamedTempFile::new().expect("tempfile");
        tmp.write_all(bytes).expect("write");
        tmp.flush().expect("flush");
        let file = File::open(tmp.path()).expect("open");
        let stamp = FileStamp::of(&file).expect("stat");
        (tmp, file, stamp)
    }

    #[test]
    fn hashes_known_content() {
        let (_tmp, file, stamp) = file_with(b"abc");
        let digest = sha256_file(&file, &stamp, &HashBudget::default()).expect("hash");
        assert_eq!(hex::encode(digest), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    }

    #[test]
    fn hashes_across_chunks() {
        let data: Vec<u8> = (0..CHUNK * 2 + 17).map(|i| (i % 251) as u8).collect();
        let (_tmp, file, stamp) = file_with(&data);
        let digest = sha256_file(&file, &stamp, &HashBudget::default()).expect("hash");
        assert_eq!(digest, <[u8; 32]>::from(Sha256::digest(&data)));
    }

    #[test]
    fn a_stale_stamp_is_refused_before_reading() {
        let (_tmp, file, stamp) = file_with(b"abc");
        let stale = FileStamp { mtime_ns: stamp.mtime_ns ^ 1, ..stamp };
        let err = sha256_file(&file, &stale, &HashBudget::default()).expect_err("stale");
        assert!(matches!(err, HashError::Changed { .. }), "{err}");
    }

    #[test]
    fn size_cap() {
        let (_tmp, file, stamp) = file_with(&[0; 100]);
        let budget = HashBudget { max_bytes: Some(99), ..HashBudget::default() };
        assert!(matches!(
            sha256_file(&file, &stamp, &budget),
            Err(HashError::TooLarge { size: 100, cap: 99 })
        ));
    }

    #[test]
    fn throttling_paces_the_reads() {
        // 3 chunks at 8 MiB/s: at least ~0.25 s after the first chunk is due.
        let data = vec![7u8; CHUNK * 3];
        let (_tmp, file, stamp) = file_with(&data);
        let budget = HashBudget { max_bytes_per_sec: Some(8 * CHUNK as u64), ..HashBudget::default() };
        let started = Instant::now();
        sha256_file(&file, &stamp, &budget).expect("hash");
        let elapsed = started.elapsed();
        assert!(elapsed >= Duration::from_millis(300), "{elapsed:?}");
        assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    }
}
