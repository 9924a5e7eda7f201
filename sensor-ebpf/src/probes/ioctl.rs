//! Hook: `syscalls:sys_enter_ioctl` (kernel 6.1, 6.12, 6.18). Counts ioctls on
//! accelerator descriptors (GPU, NPU) per process: a counter in a map, never an event
//! per ioctl. A process that never opened an accelerator costs one map lookup.

use aya_ebpf::{EbpfContext as _, macros::tracepoint, programs::TracePointContext};

use super::{file::is_accelerator, open::record_field};
use crate::{
    kernel::file_of_fd,
    maps::{ACCEL_IOCTLS, ACCEL_PROCS},
    offsets::off,
    reads::{Helper, Reads, Typed},
};

// Typed reads first, helper reads as the fallback (`helper_<name>`; see `reads.rs`).

#[tracepoint]
pub(crate) fn sys_enter_ioctl(ctx: TracePointContext) -> u32 {
    on_ioctl::<Typed>(&ctx)
}

#[tracepoint]
pub(crate) fn helper_sys_enter_ioctl(ctx: TracePointContext) -> u32 {
    on_ioctl::<Helper>(&ctx)
}

#[inline(always)]
fn on_ioctl<R: Reads>(ctx: &TracePointContext) -> u32 {
    let tgid = ctx.tgid();
    // SAFETY: only tested for presence.
    if unsafe { ACCEL_PROCS.get(&tgid) }.is_none() {
        return 0;
    }
    // `args[0]` of a `sys_enter_*` record: byte 16 on every known kernel.
    let fd = record_field!(ctx, tp_ioctl_fd, 16);
    let Ok(file) = file_of_fd::<R>(fd & 0xffff_ffff) else { return 0 };
    let Ok(inode) = R::field::<u64>(file, off!(file_f_inode)) else { return 0 };
    let rdev: u32 = R::field(inode, off!(inode_i_rdev)).unwrap_or(0);
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
