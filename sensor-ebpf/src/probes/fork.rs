//! Hook: `sched:sched_process_fork` (kernel 6.1, 6.12, 6.18). Children of a marked
//! runtime are marked at once, in the kernel, so that a worker it spawns (Ollama's
//! `llama-server` runner) is watched before userspace hears of it.

use aya_ebpf::{EbpfContext as _, macros::tracepoint, programs::TracePointContext};
use sensor_common::{counters, settings::mark};

use crate::{
    maps::{MARKED, count},
    offsets::off,
};

#[tracepoint]
pub(crate) fn sched_process_fork(ctx: TracePointContext) -> u32 {
    // SAFETY: the value is copied out at once.
    let Some(parent) = (unsafe { MARKED.get(&ctx.tgid()) }).copied() else { return 0 };
    // SAFETY: the offset of `child_pid` comes from this tracepoint's format.
    let Ok(child) = (unsafe { ctx.read_at::<u32>(off!(tp_fork_child_pid) as usize) }) else {
        return 0;
    };
    if MARKED.insert(&child, &(parent | mark::INHERITED), 0).is_err() {
        count(counters::MARK_FULL);
    }
    0
}
