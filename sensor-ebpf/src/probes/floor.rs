//! The cost floor: programs on the very same tracepoints that return at once. Loaded
//! only by `modelwatch floor` for benchmarks, to measure what the hooks cost before
//! any filtering is done.

use aya_ebpf::{macros::tracepoint, programs::TracePointContext};

macro_rules! floor {
    ($($name:ident),* $(,)?) => { $(
        #[tracepoint]
        pub(crate) fn $name(_ctx: TracePointContext) -> u32 {
            0
        }
    )* };
}

/// The fork hook is a raw tracepoint (see `fork.rs`).
#[aya_ebpf::macros::raw_tracepoint(tracepoint = "sched_process_fork")]
pub(crate) fn floor_sched_process_fork(_ctx: aya_ebpf::programs::RawTracePointContext) -> i32 {
    0
}

floor!(
    floor_sched_process_exit,
    floor_sched_process_exec,
    floor_open_exit,
    floor_sys_enter_mmap,
    floor_sys_exit_mmap,
    floor_inet_sock_set_state,
    floor_sys_enter_ioctl,
);
