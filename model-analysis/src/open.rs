//! Opening files that other users control, as root, without being steered.
//!
//! Every file modelwatch reads (models, Ollama manifests, Hugging Face refs, its own
//! configuration) is opened here, in two steps:
//! 1. an `O_PATH` descriptor, which never runs a driver's `open` (a FIFO cannot block
//!    it, a device node cannot notice it): by path, with `openat2` and
//!    `RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS` inside a root directory (symlinks are
//!    followed, but cannot leave that root); or by descriptor, through
//!    `/proc/<pid>/fd/<n>` or `/proc/<pid>/map_files/<range>`, magic links used on
//!    purpose to reach the exact open file a process holds;
//! 2. `fstat` on that descriptor: a regular file, with the expected identity, or
//!    nothing is read. Only then is it reopened for reading through
//!    `/proc/self/fd/<n>`, which pins the same inode, with `O_NONBLOCK | O_NOCTTY |
//!    O_CLOEXEC` and `O_NOATIME` where allowed.

use std::{
    fs::File,
    os::fd::{AsFd, AsRawFd as _, OwnedFd},
    path::{Path, PathBuf},
};

use rustix::fs::{Mode, OFlags, ResolveFlags, Stat};
use serde::Serialize;

/// What identifies one version of one file: where it lives, and when it last changed.
/// The change time is part of it because the file's owner can reset `mtime`
/// (`touch -d`) but not `ctime`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct FileStamp {
    pub dev: u64,
    pub ino: u64,
    pub size: u64,
    pub mtime_ns: i64,
    pub ctime_ns: i64,
}

impl FileStamp {
    #[must_use]
    pub fn from_stat(stat: &Stat) -> Self {
        let ns = |sec: i64, nsec: i64| sec.saturating_mul(1_000_000_000).saturating_add(nsec);
        #[expect(
            clippy::cast_possible_wrap,
            clippy::useless_conversion,
            reason = "stat field widths vary by arch"
        )]
        Self {
            dev: stat.st_dev,
            ino: stat.st_ino,
            size: u64::try_from(stat.st_size).unwrap_or(0),
            mtime_ns: ns(i64::from(stat.st_mtime), i64::from(stat.st_mtime_nsec as i64)),
            ctime_ns: ns(i64::from(stat.st_ctime), i64::from(stat.st_ctime_nsec as i64)),
        }
    }

    /// The stamp of an open file (`fstat`).
    ///
    /// # Errors
    /// `fstat` failed.
    pub fn of(file: impl AsFd) -> std::io::Result<Self> {
        Ok(Self::from_stat(&rustix::fs::fstat(file)?))
    }
}

/// What the caller expects to find: a file identity from the kernel, matched on the
/// inode and, where the filesystem allows it, the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Expected {
    pub dev: u64,
    pub ino: u64,
}

/// Why a file was not opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("{path} is a {kind}, not a regular file: not opened")]
    NotRegular { path: PathBuf, kind: &'static str },
    #[error("{path} is not the file expected (dev {dev} inode {ino}): not read")]
    Replaced { path: PathBuf, dev: u64, ino: u64 },
    #[error("{path} is a symbolic link: not followed")]
    Symlink { path: PathBuf },
    #[error("cannot open {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl OpenError {
    /// The path could not be reached at all (gone, permission), as opposed to leading
    /// somewhere it should not.
    #[must_use]
    pub fn is_unreachable(&self) -> bool {
        matches!(self, Self::Io { .. })
    }
}

/// A regular file opened for reading, with the identity `fstat` gave before any read.
#[derive(Debug)]
pub struct CheckedFile {
    pub file: File,
    pub stamp: FileStamp,
}

/// A directory that path resolution cannot climb out of: `/` for the sensor's own
/// mount namespace, `/proc/<pid>/root` for a process's.
#[derive(Debug)]
pub struct Root {
    fd: OwnedFd,
    label: PathBuf,
}

impl Root {
    /// The sensor's own root.
    ///
    /// # Errors
    /// `/` cannot be opened (never, in practice).
    pub fn host() -> std::io::Result<Self> {
        Self::open(Path::new("/"))
    }

