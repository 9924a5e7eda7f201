//! Records that travel through the ring buffer. One module per event family; all start
//! with [`EventHeader`].

mod exec;
mod file;
mod header;
mod listen;

pub use exec::{ARGV_CAP, ExecEvent, ExitEvent};
pub use file::{FileEvent, FileIdentity, MmapFields};
pub use header::{ABI_VERSION, EventHeader, EventKind};
pub use listen::ListenEvent;

/// Bytes reserved for a path in a record. Paths are sent leaf-first as NUL-terminated
/// components (`model.gguf\0blobs\0models\0`), which lets the kernel walk `d_parent` without
/// moving bytes; userspace reverses them.
pub const PATH_CAP: usize = 4096;
/// The longest component the kernel copies (NAME_MAX + NUL).
pub const NAME_CAP: usize = 256;
/// Components walked before a path is marked truncated.
pub const PATH_MAX_DEPTH: u32 = 48;

/// Length prefix of a path tail.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathHeader {
    /// Bytes used in the tail that follows the record.
    pub len: u16,
    /// Components written.
    pub depth: u16,
    /// [`path_flags`] bits.
    pub flags: u32,
}
const _: () = assert!(core::mem::size_of::<PathHeader>() == 8);

/// Bits of [`PathHeader::flags`].
pub mod path_flags {
    /// The walk stopped before the root: depth or capacity ran out, or a read failed.
    pub const TRUNCATED: u32 = 1;
    /// The dentry was unlinked when the event fired (`d_unhashed`).
    pub const DELETED: u32 = 2;
    /// The kernel offsets needed to walk mounts are missing: the path is relative to its
    /// mount.
    pub const NO_MOUNT_WALK: u32 = 4;
}

/// Why the kernel forwarded a candidate ([`FileEvent::reason`], [`ListenEvent::reason`]).
pub mod reason {
    /// File size at or above the configured threshold.
    pub const SIZE: u32 = 1;
    /// The file name ends with a watched model extension.
    pub const EXTENSION: u32 = 2;
    /// The process is marked as an inference runtime.
    pub const MARKED_RUNTIME: u32 = 4;
    /// The listener's port is on the watched list.
    pub const WATCHED_PORT: u32 = 8;
    /// An accelerator device node (GPU, NPU) opened by a marked runtime.
    pub const ACCELERATOR: u32 = 16;
    /// The name of a model-store blob (`sha256-<hex>`, `blobs/<hex>`).
    pub const MODEL_STORE: u32 = 32;
}
