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
    kernel::{KResult, file_identity, file_of_fd, inode_of},
    maps::{count, settings},
    offsets::off,
};

/// One program for the three open syscalls, attached to each of their exit tracepoints:
/// every `sys_exit_*` record has the same layout, so the verifier checks the walk once
/// instead of three times (6.1's verifier processes 422k instructions for it, and three
/// copies tripled the slowest part of a start-up).
#[tracepoint]
pub(crate) fn open_exit(ctx: TracePointContext) -> u32 {
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
    let fd = syscall_ret(ctx);
    if fd < 0 {
        return Ok(());
    }
    count(counters::OPEN_SEEN);
    let tgid = ctx.tgid();
    let file = file_of_fd(fd as u64)?;
    let inode = inode_of(file)?;
    let why = candidate_reason(file, &inode, tgid);
    // The sensor's own reads of candidates are not events (checked last: rare).
    if why == 0 || tgid == settings().self_tgid {
        return Ok(());
    }
    let kind = if why == reason::ACCELERATOR { EventKind::AcceleratorOpen } else { EventKind::FileOpen };
    emit_file(kind, file, file_identity(&inode)?, why, fd as i32, MmapFields::default())
}

/// The `ret` field of a `sys_exit_*` record. Every kernel this sensor knows puts it at
/// byte 16 (after the common header and `__syscall_nr`); a direct context load is a
/// plain memory access, where the generic path costs a helper call.
#[inline(always)]
pub(super) fn syscall_ret(ctx: &TracePointContext) -> i64 {
    if off!(tp_sys_exit_ret) == 16 {
        // SAFETY: the record is at least 24 bytes (tracefs format checked at start-up).
        unsafe { *(ctx.as_ptr() as *const i64).add(2) }
    } else {
        // SAFETY: the offset comes from this tracepoint's format.
        unsafe { ctx.read_at(off!(tp_sys_exit_ret) as usize) }.unwrap_or(-1)
    }
}
