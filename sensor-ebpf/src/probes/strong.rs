//! The strong backend: `fexit` programs on the kernel functions that open and map
//! files. They receive the `struct file` itself (no descriptor-table walk, no user
//! memory) and, unlike syscall tracepoints, do not put every syscall of every task on
//! the tracing slow path. Loaded where the kernel allows it (checked on 6.12 and 6.1
//! guests; refused with EPERM on the CI hosts, where the tracepoints take over).

use aya_ebpf::{EbpfContext as _, macros::fexit, programs::FExitContext};
use sensor_common::{EventKind, MmapFields, counters, reason};

use super::file::{candidate_reason, emit_file};
use crate::{
    kernel::{KResult, file_identity, inode_of},
    maps::{count, settings},
    reads::{Helper, Reads, Typed},
};

// Each program twice: typed reads (the argument is already a typed `struct file *`),
// then helper reads (see `reads.rs`).

/// `int security_file_open(struct file *file)`: every open that passed the other
/// permission checks.
#[fexit(function = "security_file_open")]
pub(crate) fn fexit_security_file_open(ctx: FExitContext) -> i32 {
    on_file_open::<Typed>(&ctx)
}

#[fexit(function = "security_file_open")]
pub(crate) fn helper_fexit_security_file_open(ctx: FExitContext) -> i32 {
    on_file_open::<Helper>(&ctx)
}

#[inline(always)]
fn on_file_open<R: Reads>(ctx: &FExitContext) -> i32 {
    if try_file_open::<R>(ctx).is_err() {
        count(counters::READ_ERRORS);
    }
    0
}

#[inline(always)]
fn try_file_open<R: Reads>(ctx: &FExitContext) -> KResult<()> {
    if ctx.ret::<i32>().unwrap_or(-1) != 0 {
        return Ok(());
    }
    count(counters::OPEN_SEEN);
    let file: u64 = ctx.arg(0);
    let tgid = ctx.tgid();
    let inode = inode_of::<R>(file)?;
    let why = candidate_reason::<R>(file, &inode, tgid);
    if why == 0 || tgid == settings().self_tgid {
        return Ok(());
    }
    let kind = if why == reason::ACCELERATOR { EventKind::AcceleratorOpen } else { EventKind::FileOpen };
    // No descriptor exists yet at this point: fd -1.
    emit_file::<R>(kind, file, file_identity::<R>(&inode)?, why, -1, MmapFields::default())
}

/// `unsigned long vm_mmap_pgoff(struct file *, unsigned long addr, unsigned long len,
/// unsigned long prot, unsigned long flag, unsigned long pgoff)`: the mmap syscall's
/// worker, which returns the address (an error when above -4096).
#[fexit(function = "vm_mmap_pgoff")]
pub(crate) fn fexit_vm_mmap_pgoff(ctx: FExitContext) -> i32 {
    on_mmap::<Typed>(&ctx)
}

#[fexit(function = "vm_mmap_pgoff")]
pub(crate) fn helper_fexit_vm_mmap_pgoff(ctx: FExitContext) -> i32 {
    on_mmap::<Helper>(&ctx)
}

#[inline(always)]
fn on_mmap<R: Reads>(ctx: &FExitContext) -> i32 {
    if try_mmap::<R>(ctx).is_err() {
        count(counters::READ_ERRORS);
    }
    0
}

#[inline(always)]
fn try_mmap<R: Reads>(ctx: &FExitContext) -> KResult<()> {
    let file: u64 = ctx.arg(0);
    if file == 0 {
        return Ok(());
    }
    let addr: u64 = ctx.ret().unwrap_or(u64::MAX);
    if addr >= (-4095i64) as u64 {
        return Ok(());
    }
    count(counters::MMAP_SEEN);
    let tgid = ctx.tgid();
    let inode = inode_of::<R>(file)?;
    let why = candidate_reason::<R>(file, &inode, tgid);
    if why == 0 || why == reason::ACCELERATOR || tgid == settings().self_tgid {
        return Ok(());
    }
    let mmap = MmapFields {
        addr,
        len: ctx.arg(2),
        pgoff: ctx.arg(5),
        prot: ctx.arg::<u64>(3) as u32,
        flags: ctx.arg::<u64>(4) as u32,
    };
    emit_file::<R>(EventKind::FileMmap, file, file_identity::<R>(&inode)?, why, -1, mmap)
}
