//! Hook: `sched:sched_process_exit` (kernel 6.1, 6.12, 6.18). Fires for every thread;
//! only a thread-group leader's exit is forwarded, and any runtime mark is dropped.

use aya_ebpf::{helpers::bpf_get_current_pid_tgid, macros::tracepoint, programs::TracePointContext};
use sensor_common::{EventKind, ExitEvent, counters, offsets::feature};

use crate::{
    emit::{header, submit_value},
    kernel::{current_task, read},
    maps::MARKED,
    offsets::{has, off},
};

#[tracepoint]
pub(crate) fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let pid_tgid = bpf_get_current_pid_tgid();
    let (tgid, tid) = ((pid_tgid >> 32) as u32, pid_tgid as u32);
    // A fork of a marked process marks the child by its id, which may be a thread's.
    let _ = MARKED.remove(&tid);
    if tid != tgid {
        return 0;
    }
    let exit_code = if has(feature::EXIT_CODE) {
        read::<u32>(current_task(), off!(task_exit_code)).unwrap_or(0)
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
