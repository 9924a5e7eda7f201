use super::{EventHeader, PathHeader};

/// What identifies a file independently of its path: the kernel's own view of the inode.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileIdentity {
    /// `sb->s_dev`, in the kernel's internal encoding (major << 20 | minor).
    pub dev: u32,
    /// `i_mode` (type and permission bits).
    pub mode: u32,
    pub ino: u64,
    pub size: u64,
    pub mtime_sec: i64,
    pub mtime_nsec: u32,
    /// `i_rdev` for device nodes, kernel encoding.
    pub rdev: u32,
    /// Change time: the file's owner can set mtime back (`touch -d`), not ctime.
    pub ctime_sec: i64,
    pub ctime_nsec: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<FileIdentity>() == 56);

/// Extra fields of a mapping; zero for an open.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MmapFields {
    pub addr: u64,
    pub len: u64,
    /// Offset into the file in pages.
    pub pgoff: u64,
    pub prot: u32,
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<MmapFields>() == 32);

/// A candidate file opened ([`super::EventKind::FileOpen`]), mapped
/// ([`super::EventKind::FileMmap`]) or an accelerator device opened
/// ([`super::EventKind::AcceleratorOpen`]). A [`super::PATH_CAP`] tail of path bytes
/// follows; only `path.len` of them are sent.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FileEvent {
    pub header: EventHeader,
    pub file: FileIdentity,
    pub mmap: MmapFields,
    pub fd: i32,
    /// [`super::reason`] bits.
    pub reason: u32,
    /// `f_flags` of the open file.
    pub open_flags: u32,
    /// Opens (or maps) of this file by this process that the kernel folded into this
    /// record since the previous one it sent (see the `DEDUP` map).
    pub repeats: u32,
    /// The inode number of the process's mount namespace (0 when unknown): userspace
    /// reads a path from its own namespace only when this is its own.
    pub mnt_ns: u32,
    pub _pad: u32,
    pub path: PathHeader,
}
const _: () = assert!(core::mem::size_of::<FileEvent>() == 176);
