//! Hook: `syscalls:sys_enter_mmap` + `sys_exit_mmap` (kernel 6.1, 6.12, 6.18).
//!
//! Entry decides candidacy from the descriptor's file and parks the arguments; exit
//! sends the record only when the mapping succeeded, with the address it got.

use aya_ebpf::{
    EbpfContext as _, helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext,
};
use sensor_common::{EventKind, MmapFields, counters, reason};

use super::{
    file::{candidate_reason, emit_file},
    open::{record_field, syscall_ret},
};
use crate::{
    kernel::{KResult, file_identity, file_of_fd, inode_of},
    maps::{PendingMmap, count, park_mmap, settings, take_mmap},
    reads::{Helper, Reads, Typed},
};

const MAP_ANONYMOUS: u64 = 0x20;

// Each program twice: typed reads, then helper reads (see `reads.rs`).

#[tracepoint]
pub(crate) fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    on_enter::<Typed>(&ctx)
}

#[tracepoint]
pub(crate) fn helper_sys_enter_mmap(ctx: TracePointContext) -> u32 {
    on_enter::<Helper>(&ctx)
}

#[tracepoint]
pub(crate) fn sys_exit_mmap(ctx: TracePointContext) -> u32 {
    on_exit::<Typed>(&ctx)
}

#[tracepoint]
pub(crate) fn helper_sys_exit_mmap(ctx: TracePointContext) -> u32 {
    on_exit::<Helper>(&ctx)
}

#[inline(always)]
fn on_enter<R: Reads>(ctx: &TracePointContext) -> u32 {
    if try_enter::<R>(ctx).is_err() {
        count(counters::READ_ERRORS);
    }
    0
}

#[inline(always)]
fn on_exit<R: Reads>(ctx: &TracePointContext) -> u32 {
    if try_exit::<R>(ctx).is_err() {
        count(counters::READ_ERRORS);
    }
    0
}

#[inline(always)]
fn try_enter<R: Reads>(ctx: &TracePointContext) -> KResult<()> {
    let flags = record_field!(ctx, tp_mmap_flags, 40);
    let fd = record_field!(ctx, tp_mmap_fd, 48) as i64;
    if flags & MAP_ANONYMOUS != 0 || fd < 0 {
        return Ok(());
    }
    count(counters::MMAP_SEEN);
    let tgid = ctx.tgid();
    let file = file_of_fd::<R>(fd as u64)?;
    let inode = inode_of::<R>(file)?;
    let why = candidate_reason::<R>(file, &inode, tgid);
    if why == 0 || why == reason::ACCELERATOR || tgid == settings().self_tgid {
        return Ok(());
    }
    let pending = PendingMmap {
        fd,
        len: record_field!(ctx, tp_mmap_len, 24),
        pgoff: record_field!(ctx, tp_mmap_off, 56) >> 12,
        prot: record_field!(ctx, tp_mmap_prot, 32) as u32,
        flags: flags as u32,
        reason: why,
        _pad: 0,
    };
    if !park_mmap(bpf_get_current_pid_tgid(), &pending) {
        count(counters::STATE_FULL);
    }
    Ok(())
}

#[inline(always)]
fn try_exit<R: Reads>(ctx: &TracePointContext) -> KResult<()> {
    let Some(pending) = take_mmap(bpf_get_current_pid_tgid()) else { return Ok(()) };
    let addr = syscall_ret(ctx);
    if (-4095..0).contains(&addr) {
        return Ok(());
    }
    // The descriptor may be closed or reused by another thread in between; the identity
    // read here is what the record reports.
    let file = file_of_fd::<R>(pending.fd as u64)?;
    let identity = file_identity::<R>(&inode_of::<R>(file)?)?;
    let mmap = MmapFields {
        addr: addr as u64,
        len: pending.len,
        pgoff: pending.pgoff,
        prot: pending.prot,
        flags: pending.flags,
    };
    emit_file::<R>(EventKind::FileMmap, file, identity, pending.reason, pending.fd as i32, mmap)
}
