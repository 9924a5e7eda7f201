//! The hooks, per backend, and what became of each at start-up.

use serde::Serialize;

/// Where a program attaches.
#[derive(Clone, Copy, Debug)]
pub enum AttachPoint {
    /// A tracepoint (`category:name`): loads everywhere.
    Tracepoint { category: &'static str, name: &'static str },
    /// `fexit` on a kernel function: the strong backend, where the kernel allows it.
    FExit { function: &'static str },
}

/// One program and where it attaches.
#[derive(Clone, Copy, Debug)]
pub struct Hook {
    /// Program (function) name in the eBPF object.
    pub program: &'static str,
    pub point: AttachPoint,
    /// What the hook watches, as shown to people: exec, open, mmap, listen...
    pub watches: &'static str,
    /// The sensor refuses to run without it.
    pub required: bool,
}

impl Hook {
    #[must_use]
    pub fn backend(&self) -> &'static str {
        match self.point {
            AttachPoint::Tracepoint { .. } => "tracepoint",
            AttachPoint::FExit { .. } => "fexit",
        }
    }

    #[must_use]
    pub fn describe_point(&self) -> String {
        match self.point {
            AttachPoint::Tracepoint { category, name } => format!("{category}:{name}"),
            AttachPoint::FExit { function } => function.to_owned(),
        }
    }
}

const fn tracepoint(
    program: &'static str,
    category: &'static str,
    watches: &'static str,
    required: bool,
) -> Hook {
    Hook { program, point: AttachPoint::Tracepoint { category, name: program }, watches, required }
}

const fn fexit(program: &'static str, function: &'static str, watches: &'static str) -> Hook {
    Hook { program, point: AttachPoint::FExit { function }, watches, required: false }
}

/// The tracepoint backend, in attach order. Exit and fork come first so that no process
/// escapes the bookkeeping while the others attach.
pub const TRACEPOINTS: [Hook; 9] = [
    tracepoint("sched_process_exit", "sched", "exit", true),
    tracepoint("sched_process_fork", "sched", "fork", false),
    tracepoint("sched_process_exec", "sched", "exec", true),
    tracepoint("sys_exit_openat", "syscalls", "open", true),
    tracepoint("sys_exit_openat2", "syscalls", "open", false),
    tracepoint("sys_exit_open", "syscalls", "open", false),
    tracepoint("sys_enter_mmap", "syscalls", "mmap", true),
    tracepoint("sys_exit_mmap", "syscalls", "mmap", true),
    tracepoint("inet_sock_set_state", "sock", "listen", true),
];

/// Stronger hooks, tried first; each replaces the tracepoints that watch the same thing.
/// Exec, exit, fork and listen stay on their tracepoints everywhere: those are not
/// syscall tracepoints and cost nothing on other syscalls.
pub const STRONG: [Hook; 2] = [
    fexit("fexit_security_file_open", "security_file_open", "open"),
    fexit("fexit_vm_mmap_pgoff", "vm_mmap_pgoff", "mmap"),
];

/// Which backends the sensor may use.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum BackendChoice {
    /// The strongest the kernel accepts, per hook, falling back to tracepoints.
    #[default]
    Auto,
    /// Tracepoints only.
    Tracepoint,
}

/// What happened to a hook at start-up; shown by `modelwatch status` and in the first
/// event of the stream.
#[derive(Clone, Debug, Serialize)]
pub struct HookStatus {
    pub watches: &'static str,
    /// `tracepoint` (runs everywhere) or `fexit` (the strong backend).
    pub backend: &'static str,
    /// `sched:sched_process_exec`, `security_file_open`.
    pub attach_point: String,
    pub attached: bool,
    /// Why it is not attached, or why this backend was chosen over a stronger one.
    pub reason: String,
    /// Instructions the verifier processed, where the kernel reports it.
    pub verified_insns: Option<u32>,
}

impl HookStatus {
    #[must_use]
    pub fn new(hook: &Hook) -> Self {
        Self {
            watches: hook.watches,
            backend: hook.backend(),
            attach_point: hook.describe_point(),
            attached: false,
            reason: String::new(),
            verified_insns: None,
        }
    }
}
