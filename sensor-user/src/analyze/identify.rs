//! Opens the file the kernel reported, as that process sees it, and identifies it by
//! content. The file is reached through `/proc/<pid>/fd/<fd>` (the very open file) or
//! `/proc/<pid>/root/<path>` (the process's mount namespace), and is accepted only if
//! it is a regular file with the device and inode the kernel reported. FIFOs, devices
//! and sockets are never opened.

use std::{
    fs::File,
    os::unix::fs::{MetadataExt as _, OpenOptionsExt as _},
    path::{Path, PathBuf},
};

use sensor_common::FileIdentity;
use thiserror::Error;

/// A file's identity in userspace terms (what `stat` reports).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct FileKey {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
}

impl FileKey {
    /// From the kernel's identity: the kernel encodes dev_t as major << 20 | minor.
    #[must_use]
    pub fn from_kernel(identity: &FileIdentity) -> Self {
        Self {
            dev: libc::makedev(identity.dev >> 20, identity.dev & 0xf_ffff),
            ino: identity.ino,
            size: identity.size,
            mtime_ns: identity
                .mtime_sec
                .saturating_mul(1_000_000_000)
                .saturating_add(i64::from(identity.mtime_nsec)),
        }
    }
}

#[derive(Debug, Error)]
pub enum IdentifyError {
    #[error("the file is gone (the process exited and the path no longer leads to it)")]
    Gone,
    #[error("{path} is not a regular file; not opened")]
    NotRegular { path: PathBuf },
    #[error("{path} is not the inode the kernel reported (dev {dev} ino {ino})")]
    Replaced { path: PathBuf, dev: u64, ino: u64 },
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where to look for a file a process opened or mapped, best first: its descriptor,
/// its mapping, its path in the process's mount namespace, the same path here.
#[must_use]
pub fn candidate_paths(pid: u32, fd: Option<i32>, mapping: Option<(u64, u64)>, path: &str) -> Vec<PathBuf> {
    let mut paths = Vec::with_capacity(4);
    if let Some(fd) = fd.filter(|fd| *fd >= 0) {
        paths.push(PathBuf::from(format!("/proc/{pid}/fd/{fd}")));
    }
    if let Some((start, len)) = mapping.filter(|(start, len)| *start != 0 && *len != 0) {
        let end = start.saturating_add(len.div_ceil(4096) * 4096);
        paths.push(PathBuf::from(format!("/proc/{pid}/map_files/{start:x}-{end:x}")));
    }
    if path.starts_with('/') {
        paths.push(PathBuf::from(format!("/proc/{pid}/root{path}")));
        // The process may be gone; the host path is used only if it is the same inode.
        paths.push(PathBuf::from(path));
    }
    paths
}

/// The descriptor of `pid` that holds the file `key`, found by looking at each one.
/// For events that carry no descriptor (the fexit backend sees an open before its
/// descriptor exists) once the path no longer leads to the file (renamed, deleted).
#[must_use]
pub fn find_descriptor(pid: u32, key: &FileKey) -> Option<PathBuf> {
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    // stat follows the descriptor's magic link; it never opens, so a FIFO is harmless.
    entries.flatten().take(65_536).map(|entry| entry.path()).find(|path| {
        std::fs::metadata(path).is_ok_and(|m| m.is_file() && m.dev() == key.dev && m.ino() == key.ino)
    })
}

/// Opens the first candidate that is the regular file with the expected dev and inode.
///
/// # Errors
/// None of the candidates is that file.
pub fn open_verified(candidates: &[PathBuf], key: &FileKey) -> Result<File, IdentifyError> {
    let mut last = IdentifyError::Gone;
    for path in candidates {
        match open_one(path, key) {
            Ok(file) => return Ok(file),
            Err(error @ (IdentifyError::NotRegular { .. } | IdentifyError::Replaced { .. })) => last = error,
            Err(_) => {}
        }
    }
    Err(last)
}

fn open_one(path: &Path, key: &FileKey) -> Result<File, IdentifyError> {
    let io = |source| IdentifyError::Io { path: path.to_path_buf(), source };
    // stat first: opening a FIFO or a device can block or have side effects.
    let meta = std::fs::metadata(path).map_err(io)?;
    check(path, &meta, key)?;
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    // And again on the open file: the path may have been swapped in between.
    let meta = file.metadata().map_err(io)?;
    check(path, &meta, key)?;
    Ok(file)
}

fn check(path: &Path, meta: &std::fs::Metadata, key: &FileKey) -> Result<(), IdentifyError> {
    if !meta.file_type().is_file() {
        return Err(IdentifyError::NotRegular { path: path.to_path_buf() });
    }
    if meta.dev() != key.dev || meta.ino() != key.ino {
        return Err(IdentifyError::Replaced { path: path.to_path_buf(), dev: key.dev, ino: key.ino });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key_of(path: &Path) -> FileKey {
        let meta = std::fs::metadata(path).expect("stat");
        FileKey { dev: meta.dev(), ino: meta.ino(), size: meta.size(), mtime_ns: 0 }
    }

    #[test]
    fn opens_the_reported_inode_only() {
        let dir = tempfile::tempdir().expect("tempdir");
        let model = dir.path().join("m.gguf");
        std::fs::write(&model, b"GGUF\x03\0\0\0").expect("write");
        let key = key_of(&model);
        open_verified(std::slice::from_ref(&model), &key).expect("same inode opens");

        let other = dir.path().join("other");
        std::fs::write(&other, b"x").expect("write");
        assert!(matches!(open_verified(&[other], &key), Err(IdentifyError::Replaced { .. })));
    }

    #[test]
    fn never_opens_a_fifo() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("model.gguf");
        let c = std::ffi::CString::new(fifo.as_os_str().as_encoded_bytes()).expect("path");
        // SAFETY: a valid path string.
        assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
        let key = key_of(&fifo);
        // Opening a FIFO for reading would block; this must return at once.
        assert!(matches!(open_verified(&[fifo], &key), Err(IdentifyError::NotRegular { .. })));
    }

    #[test]
    fn kernel_dev_encoding_is_converted() {
        let identity = FileIdentity { dev: (8 << 20) | 1, ..FileIdentity::default() };
        assert_eq!(FileKey::from_kernel(&identity).dev, libc::makedev(8, 1));
    }
}
