//! Opening the very file the kernel reported, as its process sees it: written once,
//! used by the live sensor and by `modelwatch scan` alike (through
//! `model_analysis::open`). Routes, best first:
//! 1. the process's descriptor (`/proc/<pid>/fd/<n>`): the exact open file;
//! 2. its mapping (`/proc/<pid>/map_files/<start>-<end>`): the exact mapped file;
//! 3. the path inside the process's root (`/proc/<pid>/root`, with `openat2` and
//!    `RESOLVE_IN_ROOT`): its mount namespace, never the sensor's;
//! 4. the same path from the sensor's root, only when the kernel said the process
//!    shares the sensor's mount namespace;
//! 5. a search of the process's descriptors for that inode (the fexit backend sees an
//!    open before its descriptor exists).
//!
//! Every route checks type and identity with `fstat` before a byte is read: FIFOs,
//! devices and sockets are never read, and a swapped path is refused.

use std::path::{Path, PathBuf};

use model_analysis::{CheckedFile, OpenError, Root, open::open_magic_link};

use crate::domain::FileKey;

/// A file as the kernel reported it.
#[derive(Clone, Debug)]
pub struct FileRequest {
    pub pid: u32,
    /// The descriptor it was opened as (`None` on the fexit backend and for maps).
    pub fd: Option<i32>,
    /// `(start, length)` of the mapping, for maps.
    pub mapping: Option<(u64, u64)>,
    /// The path the kernel walked, in the process's mount namespace.
    pub path: PathBuf,
    pub key: FileKey,
    /// The process shares the sensor's mount namespace (the kernel said so).
    pub same_mount_ns: bool,
}

/// Why a file could not be read.
#[derive(Debug, thiserror::Error)]
pub enum AccessError {
    #[error("the file is gone (its process exited and no path leads to it)")]
    Gone,
    #[error(transparent)]
    Refused(OpenError),
}

/// The opened file and the root it was resolved in (kept open: it pins the process's
/// mount namespace for reading Ollama manifests later, even after the process exits).
#[derive(Debug)]
pub struct Opened {
    pub file: CheckedFile,
    pub root: Root,
}

/// Opens the regular file `request` names, checked against its kernel identity.
///
/// # Errors
/// No route leads to that regular file.
pub fn open_reported(request: &FileRequest) -> Result<Opened, AccessError> {
    let expected = Some(request.key.expected());
    let mut refused = None;
    let mut note = |result: Result<CheckedFile, OpenError>| match result {
        Ok(file) => Some(file),
        Err(error) if error.is_unreachable() => None,
        Err(error) => {
            refused = Some(error);
            None
        }
    };
    let pid = request.pid;
    let process_root = Root::of_process(pid).ok();
    let mut opened = request
        .fd
        .filter(|fd| *fd >= 0)
        .and_then(|fd| note(open_magic_link(&PathBuf::from(format!("/proc/{pid}/fd/{fd}")), expected)));
    if opened.is_none()
        && let Some((start, len)) = request.mapping.filter(|(start, len)| *start != 0 && *len != 0)
    {
        let end = start.saturating_add(len.div_ceil(4096) * 4096);
        opened = note(open_magic_link(
            &PathBuf::from(format!("/proc/{pid}/map_files/{start:x}-{end:x}")),
            expected,
        ));
    }
    let absolute = request.path.is_absolute();
    if opened.is_none()
        && absolute
        && let Some(root) = &process_root
    {
        opened = note(root.open_file(&request.path, false, expected));
    }
    let host =
        Root::host().map_err(|source| AccessError::Refused(OpenError::Io { path: "/".into(), source }))?;
    if opened.is_none() && absolute && request.same_mount_ns {
        opened = note(host.open_file(&request.path, false, expected));
    }
    if opened.is_none() {
        opened = find_descriptor(pid, &request.key).and_then(|link| note(open_magic_link(&link, expected)));
    }
    match opened {
        Some(file) => Ok(Opened { file, root: process_root.unwrap_or(host) }),
        None => Err(refused.map_or(AccessError::Gone, AccessError::Refused)),
    }
}

/// The descriptor of `pid` that holds the file `key`, found by looking at each one
/// through an `O_PATH` handle (which opens nothing).
fn find_descriptor(pid: u32, key: &FileKey) -> Option<PathBuf> {
    const MAX_DESCRIPTORS: usize = 65_536;
    let entries = std::fs::read_dir(format!("/proc/{pid}/fd")).ok()?;
    entries.flatten().take(MAX_DESCRIPTORS).map(|entry| entry.path()).find(|link| same_inode(link, key))
}

fn same_inode(link: &Path, key: &FileKey) -> bool {
    use rustix::fs::{Mode, OFlags};
    let Ok(handle) = rustix::fs::open(link, OFlags::PATH | OFlags::CLOEXEC, Mode::empty()) else {
        return false;
    };
    rustix::fs::fstat(&handle).is_ok_and(|stat| {
        stat.st_mode & libc::S_IFMT == libc::S_IFREG && stat.st_ino == key.ino && stat.st_dev == key.dev
    })
}

#[cfg(test)]
mod tests {
    use std::os::fd::AsRawFd as _;

    use super::*;

    fn key_of(file: &std::fs::File) -> FileKey {
        FileKey::from_stamp(&model_analysis::FileStamp::of(file).expect("fstat"))
    }

    fn request(path: &Path, fd: Option<i32>, key: FileKey, same_mount_ns: bool) -> FileRequest {
        FileRequest {
            pid: std::process::id(),
            fd,
            mapping: None,
            path: path.to_path_buf(),
            key,
            same_mount_ns,
        }
    }

    #[test]
    fn the_descriptor_route_reaches_a_renamed_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b"GGUF").expect("write");
        let held = std::fs::File::open(&path).expect("open");
        std::fs::rename(&path, dir.path().join("elsewhere")).expect("rename");
        let key = key_of(&held);
        let opened =
            open_reported(&request(&path, Some(held.as_raw_fd()), key, false)).expect("through the fd");
        assert_eq!(opened.file.stamp.ino, key.ino);
    }

    #[test]
    fn a_path_swapped_for_another_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b"GGUF").expect("write");
        let key = key_of(&std::fs::File::open(&path).expect("open"));
        // A second name keeps the inode alive (so the new file cannot reuse its number)
        // without any descriptor of ours leading to it.
        std::fs::hard_link(&path, dir.path().join("kept")).expect("link");
        std::fs::remove_file(&path).expect("unlink");
        std::fs::write(&path, b"other").expect("write");
        let error = open_reported(&request(&path, None, key, true)).expect_err("another inode");
        assert!(matches!(error, AccessError::Refused(OpenError::Replaced { .. })), "{error}");
    }

    #[test]
    fn the_host_path_is_used_only_in_the_same_namespace() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b"GGUF").expect("write");
        let key = key_of(&std::fs::File::open(&path).expect("open"));
        // A pid that does not exist: no process root, so only the host route could work.
        let mut gone = request(&path, None, key, false);
        gone.pid = u32::MAX - 1;
        assert!(matches!(open_reported(&gone), Err(AccessError::Gone)));
        gone.same_mount_ns = true;
        open_reported(&gone).expect("same namespace: the host path is that file");
    }
}
