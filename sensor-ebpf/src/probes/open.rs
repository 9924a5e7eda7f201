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
    reads::{Helper, Reads, Typed},
};

/// One program for the three open syscalls, attached to each of their exit tracepoints:
/// every `sys_exit_*` record has the same layout, so the verifier checks the walk once
/// instead of three times (6.1's verifier processes 422k instructions for the helper
/// walk, and three copies tripled the slowest part of a start-up). Twice: typed reads
/// (loaded first), then helper reads (the fallback; see `reads.rs`), under
/// `helper_open_exit`.
#[tracepoint]
pub(crate) fn open_exit(ctx: TracePointContext) -> u32 {
    on_open_exit::<Typed>(&ctx)
}

#[tracepoint]
pub(crate) fn helper_open_exit(ctx: TracePointContext) -> u32 {
    on_open_exit::<Helper>(&ctx)
}

#[inline(always)]
fn on_open_exit<R: Reads>(ctx: &TracePointContext) -> u32 {
    if try_open_exit::<R>(ctx).is_err() {
        count(counters::READ_ERRORS);
    }
    0
}

#[inline(always)]
fn try_open_exit<R: Reads>(ctx: &TracePointContext) -> KResult<()> {
    let fd = syscall_ret(ctx);
    if fd < 0 {
        return Ok(());
    }
    count(counters::OPEN_SEEN);
    let tgid = ctx.tgid();
    let file = file_of_fd::<R>(fd as u64)?;
    let inode = inode_of::<R>(file)?;
    let why = candidate_reason::<R>(file, &inode, tgid);
    // The sensor's own reads of candidates are not events (checked last: rare).
    if why == 0 || tgid == settings().self_tgid {
        return Ok(());
    }
    let kind = if why == reason::ACCELERATOR { EventKind::AcceleratorOpen } else { EventKind::FileOpen };
    emit_file::<R>(kind, file, file_identity::<R>(&inode)?, why, fd as i32, MmapFields::default())
}

/// The `ret` field of a `sys_exit_*` record. Every kernel this sensor knows puts it at
/// byte 16 (after the common header and `__syscall_nr`).
#[inline(always)]
pub(super) fn syscall_ret(ctx: &TracePointContext) -> i64 {
    record_field!(ctx, tp_sys_exit_ret, 16) as i64
}

/// A 64-bit field of a syscall tracepoint record, `$usual` being the byte offset every
/// known kernel gives it (`args[i]` of a `sys_enter_*` record at 16 + 8 i). There a
/// direct context load is a plain memory access, where the generic path costs a helper
/// call; the offset itself comes from the frozen `OFFSETS`, which the verifier knows, so
/// it removes whichever branch cannot run. (A context load needs its offset in the
/// instruction: a computed one is refused.)
macro_rules! record_field {
    ($ctx:expr, $field:ident, $usual:literal) => {
        if $crate::offsets::off!($field) == $usual {
            // SAFETY: the record holds the field at `$usual` (the format checked at start-up).
            unsafe { *($ctx.as_ptr() as *const u64).add($usual / 8) }
        } else {
            // SAFETY: the offset comes from this tracepoint's format.
            unsafe { $ctx.read_at::<u64>($crate::offsets::off!($field) as usize) }.unwrap_or(u64::MAX)
        }
    };
}
pub(super) use record_field;
