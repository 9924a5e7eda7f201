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
    open::syscall_ret,
};
use crate::{
    kernel::{KResult, file_identity, file_of_fd, inode_of},
    maps::{MMAP_PENDING, PendingMmap, count, settings},
    offsets::off,
};

const MAP_ANONYMOUS: u64 = 0x20;

#[tracepoint]
pub(crate) fn sys_enter_mmap(ctx: TracePointContext) -> u32 {
    if try_enter(&ctx).is_err() {
        count(counters::READ_ERRORS);
    }
    0
}

#[tracepoint]
pub(crate) fn sys_exit_mmap(ctx: TracePointContext) -> u32 {
    if try_exit(&ctx).is_err() {
        count(counters::READ_ERRORS);
    }
    0
}

#[inline(always)]
fn arg(ctx: &TracePointContext, offset: u32) -> u64 {
    // SAFETY: offsets come from this tracepoint's format; every field is 8 bytes.
    unsafe { ctx.read_at::<u64>(offset as usize) }.unwrap_or(0)
}

#[inline(always)]
fn try_enter(ctx: &TracePointContext) -> KResult<()> {
    let flags = arg(ctx, off!(tp_mmap_flags));
    let fd = arg(ctx, off!(tp_mmap_fd)) as i64;
    if flags & MAP_ANONYMOUS != 0 || fd < 0 {
        return Ok(());
    }
    count(counters::MMAP_SEEN);
    let tgid = ctx.tgid();
    let file = file_of_fd(fd as u64)?;
    let inode = inode_of(file)?;
    let why = candidate_reason(file, &inode, tgid);
    if why == 0 || why == reason::ACCELERATOR || tgid == settings().self_tgid {
        return Ok(());
    }
    let pending = PendingMmap {
        fd,
        len: arg(ctx, off!(tp_mmap_len)),
        pgoff: arg(ctx, off!(tp_mmap_off)) >> 12,
        prot: arg(ctx, off!(tp_mmap_prot)) as u32,
        flags: flags as u32,
        reason: why,
        _pad: 0,
    };
    if MMAP_PENDING.insert(&bpf_get_current_pid_tgid(), &pending, 0).is_err() {
        count(counters::STATE_FULL);
    }
    Ok(())
}

#[inline(always)]
fn try_exit(ctx: &TracePointContext) -> KResult<()> {
    let key = bpf_get_current_pid_tgid();
    // SAFETY: copied out before the entry is removed.
    let Some(pending) = (unsafe { MMAP_PENDING.get(&key) }).copied() else { return Ok(()) };
    let _ = MMAP_PENDING.remove(&key);
    let addr = syscall_ret(ctx);
    if (-4095..0).contains(&addr) {
        return Ok(());
    }
    // The descriptor may be closed or reused by another thread in between; the identity
    // read here is what the record reports.
    let file = file_of_fd(pending.fd as u64)?;
    let identity = file_identity(&inode_of(file)?)?;
    let mmap = MmapFields {
        addr: addr as u64,
        len: pending.len,
        pgoff: pending.pgoff,
        prot: pending.prot,
        flags: pending.flags,
    };
    emit_file(EventKind::FileMmap, file, identity, pending.reason, pending.fd as i32, mmap)
}
