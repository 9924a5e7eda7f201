//! Hook: `syscalls:sys_exit_openat`, `sys_exit_openat2`, `sys_exit_open` (kernel 6.1,
//! 6.12, 6.18).
//!
//! Only the exit is hooked: the returned descriptor leads to the `struct file` the
//! kernel really opened (identity and path from the kernel, not from user memory, so a
//! racing rename or a relative path changes nothing).

use aya_ebpf::{EbpfContext as _, macros::tracepoint, programs::TracePointContext};
use sensor_common::{EventKind, MmapFields, counters, reason};

use super::file::{candidate_reason, emit_file};
use crate::{
    kernel::{KResult, file_identity, file_of_fd},
    maps::{count, settings},
    offsets::off,
};

#[tracepoint]
pub(crate) fn sys_exit_openat(ctx: TracePointContext) -> u32 {
    on_open_exit(&ctx)
}

#[tracepoint]
pub(crate) fn sys_exit_openat2(ctx: TracePointContext) -> u32 {
    on_open_exit(&ctx)
}

#[tracepoint]
pub(crate) fn sys_exit_open(ctx: TracePointContext) -> u32 {
    on_open_exit(&ctx)
}

#[inline(always)]
fn on_open_exit(ctx: &TracePointContext) -> u32 {
    if try_open_exit(ctx).is_err() {
        count(counters::READ_ERRORS);
    }
    0
}

#[inline(always)]
fn try_open_exit(ctx: &TracePointContext) -> KResult<()> {
    // SAFETY: the offset of `ret` comes from this tracepoint's format.
    let fd: i64 = unsafe { ctx.read_at(off!(tp_sys_exit_ret) as usize) }.unwrap_or(-1);
    if fd < 0 {
        return Ok(());
    }
    count(counters::OPEN_SEEN);
    let tgid = ctx.tgid();
    if tgid == settings().self_tgid {
        return Ok(());
    }
    let file = file_of_fd(fd as u64)?;
    let identity = file_identity(file)?;
    let why = candidate_reason(file, &identity, tgid);
    if why == 0 {
        return Ok(());
    }
    let kind = if why == reason::ACCELERATOR { EventKind::AcceleratorOpen } else { EventKind::FileOpen };
    emit_file(kind, file, identity, why, fd as i32, MmapFields::default())
}
