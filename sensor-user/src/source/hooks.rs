//! The hooks the tracepoint backend attaches, and what became of each.

use serde::Serialize;

/// One program and where it attaches.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    /// Program (function) name in the eBPF object.
    pub program: &'static str,
    pub category: &'static str,
    pub tracepoint: &'static str,
    /// What the hook watches, as shown to people: exec, open, mmap, listen...
    pub watches: &'static str,
    /// The sensor refuses to run without it.
    pub required: bool,
}

const fn hook(program: &'static str, category: &'static str, watches: &'static str, required: bool) -> Hook {
    Hook { program, category, tracepoint: program, watches, required }
}

/// Every hook, in attach order. Exit and fork come first so that no process escapes the
/// bookkeeping while the others attach.
pub const HOOKS: [Hook; 9] = [
    hook("sched_process_exit", "sched", "exit", true),
    hook("sched_process_fork", "sched", "fork", false),
    hook("sched_process_exec", "sched", "exec", true),
    hook("sys_exit_openat", "syscalls", "open", true),
    hook("sys_exit_openat2", "syscalls", "open", false),
    hook("sys_exit_open", "syscalls", "open", false),
    hook("sys_enter_mmap", "syscalls", "mmap", true),
    hook("sys_exit_mmap", "syscalls", "mmap", true),
    hook("inet_sock_set_state", "sock", "listen", true),
];

/// What happened to a hook at start-up; shown by `modelwatch status` and in the first
/// event of the stream.
#[derive(Clone, Debug, Serialize)]
pub struct HookStatus {
    pub watches: &'static str,
    /// `tracepoint` (the backend that runs everywhere).
    pub backend: &'static str,
    /// `sched:sched_process_exec`.
    pub attach_point: String,
    pub attached: bool,
    /// Why it is not attached, or empty.
    pub reason: String,
    /// Instructions the verifier processed, where the kernel reports it.
    pub verified_insns: Option<u32>,
}
