use super::{EventHeader, PathHeader};

/// Bytes of the argument vector copied from the new image's stack (NUL-separated).
pub const ARGV_CAP: usize = 1024;

/// `sched:sched_process_exec`. The executable's path (from `mm->exe_file`, so symlinks
/// are resolved by the kernel) follows as a tail.
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExecEvent {
    pub header: EventHeader,
    pub ppid: u32,
    /// Bytes used in `argv`; 0 when the read failed.
    pub argv_len: u32,
    /// Set when the argument vector was longer than [`ARGV_CAP`].
    pub argv_truncated: u32,
    /// The process's mark bits in the kernel once the exec was handled (by name, or
    /// inherited at fork): userspace clears a mark only when there is one.
    pub marks: u32,
    pub argv: [u8; ARGV_CAP],
    pub path: PathHeader,
}
const _: () = assert!(core::mem::size_of::<ExecEvent>() == 56 + 16 + ARGV_CAP + 8);

/// `sched:sched_process_exit` of a thread-group leader.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ExitEvent {
    pub header: EventHeader,
    /// `task->exit_code` (status << 8 | signal), as `wait(2)` reports it.
    pub exit_code: u32,
    pub _pad: u32,
}
const _: () = assert!(core::mem::size_of::<ExitEvent>() == 64);
