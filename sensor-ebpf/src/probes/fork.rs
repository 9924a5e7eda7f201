//! Hook: raw tracepoint `sched_process_fork` (kernel 6.1, 6.12, 6.18), whose arguments
//! are the parent and child `task_struct`s. Children of a marked runtime are marked at
//! once, in the kernel, so that a worker it spawns (Ollama's `llama-server` runner) is
//! watched before userspace hears of it.
//!
//! NB: a raw tracepoint rather than `sched:sched_process_fork`, because threads fire it
//! too and only the child's task tells a thread from a process: marking every thread
//! of a busy runtime would fill `MARKED` (threads share their process's mark anyway).

use aya_ebpf::{EbpfContext as _, macros::raw_tracepoint, programs::RawTracePointContext};
use sensor_common::{counters, offsets::feature, settings::mark};

use crate::{
    maps::{MARKED, count},
    offsets::{has, off},
    reads::probe,
};

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub(crate) fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    // SAFETY: the value is copied out at once.
    let Some(parent) = (unsafe { MARKED.get(&ctx.tgid()) }).copied() else { return 0 };
    if !has(feature::PARENT) {
        return 0;
    }
    // SAFETY: argument 1 of this raw tracepoint is the child's task_struct.
    let child: u64 = unsafe { *(ctx.as_ptr() as *const u64).add(1) };
    let (Ok(pid), Ok(tgid)) = (probe::<u32>(child, off!(task_pid)), probe::<u32>(child, off!(task_tgid)))
    else {
        return 0;
    };
    if pid != tgid {
        return 0;
    }
    if MARKED.insert(&pid, &(parent | mark::INHERITED), 0).is_err() {
        count(counters::MARK_FULL);
    }
    0
}