    /// The root of `pid`'s mount namespace (and chroot), as that process sees it.
    ///
    /// # Errors
    /// The process is gone, or this user may not see its root.
    pub fn of_process(pid: u32) -> std::io::Result<Self> {
        Self::open(&PathBuf::from(format!("/proc/{pid}/root")))
    }

    fn open(path: &Path) -> std::io::Result<Self> {
        let fd = rustix::fs::open(path, OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC, Mode::empty())?;
        Ok(Self { fd, label: path.to_path_buf() })
    }

    /// Opens the regular file at `path` (absolute or relative: both resolve from this
    /// root). `follow_final`: whether a symlink as the last component is followed
    /// (inside the root). Kernel-reported paths are already resolved and pass `false`.
    ///
    /// # Errors
    /// See [`OpenError`].
    pub fn open_file(
        &self,
        path: &Path,
        follow_final: bool,
        expected: Option<Expected>,
    ) -> Result<CheckedFile, OpenError> {
        let shown = self.label.join(path.strip_prefix("/").unwrap_or(path));
        let mut flags = OFlags::PATH | OFlags::CLOEXEC;
        if !follow_final {
            flags |= OFlags::NOFOLLOW;
        }
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        let relative = path.strip_prefix("/").unwrap_or(path);
        let relative = if relative.as_os_str().is_empty() { Path::new(".") } else { relative };
        let handle = rustix::fs::openat2(&self.fd, relative, flags, Mode::empty(), resolve)
            .map_err(|e| OpenError::Io { path: shown.clone(), source: e.into() })?;
        reopen_checked(&handle, &shown, expected)
    }

    /// Opens a directory below this root, for walking it.
    ///
    /// # Errors
    /// It is not a directory, or cannot be reached.
    pub fn open_dir(&self, path: &Path) -> std::io::Result<OwnedFd> {
        let relative = path.strip_prefix("/").unwrap_or(path);
        let relative = if relative.as_os_str().is_empty() { Path::new(".") } else { relative };
        let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC | OFlags::NOFOLLOW;
        let resolve = ResolveFlags::IN_ROOT | ResolveFlags::NO_MAGICLINKS;
        Ok(rustix::fs::openat2(&self.fd, relative, flags, Mode::empty(), resolve)?)
    }
}

/// Reads a small file the sensor is configured with (its configuration, catalog, keys,
/// certificates) as a regular file only: a FIFO, device or socket put in its place is
/// refused instead of blocking start-up or a reload. A relative path is the working
/// directory's, as the user typed it.
///
/// # Errors
/// It cannot be opened, is not a regular file, or is larger than `max_bytes`.
pub fn read_regular(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    let absolute = if path.is_absolute() { path.to_path_buf() } else { std::env::current_dir()?.join(path) };
    let opened =
        Root::host()?.open_file(&absolute, true, None).map_err(|e| std::io::Error::other(e.to_string()))?;
    if opened.stamp.size > max_bytes {
        return Err(std::io::Error::other(format!("larger than {max_bytes} bytes")));
    }
    let mut bytes = Vec::new();
    std::io::Read::read_to_end(&mut std::io::Read::take(opened.file, max_bytes), &mut bytes)?;
    Ok(bytes)
}

/// Opens the file a process holds open as descriptor `fd`, or has mapped at
/// `map_files/<range>`: `link` is that `/proc` magic link, followed on purpose.
///
/// # Errors
/// See [`OpenError`].
pub fn open_magic_link(link: &Path, expected: Option<Expected>) -> Result<CheckedFile, OpenError> {
    let handle = rustix::fs::open(link, OFlags::PATH | OFlags::CLOEXEC, Mode::empty())
        .map_err(|e| OpenError::Io { path: link.to_path_buf(), source: e.into() })?;
    reopen_checked(&handle, link, expected)
}

