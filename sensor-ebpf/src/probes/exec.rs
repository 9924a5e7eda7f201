//! Hook: `sched:sched_process_exec` (kernel 6.1, 6.12, 6.18). Not a syscall tracepoint,
//! so it adds nothing to other syscalls' cost.
//!
//! Every exec is forwarded: userspace needs the process tree to classify runtimes. The
//! executable path comes from the new `mm->exe_file` (symlinks already resolved by the
//! kernel) and the arguments from the new image's stack.

use core::{mem::size_of, ptr::addr_of_mut};

use aya_ebpf::{
    helpers::{bpf_get_current_comm, bpf_get_current_pid_tgid, generated::bpf_probe_read_user},
    macros::tracepoint,
    programs::TracePointContext,
};
use sensor_common::{ARGV_CAP, EventKind, ExecEvent, PathHeader, counters, offsets::feature};

use crate::{
    bounds::at_most,
    emit::{header, scratch, submit},
    kernel::{KResult, ReadError, file_path},
    maps::{MARKED, RUNTIME_COMMS, Ring, count},
    offsets::{has, off},
    path::walk,
    reads::{Helper, Reads, Typed},
};

// Twice: typed reads, then helper reads (see `reads.rs`).

#[tracepoint]
pub(crate) fn sched_process_exec(_ctx: TracePointContext) -> u32 {
    on_exec::<Typed>()
}

#[tracepoint]
pub(crate) fn helper_sched_process_exec(_ctx: TracePointContext) -> u32 {
    on_exec::<Helper>()
}

#[inline(always)]
fn on_exec<R: Reads>() -> u32 {
    count(counters::EXEC_SEEN);
    mark_if_runtime();
    if try_exec::<R>().is_err() {
        count(counters::READ_ERRORS);
    }
    0
}

#[inline(always)]
fn try_exec<R: Reads>() -> KResult<()> {
    let buf = scratch().ok_or(ReadError)?;
    let event = buf.cast::<ExecEvent>();
    let task = R::task();
    let ppid = if has(feature::PARENT) {
        let parent: u64 = R::field(task, off!(task_real_parent))?;
        R::field::<u32>(parent, off!(task_tgid))?
    } else {
        0
    };
    let mm: u64 = if has(feature::EXEC_DETAILS) { R::field(task, off!(task_mm))? } else { 0 };
    // SAFETY: `event` points at this CPU's scratch value, which is larger than an
    // ExecEvent plus a path tail; fields are written in place because the record is
    // too large for the BPF stack.
    unsafe {
        let argv = addr_of_mut!((*event).argv).cast::<u64>();
        for word in 0..ARGV_CAP / 8 {
            argv.add(word).write(0);
        }
        let (argv_len, truncated) = read_argv::<R>(mm, addr_of_mut!((*event).argv).cast());
        addr_of_mut!((*event).ppid).write(ppid);
        addr_of_mut!((*event).argv_len).write(argv_len);
        addr_of_mut!((*event).argv_truncated).write(truncated);
        addr_of_mut!((*event).marks).write(current_marks());
    }
    let path = exe_path::<R>(mm, buf);
    let size = size_of::<ExecEvent>() + usize::from(path.len);
    // SAFETY: as above.
    unsafe {
        addr_of_mut!((*event).path).write(path);
        addr_of_mut!((*event).header).write(header(EventKind::ProcessExec, size));
    }
    submit(Ring::Processes, buf, size, counters::EXEC_FORWARDED, counters::EXEC_LOST);
    Ok(())
}

/// Marks the process now if its new name is a runtime's.
#[inline(always)]
fn mark_if_runtime() {
    let Ok(comm) = bpf_get_current_comm() else { return };
    // SAFETY: the value is copied out at once.
    let Some(flags) = (unsafe { RUNTIME_COMMS.get(&comm) }).copied() else { return };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if MARKED.insert(&tgid, &flags, 0).is_err() {
        count(counters::MARK_FULL);
    }
}

/// The mark bits of the current process (0: unmarked).
#[inline(always)]
fn current_marks() -> u32 {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: the value is copied out at once.
    unsafe { MARKED.get(&tgid) }.copied().unwrap_or(0)
}

/// Copies `mm->arg_start..arg_end` (NUL-separated arguments) into `dst`.
#[inline(always)]
fn read_argv<R: Reads>(mm: u64, dst: *mut u8) -> (u32, u32) {
    let (Ok(start), Ok(end)) =
        (R::field::<u64>(mm, off!(mm_arg_start)), R::field::<u64>(mm, off!(mm_arg_end)))
    else {
        return (0, 0);
    };
    let mut len = end.saturating_sub(start);
    let mut truncated = 0;
    if len > ARGV_CAP as u64 {
        len = ARGV_CAP as u64;
        truncated = 1;
    }
    if len == 0 {
        return (0, truncated);
    }
    let len = at_most::<ARGV_CAP>(len as usize);
    // SAFETY: `dst` has ARGV_CAP bytes and `len <= ARGV_CAP`; the helper checks `start`.
    let ret = unsafe { bpf_probe_read_user(dst.cast(), len as u32, start as *const _) };
    if ret == 0 { (len as u32, truncated) } else { (0, truncated) }
}

#[inline(always)]
fn exe_path<R: Reads>(mm: u64, buf: *mut u8) -> PathHeader {
    let exe = R::field::<u64>(mm, off!(mm_exe_file)).ok();
    match exe.map(file_path::<R>) {
        // SAFETY: the tail starts right after the record, inside the scratch value.
        Some(Ok((mnt, dentry))) => walk::<R>(unsafe { buf.add(size_of::<ExecEvent>()) }, dentry, mnt),
        _ => PathHeader { len: 0, depth: 0, flags: sensor_common::path_flags::TRUNCATED },
    }
}
