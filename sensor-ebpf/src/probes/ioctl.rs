//! Hook: `syscalls:sys_enter_ioctl` (kernel 6.1, 6.12, 6.18). Counts ioctls on
//! accelerator descriptors (GPU, NPU) per process: a counter in a map, never an event
//! per ioctl. A process that never opened an accelerator costs one map lookup.

use aya_ebpf::{EbpfContext as _, macros::tracepoint, programs::TracePointContext};

use super::file::is_accelerator;
use crate::{
    kernel::{file_of_fd, read},
    maps::{ACCEL_IOCTLS, ACCEL_PROCS},
    offsets::off,
};

#[tracepoint]
pub(crate) fn sys_enter_ioctl(ctx: TracePointContext) -> u32 {
    let tgid = ctx.tgid();
    // SAFETY: only tested for presence.
    if unsafe { ACCEL_PROCS.get(&tgid) }.is_none() {
        return 0;
    }
    // SAFETY: the offset comes from this tracepoint's format.
    let Ok(fd) = (unsafe { ctx.read_at::<u64>(off!(tp_ioctl_fd) as usize) }) else { return 0 };
    let Ok(file) = file_of_fd(fd & 0xffff_ffff) else { return 0 };
    let Ok(inode) = read::<u64>(file, off!(file_f_inode)) else { return 0 };
    let rdev: u32 = read(inode, off!(inode_i_rdev)).unwrap_or(0);
    if !is_accelerator(rdev) {
        return 0;
    }
    match ACCEL_IOCTLS.get_ptr_mut(&tgid) {
        // SAFETY: this CPU's slot of a per-CPU value.
        Some(count) => unsafe { *count += 1 },
        None => {
            let _ = ACCEL_IOCTLS.insert(&tgid, &1, 0);
        }
    }
    0
}