/// Checks an `O_PATH` handle, then opens the very inode it pins for reading.
fn reopen_checked(
    handle: &OwnedFd,
    shown: &Path,
    expected: Option<Expected>,
) -> Result<CheckedFile, OpenError> {
    let io = |e: rustix::io::Errno| OpenError::Io { path: shown.to_path_buf(), source: e.into() };
    let stat = rustix::fs::fstat(handle).map_err(io)?;
    check(&stat, handle, shown, expected)?;
    let through = PathBuf::from(format!("/proc/self/fd/{}", handle.as_raw_fd()));
    let base = OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
    // O_NOATIME needs CAP_FOWNER over files of other owners; without it, EPERM.
    let fd = match rustix::fs::open(&through, base | OFlags::NOATIME, Mode::empty()) {
        Err(rustix::io::Errno::PERM) => rustix::fs::open(&through, base, Mode::empty()),
        other => other,
    }
    .map_err(io)?;
    let reopened = rustix::fs::fstat(&fd).map_err(io)?;
    if reopened.st_ino != stat.st_ino || reopened.st_dev != stat.st_dev {
        return Err(OpenError::Replaced { path: shown.to_path_buf(), dev: stat.st_dev, ino: stat.st_ino });
    }
    Ok(CheckedFile { file: File::from(fd), stamp: FileStamp::from_stat(&reopened) })
}

fn check(stat: &Stat, handle: &OwnedFd, shown: &Path, expected: Option<Expected>) -> Result<(), OpenError> {
    let kind = file_kind(stat.st_mode);
    if kind == "symbolic link" {
        return Err(OpenError::Symlink { path: shown.to_path_buf() });
    }
    if kind != "regular file" {
        return Err(OpenError::NotRegular { path: shown.to_path_buf(), kind });
    }
    let Some(expected) = expected else { return Ok(()) };
    let dev_matches = stat.st_dev == expected.dev || (stat.st_ino == expected.ino && dev_may_differ(handle));
    if stat.st_ino != expected.ino || !dev_matches {
        return Err(OpenError::Replaced { path: shown.to_path_buf(), dev: expected.dev, ino: expected.ino });
    }
    Ok(())
}

/// Filesystems whose `st_dev` is not the superblock's device the kernel reports: btrfs
/// gives each subvolume its own anonymous device, and overlayfs reports the overlay's
/// while a mapping holds the layer's file. On them the inode alone must match.
fn dev_may_differ(handle: &OwnedFd) -> bool {
    const BTRFS_SUPER_MAGIC: i64 = 0x9123_683E;
    const OVERLAYFS_SUPER_MAGIC: i64 = 0x794C_7630;
    rustix::fs::fstatfs(handle).is_ok_and(|fs| {
        #[expect(clippy::useless_conversion, reason = "f_type's width varies by arch")]
        let magic = i64::from(fs.f_type);
        magic == BTRFS_SUPER_MAGIC || magic == OVERLAYFS_SUPER_MAGIC
    })
}

/// Where an open file really is (the kernel's name for it, `/proc/self/fd/<n>`), in
/// the namespace of the process that opened it; `None` when it has no name (deleted).
#[must_use]
pub fn resolved_path(file: &File) -> Option<PathBuf> {
    let link = rustix::fs::readlink(format!("/proc/self/fd/{}", file.as_raw_fd()), Vec::new()).ok()?;
    let text = link.to_str().ok()?;
    (text.starts_with('/') && !text.ends_with(" (deleted)")).then(|| PathBuf::from(text))
}

