//! Hook: `sched:sched_process_exit` (kernel 6.1, 6.12, 6.18). Fires for every thread;
//! only a thread-group leader's exit is forwarded, and its runtime mark is dropped.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext};
use sensor_common::{EventKind, ExitEvent, counters, offsets::feature};

use crate::{
    emit::{header, submit_value},
    maps::{MARKED, is_marked, take_mmap},
    offsets::{has, off},
    reads::{Helper, Reads, Typed},
};

// Twice: a typed read of the exit code, then a helper read (see `reads.rs`).

#[tracepoint]
pub(crate) fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    on_exit::<Typed>()
}

#[tracepoint]
pub(crate) fn helper_sched_process_exit(_ctx: TracePointContext) -> u32 {
    on_exit::<Helper>()
}

#[inline(always)]
fn on_exit<R: Reads>() -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // A thread that dies inside mmap leaves its pending entry behind.
    let _ = take_mmap(pid_tgid);
    if tid != tgid {
        return 0;
    }
    // A lookup first: most processes are not marked, and a lookup takes no lock.
    if is_marked(tgid) {
        let _ = MARKED.remove(&tgid);
    }
    let exit_code = if has(feature::EXIT_CODE) {
        R::field::<u32>(R::task(), off!(task_exit_code)).unwrap_or(0)
    } else {
        0
    };
    let event = ExitEvent {
        header: header(EventKind::ProcessExit, core::mem::size_of::<ExitEvent>()),
        exit_code,
        _pad: 0,
    };
    submit_value(&event, counters::EXIT_FORWARDED, counters::EXIT_LOST);
    0
}