/// A file type's name, for messages.
#[must_use]
pub fn file_kind(mode: u32) -> &'static str {
    match mode & libc::S_IFMT {
        libc::S_IFREG => "regular file",
        libc::S_IFDIR => "directory",
        libc::S_IFIFO => "FIFO",
        libc::S_IFSOCK => "socket",
        libc::S_IFBLK => "block device",
        libc::S_IFCHR => "character device",
        libc::S_IFLNK => "symbolic link",
        _ => "special file",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mkfifo(path: &Path) {
        let status = std::process::Command::new("mkfifo").arg(path).status().expect("mkfifo");
        assert!(status.success());
    }

    #[test]
    fn a_regular_file_opens_with_its_stamp() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("m.gguf");
        std::fs::write(&path, b"GGUF").expect("write");
        let root = Root::host().expect("root");
        let opened = root.open_file(&path, false, None).expect("opens");
        assert_eq!(opened.stamp.size, 4);
        let expected = Expected { dev: opened.stamp.dev, ino: opened.stamp.ino };
        root.open_file(&path, false, Some(expected)).expect("same identity");
        let other = Expected { dev: expected.dev, ino: expected.ino + 1 };
        assert!(matches!(root.open_file(&path, false, Some(other)), Err(OpenError::Replaced { .. })));
    }

    #[test]
    fn a_fifo_is_refused_without_blocking() {
        let dir = tempfile::tempdir().expect("tempdir");
        let fifo = dir.path().join("manifest");
        mkfifo(&fifo);
        let root = Root::host().expect("root");
        assert!(matches!(root.open_file(&fifo, true, None), Err(OpenError::NotRegular { kind: "FIFO", .. })));
        assert!(matches!(open_magic_link(&fifo, None), Err(OpenError::NotRegular { .. })));
    }

    #[test]
    fn configured_files_are_read_whole_and_a_fifo_or_an_oversized_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let config = dir.path().join("modelwatch.toml");
        std::fs::write(&config, b"node = \"x\"\n").expect("write");
        assert_eq!(read_regular(&config, 64).expect("reads"), b"node = \"x\"\n");
        let error = read_regular(&config, 4).expect_err("too large");
        assert!(error.to_string().contains("larger than 4 bytes"), "{error}");
        let fifo = dir.path().join("catalog.toml");
        mkfifo(&fifo);
        let error = read_regular(&fifo, 64).expect_err("a FIFO");
        assert!(error.to_string().contains("FIFO"), "{error}");
    }

    #[test]
    fn a_device_node_is_refused() {
        let root = Root::host().expect("root");
        let error = root.open_file(Path::new("/dev/null"), true, None).expect_err("a device");
        assert!(matches!(error, OpenError::NotRegular { kind: "character device", .. }), "{error}");
    }

    #[test]
    fn a_final_symlink_is_followed_only_when_asked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let target = dir.path().join("blob");
        std::fs::write(&target, b"x").expect("write");
        let link = dir.path().join("model.safetensors");
        std::os::unix::fs::symlink(&target, &link).expect("symlink");
        let root = Root::host().expect("root");
        assert!(matches!(root.open_file(&link, false, None), Err(OpenError::Symlink { .. })));
        root.open_file(&link, true, None).expect("followed when allowed");
    }

    #[test]
    fn symlinks_cannot_leave_the_root() {
        let dir = tempfile::tempdir().expect("tempdir");
        let inner = dir.path().join("root");
        std::fs::create_dir(&inner).expect("mkdir");
        std::fs::write(dir.path().join("outside"), b"secret").expect("write");
        std::fs::write(inner.join("outside"), b"inside").expect("write");
        // An absolute link and a climbing one both resolve inside the root.
        std::os::unix::fs::symlink("/outside", inner.join("abs")).expect("symlink");
        std::os::unix::fs::symlink("../../../outside", inner.join("climb")).expect("symlink");
        let root = Root::open(&inner).expect("root");
        for name in ["abs", "climb"] {
            let mut opened = root.open_file(Path::new(name), true, None).expect("resolves inside");
            let mut text = String::new();
            std::io::Read::read_to_string(&mut opened.file, &mut text).expect("read");
            assert_eq!(text, "inside", "{name} escaped the root");
        }
    }

    #[test]
    fn magic_links_are_refused_on_the_path_route() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = File::open("/etc/hostname").or_else(|_| File::open("/proc/self/stat")).expect("some file");
        let link = dir.path().join("via-proc");
        std::os::unix::fs::symlink(format!("/proc/self/fd/{}", file.as_raw_fd()), &link).expect("symlink");
        let root = Root::host().expect("root");
        let error = root.open_file(&link, true, None).expect_err("a magic link");
        assert!(error.is_unreachable(), "{error}");
    }

    #[test]
    fn a_descriptor_is_reached_through_its_magic_link() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("model.gguf");
        std::fs::write(&path, b"GGUF").expect("write");
        let held = File::open(&path).expect("open");
        std::fs::remove_file(&path).expect("unlink");
        let link = PathBuf::from(format!("/proc/self/fd/{}", held.as_raw_fd()));
        let opened = open_magic_link(&link, None).expect("the unlinked file, through the descriptor");
        assert_eq!(opened.stamp.size, 4);
    }
}
